import { describe, it, expect } from 'vitest';
import { randomNumberInsertion, randomWordInsertion } from './prompt-noise.ts';

const VOCAB = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'];
const TEXT = 'studio photo of a red t-shirt/top on a wooden table';

/** The tokens of `perturbed` left after removing `original`'s words in order (null when they are not a subsequence). */
function extras(original: string, perturbed: string): string[] | null {
  const o = original.split(' ');
  const out: string[] = [];
  let k = 0;
  for (const w of perturbed.split(' ')) {
    if (k < o.length && w === o[k]) k++;
    else out.push(w);
  }
  return k === o.length ? out : null;
}

describe('Somepalli et al. random word / number insertion', () => {
  it('is deterministic in the seed and varies across seeds', () => {
    const a = randomWordInsertion(TEXT, { seed: 3, count: 2, vocabulary: VOCAB });
    expect(randomWordInsertion(TEXT, { seed: 3, count: 2, vocabulary: VOCAB })).toBe(a);
    const b = randomNumberInsertion(TEXT, { seed: 3, count: 2 });
    expect(randomNumberInsertion(TEXT, { seed: 3, count: 2 })).toBe(b);
    const words = new Set(Array.from({ length: 20 }, (_, s) => randomWordInsertion(TEXT, { seed: s, vocabulary: VOCAB })));
    const nums = new Set(Array.from({ length: 20 }, (_, s) => randomNumberInsertion(TEXT, { seed: s })));
    expect(words.size).toBeGreaterThan(5);
    expect(nums.size).toBe(20);
  });

  it('inserts exactly `count` tokens (default 1) and keeps the original words in order', () => {
    for (let seed = 0; seed < 50; seed++) {
      for (const count of [undefined, 0, 1, 3, 6]) {
        const w = randomWordInsertion(TEXT, { seed, vocabulary: VOCAB, ...(count === undefined ? {} : { count }) });
        const ew = extras(TEXT, w);
        expect(ew, w).not.toBeNull();
        expect(ew!.length).toBe(count ?? 1);
        for (const x of ew!) expect(VOCAB).toContain(x);
        const n = randomNumberInsertion(TEXT, { seed, max: 1000, ...(count === undefined ? {} : { count }) });
        const en = extras(TEXT, n);
        expect(en, n).not.toBeNull();
        expect(en!.length).toBe(count ?? 1);
        for (const x of en!) {
          expect(x).toMatch(/^\d+$/);
          expect(Number(x)).toBeLessThan(1000);
        }
      }
    }
    expect(randomWordInsertion(TEXT, { seed: 1, count: 0, vocabulary: [] })).toBe(TEXT);
  });

  it('uses every gap, both ends included (random.randint(0, len))', () => {
    const seen = new Set<number>();
    const base = 'a b c';
    for (let seed = 0; seed < 200; seed++) seen.add(randomNumberInsertion(base, { seed }).split(' ').findIndex((w) => /^\d+$/.test(w)));
    expect([...seen].sort()).toEqual([0, 1, 2, 3]);
  });

  it('rejects bad options', () => {
    expect(() => randomWordInsertion(TEXT, { seed: 1, vocabulary: [] })).toThrow(/vocabulary is empty/);
    expect(() => randomWordInsertion(TEXT, { seed: 1, count: -1, vocabulary: VOCAB })).toThrow(/count must be/);
    expect(() => randomNumberInsertion(TEXT, { seed: 1, max: 0 })).toThrow(/max must be/);
    expect(() => randomNumberInsertion(TEXT, { seed: 1.5 })).toThrow(/seed/);
  });
});
