import { describe, expect, it } from 'vitest';
import { StepNormsRecorder, empiricalTransitionPoint, isCopy, magnitudeCurves, staticTransitionPoint } from './transition.ts';
import { observeAll } from '../record/recorders.ts';
import type { StepEvent } from '../samplers/types.ts';
import type { Tensor } from '../tensor/tensor.ts';

const T = (dims: number[], data: number[]): Tensor => ({ dims, data: Float32Array.from(data) });

/** A minimal StepEvent with B = 2 rows of 2 values each. */
function event(step: number, guided: boolean, epsU: number[], epsC: number[], s: number): StepEvent {
  const dims = [2, 2];
  const sArr = Float64Array.from([s, s]);
  const eps = epsU.map((u, i) => u + s * (epsC[i]! - u));
  const d = guided ? Float64Array.from([0, 1].map((b) => (epsC[2 * b]! - epsU[2 * b]!) ** 2 + (epsC[2 * b + 1]! - epsU[2 * b + 1]!) ** 2)) : null;
  const zero = T(dims, [0, 0, 0, 0]);
  return {
    step,
    numSteps: 3,
    t: 999 - 400 * step,
    alphaBar: 0.1 * (step + 1),
    xt: zero,
    eps: T(dims, guided ? eps : epsC),
    xHat0: zero,
    epsU: guided ? T(dims, epsU) : null,
    epsC: guided ? T(dims, epsC) : null,
    s: guided ? sArr : null,
    d,
    xPrev: zero,
    alphaBarPrev: 0.1 * (step + 2),
  };
}

describe('StepNormsRecorder', () => {
  it('records ‖ε_c‖, ‖ε_u‖, ‖ε_c − ε_u‖, ‖ε̂‖ and s per step and row', async () => {
    const rec = new StepNormsRecorder();
    const observe = observeAll(rec.observe);
    // row 0: ε_u = (3, 0), ε_c = (3, 4) → ‖ε_u‖ 3, ‖ε_c‖ 5, ‖δ‖ 4
    // row 1: ε_u = (1, 1), ε_c = (−2, 5) → ‖ε_u‖ √2, ‖ε_c‖ √29, ‖δ‖ 5
    await observe(event(0, true, [3, 0, 1, 1], [3, 4, -2, 5], 2));
    await observe(event(1, true, [0, 0, 6, 8], [0, 1, 6, 8], 0));
    expect(rec.t).toEqual([999, 599]);
    expect(rec.epsU[0]![0]).toBeCloseTo(3, 12);
    expect(rec.epsC[0]![0]).toBeCloseTo(5, 12);
    expect(rec.diff[0]![0]).toBeCloseTo(4, 12);
    expect(rec.epsU[0]![1]).toBeCloseTo(Math.SQRT2, 6);
    expect(rec.epsC[0]![1]).toBeCloseTo(Math.sqrt(29), 6);
    expect(rec.diff[0]![1]).toBeCloseTo(5, 12);
    // ε̂ = ε_u + 2(ε_c − ε_u): row 0 = (3, 8)
    expect(rec.eps[0]![0]).toBeCloseTo(Math.sqrt(73), 6);
    expect(rec.s).toEqual([[2, 2], [0, 0]]);
    expect(rec.diff[1]).toEqual([1, 0]);
    expect(rec.epsU[1]![1]).toBeCloseTo(10, 12);
    // d = diff² agrees with the event's d_t
    const d = rec.d();
    expect(d[0]![0]).toBeCloseTo(16, 10);
    expect(d[0]![1]).toBeCloseTo(25, 10);
  });

  it('records NaN for the guided quantities of an unguided run', () => {
    const rec = new StepNormsRecorder();
    void rec.observe(event(0, false, [0, 0, 0, 0], [3, 4, 0, 1], 1));
    expect(rec.epsC[0]).toEqual([NaN, NaN]);
    expect(rec.epsU[0]).toEqual([NaN, NaN]);
    expect(rec.diff[0]).toEqual([NaN, NaN]);
    expect(rec.s[0]).toEqual([NaN, NaN]);
    expect(rec.eps[0]![0]).toBeCloseTo(5, 12);
    expect(rec.eps[0]![1]).toBeCloseTo(1, 12);
    const c = rec.curves();
    expect(c.diff.mean).toEqual([NaN]);
    expect(c.diff.count).toEqual([0]);
    expect(c.eps.mean[0]).toBeCloseTo(3, 12);
  });

  it('builds the magnitude curves of what it recorded', () => {
    const rec = new StepNormsRecorder();
    void rec.observe(event(0, true, [3, 0, 1, 1], [3, 4, -2, 5], 7.5));
    const c = rec.curves();
    expect(c.diff.mean[0]).toBeCloseTo(4.5, 12);
    expect(c.diff.std[0]).toBeCloseTo(0.5, 12);
    expect(c.d.mean[0]).toBeCloseTo(20.5, 10);
    expect(c.epsU.mean[0]).toBeCloseTo((3 + Math.SQRT2) / 2, 6);
    expect(rec.curves({ rows: [1] }).diff.mean[0]).toBeCloseTo(5, 12);
  });
});

