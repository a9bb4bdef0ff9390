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

describe('strict copies by duplication count', () => {
  it('counts a sample as a strict copy only when d1/d2 < 1/3 and the nearest image is its own, grouped by duplicates', async () => {
    const { validateSamples } = await import('./validate.ts');
    const ds = loadFashionMnist({ split: 'test', limit: 100 });
    const img = (i: number): Float32Array => ds.images.data.slice(i * 784, (i + 1) * 784);
    const mid = (i: number, j: number): Float32Array => img(i).map((v, k) => (v + img(j)[k]!) / 2);
    // captions: two seen 3 times (targets 7, 8), two seen 100 times (targets 20, 21); 4 seeds each
    const conditions = [
      { id: 'caption:0', kind: 'caption' as const, label: 'a', targets: [7], duplicates: 3 },
      { id: 'caption:1', kind: 'caption' as const, label: 'b', targets: [8], duplicates: 3 },
      { id: 'caption:2', kind: 'caption' as const, label: 'c', targets: [20], duplicates: 100 },
      { id: 'caption:3', kind: 'caption' as const, label: 'd', targets: [21], duplicates: 100 },
    ];
    // caption 0: own, own, another image (9), halfway between own and 9 (ratio ≈ 1) → 2 strict of 4
    // caption 1: nothing strict (another image ×4) → 0; captions 2, 3: own ×4 → 8 of 8
    const rows = [img(7), img(7), img(9), mid(7, 9), img(9), img(9), img(9), img(9), ...Array.from({ length: 4 }, () => img(20)), ...Array.from({ length: 4 }, () => img(21))];
    const data = new Float32Array(rows.length * 784);
    rows.forEach((r, i) => data.set(r, i * 784));
    const denoiser = { name: 'fixed', space: 'pixel', shape: [1, 28, 28], conditions, predict: async () => { throw new Error('not sampled'); } };
    const result = { samples: { dims: [16, 1, 28, 28], data }, noise: { dims: [16, 1, 28, 28], data: new Float32Array(16 * 784) }, rows: [0, 1, 2, 3].flatMap((c) => [0, 1, 2, 3].map((seed) => ({ cond: c, seed }))), t: [], alphaBar: [], s: [], d: [], switchSteps: [], recorded: new Map(), seconds: 0 };
    const v = await validateSamples({ denoiser: denoiser as never, trainImages: ds.images, conds: [0, 1, 2, 3], seeds: [0, 1, 2, 3], result: result as never, guidanceLabel: 'test' });
    expect(v.perCondition.map((p) => p.strictCopy)).toEqual([0.5, 0, 1, 1]);
    expect(v.perCondition.map((p) => p.duplicates)).toEqual([3, 3, 100, 100]);
    expect(v.captionStrictCopy).toBe(10 / 16);
    expect(v.byDuplicates.map((r) => [r.duplicates, r.captions, r.strict.n, r.strict.value])).toEqual([[3, 2, 8, 2 / 8], [100, 2, 8, 1]]);
    // all 100× seeds copy: ρ estimate 0 within, the interval is Wilson's at n = 8 (upper bound 1)
    expect(v.byDuplicates[1]!.strict.interval.hi).toBe(1);
    expect(v.byDuplicates[1]!.strict.interval.lo).toBeCloseTo(8 / (8 + 1.959963984540054 ** 2), 6);
  });
});

describe('unconditional samples', () => {
  it('counts d1/d2 < 1/3 copies with a plain Wilson interval, the distinct images copied and the median ratio; `all` on an unconditional model is the null condition', async () => {
    const { validateSamples } = await import('./validate.ts');
    const { parseConditions } = await import('./conditions.ts');
    const ds = loadFashionMnist({ split: 'test', limit: 100 });
    const img = (i: number): Float32Array => ds.images.data.slice(i * 784, (i + 1) * 784);
    const mid = (i: number, j: number): Float32Array => img(i).map((v, k) => (v + img(j)[k]!) / 2);
    // 12 seeds: 5 exact training images (3 distinct: 4, 4, 4, 30, 61) and 7 midpoints (ratio ≈ 1)
    const rows = [img(4), img(4), img(4), img(30), img(61), ...Array.from({ length: 7 }, (_, k) => mid(10 + k, 50 + k))];
    const data = new Float32Array(rows.length * 784);
    rows.forEach((r, i) => data.set(r, i * 784));
    const denoiser = { name: 'uncond-fixed', space: 'pixel', shape: [1, 28, 28], conditions: [], predict: async () => { throw new Error('not sampled'); } };
    expect(parseConditions('all', denoiser as never)).toEqual([null]);
    const seeds = rows.map((_, i) => i);
    const result = { samples: { dims: [12, 1, 28, 28], data }, noise: { dims: [12, 1, 28, 28], data: new Float32Array(12 * 784) }, rows: seeds.map((seed) => ({ cond: null, seed })), t: [], alphaBar: [], s: [], d: [], switchSteps: [], recorded: new Map(), seconds: 0 };
    const v = await validateSamples({ denoiser: denoiser as never, trainImages: ds.images, conds: [null], seeds, result: result as never, guidanceLabel: 'test' });
    expect(v.uncond).not.toBeNull();
    const u = v.uncond!;
    expect([u.n, u.copies, u.distinctCopied]).toEqual([12, 5, 3]);
    // Wilson at k = 5, n = 12 (z = 1.959964): centre (p + z²/2n)/(1 + z²/n), half-width z/(1 + z²/n)·√(p(1−p)/n + z²/4n²)
    const z = 1.959963984540054;
    const p = 5 / 12;
    const c = (p + z * z / 24) / (1 + z * z / 12);
    const h = (z / (1 + z * z / 12)) * Math.sqrt((p * (1 - p)) / 12 + (z * z) / (4 * 144));
    expect(u.text).toBe(`41.7 % [${(100 * (c - h)).toFixed(1)}, ${(100 * (c + h)).toFixed(1)}] (n = 12)`);
    // the 7 midpoints have ratio near 1, the exact copies 0: the median (6th/7th of 12) is a midpoint's
    expect(u.medianRatio).toBeGreaterThan(0.5);
    expect(v.captionStrictCopy).toBeNaN();
  });
});

