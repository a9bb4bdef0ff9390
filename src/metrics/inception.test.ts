import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder, type Dim } from '../graph/builder.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { expectClose, rand, saveModel, triRow } from '../../test/helpers/metrics.ts';
import { loadInceptionFeatures } from './inception.ts';

// Tolerances (float32 pipeline against float64 references computed here):
// - preprocessed pixels (|v| ≲ 2.7): abs 1e-5;
// - features of the linear model (outputs O(1)): abs 1e-4;
// - 2048 pooled features (means over 299² pixels): abs 1e-5.

const u = (v: number): number => Math.min(1, Math.max(0, (v + 1) / 2));

/**
 * pytorch-fid reference of one image `[c, h, w]` → `[3, H, W]` float64: (x+1)/2 clipped, then per
 * output pixel F.interpolate bilinear (align_corners=False) from its definition, then 2y − 1.
 */
function fidPre(x: Float32Array, c: number, h: number, w: number, H: number, W: number): Float64Array {
  const src = (i: number, inN: number, outN: number): [number, number, number] => {
    const s = Math.max((i + 0.5) * (inN / outN) - 0.5, 0);
    const i0 = Math.floor(s);
    return [i0, Math.min(i0 + 1, inN - 1), s - i0];
  };
  const out = new Float64Array(3 * H * W);
  for (let ch = 0; ch < 3; ch++) {
    const p = (y: number, xx: number) => u(x[(c === 1 ? 0 : ch) * h * w + y * w + xx]!);
    for (let i = 0; i < H; i++) {
      const [y0, y1, ly] = src(i, h, H);
      for (let j = 0; j < W; j++) {
        const [x0, x1, lx] = src(j, w, W);
        const v = (1 - ly) * ((1 - lx) * p(y0, x0) + lx * p(y0, x1)) + ly * ((1 - lx) * p(y1, x0) + lx * p(y1, x1));
        out[ch * H * W + i * W + j] = 2 * v - 1;
      }
    }
  }
  return out;
}

