import { describe, expect, it } from 'vitest';
import { WEN_AGGREGATION, wenScores } from './wen.ts';
import { rocAuc } from '../metrics/roc.ts';

// 3 steps × (2 prompts × 2 seeds); d = ‖δ‖², chosen as perfect squares
const d = [
  [9, 25, 1, 4], // step 0: norms 3, 5 | 1, 2
  [16, 36, 0, 1], // step 1: norms 4, 6 | 0, 1
  [4, 4, 9, 9], //   step 2: norms 2, 2 | 3, 3
];

describe('wenScores', () => {
  it('averages the norm ‖ε_c − ε_u‖ over seeds (first step) and over steps and seeds (all steps)', () => {
    const s = wenScores(d, 2);
    expect(s.firstStep).toEqual([4, 1.5]);
    // prompt 0: per-step seed means 4, 5, 2 → 11/3; prompt 1: 1.5, 0.5, 3 → 5/3
    expect(s.allSteps[0]).toBeCloseTo(11 / 3, 14);
    expect(s.allSteps[1]).toBeCloseTo(5 / 3, 14);
  });

  it('uses d_t itself with magnitude "squared"', () => {
    const s = wenScores(d, 2, { magnitude: 'squared' });
    expect(s.firstStep).toEqual([17, 2.5]);
    expect(s.allSteps[0]).toBeCloseTo((17 + 26 + 4) / 3, 12);
    expect(s.allSteps[1]).toBeCloseTo((2.5 + 0.5 + 9) / 3, 12);
  });

  it('normalises by √dim (norm) or dim (squared)', () => {
    expect(wenScores(d, 2, { normalize: 'dim', dim: 4 }).firstStep).toEqual([2, 0.75]);
    expect(wenScores(d, 2, { magnitude: 'squared', normalize: 'dim', dim: 4 }).firstStep).toEqual([4.25, 0.625]);
    expect(() => wenScores(d, 2, { normalize: 'dim' })).toThrow(/needs dim/);
    expect(() => wenScores(d, 2, { normalize: 'dim', dim: 0 })).toThrow(/needs dim/);
  });

  it('treats every row as its own prompt with rowsPerPrompt = 1, and one prompt with all rows', () => {
    expect(wenScores(d, 1).firstStep).toEqual([3, 5, 1, 2]);
    expect(wenScores(d, 4).firstStep).toEqual([2.75]);
    expect(wenScores([[16]], 1).allSteps).toEqual([4]);
  });

  it('feeds an AUC: memorized prompts (high magnitude) rank above the rest', () => {
    const s = wenScores(d, 2);
    expect(rocAuc(s.firstStep, [true, false])).toBe(1);
  });

  it('rejects malformed records', () => {
    expect(() => wenScores([], 2)).toThrow(/no steps/);
    expect(() => wenScores([[]], 2)).toThrow(/unguided/);
    expect(() => wenScores([[1, 2, 3]], 2)).toThrow(/3 rows per step, not a multiple of rowsPerPrompt 2/);
    expect(() => wenScores([[1, 2], [1]], 2)).toThrow(/d\[1\] has 1 rows, d\[0\] has 2/);
    expect(() => wenScores([[1, -1]], 2)).toThrow(/d\[0\]\[1\] is -1/);
    expect(() => wenScores([[1, NaN]], 2)).toThrow(/d\[0\]\[1\] is NaN/);
    expect(() => wenScores(d, 0)).toThrow(/rowsPerPrompt must be a positive integer/);
    expect(() => wenScores(d, 2, { magnitude: 'l1' as 'norm' })).toThrow(/magnitude must be/);
  });

  it('documents its aggregation', () => {
    expect(WEN_AGGREGATION).toMatch(/row = p\*N \+ n/);
  });
});
