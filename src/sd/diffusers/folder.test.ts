/**
 * diffusers pipeline folders built into memscope's graphs (issue 19 §1), against an independent
 * PyTorch implementation (scripts/reference/diffusers_tiny.py, written from diffusers' and
 * transformers' documented architecture): tiny SD 1.x-shaped (float32, conv proj_in, quick_gelu,
 * ε) and SD 2.x-shaped (fp16 variant only, linear proj_in, per-block heads, gelu, v-prediction)
 * folders whose weights and expected outputs the Python side wrote (test/fixtures/diffusers-tiny).
 * Each component's output must match torch's within 1e-4 on the same inputs; and the sd1 U-Net
 * exported by torch.onnx.export (the same torch module) and dropped into an export layout
 * generates the same samples as the folder.
 */
import { mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeAll } from '../../graph/session.ts';
import { readSafetensors, writeSafetensors } from '../../io/safetensors.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { DIFFUSERS_TINY_FIXTURES as FIXTURES, writeTinyDiffusersFolder, writeTorchExportOfTinyFolder } from '../../../test/helpers/tiny-diffusers-folder.ts';
import { writeTinySdExport } from '../../../test/helpers/tiny-sd-export.ts';
import { openStableDiffusion, type OpenedSd } from '../open.ts';
import { generate } from '../pipeline.ts';
import { createSdWenObjective } from '../wen.ts';
import { writeExposedUnet } from '../../graph/cross-attention.ts';

const tmp = mkdtempSync(join(tmpdir(), 'memscope-diffusers-test-'));

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const opened = new Map<string, { sd: OpenedSd; expected: Map<string, Tensor> }>();

beforeAll(async () => {
  for (const kind of ['sd1', 'sd2'] as const) {
    const sd = await openStableDiffusion(writeTinyDiffusersFolder(join(tmp, kind), kind), { threads: 1 });
    opened.set(kind, { sd, expected: (await readSafetensors(join(FIXTURES, kind, 'expected.safetensors'))).tensors });
  }
});
afterAll(async () => {
  for (const { sd } of opened.values()) await sd.dispose();
  await disposeAll();
  rmSync(tmp, { recursive: true, force: true });
});

describe.each(['sd1', 'sd2'] as const)('diffusers folder %s vs the PyTorch reference', (kind) => {
  it('U-Net ε/v prediction within 1e-4', async () => {
    const { sd, expected } = opened.get(kind)!;
    const out = await sd.sessions.unet.run({ sample: expected.get('sample')!, timestep: expected.get('timestep')!, encoder_hidden_states: expected.get('context')! });
    expect(maxAbsDiff(out['out_sample']!.data, expected.get('unet')!.data)).toBeLessThan(1e-4);
  });
  it('text encoder last_hidden_state within 1e-4 (causal mask, final LayerNorm)', async () => {
    const { sd, expected } = opened.get(kind)!;
    const ids = expected.get('ids')!;
    const out = await sd.sessions.textEncoder.run({ input_ids: { type: 'int64', dims: ids.dims, data: Array.from(ids.data) } });
    expect(maxAbsDiff(out['last_hidden_state']!.data, expected.get('text')!.data)).toBeLessThan(1e-4);
  });
  it('VAE encoder moments and decoder image within 1e-4', async () => {
    const { sd, expected } = opened.get(kind)!;
    const enc = await sd.sessions.vaeEncoder!.run({ sample: expected.get('image')! });
    expect(maxAbsDiff(enc['latent_parameters']!.data, expected.get('moments')!.data)).toBeLessThan(1e-4);
    const dec = await sd.sessions.vaeDecoder.run({ latent_sample: expected.get('latent')! });
    expect(maxAbsDiff(dec['sample']!.data, expected.get('decoded')!.data)).toBeLessThan(1e-4);
  });
});

