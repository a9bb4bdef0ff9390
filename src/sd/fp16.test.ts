/**
 * float16 tiny SD exports (`writeTinySdExport({ dtype: 'float16' })`) end to end: fp16 graph
 * signatures and half-size weights, `loadSdExport` reporting the dtypes, every component run
 * against an fp32 export holding the same fp16-rounded weights, prompt → latents → image for both
 * exporter variants against the fp32 export of the same seed, and an fp16 U-Net mixed into an
 * fp32 export.
 *
 * Tolerances (u = 2⁻¹¹ ≈ 4.9e-4, the unit roundoff of IEEE half: round-to-nearest has relative
 * error ≤ u for normal values, absolute error ≤ 2⁻²⁵ below the normal range):
 * - ONE component call on float16-representable inputs: the fp16 graph casts its fp16 weights
 *   and inputs to float32 and computes exactly what the fp32 graph with the same (fp16-rounded)
 *   weights computes, then rounds its output to half once; so per element
 *   |fp16 − ref| ≤ u·|ref| + 2⁻²⁵ (plus 1e-6·|ref| for float32 kernels that may sum in another
 *   order once the Casts are folded).
 * - A whole `generate` run (4 DDIM steps, CFG 7.5): every step rounds sample, hidden states and
 *   ε to half (relative u each) and CFG amplifies the ε difference up to 2λ − 1 = 14 times; the
 *   fp32 export also differs by its unrounded weights. No useful worst-case bound follows, so the
 *   bound is set by the quantity that matters for images: the fp16 and fp32 images agree to
 *   better than one 8-bit level, max |Δ| < 1/255 ≈ 3.9e-3 (measured ≈ 4.3e-4 against the fp32
 *   export and ≈ 2.4e-4 against the fp32 export with fp16-rounded weights, where only the I/O
 *   rounding differs; the latter is held to 1e-3 ≈ 2u).
 */
import { mkdtempSync, cpSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeAll, fromHalfArray, toHalfArray } from '../graph/session.ts';
import { TorchGenerator, randnTorch } from '../random/torch.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { type SdExport, encodePrompts, loadSdExport } from './export.ts';
import { generate, vaeDecode, vaeEncode } from './pipeline.ts';
import { type SdExporterVariant, writeTinySdExport } from '../../test/helpers/tiny-sd-export.ts';

const tmp = mkdtempSync(join(tmpdir(), 'memscope-sd-fp16-'));
const U = 2 ** -11;
const PROMPTS = ['a photo of a cat', 'a dog'];
const SEEDS = [0, 7];
const STEPS = 4;
const ONE_LEVEL = 1 / 255;

interface Trio {
  f16: SdExport;
  f32: SdExport;
  /** fp32 export whose weights are the fp16 export's (rounded to half, stored as float32). */
  r16: SdExport;
}
const ex = new Map<SdExporterVariant, Trio>();

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** The largest |a − ref| / (u·|ref| + 2⁻²⁵), which is ≤ 1 when a is ref rounded to half. */
function halfRoundingRatio(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  expect(a.length).toBe(ref.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - ref[i]!) / ((U + 1e-6) * Math.abs(ref[i]!) + 2 ** -25));
  return m;
}

/** Round to the nearest float16 (so the value is fed exactly to an fp16 input). */
function half(t: Tensor): Tensor {
  return { dims: t.dims, data: fromHalfArray(toHalfArray(t.data)) };
}

beforeAll(async () => {
  for (const variant of ['legacy', 'optimum'] as const) {
    const dir = (k: string): string => join(tmp, `${variant}-${k}`);
    writeTinySdExport(dir('f16'), { variant, seed: 5, dtype: 'float16' });
    writeTinySdExport(dir('f32'), { variant, seed: 5 });
    writeTinySdExport(dir('r16'), { variant, seed: 5, roundWeightsToHalf: true });
    ex.set(variant, {
      f16: await loadSdExport(dir('f16'), { threads: 1 }),
      f32: await loadSdExport(dir('f32'), { threads: 1 }),
      r16: await loadSdExport(dir('r16'), { threads: 1 }),
    });
  }
});
afterAll(async () => {
  for (const t of ex.values()) await Promise.all([t.f16.dispose(), t.f32.dispose(), t.r16.dispose()]);
  await disposeAll();
  rmSync(tmp, { recursive: true, force: true });
});

