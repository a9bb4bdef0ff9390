/**
 * Detection (Wen et al.'s score, SPEC §4.4) on a small synthetic analytic testbed: the first-step
 * score equals the seed mean of ‖ε_c − ε_u‖ recomputed from an independent sampling run, the AUC
 * equals the brute-force Mann–Whitney statistic of the scores, and bad prompt sets are rejected.
 */
import { describe, it, expect } from 'vitest';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import { runDetection } from '../../src/study/detect.ts';
import { runSampling } from '../../src/study/sampling.ts';
import { constant } from '../../src/guidance/schedules.ts';
import { syntheticSource } from '../helpers/synthetic.ts';
import { useTempCache } from '../helpers/cache.ts';

useTempCache('memscope-detect-');

describe('runDetection', () => {
  it('scores with the first-step magnitude averaged over seeds and evaluates the AUC exactly', async () => {
    const { src } = await syntheticSource(21, [13, 57, 88]);
    const tb = src.denoiser;
    const prompts = [10, 0, 11, 3, 12, 7, 5];
    const seeds = [0, 1, 2];
    const s = { prompts, seeds, scale: 3, sampler: 'ddim' as const, steps: 8, config: stableDiffusionConfig(), promptsPerBatch: 3 };
    const r = await runDetection(src, s);
    expect(r.prompts.map((p) => p.memorized)).toEqual([true, false, true, false, true, false, false]);
    const wen = r.detectors.find((x) => x.name === 'wen-first-step')!;
    // independent recomputation: one run per prompt, √d at step 0 averaged over seeds
    for (let i = 0; i < prompts.length; i++) {
      const run = await runSampling({ denoiser: tb, conds: [prompts[i]!], seeds, sampler: 'ddim', steps: 8, config: stableDiffusionConfig(), guidance: constant(3) });
      const expected = run.d[0]!.reduce((a, v) => a + Math.sqrt(v), 0) / seeds.length;
      expect(wen.scores[i]).toBeCloseTo(expected, 6);
    }
    for (const det of r.detectors) {
      let pairs = 0;
      let wins = 0;
      r.prompts.forEach((p, i) => {
        if (!p.memorized) return;
        r.prompts.forEach((q, j) => {
          if (q.memorized) return;
          pairs++;
          wins += det.scores[i]! > det.scores[j]! ? 1 : det.scores[i] === det.scores[j] ? 0.5 : 0;
        });
      });
      expect(det.auc).toBeCloseTo(wins / pairs, 12);
    }
    await expect(runDetection(src, { ...s, prompts: [0, 3] })).rejects.toThrow(/--prompts: need both memorized and normal/);
  }, 120_000);
});
