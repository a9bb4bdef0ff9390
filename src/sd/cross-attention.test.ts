/**
 * Graph surgery on a Stable Diffusion U-Net's cross-attention (Ren et al. 2024), checked on the
 * tiny export against independent references: the untouched export U-Net (scale 1, bias 0 must
 * change nothing) and the same U-Net rebuilt by memscope's own builder with
 * `exposeCrossAttention` + the logit scale (same seeded weights): probabilities and ε under a
 * bias / scale must agree — for both softmax layouts ([B, heads, q, L] and [B·heads, q, L]).
 */
import { copyFileSync, existsSync, mkdirSync, statSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import p from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinySdExport, tinySdUnetConfig } from '../../test/helpers/tiny-sd-export.ts';
import { writeExposedUnet, hasCrossAttentionSoftmax, CROSS_ATTENTION_SOFTMAX_PATTERN, CROSS_ATTENTION_BIAS, CROSS_ATTENTION_PROBS_PREFIX } from '../graph/cross-attention.ts';
import { createSession, type Session, type TypedFeed } from '../graph/session.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { buildDiffusersUnet } from '../models/unet.ts';
import { paramFnFor, paramSeed } from '../models/init.ts';
import { addLogitScale, attentionEntropy, CROSS_ATTENTION_SCALE, MASKED_LOGIT, renAdjustment, renMitigatedDenoiser } from '../mitigate/ren-attention.ts';
import { loadSdStudySource } from '../study/sd-source.ts';
import type { Tensor } from '../tensor/tensor.ts';

const { onnx } = p;
const SEED = 4;
const B = 2;
const L = 77;
let root: string;
let ref: Session;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function filled(n: number, f: (i: number) => number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => f(i));
}

const sample: Tensor = { dims: [B, 4, 8, 8], data: filled(B * 256, (i) => Math.sin(0.37 * i + 0.1)) };
const context: Tensor = { dims: [B, L, 32], data: filled(B * L * 32, (i) => Math.cos(0.11 * i) * 0.8) };
const T = 421;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'memscope-xattn-'));
  writeTinySdExport(join(root, 'legacy'), { variant: 'legacy', seed: SEED });
  writeTinySdExport(join(root, 'optimum'), { variant: 'optimum', seed: SEED, attentionLayout: 'batch-heads' });
  // memscope's own builder: the same U-Net (same seeded weights) with cross-attention exposed and scaled
  const b = new GraphBuilder({ name: 'reference' });
  buildDiffusersUnet(b, tinySdUnetConfig(), paramFnFor(b, 'initializer', { seed: paramSeed(SEED, 'unet') }).param, 'dynamic', { exposeCrossAttention: true });
  ref = await createSession(onnx.ModelProto.encode(addLogitScale(b.toModel(), L)).finish());
}, 60_000);

afterAll(async () => {
  await ref.release();
  rmSync(root, { recursive: true, force: true });
});

const VARIANTS = [
  ['legacy', 'int64 [B] timestep, [B, heads, q, L] softmax, weights.pb', (t: number): TypedFeed => ({ type: 'int64', dims: [B], data: [t, t] })],
  ['optimum', 'float scalar timestep, [B·heads, q, L] softmax, model.onnx_data', (t: number): TypedFeed => ({ type: 'float32', dims: [], data: [t] })],
] as const;

