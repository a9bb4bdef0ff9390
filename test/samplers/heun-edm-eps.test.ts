/**
 * `heun-edm` as a sampler of ε-models (issue 16 §2): against the D-form sampler `sampleHeunEdm`
 * (a reference computed another way), the one-training-point closed form through the empirical
 * denoiser, guidance that keeps one d_t per step, and the refusal of grid-only denoisers.
 */
import { describe, it, expect } from 'vitest';
import { edmSigmas, guidedHeunModel, heunEdmTimesteps, sampleHeunEdm, sampleHeunEdmEps, sigmaTimesteps, type SigmaDenoiser } from '../../src/samplers/heun-edm.ts';
import { SAMPLERS, parseSamplerName, samplerTimesteps } from '../../src/samplers/index.ts';
import type { StepEvent } from '../../src/samplers/types.ts';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import { configAlphaBars } from '../../src/schedules/timesteps.ts';
import { resolveDdimConfig } from '../../src/schedules/config.ts';
import { cfg, unguided } from '../../src/guidance/cfg.ts';
import { constant, dtp } from '../../src/guidance/schedules.ts';
import { makeEmpiricalDenoiser } from '../../src/denoisers/empirical.ts';
import type { Denoiser } from '../../src/denoisers/denoiser.ts';
import { runSampling, checkSamplerFor } from '../../src/study/sampling.ts';
import { TorchGenerator } from '../../src/random/torch.ts';

const config = stableDiffusionConfig();

/** A σ-denoiser with two "conditions": D(x; σ) = k·x/(1 + σ) + (1 − k)·sin(j)·σ/(1 + σ²) with k = 0.4 + 0.2c for condition c, 0.3 for ∅. */
const toy: SigmaDenoiser & { eval(x: number, j: number, sigma: number, c: number | null): number } = {
  eval(x, j, sigma, c) {
    const k = c === null ? 0.3 : 0.4 + 0.2 * c;
    return (k * x) / (1 + sigma) + (1 - k) * Math.sin(j) * (sigma / (1 + sigma * sigma));
  },
  async denoise(x, sigma, cond) {
    const per = x.data.length / cond.length;
    return { dims: [...x.dims], data: Float32Array.from(x.data, (v, i) => this.eval(v, i % per, sigma[Math.floor(i / per)]!, cond[Math.floor(i / per)] ?? null)) };
  },
};
/** The same model as a Denoiser (ε from VP x_t at the σ the sampler sets). */
const toyDenoiser: Denoiser = {
  name: 'toy',
  space: 'pixel',
  shape: [6],
  conditions: [{ id: 'c0', kind: 'class', label: 'a' }, { id: 'c1', kind: 'class', label: 'b' }],
  sigmaRange: [0, Infinity],
  async predict(xt, level, cond) {
    const sigma = level.sigma ?? Math.sqrt((1 - level.alphaBar) / level.alphaBar);
    const k = Math.sqrt(1 + sigma * sigma);
    const per = 6;
    return { dims: [...xt.dims], data: Float32Array.from(xt.data, (v, i) => (v * k - toy.eval(v * k, i % per, sigma, cond[Math.floor(i / per)] ?? null)) / sigma) };
  },
};

function noiseOf(B: number, seed: number): { dims: number[]; data: Float32Array } {
  const g = new TorchGenerator(seed);
  return { dims: [B, 6], data: g.randn([B, 6]) };
}