describe('fp16 tiny export: files and metadata', () => {
  it('declares float16 for every float input and output, int ids / int64 timestep unchanged', () => {
    const { f16 } = ex.get('legacy')!;
    const o = ex.get('optimum')!.f16;
    const types = (s: { inputs: readonly { name: string; type?: string }[]; outputs: readonly { name: string; type?: string }[] }): Record<string, string | undefined> =>
      Object.fromEntries([...s.inputs, ...s.outputs].map((v) => [v.name, v.type]));
    expect(types(f16.sessions.unet)).toEqual({ sample: 'float16', timestep: 'int64', encoder_hidden_states: 'float16', out_sample: 'float16' });
    expect(types(o.sessions.unet)).toEqual({ sample: 'float16', timestep: 'float16', encoder_hidden_states: 'float16', out_sample: 'float16' });
    expect(types(f16.sessions.textEncoder)).toEqual({ input_ids: 'int32', last_hidden_state: 'float16', pooler_output: 'float16' });
    expect(types(o.sessions.textEncoder)).toEqual({ input_ids: 'int64', last_hidden_state: 'float16', pooler_output: 'float16' });
    expect(types(f16.sessions.vaeEncoder!)).toEqual({ sample: 'float16', latent_sample: 'float16' });
    expect(types(o.sessions.vaeEncoder!)).toEqual({ sample: 'float16', latent_parameters: 'float16' });
    expect(types(f16.sessions.vaeDecoder)).toEqual({ latent_sample: 'float16', sample: 'float16' });
  });

  it('loadSdExport reports the dtypes and the float16 timestep layout', () => {
    for (const variant of ['legacy', 'optimum'] as const) {
      const { f16, f32 } = ex.get(variant)!;
      expect(f16).toMatchObject({ textEncoder: { dtype: 'float16' }, unet: { dtype: 'float16' }, vaeEncoder: { dtype: 'float16' }, vaeDecoder: { dtype: 'float16' }, latentChannels: 4, hiddenSize: 32 });
      expect(f32).toMatchObject({ textEncoder: { dtype: 'float32' }, unet: { dtype: 'float32' }, vaeEncoder: { dtype: 'float32' }, vaeDecoder: { dtype: 'float32' } });
    }
    expect(ex.get('legacy')!.f16.unet.timestep).toEqual({ type: 'int64', layout: 'batch' });
    expect(ex.get('optimum')!.f16.unet.timestep).toEqual({ type: 'float16', layout: 'scalar' });
  });

  it('stores the weights as float16: the U-Net weight file is half the fp32 one, the whole export about 55%', () => {
    for (const [variant, file] of [
      ['legacy', 'weights.pb'],
      ['optimum', 'model.onnx_data'],
    ] as const) {
      const size = (k: string): number => statSync(join(tmp, `${variant}-${k}`, 'unet', file)).size;
      const ratio = size('f16') / size('f32');
      expect(ratio).toBeGreaterThan(0.49);
      expect(ratio).toBeLessThan(0.51);
      expect(size('r16')).toBe(size('f32'));
    }
    const a = writeTinySdExport(join(tmp, 'size16'), { seed: 5, dtype: 'float16' });
    const b = writeTinySdExport(join(tmp, 'size32'), { seed: 5 });
    expect(a.dtype).toBe('float16');
    expect(b.dtype).toBe('float32');
    expect(a.bytes / b.bytes).toBeGreaterThan(0.45);
    expect(a.bytes / b.bytes).toBeLessThan(0.65);
  });
});

describe('fp16 tiny export: each component = the fp32 computation with fp16-rounded weights, output rounded to half once', () => {
  it('text encoder (hidden states and pooler) in both variants', async () => {
    for (const variant of ['legacy', 'optimum'] as const) {
      const { f16, r16, f32 } = ex.get(variant)!;
      const a = await encodePrompts(f16, PROMPTS);
      const r = await encodePrompts(r16, PROMPTS);
      expect(a.hiddenStates.dims).toEqual([2, 77, 32]);
      expect(a.hiddenStates.data).toBeInstanceOf(Float32Array);
      expect(halfRoundingRatio(a.hiddenStates.data, r.hiddenStates.data)).toBeLessThanOrEqual(1);
      expect(halfRoundingRatio(a.pooled!.data, r.pooled!.data)).toBeLessThanOrEqual(1);
      // the values really are halves, and the weights really were rounded
      expect(Array.from(half(a.hiddenStates).data)).toEqual(Array.from(a.hiddenStates.data));
      expect(maxAbsDiff(r.hiddenStates.data, (await encodePrompts(f32, PROMPTS)).hiddenStates.data)).toBeGreaterThan(0);
    }
  });

  it('U-Net: one call on half-representable sample, timestep and hidden states', async () => {
    for (const variant of ['legacy', 'optimum'] as const) {
      const { f16, r16 } = ex.get(variant)!;
      const feeds = {
        sample: half(randnTorch([2, 4, 8, 8], 3)),
        encoder_hidden_states: half(randnTorch([2, 77, 32], 4)),
      };
      const t = f16.unet.timestep;
      const ts = t.layout === 'scalar' ? { type: t.type, dims: [], data: [601] } : { type: t.type, dims: [2], data: [601, 601] };
      const tr = r16.unet.timestep;
      const tsr = tr.layout === 'scalar' ? { type: tr.type, dims: [], data: [601] } : { type: tr.type, dims: [2], data: [601, 601] };
      const a = (await f16.sessions.unet.run({ ...feeds, timestep: ts }))['out_sample']!;
      const r = (await r16.sessions.unet.run({ ...feeds, timestep: tsr }))['out_sample']!;
      expect(a.dims).toEqual([2, 4, 8, 8]);
      expect(halfRoundingRatio(a.data, r.data)).toBeLessThanOrEqual(1);
    }
  });

  it('VAE: vaeEncode (latent_parameters) and vaeDecode', async () => {
    const { f16, r16 } = ex.get('optimum')!;
    const img = half({ dims: [2, 3, 64, 64], data: new TorchGenerator(9).randn([2, 3, 64, 64]).map((v) => Math.tanh(v)) });
    // vaeEncode multiplies the half mean by the scaling factor in float32 (one more float32 rounding)
    const za = await vaeEncode(f16, img);
    const zr = await vaeEncode(r16, img);
    expect(za.dims).toEqual([2, 4, 8, 8]);
    expect(halfRoundingRatio(za.data, zr.data)).toBeLessThanOrEqual(1);
    // vaeDecode divides by the scaling factor before the (half) input: feed latents whose quotient is a half
    const sf = f16.scalingFactor;
    const z = half(randnTorch([2, 4, 8, 8], 5));
    const lat: Tensor = { dims: z.dims, data: z.data.map((v) => v * sf) };
    const ya = (await f16.sessions.vaeDecoder.run({ latent_sample: z }))['sample']!;
    const yr = (await r16.sessions.vaeDecoder.run({ latent_sample: z }))['sample']!;
    expect(halfRoundingRatio(ya.data, yr.data)).toBeLessThanOrEqual(1);
    const ia = await vaeDecode(f16, lat);
    const ir = await vaeDecode(r16, lat);
    expect(ia.dims).toEqual([2, 3, 64, 64]);
    // images = clamp(y/2 + 0.5): |Δ| ≤ |Δy|/2 ≤ u·|y|/2 + … ≤ u·(|image − 0.5| + …); bound it by u
    expect(maxAbsDiff(ia.data, ir.data)).toBeLessThanOrEqual(U * Math.max(1, ...Array.from(yr.data, Math.abs)));
  });
});

