/**
 * Intervals and verdicts against closed forms and published values: Wilson intervals of
 * Newcombe (1998, Table I), the Hanley–McNeil (1982) worked example (A = 0.893, 51 abnormal /
 * 58 normal, SE = 0.032), Student t quantiles from the standard table, normal quantiles, the
 * Fisher-z closed form, and the verdict rules (minimum n, whole interval on one side, not measured).
 */
import { describe, it, expect } from 'vitest';
import {
  wilsonInterval,
  clusteredRateInterval,
  fisherZInterval,
  aucInterval,
  hanleyMcNeilSe,
  normalQuantile,
  studentTQuantile,
  studentTCdf,
  meanInterval,
  pairedDifferenceInterval,
  welchDifferenceInterval,
  judge,
  allOf,
  notMeasured,
  minNegativesForFpr,
  minCalibrationImages,
  MIN_N,
  rateText,
  clusteredRateText,
} from './verdict.ts';

describe('distributions', () => {
  it('normal quantiles equal the table values', () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963984540054, 12);
    expect(normalQuantile(0.995)).toBeCloseTo(2.5758293035489, 11);
    expect(normalQuantile(0.5)).toBe(0);
    expect(normalQuantile(0.025)).toBeCloseTo(-1.959963984540054, 12);
    expect(normalQuantile(1e-10)).toBeCloseTo(-6.361340902404056, 9);
  });
  it('Student t quantiles equal the printed table (two-sided 95 %)', () => {
    const table: [number, number][] = [[1, 12.706], [2, 4.303], [4, 2.776], [9, 2.262], [29, 2.045], [100, 1.984]];
    for (const [df, t] of table) expect(studentTQuantile(0.975, df)).toBeCloseTo(t, 3);
    // t with 1 df is Cauchy: CDF = ½ + atan(t)/π
    for (const t of [-3, -0.4, 0.7, 5]) expect(studentTCdf(t, 1)).toBeCloseTo(0.5 + Math.atan(t) / Math.PI, 12);
  });
});

