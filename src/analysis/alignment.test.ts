/** SPEC §3.5: PC1 explained-variance ratio via the n×n Gram matrix, and the Jacobi eigen-solver. */
import { describe, expect, it } from 'vitest';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { centredGram, pc1Ratio, pc1RatioFromGram } from './alignment.ts';
import { jacobiEigenvalues, jacobiEigh } from '../linalg/jacobi.ts';
import { mulberry32, normals } from '../../test/helpers/random.ts';

/** Brute force: the d×d sample covariance and its eigenvalues (ml-matrix). */
function bruteForcePc1(rows: Float32Array, n: number, d: number): number {
  const m = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) m[k]! += rows[i * d + k]! / n;
  const C = Matrix.zeros(d, d);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < d; a++) {
      for (let b = 0; b < d; b++) C.set(a, b, C.get(a, b) + ((rows[i * d + a]! - m[a]!) * (rows[i * d + b]! - m[b]!)) / (n - 1));
    }
  }
  const ev = new EigenvalueDecomposition(C, { assumeSymmetric: true }).realEigenvalues;
  return Math.max(...ev) / ev.reduce((s, v) => s + v, 0);
}

describe('jacobiEigenvalues', () => {
  it('matches ml-matrix on a random symmetric matrix, descending', () => {
    const rng = mulberry32(5);
    const n = 12;
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = rng() * 2 - 1;
    const got = jacobiEigenvalues(a, n);
    const ref = new EigenvalueDecomposition(new Matrix(Array.from({ length: n }, (_, i) => Array.from(a.subarray(i * n, (i + 1) * n)))), { assumeSymmetric: true }).realEigenvalues.sort((p, q) => q - p);
    for (let i = 0; i < n; i++) expect(got[i]).toBeCloseTo(ref[i]!, 12);
    for (let i = 1; i < n; i++) expect(got[i]!).toBeLessThanOrEqual(got[i - 1]!);
  });

  it('returns orthonormal eigenvectors with A·v = λ·v when asked', () => {
    const rng = mulberry32(9);
    const n = 9;
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = rng() * 2 - 1;
    const { values, vectors } = jacobiEigh(a, n, { vectors: true });
    expect(Array.from(values)).toEqual(Array.from(jacobiEigenvalues(a, n)));
    for (let c = 0; c < n; c++) {
      for (let i = 0; i < n; i++) {
        let av = 0;
        for (let k = 0; k < n; k++) av += a[i * n + k]! * vectors![k * n + c]!;
        expect(av).toBeCloseTo(values[c]! * vectors![i * n + c]!, 12);
      }
      for (let c2 = 0; c2 < n; c2++) {
        let dot = 0;
        for (let k = 0; k < n; k++) dot += vectors![k * n + c]! * vectors![k * n + c2]!;
        expect(dot).toBeCloseTo(c === c2 ? 1 : 0, 12);
      }
    }
  });

  it('handles diagonal, 1×1 and empty matrices', () => {
    expect(Array.from(jacobiEigenvalues([2, 0, 0, 5], 2))).toEqual([5, 2]);
    expect(Array.from(jacobiEigenvalues([3], 1))).toEqual([3]);
    expect(jacobiEigenvalues([], 0)).toHaveLength(0);
    expect(() => jacobiEigenvalues([1, 2, 3], 2)).toThrow(/2×2/);
  });
});

describe('pc1Ratio', () => {
  const rng = mulberry32(9);

  it('is 1 for collinear updates (any scales) and for identical updates (zero variance)', () => {
    const d = 20;
    const v = normals(rng, d);
    const cs = [0.5, -1, 3, 2.2, 0];
    const rows = new Float32Array(cs.length * d);
    cs.forEach((c, i) => v.forEach((x, k) => (rows[i * d + k] = c * x)));
    expect(pc1Ratio(rows, cs.length, d)).toBeCloseTo(1, 6);
    const same = new Float32Array(4 * d);
    for (let i = 0; i < 4; i++) same.set(v, i * d);
    expect(pc1Ratio(same, 4, d)).toBe(1);
    expect(pc1Ratio(v, 1, d)).toBe(1);
  });

  it('is 1/k for ±e_1 … ±e_k (centred, orthogonal, equal magnitude)', () => {
    const d = 10;
    for (const k of [2, 3, 5]) {
      const rows = new Float32Array(2 * k * d);
      for (let j = 0; j < k; j++) {
        rows[2 * j * d + j] = 1.5;
        rows[(2 * j + 1) * d + j] = -1.5;
      }
      expect(pc1Ratio(rows, 2 * k, d)).toBeCloseTo(1 / k, 12);
    }
  });

  it('matches a brute-force d×d covariance eigendecomposition on random data (n < d and n > d)', () => {
    for (const [n, d] of [[8, 12], [20, 6], [16, 40]] as const) {
      const rows = normals(rng, n * d);
      // add a dominant direction so PC1 is not trivial
      const u = normals(rng, d);
      for (let i = 0; i < n; i++) {
        const c = 2 * (rng() - 0.5);
        for (let k = 0; k < d; k++) rows[i * d + k] = rows[i * d + k]! + 3 * c * u[k]!;
      }
      expect(pc1Ratio(rows, n, d)).toBeCloseTo(bruteForcePc1(rows, n, d), 10);
    }
  });

  it('centres explicitly: nearly identical rows with a large common part keep their structure', () => {
    const d = 16;
    const n = 6;
    const base = Float32Array.from(normals(rng, d), (z) => 100 * z);
    const rows = new Float32Array(n * d);
    for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) rows[i * d + k] = base[k]! + (k === i ? 0.01 : 0);
    // spread = 0.01·e_i (float32 round-off of 100-scale values ≈ 4e-6 perturbs it slightly): 6 rows, rank 5 equal → 1/5
    expect(pc1Ratio(rows, n, d)).toBeCloseTo(0.2, 2);
    const g = centredGram(rows, n, d);
    expect(g[0]).toBeGreaterThan(0);
  });

  it('takes an optional float64 work buffer (also in place) and agrees with pc1RatioFromGram', () => {
    const n = 7;
    const d = 9;
    const rows = normals(rng, n * d);
    const want = pc1Ratio(rows, n, d);
    expect(pc1Ratio(rows, n, d, new Float64Array(n * d + 3))).toBe(want);
    expect(pc1RatioFromGram(centredGram(rows, n, d), n)).toBe(want);
    const inPlace = Float64Array.from(rows);
    expect(pc1RatioFromGram(centredGram(inPlace, n, d, inPlace), n)).toBe(want);
    expect(pc1RatioFromGram(new Float64Array(4), 2)).toBe(1);
    expect(() => pc1Ratio(rows, n, d, new Float64Array(3))).toThrow(/work needs/);
  });
});
