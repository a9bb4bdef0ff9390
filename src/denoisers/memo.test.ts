import { describe, expect, it } from 'vitest';
import type { CondRef, Denoiser, NoiseLevel } from './denoiser.ts';
import { memoDenoiser } from './memo.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { runSampling } from '../study/sampling.ts';
import { parseGuidance } from '../guidance/spec.ts';
import { stableDiffusionConfig } from '../schedules/config.ts';
import { dpmSolverTimesteps } from '../schedules/timesteps.ts';

/** A closed-form ε-model (x ~ N(μ_c, I) per condition, μ_∅ = 0) that counts the calls it runs. */
function countingGaussian(): Denoiser & { runs: number } {
  const shape = [1, 4, 4];
  const R = 16;
  const mu = (c: CondRef): number => (c === null ? 0 : 0.5 + 0.25 * c);
  const d = {
    name: 'gaussian',
    space: 'pixel' as const,
    shape,
    conditions: [0, 1].map((k) => ({ id: `class:${k}`, kind: 'class' as const, label: `c${k}` })),
    runs: 0,
    async predict(xt: Tensor, level: NoiseLevel, cond: readonly CondRef[]): Promise<Tensor> {
      d.runs++;
      const a = level.alphaBar;
      const out = new Float32Array(xt.data.length);
      // E[ε | x_t] for x ~ N(μ, I): x_t ~ N(√ᾱ μ, I), so ε̂ = √(1−ᾱ)(x_t − √ᾱ μ)
      for (let i = 0; i < out.length; i++) out[i] = Math.sqrt(1 - a) * (xt.data[i]! - Math.sqrt(a) * mu(cond[Math.floor(i / R)]!));
      return { dims: [...xt.dims], data: out };
    },
  };
  return d;
}

const config = stableDiffusionConfig();
const STEPS = 20;
const ts = dpmSolverTimesteps(config, STEPS);
/** CFG from step k (s = 0 before), as the explorer's slider and `memscope sweep` write it. */
const fromStep = (k: number) => parseGuidance(k === 0 ? 'constant:7.5' : `stp:7.5@${ts[k]!}`);
const job = (denoiser: Denoiser, k: number) => runSampling({ denoiser, conds: [1], seeds: [3], sampler: 'dpmpp2m', steps: STEPS, config, guidance: fromStep(k) });

describe('memoDenoiser', () => {
  it('answers a repeated sampling from memory: no model run, the same bits', async () => {
    const base = countingGaussian();
    const memo = memoDenoiser(base);
    const a = await job(memo, 0);
    expect(base.runs).toBe(STEPS);
    const b = await job(memo, 0);
    expect(base.runs).toBe(STEPS);
    expect(memo.stats).toEqual({ calls: 2 * STEPS, hits: STEPS });
    expect(Array.from(b.samples.data)).toEqual(Array.from(a.samples.data));
  });

  it('CFG from step k0, then from step k: the first min(k0, k) + 1 calls are shared, and the sample is the uncached one bit for bit', async () => {
    for (const [k0, k] of [[12, 7], [7, 12], [0, 9]] as const) {
      const base = countingGaussian();
      const memo = memoDenoiser(base);
      await job(memo, k0);
      memo.resetStats();
      const cached = await job(memo, k);
      // steps 0..min(k0, k) see the same x_t: unguided before both starts (s = 0), and the input of the first guided step is still unguided
      expect(memo.stats.hits, `k0 ${k0}, k ${k}`).toBe(Math.min(k0, k) + 1);
      expect(base.runs).toBe(STEPS + STEPS - (Math.min(k0, k) + 1));
      const fresh = await job(countingGaussian(), k);
      expect(Array.from(cached.samples.data)).toEqual(Array.from(fresh.samples.data));
      expect(cached.switchSteps).toEqual(fresh.switchSteps);
    }
  });

  it('forgets the least recently used calls beyond its capacity, and never answers a different input', async () => {
    const base = countingGaussian();
    const memo = memoDenoiser(base, 5);
    const level = { t: 500, alphaBar: 0.5 };
    const x = (v: number): Tensor => ({ dims: [1, 1, 4, 4], data: new Float32Array(16).fill(v) });
    for (let v = 0; v < 6; v++) await memo.predict(x(v), level, [0]);
    expect(base.runs).toBe(6);
    await memo.predict(x(5), level, [0]); // remembered
    await memo.predict(x(0), level, [0]); // forgotten (the oldest of six, capacity 5)
    expect(base.runs).toBe(7);
    // one bit of difference, another level, another condition: all run the model
    const y = x(5);
    y.data[7] = Math.fround(5 + 5 * 2 ** -23);
    await memo.predict(y, level, [0]);
    await memo.predict(x(5), { t: 499, alphaBar: 0.5 }, [0]);
    await memo.predict(x(5), level, [1]);
    expect(base.runs).toBe(10);
    const got = await memo.predict(x(5), level, [0]);
    const want = await countingGaussian().predict(x(5), level, [0]);
    expect(Array.from(got.data)).toEqual(Array.from(want.data));
    expect(() => memoDenoiser(base, 0)).toThrow(/capacity must be a positive integer, got 0/);
  });
});
