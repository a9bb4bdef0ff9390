import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder, type Dim } from '../graph/builder.ts';
import { writeTinySdExport } from '../../test/helpers/tiny-sd-export.ts';
import type { EvaluatedPrompt } from './types.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { expectClose, rand, saveModel, unit } from '../../test/helpers/metrics.ts';
import { pilBilinearWeights } from './descriptor.ts';
import {
  clipAlignmentScorer,
  clipFeatureExtractor,
  clipPathsFromDir,
  clipScoresFromEmbeddings,
  loadClip,
  loadClipImageEncoder,
  loadClipTextEncoder,
  type Clip,
} from './clip.ts';
import { centerCropOffset, keysCubic, pilBicubicWeights, pilResampleWeights, shortestEdgeSize, torchBilinearWeights } from './resize.ts';

// Tolerances (all float32 pipelines against float64 references computed here):
// - preprocessed pixels (normalised values, |v| ≲ 4): abs 2e-5;
// - embeddings (outputs O(1)): abs 1e-4;
// - CLIP scores (0…100): abs 1e-3;
// - resize weights: abs 1e-7 (float32 rounding of exact fractions).

const S = 224;
const D = 6;
const MEAN = [0.48145466, 0.4578275, 0.40821073];
const STD = [0.26862954, 0.26130258, 0.27577711];

/** Keys' cubic, a = −0.5, written out from the formula (independent of resize.ts). */
function cubic(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1;
  if (t < 2) return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a;
  return 0;
}

/**
 * Float64 PIL-bicubic weight of input j for output i of an in → out resize, from the definition:
 * centre (i + ½)·in/out, kernel widened by max(in/out, 1), over all in-image taps, renormalised.
 */
function bicubicRow(inN: number, outN: number, i: number): Float64Array {
  const s = inN / outN;
  const fs = Math.max(1, s);
  const c = (i + 0.5) * s;
  const w = Float64Array.from({ length: inN }, (_, j) => cubic((j + 0.5 - c) / fs));
  const t = w.reduce((a, b) => a + b, 0);
  return w.map((v) => v / t);
}

/**
 * Independent CLIP preprocessing of one image `[c, h, w]` in [−1, 1] → `[3, S, S]` float64:
 * (x+1)/2 clipped, shortest edge → S (long ⌊S·long/short⌋), PIL bicubic width pass then height
 * pass, each clamped to [0, 1], crop at `top`/`left` computed here, normalise.
 */
function clipPre(x: Float32Array, c: number, h: number, w: number, rounding: 'floor' | 'round'): Float64Array {
  const [rh, rw] = h <= w ? [S, Math.floor((S * w) / h)] : [Math.floor((S * h) / w), S];
  const off = (n: number): number => {
    const m = (n - S) / 2;
    if (rounding === 'floor') return Math.floor(m);
    // Python round(): half to even
    const f = Math.floor(m);
    return m - f === 0.5 ? (f % 2 === 0 ? f : f + 1) : Math.round(m);
  };
  const top = off(rh);
  const left = off(rw);
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  const u = (v: number) => clamp((v + 1) / 2);
  const colW = Array.from({ length: S }, (_, j) => bicubicRow(w, rw, left + j));
  const rowW = Array.from({ length: S }, (_, i) => bicubicRow(h, rh, top + i));
  const out = new Float64Array(3 * S * S);
  for (let ch = 0; ch < 3; ch++) {
    const src = c === 1 ? 0 : ch;
    const tmp = new Float64Array(h * S); // width pass (kept columns only), clamped
    for (let y = 0; y < h; y++) {
      for (let j = 0; j < S; j++) {
        let s = 0;
        for (let k = 0; k < w; k++) s += colW[j]![k]! * u(x[src * h * w + y * w + k]!);
        tmp[y * S + j] = clamp(s);
      }
    }
    for (let i = 0; i < S; i++) {
      for (let j = 0; j < S; j++) {
        let s = 0;
        for (let y = 0; y < h; y++) s += rowW[i]![y]! * tmp[y * S + j]!;
        out[ch * S * S + i * S + j] = (clamp(s) - MEAN[ch]!) / STD[ch]!;
      }
    }
  }
  return out;
}

