/**
 * Detect-then-mitigate (issue 20 §4): the gate's first-step score equals Wen et al.'s first-step
 * score of a full CFG run (analysis/wen.ts over the run's d_t: computed another way); the threshold
 * is numpy's quantile of the calibration scores; a gated row's samples are, prompt by prompt, the
 * inner method's samples where the gate flagged the prompt and plain CFG's where it did not (read
 * from the cfg row's shared units when the store has them, sampled otherwise: the same numbers); the
 * method grammar and the CLI refuse what cannot be gated or calibrated (exit 2).
 */
import { describe, expect, it } from 'vitest';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import { runSampling } from '../../src/study/sampling.ts';
import { constant } from '../../src/guidance/schedules.ts';
import { wenScores } from '../../src/analysis/wen.ts';
import { calibrateGate, firstStepScores } from '../../src/study/gate.ts';
import { runEvaluation, type EvaluateSettings } from '../../src/study/evaluate.ts';
import { parseMethod, parseMethods, withGateThreshold, isGatedMethod, innerMethod, methodRequires } from '../../src/mitigate/methods.ts';
import { pixelDescriptor } from '../../src/metrics/descriptor.ts';
import { MemoryStore } from '../../src/engine/memory-store.ts';
import { syntheticImages, syntheticSource } from '../helpers/synthetic.ts';
import { runCli } from '../helpers/cli.ts';
import { useTempCache } from '../helpers/cache.ts';

useTempCache('memscope-gate-');

const config = stableDiffusionConfig();
const seeds = [0, 1, 2];

describe('the gate score', () => {
  it("equals Wen et al.'s first-step score of a full CFG run, for every sampler family", async () => {
    const { src } = await syntheticSource(5, [3, 17, 40]);
    const conds = [0, 4, 10, 11, 12];
    for (const sampler of ['ddim', 'dpmpp2m', 'euler', 'pndm'] as const) {
      const got = await firstStepScores({ denoiser: src.denoiser, conds, seeds, sampler, steps: 9, config, lambda: 4, batchSize: 4 });
      const run = await runSampling({ denoiser: src.denoiser, conds, seeds, sampler, steps: 9, config, guidance: constant(4) });
      const want = wenScores(run.d, seeds.length).firstStep;
      got.forEach((v, i) => expect(v, `${sampler} prompt ${i}`).toBeCloseTo(want[i]!, 10));
    }
  });

  it('calibrates the threshold as the (1 − FPR) quantile, inconclusive below ⌈1/FPR⌉ prompts', () => {
    const ids = Array.from({ length: 5 }, (_, i) => `caption:${i}`);
    // sorted 1 2 3 4 5: the 0.9 quantile at (5 − 1)·0.9 = 3.6 → 4 + 0.6
    const c = calibrateGate(ids, [5, 1, 4, 2, 3], 0.1);
    expect(c.threshold).toBeCloseTo(4.6, 12);
    expect(c.minPrompts).toBe(10);
    expect(c.text).toContain('inconclusive (n = 5 < 10)');
    expect(calibrateGate(ids, [5, 1, 4, 2, 3], 0.2).text).not.toContain('inconclusive');
    expect(() => calibrateGate(ids, [1, 2], 0.1)).toThrow(/2 scores for 5 prompts/);
    expect(() => calibrateGate(ids, [1, 2, 3, 4, 5], 0)).toThrow(/strictly between 0 and 1/);
  });
});

