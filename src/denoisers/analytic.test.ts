/**
 * The analytic testbed (SPEC §6): class prompts = class Gaussians, captions = the empirical
 * denoiser of one image (memorizes: x̂0_c = x exactly), null = the class mixture — checked on a
 * mixed batch against float64 references (class mean/covariance computed directly, Cholesky).
 */
import { describe, expect, it } from 'vitest';
import { makeAnalyticTestbed } from './analytic.ts';
import type { CondRef } from './denoiser.ts';
import { epsToX0 } from './parameterization.ts';
import { mulberry32 } from '../../test/helpers/random.ts';
import { cholesky, cholSolve } from '../../test/helpers/linalg.ts';
import { useTempCache } from '../../test/helpers/cache.ts';


const rng = mulberry32(2024);
const classNames = ['T-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot'];
const K = 10;
const perClass = 24;
const n = K * perClass;
const shape = [1, 4, 4];
const d = 16;
const images = new Float32Array(n * d);
const labels: number[] = [];
const protos = Array.from({ length: K }, () => Float32Array.from({ length: d }, () => rng() * 1.6 - 0.8));
for (let i = 0; i < n; i++) {
  const k = i % K;
  labels.push(k);
  for (let j = 0; j < d; j++) images[i * d + j] = Math.max(-1, Math.min(1, protos[k]![j]! + 0.25 * (rng() - 0.5)));
}
// float64 class statistics, computed directly
const stats = Array.from({ length: K }, (_, k) => {
  const idx = labels.flatMap((l, i) => (l === k ? [i] : []));
  const mu = new Float64Array(d);
  for (const i of idx) for (let j = 0; j < d; j++) mu[j]! += images[i * d + j]! / idx.length;
  const cov = new Float64Array(d * d);
  for (const i of idx) for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) cov[a * d + b]! += ((images[i * d + a]! - mu[a]!) * (images[i * d + b]! - mu[b]!)) / idx.length;
  return { pi: idx.length / n, mu, cov };
});
function refMixture(y: Float64Array, sigma: number, only: number | null): Float64Array {
  const logp: number[] = [];
  const Dk: Float64Array[] = [];
  for (const c of stats) {
    const A = Float64Array.from(c.cov);
    for (let j = 0; j < d; j++) A[j * d + j]! += sigma * sigma;
    const L = cholesky(A, d);
    const yc = Float64Array.from(y, (v, j) => v - c.mu[j]!);
    const s = cholSolve(L, yc, d);
    let maha = 0;
    let logdet = 0;
    for (let j = 0; j < d; j++) {
      maha += yc[j]! * s[j]!;
      logdet += 2 * Math.log(L[j * d + j]!);
    }
    logp.push(Math.log(c.pi) - 0.5 * (maha + logdet));
    const D = Float64Array.from(c.mu);
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) D[a]! += c.cov[a * d + b]! * s[b]!;
    Dk.push(D);
  }
  const m = Math.max(...logp.filter((_, k) => only === null || k === only));
  const e = logp.map((v, k) => (only === null || k === only ? Math.exp(v - m) : 0));
  const Z = e.reduce((a, b) => a + b, 0);
  const D = new Float64Array(d);
  e.forEach((w, k) => {
    for (let j = 0; j < d; j++) D[j]! += (w / Z) * Dk[k]![j]!;
  });
  return D;
}

useTempCache('memscope-analytic-');

