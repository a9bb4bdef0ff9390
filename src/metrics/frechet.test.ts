import { describe, expect, it } from 'vitest';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { frechetDistance, frechetFromFeatures, gaussianStats, type GaussianStats } from './frechet.ts';
import { mulberry32, normals } from '../../test/helpers/random.ts';
import { cholesky } from '../../test/helpers/linalg.ts';

function stats(mean: readonly number[], cov: readonly number[]): GaussianStats {
  return { mean: Float64Array.from(mean), cov: Float64Array.from(cov) };
}

/** A random SPD d×d matrix W Wᵀ/d + εI from `rng`. */
function randomSpd(rng: () => number, d: number, eps = 0.1): Float64Array {
  const W = normals(rng, d * d);
  const A = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += W[i * d + k]! * W[j * d + k]!;
      A[i * d + j] = s / d + (i === j ? eps : 0);
    }
  }
  return A;
}

/** Independent FD: tr sqrtm(Σa Σb) from the (real) eigenvalues of the non-symmetric product. */
function referenceFd(a: GaussianStats, b: GaussianStats): number {
  const d = a.mean.length;
  const A = Matrix.from1DArray(d, d, Array.from(a.cov));
  const B = Matrix.from1DArray(d, d, Array.from(b.cov));
  const e = new EigenvalueDecomposition(A.mmul(B));
  let trSqrt = 0;
  e.realEigenvalues.forEach((l, i) => {
    expect(Math.abs(e.imaginaryEigenvalues[i]!)).toBeLessThan(1e-9);
    trSqrt += Math.sqrt(Math.max(l, 0));
  });
  let m = 0;
  let tr = 0;
  for (let i = 0; i < d; i++) {
    m += (a.mean[i]! - b.mean[i]!) ** 2;
    tr += a.cov[i * d + i]! + b.cov[i * d + i]!;
  }
  return m + tr - 2 * trSqrt;
}

describe('gaussianStats', () => {
  it('computes the mean and the unbiased covariance', () => {
    // rows (1,2), (3,6), (5,7): mean (3,5); deviations (−2,−3), (0,1), (2,2)
    const s = gaussianStats(Float32Array.from([1, 2, 3, 6, 5, 7]), 3, 2);
    expect(Array.from(s.mean)).toEqual([3, 5]);
    // Σ = [[8, 10], [10, 14]] / 2
    expect(Array.from(s.cov)).toEqual([4, 5, 5, 7]);
  });

  it('rejects bad shapes', () => {
    expect(() => gaussianStats(new Float32Array(3), 1, 3)).toThrow(/n must be an integer ≥ 2/);
    expect(() => gaussianStats(new Float32Array(5), 2, 3)).toThrow(/features must hold n·d = 2·3 = 6 values, got 5/);
    expect(() => gaussianStats(new Float32Array(0), 2, 0)).toThrow(/d must be a positive integer/);
    expect(() => gaussianStats(Float64Array.from([1, NaN, 2, 3]), 2, 2)).toThrow(/non-finite/);
  });
});

