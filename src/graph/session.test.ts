/**
 * Graph builder + sessions: a Conv/Gemm/Softmax/Concat/Resize graph against float64 hand
 * computations, attribute typing, metadata, dtype casts (int64/int32/float16), the cache.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder, f } from './builder.ts';
import { createSession, defaultThreads, disposeAll, fromHalfBits, getSession, toHalfBits } from './session.ts';

afterAll(async () => {
  await disposeAll();
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