describe.each(VARIANTS)('cross-attention surgery on the tiny %s export (%s)', (variant, _what, ts) => {
  it('scale 1 / bias 0 leaves out_sample unchanged; weights are linked, not copied; dispose removes the folder', async () => {
    const path = join(root, variant, 'unet', 'model.onnx');
    const orig = await createSession(path);
    const ex = writeExposedUnet(path);
    try {
      expect(ex.layers.map((l) => l.layer)).toEqual([
        'down_blocks.1.attentions.0.transformer_blocks.0.attn2',
        'mid_block.attentions.0.transformer_blocks.0.attn2',
        'up_blocks.0.attentions.0.transformer_blocks.0.attn2',
        'up_blocks.0.attentions.1.transformer_blocks.0.attn2',
      ]);
      expect(ex.layers.every((l) => CROSS_ATTENTION_SOFTMAX_PATTERN.test(l.node))).toBe(true);
      const data = variant === 'legacy' ? 'weights.pb' : 'model.onnx_data';
      expect(ex.externalData).toEqual([data]);
      expect(ex.unlinked).toEqual([]);
      expect(statSync(join(ex.path, '..', data)).ino).toBe(statSync(join(root, variant, 'unet', data)).ino); // a hard link, not a copy
      expect(readdirSync(join(root, variant, 'unet')).sort()).toEqual([data, 'model.onnx', ...(variant === 'optimum' ? ['config.json'] : [])].sort()); // nothing written into the export
      const s = await createSession(ex.path);
      // the in-memory fallback (temp folder on another file system) loads the same model
      const solo = join(root, `solo-${variant}`);
      mkdirSync(solo);
      copyFileSync(ex.path, join(solo, 'model.onnx')); // no data file beside it
      const viaMemory = await createSession(join(solo, 'model.onnx'), { externalData: [{ path: data, data: readFileSync(join(root, variant, 'unet', data)) }] });
      const feeds = { sample, timestep: ts(T), encoder_hidden_states: context };
      const a = (await orig.run(feeds, ['out_sample']))['out_sample']!;
      const o = await s.run({ ...feeds, [CROSS_ATTENTION_SCALE]: { dims: [B, L], data: new Float32Array(B * L).fill(1) }, [CROSS_ATTENTION_BIAS]: { dims: [B, L], data: new Float32Array(B * L) } });
      expect(maxAbsDiff(o['out_sample']!.data, a.data)).toBeLessThanOrEqual(1e-6);
      const o2 = await viaMemory.run({ ...feeds, [CROSS_ATTENTION_SCALE]: { dims: [B, L], data: new Float32Array(B * L).fill(1) }, [CROSS_ATTENTION_BIAS]: { dims: [B, L], data: new Float32Array(B * L) } }, ['out_sample']);
      expect(maxAbsDiff(o2['out_sample']!.data, a.data)).toBeLessThanOrEqual(1e-6);
      await viaMemory.release();
      // head-averaged probabilities [B, q, L]: rows sum to 1
      const pr = o[CROSS_ATTENTION_PROBS_PREFIX + ex.layers[0]!.layer]!;
      expect(pr.dims).toEqual([B, 16, L]);
      for (let r = 0; r < B * 16; r++) expect(pr.data.subarray(r * L, (r + 1) * L).reduce((x, y) => x + y, 0)).toBeCloseTo(1, 5);
      await s.release();
    } finally {
      await orig.release();
      ex.dispose();
    }
    expect(existsSync(ex.path)).toBe(false);
  }, 60_000);

  it("probabilities and ε under a logit scale and bias equal memscope's builder-made scaled U-Net", async () => {
    const ex = writeExposedUnet(join(root, variant, 'unet', 'model.onnx'));
    const s = await createSession(ex.path);
    try {
      const scale = filled(B * L, (i) => (i % L === 0 ? 1.25 : i % L < 5 ? 0.7 + 0.1 * (i % 3) : 1));
      const bias = filled(B * L, (i) => (i % L === 2 ? -3 : i % L >= 9 ? MASKED_LOGIT : 0.2 * Math.sin(i)));
      const adj = { [CROSS_ATTENTION_SCALE]: { dims: [B, L], data: scale }, [CROSS_ATTENTION_BIAS]: { dims: [B, L], data: bias } };
      const mine = await s.run({ sample, timestep: ts(T), encoder_hidden_states: context, ...adj });
      const theirs = await ref.run({ sample, timestep: { dims: [B], data: new Float32Array(B).fill(T) }, encoder_hidden_states: context, ...adj });
      const refLayers = ref.outputNames.filter((n) => n.startsWith(CROSS_ATTENTION_PROBS_PREFIX));
      expect(refLayers).toHaveLength(ex.layers.length);
      ex.layers.forEach((l, i) => expect(maxAbsDiff(mine[CROSS_ATTENTION_PROBS_PREFIX + l.layer]!.data, theirs[refLayers[i]!]!.data)).toBeLessThan(1e-5));
      expect(maxAbsDiff(mine['out_sample']!.data, theirs['out_sample']!.data)).toBeLessThan(1e-5);
      // the masked tokens get no attention; the adjustment changed ε
      const p0 = mine[CROSS_ATTENTION_PROBS_PREFIX + ex.layers[1]!.layer]!;
      for (let r = 0; r < p0.data.length / L; r++) for (let j = 9; j < L; j++) expect(p0.data[r * L + j]).toBe(0);
      const plain = await ref.run({ sample, timestep: { dims: [B], data: new Float32Array(B).fill(T) }, encoder_hidden_states: context, [CROSS_ATTENTION_SCALE]: { dims: [B, L], data: new Float32Array(B * L).fill(1) }, [CROSS_ATTENTION_BIAS]: { dims: [B, L], data: new Float32Array(B * L) } });
      expect(maxAbsDiff(mine['out_sample']!.data, plain['out_sample']!.data)).toBeGreaterThan(1e-4);
    } finally {
      await s.release();
      ex.dispose();
    }
  }, 60_000);
});

