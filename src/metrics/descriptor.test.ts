import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder, type Dim } from '../graph/builder.ts';
import { loadDescriptor, pilBilinearWeights, pixelDescriptor, sscdDescriptor, learnedDescriptor, l2NormalizeRows, centerCropOffsets } from './descriptor.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { rand, triRow, unit } from '../../test/helpers/metrics.ts';
import { loadFashionMnist } from '../data/fashion-mnist.ts';

/** Independent PIL bilinear (triangle-filter) weights, float64, one row per output ([out][in]; see `triRow`). */
function triWeights(inN: number, outN: number): Float64Array[] {
  return Array.from({ length: outN }, (_, i) => triRow(inN, outN, i));
}

/** Independent SSCD preprocessing of one image [c, h, w] → [3, oh, ow] (float64). */
function sscdPre(x: Float32Array, c: number, h: number, w: number, oh: number, ow: number, mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225]): Float64Array {
  const Rh = triWeights(h, oh);
  const Rw = triWeights(w, ow);
  const out = new Float64Array(3 * oh * ow);
  for (let ch = 0; ch < 3; ch++) {
    const src = c === 1 ? 0 : ch;
    const u = (v: number) => Math.min(1, Math.max(0, (v + 1) / 2));
    // rows then columns
    const tmp = new Float64Array(oh * w);
    for (let i = 0; i < oh; i++) for (let k = 0; k < w; k++) {
      let s = 0;
      for (let a = 0; a < h; a++) s += Rh[i]![a]! * u(x[src * h * w + a * w + k]!);
      tmp[i * w + k] = s;
    }
    for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
      let s = 0;
      for (let k = 0; k < w; k++) s += Rw[j]![k]! * tmp[i * w + k]!;
      out[ch * oh * ow + i * ow + j] = (s - mean[ch]!) / std[ch]!;
    }
  }
  return out;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memscope-descriptor-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A tiny SSCD-like model: [B, 3, 24, 24] → Flatten → MatMul W [1728, 8] → [B, 8]. */
async function linearModel(name: string, inDims: readonly Dim[] = ['B', 3, 24, 24], outDims: readonly Dim[] = ['B', 8]): Promise<{ path: string; W: Float32Array }> {
  const W = rand(1728 * 8, 42);
  const b = new GraphBuilder();
  b.input('input.1', 'float32', inDims);
  const f = b.op('Flatten', ['input.1'], { axis: 1 });
  b.output(b.op('MatMul', [f, b.initializer('W', W, [1728, 8])]), 'float32', outDims, 'descriptor');
  const path = join(dir, name);
  await writeFile(path, b.toBytes());
  return { path, W };
}

/** A size-agnostic SSCD-like model: [B, 3, H, W] → GlobalAveragePool → Flatten → [B, 3]. */
async function poolModel(name: string, outDims: readonly Dim[] = ['B', 3]): Promise<string> {
  const b = new GraphBuilder();
  b.input('images', 'float32', ['B', 3, 'H', 'W']);
  b.output(b.op('Flatten', [b.op('GlobalAveragePool', ['images'])], { axis: 1 }), 'float32', outDims, 'emb');
  const path = join(dir, name);
  await writeFile(path, b.toBytes());
  return path;
}

function expectUnitRows(t: Tensor): void {
  const [n, d] = t.dims as [number, number];
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += t.data[i * d + k]! ** 2;
    expect(Math.sqrt(s)).toBeCloseTo(1, 5);
  }
}

describe('pilBilinearWeights', () => {
  it('matches an independent triangle-filter computation (up- and downsampling)', () => {
    for (const [a, o] of [[28, 288], [28, 24], [64, 24], [30, 17], [5, 5], [7, 320]] as const) {
      const w = pilBilinearWeights(a, o);
      const ref = triWeights(a, o);
      for (let i = 0; i < o; i++) for (let j = 0; j < a; j++) expect(Math.abs(w[i * a + j]! - ref[i]![j]!)).toBeLessThan(1e-6);
    }
    // same size is the identity
    const id = pilBilinearWeights(6, 6);
    for (let i = 0; i < 6; i++) for (let j = 0; j < 6; j++) expect(id[i * 6 + j]).toBe(i === j ? 1 : 0);
  });
});