/** `v · W` for a row `v` (float64) and `W` `[len(v), d]`. */
function linear(v: ArrayLike<number>, W: Float32Array, d: number): number[] {
  const o = new Array<number>(d).fill(0);
  for (let k = 0; k < v.length; k++) for (let q = 0; q < d; q++) o[q]! += v[k]! * W[k * d + q]!;
  return o;
}

function cos(a: number[], b: number[]): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  a.forEach((x, i) => {
    ab += x * b[i]!;
    aa += x * x;
    bb += b[i]! * b[i]!;
  });
  return ab / Math.sqrt(aa * bb);
}

const dir = mkdtempSync(join(tmpdir(), 'memscope-clip-'));
const WI = rand(3 * S * S * D, 7, -1 / Math.sqrt(3 * S * S), 1 / Math.sqrt(3 * S * S));
let tokDir: string;
let vocab: Record<string, number>;
let V: number;
const E = rand(600 * D, 11);

/** A tiny CLIP vision tower: pixel_values → Flatten → MatMul W → image_embeds (+ a decoy first output). */
function visionModel(name: string, o: { inDims?: readonly Dim[]; outDims?: readonly Dim[]; inputName?: string; extraInput?: boolean; d?: number; outName?: string } = {}): string {
  const d = o.d ?? D;
  const W = d === D ? WI : rand(3 * S * S * d, 8, -0.01, 0.01);
  const b = new GraphBuilder();
  const x = b.input(o.inputName ?? 'pixel_values', 'float32', o.inDims ?? ['batch', 3, S, S]);
  if (o.extraInput === true) b.input('foo', 'float32', ['batch']);
  const f = b.op('Flatten', [x], { axis: 1 });
  const y = b.op('MatMul', [f, b.initializer('W', W, [3 * S * S, d])]);
  b.output(b.op('ReduceMean', [x], { axes: [2, 3], keepdims: 0 }), 'float32', ['batch', 3], 'last_hidden_state');
  const od = o.outDims ?? ['batch', d];
  const yy = od.length === 3 ? b.op('Unsqueeze', [y, b.constI64([2])]) : y;
  b.output(yy, 'float32', od, o.outName ?? 'image_embeds');
  return saveModel(b, dir, name);
}

/** A tiny CLIP text tower: Gather(E, input_ids) → masked mean over the sequence (or plain mean without a mask) → text_embeds. */
function textModel(name: string, o: { mask?: boolean; idType?: 'int64' | 'int32'; d?: number; idsName?: string } = {}): string {
  const d = o.d ?? D;
  const b = new GraphBuilder();
  const ids = b.input(o.idsName ?? 'input_ids', o.idType ?? 'int64', ['batch', 77]);
  const emb = b.op('Gather', [b.initializer('E', E.slice(0, V * d), [V, d]), ids], { axis: 0 }); // [B, 77, d]
  let y: string;
  if (o.mask ?? true) {
    const m = b.op('Cast', [b.input('attention_mask', 'int64', ['batch', 77])], { to: 1 }); // [B, 77]
    const num = b.op('ReduceSum', [b.op('Mul', [emb, b.op('Unsqueeze', [m, b.constI64([2])])]), b.constI64([1])], { keepdims: 0 });
    const den = b.op('ReduceSum', [m, b.constI64([1])], { keepdims: 1 });
    y = b.op('Div', [num, den]);
  } else {
    y = b.op('ReduceMean', [emb], { axes: [1], keepdims: 0 });
  }
  b.output(b.op('Relu', [b.constF32(0)]), 'float32', [], 'decoy');
  b.output(y, 'float32', ['batch', d], 'text_embeds');
  return saveModel(b, dir, name);
}