describe('torch.onnx export of the same U-Net', () => {
  it('an export whose unet/model.onnx is the torch export generates the folder\'s samples (PNDM, CFG 7.5, 5 steps) within 1e-4', async () => {
    const folder = opened.get('sd1')!.sd;
    const exp = await openStableDiffusion(writeTorchExportOfTinyFolder(join(tmp, 'sd1'), join(tmp, 'sd1-torch-export')), { threads: 1 });
    try {
      expect(exp.diffusers).toBeNull();
      const opts = { prompts: ['a photo of a cat'], seeds: [3, 4], steps: 5, sampler: 'pndm' as const };
      const a = await generate(folder, opts);
      const b = await generate(exp, opts);
      expect(maxAbsDiff(a.latents.data, b.latents.data)).toBeLessThan(1e-4);
      expect(maxAbsDiff(a.images.data, b.images.data)).toBeLessThan(1e-4);
      expect(Math.max(...a.latents.data.map(Math.abs))).toBeGreaterThan(0.1);
    } finally {
      await exp.dispose();
    }
  });
});

describe('fused attention', () => {
  it('the sampling session runs onnxruntime\'s fused MultiHeadAttention; the decomposed graph (unet.path) gives the same ε within 1e-5', async () => {
    const fused = opened.get('sd2')!;
    const plain = await openStableDiffusion(join(tmp, 'sd2'), { threads: 1, fusedAttention: false });
    try {
      const e = fused.expected;
      const feeds = { sample: e.get('sample')!, timestep: e.get('timestep')!, encoder_hidden_states: e.get('context')! };
      const a = (await fused.sd.sessions.unet.run(feeds))['out_sample']!.data;
      const b = (await plain.sessions.unet.run(feeds))['out_sample']!.data;
      expect(maxAbsDiff(a, b)).toBeLessThan(1e-5);
      const ops = (path: string): string[] => [...readFileSync(path).toString('latin1').matchAll(/MultiHeadAttention/g)].map((m) => m[0]);
      expect(ops(join(dirname(fused.sd.unet.path), 'model-fused-attention.onnx')).length).toBeGreaterThan(0);
      expect(ops(fused.sd.unet.path)).toEqual([]);
    } finally {
      await plain.dispose();
    }
  });
});

describe('temp folder on another file system (no hard link possible)', () => {
  it('the weights go to onnxruntime in memory, and Wen et al.\'s gradient graph and Ren et al.\'s surgery still find them', async () => {
    const { sd: linked, expected: e } = opened.get('sd1')!;
    const unlinked = await openStableDiffusion(join(tmp, 'sd1'), {
      threads: 1,
      link: () => {
        throw Object.assign(new Error('EXDEV: cross-device link not permitted'), { code: 'EXDEV' });
      },
    });
    try {
      expect(Object.keys(unlinked.unet.weightSources ?? {})).toEqual(['diffusion_pytorch_model.safetensors']);
      const feeds = { sample: e.get('sample')!, timestep: e.get('timestep')!, encoder_hidden_states: e.get('context')! };
      expect(maxAbsDiff((await unlinked.sessions.unet.run(feeds))['out_sample']!.data, e.get('unet')!.data)).toBeLessThan(1e-4);
      const uncond = { dims: [1, 77, 16], data: e.get('context')!.data.slice(77 * 16) };
      const emb = e.get('context')!.data.slice(0, 77 * 16);
      const xT = { dims: [1, 4, 8, 8], data: e.get('sample')!.data.slice(0, 256) };
      const losses: number[] = [];
      for (const sd of [linked, unlinked]) {
        const obj = await createSdWenObjective(sd, 1, { uncond, latent: [4, 8, 8] });
        try {
          losses.push((await obj.lossAndGradient(emb, xT, 481)).loss);
        } finally {
          await obj.dispose();
        }
      }
      expect(losses[1]).toBeCloseTo(losses[0]!, 5);
      const exposed = writeExposedUnet(unlinked.unet.path, unlinked.unet.weightSources ?? {});
      try {
        expect(exposed.unlinked).toEqual([]);
      } finally {
        exposed.dispose();
      }
    } finally {
      await unlinked.dispose();
    }
  });
});

