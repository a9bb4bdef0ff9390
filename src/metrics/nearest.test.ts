import { describe, it, expect } from 'vitest';
import { NearestIndex } from './nearest.ts';
import { CopyDetector } from './copy.ts';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

describe('nearest neighbours', () => {
  it('matches a brute-force float64 search', async () => {
    const r = lcg(7);
    const n = 300, d = 50, m = 20;
    const ref = { dims: [n, d], data: Float32Array.from({ length: n * d }, r) };
    const q = { dims: [m, d], data: Float32Array.from({ length: m * d }, r) };
    const idx = await NearestIndex.create(ref);
    const got = await idx.query(q, 3);
    for (let i = 0; i < m; i++) {
      const dists = Array.from({ length: n }, (_, j) => {
        let s = 0;
        for (let k = 0; k < d; k++) s += (q.data[i * d + k]! - ref.data[j * d + k]!) ** 2;
        return [s, j] as const;
      }).sort((a, b) => a[0] - b[0]);
      for (let k = 0; k < 3; k++) {
        expect(got.index[3 * i + k]).toBe(dists[k]![1]);
        expect(got.dist2[3 * i + k]).toBeCloseTo(dists[k]![0], 3);
      }
    }
    await expect(idx.query(q, 0)).rejects.toThrow(/k must be/);
    await idx.dispose();
  });
  it('copy detector: an exact copy has ratio 0, nearest = target and similarity 1', async () => {
    const r = lcg(3);
    const n = 100, d = 30;
    const ref = { dims: [n, d], data: Float32Array.from({ length: n * d }, r) };
    const sample = { dims: [2, d], data: Float32Array.from([...ref.data.subarray(5 * d, 6 * d), ...Array.from({ length: d }, r)]) };
    const det = await CopyDetector.create(ref);
    const [a, b] = await det.stats(sample, [5, 5]);
    expect(a).toMatchObject({ nn1: 5, ratioCopy: true, nearestIsTarget: true });
    expect(a!.ratio).toBeLessThan(1e-3);
    expect(a!.similarity).toBeCloseTo(1, 5);
    expect(b!.ratio).toBeGreaterThan(1 / 3); // a random point is not a copy of anything
    await det.dispose();
  });
});
