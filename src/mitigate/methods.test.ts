import { describe, it, expect } from 'vitest';
import { parseMethod, parseMethods, methodGuidance, perturbationSeed, DEFAULT_METHODS, needsTextModel, METHOD_DEFAULTS } from './methods.ts';
import type { GuidanceContext } from '../guidance/schedules.ts';

const ctx = (t: number, dHistory: number[] = [1]): GuidanceContext => ({ step: dHistory.length - 1, numSteps: 50, t, numTrainTimesteps: 1000, dHistory });

describe('parseMethod', () => {
  it('gives every documented form its canonical name and parameter', () => {
    const cases: [string, string, number | null][] = [
      ['cfg', 'cfg', null],
      ['stp', 'stp:500', 500],
      ['stp:700', 'stp:700', 700],
      ['og+stp', 'og+stp:500', 500],
      ['og+stp:600/2', 'og+stp:600/2', 600],
      ['dtp', 'dtp', null],
      ['og+dtp', 'og+dtp', null],
      ['og+dtp:2', 'og+dtp:2', null],
      ['interval', 'interval:200-700', null],
      ['interval:100-300', 'interval:100-300', null],
      ['random-word', 'random-word', 1],
      ['random-word:3', 'random-word:3', 3],
      ['random-number:2', 'random-number:2', 2],
      ['wen', 'wen:3', 3],
      ['wen:1', 'wen:1', 1],
      ['ren', 'ren:1.25', 1.25],
      ['ren:2', 'ren:2', 2],
    ];
    for (const [spec, name, param] of cases) {
      const m = parseMethod(spec);
      expect(m.name, spec).toBe(name);
      expect(m.param, spec).toBe(param);
      expect(parseMethod(m.name).name, `${spec} round trip`).toBe(name);
    }
    expect(parseMethod('og+dtp:2').ogScale).toBe(2);
    expect(parseMethod('og+dtp').ogScale).toBeUndefined();
  });

  it('rejects bad input naming the argument and the allowed forms', () => {
    expect(() => parseMethod('bogus')).toThrow(/--methods: unknown method "bogus"; expected cfg \| stp/);
    expect(() => parseMethod('stp:abc')).toThrow(/--methods: "stp:abc": τ must be a number/);
    expect(() => parseMethod('stp:500/2')).toThrow(/only valid with og\+stp/);
    expect(() => parseMethod('cfg:3')).toThrow(/cfg takes no parameter/);
    expect(() => parseMethod('random-word:0')).toThrow(/positive integer/);
    expect(() => parseMethod('interval:700-200')).toThrow(/t_lo ≤ t_hi/);
    expect(() => parseMethod('wen:-1')).toThrow(/l_target must be ≥ 0/);
    expect(() => parseMethods('cfg,stp:500,stp')).toThrow(/stp:500 is listed twice/);
    expect(() => parseMethods(' , ')).toThrow(/--methods: expected a comma-separated list/);
  });

  it('parses the default list, every method once', () => {
    const ms = parseMethods(DEFAULT_METHODS);
    expect(ms.map((m) => m.kind)).toEqual(['cfg', 'random-word', 'random-number', 'wen', 'wen', 'ren', 'stp', 'og+stp', 'dtp', 'og+dtp', 'interval']);
    expect(ms.filter(needsTextModel).map((m) => m.name)).toEqual(['random-word', 'random-number', 'wen:3', 'wen:1', 'ren:1.25']);
  });
});

describe('methodGuidance', () => {
  const lambda = 7.5;
  it('stp: 0 above τ, λ from τ down; og+stp: −λ (or −λ_og) above τ', () => {
    const s = methodGuidance(parseMethod('stp'), lambda);
    expect(s.scale(ctx(METHOD_DEFAULTS.tau + 1))).toBe(0);
    expect(s.scale(ctx(METHOD_DEFAULTS.tau))).toBe(lambda);
    expect(methodGuidance(parseMethod('og+stp'), lambda).scale(ctx(900))).toBe(-lambda);
    expect(methodGuidance(parseMethod('og+stp:500/2'), lambda).scale(ctx(900))).toBe(-2);
    expect(methodGuidance(parseMethod('og+stp:500/2'), lambda).scale(ctx(400))).toBe(lambda);
  });

  it('dtp / og+dtp: opposite guidance flips the sign of the guidance term before the switch, λ after it', () => {
    const before = [5, 4, 3];
    const after = [5, 4, 3, 4];
    expect(methodGuidance(parseMethod('dtp'), lambda).scale(ctx(800, before))).toBe(0);
    expect(methodGuidance(parseMethod('og+dtp'), lambda).scale(ctx(800, before))).toBe(-lambda);
    expect(methodGuidance(parseMethod('og+dtp:2'), lambda).scale(ctx(800, before))).toBe(-2);
    for (const m of ['dtp', 'og+dtp', 'og+dtp:2']) expect(methodGuidance(parseMethod(m), lambda).scale(ctx(700, after))).toBe(lambda);
  });

  it('interval: λ inside [lo, hi], 0 outside; prompt methods: constant λ (including λ = 0)', () => {
    const s = methodGuidance(parseMethod('interval:200-700'), lambda);
    expect([s.scale(ctx(701)), s.scale(ctx(700)), s.scale(ctx(200)), s.scale(ctx(199))]).toEqual([0, lambda, lambda, 0]);
    for (const m of ['cfg', 'random-word', 'wen', 'ren']) expect(methodGuidance(parseMethod(m), 0).scale(ctx(999))).toBe(0);
  });
});

describe('perturbationSeed', () => {
  it('is deterministic, differs across conditions and run seeds, and is a non-negative 31-bit integer', () => {
    const a = Array.from({ length: 100 }, (_, k) => perturbationSeed(k, 0));
    expect(a).toEqual(Array.from({ length: 100 }, (_, k) => perturbationSeed(k, 0)));
    expect(new Set(a).size).toBe(100);
    expect(perturbationSeed(3, 1)).not.toBe(perturbationSeed(3, 0));
    for (const v of a) expect(Number.isInteger(v) && v >= 0 && v < 2 ** 31).toBe(true);
  });
});