describe('sharded weights', () => {
  it('a U-Net split into two shards with diffusers\' index file gives the same prediction', async () => {
    const dir = writeTinyDiffusersFolder(join(tmp, 'sharded'), 'sd1');
    const whole = join(dir, 'unet', 'diffusion_pytorch_model.safetensors');
    const { tensors } = await readSafetensors(whole);
    const names = [...tensors.keys()].sort();
    const shards = [names.slice(0, 100), names.slice(100)];
    const weightMap: Record<string, string> = {};
    for (const [i, part] of shards.entries()) {
      const file = `diffusion_pytorch_model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensors(join(dir, 'unet', file), new Map(part.map((n) => [n, tensors.get(n)!])));
      for (const n of part) weightMap[n] = file;
    }
    writeFileSync(join(dir, 'unet', 'diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    rmSync(whole);
    const sd = await openStableDiffusion(dir, { threads: 1 });
    try {
      expect(sd.diffusers!.weights.filter((w) => w.startsWith('unet/'))).toEqual(['unet/diffusion_pytorch_model-00001-of-00002.safetensors', 'unet/diffusion_pytorch_model-00002-of-00002.safetensors']);
      const e = opened.get('sd1')!.expected;
      const out = await sd.sessions.unet.run({ sample: e.get('sample')!, timestep: e.get('timestep')!, encoder_hidden_states: e.get('context')! });
      expect(maxAbsDiff(out['out_sample']!.data, e.get('unet')!.data)).toBeLessThan(1e-4);
    } finally {
      await sd.dispose();
    }
  });
});

describe('refusals, before any session opens', () => {
  const fresh = (name: string, kind: 'sd1' | 'sd2' = 'sd1'): string => writeTinyDiffusersFolder(join(tmp, name), kind);
  const message = async (p: Promise<unknown>): Promise<string> => p.then(() => 'no error', (e: Error) => e.message);

  it('settings memscope does not implement are listed together, with what is supported', async () => {
    const dir = fresh('sdxl-like');
    const cfgPath = join(dir, 'unet', 'config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, addition_embed_type: 'text_time', transformer_layers_per_block: [1, 2, 10], act_fn: 'gelu' }));
    const m = await message(openStableDiffusion(dir));
    expect(m).toContain('unet/config.json: 3 settings');
    expect(m).toContain('addition_embed_type = "text_time" (supported: null)');
    expect(m).toContain('transformer_layers_per_block = [1,2,10] (supported: 1)');
    expect(m).toContain('act_fn = "gelu" (supported: "silu")');
  });
  it('pickle weights are refused with the conversion to safetensors', async () => {
    const dir = fresh('pickle');
    renameSync(join(dir, 'unet', 'diffusion_pytorch_model.safetensors'), join(dir, 'unet', 'diffusion_pytorch_model.bin'));
    expect(await message(openStableDiffusion(dir))).toMatch(/unet\/: only pickle weights \(diffusion_pytorch_model\.bin\); memscope reads safetensors only/);
  });
  it('--variant fp32 on a folder with only the fp16 files names what it looked for; a variant on an ONNX export is refused', async () => {
    const dir = fresh('fp16-only', 'sd2');
    const m = await message(openStableDiffusion(dir, { variant: 'fp32' }));
    expect(m).toContain('unet/: no weights found (expected unet/diffusion_pytorch_model.safetensors, variant fp32; the folder has diffusion_pytorch_model.fp16.safetensors)');
    expect(m).toContain('text_encoder/: no weights found (expected text_encoder/model.safetensors, variant fp32; the folder has model.fp16.safetensors)');
    const exportDir = join(tmp, 'plain-export');
    writeTinySdExport(exportDir);
    expect(await message(openStableDiffusion(exportDir, { variant: 'fp16' }))).toContain('--variant: ');
  });
  it('leaves nothing in the pipeline folder and removes its temp graphs on dispose', async () => {
    const dir = fresh('clean');
    const before = readdirSync(dir, { recursive: true }).sort();
    const sd = await openStableDiffusion(dir, { threads: 1 });
    const temp = sd.unet.path;
    expect(temp.startsWith(tmpdir())).toBe(true);
    await sd.dispose();
    expect(readdirSync(dir, { recursive: true }).sort()).toEqual(before);
    expect(() => readFileSync(temp)).toThrow(/ENOENT/);
  });
});
