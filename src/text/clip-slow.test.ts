/**
 * transformers 4.x's slow CLIPTokenizer semantics (issue 19 §4) against ids computed
 * independently (scripts/reference/clip_slow.py: the documented clean-up written with Python's
 * unicodedata, then Hugging Face's Rust tokenizers) on the tiny CLIP vocabulary of the project's
 * test exports: `semantics: 'slow'` gives the slow ids, the default gives the fast ones, and they
 * differ exactly on zero-width / format / control characters and CJK ideographs.
 */
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadClipTokenizer } from './clip-tokenizer.ts';
import { slowClipText } from './clip-slow.ts';
import { writeTinySdExport } from '../../test/helpers/tiny-sd-export.ts';

interface Case {
  prompt: string;
  slowText: string;
  slow: number[];
  fast: number[];
}
const fx = JSON.parse(readFileSync(new URL('../../test/fixtures/clip_slow.json', import.meta.url), 'utf8')) as { cases: Case[] };

const dir = mkdtempSync(join(tmpdir(), 'memscope-clip-slow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeTinySdExport(dir);
const slow = loadClipTokenizer(join(dir, 'tokenizer'), { semantics: 'slow' });
const fast = loadClipTokenizer(join(dir, 'tokenizer'));

describe('CLIP tokenizer semantics: slow (transformers 4.x, no ftfy) and fast', () => {
  it.each(fx.cases.map((c) => [JSON.stringify(c.prompt), c] as const))('%s', (_name, c) => {
    expect(slowClipText(c.prompt)).toBe(c.slowText);
    expect(slow.tokenIds(c.prompt)).toEqual(c.slow);
    expect(fast.tokenIds(c.prompt)).toEqual(c.fast);
  });

  it('the two differ on the prompts with format / control characters or CJK ideographs, and only there', () => {
    const differ = fx.cases.filter((c) => JSON.stringify(c.slow) !== JSON.stringify(c.fast)).map((c) => c.prompt);
    expect(differ).toEqual(['猫が好き', '東京 tower 2024', 'zero\u200bwidth\u200bspace', 'soft\u00adhyphen and\u200dzwj', 'bell\u0007 and nul\u0000 and \ufffd']);
    expect(fast.semantics).toBe('fast');
    expect(slow.encode('猫が好き').ids[0]).toBe(slow.bosId);
  });
});
