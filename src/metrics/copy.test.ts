import { describe, expect, it } from 'vitest';
import { CopyDetector } from './copy.ts';

/** A deterministic, irregular fill (no RNG needed). */
function fill(n: number, d: number, salt: number): Float32Array {
  return Float32Array.from({ length: n * d }, (_, i) => Math.sin(i * 12.9898 + salt * 78.233) * 43758.5453 % 1);
}

describe('CopyDetector against an image pool', () => {
  it('searches only the pool rows and reports training indices (brute force in float64)', async () => {
    const n = 20;
    const d = 16;
    const train = { dims: [n, 1, 4, 4], data: fill(n, d, 1) };
    const pool = [3, 7, 11, 15, 19];
    const noise = fill(3, d, 2);
    // a near-copy of row 7 (in the pool), a near-copy of row 4 (not in the pool), and row 11 exactly
    const src = [7, 4, 11];
    const samples = { dims: [3, 1, 4, 4], data: Float32Array.from({ length: 3 * d }, (_, i) => train.data[src[Math.floor(i / d)]! * d + (i % d)]! + (Math.floor(i / d) === 2 ? 0 : 0.01 * noise[i]!)) };
    const det = await CopyDetector.create(train, pool);
    try {
      const stats = await det.stats(samples, [7, 4, 11]);
      for (let s = 0; s < 3; s++) {
        const dist = pool.map((r) => {
          let acc = 0;
          for (let j = 0; j < d; j++) acc += (samples.data[s * d + j]! - train.data[r * d + j]!) ** 2;
          return [r, Math.sqrt(acc)] as const;
        }).sort((a, b) => a[1] - b[1]);
        expect(stats[s]!.nn1).toBe(dist[0]![0]);
        expect(stats[s]!.ratio).toBeCloseTo(dist[0]![1] / dist[1]![1], 4);
      }
      expect(stats.map((c) => c.nearestIsTarget)).toEqual([true, false, true]);
      expect(stats[0]!.ratioCopy).toBe(true);
      expect(stats[1]!.nn1).not.toBe(4);
      expect(stats[2]!.similarity).toBeCloseTo(1, 5);
    } finally {
      await det.dispose();
    }
    // without a pool the near-copy of row 4 finds row 4
    const all = await CopyDetector.create(train);
    try {
      expect((await all.stats(samples, [7, 4, 11]))[1]!.nn1).toBe(4);
    } finally {
      await all.dispose();
    }
  });
});
