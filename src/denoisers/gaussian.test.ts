/**
 * Linear Gaussian denoiser (SPEC §2.2): eigh against ml-matrix and A·v = λ·v, the disk cache,
 * fitGaussian against a direct float64 computation, and D_lin against a direct linear solve
 * μ + Σ(Σ+σ²I)⁻¹(y−μ) (Gaussian elimination, independent of the eigendecomposition).
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import { fitGaussian, gaussianComponent, linearDenoise, makeGaussianDenoiser } from './gaussian.ts';
import { eigh, eighMany } from '../linalg/eigh.ts';
import { eighCached, eighCachedMany, eighStats } from '../linalg/eigh-cache.ts';
import { mulberry32 } from '../../test/helpers/random.ts';
import { useTempCache } from '../../test/helpers/cache.ts';

/** Solve A x = b (A n×n row-major) by Gaussian elimination with partial pivoting, float64. */
function solve(A: Float64Array, b: Float64Array, n: number): Float64Array {
  const M = Float64Array.from(A);
  const x = Float64Array.from(b);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r * n + c]!) > Math.abs(M[p * n + c]!)) p = r;
    if (p !== c) {
      for (let j = 0; j < n; j++) [M[c * n + j], M[p * n + j]] = [M[p * n + j]!, M[c * n + j]!];
      [x[c], x[p]] = [x[p]!, x[c]!];
    }
    for (let r = c + 1; r < n; r++) {
      const f = M[r * n + c]! / M[c * n + c]!;
      for (let j = c; j < n; j++) M[r * n + j]! -= f * M[c * n + j]!;
      x[r]! -= f * x[c]!;
    }
  }
  for (let r = n - 1; r >= 0; r--) {
    let s = x[r]!;
    for (let j = r + 1; j < n; j++) s -= M[r * n + j]! * x[j]!;
    x[r] = s / M[r * n + r]!;
  }
  return x;
}

const rng = mulberry32(1);
// set at import time: the describe blocks below build denoisers while being collected
const cache = useTempCache('memscope-eigh-');

describe('eigh', () => {
  it('diagonalises a random symmetric matrix (residual < 1e-12, orthonormal, eigenvalues = ml-matrix to 1e-12)', () => {
    const n = 40;
    const A = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        const v = rng() - 0.5;
        A[i * n + j] = v;
        A[j * n + i] = v;
      }
    }
    const e = eigh(A, n);
    for (let k = 1; k < n; k++) expect(e.values[k]!).toBeGreaterThanOrEqual(e.values[k - 1]!);
    for (let k = 0; k < n; k++) {
      for (let r = 0; r < n; r++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += A[r * n + j]! * e.vectorsT[k * n + j]!;
        expect(Math.abs(s - e.values[k]! * e.vectorsT[k * n + r]!)).toBeLessThan(1e-12);
      }
      for (let q = 0; q <= k; q++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += e.vectorsT[k * n + j]! * e.vectorsT[q * n + j]!;
        expect(Math.abs(s - (q === k ? 1 : 0))).toBeLessThan(1e-12);
      }
    }
    const M = new Matrix(n, n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) M.set(i, j, A[i * n + j]!);
    const ref = [...new EigenvalueDecomposition(M, { assumeSymmetric: true }).realEigenvalues].sort((a, b) => a - b);
    ref.forEach((v, k) => expect(Math.abs(v - e.values[k]!)).toBeLessThan(1e-12));
  });

  it('handles diagonal, zero and 1×1 matrices', () => {
    expect(Array.from(eigh(Float64Array.of(3, 0, 0, 0, -1, 0, 0, 0, 2), 3).values)).toEqual([-1, 2, 3]);
    expect(Array.from(eigh(new Float64Array(4), 2).values)).toEqual([0, 0]);
    const one = eigh(Float64Array.of(5), 1);
    expect([one.values[0], one.vectorsT[0]]).toEqual([5, 1]);
  });

  it('eighMany (worker threads) gives bit-identical results to eigh; eighCachedMany reads the cache back', async () => {
    const n = 100;
    const mats = [0, 1, 2].map(() => {
      const A = new Float64Array(n * n);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j <= i; j++) {
          const v = rng() - 0.5;
          A[i * n + j] = v;
          A[j * n + i] = v;
        }
      }
      return A;
    });
    const par = await eighMany(mats, n, { workers: 2 });
    mats.forEach((A, k) => {
      const ser = eigh(A, n);
      expect(par[k]!.values).toEqual(ser.values);
      expect(par[k]!.vectorsT).toEqual(ser.vectorsT);
    });
    const m0 = eighStats.misses;
    const h0 = eighStats.hits;
    const a = await eighCachedMany(mats.map((A, k) => ({ A, key: `many-${k}` })), n, { clamp: false, workers: 2 });
    const b = await eighCachedMany(mats.map((A, k) => ({ A, key: `many-${k}` })), n, { clamp: false });
    expect([eighStats.misses - m0, eighStats.hits - h0]).toEqual([3, 3]);
    expect(b[2]!.vectorsT).toEqual(a[2]!.vectorsT);
    expect(a[1]!.values).toEqual(par[1]!.values);
  });

  it('caches on disk atomically, hits on the second call, recomputes a corrupt file, clamps λ < 0', () => {
    const n = 6;
    // a PSD matrix of rank 2: λ = 0 four times, round-off may make them slightly negative
    const u = Array.from({ length: n }, () => rng());
    const v = Array.from({ length: n }, () => rng());
    const A = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) A[i * n + j] = u[i]! * u[j]! + v[i]! * v[j]!;
    const h0 = eighStats.hits;
    const m0 = eighStats.misses;
    const a = eighCached(A, n, { key: 'test-psd' });
    expect(eighStats.misses).toBe(m0 + 1);
    expect(readdirSync(cache).filter((f) => f.includes('test-psd'))).toEqual(['eigh-test-psd.bin']);
    const b = eighCached(A, n, { key: 'test-psd' });
    expect(eighStats.hits).toBe(h0 + 1);
    expect(Array.from(b.vectorsT)).toEqual(Array.from(a.vectorsT));
    for (const x of a.values) expect(x).toBeGreaterThanOrEqual(0);
    writeFileSync(join(cache, 'eigh-test-psd.bin'), 'garbage');
    eighCached(A, n, { key: 'test-psd' });
    expect(eighStats.misses).toBe(m0 + 2);
    expect(readdirSync(cache).filter((f) => f.includes('test-psd') || f.endsWith('.tmp'))).toEqual(['eigh-test-psd.bin']);
  });
});