describe('pixelDescriptor', () => {
  it('centres on the mean and L2-normalises each row', async () => {
    const x: Tensor = { dims: [3, 1, 2, 5], data: rand(30, 1) };
    const mean = rand(10, 2, -0.2, 0.2);
    const d = pixelDescriptor(mean);
    expect(d.info.name).toBe('pixel');
    expect(d.info.dim).toBe(10);
    const e = await d.embed(x);
    expect(e.dims).toEqual([3, 10]);
    for (let i = 0; i < 3; i++) {
      const ref = unit(Array.from({ length: 10 }, (_, k) => x.data[i * 10 + k]! - mean[k]!));
      for (let k = 0; k < 10; k++) expect(e.data[i * 10 + k]).toBeCloseTo(ref[k]!, 6);
    }
    expectUnitRows(e);
    await expect(d.embed({ dims: [1, 1, 3, 3], data: new Float32Array(9) })).rejects.toThrow(/mean image has 10/);
    // default: no centring; a zero row stays zero
    const z = await pixelDescriptor().embed({ dims: [2, 2], data: Float32Array.of(0, 0, 3, 4) });
    expect(Array.from(z.data)).toEqual([0, 0, 0.6000000238418579, 0.800000011920929]);
    expect(pixelDescriptor().info.dim).toBe(0);
  });

  it('l2NormalizeRows', () => {
    const t = l2NormalizeRows({ dims: [1, 2, 2], data: Float32Array.of(1, 1, 1, 1) });
    expect(t.dims).toEqual([1, 4]);
    expect(Array.from(t.data)).toEqual([0.5, 0.5, 0.5, 0.5]);
  });
});

