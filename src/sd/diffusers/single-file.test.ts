/**
 * Original single-file Stable Diffusion checkpoints (issue 19 §1, optional part), against an
 * independent PyTorch implementation arranged as the CompVis / Stability `ldm` code arranges its
 * modules (scripts/reference/ldm_tiny.py: openaimodel's UNetModel, ldm's AutoencoderKL, open_clip's
 * text tower with torch's own nn.MultiheadAttention), so that its state-dict keys are the
 * single-file keys independently of memscope's key conversion. Tiny SD 1.x (float32, CLIP) and
 * SD 2.x (float16, open_clip at its penultimate layer) files, read with the tiny pipeline folders'
 * configs (whose own weights are deleted first): every component matches torch within 1e-4. Full
 * size: the SD 1.5 / 2.1 single-file keys and shapes (the same reference on torch's meta device)
 * convert to exactly the diffusers state dicts of sd-state-dicts.json.
 */
import { readFileSync, readdirSync, rmSync, mkdtempSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeAll } from '../../graph/session.ts';
import { readSafetensors, readSafetensorsIndex } from '../../io/safetensors.ts';
import { maxAbsDiff } from '../../models/reference.test-helpers.ts';
import { fakeSafetensorsIndex } from '../../../test/helpers/fake-safetensors.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { writeTinyDiffusersFolder } from '../../../test/helpers/tiny-diffusers-folder.ts';
import { openStableDiffusion, type OpenedSd } from '../open.ts';
import { buildComponentGraphs, type Component } from './folder.ts';
import { ldmUnetKey, ldmVaeKey, splitSingleFile } from './single-file.ts';

const FIXTURES = join(import.meta.dirname, '..', '..', '..', 'test', 'fixtures');
const LDM = join(FIXTURES, 'ldm-tiny');
const tmp = mkdtempSync(join(tmpdir(), 'memscope-single-file-test-'));

/** The tiny pipeline folder of `kind` with its weight files removed: configs, scheduler and tokenizer only. */
function configOnly(kind: 'sd1' | 'sd2'): string {
  const dir = writeTinyDiffusersFolder(join(tmp, `${kind}-config`), kind);
  for (const c of ['unet', 'text_encoder', 'vae']) for (const f of readdirSync(join(dir, c))) if (f.endsWith('.safetensors')) rmSync(join(dir, c, f));
  return dir;
}

const opened = new Map<string, { sd: OpenedSd; expected: Map<string, Tensor> }>();

beforeAll(async () => {
  for (const kind of ['sd1', 'sd2'] as const) {
    const sd = await openStableDiffusion(join(LDM, kind, 'model.safetensors'), { pipelineConfig: configOnly(kind), threads: 1 });
    opened.set(kind, { sd, expected: (await readSafetensors(join(LDM, kind, 'expected.safetensors'))).tensors });
  }
});
afterAll(async () => {
  for (const { sd } of opened.values()) await sd.dispose();
  await disposeAll();
  rmSync(tmp, { recursive: true, force: true });
});

