/**
 * Layer builders run in onnxruntime against float64 references: GroupNorm, LayerNorm, attention
 * (self and cross, with and without q/k/v bias, fixed and dynamic batch), the diffusers
 * sinusoidal time embedding, conv, GELU and 2× nearest up-sampling; seeded initialisation.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder, type Dim } from '../graph/builder.ts';
import { type Feed, createSession, disposeAll } from '../graph/session.ts';
import type { ParamSpec } from './params.ts';
import { countParams, initParam, initParams, paramFnFor, paramSeed } from './init.ts';
import {
  type BatchDim,
  attention,
  conv2d,
  convOut,
  geluTanh,
  groupNorm,
  layerNorm,
  sinusoidalEmbedding,
  timestepEmbedding,
  timestepFrequencies,
  upsample2x,
} from './layers.ts';
import { attentionRef, groupNormRef, layerNormRef, linearRef, maxAbsDiff, seededArray, siluRef, sinusoidRef } from './reference.test-helpers.ts';
import type { ParamFn } from './params.ts';

afterAll(disposeAll);

/** Build `layer(x…)` with seeded initializer params, run it, return output and the param values. */
async function runLayer(
  inputs: readonly { name: string; dims: readonly Dim[]; type?: 'float32' | 'int64' }[],
  layer: (b: GraphBuilder, param: ParamFn, xs: string[]) => string,
  feeds: Record<string, Feed>,
  seed = 7,
): Promise<{ out: Float32Array; dims: readonly number[]; values: Map<string, Float32Array> }> {
  const b = new GraphBuilder();
  const reg = paramFnFor(b, 'initializer', { seed });
  const xs = inputs.map((i) => b.input(i.name, i.type ?? 'float32', i.dims));
  b.output(layer(b, reg.param, xs), 'float32', undefined, 'y');
  const s = await createSession(b.toBytes(), { threads: 1 });
  const r = await s.run(feeds);
  await s.release();
  return { out: r['y']!.data, dims: r['y']!.dims, values: reg.values };
}

describe('initialisation', () => {
  const specs: ParamSpec[] = [
    { name: 'a.weight', dims: [4, 3, 3, 3], init: { kind: 'uniform', bound: 0.25 } },
    { name: 'a.bias', dims: [4], init: { kind: 'uniform', bound: 0.25 }, noDecay: true },
    { name: 'n.weight', dims: [5], init: { kind: 'ones' } },
    { name: 'n.bias', dims: [5], init: { kind: 'zeros' } },
    { name: 'e.weight', dims: [100, 8], init: { kind: 'normal', std: 0.02 } },
  ];
  it('is deterministic, per name (order-independent), seed-dependent, within bounds', () => {
    const a = initParams(specs, 3);
    const b = initParams([...specs].reverse(), 3);
    const c = initParams(specs, 4);
    for (const s of specs) expect(a.values.get(s.name)).toEqual(b.values.get(s.name));
    expect(a.values.get('a.weight')).not.toEqual(c.values.get('a.weight'));
    expect(a.values.get('a.weight')).not.toEqual(a.values.get('a.bias')!.subarray(0, 4));
    const w = a.values.get('a.weight')!;
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(0.25);
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(0.15);
    expect([...a.values.get('n.weight')!]).toEqual([1, 1, 1, 1, 1]);
    expect([...a.values.get('n.bias')!]).toEqual([0, 0, 0, 0, 0]);
    const e = a.values.get('e.weight')!;
    const std = Math.sqrt(e.reduce((s, v) => s + v * v, 0) / e.length);
    expect(std).toBeGreaterThan(0.017);
    expect(std).toBeLessThan(0.023);
    expect(countParams(specs)).toBe(108 + 4 + 5 + 5 + 800);
    expect(paramSeed(3, 'x')).not.toBe(paramSeed(3 + 2 ** 32, 'x'));
  });
  it('paramFnFor records specs; initializer mode draws what initParams draws; input mode declares inputs', async () => {
    const b = new GraphBuilder();
    const reg = paramFnFor(b, 'initializer', { seed: 11 });
    const x = b.input('x', 'float32', ['B', 3, 5, 5]);
    b.output(conv2d(b, reg.param, 'c', x, 3, 4), 'float32');
    expect(reg.specs.map((s) => s.name)).toEqual(['c.weight', 'c.bias']);
    expect(reg.specs[1]!.noDecay).toBe(true);
    const again = initParams(reg.specs, 11);
    for (const s of reg.specs) expect(reg.values.get(s.name)).toEqual(again.values.get(s.name));
    expect(() => reg.param('c.bias', [4], { kind: 'zeros' })).toThrow(/declared twice/);

    const b2 = new GraphBuilder();
    const reg2 = paramFnFor(b2, 'input');
    const x2 = b2.input('x', 'float32', ['B', 3, 5, 5]);
    b2.output(conv2d(b2, reg2.param, 'c', x2, 3, 4), 'float32', undefined, 'y');
    const s = await createSession(b2.toBytes(), { threads: 1 });
    expect(s.inputNames).toEqual(['x', 'c.weight', 'c.bias']);
    await s.release();
    expect(() => paramFnFor(new GraphBuilder(), 'initializer', new Map()).param('w', [2], { kind: 'zeros' })).toThrow(/no value/);
    expect(() => paramFnFor(new GraphBuilder(), 'initializer', new Map([['w', new Float32Array(3)]])).param('w', [2], { kind: 'zeros' })).toThrow(/3 values/);
    expect(initParam({ name: 'z', dims: [2, 2], init: { kind: 'zeros' } }, 1)).toEqual(new Float32Array(4));
  });
});