describe('sdScaledAttentionUnet: the SD source\'s attention provider (Ren et al. on an export)', () => {
  it.each([
    ['SD 2.x-like: v_prediction, pad "!"', { variant: 'legacy', predictionType: 'v_prediction', padToken: '!' }, '!'],
    ['SD 1.x-like: epsilon, pad <|endoftext|>', { variant: 'optimum', attentionLayout: 'batch-heads' }, '<|endoftext|>'],
  ] as const)('%s: CLIP tokens, ε equal to the plain denoiser, Ren et al.\'s rule', async (_l, o, pad) => {
    const dir = join(root, `src-${o.variant}`);
    writeTinySdExport(dir, { seed: 2, ...o });
    const src = await loadSdStudySource(dir, { texts: ['a cat on the beach', 'photo of the dog'] });
    const att = await src.sd.attention();
    try {
      const toks = att.tokens(0);
      expect(toks).toHaveLength(77);
      expect(toks.slice(0, 7)).toEqual(['<|startoftext|>', 'a</w>', 'cat</w>', 'on</w>', 'the</w>', 'beach</w>', '<|endoftext|>']);
      expect(toks[7]).toBe(pad);
      expect(att.tokens(null).slice(0, 3)).toEqual(['<|startoftext|>', '<|endoftext|>', pad]);
      // the prompt ends at the FIRST end token: start scaled, everything after position 6 masked
      const r = renAdjustment(toks);
      expect(r.scale[0]).toBeCloseTo(1.25, 6);
      expect(Array.from(r.bias.subarray(0, 7))).toEqual([0, 0, 0, 0, 0, 0, 0]);
      expect(r.bias.subarray(7).every((v) => v === MASKED_LOGIT)).toBe(true);
      const xt: Tensor = { dims: [3, 4, 8, 8], data: filled(3 * 256, (i) => Math.cos(0.23 * i)) };
      const level = { t: 601, alphaBar: 0.2 };
      const cond = [0, 1, null];
      const plain = await src.denoiser.predict(xt, level, cond);
      const mine = await att.run(xt, level, cond);
      expect(maxAbsDiff(mine.eps.data, plain.data)).toBeLessThan(1e-5);
      expect(mine.probs.size).toBe(4);
      // the default --unet-batch 2 runs these 3 rows as 2 + 1: same ε̂ and probabilities as one call, per-row adjustments sliced right
      const wide = await loadSdStudySource(dir, { texts: ['a cat on the beach', 'photo of the dog'], unetBatch: 100 });
      const attW = await wide.sd.attention();
      try {
        const scale = new Float32Array(3 * 77).fill(1);
        const bias = new Float32Array(3 * 77);
        scale.set(renAdjustment(toks).scale, 0);
        bias.set(renAdjustment(att.tokens(1)).bias, 77);
        bias[2 * 77 + 1] = -3;
        const c = await att.run(xt, level, cond, { scale, bias });
        const w = await attW.run(xt, level, cond, { scale, bias });
        expect(maxAbsDiff(c.eps.data, w.eps.data)).toBeLessThan(1e-6);
        for (const [l, p] of w.probs) {
          expect(c.probs.get(l)!.dims).toEqual(p.dims);
          expect(maxAbsDiff(c.probs.get(l)!.data, p.data)).toBeLessThan(1e-6);
        }
      } finally {
        await attW.dispose();
        await wide.denoiser.dispose?.();
      }
      const off = await renMitigatedDenoiser({ denoiser: src.denoiser, attention: att }, { startScale: 1, maskPadding: false });
      expect(maxAbsDiff((await off.predict(xt, level, cond)).data, plain.data)).toBeLessThan(1e-5);
      const ren = await renMitigatedDenoiser({ denoiser: src.denoiser, attention: att });
      const e = await ren.predict(xt, level, cond);
      expect(maxAbsDiff(e.data.subarray(0, 512), plain.data.subarray(0, 512))).toBeGreaterThan(1e-4); // conditional rows change
      expect(maxAbsDiff(e.data.subarray(512), plain.data.subarray(512))).toBeLessThan(1e-5); // e_∅ row runs unchanged
      // detection: −E of each prompt from the same U-Net
      const E = await attentionEntropy(att, 0, { dims: [2, 4, 8, 8], data: xt.data.slice(0, 512) }, level);
      expect(E).toBeGreaterThan(0);
      expect(E).toBeLessThanOrEqual(Math.log(77) + 1e-9);
    } finally {
      await att.dispose();
      await src.denoiser.dispose?.();
    }
  }, 60_000);
});

describe('cross-attention surgery errors', () => {
  it('a U-Net without attn2 Softmax nodes is refused, naming the file', () => {
    const b = new GraphBuilder({ name: 'not-diffusers' });
    b.input('sample', 'float32', ['B', 4]);
    b.input('encoder_hidden_states', 'float32', ['B', 3, 4]);
    b.output(b.op('Softmax', ['sample'], { axis: -1 }, { name: '/blocks.0/attn/Softmax' }), 'float32', ['B', 4], 'out_sample');
    const path = join(root, 'plain.onnx');
    writeFileSync(path, b.toBytes());
    expect(() => writeExposedUnet(path)).toThrow(new RegExp(`${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: no cross-attention Softmax node .*1 Softmax node in all.*not look like a diffusers UNet2DConditionModel`));
    expect(hasCrossAttentionSoftmax(path)).toBe(false);
    const tiny = join(root, 'has-attn2');
    writeTinySdExport(tiny, { seed: 1 });
    expect(hasCrossAttentionSoftmax(join(tiny, 'unet', 'model.onnx'))).toBe(true);
  });
});