describe.each(['sd1', 'sd2'] as const)('single-file %s checkpoint vs the ldm-layout PyTorch reference', (kind) => {
  it('U-Net output within 1e-4', async () => {
    const { sd, expected } = opened.get(kind)!;
    const out = await sd.sessions.unet.run({ sample: expected.get('sample')!, timestep: expected.get('timestep')!, encoder_hidden_states: expected.get('context')! });
    expect(maxAbsDiff(out['out_sample']!.data, expected.get('unet')!.data)).toBeLessThan(1e-4);
  });
  it(`text encoder within 1e-4 (${kind === 'sd1' ? "CLIP's last layer" : "open_clip's penultimate layer, fused q/k/v split"})`, async () => {
    const { sd, expected } = opened.get(kind)!;
    const ids = expected.get('ids')!;
    const out = await sd.sessions.textEncoder.run({ input_ids: { type: 'int64', dims: ids.dims, data: Array.from(ids.data) } });
    expect(maxAbsDiff(out['last_hidden_state']!.data, expected.get('text')!.data)).toBeLessThan(1e-4);
  });
  it('VAE encoder moments and decoder image within 1e-4 (1×1-conv attention, reversed decoder levels)', async () => {
    const { sd, expected } = opened.get(kind)!;
    const enc = await sd.sessions.vaeEncoder!.run({ sample: expected.get('image')! });
    expect(maxAbsDiff(enc['latent_parameters']!.data, expected.get('moments')!.data)).toBeLessThan(1e-4);
    const dec = await sd.sessions.vaeDecoder.run({ latent_sample: expected.get('latent')! });
    expect(maxAbsDiff(dec['sample']!.data, expected.get('decoded')!.data)).toBeLessThan(1e-4);
  });
  it('records the file and the keys it skipped, by reason', () => {
    const { sd } = opened.get(kind)!;
    const single = sd.diffusers!.singleFile!;
    expect(single.path).toBe(join(LDM, kind, 'model.safetensors'));
    expect(sd.diffusers!.weights).toEqual([]);
    expect(single.skipped['DDPM schedule buffers']).toBe(12);
    // sd1: model_ema.decay, num_updates and one EMA copy; sd2: decay, num_updates and one copy
    expect(single.skipped['EMA state and copies (model_ema.*)']).toBe(3);
    if (kind === 'sd1') expect(single.skipped["CLIP's position_ids buffer"]).toBe(1);
    else {
      expect(single.skipped["open_clip's text_projection / logit_scale"]).toBe(2);
      expect(single.skipped['open_clip resblocks past num_hidden_layers 2 (penultimate-layer convention)']).toBe(12);
    }
  });
});

