import { describe, it, expect } from 'vitest';
import { crop32to28, validateModel } from './validate.ts';
import { pad28to32 } from '../models/model-dir.ts';
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { makeEmpiricalDenoiser } from '../denoisers/empirical.ts';
import { parseGuidance } from '../guidance/spec.ts';
import { stableDiffusionConfig } from '../schedules/config.ts';

describe('validation of a trained-style (32×32 padded) model', () => {
  it('crop32to28 inverts pad28to32', () => {
    const ds = loadFashionMnist({ split: 'test', limit: 5 });
    const back = crop32to28(pad28to32(ds.images, [0, 3]));
    expect(Array.from(back.data)).toEqual(Array.from(ds.images.data.subarray(0, 784)).concat(Array.from(ds.images.data.subarray(3 * 784, 4 * 784))));
  });

  it('a perfect memorizer (single-image empirical captions) is measured as 100 % copies', async () => {
    const ds = loadFashionMnist({ split: 'test', limit: 200 });
    const rows = Array.from({ length: 200 }, (_, i) => i);
    const padded = pad28to32(ds.images, rows);
    const d = await makeEmpiricalDenoiser(padded, {
      conditions: [
        { id: 'caption:0', kind: 'caption', label: 'a', indices: [7], targets: [7] },
        { id: 'caption:1', kind: 'caption', label: 'b', indices: [42], targets: [42] },
      ],
    });
    const v = await validateModel({ denoiser: d, trainImages: ds.images, toImageSpace: crop32to28, conds: [0, 1], seeds: [0, 1, 2], guidance: parseGuidance('constant:1'), sampler: 'ddim', steps: 10, config: stableDiffusionConfig() });
    expect(v.captionsMemorized).toBe(1);
    expect(v.captionNearestIsTarget).toBe(1);
    expect(v.captionRatioCopy).toBe(1);
    expect(v.captionMeanSimilarity).toBeGreaterThan(0.99); // SD config ends at ᾱ_prev = ᾱ_0 ≈ 0.99915, not exactly at x
    expect(v.perCondition.map((p) => p.target)).toEqual([7, 42]);
    await d.dispose();
  });
});
