/**
 * loadSdExport on tiny exports of both exporter variants (SPEC §7): the metadata read back, the
 * U-Net through loadOnnxDenoiser for both timestep layouts (and the same ε from both variants,
 * which share their weights), the VAE round trip, and the errors for missing files, missing
 * external weights and mismatched components.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOnnxDenoiser } from '../denoisers/onnx.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { disposeAll } from '../graph/session.ts';
import { randnTorch } from '../random/torch.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { type SdExport, encodePrompts, loadSdExport, sdUnetDenoiser } from './export.ts';
import { writeTinySdExport } from '../../test/helpers/tiny-sd-export.ts';

const tmp = mkdtempSync(join(tmpdir(), 'memscope-sd-export-'));
const PROMPTS = ['a photo of a cat', 'an astronaut riding a horse'];
let legacy: SdExport;
let optimum: SdExport;

beforeAll(async () => {
  writeTinySdExport(join(tmp, 'legacy'), { variant: 'legacy', seed: 11 });
  writeTinySdExport(join(tmp, 'optimum'), { variant: 'optimum', seed: 11 });
  legacy = await loadSdExport(join(tmp, 'legacy'), { threads: 1 });
  optimum = await loadSdExport(join(tmp, 'optimum'), { threads: 1 });
});
afterAll(async () => {
  await legacy?.dispose();
  await optimum?.dispose();
  await disposeAll();
  rmSync(tmp, { recursive: true, force: true });
});

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function allFinite(t: Tensor): boolean {
  return t.data.every((v) => Number.isFinite(v));
}

describe('loadSdExport: metadata', () => {
  it('legacy: int32 ids, int64 [B] timestep, latent_sample, default scaling factor', () => {
    expect(legacy).toMatchObject({
      className: 'OnnxStableDiffusionPipeline',
      components: ['text_encoder', 'unet', 'vae_encoder', 'vae_decoder'],
      textEncoder: { idsType: 'int32', sequenceLength: 77, hiddenSize: 32, hiddenStateOutput: 'last_hidden_state', pooledOutput: 'pooler_output', dtype: 'float32' },
      unet: { timestep: { type: 'int64', layout: 'batch' }, timestepRank: 1, latentChannels: 4, sampleSize: [8, 8], hiddenSize: 32, contextLength: 77, output: 'out_sample', dtype: 'float32' },
      vaeEncoder: { input: 'sample', outputKind: 'latent_sample', latentChannels: 4, dtype: 'float32' },
      vaeDecoder: { input: 'latent_sample', output: 'sample', latentChannels: 4, dtype: 'float32' },
      hiddenSize: 32,
      latentChannels: 4,
      predictionType: 'epsilon',
      scalingFactor: 0.18215,
      scalingFactorSource: 'default',
      executionProvider: 'cpu',
    });
    expect(legacy.scheduler.steps_offset).toBe(1);
    expect(legacy.tokenizer.maxLength).toBe(77);
  });

  it("optimum: int64 ids, float32 scalar timestep, latent_parameters; components found by folder although model_index names only 'vae'", () => {
    expect(optimum.modelIndex['vae_encoder']).toBeUndefined();
    expect(optimum).toMatchObject({
      className: 'StableDiffusionPipeline',
      components: ['text_encoder', 'unet', 'vae_encoder', 'vae_decoder'],
      textEncoder: { idsType: 'int64', sequenceLength: 77, hiddenSize: 32 },
      unet: { timestep: { type: 'float32', layout: 'scalar' }, timestepRank: 0, latentChannels: 4, hiddenSize: 32 },
      vaeEncoder: { outputKind: 'latent_parameters', latentChannels: 4 },
      scalingFactor: 0.18215,
      scalingFactorSource: 'vae_decoder/config.json',
    });
  });

  it('reads prediction_type and a non-default scaling factor; conflicting scaling factors name both files', async () => {
    const dir = join(tmp, 'v');
    writeTinySdExport(dir, { variant: 'optimum', seed: 11, predictionType: 'v_prediction', scalingFactor: 0.13025, hiddenSize: 16 });
    const e = await loadSdExport(dir, { threads: 1 });
    try {
      expect(e).toMatchObject({ predictionType: 'v_prediction', scalingFactor: 0.13025, scalingFactorSource: 'vae_decoder/config.json', hiddenSize: 16 });
    } finally {
      await e.dispose();
    }
    writeFileSync(join(dir, 'vae_encoder', 'config.json'), JSON.stringify({ scaling_factor: 0.18215 }));
    await expect(loadSdExport(dir, { threads: 1 })).rejects.toThrow(/vae_decoder\/config\.json says 0\.13025, vae_encoder\/config\.json says 0\.18215/);
  });
});

describe('loadSdExport: running the components', () => {
  it('the text encoders of both variants (int32 vs int64 ids) give the same hidden states; the pooler takes the eos row', async () => {
    const a = await encodePrompts(legacy, PROMPTS);
    const b = await encodePrompts(optimum, PROMPTS);
    expect(a.hiddenStates.dims).toEqual([2, 77, 32]);
    expect(a.pooled!.dims).toEqual([2, 32]);
    expect(maxAbsDiff(a.hiddenStates.data, b.hiddenStates.data)).toBe(0);
    const eosPos = legacy.tokenizer.encode(PROMPTS[1]!).length - 1;
    expect(Array.from(a.pooled!.data.subarray(32, 64))).toEqual(Array.from(a.hiddenStates.data.subarray((77 + eosPos) * 32, (77 + eosPos + 1) * 32)));
  });

  it('the U-Net through loadOnnxDenoiser gives finite ε for both timestep layouts, and the same ε from both variants', async () => {
    const cond = (await encodePrompts(legacy, PROMPTS)).hiddenStates;
    const x = randnTorch([2, 4, 8, 8], 0);
    const level = { t: 500, alphaBar: 0.28 };
    const eps: Tensor[] = [];
    for (const e of [legacy, optimum]) {
      const d = await loadOnnxDenoiser({ path: e.unet.path, conditions: cond, space: 'latent', threads: 1 });
      try {
        expect(d.timestep).toEqual(e.unet.timestep);
        expect(d.shape).toEqual([4, 8, 8]);
        const out = await d.predict(x, level, [0, 1]);
        expect(out.dims).toEqual([2, 4, 8, 8]);
        expect(allFinite(out)).toBe(true);
        eps.push(out);
      } finally {
        await d.dispose();
      }
    }
    expect(maxAbsDiff(eps[0]!.data, eps[1]!.data)).toBeLessThan(1e-5);
    // the conditions matter, and the export's own session gives the same ε as a fresh load
    const own = sdUnetDenoiser(optimum, { conditions: cond });
    const mixed = await own.predict(x, level, [0, null]);
    expect(maxAbsDiff(mixed.data.subarray(0, 256), eps[0]!.data.subarray(0, 256))).toBeLessThan(1e-5);
    expect(maxAbsDiff(mixed.data.subarray(256), eps[0]!.data.subarray(256))).toBeGreaterThan(1e-4);
  });

  it('VAE: decoder(encoder mean) maps [1,3,64,64] → [1,4,8,8] → [1,3,64,64] in both variants', async () => {
    const img = randnTorch([1, 3, 64, 64], 1);
    const pa = await optimum.sessions.vaeEncoder!.run({ sample: img });
    expect(pa['latent_parameters']!.dims).toEqual([1, 8, 8, 8]);
    const mean: Tensor = { dims: [1, 4, 8, 8], data: pa['latent_parameters']!.data.slice(0, 256) };
    const ls = await legacy.sessions.vaeEncoder!.run({ sample: img });
    expect(ls['latent_sample']!.dims).toEqual([1, 4, 8, 8]);
    expect(allFinite(ls['latent_sample']!)).toBe(true);
    const yo = (await optimum.sessions.vaeDecoder.run({ latent_sample: mean }))['sample']!;
    const yl = (await legacy.sessions.vaeDecoder.run({ latent_sample: mean }))['sample']!;
    expect(yo.dims).toEqual([1, 3, 64, 64]);
    expect(allFinite(yo)).toBe(true);
    expect(maxAbsDiff(yo.data, yl.data)).toBe(0);
  });
});

describe('loadSdExport: errors', () => {
  it('lists every missing file: unet/model.onnx and tokenizer/merges.txt', async () => {
    const dir = join(tmp, 'missing');
    cpSync(join(tmp, 'legacy'), dir, { recursive: true });
    rmSync(join(dir, 'unet', 'model.onnx'));
    rmSync(join(dir, 'tokenizer', 'merges.txt'));
    const err = await loadSdExport(dir, { threads: 1 }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/missing .*tokenizer\/merges\.txt/);
    expect(err?.message).toMatch(/unet\/model\.onnx/);
  });

  it('names a missing external weight file (unet/model.onnx_data)', async () => {
    const dir = join(tmp, 'noweights');
    cpSync(join(tmp, 'optimum'), dir, { recursive: true });
    rmSync(join(dir, 'unet', 'model.onnx_data'));
    await expect(loadSdExport(dir, { threads: 1 })).rejects.toThrow(/missing unet\/model\.onnx_data/);
  });

  it('reports a U-Net built for another hidden size and a VAE with other latent channels, naming both sides', async () => {
    writeTinySdExport(join(tmp, 'e48'), { variant: 'legacy', hiddenSize: 48, latentChannels: 3 });
    const dir = join(tmp, 'mismatch');
    cpSync(join(tmp, 'legacy'), dir, { recursive: true });
    rmSync(join(dir, 'unet'), { recursive: true });
    cpSync(join(tmp, 'e48', 'unet'), join(dir, 'unet'), { recursive: true });
    const err = await loadSdExport(dir, { threads: 1 }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/unet\/model\.onnx input 'encoder_hidden_states' \[batch, 77, 48\] has width 48 but text_encoder\/model\.onnx output 'last_hidden_state' \[batch, 77, 32\] has hidden size 32/);
    expect(err?.message).toMatch(/latent channels differ: unet\/model\.onnx input 'sample' has 3, vae_decoder\/model\.onnx input 'latent_sample' has 4/);
  });

  it("a non-float U-Net 'sample' (or 'encoder_hidden_states') is an error naming the file, the input and its type", async () => {
    for (const [bad, type] of [
      ['sample', 'int32'],
      ['encoder_hidden_states', 'int64'],
    ] as const) {
      const dir = join(tmp, `int-${bad}`);
      cpSync(join(tmp, 'legacy'), dir, { recursive: true });
      rmSync(join(dir, 'unet', 'weights.pb'));
      const b = new GraphBuilder({ name: 'unet' });
      const x = b.input('sample', bad === 'sample' ? type : 'float32', ['batch', 4, 8, 8]);
      b.input('timestep', 'int64', ['batch']);
      b.input('encoder_hidden_states', bad === 'encoder_hidden_states' ? type : 'float32', ['batch', 77, 32]);
      b.output(b.op('Cast', [x], { to: 1 }), 'float32', ['batch', 4, 8, 8], 'out_sample');
      writeFileSync(join(dir, 'unet', 'model.onnx'), b.toBytes());
      await expect(loadSdExport(dir, { threads: 1 })).rejects.toThrow(new RegExp(`unet/model\\.onnx: input '${bad}' has type ${type}; expected a float tensor \\(float32 or float16\\)`));
    }
  });

  it("executionProvider 'cuda' is tried only when asked and fails clearly where onnxruntime-node has no CUDA provider", async () => {
    const got = await loadSdExport(join(tmp, 'legacy'), { threads: 1, executionProvider: 'cuda' }).then(
      (e) => e,
      (e: unknown) => e as Error,
    );
    if (got instanceof Error) expect(got.message).toMatch(/CUDA execution provider/);
    else {
      expect(got.executionProvider).toBe('cuda');
      await got.dispose();
    }
  });
});