/** torchvision reference: (x+1)/2 clipped, PIL bilinear resize to H×W, ImageNet normalisation (float64). */
function tvPre(x: Float32Array, c: number, h: number, w: number, H: number, W: number): Float64Array {
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const rows = Array.from({ length: H }, (_, i) => triRow(h, H, i));
  const cols = Array.from({ length: W }, (_, j) => triRow(w, W, j));
  // the non-zero taps of each row (the loops below skip the zeros only for speed)
  const span = (r: Float64Array): [number, number] => {
    let lo = 0;
    let hi = r.length;
    while (r[lo] === 0) lo++;
    while (r[hi - 1] === 0) hi--;
    return [lo, hi];
  };
  const rs = rows.map(span);
  const cs = cols.map(span);
  const out = new Float64Array(3 * H * W);
  for (let ch = 0; ch < 3; ch++) {
    const base = (c === 1 ? 0 : ch) * h * w;
    const tmp = new Float64Array(h * W);
    for (let y = 0; y < h; y++) {
      for (let j = 0; j < W; j++) {
        let s = 0;
        const cw = cols[j]!;
        const [lo, hi] = cs[j]!;
        for (let k = lo; k < hi; k++) s += cw[k]! * u(x[base + y * w + k]!);
        tmp[y * W + j] = s;
      }
    }
    for (let i = 0; i < H; i++) {
      const rw = rows[i]!;
      const [lo, hi] = rs[i]!;
      for (let j = 0; j < W; j++) {
        let s = 0;
        for (let y = lo; y < hi; y++) s += rw[y]! * tmp[y * W + j]!;
        out[ch * H * W + i * W + j] = (s - mean[ch]!) / std[ch]!;
      }
    }
  }
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'memscope-inception-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const L = 40;
const DL = 5;
const WL = rand(3 * L * L * DL, 3, -0.02, 0.02);
const K = 2048;
const WC = rand(K * 3, 4);

/** [N, 3, 40, 40] → Flatten → MatMul → `pool` [N, 5]. */
function linearModel(name: string, o: { outDims?: readonly Dim[]; inDims?: readonly Dim[]; twoInputs?: boolean } = {}): string {
  const b = new GraphBuilder();
  b.input('input', 'float32', o.inDims ?? ['N', 3, L, L]);
  if (o.twoInputs === true) b.input('scale', 'float32', [1]);
  const y = b.op('MatMul', [b.op('Flatten', ['input'], { axis: 1 }), b.initializer('W', WL, [3 * L * L, DL])]);
  const od = o.outDims ?? ['N', DL];
  b.output(od.length === 2 ? y : b.op('Reshape', [y, b.constI64(od.map((d) => (typeof d === 'number' ? d : -1)))]), 'float32', od, 'pool');
  return saveModel(b, dir, name);
}

/**
 * [batch, 3, H, W] → a 1×1 convolution to 2048 channels and global average pooling (computed as
 * GlobalAveragePool, then the 3 → 2048 map, which is the same linear function) → `pool3`
 * [batch, 2048, 1, 1].
 */
function poolModel(name: string, inDims: readonly Dim[]): string {
  const b = new GraphBuilder();
  b.input('x.1', 'float32', inDims);
  const g = b.op('Flatten', [b.op('GlobalAveragePool', ['x.1'])], { axis: 1 }); // [B, 3]
  const wt = new Float32Array(3 * K);
  for (let k = 0; k < K; k++) for (let c = 0; c < 3; c++) wt[c * K + k] = WC[k * 3 + c]!;
  const y = b.op('MatMul', [g, b.initializer('WcT', wt, [3, K])]);
  b.output(b.op('Reshape', [y, b.constI64([-1, K, 1, 1])]), 'float32', ['batch', K, 1, 1], 'pool3');
  return saveModel(b, dir, name);
}

let linear: string;
let pool: string;
beforeAll(() => {
  linear = linearModel('linear.onnx');
  pool = poolModel('pool.onnx', ['batch', 3, 299, 299]);
});

describe('loadInceptionFeatures', () => {
  it("'pytorch-fid': F.interpolate bilinear to the model's input size, 2y − 1 (float64 reference), rank-2 output", async () => {
    const f = await loadInceptionFeatures(linear, { batch: 2 });
    try {
      expect(f.dim).toBe(DL);
      expect(f.convention).toBe('pytorch-fid');
      expect(f.preprocessing).toMatch(/align_corners=False/);
      for (const [n, c, h, w] of [
        [3, 1, 28, 28],
        [2, 3, 50, 70],
      ] as const) {
        const x = rand(n * c * h * w, 10 + h);
        const images: Tensor = { dims: [n, c, h, w], data: x };
        const pre = await f.preprocess(images);
        expect(pre.dims).toEqual([n, 3, L, L]);
        const feats = await f.features(images);
        expect(feats.dims).toEqual([n, DL]);
        for (let i = 0; i < n; i++) {
          const ref = fidPre(x.subarray(i * c * h * w, (i + 1) * c * h * w), c, h, w, L, L);
          expectClose(pre.data.subarray(i * 3 * L * L, (i + 1) * 3 * L * L), ref, 1e-5);
          const e = new Array<number>(DL).fill(0);
          for (let k = 0; k < ref.length; k++) for (let q = 0; q < DL; q++) e[q]! += ref[k]! * WL[k * DL + q]!;
          expectClose(feats.data.subarray(i * DL, (i + 1) * DL), e, 1e-4);
        }
      }
    } finally {
      await f.dispose();
    }
  });

  it("'torchvision': PIL bilinear (antialiased) resize to 299×299, ImageNet normalisation; [B, 2048, 1, 1] flattened", async () => {
    const f = await loadInceptionFeatures(pool, { convention: 'torchvision' });
    try {
      expect(f.dim).toBe(K);
      expect(f.name).toMatch(/2048-d, torchvision/);
      const [n, c, h, w] = [2, 3, 320, 350];
      const x = rand(n * c * h * w, 99);
      const feats = await f.features({ dims: [n, c, h, w], data: x });
      expect(feats.dims).toEqual([n, K]);
      for (let i = 0; i < n; i++) {
        const ref = tvPre(x.subarray(i * c * h * w, (i + 1) * c * h * w), c, h, w, 299, 299);
        const m = [0, 1, 2].map((ch) => {
          let s = 0;
          for (let k = 0; k < 299 * 299; k++) s += ref[ch * 299 * 299 + k]!;
          return s / (299 * 299);
        });
        const want = Array.from({ length: K }, (_, k) => WC[k * 3]! * m[0]! + WC[k * 3 + 1]! * m[1]! + WC[k * 3 + 2]! * m[2]!);
        expectClose(feats.data.subarray(i * K, (i + 1) * K), want, 1e-5);
        if (i === 0) {
          const pre = await f.preprocess({ dims: [1, c, h, w], data: x.subarray(0, c * h * w) });
          expectClose(pre.data, ref, 1e-5);
        }
      }
    } finally {
      await f.dispose();
    }
  });

  it('defaults to 299×299 when the model input has symbolic H, W; grey images become RGB', async () => {
    const f = await loadInceptionFeatures(poolModel('dyn.onnx', ['batch', 3, 'H', 'W']));
    const x = rand(28 * 28, 5);
    const pre = await f.preprocess({ dims: [1, 1, 28, 28], data: x });
    expect(pre.dims).toEqual([1, 3, 299, 299]);
    const ref = fidPre(x, 1, 28, 28, 299, 299);
    expectClose(pre.data, ref, 1e-5);
    expect(f.dim).toBe(K);
    await f.dispose();
  });

  it('runs a fixed-batch model in zero-padded chunks', async () => {
    const f = await loadInceptionFeatures(linearModel('fixed.onnx', { inDims: [2, 3, L, L], outDims: [2, DL] }));
    const g = await loadInceptionFeatures(linear);
    const images: Tensor = { dims: [3, 1, 28, 28], data: rand(3 * 784, 6) };
    const a = await f.features(images);
    expect(a.dims).toEqual([3, DL]);
    expectClose(a.data, (await g.features(images)).data, 1e-6);
    await f.dispose();
    await g.dispose();
  });

  it('errors name the argument: missing file, inputs, output rank and shape, channels, convention', async () => {
    await expect(loadInceptionFeatures(join(dir, 'nope.onnx'))).rejects.toThrow(/loadInceptionFeatures: path '.*nope\.onnx' does not exist/);
    await expect(loadInceptionFeatures(dir)).rejects.toThrow(/is not a file/);
    await expect(loadInceptionFeatures(linearModel('two.onnx', { twoInputs: true }))).rejects.toThrow(/path '.*two\.onnx' is not an Inception feature model: it has 2 inputs \(input, scale\)/);
    await expect(loadInceptionFeatures(linearModel('r3.onnx', { outDims: ['N', DL, 1] }))).rejects.toThrow(/output 'pool' has rank 3/);
    await expect(loadInceptionFeatures(linearModel('r4.onnx', { outDims: ['N', 1, 1, DL] }))).rejects.toThrow(/output 'pool' has shape \[N, 1, 1, 5\], not \[B, D, 1, 1\]/);
    await expect(loadInceptionFeatures(linearModel('c1.onnx', { inDims: ['N', 1, 120, 40] }))).rejects.toThrow(/input 'input' has 1 channels, not 3/);
    await expect(loadInceptionFeatures(linear, { output: 'logits' })).rejects.toThrow(/no output 'logits' \(outputs: pool\)/);
    await expect(loadInceptionFeatures(linear, { convention: 'tf' as never })).rejects.toThrow(/convention must be 'pytorch-fid' or 'torchvision'/);
    const f = await loadInceptionFeatures(linear);
    await expect(f.features({ dims: [2, 28, 28], data: new Float32Array(2 * 784) })).rejects.toThrow(/images must be \[n, C, H, W\]/);
    await f.dispose();
  });
});
