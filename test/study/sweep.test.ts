/**
 * The CFG-start sweep (Jain et al., SPEC §4.3) on a small synthetic analytic testbed: k = 0 is the
 * standard-CFG sample, k = steps the never-guided one (s = 0, or s = −λ_og with OG) — checked
 * against independent sampling runs with constant schedules — and the transition point is the first
 * start step whose output's similarity to the target falls below the threshold. As an engine study:
 * one unit per sample, a rerun on the same store makes no model call and gives the same sweep.
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
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sweepStudy, sweepSpecOf, type SweepSource } from '../../src/study/sweep.ts';
import { InProcessRunner } from '../../src/engine/runner.ts';
import { MemoryStore } from '../../src/engine/memory-store.ts';

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

describe('sweep study', () => {
  it('plans one keyed unit per (variant, k); a rerun on the same store makes no model call and gives the same sweep', async () => {
    const src = await source();
    let calls = 0;
    const counted: StudySource = { ...src, denoiser: { ...src.denoiser, predict: (...a) => (calls++, src.denoiser.predict(...a)) } };
    const s = { cond: 10, seed: 1, lambda: 2, og: true, ogLambda: 1.5, sampler: 'ddim' as const, steps: 6, config: stableDiffusionConfig(), every: 2, threshold: 0.95 };
    const units = await sweepStudy.plan(sweepSpecOf(s), { src: counted, config: s.config } satisfies SweepSource);
    expect(units.map((u) => [u.spec.variant, u.spec.k])).toEqual([0, 1].flatMap((v) => [0, 2, 4, 6].map((k) => [v, k])));
    expect(new Set(units.map((u) => u.key)).size).toBe(8);
    const store = new MemoryStore();
    const a = await runSweep(counted, s, pixelDescriptor(), () => {}, store);
    expect(calls).toBeGreaterThan(0);
    const direct = await runSweep(src, s, pixelDescriptor());
    expect(a.variants.map((v) => v.rows)).toEqual(direct.variants.map((v) => v.rows));
    calls = 0;
    const again = await new InProcessRunner().run(sweepStudy, units, { src: counted, config: s.config }, store);
    expect([again.computed, again.reused, calls]).toEqual([0, 8, 0]);
    const b = await runSweep(counted, s, pixelDescriptor(), () => {}, store);
    expect(calls).toBe(0);
    expect(b.variants.map((v) => [v.rows, v.transition, Array.from(v.images.data)])).toEqual(a.variants.map((v) => [v.rows, v.transition, Array.from(v.images.data)]));
  }, 120_000);
});

describe('memscope sweep', () => {
  it('writes run.json with the unit keys; a rerun reuses every unit', async () => {
    const root = await mkdtemp(join(tmpdir(), 'memscope-sweep-cli-'));
    try {
      const args = ['sweep', '--model', 'testbed', '--prompts', 'caption:0', '--steps', '4', '--every', '2', '--descriptor', 'pixel', '--store', join(root, 'store')];
      const r1 = await runCli([...args, '--out', join(root, 'a')]);
      expect(r1.code, r1.err).toBe(0);
      const run1 = JSON.parse(await readFile(join(root, 'a', 'run.json'), 'utf8'));
      expect(run1.units).toHaveLength(3);
      expect([run1.computed, run1.reused]).toEqual([3, 0]);
      const r2 = await runCli([...args, '--out', join(root, 'b')]);
      expect(r2.code, r2.err).toBe(0);
      const run2 = JSON.parse(await readFile(join(root, 'b', 'run.json'), 'utf8'));
      expect([run2.computed, run2.reused]).toEqual([0, 3]);
      const s1 = JSON.parse(await readFile(join(root, 'a', 'sweep.json'), 'utf8'));
      const s2 = JSON.parse(await readFile(join(root, 'b', 'sweep.json'), 'utf8'));
      expect(s2.variants).toEqual(s1.variants);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }, 120_000);
});