let vision: string;
let text: string;
beforeAll(() => {
  const info = writeTinySdExport(join(dir, 'sd'));
  tokDir = join(dir, 'sd', 'tokenizer');
  vocab = JSON.parse(readFileSync(join(tokDir, 'vocab.json'), 'utf8')) as Record<string, number>;
  V = info.vocabSize;
  vision = visionModel('vision_model.onnx');
  text = textModel('text_model.onnx');
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('resize weights', () => {
  it('PIL bicubic 2 → 4 matches hand-derived fractions (Keys a = −0.5 at distances 0.25, 0.75, 1.25, renormalised)', () => {
    // K(0.25) = 111/128, K(0.75) = 29/128, K(1.25) = −9/128
    const want = [37 / 34, -3 / 34, 111 / 140, 29 / 140, 29 / 140, 111 / 140, -3 / 34, 37 / 34];
    expectClose(pilBicubicWeights(2, 4), want, 1e-7);
    expect(keysCubic(0.25)).toBe(111 / 128);
    expect(keysCubic(1.25)).toBe(-9 / 128);
    expect(keysCubic(2)).toBe(0);
  });
  it('PIL bicubic 4 → 2 widens the kernel by the scale (antialiasing)', () => {
    // output 0 centred at 1, distances (j + ½ − 1)/2 = −0.25, 0.25, 0.75, 1.25
    const r0 = [111, 111, 29, -9].map((v) => v / 242);
    expectClose(pilBicubicWeights(4, 2), [...r0, ...[...r0].reverse()], 1e-7);
  });
  it('is the identity when the sizes are equal, and rows sum to 1', () => {
    for (const n of [1, 5, 224]) {
      const w = pilBicubicWeights(n, n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) expect(w[i * n + j]).toBe(i === j ? 1 : 0);
    }
    for (const [a, b] of [[512, 224], [7, 3], [28, 224], [3, 7], [299, 224]] as const) {
      const w = pilBicubicWeights(a, b);
      for (let i = 0; i < b; i++) {
        let s = 0;
        for (let j = 0; j < a; j++) s += w[i * a + j]!;
        expect(Math.abs(s - 1)).toBeLessThan(1e-6);
      }
      // and agree with the formula over all taps
      for (const i of [0, Math.floor(b / 2), b - 1]) expectClose(w.subarray(i * a, (i + 1) * a), bicubicRow(a, b, i), 1e-7);
    }
  });
  it('PIL bilinear matches descriptor.ts pilBilinearWeights', () => {
    for (const [a, b] of [[512, 224], [28, 299], [5, 5]] as const) expect(Array.from(pilResampleWeights(a, b, 'bilinear'))).toEqual(Array.from(pilBilinearWeights(a, b)));
  });
  it('torch bilinear (align_corners=False) 2 → 4 and 4 → 2', () => {
    expectClose(torchBilinearWeights(2, 4), [1, 0, 0.75, 0.25, 0.25, 0.75, 0, 1], 0);
    expectClose(torchBilinearWeights(4, 2), [0.5, 0.5, 0, 0, 0, 0, 0.5, 0.5], 0);
  });
  it('shortest-edge sizes and centre-crop offsets (transformers floor vs torchvision round-half-even)', () => {
    expect(shortestEdgeSize(200, 300, 224)).toEqual([224, 336]);
    expect(shortestEdgeSize(300, 200, 224)).toEqual([336, 224]);
    expect(shortestEdgeSize(97, 131, 224)).toEqual([224, 302]);
    expect([1, 3, 5, 7].map((m) => centerCropOffset(224 + m, 224, 'hf'))).toEqual([0, 1, 2, 3]);
    expect([1, 3, 5, 7].map((m) => centerCropOffset(224 + m, 224, 'torchvision'))).toEqual([0, 2, 2, 4]);
    expect(() => centerCropOffset(200, 224, 'hf')).toThrow(/larger/);
  });
});

describe('CLIP image tower', () => {
  it('preprocesses exactly as CLIPImageProcessor (float64 reference) and applies the model', async () => {
    const enc = await loadClipImageEncoder(vision);
    try {
      expect(enc.info).toMatchObject({ dim: D, input: 'pixel_values', output: 'image_embeds', projected: true });
      // grey 40×56 (upsampling, crop in width) and RGB 250×300 (downsampling)
      const cases: Array<[number, number, number]> = [
        [1, 40, 56],
        [3, 250, 300],
      ];
      for (const [c, h, w] of cases) {
        const x = rand(2 * c * h * w, 100 + c + h);
        const images: Tensor = { dims: [2, c, h, w], data: x };
        const pre = await enc.preprocess(images);
        expect(pre.dims).toEqual([2, 3, S, S]);
        const raw = await enc.embedRaw(images);
        const unitEmb = await enc.embed(images);
        for (let n = 0; n < 2; n++) {
          const ref = clipPre(x.subarray(n * c * h * w, (n + 1) * c * h * w), c, h, w, 'floor');
          expectClose(pre.data.subarray(n * 3 * S * S, (n + 1) * 3 * S * S), ref, 2e-5);
          const e = linear(ref, WI, D);
          expectClose(raw.data.subarray(n * D, (n + 1) * D), e, 1e-4);
          expectClose(unitEmb.data.subarray(n * D, (n + 1) * D), unit(e), 1e-4);
        }
      }
    } finally {
      await enc.dispose();
    }
  });
  it("crop: 'torchvision' rounds half to even (224×227: offset 2, transformers 1)", async () => {
    const [c, h, w] = [3, 224, 227];
    const x = rand(c * h * w, 5);
    for (const crop of ['hf', 'torchvision'] as const) {
      const enc = await loadClipImageEncoder(vision, { crop });
      const pre = await enc.preprocess({ dims: [1, c, h, w], data: x });
      await enc.dispose();
      expectClose(pre.data, clipPre(x, c, h, w, crop === 'hf' ? 'floor' : 'round'), 2e-5);
    }
  });
  it('runs a model with a fixed batch size in zero-padded chunks', async () => {
    const p = visionModel('fixed_batch.onnx', { inDims: [2, 3, S, S], outDims: [2, D] });
    const enc = await loadClipImageEncoder(p);
    const free = await loadClipImageEncoder(vision, { batch: 5 });
    const images: Tensor = { dims: [3, 1, 24, 24], data: rand(3 * 576, 9) };
    const a = await enc.embedRaw(images);
    const b = await free.embedRaw(images);
    expect(a.dims).toEqual([3, D]);
    expectClose(a.data, b.data, 1e-5);
    await enc.dispose();
    await free.dispose();
  });
  it('errors name the argument: missing file, wrong input names, wrong output rank, contradicting size', async () => {
    await expect(loadClipImageEncoder(join(dir, 'nope.onnx'))).rejects.toThrow(/loadClipImageEncoder: path '.*nope\.onnx' does not exist/);
    await expect(loadClipImageEncoder(text)).rejects.toThrow(/path '.*text_model\.onnx' is not a CLIP vision model: it has no input 'pixel_values' \(inputs: input_ids, attention_mask\)/);
    await expect(loadClipImageEncoder(visionModel('extra.onnx', { extraInput: true }))).rejects.toThrow(/inputs pixel_values, foo/);
    await expect(loadClipImageEncoder(visionModel('rank3.onnx', { outDims: ['batch', D, 1] }))).rejects.toThrow(/output 'image_embeds' has rank 3/);
    await expect(loadClipImageEncoder(vision, { size: 256 })).rejects.toThrow(/size 256 contradicts the fixed input 224x224/);
    await expect(loadClipImageEncoder(vision, { output: 'zzz' })).rejects.toThrow(/no output 'zzz' \(outputs: last_hidden_state, image_embeds\)/);
    const enc = await loadClipImageEncoder(vision);
    await expect(enc.embed({ dims: [1, 2, 8, 8], data: new Float32Array(128) })).rejects.toThrow(/1 \(grey\) or 3 \(RGB\) channels, got 2/);
    await enc.dispose();
  });
  it('falls back to pooler_output when image_embeds is missing (projected: false)', async () => {
    const enc = await loadClipImageEncoder(visionModel('pooler.onnx', { outName: 'pooler_output' }));
    expect(enc.info.output).toBe('pooler_output');
    expect(enc.info.projected).toBe(false);
    await enc.dispose();
  });
});

describe('CLIP text tower', () => {
  it('tokenizes with the export tokenizer and feeds input_ids + attention_mask', async () => {
    const enc = await loadClipTextEncoder(text, tokDir);
    try {
      expect(enc.info).toMatchObject({ dim: D, input: 'input_ids', output: 'text_embeds', projected: true });
      const prompts = ['a photo of the cat', 'astronaut riding a horse', ''];
      const ids = [
        ['<|startoftext|>', 'a</w>', 'photo</w>', 'of</w>', 'the</w>', 'cat</w>', '<|endoftext|>'],
        ['<|startoftext|>', 'astronaut</w>', 'riding</w>', 'a</w>', 'horse</w>', '<|endoftext|>'],
        ['<|startoftext|>', '<|endoftext|>'],
      ].map((t) => t.map((s) => vocab[s]!));
      const raw = await enc.embedRaw(prompts);
      const u = await enc.embed(prompts);
      ids.forEach((row, n) => {
        const e = new Array<number>(D).fill(0);
        for (const id of row) for (let q = 0; q < D; q++) e[q]! += E[id * D + q]! / row.length;
        expectClose(raw.data.subarray(n * D, (n + 1) * D), e, 1e-6);
        expectClose(u.data.subarray(n * D, (n + 1) * D), unit(e), 1e-6);
      });
    } finally {
      await enc.dispose();
    }
  });
  it('works without attention_mask and with int32 ids (padding then enters the mean)', async () => {
    const enc = await loadClipTextEncoder(textModel('t32.onnx', { mask: false, idType: 'int32' }), tokDir, { batch: 1 });
    const row = ['<|startoftext|>', 'dog</w>', '<|endoftext|>'].map((s) => vocab[s]!);
    while (row.length < 77) row.push(vocab['<|endoftext|>']!);
    const e = new Array<number>(D).fill(0);
    for (const id of row) for (let q = 0; q < D; q++) e[q]! += E[id * D + q]! / 77;
    const raw = await enc.embedRaw(['dog', 'dog']);
    expectClose(raw.data.subarray(0, D), e, 1e-6);
    expectClose(raw.data.subarray(D), e, 1e-6);
    await enc.dispose();
  });
  it('errors name the argument: missing file, missing tokenizer, wrong input names', async () => {
    await expect(loadClipTextEncoder(join(dir, 'nope.onnx'), tokDir)).rejects.toThrow(/loadClipTextEncoder: path '.*nope\.onnx' does not exist/);
    await expect(loadClipTextEncoder(text, join(dir, 'no-tok'))).rejects.toThrow(/tokenizerDir '.*no-tok' does not exist/);
    await expect(loadClipTextEncoder(vision, tokDir)).rejects.toThrow(/path '.*vision_model\.onnx' is not a CLIP text model: it has no input 'input_ids' \(inputs: pixel_values\)/);
    await expect(loadClipTextEncoder(textModel('tokens.onnx', { idsName: 'tokens' }), tokDir)).rejects.toThrow(/no input 'input_ids' \(inputs: tokens, attention_mask\)/);
  });
});

describe('CLIP score, alignment scorer and features', () => {
  let clip: Clip;
  beforeAll(async () => {
    clip = await loadClip({ vision, text, tokenizer: tokDir });
  });
  afterAll(async () => {
    await clip.dispose();
  });
  it('clipScoresFromEmbeddings is max(100·cos, 0) per row', () => {
    const a: Tensor = { dims: [3, 2], data: Float32Array.from([1, 0, 1, 0, 0, 2]) };
    const b: Tensor = { dims: [3, 2], data: Float32Array.from([-1, 0, 1, 1, 0, 5]) };
    const s = clipScoresFromEmbeddings(a, b);
    expect(s[0]).toBe(0);
    expect(s[1]).toBeCloseTo(100 / Math.SQRT2, 10);
    expect(s[2]).toBeCloseTo(100, 10);
  });
  it('scores each image against its prompt label (float64 reference) and extracts unit image embeddings', async () => {
    const [c, h, w] = [1, 28, 28];
    const n = 4;
    const x = rand(n * c * h * w, 77);
    const labels = ['a photo of the cat', 'dog on the beach', 'a photo of the cat', 'painting in the style of'];
    const prompts: EvaluatedPrompt[] = labels.map((label, i) => ({ cond: i, id: `p${i}`, label, classLabel: null, target: null }));
    const scorer = clipAlignmentScorer(clip);
    expect(scorer.name).toMatch(/CLIP score/);
    const got = await scorer.score({ dims: [n, c, h, w], data: x }, prompts);
    const tEmb = await clip.text.embedRaw(labels);
    const feats = await clipFeatureExtractor(clip.image).features({ dims: [n, c, h, w], data: x });
    expect(feats.dims).toEqual([n, D]);
    const raw: number[] = [];
    for (let i = 0; i < n; i++) {
      const e = linear(clipPre(x.subarray(i * h * w, (i + 1) * h * w), c, h, w, 'floor'), WI, D);
      const t = Array.from(tEmb.data.subarray(i * D, (i + 1) * D));
      raw.push(100 * cos(e, t));
      expect(Math.abs(got![i]! - Math.max(100 * cos(e, t), 0))).toBeLessThan(1e-3);
      expectClose(feats.data.subarray(i * D, (i + 1) * D), unit(e), 1e-4);
    }
    // with these seeds some raw cosines are negative (clamped to 0) and some positive
    expect(raw.some((v) => v < 0) && raw.some((v) => v > 0), `raw 100·cos: ${raw.join(', ')}`).toBe(true);
    const raw2 = await clipFeatureExtractor(clip.image, { normalize: false }).features({ dims: [1, c, h, w], data: x.subarray(0, h * w) });
    expectClose(raw2.data, linear(clipPre(x.subarray(0, h * w), c, h, w, 'floor'), WI, D), 1e-4);
  });
  it('returns null when a prompt has no label, and rejects a count mismatch', async () => {
    const images: Tensor = { dims: [1, 1, 8, 8], data: new Float32Array(64) };
    const p = (label: string): EvaluatedPrompt => ({ cond: 0, id: 'x', label, classLabel: null, target: null });
    expect(await clipAlignmentScorer(clip).score(images, [p(' ')])).toBeNull();
    await expect(clip.scores(images, ['a', 'b'])).rejects.toThrow(/1 images but 2 texts/);
  });
  it('loadClip rejects towers of different D, naming both files', async () => {
    const t5 = textModel('text_d5.onnx', { d: 5 });
    await expect(loadClip({ vision, text: t5, tokenizer: tokDir })).rejects.toThrow(/vision model '.*vision_model\.onnx' \(output 'image_embeds'\) gives 6-d embeddings but the text model '.*text_d5\.onnx' \(output 'text_embeds'\) gives 5-d/);
  });
  it('clipPathsFromDir finds the towers and the tokenizer', () => {
    expect(() => clipPathsFromDir(join(dir, 'sd'))).toThrow(/has no vision_model\.onnx/);
    expect(() => clipPathsFromDir(join(dir, 'missing'))).toThrow(/dir '.*missing' is not a directory/);
    writeFileSync(join(dir, 'vocab.json'), readFileSync(join(tokDir, 'vocab.json')));
    writeFileSync(join(dir, 'merges.txt'), readFileSync(join(tokDir, 'merges.txt')));
    expect(clipPathsFromDir(dir)).toEqual({ vision: join(dir, 'vision_model.onnx'), text: join(dir, 'text_model.onnx'), tokenizer: dir });
  });
});
