/**
 * `--tokenizer slow` on a Stable Diffusion export (issue 19 §4): transformers 4.x's slow
 * CLIPTokenizer clean-up. On a prompt with CJK ideographs the text encoder gets other ids, so the
 * sample differs from the default (fast) one; on a plain ASCII prompt the ids — and so the samples
 * — are the same. The choice is part of the source's fingerprint: slow units never mix with fast ones.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinySdExport } from '../helpers/tiny-sd-export.ts';
import { runCli } from '../helpers/cli.ts';
import { readNpy } from '../../src/io/npy.ts';
import { readFileSync } from 'node:fs';

let root = '';
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'memscope-tokenizer-flag-'));
  writeTinySdExport(join(root, 'export'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function sample(prompt: string, out: string, extra: string[] = []): Promise<Float32Array> {
  const r = await runCli(['sample', '--model', join(root, 'export'), '--prompt', prompt, '--seeds', '0', '--steps', '3', '--store', join(root, 'store'), '--out', join(root, out), ...extra]);
  expect(r.code, r.err).toBe(0);
  return (await readNpy(join(root, out, 'samples.npy'))).data as Float32Array;
}

describe('--tokenizer', () => {
  it('slow changes a CJK prompt\'s sample, not an ASCII one\'s, and keeps its own units', async () => {
    const cjkFast = await sample('猫が好き', 'cjk-fast');
    const cjkSlow = await sample('猫が好き', 'cjk-slow', ['--tokenizer', 'slow']);
    expect(Array.from(cjkSlow)).not.toEqual(Array.from(cjkFast));
    const asciiFast = await sample('a cat', 'ascii-fast');
    const asciiSlow = await sample('a cat', 'ascii-slow', ['--tokenizer', 'slow']);
    expect(Array.from(asciiSlow)).toEqual(Array.from(asciiFast));
    // the slow run computed its own unit (the fingerprint names the clean-up), the fast one reused nothing either
    expect(JSON.parse(readFileSync(join(root, 'ascii-slow', 'run.json'), 'utf8'))).toMatchObject({ computed: 1, reused: 0 });
    const again = await runCli(['sample', '--model', join(root, 'export'), '--prompt', 'a cat', '--seeds', '0', '--steps', '3', '--tokenizer', 'fast', '--store', join(root, 'store'), '--out', join(root, 'ascii-fast-2')]);
    expect(again.code, again.err).toBe(0);
    expect(JSON.parse(readFileSync(join(root, 'ascii-fast-2', 'run.json'), 'utf8'))).toMatchObject({ computed: 0, reused: 1 });
  });

  it('refuses another value by name (exit 2)', async () => {
    const r = await runCli(['sample', '--model', join(root, 'export'), '--prompt', 'a cat', '--tokenizer', 'ftfy', '--out', join(root, 'never')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--tokenizer: "ftfy" is not one of fast, slow/);
  });
});
