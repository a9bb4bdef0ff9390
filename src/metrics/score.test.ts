import { describe, expect, it } from 'vitest';
import { memorizationScore, scoreRecord, DEFAULT_MEMORIZATION_THRESHOLD, SCORE_AGGREGATION } from './score.ts';
import { pixelDescriptor, type Descriptor } from './descriptor.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { rand } from '../../test/helpers/metrics.ts';

const img = (n: number, seed: number): Tensor => ({ dims: [n, 1, 3, 4], data: rand(n * 12, seed) });

/** cos(a_i, b_j) in float64 with explicit loops. */
function cos64(a: Float32Array, i: number, b: Float32Array, j: number, d: number): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let k = 0; k < d; k++) {
    const x = a[i * d + k]!;
    const y = b[j * d + k]!;
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return ab / Math.sqrt(aa * bb);
}

const plain: Descriptor = pixelDescriptor();

describe('memorizationScore (SPEC §3.8)', () => {
  it('matches explicit float64 cosine loops with one target', async () => {
    const gen = img(5, 1);
    const tgt = img(1, 2);
    const r = await memorizationScore(plain, gen, tgt);
    let st = 0;
    for (let n = 0; n < 5; n++) st += cos64(gen.data, n, tgt.data, 0, 12);
    st /= 5;
    let sg = 0;
    let pairs = 0;
    for (let n = 0; n < 5; n++) {
      for (let m = 0; m < 5; m++) {
        if (n === m) continue;
        sg += cos64(gen.data, n, gen.data, m, 12);
        pairs++;
      }
    }
    sg /= pairs;
    expect(pairs).toBe(20);
    expect(r.simTrain).toBeCloseTo(st, 6);
    expect(r.simGen).toBeCloseTo(sg, 6);
    expect(r.score).toBeCloseTo((st + sg) / 2, 6);
    expect(r.targetKnown).toBe(true);
    expect(r.nearestTrain).toBeUndefined();
    expect(r.memorized).toBe(r.score > 0.75);
  });

  it('takes the max over several targets per sample', async () => {
    const gen = img(4, 3);
    const tgt = img(3, 4);
    const r = await memorizationScore(plain, gen, tgt);
    let st = 0;
    for (let n = 0; n < 4; n++) st += Math.max(...[0, 1, 2].map((k) => cos64(gen.data, n, tgt.data, k, 12)));
    expect(r.simTrain).toBeCloseTo(st / 4, 6);
  });

  it('with the target unknown, uses each sample’s nearest training embedding', async () => {
    const train = img(30, 5);
    const gen: Tensor = { dims: [3, 1, 3, 4], data: new Float32Array(36) };
    // samples = slightly perturbed training images 7, 21, 7
    [7, 21, 7].forEach((t, n) => {
      const noise = rand(12, 100 + n);
      for (let k = 0; k < 12; k++) gen.data[n * 12 + k] = train.data[t * 12 + k]! + 0.05 * noise[k]!;
    });
    const trainEmbeddings = await plain.embed(train);
    const r = await memorizationScore(plain, gen, null, { trainEmbeddings });
    expect(r.targetKnown).toBe(false);
    const expectNearest = [0, 1, 2].map((n) => {
      let best = -Infinity;
      let bj = -1;
      for (let j = 0; j < 30; j++) {
        const c = cos64(gen.data, n, train.data, j, 12);
        if (c > best) [best, bj] = [c, j];
      }
      return { bj, best };
    });
    expect(r.nearestTrain).toEqual(expectNearest.map((e) => e.bj));
    expect(r.nearestTrain).toEqual([7, 21, 7]);
    expect(r.simTrain).toBeCloseTo(expectNearest.reduce((s, e) => s + e.best, 0) / 3, 6);
  });

  it('closed forms: identical images score 1, mutually orthogonal images score 0', async () => {
    const x = img(1, 9);
    const same: Tensor = { dims: [4, 1, 3, 4], data: new Float32Array(48) };
    for (let n = 0; n < 4; n++) same.data.set(x.data, n * 12);
    const r1 = await memorizationScore(plain, same, x);
    expect(r1.simTrain).toBeCloseTo(1, 6);
    expect(r1.simGen).toBeCloseTo(1, 6);
    expect(r1.score).toBeCloseTo(1, 6);
    expect(r1.memorized).toBe(true);
    // basis vectors e_0..e_3 as samples, e_5 as target
    const basis: Tensor = { dims: [4, 1, 3, 4], data: new Float32Array(48) };
    for (let n = 0; n < 4; n++) basis.data[n * 12 + n] = 2.5;
    const t: Tensor = { dims: [1, 1, 3, 4], data: new Float32Array(12) };
    t.data[5] = -3;
    const r0 = await memorizationScore(plain, basis, t);
    expect(r0.simTrain).toBe(0);
    expect(r0.simGen).toBe(0);
    expect(r0.score).toBe(0);
    expect(r0.memorized).toBe(false);
  });

  it('N = 1: sim_gen is NaN and score = sim_train', async () => {
    const gen = img(1, 11);
    const tgt = img(1, 12);
    const r = await memorizationScore(plain, gen, tgt);
    expect(Number.isNaN(r.simGen)).toBe(true);
    expect(r.score).toBe(r.simTrain);
    expect(r.simTrain).toBeCloseTo(cos64(gen.data, 0, tgt.data, 0, 12), 6);
  });

  it('threshold: default 0.75, configurable, strict >', async () => {
    const gen = img(3, 13);
    const r = await memorizationScore(plain, gen, img(1, 14));
    const lo = await memorizationScore(plain, gen, img(1, 14), { threshold: r.score - 1e-9 });
    const at = await memorizationScore(plain, gen, img(1, 14), { threshold: r.score });
    expect(lo.memorized).toBe(true);
    expect(at.memorized).toBe(false);
    expect(DEFAULT_MEMORIZATION_THRESHOLD).toBe(0.75);
  });

  it('uses the descriptor (mean-centred pixel cosine)', async () => {
    const mean = rand(12, 77);
    const d = pixelDescriptor(mean);
    const gen = img(3, 15);
    const tgt = img(1, 16);
    const r = await memorizationScore(d, gen, tgt);
    const c = (a: Float32Array) => Float32Array.from(a, (v, i) => v - mean[i % 12]!);
    const g = c(gen.data);
    const t = c(tgt.data);
    const st = [0, 1, 2].reduce((s, n) => s + cos64(g, n, t, 0, 12), 0) / 3;
    expect(r.simTrain).toBeCloseTo(st, 6);
  });

  it('rejects a null target without training embeddings, and mismatched shapes', async () => {
    await expect(memorizationScore(plain, img(2, 1), null)).rejects.toThrow(/trainEmbeddings/);
    await expect(memorizationScore(plain, img(2, 1), { dims: [1, 1, 4, 3], data: new Float32Array(12) })).rejects.toThrow(/target/);
    await expect(memorizationScore(plain, img(2, 1), null, { trainEmbeddings: { dims: [3, 5], data: new Float32Array(15) } })).rejects.toThrow(/columns/);
    await expect(memorizationScore(plain, img(2, 1), img(1, 2), { threshold: Number.NaN })).rejects.toThrow(/threshold/);
  });
});

describe('scoreRecord', () => {
  it('records descriptor, exact aggregation text and threshold', () => {
    const rec = scoreRecord(pixelDescriptor(new Float32Array(12)));
    expect(rec.threshold).toBe(0.75);
    expect(rec.descriptor.name).toBe('pixel');
    expect(rec.descriptor.dim).toBe(12);
    expect(rec.aggregation).toBe(SCORE_AGGREGATION);
    expect(rec.aggregation.startsWith('sim_train = mean_n cos(f(gen_n), f(x)); sim_gen = mean over ordered pairs n≠m')).toBe(true);
    expect(rec.aggregation).toContain('score = (sim_train + sim_gen)/2');
    expect(scoreRecord(plain, { threshold: 0.5 }).threshold).toBe(0.5);
  });
});
