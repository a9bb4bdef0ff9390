/**
 * The training-time mitigations of issue 20 §4 in `memscope train`: Somepalli et al.'s random word
 * addition (`--caption-noise random-word[:n]`) and Wen et al.'s threshold filter (`--wen-filter X`).
 * Caption noise: the batch's ids equal the tokenizer's encoding of `randomWordInsertion` seeded from
 * the step's stream, the dropout rows stay empty, and without it the stream is the one every earlier
 * run used. The filter: a threshold no example reaches trains bit-identically to no filter; one every
 * conditional example exceeds removes exactly the rows that were not dropped to the empty caption
 * (their conditional and unconditional estimates coincide) — counted from the step streams here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captionIds } from '../../src/train/run.ts';
import { stepEngine, uniformFrom } from '../../src/train/noise.ts';
import { WordTokenizer } from '../../src/text/word-tokenizer.ts';
import { randomWordInsertion } from '../../src/mitigate/prompt-noise.ts';
import { runCli } from '../helpers/cli.ts';

const texts = ['a red bag on a table', 'an image of a sneaker', 'vintage photo of a blue dress', 'a coat', 'studio shot of a white shirt', 'an image of a bag'];
const tok = WordTokenizer.fromTexts(texts);
const L = 16;

describe('captionIds', () => {
  it('without caption noise: the empty caption below the dropout draw, else the caption (the earlier stream)', () => {
    for (const step of [0, 7, 123]) {
      const ids = captionIds({ seed: 3, step, L, condDropout: 0.3, captionNoise: null, texts, tokenizer: tok });
      const u = uniformFrom(stepEngine(3, step, 'aux'), texts.length);
      texts.forEach((t, r) => expect(Array.from(ids.subarray(r * L, (r + 1) * L))).toEqual(Array.from(tok.encode(u[r]! < 0.3 ? '' : t, L))));
    }
  });

  it('with random-word:2: each kept caption gets two vocabulary words, seeded by the step stream after the dropout draws', () => {
    let changed = 0;
    for (const step of [0, 1, 2, 3]) {
      const ids = captionIds({ seed: 5, step, L, condDropout: 0.2, captionNoise: { kind: 'random-word', count: 2 }, texts, tokenizer: tok });
      const u = uniformFrom(stepEngine(5, step, 'aux'), 2 * texts.length);
      texts.forEach((t, r) => {
        const row = Array.from(ids.subarray(r * L, (r + 1) * L));
        if (u[r]! < 0.2) {
          expect(row).toEqual(Array.from(tok.encode('', L)));
          return;
        }
        const noisy = randomWordInsertion(t, { seed: Math.floor(u[texts.length + r]! * 2 ** 24), count: 2, vocabulary: tok.words });
        expect(noisy.split(' ')).toHaveLength(t.split(' ').length + 2);
        expect(row).toEqual(Array.from(tok.encode(noisy, L)));
        if (noisy !== t) changed++;
        // every inserted word is a vocabulary word (no <unk>)
        expect(noisy.split(' ').every((w) => tok.words.includes(w))).toBe(true);
      });
    }
    expect(changed).toBeGreaterThan(10);
  });
});

describe('memscope train --wen-filter', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'memscope-train-mitigation-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });
  const TINY = ['--scenario', 'duplication', '--batch-size', '6', '--captions', '4', '--duplicates', '3', '--channels', '8,8', '--steps', '3', '--seed', '2'];
  const weights = (d: string) => readFile(join(root, d, 'weights.safetensors'));
  const meta = async (d: string) => JSON.parse(await readFile(join(root, d, 'model.json'), 'utf8'));

  it('a threshold nothing reaches trains bit-identically; one everything exceeds drops exactly the non-empty-caption rows', async () => {
    const plain = await runCli(['train', ...TINY, '--out', join(root, 'plain')]);
    expect(plain.code, plain.err).toBe(0);
    const high = await runCli(['train', ...TINY, '--wen-filter', '1e9', '--out', join(root, 'high')]);
    expect(high.code, high.err).toBe(0);
    expect((await weights('high')).equals(await weights('plain'))).toBe(true);
    expect((await meta('high')).training.wenFilter).toMatchObject({ rows: 18, filtered: 0 });
    const low = await runCli(['train', ...TINY, '--wen-filter', '1e-12', '--out', join(root, 'low')]);
    expect(low.code, low.err).toBe(0);
    const m = await meta('low');
    // rows kept = those dropped to the empty caption (ε̂_c = ε̂_u): the 'aux' draws below 0.1
    const dropout = m.settings.condDropout as number;
    let kept = 0;
    for (let step = 0; step < 3; step++) kept += Array.from(uniformFrom(stepEngine(2, step, 'aux'), 6)).filter((u) => u < dropout).length;
    expect(m.training.wenFilter).toMatchObject({ rows: 18, filtered: 18 - kept });
    expect(m.settings.wenFilter).toEqual({ threshold: 1e-12 });
    expect((await weights('low')).equals(await weights('plain'))).toBe(false);
    // the summary groups rows by the caption's duplication count
    const groups = m.training.wenFilter.byDuplication as Record<string, { rows: number }>;
    expect(Object.values(groups).reduce((a, g) => a + g.rows, 0)).toBe(18);
  });

  it('counts what the filter removed over the whole run: a run stopped after 2 steps and resumed to 3 reports all 3 steps', async () => {
    const twoSteps = TINY.map((v, i) => (TINY[i - 1] === '--steps' ? '2' : v));
    const first = await runCli(['train', ...twoSteps, '--wen-filter', '1e-12', '--checkpoint-every', '1', '--out', join(root, 'resumed')]);
    expect(first.code, first.err).toBe(0);
    expect((await meta('resumed')).training.wenFilter).toMatchObject({ fromStep: 0, rows: 12 });
    const rest = await runCli(['train', ...TINY, '--wen-filter', '1e-12', '--checkpoint-every', '1', '--out', join(root, 'resumed')]);
    expect(rest.code, rest.err).toBe(0);
    const whole = (await meta('low')).training.wenFilter;
    expect((await meta('resumed')).training.wenFilter).toEqual(whole);
    expect(whole).toMatchObject({ fromStep: 0, rows: 18 });
    expect((await weights('resumed')).equals(await weights('low'))).toBe(true);
  });

  it('refuses the mitigations on unconditional scenarios and bad values (exit 2)', async () => {
    const a = await runCli(['train', '--scenario', 'edm-small', '--wen-filter', '2', '--out', join(root, 'x')]);
    expect(a.code).toBe(2);
    expect(a.err).toContain('--wen-filter: not used by --scenario edm-small');
    const b = await runCli(['train', ...TINY, '--caption-noise', 'random-number', '--out', join(root, 'y')]);
    expect(b.code).toBe(2);
    expect(b.err).toContain('--caption-noise');
    expect(b.err).toContain('expected random-word or random-word:N');
    const c = await runCli(['train', ...TINY, '--wen-filter', '0', '--out', join(root, 'z')]);
    expect(c.code).toBe(2);
    expect(c.err).toContain('--wen-filter');
  });
});