describe('intervals', () => {
  it('Wilson score intervals equal Newcombe (1998) Table I', () => {
    const cases: [number, number, number, number][] = [
      [81, 263, 0.2553, 0.3662],
      [15, 148, 0.0624, 0.1605],
      [0, 20, 0, 0.1611],
      [1, 29, 0.0061, 0.1718],
    ];
    for (const [k, n, lo, hi] of cases) {
      const w = wilsonInterval(k, n);
      expect(w.lo).toBeCloseTo(lo, 4);
      expect(w.hi).toBeCloseTo(hi, 4);
    }
    // closed form at k = 0: upper = z²/(n + z²)
    const z = 1.959963984540054;
    expect(wilsonInterval(0, 4).hi).toBeCloseTo((z * z) / (4 + z * z), 12);
    expect(() => wilsonInterval(5, 4)).toThrow(/0 ≤ k ≤ n/);
  });
  it('cluster-adjusted Wilson: Wilson over all samples when prompts do not differ, over the prompts when each is all-or-nothing', () => {
    const same = clusteredRateInterval([2, 2, 2, 2, 2], 4); // every prompt 2 of 4: ρ clipped to 0
    expect(same.designEffect).toBe(1);
    expect(same.interval.lo).toBeCloseTo(wilsonInterval(10, 20).lo, 12);
    expect(same.interval.hi).toBeCloseTo(wilsonInterval(10, 20).hi, 12);
    const blocks = clusteredRateInterval([4, 0, 4, 0, 0], 4); // ρ = 1: 2 of 5 prompts
    expect(blocks.designEffect).toBeCloseTo(4, 12);
    expect(blocks.effectiveN).toBeCloseTo(5, 12);
    expect(blocks.interval.lo).toBeCloseTo(wilsonInterval(2, 5).lo, 12);
    expect(blocks.interval.hi).toBeCloseTo(wilsonInterval(2, 5).hi, 12);
    // by hand: hits [3, 1, 2, 2], m = 4 → p = ½, MSB = 4·(1/16 + 1/16)/3 = 1/6, MSW = (3/4 + 3/4 + 1 + 1)/12 = 7/24,
    // ρ = (1/6 − 7/24)/(…) < 0 → 0
    expect(clusteredRateInterval([3, 1, 2, 2], 4).designEffect).toBe(1);
    // hits [4, 3, 0, 1], m = 4: p = ½, MSB = 4·(1/4 + 1/16 + 1/4 + 1/16)/3 = 5/6, MSW = (0 + 3/4 + 0 + 3/4)/12 = 1/8,
    // ρ = (5/6 − 1/8)/(5/6 + 3/8) = (17/24)/(29/24) = 17/29
    expect(clusteredRateInterval([4, 3, 0, 1], 4).designEffect).toBeCloseTo(1 + (3 * 17) / 29, 12);
  });
  it('Fisher-z interval equals tanh(atanh r ± z/√(n − 3))', () => {
    const f = fisherZInterval(0.5, 28);
    expect(f.lo).toBeCloseTo(Math.tanh(Math.atanh(0.5) - 1.959963984540054 / 5), 12);
    expect(f.hi).toBeCloseTo(Math.tanh(Math.atanh(0.5) + 1.959963984540054 / 5), 12);
    expect(f.lo).toBeCloseTo(0.156, 3);
    expect(f.hi).toBeCloseTo(0.7356, 3);
    expect(Number.isNaN(fisherZInterval(0.9, 3).lo)).toBe(true);
  });
  it('Hanley–McNeil SE: the paper’s worked example (A = 0.893, 51 / 58 → SE 0.032) and a hand computation', () => {
    // the paper prints SE = 0.032; by hand 0.03251 (Q1 = 0.80668, Q2 = 0.84249)
    expect(Math.abs(hanleyMcNeilSe(0.893, 51, 58) - 0.032)).toBeLessThan(0.001);
    expect(hanleyMcNeilSe(0.893, 51, 58)).toBeCloseTo(0.03251, 4);
    // by hand: Q1 = 0.8/1.2 = 2/3, Q2 = 1.28/1.8 = 0.7111…, A(1−A) = 0.16,
    // SE² = (0.16 + 9·(2/3 − 0.64) + 9·(0.71111 − 0.64)) / 100 = (0.16 + 0.24 + 0.64) / 100 = 0.0104
    expect(hanleyMcNeilSe(0.8, 10, 10) ** 2).toBeCloseTo(0.0104, 12);
    const iv = aucInterval(0.8, 10, 10);
    expect(iv.lo).toBeCloseTo(0.8 - 1.959963984540054 * Math.sqrt(0.0104), 12);
    expect(iv.hi).toBe(Math.min(1, 0.8 + 1.959963984540054 * Math.sqrt(0.0104)));
  });
  it('mean, paired and Welch intervals equal their closed forms', () => {
    const v = [1, 2, 3, 4, 5];
    const m = meanInterval(v);
    // mean 3, sd √2.5, t(0.975, 4) = 2.7764451
    expect(m.value).toBe(3);
    expect(m.interval.hi - 3).toBeCloseTo(2.7764451052 * Math.sqrt(2.5 / 5), 7);
    const p = pairedDifferenceInterval([2, 4, 6, 8, 10], [1, 2, 3, 4, 5]);
    expect(p.value).toBe(3);
    expect(p.interval.lo).toBeCloseTo(m.interval.lo, 12);
    // Welch with equal sizes and variances: df = 2n − 2, se = √(2s²/n)
    const w = welchDifferenceInterval([1, 2, 3, 4, 5], [0, 1, 2, 3, 4]);
    expect(w.value).toBe(1);
    expect(w.interval.hi - 1).toBeCloseTo(studentTQuantile(0.975, 8) * Math.sqrt((2 * 2.5) / 5), 9);
  });
  it('minimum n: ⌈1/f⌉ negatives for TPR at FPR f, ⌈1/(1 − q)⌉ images for a q-quantile threshold', () => {
    expect(minNegativesForFpr(0.01)).toBe(100);
    expect(minNegativesForFpr(0.05)).toBe(20);
    expect(minCalibrationImages(0.99)).toBe(100);
    expect(minCalibrationImages(0.95)).toBe(20);
    expect(MIN_N.correlation).toBe(10);
  });
});

describe('rateText', () => {
  it('prints the rate with its Wilson interval and n, inconclusive below 10 trials', () => {
    // Wilson 0/20: [0, z²/(20 + z²)] = [0, 16.1 %]
    expect(rateText(0, 20)).toBe('0.0 % [0.0, 16.1] (n = 20)');
    expect(rateText(0.5, 4)).toMatch(/^50\.0 % \[15\.0, 85\.0\] \(n = 4\): inconclusive \(n = 4 < 10\)$/);
    expect(rateText(NaN, 4)).toBe('not measured');
  });
});

