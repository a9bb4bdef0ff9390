/**
 * The CFG sampling unit that `evaluate` and `detect` share (issue 15 §2): evaluate's `cfg` row then
 * detect with the same model, prompts, seeds, λ, sampler and steps makes no model call in detect
 * (and the reverse), with the numbers of a fresh store; the shared unit holds an independent
 * sampling run's samples and d_t; a different λ is not shared.
 */
import { describe, it, expect } from 'vitest';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import { runSampling } from '../../src/study/sampling.ts';
import { constant } from '../../src/guidance/schedules.ts';
import { runEvaluation, type EvaluateSettings } from '../../src/study/evaluate.ts';
import { runDetection, type DetectSettings } from '../../src/study/detect.ts';
import { planCfgSamples, type CfgSampleResult, type CfgSampleUnit } from '../../src/study/cfg-sample.ts';
import { parseMethods } from '../../src/mitigate/methods.ts';
import { pixelDescriptor } from '../../src/metrics/descriptor.ts';
import { decodeNpy } from '../../src/io/npy.ts';
import type { Denoiser } from '../../src/denoisers/denoiser.ts';
import { MemoryStore } from '../../src/engine/memory-store.ts';
import { syntheticImages, syntheticSource } from '../helpers/synthetic.ts';
import { useTempCache } from '../helpers/cache.ts';

useTempCache('memscope-cfg-sample-');

const config = stableDiffusionConfig();
const targets = [13, 27];
const prompts = [10, 0, 11, 4];
const seeds = [0, 1, 2];
const steps = 7;
const scale = 3;
const heldOut = syntheticImages(99).trainImages;
const tools = { descriptor: pixelDescriptor(), quality: null, alignment: null, heldOut };
const evaluation: EvaluateSettings = { prompts, seeds, methods: parseMethods('cfg'), lambda: scale, sampler: 'ddim', steps, config, batchSize: 5, threshold: null, calibrationQuantile: 0.9, runSeed: 0 };
const detection: DetectSettings = { prompts, seeds, scale, sampler: 'ddim', steps, config, promptsPerBatch: 3 };

/** The synthetic source with a count of denoiser calls. */
async function counted(): Promise<{ src: Awaited<ReturnType<typeof syntheticSource>>['src']; calls: () => number }> {
  let calls = 0;
  const wrap = (inner: Denoiser): Denoiser => ({ ...inner, predict: (xt, level, cond) => (calls++, inner.predict(xt, level, cond)) });
  const { src } = await syntheticSource(11, targets, wrap);
  return { src, calls: () => calls };
}

const detectorScores = (r: Awaited<ReturnType<typeof runDetection>>): [string, readonly number[], number][] => r.detectors.map((x) => [x.name, x.scores, x.auc]);

describe('the CFG sampling unit shared by evaluate and detect', () => {
  it('evaluate (cfg) then detect with the same settings: detect makes no model call and scores as on a fresh store; the unit holds an independent run', async () => {
    const store = new MemoryStore();
    const { src, calls } = await counted();
    await runEvaluation(src, evaluation, tools, { store });
    // 12 rows in sampler calls of 5 rows: 3 calls of the denoiser per step
    expect(calls()).toBe(3 * steps);
    expect(store.size).toBe(prompts.length);
    const before = calls();
    const shared = await runDetection(src, detection, () => {}, { store });
    expect(calls() - before).toBe(0);
    expect(store.size).toBe(2 * prompts.length); // + one detection unit per prompt
    const fresh = await counted();
    const alone = await runDetection(fresh.src, detection);
    expect(fresh.calls()).toBe(Math.ceil(prompts.length / detection.promptsPerBatch) * steps); // 3 prompts per sampler call: 2 calls per step
    expect(detectorScores(shared)).toEqual(detectorScores(alone));

    // the stored unit: the samples and d_t of an independent sampling run of each prompt
    const units = planCfgSamples({ prompts, seeds, lambda: scale, sampler: 'ddim', steps, config }, src, { spec: src.spec, denoiser: src.denoiser.name });
    for (const [i, p] of prompts.entries()) {
      const run = await runSampling({ denoiser: fresh.src.denoiser, conds: [p], seeds, sampler: 'ddim', steps, config, guidance: constant(scale) });
      const u = (await store.get<CfgSampleUnit, CfgSampleResult>(units[i]!.key))!;
      expect(u.spec.cond).toBe(p);
      expect(u.result.d).toEqual(run.d.map((row) => [...row]));
      expect(u.result.t).toEqual([...run.t]);
      const b = await store.readBlob(u as never, 'samples.npy');
      const x = decodeNpy(Buffer.from(b.buffer, b.byteOffset, b.byteLength), 'samples.npy');
      expect(x.dims).toEqual(run.samples.dims);
      expect(Array.from(x.data)).toEqual(Array.from(run.samples.data));
      // Wen et al.'s first-step score from the same run: mean over seeds of √d_0
      const first = shared.detectors.find((y) => y.name === 'wen-first-step')!.scores[i]!;
      expect(first).toBeCloseTo(run.d[0]!.reduce((a, v) => a + Math.sqrt(v), 0) / seeds.length, 12);
    }
  }, 120_000);

  it('detect then evaluate: evaluate makes no model call and gives the table of a fresh store; another λ is sampled anew', async () => {
    const store = new MemoryStore();
    const { src, calls } = await counted();
    await runDetection(src, detection, () => {}, { store });
    const before = calls();
    expect(before).toBe(2 * steps);
    const shared = await runEvaluation(src, evaluation, tools, { store });
    expect(calls() - before).toBe(0);
    const alone = await runEvaluation((await counted()).src, evaluation, tools);
    expect(Array.from(shared.samples.get('cfg')!.data)).toEqual(Array.from(alone.samples.get('cfg')!.data));
    expect(shared.rows.map((x) => [x.similarity, x.memorizationRate, x.copyRate, x.targetSimilarity])).toEqual(alone.rows.map((x) => [x.similarity, x.memorizationRate, x.copyRate, x.targetSimilarity]));
    // cfg:λ written on the method = --scale λ: the same units; a different λ is not shared
    const again = calls();
    await runEvaluation(src, { ...evaluation, lambda: 7, methods: parseMethods(`cfg:${scale}`) }, tools, { store });
    expect(calls() - again).toBe(0);
    await runDetection(src, { ...detection, scale: scale + 1 }, () => {}, { store });
    expect(calls() - again).toBe(2 * steps);
  }, 120_000);
});
