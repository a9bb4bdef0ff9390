import { MemoryStore } from '../../src/engine/memory-store.ts';
import { describe, expect, it } from 'vitest';
import { makeEmpiricalDenoiser } from '../../src/denoisers/empirical.ts';
import { makeGaussianDenoiser } from '../../src/denoisers/gaussian.ts';
import { swapDenoiser } from '../../src/denoisers/swap.ts';
import { parseSchedulerConfig } from '../../src/schedules/config.ts';
import { runSampling } from '../../src/study/sampling.ts';
import { runSwapStudy, samplerSigmas, searchSwapBand } from '../../src/study/swap.ts';
import type { FeatureExtractor } from '../../src/metrics/types.ts';
import type { Tensor } from '../../src/tensor/tensor.ts';
import { syntheticImages, SYNTHETIC_D } from '../helpers/synthetic.ts';

const config = parseSchedulerConfig({ beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012, timestep_spacing: 'leading' });
const { trainImages } = syntheticImages(0);
const heldOut = syntheticImages(1).trainImages;
const seeds = Array.from({ length: 24 }, (_, i) => i);
const settings = { seeds, sampler: 'ddim' as const, steps: 20, config };
/** Quality features = the pixels themselves (so the Fréchet column can be recomputed by hand). */
const pixels: FeatureExtractor = { name: 'pixels', features: async (x: Tensor) => ({ dims: [x.dims[0]!, SYNTHETIC_D], data: x.data }) };
const scoring = { train: trainImages, heldOut, quality: pixels };

/** Brute-force ratio test in float64 over every training image. */
function bruteRate(samples: Tensor, train: Tensor, thr: number): { rate: number; nearest: number[] } {
  const d = SYNTHETIC_D;
  const n = train.dims[0]!;
  const R = samples.dims[0]!;
  let hits = 0;
  const nearest: number[] = [];
  for (let r = 0; r < R; r++) {
    const dist: [number, number][] = [];
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (samples.data[r * d + j]! - train.data[i * d + j]!) ** 2;
      dist.push([s, i]);
    }
    dist.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const ratio = dist[1]![0] > 0 ? Math.sqrt(dist[0]![0] / dist[1]![0]) : 0;
    if (ratio < thr) hits++;
    nearest.push(dist[0]![1]);
  }
  return { rate: hits / R, nearest };
}

describe('samplerSigmas', () => {
  it('equals √((1−ᾱ_t)/ᾱ_t) of the DDIM timesteps from the scaled-linear betas computed here', () => {
    const T = 1000;
    const b0 = Math.sqrt(0.00085);
    const b1 = Math.sqrt(0.012);
    const ab: number[] = [];
    let prod = 1;
    for (let t = 0; t < T; t++) {
      const beta = (b0 + ((b1 - b0) * t) / (T - 1)) ** 2;
      prod *= 1 - beta;
      ab.push(prod);
    }
    // diffusers DDIM 'leading' spacing with 20 steps: t = 950, 900, …, 0 (+ steps_offset 1 in SD configs; default 0 here)
    const sig = samplerSigmas('ddim', config, 20);
    expect(sig.length).toBe(20);
    const ts = Array.from({ length: 20 }, (_, i) => (19 - i) * 50 + config.steps_offset);
    sig.forEach((s, i) => expect(s).toBeCloseTo(Math.sqrt((1 - ab[ts[i]!]!) / ab[ts[i]!]!), 4));
  });
});