describe('clusteredRateText', () => {
  it('prints the cluster-adjusted rate with n and prompts; inconclusive below 10 prompts or for the caller’s reason', () => {
    // 10 prompts × 1 seed, 3 hits: plain Wilson at n = 10, centre (0.3 + z²/20)/(1 + z²/10), half-width z·√(0.021 + z²/400)/(1 + z²/10) → [10.8, 60.3]
    expect(clusteredRateText([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], 1, 'samples').text).toBe('30.0 % [10.8, 60.3] (10 samples of 10 prompts)');
    // 5 prompts, each all or nothing over 4 seeds (ρ = 1): Wilson over the 5 prompts, 2/5 → [11.8, 76.9]
    const c = clusteredRateText([4, 4, 0, 0, 0], 4, 'generations');
    expect(c.designEffect).toBeCloseTo(4, 12);
    expect(c.text).toBe('40.0 % [11.8, 76.9] (20 generations of 5 prompts): inconclusive (prompts = 5 < 10)');
    expect(clusteredRateText([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], 1, 'samples', 'threshold from n_heldout = 12 < 50').text).toBe('30.0 % [10.8, 60.3] (10 samples of 10 prompts): inconclusive (threshold from n_heldout = 12 < 50)');
  });
});

describe('judge', () => {
  const iv = (lo: number, hi: number) => ({ lo, hi, level: 0.95, method: 'test' });
  it('holds only when the whole interval is on the claim side, does not hold only when it is wholly on the other', () => {
    expect(judge({ claim: 'r > 0.7', value: 0.9, interval: iv(0.75, 0.97), n: 20, minN: 10, side: { above: 0.7 } }).verdict).toBe('holds');
    expect(judge({ claim: 'r > 0.7', value: 0.8, interval: iv(0.5, 0.95), n: 20, minN: 10, side: { above: 0.7 } }).verdict).toBe('inconclusive');
    expect(judge({ claim: 'r > 0.7', value: 0.2, interval: iv(-0.2, 0.6), n: 20, minN: 10, side: { above: 0.7 } }).verdict).toBe('does not hold');
    expect(judge({ claim: 'x < 0', value: -1, interval: iv(-2, -0.1), n: 20, minN: 10, side: { below: 0 } }).verdict).toBe('holds');
    expect(judge({ claim: 'k ≈ 1', value: 1, interval: iv(0.9, 1.1), n: 20, minN: 10, side: { within: [0.85, 1.15] } }).verdict).toBe('holds');
    expect(judge({ claim: 'k ≈ 1', value: 1.5, interval: iv(1.2, 1.8), n: 20, minN: 10, side: { within: [0.85, 1.15] } }).verdict).toBe('does not hold');
    expect(judge({ claim: 'k ≈ 1', value: 1.1, interval: iv(1.0, 1.3), n: 20, minN: 10, side: { within: [0.85, 1.15] } }).verdict).toBe('inconclusive');
  });
  it('below the minimum n: inconclusive with the n, whatever the interval; a non-finite value: not measured', () => {
    const v = judge({ claim: 'r < −0.7', value: -0.996, interval: iv(-1, -0.99), n: 4, nLabel: 'prompts', minN: 10, side: { below: -0.7 } });
    expect(v.verdict).toBe('inconclusive');
    expect(v.text).toBe('inconclusive (prompts = 4 < 10)');
    const nm = judge({ claim: 'r', value: NaN, interval: null, n: 0, minN: 10, side: { above: 0.7 } });
    expect(nm.verdict).toBe('not measured');
  });
  it('allOf: does not hold > not measured > inconclusive > holds', () => {
    const h = judge({ claim: 'a', value: 1, interval: iv(0.5, 2), n: 20, minN: 10, side: { above: 0 } });
    const d = judge({ claim: 'b', value: -1, interval: iv(-2, -0.5), n: 20, minN: 10, side: { above: 0 } });
    const i = judge({ claim: 'c', value: 1, interval: iv(-2, 2), n: 20, minN: 10, side: { above: 0 } });
    const n = notMeasured('d', 'no correlation');
    expect(allOf('x', [h, h]).verdict).toBe('holds');
    expect(allOf('x', [h, i]).verdict).toBe('inconclusive');
    expect(allOf('x', [h, n, i]).verdict).toBe('not measured');
    expect(allOf('x', [h, n, d]).verdict).toBe('does not hold');
  });
});
