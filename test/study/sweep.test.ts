/**
 * The CFG-start sweep (Jain et al., SPEC §4.3) on a small synthetic analytic testbed: k = 0 is the
 * standard-CFG sample, k = steps the never-guided one (s = 0, or s = −λ_og with OG) — checked
 * against independent sampling runs with constant schedules — and the transition point is the first
 * start step whose output's similarity to the target falls below the threshold.
 */
import { cosine } from '../helpers/linalg.ts';
import { runCli } from '../helpers/cli.ts';
import { describe, it, expect, vi, afterEach } from 'vitest';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import { runSweep } from '../../src/study/sweep.ts';
import { runSampling } from '../../src/study/sampling.ts';
import { constant } from '../../src/guidance/schedules.ts';
import type { StudySource } from '../../src/study/source.ts';
import { pixelDescriptor } from '../../src/metrics/descriptor.ts';
import { syntheticImages, syntheticSource, SYNTHETIC_D } from '../helpers/synthetic.ts';
import { useTempCache } from '../helpers/cache.ts';

useTempCache('memscope-sweep-');

const d = SYNTHETIC_D;
const { images } = syntheticImages(11);
const source = async (): Promise<StudySource> => (await syntheticSource(11, [13])).src;

const cos = cosine;

describe('runSweep', () => {
  it('has standard CFG at k = 0, the unguided (or OG) sample at k = steps, and the first non-copy as transition', async () => {
    const src = await source();
    const steps = 10;
    const s = { cond: 10, seed: 3, lambda: 2, og: true, ogLambda: 1.5, sampler: 'ddim' as const, steps, config: stableDiffusionConfig(), every: 1, threshold: 0.95 };
    const r = await runSweep(src, s, pixelDescriptor());
    expect(r.timesteps).toHaveLength(steps);
    const [plain, og] = r.variants;
    expect(plain!.rows.map((x) => x.k)).toEqual(Array.from({ length: steps + 1 }, (_, i) => i));
    const target = images.slice(13 * d, 14 * d);
    const job = { denoiser: src.denoiser, conds: [10], seeds: [3], sampler: 'ddim' as const, steps, config: stableDiffusionConfig() };
    const cfgRun = await runSampling({ ...job, guidance: constant(2) });
    const uncond = await runSampling({ ...job, guidance: constant(0) });
    const ogRun = await runSampling({ ...job, guidance: constant(-1.5) });
    expect(plain!.rows[0]!.similarity).toBeCloseTo(cos(cfgRun.samples.data, target), 6);
    expect(plain!.rows[steps]!.similarity).toBeCloseTo(cos(uncond.samples.data, target), 6);
    expect(og!.rows[steps]!.similarity).toBeCloseTo(cos(ogRun.samples.data, target), 6);
    expect(Array.from(plain!.images.data.subarray(steps * d))).toEqual(Array.from(uncond.samples.data));
    for (const v of r.variants) {
      const first = v.rows.find((x) => x.similarity < s.threshold);
      expect(v.transition).toBe(first ? first.k : null);
      for (const x of v.rows) expect(x.copy).toBe(x.similarity >= s.threshold);
    }
    // the memorized caption copies its image under full guidance, the unconditional model does not
    expect(plain!.rows[0]!.copy).toBe(true);
    expect(plain!.rows[0]!.nearestIsTarget).toBe(true);
  }, 120_000);

  it('rejects a prompt without a training image', async () => {
    const src = await source();
    await expect(runSweep(src, { cond: 2, seed: 0, lambda: 2, og: false, ogLambda: 2, sampler: 'ddim', steps: 5, config: stableDiffusionConfig(), every: 1, threshold: 0.9 }, pixelDescriptor())).rejects.toThrow(/--prompt: class:2 .* has no training image/);
  }, 60_000);
});

describe('memscope sweep: bad input', () => {
  afterEach(() => vi.restoreAllMocks());
  it.each([
    [['sweep'], /--prompts: required/],
    [['sweep', '--prompts', 'caption:0', '--every', '0'], /--every/],
    [['sweep', '--prompts', 'caption:0', '--scale', 'lots'], /--scale/],
    [['sweep', '--prompt', 'caption:0'], /--prompt is now --prompts/],
    [['sweep', '--prompts', 'caption:0', '--guidance', '3'], /--guidance is now --scale/],
  ])('%j exits 2 naming the argument', async (argv, re) => {
    const { code, err } = await runCli(argv);
    expect(code).toBe(2);
    expect(err).toMatch(re);
  });
});
