/** The word-level tokenizer: vocabulary order, special ids, encoding, truncation, null prompt, JSON. */
import { describe, expect, it } from 'vitest';
import { END_ID, NUM_SPECIAL, PAD_ID, START_ID, UNK_ID, WordTokenizer, splitWords } from './word-tokenizer.ts';

describe('WordTokenizer', () => {
  const texts = ['A photo of a Cat.', 'cat-dog, photo #2', 'Élan vital 2'];
  const tok = WordTokenizer.fromTexts(texts);

  it('splits lower-cased text on non-letters/digits (Unicode)', () => {
    expect(splitWords('  Hello, WORLD!! 42-x\tÉté ')).toEqual(['hello', 'world', '42', 'x', 'été']);
    expect(splitWords('')).toEqual([]);
    expect(splitWords('...')).toEqual([]);
  });

  it('numbers words in order of first appearance after the 4 special ids', () => {
    expect([PAD_ID, UNK_ID, START_ID, END_ID, NUM_SPECIAL]).toEqual([0, 1, 2, 3, 4]);
    expect(tok.words).toEqual(['a', 'photo', 'of', 'cat', 'dog', '2', 'élan', 'vital']);
    expect(tok.vocabSize).toBe(12);
    expect(tok.idOf('cat')).toBe(7);
    expect(tok.idOf('zebra')).toBe(UNK_ID);
    expect(WordTokenizer.fromTexts(texts).words).toEqual(tok.words);
    expect(WordTokenizer.fromTexts(texts, { maxWords: 3 }).words).toEqual(['a', 'photo', 'of']);
  });

  it('encodes with start/end, padding, unknowns; the empty prompt is [start, end, pad…]', () => {
    expect(tok.encode('a CAT photo', 8)).toEqual([2, 4, 7, 5, 3, 0, 0, 0]);
    expect(tok.encode('a zebra', 6)).toEqual([2, 4, 1, 3, 0, 0]);
    expect(tok.encode('')).toEqual([2, 3, ...new Array<number>(14).fill(0)]);
    expect(tok.encode('').length).toBe(16);
    expect(tok.encode('!!!', 4)).toEqual([2, 3, 0, 0]);
  });

  it('truncates keeping the end token', () => {
    expect(tok.encode('a photo of a cat dog', 5)).toEqual([2, 4, 5, 6, 3]);
    expect(tok.encode('a photo', 2)).toEqual([2, 3]);
    expect(() => tok.encode('a', 1)).toThrow(/L must be/);
  });

  it('encodeBatch gives an int64 [N, L] feed; decode inverts up to normalisation', () => {
    const b = tok.encodeBatch(['a cat', ''], 4);
    expect(b.type).toBe('int64');
    expect(b.dims).toEqual([2, 4]);
    expect([...b.data].map(Number)).toEqual([2, 4, 7, 3, 2, 3, 0, 0]);
    expect(tok.decode(tok.encode('A photo of a zebra!', 10))).toBe('a photo of a <unk>');
    expect(() => tok.decode([99])).toThrow(/out of range/);
  });

  it('round-trips through JSON', () => {
    const json = JSON.stringify(tok);
    const back = WordTokenizer.fromJSON(json);
    expect(back.words).toEqual(tok.words);
    expect(back.encode('cat dog élan')).toEqual(tok.encode('cat dog élan'));
    expect(WordTokenizer.fromJSON(tok.toJSON()).vocabSize).toBe(tok.vocabSize);
    expect(() => WordTokenizer.fromJSON({ kind: 'memscope-word-tokenizer', version: 2, words: [] })).toThrow(/version/);
    expect(() => WordTokenizer.fromJSON({ kind: 'memscope-word-tokenizer', version: 1, words: ['a', 'a'] })).toThrow(/twice/);
    expect(() => WordTokenizer.fromJSON({ kind: 'memscope-word-tokenizer', version: 1, words: ['Cat'] })).toThrow(/normalised/);
  });
});