describe('copy tests against the model image pool', () => {
  it('nearest images and d1/d2 come from the pool only (brute-force float64 reference); nn1 stays an index of the whole set; targets are remapped', async () => {
    const { validateSamples } = await import('./validate.ts');
    const ds = loadFashionMnist({ split: 'test', limit: 120 });
    const img = (i: number): Float32Array => ds.images.data.slice(i * 784, (i + 1) * 784);
    const mix = (i: number, j: number, a: number): Float32Array => img(i).map((v, k) => a * v + (1 - a) * img(j)[k]!);
    // the pool: every third image (0, 3, …, 117); captions target pool images 6 and 30
    const pool = Array.from({ length: 40 }, (_, k) => 3 * k);
    const conditions = [
      { id: 'caption:0', kind: 'caption' as const, label: 'a', targets: [6] },
      { id: 'caption:1', kind: 'caption' as const, label: 'b', targets: [30] },
    ];
    // mixtures with images outside the pool (7, 31, 100) and inside it (9)
    const rows = [mix(6, 7, 0.5), mix(6, 7, 0.9), mix(6, 9, 0.55), mix(30, 31, 0.5), mix(30, 100, 0.8), img(31)];
    const data = new Float32Array(rows.length * 784);
    rows.forEach((r, i) => data.set(r, i * 784));
    const denoiser = { name: 'fixed', space: 'pixel', shape: [1, 28, 28], conditions, predict: async () => { throw new Error('not sampled'); } };
    const result = { samples: { dims: [6, 1, 28, 28], data }, noise: { dims: [6, 1, 28, 28], data: new Float32Array(6 * 784) }, rows: [0, 1].flatMap((c) => [0, 1, 2].map((seed) => ({ cond: c, seed }))), t: [], alphaBar: [], s: [], d: [], switchSteps: [], recorded: new Map(), seconds: 0 };
    const v = await validateSamples({ denoiser: denoiser as never, trainImages: ds.images, conds: [0, 1], seeds: [0, 1, 2], result: result as never, guidanceLabel: 'test', pool });
    rows.forEach((r, i) => {
      const dist = pool.map((p) => Math.sqrt(img(p).reduce((a, v, k) => a + (v - r[k]!) ** 2, 0)));
      const order = dist.map((d, k) => [d, k] as const).sort((a, b) => a[0] - b[0]);
      const nn1 = pool[order[0]![1]]!;
      const ratio = order[0]![0] / order[1]![0];
      expect(v.copies[i]!.nn1, `sample ${i}`).toBe(nn1);
      expect(v.copies[i]!.ratio, `sample ${i}`).toBeCloseTo(ratio, 4);
      const target = i < 3 ? 6 : 30;
      expect(v.copies[i]!.nearestIsTarget, `sample ${i}`).toBe(nn1 === target);
    });
    const strict = rows.map((_, i) => v.copies[i]!.ratio < 1 / 3 && v.copies[i]!.nn1 === (i < 3 ? 6 : 30));
    expect(v.perCondition.map((p) => p.strictCopy)).toEqual([strict.slice(0, 3).filter(Boolean).length / 3, strict.slice(3).filter(Boolean).length / 3]);
    // the pool changes the answer: against all 120 images, image 31 itself is its own nearest (ratio 0)
    const all = await validateSamples({ denoiser: denoiser as never, trainImages: ds.images, conds: [0, 1], seeds: [0, 1, 2], result: result as never, guidanceLabel: 'test' });
    expect(all.copies[5]!.nn1).toBe(31);
    expect(v.copies[5]!.nn1).not.toBe(31);
    await expect(validateSamples({ denoiser: denoiser as never, trainImages: ds.images, conds: [0, 1], seeds: [0, 1, 2], result: result as never, guidanceLabel: 'test', pool: [0, 3, 9] })).rejects.toThrow(/target image 6 of caption:0 is not in the model's image pool/);
  });
});
