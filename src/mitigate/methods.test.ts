import { describe, it, expect } from 'vitest';
import { parseMethod, parseMethods, methodGuidance, perturbationSeed, DEFAULT_METHODS, needsTextModel, methodLambda, methodRequires, skippedMethods, METHOD_KINDS, type Capability } from './methods.ts';
import { parseGuidanceSpec, DEFAULT_TAU } from '../guidance/spec.ts';
import type { GuidanceContext } from '../guidance/schedules.ts';

const ctx = (t: number, dHistory: number[] = [1]): GuidanceContext => ({ step: dHistory.length - 1, numSteps: 50, t, numTrainTimesteps: 1000, dHistory });

describe('parseMethod', () => {
  it('gives every documented form its canonical name and parameters', () => {
    const cases: [string, string, Record<string, unknown>][] = [
      ['cfg', 'cfg', { kind: 'cfg' }],
      ['cfg:3', 'cfg:3', { kind: 'cfg', lambda: 3 }],
      ['stp', 'stp@500', { kind: 'stp', tau: 500 }],
      ['stp@700', 'stp@700', { kind: 'stp', tau: 700 }],
      ['stp:7.5@500', 'stp:7.5@500', { kind: 'stp', lambda: 7.5, tau: 500 }],
      ['og+stp', 'og+stp@500', { kind: 'og+stp', tau: 500 }],
      ['og+stp@600/2', 'og+stp@600/2', { kind: 'og+stp', tau: 600, og: 2 }],
      ['dtp', 'dtp', { kind: 'dtp' }],
      ['og+dtp', 'og+dtp', { kind: 'og+dtp' }],
      ['og+dtp/2', 'og+dtp/2', { kind: 'og+dtp', og: 2 }],
      ['og+dtp:7.5/2', 'og+dtp:7.5/2', { kind: 'og+dtp', lambda: 7.5, og: 2 }],
      ['interval', 'interval@200-700', { kind: 'interval', range: [200, 700] }],
      ['interval@100-300', 'interval@100-300', { kind: 'interval', range: [100, 300] }],
      ['random-word', 'random-word', { insertions: 1 }],
      ['random-word:3', 'random-word:3', { insertions: 3 }],
      ['random-number:2', 'random-number:2', { insertions: 2 }],
      ['wen', 'wen:3', { lossTarget: 3 }],
      ['wen:1', 'wen:1', { lossTarget: 1 }],
      ['ren', 'ren:1.25', { startScale: 1.25 }],
      ['ren:2', 'ren:2', { startScale: 2 }],
      ['swap:models/class@0.5-3', 'swap:models/class@0.5-3', { model: 'models/class', sigmaLo: 0.5, sigmaHi: 3 }],
    ];
    for (const [spec, name, params] of cases) {
      const m = parseMethod(spec);
      expect(m.name, spec).toBe(name);
      expect(m.params, spec).toEqual(params);
      expect(parseMethod(m.name).name, `${spec} round trip`).toBe(name);
    }
  });

  it('a guidance method is the same object as the --guidance spec of the same string', () => {
    for (const s of ['cfg', 'cfg:3', 'stp@500', 'stp:7.5@500', 'og+stp@600/2', 'og+dtp/2', 'og+dtp:7.5/2', 'interval@200-700', 'dtp', 'linear:2']) {
      expect(parseMethod(s).params, s).toEqual(parseGuidanceSpec(s));
    }
    expect(methodLambda(parseMethod('og+dtp:2'))).toBe(2);
    expect(methodLambda(parseMethod('og+dtp/2'))).toBeNull();
    expect(methodLambda(parseMethod('wen:1'))).toBeNull();
  });

  it('rejects bad input naming the argument, the value and the allowed forms', () => {
    expect(() => parseMethod('bogus')).toThrow(/--methods: unknown method "bogus"; expected cfg\[:λ\] \| random-word/);
    expect(() => parseMethod('dpt')).toThrow(/--methods: unknown method "dpt" \(did you mean "dtp"\?\)/);
    expect(() => parseMethod('stp:abc')).toThrow(/--methods "stp:abc": a number after ":" is the guidance scale λ/);
    expect(() => parseMethod('stp:x@500')).toThrow(/--methods "stp:x@500": λ must be a number/);
    expect(() => parseMethod('stp@500/2')).toThrow(/only valid with og\+stp/);
    expect(() => parseMethod('random-word:0')).toThrow(/positive integer/);
    expect(() => parseMethod('random-word@3')).toThrow(/random-word takes no "@" part/);
    expect(() => parseMethod('interval@700-200')).toThrow(/t_lo ≤ t_hi/);
    expect(() => parseMethod('wen:-1')).toThrow(/l_target must be ≥ 0/);
    expect(() => parseMethods('cfg,stp@500,stp')).toThrow(/stp@500 is listed twice/);
    expect(() => parseMethods(' , ')).toThrow(/--methods: expected a comma-separated list/);
  });

  it('refuses the old spellings whose meaning changed (stp:τ, og+stp:τ/λog, interval:lo-hi)', () => {
    expect(() => parseMethod('stp:700')).toThrow(/--methods "stp:700": .*write stp@700 for τ = 700/);
    expect(() => parseMethod('og+stp:600/2')).toThrow(/write og\+stp@600\/2 for τ = 600/);
    expect(() => parseMethod('interval:100-300')).toThrow(/write interval@100-300/);
  });

  it('parses the default list, every method once', () => {
    const ms = parseMethods(DEFAULT_METHODS);
    expect(ms.map((m) => m.kind)).toEqual(['cfg', 'random-word', 'random-number', 'wen', 'wen', 'ren', 'stp', 'og+stp', 'dtp', 'og+dtp', 'interval']);
    expect(ms.map((m) => m.name)).toEqual(['cfg', 'random-word', 'random-number', 'wen:3', 'wen:1', 'ren:1.25', 'stp@500', 'og+stp@500', 'dtp', 'og+dtp', 'interval@200-700']);
    expect(ms.filter(needsTextModel).map((m) => m.name)).toEqual(['random-word', 'random-number', 'wen:3', 'wen:1', 'ren:1.25']);
  });
});

