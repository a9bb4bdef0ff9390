/**
 * CADS on a trained memscope text model (`models/graded`): the condition-transform denoiser with
 * the identity predicts exactly what the model's own denoiser predicts (same graph, same
 * embeddings), and a real transform changes the prediction; `cads` runs as a method.
 */
import { describe, expect, it } from 'vitest';
import { loadStudySource } from '../../src/study/source.ts';
import { initialNoise } from '../../src/study/sampling.ts';
import { concatBatch } from '../../src/tensor/tensor.ts';
import { cadsCondition, CADS_DEFAULTS } from '../../src/guidance/cads.ts';

describe('CADS on a trained text model', () => {
  it('identity transform = the model; CADS at t = 900 changes ε̂', async () => {
    const src = await loadStudySource('models/graded', {});
    const xt = initialNoise(src.denoiser.shape, [1, 2]);
    const x4 = concatBatch([xt, xt]);
    const level = { t: 900, alphaBar: 0.05 };
    const cond = [null, 0, null, 3];
    const plain = (await src.denoiser.predict(x4, level, cond)).data;
    const ct = src.capabilities.conditionTransform!;
    const same = await ct.denoiser((c) => c, 'identity');
    const cads = await ct.denoiser((c, t) => cadsCondition(c, t, CADS_DEFAULTS), 'cads');
    try {
      const a = (await same.predict(x4, level, cond)).data;
      const b = (await cads.predict(x4, level, cond)).data;
      let d0 = 0;
      let d1 = 0;
      for (let i = 0; i < a.length; i++) {
        d0 = Math.max(d0, Math.abs(a[i]! - plain[i]!));
        d1 = Math.max(d1, Math.abs(b[i]! - plain[i]!));
      }
      expect(d0).toBeLessThan(1e-6);
      expect(d1).toBeGreaterThan(1e-3);
    } finally {
      await same.dispose?.();
      await cads.dispose?.();
      await src.denoiser.dispose?.();
    }
  });
});