describe('normalisation vs float64 references', () => {
  for (const batch of [3, 'dynamic'] as BatchDim[]) {
    it(`groupNorm (batch ${batch})`, async () => {
      const [B, C, H, W, G] = [3, 12, 5, 4, 4];
      const x = seededArray(B * C * H * W, 1, -2, 3);
      // non-trivial affine: build with explicit values
      const { out, dims, values } = await runLayer(
        [{ name: 'x', dims: [batch === 'dynamic' ? 'B' : B, C, H, W] }],
        (b, p, [xi]) => groupNorm(b, p, 'gn', xi!, C, G, H, W, { batch }),
        { x: { dims: [B, C, H, W], data: x } },
      );
      expect(dims).toEqual([B, C, H, W]);
      const ref = groupNormRef(x, B, C, H * W, G, values.get('gn.weight')!, values.get('gn.bias')!);
      expect(maxAbsDiff(out, ref)).toBeLessThan(2e-5);
    });
  }
  it('groupNorm with a non-trivial affine and eps', async () => {
    const [B, C, H, W, G] = [2, 8, 3, 3, 2];
    const x = seededArray(B * C * H * W, 2);
    const g = seededArray(C, 3, 0.5, 2);
    const bb = seededArray(C, 4);
    const b = new GraphBuilder();
    const vals = new Map([
      ['gn.weight', g],
      ['gn.bias', bb],
    ]);
    const reg = paramFnFor(b, 'initializer', vals);
    b.output(groupNorm(b, reg.param, 'gn', b.input('x', 'float32', ['B', C, H, W]), C, G, H, W, { eps: 1e-3 }), 'float32', undefined, 'y');
    const s = await createSession(b.toBytes(), { threads: 1 });
    const out = (await s.run({ x: { dims: [B, C, H, W], data: x } }))['y']!.data;
    await s.release();
    expect(maxAbsDiff(out, groupNormRef(x, B, C, H * W, G, g, bb, 1e-3))).toBeLessThan(2e-5);
  });
  it('layerNorm on [B, L, D]', async () => {
    const [B, L, D] = [2, 5, 16];
    const x = seededArray(B * L * D, 5, -4, 1);
    const g = seededArray(D, 6, 0.5, 2);
    const bb = seededArray(D, 7);
    const b = new GraphBuilder();
    const reg = paramFnFor(
      b,
      'initializer',
      new Map([
        ['ln.weight', g],
        ['ln.bias', bb],
      ]),
    );
    b.output(layerNorm(b, reg.param, 'ln', b.input('x', 'float32', ['B', L, D]), D), 'float32', undefined, 'y');
    const s = await createSession(b.toBytes(), { threads: 1 });
    const out = (await s.run({ x: { dims: [B, L, D], data: x } }))['y']!.data;
    await s.release();
    expect(maxAbsDiff(out, layerNormRef(x, B * L, D, g, bb))).toBeLessThan(2e-5);
  });
});