describe('sampleHeunEdmEps (the heun-edm sampler)', () => {
  it('equals the D-form sampler on the same model, unguided and under CFG, step events included', async () => {
    const noise = noiseOf(2, 3);
    for (const scale of [1, 3]) {
      const evA: StepEvent[] = [];
      const evB: StepEvent[] = [];
      const model = scale === 1 ? unguided(toyDenoiser, [0, 1]) : cfg(toyDenoiser, constant(scale), [0, 1]).model;
      const a = await sampleHeunEdmEps(model, noise, config, { steps: 18, onStep: (e) => void evA.push(e) });
      const b = await sampleHeunEdm(guidedHeunModel(toy, [0, 1], scale), noise, { steps: 18, onStep: (e) => void evB.push(e) });
      for (let j = 0; j < 12; j++) expect(a.data[j]).toBeCloseTo(b.data[j]!, 4);
      expect(evA).toHaveLength(18);
      for (let i = 0; i < 18; i++) {
        expect(evA[i]!.alphaBar).toBeCloseTo(evB[i]!.alphaBar, 12);
        for (let j = 0; j < 12; j++) {
          expect(evA[i]!.xt.data[j]).toBeCloseTo(evB[i]!.xt.data[j]!, 4);
          expect(evA[i]!.xHat0.data[j]).toBeCloseTo(evB[i]!.xHat0.data[j]!, 4);
          expect(evA[i]!.xPrev.data[j]).toBeCloseTo(evB[i]!.xPrev.data[j]!, 4);
        }
        if (scale !== 1) {
          // d_t from ε in both: ‖ε_c − ε_u‖² = ‖D_c − D_u‖²/σ²
          for (let r = 0; r < 2; r++) expect(evA[i]!.d![r]! / evB[i]!.d![r]!).toBeCloseTo(1, 3); // a difference of float32 ε at σ up to 80
        }
      }
    }
  });

  it('one training point through the empirical denoiser (D* ≡ x0): the sample is x0', async () => {
    const x0 = Float32Array.from({ length: 6 }, (_, j) => Math.cos(j) * 0.7);
    const d = await makeEmpiricalDenoiser({ dims: [1, 6], data: x0 });
    try {
      const out = await sampleHeunEdmEps(unguided(d, [null, null]), noiseOf(2, 11), config, { steps: 18 });
      for (let j = 0; j < 12; j++) expect(out.data[j]).toBeCloseTo(x0[j % 6]!, 4);
    } finally {
      await d.dispose?.();
    }
  });

  it('calls the model 2N − 1 times with σ set, and guidance records one d_t and one scale per step (DTP switches on steps)', async () => {
    const seen: { sigma: number | undefined; evaluation: number | undefined; t: number }[] = [];
    const spy: Denoiser = { ...toyDenoiser, predict: (xt, level, cond) => (seen.push({ sigma: level.sigma, evaluation: undefined, t: level.t }), toyDenoiser.predict(xt, level, cond)) };
    const g = cfg(spy, dtp(7.5), [0, 1]);
    const events: StepEvent[] = [];
    await sampleHeunEdmEps(g.model, noiseOf(2, 5), config, { steps: 18, onStep: (e) => void events.push(e) });
    expect(seen).toHaveLength(35);
    const sig = edmSigmas(18);
    expect(seen.map((c) => c.sigma)).toEqual([...Array.from({ length: 17 }, (_, i) => [sig[i]!, sig[i + 1]!]).flat(), sig[17]!]);
    // the scale of every step's correction equals its first evaluation's: s per event is the step's
    const s = events.map((e) => e.s![0]!);
    expect(s.every((v) => v === 0 || v === 7.5)).toBe(true);
    const sw = g.switchSteps()[0];
    if (sw !== null && sw !== undefined) expect(s.slice(sw).every((v) => v === 7.5) && s.slice(0, sw).every((v) => v === 0)).toBe(true);
  });

  it('t labels: the schedule timestep of σ (log-σ interpolation), clamped to T − 1 above the VP table', () => {
    const ab = configAlphaBars(resolveDdimConfig(config));
    const sigT = (t: number): number => Math.sqrt((1 - ab[t]!) / ab[t]!);
    expect(sigmaTimesteps(config, [sigT(500)])[0]).toBeCloseTo(500, 9);
    expect(sigmaTimesteps(config, [Math.sqrt(sigT(200) * sigT(201))])[0]).toBeCloseTo(200.5, 2);
    expect(sigmaTimesteps(config, [80, 15, 1e-6])).toEqual([999, 999, 0]);
    const labels = heunEdmTimesteps(config, 18);
    expect(labels).toHaveLength(18);
    expect(samplerTimesteps('heun-edm', config, 18)).toEqual(labels);
    for (let i = 1; i < 18; i++) expect(labels[i]!).toBeLessThanOrEqual(labels[i - 1]!);
    expect(SAMPLERS['heun-edm']).toBe(sampleHeunEdmEps);
    expect(parseSamplerName('EDM-Heun')).toBe('heun-edm');
    expect(parseSamplerName('heun')).toBeNull(); // diffusers' HeunDiscreteScheduler is a different sampler
  });

  it('refuses a denoiser defined on the grid only, before sampling, naming the flag', async () => {
    const grid: Denoiser = { ...toyDenoiser, name: 'grid-only' };
    delete (grid as { sigmaRange?: unknown }).sigmaRange;
    expect(() => checkSamplerFor('heun-edm', grid)).toThrow(/--sampler heun-edm: grid-only is defined on its schedule's timesteps only/);
    expect(() => checkSamplerFor('heun-edm', { name: 'narrow', sigmaRange: [0.01, 14.6] })).toThrow(/defined for σ in \[0.01, 14.6\] only/);
    expect(() => checkSamplerFor('dpmpp2m', grid)).not.toThrow();
    await expect(runSampling({ denoiser: grid, conds: [0], seeds: [0], sampler: 'heun-edm', steps: 18, config })).rejects.toThrow(/--sampler heun-edm/);
    const ok = await runSampling({ denoiser: toyDenoiser, conds: [0, 1], seeds: [0, 1], sampler: 'heun-edm', steps: 18, config, guidance: constant(2) });
    expect(ok.t).toEqual(heunEdmTimesteps(config, 18));
    expect(ok.s).toHaveLength(18);
  });
});
