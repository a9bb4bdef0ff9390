/**
 * Detection (Wen et al.'s score, SPEC §4.4) on a small synthetic analytic testbed: the first-step
 * score equals the seed mean of ‖ε_c − ε_u‖ recomputed from an independent sampling run, the AUC
 * equals the brute-force Mann–Whitney statistic of the scores, and bad prompt sets are rejected.
 */
import { describe, it, expect } from 'vitest';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import { runDetection, detectionStats } from '../../src/study/detect.ts';
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
      // 3 memorized / 4 normal prompts: an interval and its n, never a bare verdict
      const A = det.auc;
      const se = Math.sqrt((A * (1 - A) + 2 * (A / (2 - A) - A * A) + 3 * ((2 * A * A) / (1 + A) - A * A)) / 12);
      expect(det.aucInterval.lo).toBeCloseTo(Math.max(0, A - 1.959963984540054 * se), 10);
      expect(det.aucInterval.hi).toBeCloseTo(Math.min(1, A + 1.959963984540054 * se), 10);
      expect(det.aucVerdict.verdict).toBe('inconclusive');
      expect(det.aucText).toContain('inconclusive (n_pos = 3 < 10)');
      expect(det.tprAt1Text).toBe('inconclusive (n_neg = 4 < 100)');
    }
    await expect(runDetection(src, { ...s, prompts: [0, 3] })).rejects.toThrow(/--prompts: need both memorized and normal/);
  }, 120_000);
});

describe('detectionStats', () => {
  it('reports TPR at 1 % FPR from ≥ 100 negatives with its Wilson interval, and judges the AUC by its Hanley–McNeil interval', () => {
    // negatives score 0…99, positives 90.5…99.5: positive 90.5 + j beats 91 + j negatives → AUC = (91 + … + 100)/1000 = 0.955;
    // at FPR ≤ 1 % (one negative, 99, above the threshold 98.5) two positives (98.5, 99.5) are flagged → TPR 0.2
    const scores = [...Array.from({ length: 100 }, (_, i) => i), ...Array.from({ length: 10 }, (_, j) => 90.5 + j)];
    const labels = scores.map((_, i) => i >= 100);
    const st = detectionStats(scores, labels);
    expect(st.auc).toBeCloseTo(0.955, 12);
    expect(st.tprAt1).toBeCloseTo(0.2, 12);
    expect(st.positives).toBe(10);
    expect(st.negatives).toBe(100);
    // Wilson 2/10 by hand: centre (0.2 + z²/20)/(1 + z²/10), half z/(1 + z²/10)·√(0.016 + z²/400)
    const z = 1.959963984540054;
    const c = (0.2 + (z * z) / 20) / (1 + (z * z) / 10);
    const h = (z / (1 + (z * z) / 10)) * Math.sqrt(0.016 + (z * z) / 400);
    expect(st.tprAt1Interval.lo).toBeCloseTo(c - h, 12);
    expect(st.tprAt1Interval.hi).toBeCloseTo(c + h, 12);
    expect(st.tprAt1Text).toMatch(/^0\.200 \[0\.057, 0\.510\] \(95 % Wilson; n_pos = 10, n_neg = 100\)$/);
    expect(st.aucVerdict.verdict).toBe('holds'); // 0.955 ± 1.96·SE stays above 0.5
    expect(st.aucText).toContain('better than chance: holds');
    // 9 negatives: the same AUC is inconclusive, and no TPR at 1 % FPR is printed
    const few = detectionStats([...scores.slice(0, 9), ...scores.slice(100)], [...labels.slice(0, 9), ...labels.slice(100)]);
    expect(few.aucVerdict.verdict).toBe('inconclusive');
    expect(few.aucText).toContain('inconclusive (n_neg = 9 < 10)');
    expect(few.tprAt1Text).toBe('inconclusive (n_neg = 9 < 100)');
  });

  it('reports TPR at 1, 3, 5 and 10 % FPR (Ren et al.), each from its own minimum of negatives', () => {
    // same scores: negatives 0…99, positives 90.5…99.5. At FPR ≤ f the threshold admits ⌊100 f⌋ negatives (those above 100 − ⌊100 f⌋ − 0.5),
    // so the flagged positives are those scoring above 99.5 − ⌊100 f⌋: 1 % → 2, 3 % → 4, 5 % → 6, 10 % → 10 of 10 (counted here by brute force)
    const scores = [...Array.from({ length: 100 }, (_, i) => i), ...Array.from({ length: 10 }, (_, j) => 90.5 + j)];
    const labels = scores.map((_, i) => i >= 100);
    const st = detectionStats(scores, labels);
    const brute = (f: number): number => {
      let best = 0;
      for (const thr of [...scores, Infinity]) {
        const fp = scores.filter((v, i) => !labels[i] && v >= thr).length / 100;
        const tp = scores.filter((v, i) => labels[i] && v >= thr).length / 10;
        if (fp <= f) best = Math.max(best, tp);
      }
      return best;
    };
    expect(st.tprAtFprs.map((t) => t.fpr)).toEqual([0.01, 0.03, 0.05, 0.1]);
    expect(st.tprAtFprs.map((t) => t.tpr)).toEqual([0.01, 0.03, 0.05, 0.1].map(brute));
    expect(st.tprAtFprs.map((t) => t.tpr)).toEqual([0.2, 0.4, 0.6, 1]);
    // 20 negatives: 5 % and 10 % are reported, 1 % and 3 % are inconclusive
    const mid = detectionStats([...scores.slice(80, 100), ...scores.slice(100)], [...labels.slice(80, 100), ...labels.slice(100)]);
    expect(mid.tprAtFprs.map((t) => t.text.startsWith('inconclusive'))).toEqual([true, true, false, false]);
    expect(mid.tprAtFprs[1]!.text).toBe('inconclusive (n_neg = 20 < 34)');
  });
});