describe('magnitudeCurves', () => {
  it('gives the mean and std across rows per step', () => {
    const c = magnitudeCurves([
      [1, 2, 3, 4],
      [2, 2, 2, 2],
    ]);
    expect(c.mean).toEqual([2.5, 2]);
    expect(c.std[0]).toBeCloseTo(Math.sqrt(1.25), 14);
    expect(c.std[1]).toBe(0);
    expect(c.count).toEqual([4, 4]);
    const s = magnitudeCurves([[1, 2, 3, 4]], { ddof: 1 });
    expect(s.std[0]).toBeCloseTo(Math.sqrt(5 / 3), 14);
  });

  it('skips NaN entries and honours a row subset', () => {
    const c = magnitudeCurves([[1, NaN, 3], [NaN, NaN, NaN]]);
    expect(c.mean).toEqual([2, NaN]);
    expect(c.std[0]).toBe(1);
    expect(c.std[1]).toBeNaN();
    expect(c.count).toEqual([2, 0]);
    expect(magnitudeCurves([[1, 5, 9, 13]], { rows: [2, 3] }).mean).toEqual([11]);
    expect(() => magnitudeCurves([[1, 2]], { rows: [2] })).toThrow(/rows contains 2, but step 0 has 2 rows/);
    expect(magnitudeCurves([[4]], { ddof: 1 }).std).toEqual([NaN]);
  });
});

describe('staticTransitionPoint', () => {
  it('finds the first step of the final stretch below 10 % of the maximum', () => {
    // rises, peaks at 10, falls below 1 at step 5 and stays there
    const curve = [4, 8, 10, 6, 2, 0.9, 0.5, 0.2, 0.1, 0.05];
    expect(staticTransitionPoint(curve)).toBe(5);
    expect(staticTransitionPoint(curve, { fraction: 0.25 })).toBe(4);
    expect(staticTransitionPoint(curve, { fraction: 0.01 })).toBe(9); // only the last value (0.005) is low
    expect(staticTransitionPoint(curve, { fraction: 0.004 })).toBeNull();
  });

  it('ignores an early dip that rises again', () => {
    expect(staticTransitionPoint([10, 0.5, 0.5, 5, 0.2, 0.1])).toBe(4);
  });

  it('is null when the curve never stays low, is empty, or is all zero', () => {
    expect(staticTransitionPoint([1, 2, 3, 4])).toBeNull(); // memorized under CFG: stays high
    expect(staticTransitionPoint([5, 0.1, 0.1, 3])).toBeNull();
    expect(staticTransitionPoint([])).toBeNull();
    expect(staticTransitionPoint([0, 0, 0])).toBeNull();
  });

  it('is exact at the boundary (< fraction, not ≤) and scale invariant', () => {
    expect(staticTransitionPoint([10, 1, 0.5])).toBe(2);
    expect(staticTransitionPoint([1000, 100, 50])).toBe(2);
    expect(staticTransitionPoint([10, 0.99, 0.5])).toBe(1);
  });

  it('rejects bad input', () => {
    expect(() => staticTransitionPoint([1, NaN])).toThrow(/meanD\[1\] is NaN/);
    expect(() => staticTransitionPoint([1], { fraction: 0 })).toThrow(/fraction must be in \(0, 1\]/);
    expect(() => staticTransitionPoint([1], { fraction: 1.5 })).toThrow(/fraction/);
  });
});

describe('empiricalTransitionPoint', () => {
  it('returns the first CFG-start step whose output is no longer a copy', () => {
    const sims = [0.95, 0.94, 0.93, 0.91, 0.6, 0.4, 0.3];
    expect(empiricalTransitionPoint(sims, 0.5)).toBe(5);
    expect(empiricalTransitionPoint(sims, 0.75)).toBe(4);
    expect(empiricalTransitionPoint(sims, 0.2)).toBeNull();
    expect(empiricalTransitionPoint([0.1, 0.9], 0.5)).toBe(0);
    expect(empiricalTransitionPoint([], 0.5)).toBeNull();
  });

  it('reports the first non-copy even when a later start copies again', () => {
    expect(empiricalTransitionPoint([0.9, 0.4, 0.8, 0.2], 0.5)).toBe(1);
  });

  it('counts a similarity equal to the threshold as a copy', () => {
    expect(isCopy(0.5, 0.5)).toBe(true);
    expect(isCopy(0.4999, 0.5)).toBe(false);
    expect(empiricalTransitionPoint([0.5, 0.5, 0.49], 0.5)).toBe(2);
  });

  it('rejects NaN', () => {
    expect(() => empiricalTransitionPoint([0.9, NaN], 0.5)).toThrow(/similarities\[1\] is NaN/);
    expect(() => empiricalTransitionPoint([0.9], NaN)).toThrow(/threshold is NaN/);
  });
});
