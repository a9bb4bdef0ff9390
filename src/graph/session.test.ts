/**
 * Graph builder + sessions: a Conv/Gemm/Softmax/Concat/Resize graph against float64 hand
 * computations, attribute typing, metadata, dtype casts (int64/int32/float16), float16
 * initializers (inline and as external data), the cache.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder, f } from './builder.ts';
import { externalDataLocations, splitExternalData, writeModelWithExternalData } from './external-data.ts';
import { createSession, defaultThreads, disposeAll, fromHalfArray, fromHalfBits, getSession, toHalfArray, toHalfBits } from './session.ts';

const tmp = mkdtempSync(join(tmpdir(), 'memscope-graph-session-'));

afterAll(async () => {
  await disposeAll();
  rmSync(tmp, { recursive: true, force: true });
});

describe('GraphBuilder + Session', () => {
  it('Conv + Gemm + Softmax + Concat + Resize + ReduceSum match float64 hand computations (1e-6)', async () => {
    const b = new GraphBuilder({ name: 'mix' });
    const x = b.input('x', 'float32', ['B', 1, 3, 3]);
    const w = b.initializer('w', Float32Array.of(1, 0, 0, -1), [1, 1, 2, 2]);
    const conv = b.op('Conv', [x, w, b.constF32([0.5])], { kernel_shape: [2, 2], pads: [0, 0, 0, 0] }); // [B,1,2,2]
    const flat = b.op('Reshape', [conv, b.constI64([-1, 4])]);
    const gemm = b.op('Gemm', [flat, b.initializer('g', Float32Array.from({ length: 8 }, (_, i) => i / 8), [2, 4]), b.constF32([1, -1])], { transB: 1, alpha: 2, beta: 1 });
    const sm = b.op('Softmax', [gemm], { axis: -1 });
    const cat = b.op('Concat', [sm, gemm], { axis: 1 });
    const up = b.op('Resize', [conv, '', b.constF32([1, 1, 2, 2])], { mode: 'nearest' });
    const rs = b.op('ReduceSum', [up, b.constI64([2, 3])], { keepdims: 0 });
    const lrelu = b.op('LeakyRelu', [gemm], { alpha: f(0.1) });
    b.output(cat, 'float32', ['B', 4], 'cat');
    b.output(rs, 'float32', ['B', 1]);
    b.output(lrelu, 'float32', ['B', 2], 'lrelu');
    const s = await createSession(b.toBytes());
    expect(s.inputs).toEqual([{ name: 'x', isTensor: true, type: 'float32', shape: ['B', 1, 3, 3] }]);
    expect(s.outputNames).toEqual(['cat', rs, 'lrelu']);
    const xv = Float32Array.from({ length: 18 }, (_, i) => Math.sin(i));
    const out = await s.run({ x: { dims: [2, 1, 3, 3], data: xv } });
    for (let bb = 0; bb < 2; bb++) {
      const X = (r: number, c: number): number => xv[bb * 9 + r * 3 + c]!;
      const cv = [0, 1, 2, 3].map((k) => {
        const r = Math.floor(k / 2);
        const c = k % 2;
        return X(r, c) - X(r + 1, c + 1) + 0.5;
      });
      const gm = [0, 1].map((o) => 2 * cv.reduce((a, v, k) => a + v * ((o * 4 + k) / 8), 0) + (o === 0 ? 1 : -1));
      const m = Math.max(...gm);
      const ex = gm.map((v) => Math.exp(v - m));
      const Z = ex[0]! + ex[1]!;
      const want = [ex[0]! / Z, ex[1]! / Z, gm[0]!, gm[1]!];
      want.forEach((v, k) => expect(Math.abs(out['cat']!.data[bb * 4 + k]! - v)).toBeLessThan(1e-6));
      expect(Math.abs(out[rs]!.data[bb]! - 4 * cv.reduce((a, v) => a + v, 0))).toBeLessThan(1e-5);
      gm.forEach((v, k) => expect(Math.abs(out['lrelu']!.data[bb * 2 + k]! - (v > 0 ? v : 0.1 * v))).toBeLessThan(1e-6));
    }
  });

  it('casts tensor feeds to the declared int64 / int32 / float16 / float64 types and refuses fractional integers', async () => {
    const b = new GraphBuilder();
    const outs = (['int64', 'int32', 'float16', 'float64'] as const).map((t) => b.op('Cast', [b.input(`i_${t}`, t, [3])], { to: 1 }));
    b.output(b.op('Concat', outs, { axis: 0 }), 'float32', [12], 'y');
    const s = await createSession(b.toBytes());
    expect(s.inputs.map((i) => i.type)).toEqual(['int64', 'int32', 'float16', 'float64']);
    const v = { dims: [3], data: Float32Array.of(1, -2, 3) };
    const half = { dims: [3], data: Float32Array.of(0.1, 65504, -1e-7) };
    const o = await s.run({ i_int64: v, i_int32: v, i_float16: half, i_float64: { type: 'float64', dims: [3], data: Float64Array.of(0.5, 1, 2) } });
    expect(Array.from(o['y']!.data)).toEqual([1, -2, 3, 1, -2, 3, fromHalfBits(toHalfBits(0.1)), 65504, fromHalfBits(toHalfBits(-1e-7)), 0.5, 1, 2]);
    await expect(s.run({ i_int64: { dims: [3], data: Float32Array.of(1.5, 0, 0) }, i_int32: v, i_float16: v, i_float64: v })).rejects.toThrow(/input 'i_int64': int64 value expected, got 1.5/);
    await expect(s.run({ i_int64: v })).rejects.toThrow(/missing input 'i_int32'/);
    await s.release();
  });

  it('float16 conversion rounds to nearest even and handles subnormals, infinities and NaN', () => {
    expect(toHalfBits(1)).toBe(0x3c00);
    expect(toHalfBits(-2)).toBe(0xc000);
    expect(toHalfBits(65504)).toBe(0x7bff);
    expect(toHalfBits(70000)).toBe(0x7c00);
    expect(toHalfBits(2 ** -24)).toBe(1);
    expect(toHalfBits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(toHalfBits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(Number.isNaN(fromHalfBits(toHalfBits(NaN)))).toBe(true);
    expect(fromHalfBits(0xfc00)).toBe(-Infinity);
    for (const v of [0.333, -12.5, 1e-4, 3000.7]) expect(Math.abs(fromHalfBits(toHalfBits(v)) - v) / Math.abs(v)).toBeLessThan(2 ** -11);
    for (const v of [1e-5, -3.3e-6]) expect(Math.abs(fromHalfBits(toHalfBits(v)) - v)).toBeLessThanOrEqual(2 ** -25); // subnormal spacing 2^-24
  });

  it('toHalfArray / fromHalfArray convert element-wise like toHalfBits / fromHalfBits', () => {
    const v = [0, 1, -2, 0.1, 65504, 70000, 2 ** -24, 1 + 2 ** -11, -3000.7];
    const h = toHalfArray(v);
    expect(h).toBeInstanceOf(Uint16Array);
    expect(Array.from(h)).toEqual(v.map(toHalfBits));
    expect(Array.from(fromHalfArray(h))).toEqual(v.map((x) => Math.fround(fromHalfBits(toHalfBits(x)))));
    expect(Array.from(toHalfArray(fromHalfArray(h)))).toEqual(Array.from(h)); // halves round-trip exactly
  });

  it('float16 initializers (Uint16Array half bits): Cast to float32 gives the half values; fp16 outputs come back as float32', async () => {
    const vals = Float32Array.from({ length: 6 }, (_, i) => Math.sin(i + 0.3) * 3);
    const b = new GraphBuilder({ name: 'half' });
    const x = b.input('x', 'float32', ['B', 6]);
    const w = b.initializer('w', toHalfArray(vals), [6]);
    const y = b.op('Add', [x, b.op('Cast', [w], { to: 1 })]);
    b.output(y, 'float32', ['B', 6], 'y');
    b.output(b.op('Cast', [y], { to: 10 }), 'float16', ['B', 6], 'y16');
    const s = await createSession(b.toBytes(), { threads: 1 });
    expect(s.outputs.map((o) => o.type)).toEqual(['float32', 'float16']);
    const o = await s.run({ x: { dims: [1, 6], data: new Float32Array(6) } });
    expect(Array.from(o['y']!.data)).toEqual(Array.from(fromHalfArray(toHalfArray(vals))));
    expect(Array.from(o['y16']!.data)).toEqual(Array.from(fromHalfArray(toHalfArray(vals))));
    const raw = await s.runRaw({ x: { dims: [1, 6], data: new Float32Array(6) } }, ['y16']);
    expect(raw['y16']!.type).toBe('float16');
    expect(Array.from(raw['y16']!.data as Uint16Array)).toEqual(Array.from(toHalfArray(vals)));
  });

  it('float16 initializers move to external data at 2 bytes a value and load by path with the inline result', async () => {
    const n = 300 * 3;
    const half = toHalfArray(Float32Array.from({ length: n }, (_, i) => Math.sin(i) / 4));
    const b = new GraphBuilder({ name: 'ext16' });
    const x = b.input('x', 'float16', ['B', 300]);
    const w = b.initializer('w', half, [300, 3]);
    const y = b.op('MatMul', [b.op('Cast', [x], { to: 1 }), b.op('Cast', [w], { to: 1 })]);
    b.output(b.op('Cast', [y], { to: 10 }), 'float16', ['B', 3], 'y');
    const split = splitExternalData(b, { location: 'model.onnx_data' });
    expect(split.externalTensors).toEqual(['w']);
    expect(split.data.byteLength).toBe(n * 2);
    const path = join(tmp, 'ext16', 'model.onnx');
    writeModelWithExternalData(b, path, { location: 'model.onnx_data' });
    expect(externalDataLocations(path)).toEqual(['model.onnx_data']);
    expect(statSync(join(tmp, 'ext16', 'model.onnx_data')).size).toBe(n * 2);
    const xv = { dims: [2, 300], data: Float32Array.from({ length: 600 }, (_, i) => Math.cos(i / 7)) };
    const inline = await (await createSession(b.toBytes(), { threads: 1 })).run({ x: xv });
    const external = await (await createSession(path, { threads: 1 })).run({ x: xv });
    expect(Array.from(external['y']!.data)).toEqual(Array.from(inline['y']!.data));
    expect(inline['y']!.data.some((v) => v !== 0)).toBe(true);
  });

  it('getSession caches by bytes and options; disposeAll releases', async () => {
    const b = new GraphBuilder();
    b.output(b.op('Neg', [b.input('x', 'float32', [1])]), 'float32', [1], 'y');
    const bytes = b.toBytes();
    const s1 = await getSession(bytes);
    const s2 = await getSession(Uint8Array.from(bytes));
    const s3 = await getSession(bytes, { threads: defaultThreads() + 1 }); // a thread count other than the default (MEMSCOPE_THREADS may set it)
    expect(s1).toBe(s2);
    expect(s3).not.toBe(s1);
    expect((await s1.run({ x: { dims: [1], data: Float32Array.of(2) } }))['y']!.data[0]).toBe(-2);
    await disposeAll();
    await expect(s1.run({ x: { dims: [1], data: Float32Array.of(2) } })).rejects.toThrow(/released/);
    expect(await getSession(bytes)).not.toBe(s1);
  });

  it('rejects undefined inputs and duplicate names', () => {
    const b = new GraphBuilder();
    b.input('x', 'float32', [1]);
    expect(() => b.op('Relu', ['nope'])).toThrow(/input 'nope' is not defined/);
    expect(() => b.input('x', 'float32', [1])).toThrow(/'x' is already used/);
    expect(() => b.initializer('w', new Float32Array(3), [2, 2])).toThrow(/4 elements\) but 3 values/);
  });
});
