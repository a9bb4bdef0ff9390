import { runCli } from '../helpers/cli.ts';
import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeNpy } from '../../src/io/npy.ts';

const run = runCli;

const TINY = ['--scenario', 'duplication', '--batch-size', '8', '--captions', '10', '--duplicates', '5', '--channels', '8,16', '--checkpoint-every', '2'];

describe('memscope train / sample / export on a tiny duplication model', () => {
  it('a run stopped after 2 steps and resumed to 4 gives the same weights as 4 steps at once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memscope-train-'));
    const a = await run(['train', ...TINY, '--steps', '4', '--out', join(dir, 'a')]);
    expect(a.err).toMatch(/trained 4 steps \(fresh start\)/);
    expect(a.code).toBe(0);
    expect((await run(['train', ...TINY, '--steps', '2', '--out', join(dir, 'b')])).code).toBe(0);
    const b = await run(['train', ...TINY, '--steps', '4', '--out', join(dir, 'b')]);
    expect(b.err).toMatch(/resumed from step 2/);
    const wa = await readFile(join(dir, 'a', 'weights.safetensors'));
    const wb = await readFile(join(dir, 'b', 'weights.safetensors'));
    expect(wa.length).toBeGreaterThan(1000);
    expect(wb.equals(wa)).toBe(true);
    const meta = JSON.parse(await readFile(join(dir, 'a', 'model.json'), 'utf8'));
    expect(meta.prompts).toHaveLength(20); // 10 class prompts + 10 captions
    expect(meta.training.steps).toBe(4);
    // a changed setting is refused instead of silently mixing runs
    const c = await run(['train', ...TINY, '--steps', '6', '--lr', '0.01', '--out', join(dir, 'b')]);
    expect(c.code).toBe(1);
    expect(c.err).toMatch(/lr/);

    // sampling the model directory equals sampling its ONNX export with the exported embeddings
    expect((await run(['sample', '--model', join(dir, 'a'), '--prompts', 'caption:0,class:1', '--steps', '4', '--seeds', '0-1', '--out', join(dir, 's1')])).code).toBe(0);
    expect((await run(['export', '--model', join(dir, 'a'), '--out', join(dir, 'e')])).code).toBe(0);
    expect((await readdir(join(dir, 'e'))).sort()).toEqual(['.memscope-results.json', 'cond.npy', 'prompts.json', 'scheduler_config.json', 'text_encoder.onnx', 'tokenizer.json', 'uncond.npy', 'unet.onnx']);
    const e = join(dir, 'e');
    const r2 = await run(['sample', '--model', join(e, 'unet.onnx'), '--cond', join(e, 'cond.npy'), '--uncond', join(e, 'uncond.npy'), '--scheduler-config', join(e, 'scheduler_config.json'), '--steps', '4', '--seeds', '0-1', '--out', join(dir, 's2')]);
    expect(r2.err).toBe('');
    const s1 = decodeNpy(await readFile(join(dir, 's1', 'samples.npy')));
    const s2 = decodeNpy(await readFile(join(dir, 's2', 'samples.npy')));
    expect(s1.dims).toEqual([4, 1, 32, 32]);
    expect(s2.dims).toEqual([40, 1, 32, 32]);
    const per = 1024;
    // caption:0 is prompt 10 (rows 20, 21 of the export run); class:1 is prompt 1 (rows 2, 3)
    expect(Array.from(s1.data.subarray(0, 2 * per))).toEqual(Array.from(s2.data.subarray(20 * per, 22 * per)));
    expect(Array.from(s1.data.subarray(2 * per, 4 * per))).toEqual(Array.from(s2.data.subarray(2 * per, 4 * per)));
  });

  it('rejects bad arguments naming the flag', async () => {
    expect((await run(['train'])).err).toMatch(/--scenario: required; expected one of duplication/);
    expect((await run(['train', '--scenario', 'big'])).err).toMatch(/--scenario/);
    expect((await run(['train', '--scenario', 'class', '--steps', '0'])).err).toMatch(/--steps/);
    expect((await run(['train', '--scenario', 'class', '--channels', '8,x'])).err).toMatch(/--channels/);
    expect((await run(['train', '--scenario', 'edm-small', '--images', '0'])).err).toMatch(/--images/);
    expect((await run(['train', '--scenario', 'edm-small-undertrained', '--band', '4-1'])).err).toMatch(/--band: expected 0 < LO < HI/);
    expect((await run(['train', '--scenario', 'edm-small-undertrained', '--band', '1-4:2'])).err).toMatch(/--band: expected ρ in \[0, 1\]/);
    expect((await run(['train', '--scenario', 'edm-small-undertrained', '--band', 'x'])).err).toMatch(/--band: expected LO-HI/);
  });

  it('--images and --band reach the scenario: the pool size and the loss band stored in model.json', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memscope-train-band-'));
    const r = await run(['train', '--scenario', 'edm-small-undertrained', '--images', '12', '--band', '0.5-3:0.25', '--batch-size', '4', '--channels', '8,16', '--steps', '1', '--out', join(dir, 'u')]);
    expect(r.code).toBe(0);
    const meta = JSON.parse(await readFile(join(dir, 'u', 'model.json'), 'utf8'));
    expect(meta.imagePool).toHaveLength(12);
    expect(meta.band).toEqual({ sigmaLo: 0.5, sigmaHi: 3, rho: 0.25 });
    expect(meta.settings.edmSmall).toBe(12);
  });
});
