import { describe, it, expect } from 'vitest';
import { constant, dtp, dtpSwitchIndex, interval, stp, linearRamp, cosineRamp, type GuidanceContext } from './schedules.ts';
import { parseGuidance } from './spec.ts';

const ctx = (step: number, t: number, d: number[] = []): GuidanceContext => ({ step, numSteps: 50, t, numTrainTimesteps: 1000, dHistory: d });

/** Run a schedule along a hand-made d_t sequence; returns the scale at every step. */
function scales(s: ReturnType<typeof dtp>, d: number[]): number[] {
  return d.map((_, i) => s.scale(ctx(i, 999 - 20 * i, d.slice(0, i + 1))));
}

describe('dtp (Jain et al. Algorithm 1)', () => {
  it('switches at the step after the first local minimum, never before step 2', () => {
    // d: 5 4 3 [2] 6 ... : local minimum at index 3, switch at index 4.
    const d = [5, 4, 3, 2, 6, 1, 7];
    expect(dtpSwitchIndex(d)).toBe(4);
    expect(scales(dtp(7.5), d)).toEqual([0, 0, 0, 0, 7.5, 7.5, 7.5]);
  });
  it('initial −∞ padding: an early rise is not a minimum', () => {
    // d_{T+2} = d_{T+1} = −∞, so steps 0 and 1 can never switch even though d rises at step 1.
    expect(dtpSwitchIndex([1, 2, 3])).toBeNull();
    expect(dtpSwitchIndex([3, 1, 2])).toBe(2);
  });
  it('never switches back after d falls again', () => {
    const d = [9, 3, 4, 1, 0.5, 0.2, 0.1];
    expect(scales(dtp(3), d)).toEqual([0, 0, 3, 3, 3, 3, 3]);
  });
  it('monotone decreasing d never switches (runs unguided throughout)', () => {
    const d = [9, 8, 7, 6, 5, 4];
    expect(dtpSwitchIndex(d)).toBeNull();
    expect(scales(dtp(7.5), d).every((s) => s === 0)).toBe(true);
  });
  it('equal neighbours are not strict minima', () => {
    expect(dtpSwitchIndex([3, 2, 2, 5])).toBeNull();
    expect(dtpSwitchIndex([3, 2, 2, 1, 5])).toBe(4);
  });
  it('opposite guidance: −λ_og before the switch, λ after', () => {
    const d = [5, 4, 3, 2, 6, 1];
    expect(scales(dtp(7.5, 7.5), d)).toEqual([-7.5, -7.5, -7.5, -7.5, 7.5, 7.5]);
    expect(scales(parseGuidance('og+dtp:7.5/2') as ReturnType<typeof dtp>, d)).toEqual([-2, -2, -2, -2, 7.5, 7.5]);
  });
});

describe('static schedules', () => {
  it('constant, interval, stp, og+stp', () => {
    expect(constant(7.5).scale(ctx(0, 999))).toBe(7.5);
    const iv = interval(7.5, 700, 200);
    expect([999, 700, 500, 200, 199].map((t) => iv.scale(ctx(0, t)))).toEqual([0, 7.5, 7.5, 7.5, 0]);
    const s = stp(7.5, 500);
    expect([999, 501, 500, 1].map((t) => s.scale(ctx(0, t)))).toEqual([0, 0, 7.5, 7.5]);
    const o = parseGuidance('og+stp:7.5@500');
    expect([999, 501, 500].map((t) => o.scale(ctx(0, t)))).toEqual([-7.5, -7.5, 7.5]);
  });
  it('ramps are monotone increasing as t falls and reach λ at t = 0', () => {
    for (const r of [linearRamp(5), cosineRamp(5)]) {
      const v = [999, 750, 500, 250, 0].map((t) => r.scale(ctx(0, t)));
      for (let i = 1; i < v.length; i++) expect(v[i]!).toBeGreaterThan(v[i - 1]!);
      expect(v[4]).toBeCloseTo(5, 12);
      expect(v[2]).toBeCloseTo(2.5, 12); // both ramps pass λ/2 at t = T/2
    }
  });
});

describe("Jain et al.'s invlinear, sine, v_shape, a_shape (their code's formulas)", () => {
  it('take the values their code gives at t = 1000, 750, 500, 250, 0 (T = 1000, λ = 4)', () => {
    // invlinear λt/T; sine λ(sin(πt/T − π/2) + 1); v_shape λ(1 − t/T) above 500, λt/T at and below; a_shape λ(1 − t/T) below 500, λt/T at and above
    const ts = [1000, 750, 500, 250, 0];
    const at = (spec: string): number[] => ts.map((t) => parseGuidance(spec).scale(ctx(0, t)));
    const close = (a: number[], b: number[]): void => a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, 12));
    close(at('invlinear:4'), [4, 3, 2, 1, 0]);
    close(at('sine:4'), [8, 4 + 4 * Math.SQRT1_2, 4, 4 - 4 * Math.SQRT1_2, 0]);
    close(at('v_shape:4'), [0, 1, 2, 1, 0]);
    close(at('a_shape:4'), [4, 3, 2, 3, 4]);
    expect(parseGuidance('v_shape', 7.5).label).toBe('v_shape:7.5');
  });
});

describe('parseGuidance', () => {
  it('parses every documented form to its canonical label', () => {
    for (const [spec, label] of [
      ['constant:7.5', 'constant:7.5'],
      ['7.5', 'constant:7.5'],
      ['constant:0', 'constant:0'],
      ['stp:7.5@500', 'stp:7.5@500'],
      ['dtp:7.5', 'dtp:7.5'],
      ['og+dtp:7.5', 'og+dtp:7.5'],
      ['og+stp:7.5@500', 'og+stp:7.5@500'],
      ['interval:7.5@200-700', 'interval:7.5@200-700'],
      ['linear:3', 'linear:3'],
      ['cosine:3', 'cosine:3'],
    ] as const) {
      expect(parseGuidance(spec).label).toBe(label);
      expect(parseGuidance(parseGuidance(spec).label).label).toBe(label);
    }
  });
  it('a scale of 0 is meaningful (unconditional), and negative scales are allowed', () => {
    expect(parseGuidance('constant:0').scale(ctx(0, 999))).toBe(0);
    expect(parseGuidance('constant:-2').scale(ctx(0, 999))).toBe(-2);
  });
  it('rejects bad input with an error naming --guidance and the allowed forms', () => {
    for (const bad of ['', 'foo:1', 'constant:', 'constant:abc', 'stp:7.5', 'interval:7.5@700', 'interval:7.5@700-200', 'dtp:7.5/2', 'stp:700', 'og+stp:600/2', 'interval:100-300']) {
      expect(() => parseGuidance(bad)).toThrow(/--guidance|guidance interval/);
    }
    expect(() => parseGuidance('foo:1')).toThrow(/constant:λ/);
  });
});