describe('analytic testbed (SPEC §6)', async () => {
  const captions = [
    { text: 'the famous red coat photo', index: 14 },
    { text: 'a memorized sneaker ad', index: 97 },
  ];
  const tb = await makeAnalyticTestbed({ images: { dims: [n, ...shape], data: images }, labels, classNames, captions });

  it('declares 10 class prompts then the captions, with the caption targets', () => {
    expect(tb.conditions).toHaveLength(12);
    expect(tb.conditions[0]).toEqual({ id: 'class:0', kind: 'class', label: 'an image of a T-shirt' });
    expect(tb.conditions[9]!.label).toBe('an image of a ankle boot');
    expect(tb.conditions[10]).toEqual({ id: 'caption:0', kind: 'caption', label: 'the famous red coat photo', targets: [14] });
    expect(tb.conditions[11]!.targets).toEqual([97]);
    expect(tb.shape).toEqual(shape);
  });

  it('a mixed batch (null, classes, captions) matches the float64 references', async () => {
    const cond: CondRef[] = [null, 3, 10, 7, null, 11, 0];
    const B = cond.length;
    for (const alphaBar of [0.9, 0.3, 0.02]) {
      const sigma = Math.sqrt((1 - alphaBar) / alphaBar);
      const xt = new Float32Array(B * d);
      for (let r = 0; r < B; r++) {
        const src = images.subarray(((r * 31) % n) * d, (((r * 31) % n) + 1) * d);
        for (let j = 0; j < d; j++) xt[r * d + j] = Math.sqrt(alphaBar) * src[j]! + Math.sqrt(1 - alphaBar) * (2 * rng() - 1);
      }
      const eps = await tb.predict({ dims: [B, ...shape], data: xt }, { t: 500, alphaBar }, cond);
      for (let r = 0; r < B; r++) {
        const c = cond[r]!;
        const y = Float64Array.from(xt.subarray(r * d, (r + 1) * d), (v) => v / Math.sqrt(alphaBar));
        const D = c !== null && c >= 10 ? Float64Array.from(images.subarray(captions[c - 10]!.index * d, (captions[c - 10]!.index + 1) * d)) : refMixture(y, sigma, c);
        for (let j = 0; j < d; j++) {
          const e = (xt[r * d + j]! - Math.sqrt(alphaBar) * D[j]!) / Math.sqrt(1 - alphaBar);
          // float32 graph: |ΔD| ≲ 1e-5, amplified by √ᾱ/√(1−ᾱ) in ε
          expect(Math.abs(eps.data[r * d + j]! - e), `ᾱ=${alphaBar} row ${r}`).toBeLessThan(1e-5 * (1 + Math.sqrt(alphaBar / (1 - alphaBar))));
        }
      }
    }
  });

  it('a memorized caption reproduces its image: x̂0_c(T) = x and, with CFG, x̂0 = x̂0_u + s(x − x̂0_u) (SPEC §3.2)', async () => {
    const alphaBar = 0.0047; // ᾱ at t = 999 of the SD scaled_linear schedule
    const x = images.subarray(97 * d, 98 * d);
    const xT = Float32Array.from({ length: d }, () => 2 * rng() - 1);
    const xt = { dims: [1, ...shape], data: xT };
    const epsC = await tb.predict(xt, { t: 999, alphaBar }, [11]);
    const epsU = await tb.predict(xt, { t: 999, alphaBar }, [null]);
    const x0c = epsToX0(xt, epsC, alphaBar);
    const x0u = epsToX0(xt, epsU, alphaBar);
    for (let j = 0; j < d; j++) expect(Math.abs(x0c.data[j]! - x[j]!)).toBeLessThan(1e-5);
    const s = 7.5;
    const guided = epsU.data.map((u, j) => u + s * (epsC.data[j]! - u));
    const x0 = epsToX0(xt, { dims: xt.dims, data: guided }, alphaBar);
    for (let j = 0; j < d; j++) expect(Math.abs(x0.data[j]! - (x0u.data[j]! + s * (x[j]! - x0u.data[j]!)))).toBeLessThan(1e-4);
  });

  it('evaluates classes and null in one onnxruntime call and captions without one', async () => {
    const y = { dims: [3, ...shape], data: Float32Array.from({ length: 3 * d }, () => rng()) };
    const a = await tb.denoise(y, 0.5, [null, 2, 10]);
    const b = await tb.mixture.denoise({ dims: [2, ...shape], data: y.data.slice(0, 2 * d) }, 0.5, [null, 2]);
    expect(Array.from(a.data.subarray(0, 2 * d))).toEqual(Array.from(b.data));
    expect(Array.from(a.data.subarray(2 * d))).toEqual(Array.from(images.subarray(14 * d, 15 * d)));
  });

  it('rejects bad labels and caption indices', async () => {
    await expect(makeAnalyticTestbed({ images: { dims: [n, ...shape], data: images }, labels: labels.map((l) => (l === 3 ? 10 : l)), classNames, captions })).rejects.toThrow(/label 10 of image 3/);
    await expect(makeAnalyticTestbed({ images: { dims: [n, ...shape], data: images }, labels, classNames, captions: [{ text: 'x', index: n }] })).rejects.toThrow(/caption 0 \('x'\) has image index 240 outside/);
  });
});
