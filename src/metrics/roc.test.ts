import { describe, expect, it } from 'vitest';
import { rocAuc, rocCurve, tprAtFpr } from './roc.ts';
import { mulberry32 } from '../../test/helpers/random.ts';

/** Mann–Whitney by brute force over all (positive, negative) pairs, ties ½. */
function bruteAuc(scores: readonly number[], labels: readonly boolean[]): number {
  let num = 0;
  let pairs = 0;
  for (let i = 0; i < scores.length; i++) {
    if (!labels[i]) continue;
    for (let j = 0; j < scores.length; j++) {
      if (labels[j]) continue;
      pairs++;
      if (scores[i]! > scores[j]!) num += 1;
      else if (scores[i] === scores[j]) num += 0.5;
    }
  }
  return num / pairs;
}

describe('rocCurve', () => {
  it('matches a hand-computed curve without ties', () => {
    // sklearn.metrics.roc_curve([0,0,1,1], [0.1,0.4,0.35,0.8], drop_intermediate=False)
    const c = rocCurve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]);
    expect(c.thresholds).toEqual([Infinity, 0.8, 0.4, 0.35, 0.1]);
    expect(c.fpr).toEqual([0, 0, 0.5, 0.5, 1]);
    expect(c.tpr).toEqual([0, 0.5, 0.5, 1, 1]);
  });

  it('makes one diagonal step for tied scores', () => {
    const c = rocCurve([0.9, 0.5, 0.5, 0.5, 0.1], [true, true, false, false, false]);
    expect(c.thresholds).toEqual([Infinity, 0.9, 0.5, 0.1]);
    expect(c.tpr).toEqual([0, 0.5, 1, 1]);
    expect(c.fpr).toEqual([0, 0, 2 / 3, 1]);
  });

  it('names the argument on bad input', () => {
    expect(() => rocCurve([1, 2, 3], [0, 1])).toThrow(/scores and labels .* scores 3 and labels 2/);
    expect(() => rocCurve([1, 2], [1, 1])).toThrow(/labels has no negative/);
    expect(() => rocCurve([1, 2], [false, false])).toThrow(/labels has no positive/);
    expect(() => rocCurve([1, NaN], [0, 1])).toThrow(/scores\[1\] is NaN/);
    expect(() => rocCurve([1, 2], [0, 2 as 1])).toThrow(/labels: entry 1 is 2/);
    expect(() => rocAuc([], [])).toThrow(/labels has no positive/);
  });
});

describe('rocAuc', () => {
  it('is 1 for perfect separation and 0 when reversed', () => {
    expect(rocAuc([3, 4, 5, 0, 1, 2], [1, 1, 1, 0, 0, 0])).toBe(1);
    expect(rocAuc([0, 1, 2, 3, 4, 5], [1, 1, 1, 0, 0, 0])).toBe(0);
  });

  it('gives ties half credit', () => {
    // all equal: every pair is a tie → ½
    expect(rocAuc([7, 7, 7, 7], [1, 0, 1, 0])).toBe(0.5);
    // pos {0.9, 0.5}, neg {0.5, 0.5, 0.1}: pairs 0.9 > all (3), 0.5 ties 2 (1), 0.5 > 0.1 (1) → 5/6
    expect(rocAuc([0.9, 0.5, 0.5, 0.5, 0.1], [true, true, false, false, false])).toBeCloseTo(5 / 6, 15);
    // hand case without ties: pairs (0.35 vs 0.1 ✓, 0.35 vs 0.4 ✗, 0.8 ✓✓) → 3/4
    expect(rocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBe(0.75);
  });

  it('equals the brute-force Mann–Whitney statistic on random data with ties', () => {
    const rng = mulberry32(1234);
    for (let trial = 0; trial < 20; trial++) {
      const n = 20 + Math.floor(rng() * 80);
      const labels = Array.from({ length: n }, (_, i) => (i < 2 ? i === 0 : rng() < 0.4));
      // rounded scores make many ties; positives shifted up a little
      const scores = labels.map((l) => Math.round((rng() + (l ? 0.2 : 0)) * 10) / 10);
      expect(rocAuc(scores, labels)).toBeCloseTo(bruteAuc(scores, labels), 14);
    }
  });

  it('equals the trapezoid area under rocCurve', () => {
    const rng = mulberry32(99);
    const labels = Array.from({ length: 60 }, (_, i) => i % 3 === 0);
    const scores = labels.map((l) => Math.floor(rng() * 8) + (l ? 1 : 0));
    const c = rocCurve(scores, labels);
    let area = 0;
    for (let k = 1; k < c.fpr.length; k++) area += ((c.fpr[k]! - c.fpr[k - 1]!) * (c.tpr[k]! + c.tpr[k - 1]!)) / 2;
    expect(rocAuc(scores, labels)).toBeCloseTo(area, 14);
  });
});

describe('tprAtFpr', () => {
  it('reads the largest TPR within the FPR budget on a constructed case', () => {
    // 100 negatives with scores 0..99, 10 positives at 98.5, 97.5 and 8 below every negative
    const scores: number[] = [];
    const labels: boolean[] = [];
    for (let i = 0; i < 100; i++) {
      scores.push(i);
      labels.push(false);
    }
    scores.push(98.5, 97.5, -1, -2, -3, -4, -5, -6, -7, -8);
    labels.push(true, true, true, true, true, true, true, true, true, true);
    // threshold 98.5: FP = 1 (score 99) → FPR 0.01, TP = 1; threshold 98: FPR 0.02.
    expect(tprAtFpr(scores, labels)).toBeCloseTo(0.1, 15);
    expect(tprAtFpr(scores, labels, 0.01, { inclusive: false })).toBe(0); // strict: only FPR 0
    expect(tprAtFpr(scores, labels, 0.03)).toBeCloseTo(0.2, 15);
    expect(tprAtFpr(scores, labels, 1)).toBe(1);
    expect(tprAtFpr(scores, labels, 0)).toBe(0);
  });

  it('is 1 for perfect separation at any FPR', () => {
    expect(tprAtFpr([5, 6, 1, 2], [1, 1, 0, 0], 0)).toBe(1);
  });

  it('rejects an FPR outside [0, 1]', () => {
    expect(() => tprAtFpr([1, 0], [1, 0], 1.5)).toThrow(/fpr must be in \[0, 1\]/);
    expect(() => tprAtFpr([1, 0], [1, 0], NaN)).toThrow(/fpr must be/);
  });
});
