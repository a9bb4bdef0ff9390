/**
 * Guidance-magnitude curves (Jain et al., SPEC §4.1) on a small synthetic analytic testbed: the
 * per-group mean of ‖ε_c − ε_u‖ equals √d_t averaged over that group's rows of an independent
 * sampling run, for every step and mode.
 */
import { describe, it, expect } from 'vitest';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import { runCurves } from '../../src/study/curves.ts';
import { runSampling } from '../../src/study/sampling.ts';
import { constant } from '../../src/guidance/schedules.ts';
import { syntheticSource } from '../helpers/synthetic.ts';
import { useTempCache } from '../helpers/cache.ts';

useTempCache('memscope-curves-');

describe('runCurves', () => {
  it('averages ‖ε_c − ε_u‖ over each group of rows, per step and mode', async () => {
    const { src } = await syntheticSource(31, [13]);
    const tb = src.denoiser;
    const prompts = [10, 3, 5];
    const seeds = [0, 1, 2];
    const r = await runCurves(src, { prompts, seeds, lambda: 2, modes: ['cfg', 'og'], sampler: 'ddim', steps: 6, config: stableDiffusionConfig(), fraction: 0.1 });
    expect(r.t).toHaveLength(6);
    for (const m of r.modes) {
      const run = await runSampling({ denoiser: tb, conds: prompts, seeds, sampler: 'ddim', steps: 6, config: stableDiffusionConfig(), guidance: constant(m.scale) });
      expect(m.memorized!.rows).toBe(3);
      expect(m.normal!.rows).toBe(6);
      for (let st = 0; st < 6; st++) {
        const mem = [0, 1, 2].map((r2) => Math.sqrt(run.d[st]![r2]!));
        const nor = [3, 4, 5, 6, 7, 8].map((r2) => Math.sqrt(run.d[st]![r2]!));
        expect(m.memorized!.diff.mean[st]).toBeCloseTo(mem.reduce((a, b) => a + b, 0) / 3, 5);
        expect(m.normal!.diff.mean[st]).toBeCloseTo(nor.reduce((a, b) => a + b, 0) / 6, 5);
      }
    }
  }, 120_000);
});
