/**
 * Gaussian-mixture denoiser (SPEC §2.2) against an independent float64 reference that uses the
 * full covariances (Cholesky log-densities and linear solves), not the eigendecompositions.
 */
import { describe, expect, it } from 'vitest';
import { type MixtureComponent, makeMixtureDenoiser } from './mixture.ts';
import { makeGaussianDenoiser } from './gaussian.ts';
import { eigh } from '../linalg/eigh.ts';
import type { CondRef } from './denoiser.ts';
import { mulberry32 } from '../../test/helpers/random.ts';
import { cholesky, cholSolve } from '../../test/helpers/linalg.ts';
import { useTempCache } from '../../test/helpers/cache.ts';


interface RefComp {
  pi: number;
  mu: Float64Array;
  cov: Float64Array;
}

/** Reference r_k(y) and D(y;σ) in float64 with full matrices. */
function reference(comps: readonly RefComp[], y: Float64Array, sigma: number, d: number, only: number | null) {
  const logp: number[] = [];
  const Dk: Float64Array[] = [];
  for (const c of comps) {
    const A = Float64Array.from(c.cov);
    for (let j = 0; j < d; j++) A[j * d + j]! += sigma * sigma;
    const L = cholesky(A, d);
    const yc = Float64Array.from(y, (v, j) => v - c.mu[j]!);
    const s = cholSolve(L, yc, d);
    let maha = 0;
    for (let j = 0; j < d; j++) maha += yc[j]! * s[j]!;
    let logdet = 0;
    for (let j = 0; j < d; j++) logdet += 2 * Math.log(L[j * d + j]!);
    logp.push(Math.log(c.pi) - 0.5 * maha - 0.5 * logdet);
    const D = Float64Array.from(c.mu);
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) D[a]! += c.cov[a * d + b]! * s[b]!;
    Dk.push(D);
  }
  const m = Math.max(...logp.filter((_, k) => only === null || k === only));
  const e = logp.map((v, k) => (only === null || k === only ? Math.exp(v - m) : 0));
  const Z = e.reduce((a, b) => a + b, 0);
  const r = e.map((v) => v / Z);
  const D = new Float64Array(d);
  r.forEach((rk, k) => {
    for (let j = 0; j < d; j++) D[j]! += rk * Dk[k]![j]!;
  });
  return { r, D };
}

const rng = mulberry32(9);
const d = 8;
const K = 3;
const refComps: RefComp[] = [];
const comps: MixtureComponent[] = [];
for (let k = 0; k < K; k++) {
  const G = Array.from({ length: d * d }, () => rng() - 0.5);
  const cov = new Float64Array(d * d);
  for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) for (let q = 0; q < d; q++) cov[a * d + b]! += 0.3 * G[a * d + q]! * G[b * d + q]!;
  // one near-null direction per component, like constant border pixels of images
  for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) if (a === k || b === k) cov[a * d + b] = a === b ? 1e-9 : 0;
  const mu = Float64Array.from({ length: d }, () => 2 * (rng() - 0.5));
  const pi = [0.5, 0.3, 0.2][k]!;
  refComps.push({ pi, mu, cov });
  const e = eigh(cov, d);
  comps.push({ d, mean: mu, values: e.values.map((v) => Math.max(0, v)), vectorsT: e.vectorsT, weight: pi * 10 });
}

useTempCache('memscope-gmm-');

describe('Gaussian-mixture denoiser (SPEC §2.2)', async () => {
  const den = await makeMixtureDenoiser(comps, {
    shape: [2, 4],
    conditions: [0, 1, 2].map((k) => ({ id: `class:${k}`, kind: 'class' as const, label: `c${k}`, component: k })),
  });

  it('responsibilities and D match the full-covariance float64 reference (r: 1e-5, D: 1e-5 relative) for a mixed batch', async () => {
    const cond: CondRef[] = [null, null, 0, 1, 2, null];
    for (const sigma of [0.05, 0.3, 1, 4]) {
      const B = cond.length;
      const y = new Float32Array(B * d);
      // rows near different component means, and one in between
      for (let r = 0; r < B; r++) {
        const c = refComps[r % K]!;
        for (let j = 0; j < d; j++) y[r * d + j] = c.mu[j]! + (r === 5 ? refComps[1]!.mu[j]! - c.mu[j]! : 0) * 0.5 + sigma * 0.5 * (rng() - 0.5);
      }
      const p = await den.posterior({ dims: [B, 2, 4], data: y }, sigma, cond);
      for (let r = 0; r < B; r++) {
        const ref = reference(refComps, Float64Array.from(y.subarray(r * d, (r + 1) * d)), sigma, d, cond[r]!);
        const scale = Math.max(1, ...ref.D.map(Math.abs));
        for (let k = 0; k < K; k++) expect(Math.abs(p.responsibilities[r * K + k]! - ref.r[k]!), `σ=${sigma} row ${r} r_${k}`).toBeLessThan(1e-5);
        for (let j = 0; j < d; j++) expect(Math.abs(p.denoised.data[r * d + j]! - ref.D[j]!) / scale, `σ=${sigma} row ${r}`).toBeLessThan(1e-5);
      }
    }
  });

  it('a class condition equals that component’s linear Gaussian denoiser', async () => {
    const g = await makeGaussianDenoiser(comps[1]!, { shape: [2, 4] });
    const y = { dims: [3, 2, 4], data: Float32Array.from({ length: 3 * d }, () => rng() * 2 - 1) };
    const a = await den.denoise(y, 0.7, [1, 1, 1]);
    const b = await g.denoise(y, 0.7);
    for (let i = 0; i < a.data.length; i++) expect(Math.abs(a.data[i]! - b.data[i]!)).toBeLessThan(1e-5);
  });

  it('predict gives ε from D and fits components from labelled data', async () => {
    const alphaBar = 0.6;
    const xt = Float32Array.from({ length: 2 * d }, () => rng() - 0.5);
    const eps = await den.predict({ dims: [2, 2, 4], data: xt }, { t: 300, alphaBar }, [null, 2]);
    const sigma = Math.sqrt((1 - alphaBar) / alphaBar);
    for (let r = 0; r < 2; r++) {
      const ref = reference(refComps, Float64Array.from(xt.subarray(r * d, (r + 1) * d), (v) => v / Math.sqrt(alphaBar)), sigma, d, r === 0 ? null : 2);
      for (let j = 0; j < d; j++) expect(Math.abs(eps.data[r * d + j]! - (xt[r * d + j]! - Math.sqrt(alphaBar) * ref.D[j]!) / Math.sqrt(1 - alphaBar))).toBeLessThan(2e-5);
    }
    // fitted from data: 2 labels, weights = frequencies
    const n = 30;
    const X = Float32Array.from({ length: n * 3 }, () => rng());
    const labels = Array.from({ length: n }, (_, i) => (i < 10 ? 0 : 1));
    const fitted = await makeMixtureDenoiser({ X: { dims: [n, 3], data: X }, labels, K: 2 });
    expect(fitted.components.map((c) => c.weight)).toEqual([10 / 30, 20 / 30]);
    expect(fitted.shape).toEqual([3]);
    await expect(makeMixtureDenoiser({ X: { dims: [n, 3], data: X }, labels, K: 3 })).rejects.toThrow(/label 2 has 0 rows/);
  });
});