describe('frechetDistance', () => {
  it('is 0 for identical Gaussians', () => {
    const rng = mulberry32(3);
    const cov = randomSpd(rng, 8);
    const mean = Float64Array.from(normals(rng, 8));
    expect(frechetDistance({ mean, cov }, { mean, cov })).toBeLessThan(1e-10);
  });

  it('is ‖Δμ‖² + Σ(√a_i − √b_i)² for diagonal covariances', () => {
    const a = [1, 4, 0.25, 9];
    const b = [4, 1, 1, 0];
    const diag = (v: readonly number[]) => v.flatMap((x, i) => v.map((_, j) => (i === j ? x : 0)));
    const ma = [0, 1, 2, 3];
    const mb = [1, 1, 0, 3];
    const want = 1 + 0 + 4 + 0 + a.reduce((s, ai, i) => s + (Math.sqrt(ai) - Math.sqrt(b[i]!)) ** 2, 0);
    expect(frechetDistance(stats(ma, diag(a)), stats(mb, diag(b)))).toBeCloseTo(want, 12);
    expect(frechetDistance(stats(mb, diag(b)), stats(ma, diag(a)))).toBeCloseTo(want, 12);
  });

  it('is (μa − μb)² + (σa − σb)² in 1-D', () => {
    expect(frechetDistance(stats([1], [4]), stats([-2], [9]))).toBeCloseTo(9 + 1, 12);
    expect(frechetDistance(stats([0], [0]), stats([0], [2.25]))).toBeCloseTo(2.25, 12);
  });

  it('matches the 2×2 closed form tr √M = √(tr M + 2√det M) for a non-commuting pair', () => {
    const A = [2, 1, 1, 3];
    const B = [1, -0.5, -0.5, 2];
    // M = A B (not symmetric, A and B do not commute)
    const M = [A[0]! * B[0]! + A[1]! * B[2]!, A[0]! * B[1]! + A[1]! * B[3]!, A[2]! * B[0]! + A[3]! * B[2]!, A[2]! * B[1]! + A[3]! * B[3]!];
    expect(M[1]).not.toBeCloseTo(M[2]!, 3);
    const trM = M[0]! + M[3]!;
    const detM = M[0]! * M[3]! - M[1]! * M[2]!;
    const trSqrt = Math.sqrt(trM + 2 * Math.sqrt(detM));
    const want = (1 - 0) ** 2 + (2 - 1) ** 2 + (2 + 3) + (1 + 2) - 2 * trSqrt;
    const a = stats([1, 2], A);
    const b = stats([0, 1], B);
    expect(frechetDistance(a, b)).toBeCloseTo(want, 12);
    expect(frechetDistance(b, a)).toBeCloseTo(want, 12);
  });

  it('matches an independent non-symmetric eigen computation and is symmetric (d = 12)', () => {
    const rng = mulberry32(17);
    for (let trial = 0; trial < 3; trial++) {
      const d = 12;
      const a = { mean: Float64Array.from(normals(rng, d)), cov: randomSpd(rng, d) };
      const b = { mean: Float64Array.from(normals(rng, d)), cov: randomSpd(rng, d, 0.5) };
      const ref = referenceFd(a, b);
      expect(frechetDistance(a, b)).toBeCloseTo(ref, 9);
      expect(frechetDistance(b, a)).toBeCloseTo(frechetDistance(a, b), 10);
    }
  });

  it('is exact for singular covariances (rotated diagonals with zeros)', () => {
    const rng = mulberry32(5);
    const d = 10;
    // a random orthogonal Q: the eigenvectors of a random SPD matrix
    const Q = new EigenvalueDecomposition(Matrix.from1DArray(d, d, Array.from(randomSpd(rng, d))), { assumeSymmetric: true }).eigenvectorMatrix;
    const rotated = (diag: readonly number[]): Float64Array => {
      const out = Q.mmul(Matrix.diag(Array.from(diag))).mmul(Q.transpose());
      return Float64Array.from(out.to1DArray());
    };
    const a = [3, 0, 0, 1.5, 0, 0, 0, 2, 0, 0]; // rank 3
    const b = [1, 4, 0, 0, 0, 0.5, 0, 2, 0, 1]; // rank 5, shares the zero at index 2, 4, 6, 8
    const want = a.reduce((s, ai, i) => s + (Math.sqrt(ai) - Math.sqrt(b[i]!)) ** 2, 0);
    const sa = { mean: new Float64Array(d), cov: rotated(a) };
    const sb = { mean: new Float64Array(d), cov: rotated(b) };
    expect(frechetDistance(sa, sb)).toBeCloseTo(want, 11);
    expect(frechetDistance(sb, sa)).toBeCloseTo(want, 11);
  });

  it('agrees with the non-symmetric reference when Σa is a rank-deficient sample covariance', () => {
    const rng = mulberry32(6);
    const d = 10;
    const sa = gaussianStats(normals(rng, 4 * d), 4, d); // rank ≤ 3
    const sb = { mean: new Float64Array(d), cov: randomSpd(rng, d) };
    // the reference square-roots ~1e-16 round-off eigenvalues (≈ 1e-8 each), hence the looser bound
    const ref = referenceFd(sb, sa);
    expect(Math.abs(frechetDistance(sa, sb) - ref)).toBeLessThan(1e-6);
    expect(frechetDistance(sb, sa)).toBeCloseTo(frechetDistance(sa, sb), 11);
  });

  it('rejects mismatched inputs', () => {
    expect(() => frechetDistance(stats([0, 0], [1, 0, 0, 1]), stats([0], [1]))).toThrow(/same dimension, got a 2 and b 1/);
    expect(() => frechetDistance(stats([0, 0], [1, 0, 0]), stats([0, 0], [1, 0, 0, 1]))).toThrow(/a\.cov must be 2×2/);
    expect(() => frechetDistance(stats([0, 0], [1, 0, 0, 1]), stats([0, NaN], [1, 0, 0, 1]))).toThrow(/b\.mean\[1\] is NaN/);
    expect(() => frechetDistance(stats([0, 0], [1, 0, 0, Infinity]), stats([0, 0], [1, 0, 0, 1]))).toThrow(/a\.cov\[3\] is Infinity/);
  });

  it('is fast at d = 256', () => {
    const rng = mulberry32(11);
    const d = 256;
    const a = { mean: Float64Array.from(normals(rng, d)), cov: randomSpd(rng, d) };
    const b = { mean: Float64Array.from(normals(rng, d)), cov: randomSpd(rng, d) };
    frechetDistance(a, b); // warm-up (JIT)
    const t0 = performance.now();
    const fd = frechetDistance(a, b);
    const ms = performance.now() - t0;
    expect(Number.isFinite(fd) && fd > 0).toBe(true);
    // < 1 s on an idle machine (≈ 0.2–0.4 s); the bound leaves room for a loaded CI box.
    expect(ms).toBeLessThan(2500);
  }, 30_000);
});