describe('runSwapStudy', () => {
  it('scores each variant like an independent sampling run + brute-force ratio test; the swap routes by σ', async () => {
    const mem = await makeEmpiricalDenoiser(trainImages, { name: 'D*' });
    const gen = await makeGaussianDenoiser(trainImages, { name: 'D_lin' });
    const band = { sigmaLo: 0.5, sigmaHi: 3 };
    const swap = swapDenoiser(mem, gen, band, { disposeInner: false, mapCond: () => null });
    const res = await runSwapStudy(
      [
        { name: 'D*', kind: 'memorizing', denoiser: mem },
        { name: 'D_lin', kind: 'generalizing', denoiser: gen },
        { name: 'swap', kind: 'swap', denoiser: swap, band },
      ],
      settings,
      scoring,
    );
    const sig = samplerSigmas('ddim', config, 20);
    const ref: { rate: number; nearest: number[] }[] = [];
    for (const d of [mem, gen, swap]) {
      const r = await runSampling({ denoiser: d, conds: [null], seeds, sampler: 'ddim', steps: 20, config });
      ref.push(bruteRate(r.samples, trainImages, 1 / 3));
    }
    expect(res.rows.map((r) => r.rate)).toEqual(ref.map((r) => r.rate));
    // the exact empirical denoiser copies (DDIM, 20 steps), the Gaussian one does not
    expect(res.rows[0]!.rate).toBeGreaterThan(0.9);
    expect(res.rows[1]!.rate).toBeLessThan(0.1);
    expect(res.rows[0]!.sameNearest).toBeNull();
    expect(res.rows[2]!.sameNearest).toBeCloseTo(ref[2]!.nearest.filter((k, i) => k === ref[0]!.nearest[i]).length / seeds.length, 12);
    // calls routed to D_lin: the steps whose σ lies in the band (one call per step, one batch)
    expect(res.rows[2]!.swappedCalls).toBeCloseTo(sig.filter((s) => s >= band.sigmaLo && s <= band.sigmaHi).length / sig.length, 12);
    expect(res.rows[0]!.swappedCalls).toBeNull();
    expect(res.frechetFloor).not.toBeNull();
    expect(res.rows.every((r) => r.frechet !== null && r.frechet >= 0)).toBe(true);
    await mem.dispose();
    await gen.dispose();
  });

  it('a killed study resumes from the rows in its store without resampling them', async () => {
    const store = new MemoryStore();
    const mem = await makeEmpiricalDenoiser(trainImages, { name: 'D*' });
    let calls = 0;
    const counting = { ...mem, name: 'D*', shape: mem.shape, space: mem.space, conditions: mem.conditions, predict: (...a: Parameters<typeof mem.predict>) => (calls++, mem.predict(...a)) };
    const failing = { ...counting, name: 'boom', predict: async () => Promise.reject(new Error('killed')) };
    await expect(runSwapStudy([{ name: 'D*', kind: 'memorizing', denoiser: counting }, { name: 'boom', kind: 'generalizing', denoiser: failing }], settings, scoring, { store })).rejects.toThrow('killed');
    const first = calls;
    expect(first).toBeGreaterThan(0);
    const res = await runSwapStudy([{ name: 'D*', kind: 'memorizing', denoiser: counting }], settings, scoring, { store });
    expect(calls).toBe(first);
    expect(res.rows[0]!.rate).toBeGreaterThan(0.9);
    await mem.dispose();
  });

  it('rejects empty, duplicate or single-seed settings naming the argument', async () => {
    const mem = await makeEmpiricalDenoiser(trainImages);
    await expect(runSwapStudy([], settings, scoring)).rejects.toThrow(/variants is empty/);
    await expect(runSwapStudy([{ name: 'a', kind: 'memorizing', denoiser: mem }, { name: 'a', kind: 'swap', denoiser: mem }], settings, scoring)).rejects.toThrow(/duplicate variant name 'a'/);
    await expect(runSwapStudy([{ name: 'a', kind: 'memorizing', denoiser: mem }], { ...settings, seeds: [0] }, scoring)).rejects.toThrow(/seeds: need at least 2/);
    await mem.dispose();
  });
});

describe('searchSwapBand', () => {
  it('returns the narrowest band reaching the target, and every narrower band misses it', async () => {
    const mem = await makeEmpiricalDenoiser(trainImages, { name: 'D*' });
    const gen = await makeGaussianDenoiser(trainImages, { name: 'D_lin' });
    const small = { ...settings, seeds: seeds.slice(0, 12), steps: 10 };
    const target = 0.25;
    const r = await searchSwapBand(mem, gen, small, { train: trainImages, heldOut, quality: null }, { target, nEdges: 5 });
    expect(r.baseRate).toBeGreaterThan(target);
    expect(r.best).not.toBeNull();
    expect(r.best!.rate).toBeLessThanOrEqual(target);
    const w = (b: { sigmaLo: number; sigmaHi: number }): number => Math.log(b.sigmaHi / b.sigmaLo);
    for (const t of r.trials) if (w(t.band) < w(r.best!.band) - 1e-9) expect(t.rate).toBeGreaterThan(target);
    // the best band's rate equals an independent run of that swap
    const swap = swapDenoiser(mem, gen, r.best!.band, { disposeInner: false, mapCond: () => null });
    const s = await runSampling({ denoiser: swap, conds: [null], seeds: small.seeds, sampler: 'ddim', steps: 10, config });
    expect(bruteRate(s.samples, trainImages, 1 / 3).rate).toBe(r.best!.rate);
    await expect(searchSwapBand(mem, gen, small, scoring, { target: 1.5 })).rejects.toThrow(/target must be a rate in \[0, 1\]/);
    // a target the model already meets: no band is tried
    const none = await searchSwapBand(gen, mem, small, { train: trainImages, heldOut, quality: null }, { target: 0.5, nEdges: 5 });
    expect(none.baseRate).toBeLessThanOrEqual(0.5);
    expect(none.trials).toEqual([]);
    expect(none.best).toBeNull();
    await mem.dispose();
    await gen.dispose();
  });
});
