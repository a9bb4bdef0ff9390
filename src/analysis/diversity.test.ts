/** SPEC §3.4: trace of the covariance across seeds. */
import { describe, expect, it } from 'vitest';
import { traceCovariance } from './diversity.ts';
import { mulberry32, normals } from '../../test/helpers/random.ts';

/** Two-pass float64 reference: mean, then Σ‖x_i − mean‖²/(n−1). */
function twoPass(rows: Float32Array, n: number, d: number): number {
  const m = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) m[k]! += rows[i * d + k]! / n;
  let s = 0;
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) s += (rows[i * d + k]! - m[k]!) ** 2;
  return s / (n - 1);
}

describe('traceCovariance', () => {
  const rng = mulberry32(3);

  it('matches a two-pass float64 computation', () => {
    for (const [n, d] of [[2, 5], [16, 100], [7, 1]] as const) {
      const rows = normals(rng, n * d);
      expect(traceCovariance(rows, n, d)).toBeCloseTo(twoPass(rows, n, d), 10);
    }
  });

  it('matches the closed form for x_i = m + c_i·v: ‖v‖²·var(c)', () => {
    const d = 30;
    const n = 5;
    const c = [-2, -1, 0, 1, 2]; // sample variance 10/4
    const v = Float32Array.from({ length: d }, (_, k) => (k % 3) - 1); // ‖v‖² = 20
    const m = Float32Array.from({ length: d }, (_, k) => 0.25 * k);
    const rows = new Float32Array(n * d);
    for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) rows[i * d + k] = m[k]! + c[i]! * v[k]!;
    expect(traceCovariance(rows, n, d)).toBeCloseTo(20 * 2.5, 12);
  });

  it('stays accurate when the spread is tiny relative to the mean (no Σx² − (Σx)² cancellation)', () => {
    const n = 32;
    const d = 64;
    const rows = Float32Array.from(normals(rng, n * d), (z) => 1000 + 1e-3 * z);
    const ref = twoPass(rows, n, d);
    expect(Math.abs(traceCovariance(rows, n, d) - ref) / ref).toBeLessThan(1e-9);
  });

  it('is 0 for one row and for identical rows; NaN for none; checks sizes', () => {
    expect(traceCovariance(Float32Array.from([1, 2, 3]), 1, 3)).toBe(0);
    expect(traceCovariance(Float32Array.from([1, 2, 1, 2]), 2, 2)).toBe(0);
    expect(traceCovariance(new Float32Array(0), 0, 3)).toBeNaN();
    expect(() => traceCovariance(new Float32Array(5), 2, 3)).toThrow(/n·d = 6/);
  });
});