describe('frechetFromFeatures', () => {
  it('approaches the closed form for many draws of known Gaussians', () => {
    const rng = mulberry32(2024);
    const d = 3;
    const covA = [2, 0.6, 0.2, 0.6, 1, -0.3, 0.2, -0.3, 0.5];
    const covB = [1, -0.4, 0, -0.4, 1.5, 0.5, 0, 0.5, 1];
    const muA = [0, 1, -1];
    const muB = [0.5, 0, -1];
    const draw = (mu: readonly number[], cov: readonly number[], n: number): Float32Array => {
      const L = cholesky(Float64Array.from(cov), d);
      const z = normals(rng, n * d);
      const out = new Float32Array(n * d);
      for (let r = 0; r < n; r++) {
        for (let i = 0; i < d; i++) {
          let s = mu[i]!;
          for (let k = 0; k <= i; k++) s += L[i * d + k]! * z[r * d + k]!;
          out[r * d + i] = s;
        }
      }
      return out;
    };
    const exact = frechetDistance(stats(muA, covA), stats(muB, covB));
    expect(exact).toBeCloseTo(referenceFd(stats(muA, covA), stats(muB, covB)), 12);
    const n = 40_000;
    const est = frechetFromFeatures(draw(muA, covA, n), n, draw(muB, covB, n), n, d);
    expect(Math.abs(est - exact)).toBeLessThan(0.03 * exact + 0.01);
    // same distribution twice → close to 0 (bias O(d/n))
    const same = frechetFromFeatures(draw(muA, covA, n), n, draw(muA, covA, n), n, d);
    expect(same).toBeLessThan(0.01);
  });
});
