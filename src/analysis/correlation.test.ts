/**
 * Pearson / Spearman / percentile bootstrap (used for SPEC §3.4 and §3.7 across prompts): hand
 * examples, ties, NaN handling, and a determinism check of the seeded bootstrap.
 */
import { describe, expect, it } from 'vitest';
import { bootstrapCorrelation, pearson, ranks, spearman } from './correlation.ts';
import { mulberry32, normals } from '../../test/helpers/random.ts';

/** Textbook two-pass Pearson, written out independently. */
function refPearson(x: readonly number[], y: readonly number[]): number {
  const n = x.length;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i]! - mx) * (y[i]! - my);
    sxx += (x[i]! - mx) ** 2;
    syy += (y[i]! - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}

describe('pearson', () => {
  it('is ±1 on exactly linear data', () => {
    const x = [0.5, 1, 2, 3.5, 7];
    expect(pearson(x, x.map((v) => 3 * v - 2))).toBeCloseTo(1, 14);
    expect(pearson(x, x.map((v) => -0.25 * v + 9))).toBeCloseTo(-1, 14);
  });

  it('matches a hand computation: x = 1..5, y = 2,1,4,3,5 → Σdxdy = 8, Σdx² = Σdy² = 10, r = 0.8', () => {
    expect(pearson([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])).toBeCloseTo(0.8, 14);
  });

  it('matches the two-pass formula on random data', () => {
    const rng = mulberry32(7);
    const x = Array.from(normals(rng, 40));
    const y = x.map((v) => 0.4 * v + rng());
    expect(pearson(x, y)).toBeCloseTo(refPearson(x, y), 12);
  });

  it('drops pairs with a non-finite value; NaN for < 2 pairs or a constant variable', () => {
    expect(pearson([1, 2, NaN, 3, 4], [2, 4, 100, Infinity, 8])).toBeCloseTo(1, 14);
    expect(pearson([1], [2])).toBeNaN();
    expect(pearson([1, 1, 1], [1, 2, 3])).toBeNaN();
    expect(() => pearson([1, 2], [1])).toThrow(/differ in length/);
  });
});

describe('ranks and spearman', () => {
  it('gives average ranks to ties and NaN to non-finite values', () => {
    expect(Array.from(ranks([10, 20, 20, 5]))).toEqual([2, 3.5, 3.5, 1]);
    expect(Array.from(ranks([3, NaN, 1, 3, 3]))).toEqual([3, NaN, 1, 3, 3]);
  });

  it('equals Pearson of the ranks with ties (hand: ranks 1,2.5,2.5,4 vs 1,3,2,4 → 4.5/√22.5)', () => {
    // dx = −1.5,0,0,1.5; dy = −1.5,0.5,−0.5,1.5: Σdxdy = 4.5, Σdx² = 4.5, Σdy² = 5 (scipy: 0.9486832980505138)
    expect(spearman([1, 2, 2, 3], [1, 3, 2, 4])).toBeCloseTo(4.5 / Math.sqrt(22.5), 14);
    expect(spearman([1, 2, 2, 3], [1, 3, 2, 4])).toBeCloseTo(0.9486832980505138, 14);
  });

  it('is 1 on any strictly monotone relation and ignores NaN pairs', () => {
    const x = [0.1, 0.5, 2, 3, 10];
    expect(spearman(x, x.map((v) => Math.exp(v)))).toBeCloseTo(1, 14);
    expect(spearman([...x, NaN], [...x.map((v) => -v * v * v), 0])).toBeCloseTo(-1, 14);
  });
});

describe('bootstrapCorrelation', () => {
  const rng = mulberry32(11);
  const x = Array.from(normals(rng, 60));
  const y = x.map((v) => 0.6 * v + 0.8 * Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng()));

  it('contains r, orders lo ≤ r ≤ hi and is deterministic in the seed', () => {
    for (const kind of ['pearson', 'spearman'] as const) {
      const a = bootstrapCorrelation(x, y, kind, { seed: 1 });
      const b = bootstrapCorrelation(x, y, kind, { seed: 1 });
      const c = bootstrapCorrelation(x, y, kind, { seed: 2 });
      expect(a).toEqual(b);
      expect(c.lo).not.toBe(a.lo);
      expect(a.r).toBe(kind === 'pearson' ? pearson(x, y) : spearman(x, y));
      expect(a.lo).toBeLessThan(a.r);
      expect(a.hi).toBeGreaterThan(a.r);
      expect(a.n).toBe(60);
      expect(a.level).toBe(0.95);
      // a 95 % interval for r ≈ 0.6 with n = 60 spans roughly ±0.15
      expect(a.hi - a.lo).toBeGreaterThan(0.1);
      expect(a.hi - a.lo).toBeLessThan(0.5);
    }
  });

  it('narrows with a lower level and is [1, 1] on exactly linear data', () => {
    const w = bootstrapCorrelation(x, y, 'pearson', { seed: 3, level: 0.95, resamples: 500 });
    const nrw = bootstrapCorrelation(x, y, 'pearson', { seed: 3, level: 0.5, resamples: 500 });
    expect(nrw.hi - nrw.lo).toBeLessThan(w.hi - w.lo);
    const lin = bootstrapCorrelation([1, 2, 3, 4, 5, 6], [2, 4, 6, 8, 10, 12], 'spearman', { seed: 5, resamples: 200 });
    expect(lin.lo).toBeCloseTo(1, 12);
    expect(lin.hi).toBeCloseTo(1, 12);
  });

  it('drops non-finite pairs and gives NaN fields below 3 pairs', () => {
    const r = bootstrapCorrelation([1, 2, NaN, 4, 5], [1, 3, 2, NaN, 6], 'pearson', { seed: 0 });
    expect(r.n).toBe(3);
    expect(r.r).toBeCloseTo(pearson([1, 2, 5], [1, 3, 6]), 14);
    const s = bootstrapCorrelation([1, 2, NaN], [1, 3, 2], 'spearman', { seed: 0 });
    expect(s).toEqual({ r: NaN, lo: NaN, hi: NaN, n: 2, level: 0.95 });
    expect(() => bootstrapCorrelation(x, y, 'pearson', { seed: 0, level: 1 })).toThrow(/level/);
    expect(() => bootstrapCorrelation(x, y, 'pearson', { seed: 0, resamples: 0 })).toThrow(/resamples/);
  });
});