describe('linear Gaussian denoiser (SPEC §2.2)', async () => {
  const n = 80;
  const d = 10;
  const X = new Float32Array(n * d);
  // correlated data: x = L z + m
  const L = Array.from({ length: d * d }, () => rng() - 0.5);
  for (let i = 0; i < n; i++) {
    const z = Array.from({ length: d }, () => rng() - 0.5);
    for (let j = 0; j < d; j++) {
      let s = 0.3 * j;
      for (let k = 0; k < d; k++) s += L[j * d + k]! * z[k]!;
      X[i * d + j] = s;
    }
  }
  const fit = await fitGaussian({ dims: [n, d], data: X });
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += X[i * d + j]! / n;
  const cov = new Float64Array(d * d);
  for (let i = 0; i < n; i++) for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) cov[a * d + b]! += ((X[i * d + a]! - mean[a]!) * (X[i * d + b]! - mean[b]!)) / n;

  it('fitGaussian matches the direct float64 mean and covariance (1e-12)', () => {
    for (let j = 0; j < d; j++) expect(Math.abs(fit.mean[j]! - mean[j]!)).toBeLessThan(1e-12);
    for (let k = 0; k < d * d; k++) expect(Math.abs(fit.cov[k]! - cov[k]!)).toBeLessThan(1e-12);
  });

  const den = await makeGaussianDenoiser({ dims: [n, 2, 5], data: X });
  const direct = (y: Float64Array, sigma: number): Float64Array => {
    const A = Float64Array.from(cov);
    for (let j = 0; j < d; j++) A[j * d + j]! += sigma * sigma;
    const yc = Float64Array.from(y, (v, j) => v - mean[j]!);
    const s = solve(A, yc, d);
    const out = Float64Array.from(mean);
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) out[a]! += cov[a * d + b]! * s[b]!;
    return out;
  };

  it('D_lin matches μ + Σ(Σ+σ²I)⁻¹(y−μ) by direct solve (onnxruntime float32: 2e-5 relative; JS float64: 1e-10)', async () => {
    expect(den.shape).toEqual([2, 5]);
    for (const sigma of [0.01, 0.3, 1, 10]) {
      const B = 4;
      const y = Float32Array.from({ length: B * d }, () => 3 * (rng() - 0.5));
      const D = await den.denoise({ dims: [B, 2, 5], data: y }, sigma);
      for (let r = 0; r < B; r++) {
        const yr = Float64Array.from(y.subarray(r * d, (r + 1) * d));
        const ref = direct(yr, sigma);
        const js = linearDenoise(den.component, yr, sigma);
        const scale = Math.max(...ref.map(Math.abs));
        for (let j = 0; j < d; j++) {
          expect(Math.abs(D.data[r * d + j]! - ref[j]!) / scale).toBeLessThan(2e-5);
          expect(Math.abs(js[j]! - ref[j]!) / scale).toBeLessThan(1e-10);
        }
      }
    }
  });

  it('predict gives ε = (x_t − √ᾱ D_lin)/√(1−ᾱ) and rejects conditions', async () => {
    const alphaBar = 0.3;
    const sigma = Math.sqrt((1 - alphaBar) / alphaBar);
    const xt = Float32Array.from({ length: 2 * d }, () => rng() - 0.5);
    const eps = await den.predict({ dims: [2, 2, 5], data: xt }, { t: 700, alphaBar }, [null, null]);
    for (let r = 0; r < 2; r++) {
      const ref = direct(Float64Array.from(xt.subarray(r * d, (r + 1) * d), (v) => v / Math.sqrt(alphaBar)), sigma);
      for (let j = 0; j < d; j++) {
        const e = (xt[r * d + j]! - Math.sqrt(alphaBar) * ref[j]!) / Math.sqrt(1 - alphaBar);
        expect(Math.abs(eps.data[r * d + j]! - e)).toBeLessThan(2e-5);
      }
    }
    await expect(den.predict({ dims: [1, 2, 5], data: new Float32Array(d) }, { t: 1, alphaBar: 0.5 }, [0])).rejects.toThrow(/out of range/);
  });

  it('rank-deficient data (n < d) gives λ ≥ 0 and D_lin in the data span at σ → 0', async () => {
    const m = 4;
    const Xs = X.slice(0, m * d);
    const c = await gaussianComponent({ dims: [m, d], data: Xs }, { cache: false });
    for (const v of c.values) expect(v).toBeGreaterThanOrEqual(0);
    expect(c.values.filter((v) => v > 1e-10).length).toBe(m - 1);
    // a training point is a fixed point of D_lin as σ → 0 (it lies in μ + span)
    const D = linearDenoise(c, Xs.subarray(0, d), 1e-6);
    for (let j = 0; j < d; j++) expect(Math.abs(D[j]! - Xs[j]!)).toBeLessThan(1e-6);
  });
});