describe('fp16 tiny export: prompt → latents → image', () => {
  for (const variant of ['legacy', 'optimum'] as const) {
    it(`${variant}: the fp16 images match the fp32 export of the same seed to < 1/255, and the fp32 export with fp16-rounded weights to < 1e-3`, async () => {
      const { f16, f32, r16 } = ex.get(variant)!;
      const run = (e: SdExport) => generate(e, { prompts: PROMPTS, seeds: SEEDS, steps: STEPS });
      const [a, b, r] = [await run(f16), await run(f32), await run(r16)];
      expect(a.latents.dims).toEqual([2, 4, 8, 8]);
      expect(a.images.dims).toEqual([2, 3, 64, 64]);
      let interior = 0;
      for (const v of a.images.data) {
        expect(Number.isFinite(v) && v >= 0 && v <= 1).toBe(true);
        if (v > 0 && v < 1) interior++;
      }
      expect(interior).toBeGreaterThan(a.images.data.length / 2);
      const d32 = maxAbsDiff(a.images.data, b.images.data);
      expect(d32).toBeLessThan(ONE_LEVEL);
      expect(d32).toBeGreaterThan(0); // fp16 rounding happened
      expect(maxAbsDiff(a.images.data, r.images.data)).toBeLessThan(1e-3);
      // the two seeds / prompts still give different images
      expect(maxAbsDiff(a.images.data.subarray(0, 3 * 64 * 64), a.images.data.subarray(3 * 64 * 64))).toBeGreaterThan(1e-3);
    });
  }

  it('the fp16 exports of both variants give the same images (same weights; int64 vs float16 timestep)', async () => {
    const run = (e: SdExport) => generate(e, { prompts: PROMPTS, seeds: SEEDS, steps: STEPS });
    const a = await run(ex.get('legacy')!.f16);
    const b = await run(ex.get('optimum')!.f16);
    // DDIM's timesteps are integers < 1000, exact in half: the same computation
    expect(maxAbsDiff(a.images.data, b.images.data)).toBeLessThan(1e-5);
  });
});

describe('mixed float types', () => {
  it('an fp16 U-Net in an fp32 export loads (dtypes per component) and generates the fp16 export images to < 1/255', async () => {
    const dir = join(tmp, 'mixed');
    cpSync(join(tmp, 'optimum-f32'), dir, { recursive: true });
    rmSync(join(dir, 'unet'), { recursive: true });
    cpSync(join(tmp, 'optimum-f16', 'unet'), join(dir, 'unet'), { recursive: true });
    const m = await loadSdExport(dir, { threads: 1 });
    try {
      expect(m).toMatchObject({ textEncoder: { dtype: 'float32' }, unet: { dtype: 'float16', timestep: { type: 'float16', layout: 'scalar' } }, vaeDecoder: { dtype: 'float32' } });
      const g = await generate(m, { prompts: PROMPTS, seeds: SEEDS, steps: STEPS });
      const a = await generate(ex.get('optimum')!.f16, { prompts: PROMPTS, seeds: SEEDS, steps: STEPS });
      expect(maxAbsDiff(g.images.data, a.images.data)).toBeLessThan(ONE_LEVEL);
    } finally {
      await m.dispose();
    }
  });
});
