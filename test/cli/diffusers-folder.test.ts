/**
 * `--model PIPELINE_DIR` (issue 19 §1): the study commands on a tiny diffusers pipeline folder
 * (test/helpers/tiny-diffusers-folder.ts: safetensors weights written by the PyTorch reference).
 * `sample` equals the latent pipeline's `generate` on the opened folder; `detect` runs Ren et
 * al.'s attention entropy on memscope's own U-Net graph; bad `--variant` values are usage errors.
 */
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyDiffusersFolder } from '../helpers/tiny-diffusers-folder.ts';
import { runCli } from '../helpers/cli.ts';
import { readNpy } from '../../src/io/npy.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import { openStableDiffusion } from '../../src/sd/open.ts';
import { generate } from '../../src/sd/pipeline.ts';
import { loadStudySource } from '../../src/study/source.ts';
import { initialNoise } from '../../src/study/sampling.ts';
import { concatBatch } from '../../src/tensor/tensor.ts';

let root: string;
let folder: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'memscope-diffusers-cli-'));
  folder = writeTinyDiffusersFolder(join(root, 'sd-tiny'), 'sd1');
  mkdirSync(join(root, 'images'));
  for (let i = 0; i < 2; i++) {
    const px = Buffer.alloc(64 * 64 * 3, 40 + 90 * i);
    await sharp(px, { raw: { width: 64, height: 64, channels: 3 } }).png().toFile(join(root, 'images', `img${i}.png`));
  }
  writeFileSync(join(root, 'prompts.csv'), 'caption,image,label\n"a photo of the cat",images/img0.png,MV\n"a dog on the beach",images/img1.png,N\n');
}, 60_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('diffusers pipeline folder on the command line', () => {
  it('sample: the samples are the pipeline generate() on the opened folder; config.json says diffusers-folder with the resolved configs', async () => {
    const out = join(root, 'runs', 'sample');
    const r = await runCli(['sample', '--model', folder, '--prompt', 'a photo of the cat', '--seeds', '0-1', '--steps', '4', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const run = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(run.model.format).toBe('diffusers-folder');
    expect(run.model.diffusers.weights).toEqual(['unet/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors', 'vae/diffusion_pytorch_model.safetensors']);
    const sd = await openStableDiffusion(folder, { threads: 1 });
    try {
      const g = await generate(sd, { prompts: ['a photo of the cat'], seeds: [0, 1], steps: 4, sampler: 'ddim' });
      const got = await readNpy(join(out, 'samples.npy'));
      expect(got.dims).toEqual(g.latents.dims);
      let m = 0;
      for (let i = 0; i < got.data.length; i++) m = Math.max(m, Math.abs(got.data[i]! - g.latents.data[i]!));
      expect(m).toBeLessThan(1e-5);
    } finally {
      await sd.dispose();
    }
  }, 60_000);

  it('--model FILE.safetensors --pipeline-config DIR: a single-file checkpoint samples as generate() on it; config.json records the file and the configs folder; without --pipeline-config a usage error', async () => {
    const file = join(import.meta.dirname, '..', 'fixtures', 'ldm-tiny', 'sd1', 'model.safetensors');
    const out = join(root, 'runs', 'single-file');
    const r = await runCli(['sample', '--model', file, '--pipeline-config', folder, '--prompt', 'a photo of the cat', '--seeds', '0-1', '--steps', '4', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const run = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(run.model.format).toBe('single-file');
    expect(run.model.pipelineConfig).toBe(folder);
    expect(run.model.diffusers.singleFile.path).toBe(file);
    const sd = await openStableDiffusion(file, { pipelineConfig: folder, threads: 1 });
    try {
      const g = await generate(sd, { prompts: ['a photo of the cat'], seeds: [0, 1], steps: 4, sampler: 'ddim' });
      const got = await readNpy(join(out, 'samples.npy'));
      let m = 0;
      for (let i = 0; i < got.data.length; i++) m = Math.max(m, Math.abs(got.data[i]! - g.latents.data[i]!));
      expect(m).toBeLessThan(1e-5);
      // not the folder's own weights: the samples differ from the folder's
      const f = await readNpy(join(root, 'runs', 'sample', 'samples.npy'));
      let d = 0;
      for (let i = 0; i < f.data.length; i++) d = Math.max(d, Math.abs(f.data[i]! - got.data[i]!));
      expect(d).toBeGreaterThan(1e-3);
    } finally {
      await sd.dispose();
    }
    const bad = await runCli(['sample', '--model', file, '--prompt', 'a cat', '--out', join(root, 'runs', 'single-bad')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--pipeline-config: required with the single-file checkpoint/);
    const ckpt = join(root, 'v1-5.ckpt');
    writeFileSync(ckpt, 'PK');
    const pickle = await runCli(['sample', '--model', ckpt, '--out', join(root, 'runs', 'single-ckpt')]);
    expect(pickle.code).toBe(2);
    expect(pickle.err).toMatch(/is a pickle checkpoint, which memscope does not open/);
  }, 60_000);

  it('detect: Ren et al.\'s attention entropy on the folder\'s U-Net (−E ∈ [−ln 77, 0])', async () => {
    const out = join(root, 'runs', 'detect');
    const r = await runCli(['detect', '--model', folder, '--prompt-set', join(root, 'prompts.csv'), '--steps', '4', '--seeds', '0-1', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const det = JSON.parse(readFileSync(join(out, 'detect.json'), 'utf8'));
    const ren = det.detectors.find((x: { name: string }) => x.name === 'ren-entropy');
    expect(ren.scores).toHaveLength(2);
    for (const v of ren.scores) expect(v <= 0 && v >= -Math.log(77)).toBe(true);
  }, 60_000);

  it('--lora FILE:scale merges an adapter (listed in config.json, samples change); a missing file is a usage error', async () => {
    const lora = join(root, 'lora.safetensors');
    const mod = 'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k';
    await writeSafetensors(lora, new Map([
      [`${mod}.lora_down.weight`, { dims: [2, 16], data: Float32Array.from({ length: 32 }, (_, i) => Math.sin(i)) }],
      [`${mod}.lora_up.weight`, { dims: [8, 2], data: Float32Array.from({ length: 16 }, (_, i) => Math.cos(i)) }],
    ]));
    const out = join(root, 'runs', 'lora');
    const r = await runCli(['sample', '--model', folder, '--prompt', 'a photo of the cat', '--seeds', '0-1', '--steps', '4', '--lora', `${lora}:0.8`, '--out', out]);
    expect(r.code, r.err).toBe(0);
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(cfg.model.diffusers.lora).toEqual([{ path: lora, scale: 0.8, adapted: { unet: 1, textEncoder: 0 } }]);
    const a = await readNpy(join(out, 'samples.npy'));
    const b = await readNpy(join(root, 'runs', 'sample', 'samples.npy'));
    let m = 0;
    for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
    expect(m).toBeGreaterThan(1e-4);
    const bad = await runCli(['sample', '--model', folder, '--prompt', 'a cat', '--lora', join(root, 'nope.safetensors'), '--out', join(root, 'runs', 'bad-lora')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--lora: .*nope\.safetensors/);
  }, 60_000);

  it('detect on a labelled list without images (as the public sets are read): the labels are the ground truth; evaluate still needs images', async () => {
    const list = join(root, 'labels-only.csv');
    writeFileSync(list, 'caption,label\n"a photo of the cat",MV\n"a dog on the beach",N\n"the cat on the beach",TV\n');
    const out = join(root, 'runs', 'detect-labels');
    const r = await runCli(['detect', '--model', folder, '--prompt-set', list, '--steps', '4', '--seeds', '0-1', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const det = JSON.parse(readFileSync(join(out, 'detect.json'), 'utf8'));
    expect(det.prompts.map((p: { memorized: boolean }) => p.memorized)).toEqual([true, false, true]);
    expect(det.detectors.map((x: { name: string }) => x.name)).toEqual(['wen-first-step', 'wen-all-steps', 'webster-one-step', 'ren-entropy']);
    for (const x of det.detectors) expect(x.tprAtFprs.map((t: { fpr: number }) => t.fpr)).toEqual([0.01, 0.03, 0.05, 0.1]);
    const ev = await runCli(['evaluate', '--model', folder, '--prompt-set', list, '--threshold', '0.5', '--methods', 'cfg', '--steps', '4', '--out', join(root, 'runs', 'ev-labels')]);
    expect(ev.code).toBe(2);
    expect(ev.err).toMatch(/comes without training images/);
  }, 60_000);

  it('CADS: the condition-transform denoiser with the identity predicts what the source predicts; evaluate cads:0.5 changes the samples', async () => {
    const src = await loadStudySource(folder, { sd: { promptSet: join(root, 'prompts.csv') } });
    try {
      const xt = initialNoise(src.denoiser.shape, [3, 4]);
      const level = { t: 901, alphaBar: 0.02 };
      const cond = [null, 0, null, 1];
      const x4 = concatBatch([xt, xt]);
      const plain = await src.denoiser.predict(x4, level, cond);
      const same = await src.capabilities.conditionTransform!.denoiser((c) => c, 'identity');
      const moved = await src.capabilities.conditionTransform!.denoiser((c) => c.map((v) => v * 1.5), 'scaled');
      let d0 = 0;
      let d1 = 0;
      const a = (await same.predict(x4, level, cond)).data;
      const b = (await moved.predict(x4, level, cond)).data;
      for (let i = 0; i < a.length; i++) {
        d0 = Math.max(d0, Math.abs(a[i]! - plain.data[i]!));
        d1 = Math.max(d1, Math.abs(b[i]! - plain.data[i]!));
      }
      expect(d0).toBe(0);
      expect(d1).toBeGreaterThan(1e-3);
    } finally {
      await src.denoiser.dispose?.();
    }
    const out = join(root, 'runs', 'ev-cads');
    const r = await runCli(['evaluate', '--model', folder, '--prompt-set', join(root, 'prompts.csv'), '--threshold', '0.5', '--methods', 'cfg,cads:0.5', '--steps', '6', '--seeds', '0-1', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const cfg = await readNpy(join(out, 'samples-cfg.npy'));
    const x = await readNpy(join(out, 'samples-cads_0.5.npy'));
    let m = 0;
    for (let i = 0; i < x.data.length; i++) m = Math.max(m, Math.abs(x.data[i]! - cfg.data[i]!));
    expect(m).toBeGreaterThan(1e-2);
  }, 60_000);

  it('--variant: a bad value is a usage error naming the flag and the choices', async () => {
    const r = await runCli(['sample', '--model', folder, '--prompt', 'a cat', '--variant', 'fp8', '--out', join(root, 'runs', 'bad')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--variant/);
    expect(r.err).toMatch(/fp32/);
  });
});
