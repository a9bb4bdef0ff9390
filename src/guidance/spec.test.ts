import { describe, it, expect } from 'vitest';
import { splitSpecTerms, parseGuidanceSpec, parseGuidance, guidanceSpecName, guidanceSchedule, SCHEDULE_RULES, SCHEDULE_KINDS, DEFAULT_TAU, type SpecFlag } from './spec.ts';
import { constant, dtp, interval, stp, type GuidanceContext } from './schedules.ts';

const F: SpecFlag = { flag: '--x', noun: 'thing', forms: 'FORMS' };
const ctx = (t: number, dHistory: number[] = [1]): GuidanceContext => ({ step: dHistory.length - 1, numSteps: 50, t, numTrainTimesteps: 1000, dHistory });
/** Scales of a schedule at the given timesteps and histories, to compare two schedules pointwise. */
const probe = (s: { scale(c: GuidanceContext): number }): number[] => [
  ...[999, 701, 700, 600, 501, 500, 200, 199, 0].map((t) => s.scale(ctx(t))),
  s.scale(ctx(800, [5, 4, 3])),
  s.scale(ctx(700, [5, 4, 3, 4])),
];

describe('splitSpecTerms', () => {
  it('splits name, :p, @ and /', () => {
    expect(splitSpecTerms('og+stp:7.5@600/2', F)).toEqual({ text: 'og+stp:7.5@600/2', name: 'og+stp', colon: '7.5', at: '600', slash: '2' });
    expect(splitSpecTerms(' OG+DTP/2 ', F)).toEqual({ text: 'OG+DTP/2', name: 'og+dtp', slash: '2' });
    expect(splitSpecTerms('interval@200-700', F)).toEqual({ text: 'interval@200-700', name: 'interval', at: '200-700' });
    expect(splitSpecTerms('swap:models/class@0.5-3', F)).toEqual({ text: 'swap:models/class@0.5-3', name: 'swap', colon: 'models/class', at: '0.5-3' });
    expect(splitSpecTerms('cfg', F)).toEqual({ text: 'cfg', name: 'cfg' });
    expect(() => splitSpecTerms('7x', F)).toThrow(/--x: "7x" is not a thing; expected FORMS/);
    expect(() => splitSpecTerms('cfg!3', F)).toThrow(/--x: "cfg!3": unexpected "!3" after cfg/);
  });
});

describe('parseGuidanceSpec', () => {
  it('gives every documented form its object and canonical name', () => {
    const cases: [string, object, string][] = [
      ['cfg', { kind: 'cfg' }, 'cfg'],
      ['cfg:3', { kind: 'cfg', lambda: 3 }, 'cfg:3'],
      ['constant:7.5', { kind: 'cfg', lambda: 7.5 }, 'cfg:7.5'],
      ['7.5', { kind: 'cfg', lambda: 7.5 }, 'cfg:7.5'],
      ['stp', { kind: 'stp', tau: DEFAULT_TAU }, 'stp@500'],
      ['stp@500', { kind: 'stp', tau: 500 }, 'stp@500'],
      ['stp:7.5@500', { kind: 'stp', lambda: 7.5, tau: 500 }, 'stp:7.5@500'],
      ['og+stp@600/2', { kind: 'og+stp', tau: 600, og: 2 }, 'og+stp@600/2'],
      ['dtp', { kind: 'dtp' }, 'dtp'],
      ['og+dtp/2', { kind: 'og+dtp', og: 2 }, 'og+dtp/2'],
      ['og+dtp:7.5/2', { kind: 'og+dtp', lambda: 7.5, og: 2 }, 'og+dtp:7.5/2'],
      ['og+dtp:2', { kind: 'og+dtp', lambda: 2 }, 'og+dtp:2'],
      ['interval', { kind: 'interval', range: [200, 700] }, 'interval@200-700'],
      ['interval@200-700', { kind: 'interval', range: [200, 700] }, 'interval@200-700'],
      ['interval:7.5@100-300', { kind: 'interval', lambda: 7.5, range: [100, 300] }, 'interval:7.5@100-300'],
      ['linear:3', { kind: 'linear', lambda: 3 }, 'linear:3'],
    ];
    for (const [text, obj, name] of cases) {
      const s = parseGuidanceSpec(text);
      expect(s, text).toEqual(obj);
      expect(guidanceSpecName(s), text).toBe(name);
      expect(parseGuidanceSpec(guidanceSpecName(s)), `${text} round trip`).toEqual(obj);
    }
  });

  it('builds the same schedules as the constructors, λ from the spec or the scale', () => {
    const pairs: [string, number, ReturnType<typeof constant>][] = [
      ['cfg', 4, constant(4)],
      ['cfg:3', 4, constant(3)],
      ['stp@600', 4, stp(4, 600)],
      ['og+stp@600/2', 4, stp(4, 600, 2)],
      ['og+stp', 4, stp(4, 500, 4)],
      ['dtp', 4, dtp(4)],
      ['og+dtp/2', 4, dtp(4, 2)],
      ['og+dtp:7.5/2', 4, dtp(7.5, 2)],
      ['interval@200-700', 4, interval(4, 700, 200)],
    ];
    for (const [text, scale, ref] of pairs) {
      const g = parseGuidance(text, scale);
      expect(probe(g), text).toEqual(probe(ref));
      expect(g.label, text).toBe(ref.label);
    }
    expect(parseGuidance('dtp').label).toBe('dtp:7.5');
    expect(guidanceSchedule(parseGuidanceSpec('stp'), 2).label).toBe('stp:2@500');
  });

  it('refuses the old method spellings whose meaning changed, naming the new ones', () => {
    expect(() => parseGuidanceSpec('stp:700')).toThrow(/--guidance "stp:700": a number after ":" is the guidance scale λ.*write stp@700 for τ = 700.*or stp:700@500 for λ = 700/);
    expect(() => parseGuidanceSpec('og+stp:600/2')).toThrow(/write og\+stp@600\/2 for τ = 600/);
    expect(() => parseGuidanceSpec('interval:100-300')).toThrow(/the range goes after "@" \(write interval@100-300\)/);
  });

  it('rejects bad input naming the flag, the value and the allowed forms', () => {
    expect(() => parseGuidanceSpec('dpt:7.5')).toThrow(/--guidance "dpt:7\.5": unknown schedule "dpt" \(did you mean "dtp"\?\); expected cfg\[:λ\]/);
    expect(() => parseGuidanceSpec('dtp/2')).toThrow(/\/λog is only valid with og\+stp or og\+dtp/);
    expect(() => parseGuidanceSpec('dtp@500')).toThrow(/dtp takes no "@" part/);
    expect(() => parseGuidanceSpec('stp:x@500')).toThrow(/--guidance "stp:x@500": λ must be a number, got "x"/);
    expect(() => parseGuidanceSpec('interval@700-200')).toThrow(/need t_lo ≤ t_hi, got 700-200/);
    expect(() => parseGuidanceSpec('constant')).toThrow(/"constant" needs a scale/);
    expect(() => parseGuidanceSpec('')).toThrow(/--guidance: empty/);
    expect(() => parseGuidanceSpec('stp:x', { flag: '--methods' })).toThrow(/^--methods "stp:x"/);
  });

  it('has one rule per kind', () => {
    expect(SCHEDULE_RULES.map((r) => r.kind)).toEqual([...SCHEDULE_KINDS]);
  });
});