describe('gated methods', () => {
  it('parse as a modifier of another method, requiring what it requires', () => {
    const g = parseMethod('gated+og+dtp/2');
    expect(isGatedMethod(g)).toBe(true);
    expect(g.name).toBe('gated+og+dtp/2');
    expect(innerMethod(g).name).toBe('og+dtp/2');
    expect(methodRequires(parseMethod('gated+wen'))).toEqual(['text', 'embeddingGradient']);
    expect(() => parseMethod('gated+cfg')).toThrow(/cfg is no mitigation/);
    expect(() => parseMethod('gated+gated+stp')).toThrow(/gates twice/);
    expect(() => parseMethod('gated+nope')).toThrow(/unknown method "nope"/);
  });

  it('sample the inner method for flagged prompts and plain CFG for the others', async () => {
    const { src } = await syntheticSource(5, [3, 17, 40, 41]);
    const prompts = [10, 11, 12, 13, 2, 5];
    const s0: Omit<EvaluateSettings, 'methods'> = { prompts, seeds, lambda: 5, sampler: 'ddim', steps: 8, config, batchSize: 7, threshold: 0.5, calibrationQuantile: 0.9, runSeed: 0 };
    const scores = await firstStepScores({ denoiser: src.denoiser, conds: prompts, seeds, sampler: 'ddim', steps: 8, config, lambda: 5 });
    // a threshold between the scores: some prompts flagged, some not
    const sorted = [...scores].sort((a, b) => a - b);
    const threshold = (sorted[2]! + sorted[3]!) / 2;
    const [cfg, og, gated0] = parseMethods('cfg,og+stp@600,gated+og+stp@600');
    const gated = withGateThreshold(gated0!, threshold, 0.05, 20);
    const tools = { descriptor: pixelDescriptor(), quality: null, alignment: null, heldOut: syntheticImages(99).trainImages };
    const logs: string[] = [];
    const r = await runEvaluation(src, { ...s0, methods: [cfg!, og!, gated] }, tools, { store: new MemoryStore(), log: (m) => void logs.push(m) });
    // the unflagged prompts' CFG samples come from the cfg row's shared units, not a second sampling
    expect(logs.some((l) => l.includes("3 of 6 prompts flagged and mitigated (3 unflagged prompts' CFG samples from the store)"))).toBe(true);
    // without the cfg row they are sampled, with the same numbers
    const alone = await runEvaluation(src, { ...s0, methods: [gated] }, tools, { store: new MemoryStore() });
    expect(Array.from(alone.samples.get(gated.name)!.data)).toEqual(Array.from(r.samples.get(gated.name)!.data));
    const row = r.rows.find((x) => x.method === gated.name)!;
    const flagged = scores.map((v) => v > threshold);
    expect(row.gate!.flagged.value).toBeCloseTo(3 / 6, 12);
    expect(row.gate!.memorized).toEqual({ flagged: flagged.slice(0, 4).filter(Boolean).length, of: 4 });
    const per = r.samples.get('cfg')!.data.length / (prompts.length * seeds.length);
    const rowsOf = (name: string, p: number) => Array.from(r.samples.get(name)!.data.subarray(p * seeds.length * per, (p + 1) * seeds.length * per));
    prompts.forEach((_, p) => {
      const want = flagged[p] ? rowsOf(og!.name, p) : rowsOf('cfg', p);
      const other = flagged[p] ? rowsOf('cfg', p) : rowsOf(og!.name, p);
      expect(rowsOf(gated.name, p)).toEqual(want);
      expect(rowsOf(gated.name, p)).not.toEqual(other);
    });
    expect(row.gate!.text).toMatch(/og\+stp@600 applied to 3 of 6 prompts/);
    const recs = row.details['gate'] as { score: number; flagged: boolean }[];
    expect(recs.map((x) => x.flagged)).toEqual(flagged);
    recs.forEach((x, p) => expect(x.score).toBeCloseTo(scores[p]!, 12));
    expect(row.details['applied']).toEqual(flagged.map((f) => (f ? 'og+stp@600' : 'cfg')));
  });
});

describe('evaluate with a gated method (CLI)', () => {
  const RUN = ['evaluate', '--model', 'testbed', '--prompts', 'caption:0-2', '--seeds', '0-1', '--steps', '4', '--descriptor', 'pixel'];
  it('refuses calibration it cannot do, before any work (exit 2)', async () => {
    const none = await runCli([...RUN, '--methods', 'cfg,gated+stp']);
    expect(none.code).toBe(2);
    expect(none.err).toContain('--gate-calibration: gated+stp@500 needs held-out prompts known not to be memorized');
    const overlap = await runCli([...RUN, '--methods', 'gated+stp', '--gate-calibration', 'caption:2,class:0-3']);
    expect(overlap.code).toBe(2);
    expect(overlap.err).toContain('--gate-calibration: caption:2 is also evaluated (--prompts)');
    const mem = await runCli([...RUN, '--methods', 'gated+stp', '--gate-calibration', 'caption:5,class:0-3']);
    expect(mem.code).toBe(2);
    expect(mem.err).toContain("--gate-calibration: caption:5 is memorized by the model's labels");
    const lonely = await runCli([...RUN, '--methods', 'stp', '--gate-calibration', 'class:0-3']);
    expect(lonely.code).toBe(2);
    expect(lonely.err).toContain('--gate-calibration: only with a gated method');
    const fpr = await runCli([...RUN, '--methods', 'gated+stp', '--gate-calibration', 'class:0-3', '--gate-fpr', '1']);
    expect(fpr.code).toBe(2);
    expect(fpr.err).toContain('--gate-fpr');
  });
});