describe('sscdDescriptor', () => {
  it('preprocesses like the SSCD README (fixed 24×24 model input, grey → RGB, upsampling, clipping)', async () => {
    const { path, W } = await linearModel('fixed.onnx');
    const d = await sscdDescriptor(path);
    expect(d.info.name).toBe('sscd');
    expect(d.info.dim).toBe(8);
    expect(d.info.source).toBe(path);
    expect(d.info.preprocessing).toContain("input 'input.1'");
    expect(d.info.preprocessing).toContain('0.485, 0.456, 0.406');
    expect(d.info.preprocessing).toContain('24x24');
    for (const [c, h, w] of [[1, 20, 20], [1, 28, 28], [3, 64, 48]] as const) {
      const n = 3;
      const x: Tensor = { dims: [n, c, h, w], data: rand(n * c * h * w, 7 + h, -1.2, 1.2) };
      const e = await d.embed(x);
      expect(e.dims).toEqual([n, 8]);
      for (let i = 0; i < n; i++) {
        const p = sscdPre(x.data.subarray(i * c * h * w, (i + 1) * c * h * w), c, h, w, 24, 24);
        const y = Array.from({ length: 8 }, (_, k) => {
          let s = 0;
          for (let j = 0; j < 1728; j++) s += p[j]! * W[j * 8 + k]!;
          return s;
        });
        const ref = unit(y);
        for (let k = 0; k < 8; k++) expect(Math.abs(e.data[i * 8 + k]! - ref[k]!)).toBeLessThan(2e-5);
      }
      expectUnitRows(e);
    }
    await d.dispose?.();
  });

  it('defaults to Resize(288) on the small edge for models of any input size', async () => {
    const path = await poolModel('pool.onnx');
    const d = await sscdDescriptor(path, { batch: 2 });
    expect(d.info.dim).toBe(3);
    expect(d.info.preprocessing).toContain('small edge to 288');
    // RGB 20×30 → 288×432
    const x: Tensor = { dims: [3, 3, 20, 30], data: rand(3 * 1800, 5) };
    const e = await d.embed(x);
    for (let i = 0; i < 3; i++) {
      const p = sscdPre(x.data.subarray(i * 1800, (i + 1) * 1800), 3, 20, 30, 288, 432);
      const m = [0, 1, 2].map((ch) => {
        let s = 0;
        for (let j = 0; j < 288 * 432; j++) s += p[ch * 288 * 432 + j]!;
        return s / (288 * 432);
      });
      const ref = unit(m);
      for (let k = 0; k < 3; k++) expect(Math.abs(e.data[i * 3 + k]! - ref[k]!)).toBeLessThan(2e-5);
    }
    // explicit skew resize [h, w]
    const d2 = await sscdDescriptor(path, { resize: [32, 16] });
    expect(d2.info.preprocessing).toContain('32x16');
    const e2 = await d2.embed({ dims: [1, 1, 8, 8], data: rand(64, 3) });
    const p2 = sscdPre(rand(64, 3), 1, 8, 8, 32, 16);
    const m2 = [0, 1, 2].map((ch) => p2.subarray(ch * 512, (ch + 1) * 512).reduce((a, b) => a + b, 0) / 512);
    unit(m2).forEach((v, k) => expect(Math.abs(e2.data[k]! - v)).toBeLessThan(2e-5));
    await d.dispose?.();
    await d2.dispose?.();
  });

  it('crops the centre and normalises with given statistics (Wen et al. / DCR: Resize 256, CenterCrop 224, Normalize 0.5)', async () => {
    // Python's round: half to even, as torchvision's CenterCrop offsets ((43 − 24)/2 = 9.5 → 10, (45 − 24)/2 = 10.5 → 10)
    expect(centerCropOffsets(28, 43, 24)).toEqual([2, 10]);
    expect(centerCropOffsets(45, 24, 24)).toEqual([10, 0]);
    expect(() => centerCropOffsets(20, 30, 24)).toThrow(/larger than the resized image 20x30/);
    const { path, W } = await linearModel('crop.onnx');
    const half = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
    const d = await sscdDescriptor(path, { resize: 28, centerCrop: 24, normalize: half });
    expect(d.info.preprocessing).toContain('center crop 24x24');
    expect(d.info.preprocessing).toContain('mean (0.5, 0.5, 0.5)');
    // grey 20×31 → small edge 28: 28×43 → crop rows 2..25, columns 10..33 (round(9.5) = 10)
    const x: Tensor = { dims: [2, 1, 20, 31], data: rand(2 * 620, 11, -1.1, 1.1) };
    const e = await d.embed(x);
    for (let i = 0; i < 2; i++) {
      const full = sscdPre(x.data.subarray(i * 620, (i + 1) * 620), 1, 20, 31, 28, 43, half.mean, half.std);
      const crop = new Float64Array(3 * 24 * 24);
      for (let ch = 0; ch < 3; ch++) for (let r = 0; r < 24; r++) for (let q = 0; q < 24; q++) crop[ch * 576 + r * 24 + q] = full[ch * 28 * 43 + (r + 2) * 43 + (q + 10)]!;
      const ref = unit(Array.from({ length: 8 }, (_, k) => crop.reduce((a, v, j) => a + v * W[j * 8 + k]!, 0)));
      for (let k = 0; k < 8; k++) expect(Math.abs(e.data[i * 8 + k]! - ref[k]!)).toBeLessThan(2e-5);
    }
    await d.dispose?.();
    await expect(sscdDescriptor(path, { resize: 28, centerCrop: 20 })).rejects.toThrow(/fixed 24x24 input, which contradicts centerCrop 20/);
    await expect(sscdDescriptor(path, { centerCrop: 0 })).rejects.toThrow(/centerCrop must be a positive integer/);
    await expect(sscdDescriptor(path, { normalize: { mean: [0.5], std: [0.5] } })).rejects.toThrow(/normalize needs 3/);
  });

  it('runs an export with a fixed batch size in zero-padded chunks', async () => {
    const dyn = await sscdDescriptor((await linearModel('dyn.onnx')).path);
    const fix = await sscdDescriptor((await linearModel('batch2.onnx', [2, 3, 24, 24], [2, 8])).path);
    const x: Tensor = { dims: [5, 1, 28, 28], data: rand(5 * 784, 99) };
    const a = await dyn.embed(x);
    const b = await fix.embed(x);
    expect(b.dims).toEqual([5, 8]);
    for (let k = 0; k < a.data.length; k++) expect(b.data[k]).toBeCloseTo(a.data[k]!, 6);
    await dyn.dispose?.();
    await fix.dispose?.();
  });

  it('probes the descriptor size when the output declares none', async () => {
    const path = await poolModel('pool-sym.onnx', ['B', 'D']);
    const d = await sscdDescriptor(path, { resize: 16 });
    expect(d.info.dim).toBe(3);
    await d.dispose?.();
  });

  it('rejects missing files and models without an SSCD signature, naming the path', async () => {
    const missing = join(dir, 'nope.onnx');
    await expect(sscdDescriptor(missing)).rejects.toThrow(new RegExp(`path '${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}' does not exist`));
    await expect(sscdDescriptor(dir)).rejects.toThrow(/is not a file/);
    const junk = join(dir, 'junk.onnx');
    await writeFile(junk, 'not a model');
    await expect(sscdDescriptor(junk)).rejects.toThrow(/could not be loaded/);
    const two = new GraphBuilder();
    two.input('a', 'float32', ['B', 3, 8, 8]);
    two.input('b', 'float32', ['B', 3, 8, 8]);
    two.output(two.op('Flatten', [two.op('Add', ['a', 'b'])], { axis: 1 }), 'float32', ['B', 192], 'y');
    await writeFile(join(dir, 'two.onnx'), two.toBytes());
    await expect(sscdDescriptor(join(dir, 'two.onnx'))).rejects.toThrow(/two\.onnx' is not an SSCD export: it has 2 inputs/);
    const grey = new GraphBuilder();
    grey.input('x', 'float32', ['B', 1, 8, 8]);
    grey.output(grey.op('Flatten', ['x'], { axis: 1 }), 'float32', ['B', 64], 'y');
    await writeFile(join(dir, 'grey.onnx'), grey.toBytes());
    await expect(sscdDescriptor(join(dir, 'grey.onnx'))).rejects.toThrow(/1 channels, not 3/);
    const map = new GraphBuilder();
    map.input('x', 'float32', ['B', 3, 8, 8]);
    map.output(map.op('Identity', ['x']), 'float32', ['B', 3, 8, 8], 'y');
    await writeFile(join(dir, 'map.onnx'), map.toBytes());
    await expect(sscdDescriptor(join(dir, 'map.onnx'))).rejects.toThrow(/output 'y' has shape \[B, 3, 8, 8\], not \[B, D\]/);
    const { path } = await linearModel('fixed2.onnx');
    await expect(sscdDescriptor(path, { resize: 288 })).rejects.toThrow(/fixed 24x24 input/);
    await expect(sscdDescriptor(path, { resize: 0 })).rejects.toThrow(/resize must be/);
    const d = await sscdDescriptor(path);
    await expect(d.embed({ dims: [1, 2, 4, 4], data: new Float32Array(32) })).rejects.toThrow(/1 \(grey\) or 3 \(RGB\) channels/);
    await d.dispose?.();
  });
});

describe('loadDescriptor', () => {
  it('parses pixel, learned, learned:DIR and sscd:PATH', async () => {
    const p = await loadDescriptor('pixel', { trainMean: new Float32Array(4) });
    expect(p.info).toMatchObject({ name: 'pixel', dim: 4 });
    const l = await loadDescriptor('learned');
    expect(l.info.name).toBe('learned');
    expect(l.info.source).toMatch(/models[/\\]descriptor$/);
    await l.dispose?.();
    const l2 = await loadDescriptor(`learned:${l.info.source!}`);
    expect(l2.info.dim).toBe(l.info.dim);
    await l2.dispose?.();
    const { path } = await linearModel('spec.onnx');
    const s = await loadDescriptor(`sscd:${path}`);
    expect(s.info).toMatchObject({ name: 'sscd', dim: 8, source: path });
    await s.dispose?.();
    await expect(loadDescriptor('sscd')).rejects.toThrow(/sscd:PATH/);
    await expect(loadDescriptor('clip')).rejects.toThrow(/expected pixel, learned, learned:DIR or sscd:PATH/);
    await expect(loadDescriptor(`learned:${dir}`)).rejects.toThrow(/descriptor\.json/);
  });
});

describe('learnedDescriptor (shipped models/descriptor)', () => {
  it('embeds to unit rows; RGB and resized inputs go through the documented preprocessing', async () => {
    const d = await learnedDescriptor();
    const test = loadFashionMnist({ split: 'test', limit: 40 });
    const e = await d.embed(test.images);
    expect(e.dims).toEqual([40, d.info.dim]);
    expectUnitRows(e);
    // R = G = B = x → luma x (weights sum to 1)
    const rgb = new Float32Array(40 * 3 * 784);
    for (let i = 0; i < 40; i++) for (let c = 0; c < 3; c++) rgb.set(test.images.data.subarray(i * 784, (i + 1) * 784), (i * 3 + c) * 784);
    const e3 = await d.embed({ dims: [40, 3, 28, 28], data: rgb });
    for (let k = 0; k < e.data.length; k++) expect(Math.abs(e3.data[k]! - e.data[k]!)).toBeLessThan(1e-4);
    // a 2× upsampled image, downsampled back by the antialiased bilinear filter, gives a close embedding
    const up = new Float32Array(40 * 56 * 56);
    for (let i = 0; i < 40; i++) for (let y = 0; y < 56; y++) for (let x = 0; x < 56; x++) up[i * 3136 + y * 56 + x] = test.images.data[i * 784 + (y >> 1) * 28 + (x >> 1)]!;
    const e56 = await d.embed({ dims: [40, 1, 56, 56], data: up });
    let minCos = 1;
    for (let i = 0; i < 40; i++) {
      let c = 0;
      for (let k = 0; k < d.info.dim; k++) c += e56.data[i * d.info.dim + k]! * e.data[i * d.info.dim + k]!;
      minCos = Math.min(minCos, c);
    }
    expect(minCos).toBeGreaterThan(0.9);
    await d.dispose?.();
  });
});