describe('attention vs a float64 reference', () => {
  const cases = [
    { name: 'self, no qkv bias, dynamic batch', B: 2, Lq: 6, Lk: 6, qDim: 16, kvDim: 16, dim: 16, heads: 4, bias: false, self: true, batch: 'dynamic' as BatchDim },
    { name: 'cross, other kv width/length, fixed batch', B: 3, Lq: 9, Lk: 4, qDim: 12, kvDim: 20, dim: 8, heads: 2, bias: false, self: false, batch: 3 as BatchDim },
    { name: 'self with qkv bias (CLIP)', B: 2, Lq: 5, Lk: 5, qDim: 12, kvDim: 12, dim: 12, heads: 3, bias: true, self: true, batch: 'dynamic' as BatchDim },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const q = seededArray(c.B * c.Lq * c.qDim, 8, -2, 2);
      const kv = seededArray(c.B * c.Lk * c.kvDim, 9, -2, 2);
      const Bd = c.batch === 'dynamic' ? 'B' : c.B;
      const inputs = c.self ? [{ name: 'q', dims: [Bd, c.Lq, c.qDim] }] : [{ name: 'q', dims: [Bd, c.Lq, c.qDim] }, { name: 'kv', dims: [Bd, c.Lk, c.kvDim] }];
      const feeds: Record<string, Feed> = c.self ? { q: { dims: [c.B, c.Lq, c.qDim], data: q } } : { q: { dims: [c.B, c.Lq, c.qDim], data: q }, kv: { dims: [c.B, c.Lk, c.kvDim], data: kv } };
      const { out, dims, values } = await runLayer(
        inputs,
        (b, p, xs) => attention(b, p, 'at', xs[0]!, xs[c.self ? 0 : 1]!, { dim: c.dim, heads: c.heads, qLen: c.Lq, kvLen: c.Lk, qDim: c.qDim, kvDim: c.kvDim, qkvBias: c.bias, batch: c.batch }),
        feeds,
      );
      expect(dims).toEqual([c.B, c.Lq, c.qDim]);
      const v = (n: string): Float32Array => values.get(`at.${n}`)!;
      const p = { wq: v('to_q.weight'), wk: v('to_k.weight'), wv: v('to_v.weight'), wo: v('to_out.weight'), bo: v('to_out.bias'), ...(c.bias ? { bq: v('to_q.bias'), bk: v('to_k.bias'), bv: v('to_v.bias') } : {}) };
      expect(values.has('at.to_q.bias')).toBe(c.bias);
      const ref = attentionRef(q, c.self ? q : kv, c.B, c.Lq, c.self ? c.Lq : c.Lk, c.qDim, c.self ? c.qDim : c.kvDim, c.dim, c.heads, p);
      expect(maxAbsDiff(out, ref)).toBeLessThan(1e-5);
    });
  }
});

describe('timestep embedding (diffusers get_timestep_embedding, flip_sin_to_cos=True, shift 0)', () => {
  const ts = [0, 1, 17.5, 250, 500, 999];
  it('frequencies are torch float32 exp(-ln(1e4)·i/half)', () => {
    const f = timestepFrequencies(8);
    expect(f[0]).toBe(1);
    for (let i = 0; i < 4; i++) expect(f[i]).toBeCloseTo(Math.exp((-Math.log(10000) * i) / 4), 6);
    expect(() => timestepFrequencies(7)).toThrow(/even/);
  });
  it('sinusoid = [cos(t f), sin(t f)] as the direct formula', async () => {
    const D = 32;
    const { out, dims } = await runLayer([{ name: 't', dims: ['B'] }], (b, _p, [t]) => sinusoidalEmbedding(b, t!, D), { t: { dims: [ts.length], data: Float32Array.from(ts) } });
    expect(dims).toEqual([ts.length, D]);
    // vs float64 formula: the float32 argument t·f (|t f| ≤ 999) limits agreement to ~1e-4
    expect(maxAbsDiff(out, sinusoidRef(ts, D))).toBeLessThan(2e-4);
    // vs the float32-argument formula (what torch computes): round-off only
    const f = timestepFrequencies(D);
    const ref32 = new Float64Array(ts.length * D);
    ts.forEach((t, r) => {
      for (let i = 0; i < D / 2; i++) {
        const a = Math.fround(t * f[i]!);
        ref32[r * D + i] = Math.cos(a);
        ref32[r * D + D / 2 + i] = Math.sin(a);
      }
    });
    expect(maxAbsDiff(out, ref32)).toBeLessThan(2e-6);
  });
  it('timestepEmbedding = linear_2(SiLU(linear_1(sinusoid)))', async () => {
    const [F, D] = [16, 24];
    const { out, dims, values } = await runLayer([{ name: 't', dims: [ts.length] }], (b, p, [t]) => timestepEmbedding(b, p, 'te', t!, D, { freqDim: F, batch: ts.length }), {
      t: { dims: [ts.length], data: Float32Array.from(ts) },
    });
    expect(dims).toEqual([ts.length, D]);
    const v = (n: string): Float32Array => values.get(`te.${n}`)!;
    const h = linearRef(sinusoidRef(ts, F), ts.length, F, D, v('linear_1.weight'), v('linear_1.bias')).map(siluRef);
    const ref = linearRef(h, ts.length, D, D, v('linear_2.weight'), v('linear_2.bias'));
    expect(maxAbsDiff(out, ref)).toBeLessThan(2e-4);
  });
});

