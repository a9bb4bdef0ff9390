/**
 * Webster's one-step score as the CFG sampling units record it (from the first guided step's ε̂)
 * equals the same score computed with its own (uncond, cond) model call at x_T (`analysis/webster.ts`).
 */
import { describe, expect, it } from 'vitest';
import { loadStudySource } from '../../src/study/source.ts';
import { initialNoise } from '../../src/study/sampling.ts';
import { runCfgSampleBatch } from '../../src/study/cfg-sample.ts';
import { websterOneStepScore } from '../../src/analysis/webster.ts';

describe("Webster's score recorded by the sampling units", () => {
  it('equals a separate one-step model call on models/graded', async () => {
    const src = await loadStudySource('models/graded', {});
    try {
      const seeds = [5, 6, 7];
      const config = src.schedule.config;
      const [u] = await runCfgSampleBatch([{ key: 'k', spec: { kind: 'cfg-sample', cond: 2, condId: 'c', seeds, lambda: 7.5, sampler: 'ddim', steps: 10, config } }], src, { withoutSamples: true });
      const rec = u!.result.webster!;
      const mean = rec.reduce((a, v) => a + v, 0) / rec.length;
      const ref = await websterOneStepScore(src.denoiser, 2, initialNoise(src.denoiser.shape, seeds), { t: u!.result.t[0]!, alphaBar: u!.result.alphaBar[0]! }, 7.5);
      expect(Math.abs(mean - ref) / ref).toBeLessThan(1e-5);
    } finally {
      await src.denoiser.dispose?.();
    }
  });
});