describe('requires and skipping', () => {
  it('each method declares its capabilities; a source lacking one skips it with that reason', () => {
    const req = Object.fromEntries(METHOD_KINDS.map((k) => [k, methodRequires(parseMethod(k === 'swap' ? 'swap:x@1-2' : k))]));
    expect(req).toMatchObject({ cfg: [], stp: [], dtp: [], swap: [], 'random-word': ['text'], 'random-number': ['text'], wen: ['text', 'embeddingGradient'], ren: ['attention'] });
    const caps = new Map<Capability, string | null>([['text', null], ['attention', 'no attention here'], ['embeddingGradient', 'no gradients here']]);
    const skipped = skippedMethods(parseMethods('cfg,random-word,wen,ren,dtp'), caps);
    expect(skipped.map((s) => [s.method.name, s.reason])).toEqual([['wen:3', 'no gradients here'], ['ren:1.25', 'no attention here']]);
    expect(() => skippedMethods(parseMethods('ren'), new Map())).toThrow(/capability attention of ren:1.25 was not checked/);
  });
});

describe('methodGuidance', () => {
  const lambda = 7.5;
  it('stp: 0 above τ, λ from τ down; og+stp: −λ (or −λ_og) above τ', () => {
    const s = methodGuidance(parseMethod('stp'), lambda);
    expect(s.scale(ctx(DEFAULT_TAU + 1))).toBe(0);
    expect(s.scale(ctx(DEFAULT_TAU))).toBe(lambda);
    expect(methodGuidance(parseMethod('og+stp'), lambda).scale(ctx(900))).toBe(-lambda);
    expect(methodGuidance(parseMethod('og+stp@500/2'), lambda).scale(ctx(900))).toBe(-2);
    expect(methodGuidance(parseMethod('og+stp@500/2'), lambda).scale(ctx(400))).toBe(lambda);
  });

  it('dtp / og+dtp: opposite guidance flips the sign of the guidance term before the switch, λ after it', () => {
    const before = [5, 4, 3];
    const after = [5, 4, 3, 4];
    expect(methodGuidance(parseMethod('dtp'), lambda).scale(ctx(800, before))).toBe(0);
    expect(methodGuidance(parseMethod('og+dtp'), lambda).scale(ctx(800, before))).toBe(-lambda);
    expect(methodGuidance(parseMethod('og+dtp/2'), lambda).scale(ctx(800, before))).toBe(-2);
    for (const m of ['dtp', 'og+dtp', 'og+dtp/2']) expect(methodGuidance(parseMethod(m), lambda).scale(ctx(700, after))).toBe(lambda);
  });

  it('a method that writes λ uses it instead of the scale: og+dtp:2 is λ = 2 (λ_og = λ = 2)', () => {
    const g = methodGuidance(parseMethod('og+dtp:2'), lambda);
    expect(g.scale(ctx(800, [5, 4, 3]))).toBe(-2);
    expect(g.scale(ctx(700, [5, 4, 3, 4]))).toBe(2);
    expect(methodGuidance(parseMethod('cfg:3'), lambda).scale(ctx(999))).toBe(3);
  });

  it('interval: λ inside [lo, hi], 0 outside; prompt methods: constant λ (including λ = 0)', () => {
    const s = methodGuidance(parseMethod('interval@200-700'), lambda);
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