describe('refusals', () => {
  it('a single file without --pipeline-config, --variant with one, and --pipeline-config with a folder are refused naming the flag', async () => {
    const file = join(LDM, 'sd1', 'model.safetensors');
    await expect(openStableDiffusion(file)).rejects.toThrow(/^--pipeline-config: required with the single-file checkpoint/);
    await expect(openStableDiffusion(file, { pipelineConfig: configOnly('sd1'), variant: 'fp16' })).rejects.toThrow(/^--variant: a single-file checkpoint has one set of weights/);
    await expect(openStableDiffusion(configOnly('sd1'), { pipelineConfig: configOnly('sd1') })).rejects.toThrow(/^--pipeline-config: only with a single-file checkpoint/);
  });
  it('keys of no component are listed in one error; an SD 1.x file read with SD 2.x configs is refused (text-encoder family; at full size, the shape mismatches)', async () => {
    const index = readSafetensorsIndex(join(LDM, 'sd1', 'model.safetensors'));
    const entries = new Map(index.entries);
    for (const k of ['model.diffusion_model.extra_head.weight', 'conditioner.embedders.0.weight']) entries.set(k, { name: k, dtype: 'F32', dims: [2], offset: 8, length: 8 });
    expect(() => splitSingleFile({ ...index, entries }, { unetLayersPerBlock: 2, vaeLevels: 4, textLayers: 2 })).toThrow(/this looks like an SDXL checkpoint[\s\S]*2 keys of no Stable Diffusion component:\n\s+model\.diffusion_model\.extra_head\.weight\n\s+conditioner\.embedders\.0\.weight/);
    const unetOnly = new Map([...index.entries].filter(([k]) => k.startsWith('model.diffusion_model.')));
    expect(() => splitSingleFile({ ...index, entries: unetOnly }, { unetLayersPerBlock: 2, vaeLevels: 4, textLayers: 2 })).toThrow(/no weights of text_encoder, vae/);
    const wrong = join(tmp, 'sd1-copy.safetensors');
    copyFileSync(join(LDM, 'sd1', 'model.safetensors'), wrong);
    await expect(openStableDiffusion(wrong, { pipelineConfig: configOnly('sd2') })).rejects.toThrow(/^--pipeline-config: sd1-copy\.safetensors carries OpenAI CLIP's text encoder \(SD 1\.x\), whose activation is quick_gelu, but .* has hidden_act gelu/);
    // full size: SD 1.5's keys with SD 2.1's configs are shape mismatches (CLIP width 768 vs 1024), all in one error
    const M = JSON.parse(readFileSync(join(FIXTURES, 'sd-state-dicts.json'), 'utf8')) as Record<string, Record<Component, { config: Record<string, unknown> }>>;
    const keys = (JSON.parse(readFileSync(join(FIXTURES, 'sd-single-file-keys.json'), 'utf8')) as Record<string, Record<string, number[]>>)['sd1']!;
    const split = splitSingleFile(fakeSafetensorsIndex(keys, 'v1-5.safetensors'), { unetLayersPerBlock: 2, vaeLevels: 4, textLayers: 23 });
    expect(() => buildComponentGraphs({ unet: M['sd2']!.unet.config, text_encoder: M['sd2']!.text_encoder.config, vae: M['sd2']!.vae.config }, split.weights)).toThrow(/^text_encoder: the weights do not fit the config \(v1-5\.safetensors \(text_encoder\)\)[\s\S]*shape mismatches:[\s\S]*token_embedding\.weight: the file has \[49408, 768\], the config needs \[49408, 1024\]/);
  });
});

describe.each(['sd1', 'sd2'] as const)('full-size %s single file', (kind) => {
  const single = (JSON.parse(readFileSync(join(FIXTURES, 'sd-single-file-keys.json'), 'utf8')) as Record<string, Record<string, number[]>>)[kind]!;
  const folder = (JSON.parse(readFileSync(join(FIXTURES, 'sd-state-dicts.json'), 'utf8')) as Record<string, Record<Component, { config: Record<string, unknown>; keys: Record<string, number[]> }>>)[kind]!;
  it('converts to exactly the diffusers state dicts (every key once, same number of values; 1×1 convs ↔ linears)', () => {
    const split = splitSingleFile(fakeSafetensorsIndex(single, `${kind}.safetensors`), { unetLayersPerBlock: 2, vaeLevels: 4, textLayers: kind === 'sd1' ? 12 : 23 });
    const squeeze = (d: readonly number[]): string => d.filter((x, i) => !(x === 1 && i >= 2)).join('×');
    for (const c of ['unet', 'text_encoder', 'vae'] as const) {
      const got = new Map([...split.weights[c][0]!.index.entries].map(([k, e]) => [k, squeeze(e.dims)]));
      const want = new Map(Object.entries(folder[c].keys).map(([k, d]) => [k, squeeze(d)]));
      expect([...got.keys()].sort(), c).toEqual([...want.keys()].sort());
      for (const [k, d] of want) expect(got.get(k), k).toBe(d);
    }
    expect(split.textEncoder).toBe(kind === 'sd1' ? 'clip' : 'open_clip');
    // memscope's graphs of the SD configs use every converted key with its shape
    const built = buildComponentGraphs({ unet: folder.unet.config, text_encoder: folder.text_encoder.config, vae: folder.vae.config }, split.weights);
    expect(built.components.length).toBe(5);
  });
  it('key conversion spot checks against diffusers\' documented layout', () => {
    expect(ldmUnetKey('input_blocks.3.0.op.weight', 2)).toBe('down_blocks.0.downsamplers.0.conv.weight');
    expect(ldmUnetKey('input_blocks.4.1.proj_in.weight', 2)).toBe('down_blocks.1.attentions.0.proj_in.weight');
    expect(ldmUnetKey('output_blocks.2.1.conv.bias', 2)).toBe('up_blocks.0.upsamplers.0.conv.bias');
    expect(ldmUnetKey('output_blocks.5.2.conv.weight', 2)).toBe('up_blocks.1.upsamplers.0.conv.weight');
    expect(ldmUnetKey('output_blocks.8.0.skip_connection.weight', 2)).toBe('up_blocks.2.resnets.2.conv_shortcut.weight');
    expect(ldmVaeKey('decoder.up.3.block.0.conv1.weight', 4)).toBe('decoder.up_blocks.0.resnets.0.conv1.weight');
    expect(ldmVaeKey('decoder.up.1.upsample.conv.weight', 4)).toBe('decoder.up_blocks.2.upsamplers.0.conv.weight');
    expect(ldmVaeKey('encoder.mid.attn_1.proj_out.weight', 4)).toBe('encoder.mid_block.attentions.0.to_out.0.weight');
    expect(ldmVaeKey('decoder.up.0.downsample.conv.weight', 4)).toBeNull();
  });
});

// the reference's tiny files are what the loader reads: a header check that they are the layout described
it('the tiny fixtures carry the ldm prefixes', () => {
  const keys = [...readSafetensorsIndex(join(LDM, 'sd2', 'model.safetensors')).entries.keys()];
  expect(keys.some((k) => k.startsWith('cond_stage_model.model.transformer.resblocks.2.'))).toBe(true);
  expect(keys.filter((k) => k.startsWith('model_ema.')).length).toBe(3);
});
