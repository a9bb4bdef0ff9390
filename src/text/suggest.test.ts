import { describe, expect, it } from 'vitest';
import { didYouMean, editDistance, nearestName } from './suggest.ts';

/** Plain Levenshtein by full-matrix recursion (no swaps), an independent reference for strings without adjacent transpositions. */
function levenshtein(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}

describe('editDistance (optimal string alignment)', () => {
  it('textbook values', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('abc', '')).toBe(3);
    expect(editDistance('flaw', 'lawn')).toBe(2);
    expect(editDistance('same', 'same')).toBe(0);
  });
  it('an adjacent swap costs 1 (Levenshtein would say 2)', () => {
    expect(editDistance('smapler', 'sampler')).toBe(1);
    expect(levenshtein('smapler', 'sampler')).toBe(2);
    expect(editDistance('ca', 'ac')).toBe(1);
    // OSA, not unrestricted Damerau: "ca" → "abc" is 3 (the swapped pair cannot be edited again)
    expect(editDistance('ca', 'abc')).toBe(3);
  });
  it('equals Levenshtein on words without adjacent transpositions, and is symmetric', () => {
    const words = ['steps', 'seeds', 'seed', 'sampler', 'scheduler-config', 'out', 'model', 'prompt', 'prompts', 'prompt-set', 'guidance', 'eta', 'beta'];
    for (const a of words) {
      for (const b of words) {
        expect(editDistance(a, b)).toBe(editDistance(b, a));
        expect(editDistance(a, b)).toBeLessThanOrEqual(levenshtein(a, b));
      }
    }
    expect(editDistance('steps', 'seeds')).toBe(levenshtein('steps', 'seeds'));
    expect(editDistance('prompt', 'prompt-set')).toBe(4);
  });
});

describe('nearestName / didYouMean', () => {
  const flags = ['model', 'steps', 'seeds', 'sampler', 'eta', 'guidance', 'out', 'prompt', 'prompt-set', 'trajectory'];
  it('suggests the nearest within the length-scaled threshold', () => {
    expect(nearestName('samplr', flags)).toBe('sampler');
    expect(nearestName('smapler', flags)).toBe('sampler');
    expect(nearestName('stesp', flags)).toBe('steps');
    expect(nearestName('trajectroy', flags)).toBe('trajectory');
    expect(nearestName('GUIDANCE', flags)).toBe('guidance');
    expect(nearestName('promptset', flags)).toBe('prompt-set');
  });
  it('suggests nothing for unrelated words', () => {
    expect(nearestName('xyzzy', flags)).toBeNull();
    expect(nearestName('q', flags)).toBeNull();
    expect(nearestName('', flags)).toBeNull();
    expect(didYouMean('xyzzy', flags)).toBe('');
  });
  it('formats the suggestion', () => {
    expect(didYouMean('samplr', flags)).toBe(' (did you mean "sampler"?)');
    expect(didYouMean('samplr', flags, (s) => `--${s}`)).toBe(' (did you mean --sampler?)');
  });
});