describe('conv, GELU, up-sampling', () => {
  it('conv2d matches a direct convolution (stride 2, pad 1) and convOut', async () => {
    const [B, cin, cout, H, W] = [2, 3, 4, 7, 6];
    const x = seededArray(B * cin * H * W, 12);
    const { out, dims, values } = await runLayer([{ name: 'x', dims: ['B', cin, H, W] }], (b, p, [xi]) => conv2d(b, p, 'c', xi!, cin, cout, { stride: 2 }), { x: { dims: [B, cin, H, W], data: x } });
    const [Ho, Wo] = [convOut(H, 3, 2, 1), convOut(W, 3, 2, 1)];
    expect(dims).toEqual([B, cout, Ho, Wo]);
    const w = values.get('c.weight')!;
    const bias = values.get('c.bias')!;
    const ref = new Float64Array(B * cout * Ho * Wo);
    for (let bi = 0; bi < B; bi++)
      for (let o = 0; o < cout; o++)
        for (let i = 0; i < Ho; i++)
          for (let j = 0; j < Wo; j++) {
            let s = bias[o]!;
            for (let c = 0; c < cin; c++)
              for (let ki = 0; ki < 3; ki++)
                for (let kj = 0; kj < 3; kj++) {
                  const yi = i * 2 - 1 + ki;
                  const xj = j * 2 - 1 + kj;
                  if (yi < 0 || yi >= H || xj < 0 || xj >= W) continue;
                  s += x[((bi * cin + c) * H + yi) * W + xj]! * w[((o * cin + c) * 3 + ki) * 3 + kj]!;
                }
            ref[((bi * cout + o) * Ho + i) * Wo + j] = s;
          }
    expect(maxAbsDiff(out, ref)).toBeLessThan(1e-5);
    const bound = 1 / Math.sqrt(cin * 9);
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(bound);
  });
  it('geluTanh and upsample2x', async () => {
    const x = Float32Array.from([-3, -1, -0.5, 0, 0.3, 1, 2.5, 4]);
    const g = await runLayer([{ name: 'x', dims: [8] }], (b, _p, [xi]) => geluTanh(b, xi!), { x: { dims: [8], data: x } });
    const gref = [...x].map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
    expect(maxAbsDiff(g.out, gref)).toBeLessThan(1e-6);
    const u = seededArray(2 * 3 * 2 * 3, 13);
    const r = await runLayer([{ name: 'x', dims: ['B', 3, 2, 3] }], (b, _p, [xi]) => upsample2x(b, xi!), { x: { dims: [2, 3, 2, 3], data: u } });
    expect(r.dims).toEqual([2, 3, 4, 6]);
    for (let p = 0; p < 6; p++)
      for (let i = 0; i < 4; i++) for (let j = 0; j < 6; j++) expect(r.out[(p * 4 + i) * 6 + j]).toBe(u[(p * 2 + (i >> 1)) * 3 + (j >> 1)]);
  });
});
