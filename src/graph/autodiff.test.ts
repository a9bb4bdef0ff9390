/**
 * The reverse-mode differentiator against central finite differences in float64.
 *
 * Every test graph is built twice by the same function: a float32 variant, differentiated by
 * `gradientGraph` and run in onnxruntime, and a float64 variant of the same mathematics, whose
 * loss is differenced centrally (step 1e-6) at exactly the same (float32-representable) point.
 * Where onnxruntime has no double kernel (Conv, Resize, Erf, AveragePool, GlobalAveragePool) the
 * float64 variant spells the op with double-capable ops (im2col + MatMul, Expand, a Taylor series,
 * Reshape + ReduceMean). Loss = Σ y·R with a fixed random R.
 *
 * Tolerances: float32 analytic vs float64 FD per element |g − g_fd| ≤ 1e-3·|g_fd| + 1e-4·max|g_fd|
 * (RTOL, ATOL_REL). The float64 variant is differentiated too and checked with 1e-6 / 1e-7 when its
 * gradient graph loads (all ops have double kernels); for re-spelled ops that checks the rules of
 * the spelling, not of the op. The worst errors per case (max |g − g_fd| / max |g_fd|) are printed
 * at the end.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder, type AttrValue } from './builder.ts';
import { createSession, type Feed, type Session } from './session.ts';
import { gradientGraph, SUPPORTED_GRADIENT_OPS } from './autodiff.ts';
import { inferShapes } from './shapes.ts';
import { mulberry32 } from '../../test/helpers/random.ts';
import p from 'onnx-proto';

const { onnx } = p;

const RTOL = 1e-3;
const ATOL_REL = 1e-4;
const RTOL64 = 1e-6;
const ATOL_REL64 = 1e-7;
const FD_STEP = 1e-6;

type DT = 'float32' | 'float64';

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

const numel = (d: readonly number[]): number => d.reduce((a, b) => a * b, 1);

/** An input of a test case: shape and value distribution. */
interface InputSpec {
  readonly dims: readonly number[];
  /** 'normal' (default): uniform in ±1 away from 0; 'pos': in [0.5, 1.5]; 'int': int64 in [0, max). */
  readonly kind?: 'normal' | 'pos' | 'int';
  readonly max?: number;
  readonly values?: readonly number[];
}

/** Builder helper that knows the float type of the variant being built. */
class H {
  readonly b: GraphBuilder;
  constructor(
    readonly dt: DT,
    readonly specs: Readonly<Record<string, InputSpec>>,
    opset: 17 | 18,
  ) {
    this.b = new GraphBuilder({ opset });
  }
  in(name: string): string {
    const s = this.specs[name]!;
    return this.b.input(name, s.kind === 'int' ? 'int64' : this.dt, s.dims);
  }
  c(values: readonly number[] | number, dims?: readonly number[]): string {
    const arr = typeof values === 'number' ? [values] : values;
    const data = this.dt === 'float32' ? Float32Array.from(arr) : Float64Array.from(arr, (v) => Math.fround(v));
    return this.b.initializer(undefined, data, dims ?? (typeof values === 'number' ? [] : [arr.length]));
  }
  i64(values: readonly number[]): string {
    return this.b.constI64(values);
  }
  op(op: string, inputs: readonly string[], attrs: Readonly<Record<string, AttrValue>> = {}): string {
    return this.b.op(op, inputs, attrs);
  }
  /** 2-D Conv (float64 variant: Pad + strided Slices + MatMul). */
  conv(x: string, w: string, bias: string | undefined, xDims: readonly number[], wDims: readonly number[], a: { pads?: number[]; strides?: number[]; dilations?: number[]; group?: number } = {}): string {
    const pads = a.pads ?? [0, 0, 0, 0];
    const [sh, sw] = a.strides ?? [1, 1];
    const [dh, dw] = a.dilations ?? [1, 1];
    const g = a.group ?? 1;
    if (this.dt === 'float32') {
      const attrs: Record<string, AttrValue> = { kernel_shape: wDims.slice(2), pads, strides: [sh!, sw!], dilations: [dh!, dw!], group: g };
      return this.op('Conv', bias === undefined ? [x, w] : [x, w, bias], attrs);
    }
    const [N, , H_, W_] = xDims as [number, number, number, number];
    const [M, Cg, kh, kw] = wDims as [number, number, number, number];
    const Ho = Math.floor((H_ + pads[0]! + pads[2]! - (dh! * (kh - 1) + 1)) / sh!) + 1;
    const Wo = Math.floor((W_ + pads[1]! + pads[3]! - (dw! * (kw - 1) + 1)) / sw!) + 1;
    const xp = this.op('Pad', [x, this.i64([0, 0, pads[0]!, pads[1]!, 0, 0, pads[2]!, pads[3]!])]);
    const parts: string[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const s = this.op('Slice', [xp, this.i64([i * dh!, j * dw!]), this.i64([i * dh! + sh! * (Ho - 1) + 1, j * dw! + sw! * (Wo - 1) + 1]), this.i64([2, 3]), this.i64([sh!, sw!])]);
        parts.push(this.op('Reshape', [s, this.i64([N, g, Cg, 1, Ho * Wo])]));
      }
    }
    const cols = this.op('Reshape', [this.op('Concat', parts, { axis: 3 }), this.i64([N, g, Cg * kh * kw, Ho * Wo])]);
    const w2 = this.op('Reshape', [w, this.i64([g, M / g, Cg * kh * kw])]);
    let y = this.op('Reshape', [this.op('MatMul', [w2, cols]), this.i64([N, M, Ho, Wo])]);
    if (bias !== undefined) y = this.op('Add', [y, this.op('Reshape', [bias, this.i64([M, 1, 1])])]);
    return y;
  }
  /** Nearest 2× up-sampling of [N, C, H, W] (float64 variant: Expand). */
  up2(x: string, dims: readonly number[]): string {
    if (this.dt === 'float32') return this.op('Resize', [x, '', this.b.constF32([1, 1, 2, 2])], { mode: 'nearest' });
    const [N, C, H_, W_] = dims as [number, number, number, number];
    const e = this.op('Expand', [this.op('Reshape', [x, this.i64([N, C, H_, 1, W_, 1])]), this.i64([N, C, H_, 2, W_, 2])]);
    return this.op('Reshape', [e, this.i64([N, C, 2 * H_, 2 * W_])]);
  }
  erf(x: string): string {
    if (this.dt === 'float32') return this.op('Erf', [x]);
    // Taylor series in x² (|x| ≤ 1.5), Horner form
    const t = this.op('Mul', [x, x]);
    const K = 34;
    let fact = 1;
    const a: number[] = [];
    for (let n = 0; n <= K; n++) {
      if (n > 0) fact *= n;
      a.push(((n % 2 ? -1 : 1) * 2) / Math.sqrt(Math.PI) / (fact * (2 * n + 1)));
    }
    let acc = this.b.initializer(undefined, Float64Array.of(a[K]!), []);
    for (let n = K - 1; n >= 0; n--) acc = this.op('Add', [this.op('Mul', [acc, t]), this.b.initializer(undefined, Float64Array.of(a[n]!), [])]);
    return this.op('Mul', [acc, x]);
  }
  avgPool2(x: string, dims: readonly number[]): string {
    if (this.dt === 'float32') return this.op('AveragePool', [x], { kernel_shape: [2, 2], strides: [2, 2] });
    const [N, C, H_, W_] = dims as [number, number, number, number];
    const r = this.op('Reshape', [x, this.i64([N, C, H_ / 2, 2, W_ / 2, 2])]);
    return this.op('ReduceMean', [r], { axes: [3, 5], keepdims: 0 });
  }
  gap(x: string): string {
    if (this.dt === 'float32') return this.op('GlobalAveragePool', [x]);
    return this.op('ReduceMean', [x], { axes: [2, 3], keepdims: 1 });
  }
}

interface Case {
  readonly name: string;
  readonly inputs: Readonly<Record<string, InputSpec>>;
  readonly wrt: readonly string[];
  readonly build: (h: H) => string;
  readonly opset?: 17 | 18;
  /** Rewrite the model's default-domain opset after building (e.g. 15, to exercise fallbacks). */
  readonly patchOpset?: number;
  /** Coordinates sampled per wrt input (all when the input is smaller). */
  readonly samples?: number;
}

interface Errors {
  /** max |g32 − g_fd| / max |g_fd| over the sampled coordinates of all wrt inputs. */
  err32: number;
  /** Same for the float64 gradient graph (NaN when it cannot run in double). */
  err64: number;
}

const report = new Map<string, Errors>();
const sessions: Session[] = [];
afterAll(async () => {
  await Promise.all(sessions.map((s) => s.release()));
  const rows = [...report].map(([k, v]) => `${k.padEnd(48)} f32 ${v.err32.toExponential(2)}   f64 ${Number.isNaN(v.err64) ? '   n/a  ' : v.err64.toExponential(2)}`);
  console.log(`max |g − g_fd| / max |g_fd| per case:\n${rows.join('\n')}`);
});

/** A session; float64 models use basic optimisation (onnxruntime fuses x·sigmoid(x) into a float-only QuickGelu). */
async function session(bytes: Uint8Array, dt: DT = 'float32'): Promise<Session> {
  const s = await createSession(bytes, dt === 'float64' ? { optimization: 'basic' } : {});
  sessions.push(s);
  return s;
}

function makeData(c: Case): Record<string, number[]> {
  const r = mulberry32(hash(c.name));
  const out: Record<string, number[]> = {};
  for (const [name, s] of Object.entries(c.inputs)) {
    const n = numel(s.dims);
    if (s.values) out[name] = [...s.values];
    else if (s.kind === 'int') out[name] = Array.from({ length: n }, () => Math.floor(r() * (s.max ?? 2)));
    else if (s.kind === 'pos') out[name] = Array.from({ length: n }, () => Math.fround(0.5 + r()));
    else out[name] = Array.from({ length: n }, () => Math.fround((r() < 0.5 ? -1 : 1) * (0.1 + 0.9 * r())));
  }
  return out;
}

function feeds(c: Case, data: Record<string, number[]>, dt: DT): Record<string, Feed> {
  const f: Record<string, Feed> = {};
  for (const [name, s] of Object.entries(c.inputs)) {
    const d = data[name]!;
    if (s.kind === 'int') f[name] = { type: 'int64', dims: s.dims, data: BigInt64Array.from(d, (v) => BigInt(v)) };
    else f[name] = dt === 'float32' ? { type: 'float32', dims: s.dims, data: Float32Array.from(d) } : { type: 'float64', dims: s.dims, data: Float64Array.from(d) };
  }
  return f;
}

/** The case's output shape (from static shape inference). */
function outputDims(c: Case): readonly number[] {
  const h = new H('float32', c.inputs, c.opset ?? 17);
  const y = c.build(h);
  h.b.output(y, 'float32');
  const inputShapes = Object.fromEntries(Object.entries(c.inputs).map(([k, v]) => [k, v.dims]));
  return inferShapes(h.b.toBytes(), inputShapes).values.get(y)!.dims;
}

/** Build the case's model with loss = Σ y·R (R fixed, random, of y's shape). */
function model(c: Case, dt: DT, R: readonly number[], yDims: readonly number[]): Uint8Array {
  const h = new H(dt, c.inputs, c.opset ?? 17);
  const y = c.build(h);
  const loss = h.op('ReduceSum', [h.op('Mul', [y, h.c(R, yDims)])], { keepdims: 0 });
  h.b.output(loss, dt, [], 'loss');
  if (c.patchOpset === undefined) return h.b.toBytes();
  const m = h.b.toModel();
  m.opsetImport = [{ domain: '', version: c.patchOpset }];
  return onnx.ModelProto.encode(m).finish();
}

/** Check every wrt gradient of the case; returns the errors (also recorded for the report). */
async function check(c: Case): Promise<Errors> {
  const inputShapes = Object.fromEntries(Object.entries(c.inputs).map(([k, v]) => [k, v.dims]));
  const data = makeData(c);
  const yDims = outputDims(c);
  const r = mulberry32(hash(`${c.name}/R`));
  const R = Array.from({ length: numel(yDims) }, () => Math.fround(r() * 2 - 1));
  const m32 = model(c, 'float32', R, yDims);
  const m64 = model(c, 'float64', R, yDims);
  const g32 = await session(gradientGraph(m32, { loss: 'loss', wrt: c.wrt, inputShapes }));
  const o32 = await g32.runRaw(feeds(c, data, 'float32'));
  let o64: Record<string, { data: unknown }> | undefined;
  try {
    const g64 = await session(gradientGraph(m64, { loss: 'loss', wrt: c.wrt, inputShapes }), 'float64');
    o64 = await g64.runRaw(feeds(c, data, 'float64'));
  } catch (e) {
    if (!/Could not find an implementation/.test((e as Error).message)) throw e;
  }
  const f64 = await session(m64, 'float64');
  const lossAt = async (d: Record<string, number[]>): Promise<number> => ((await f64.runRaw(feeds(c, d, 'float64')))['loss']!.data as Float64Array)[0]!;
  const errs: Errors = { err32: 0, err64: o64 ? 0 : NaN };
  for (const w of c.wrt) {
    const n = numel(c.inputs[w]!.dims);
    const k = Math.min(n, c.samples ?? 24);
    const pick = mulberry32(hash(`${c.name}/${w}`));
    const coords = k === n ? Array.from({ length: n }, (_, i) => i) : [...new Set(Array.from({ length: 4 * k }, () => Math.floor(pick() * n)))].slice(0, k);
    const fd: number[] = [];
    for (const i of coords) {
      const plus = { ...data, [w]: [...data[w]!] };
      const minus = { ...data, [w]: [...data[w]!] };
      plus[w]![i] = data[w]![i]! + FD_STEP;
      minus[w]![i] = data[w]![i]! - FD_STEP;
      fd.push(((await lossAt(plus)) - (await lossAt(minus))) / (2 * FD_STEP));
    }
    const scale = Math.max(...fd.map(Math.abs), 1e-12);
    const a32 = o32[`grad/${w}`]!.data as Float32Array;
    expect(a32.length).toBe(n);
    coords.forEach((i, k2) => {
      const d = Math.abs(a32[i]! - fd[k2]!);
      errs.err32 = Math.max(errs.err32, d / scale);
      if (d > RTOL * Math.abs(fd[k2]!) + ATOL_REL * scale) {
        throw new Error(`${c.name}: grad/${w}[${i}] = ${a32[i]} but finite differences give ${fd[k2]} (float32 graph)`);
      }
    });
    if (o64) {
      const a64 = o64[`grad/${w}`]!.data as Float64Array;
      coords.forEach((i, k2) => {
        const d = Math.abs(a64[i]! - fd[k2]!);
        errs.err64 = Math.max(errs.err64, d / scale);
        if (d > RTOL64 * Math.abs(fd[k2]!) + ATOL_REL64 * scale) {
          throw new Error(`${c.name}: grad/${w}[${i}] = ${a64[i]} but finite differences give ${fd[k2]} (float64 graph)`);
        }
      });
    }
  }
  report.set(c.name, errs);
  return errs;
}

// ---------------------------------------------------------------------------------------------
// cases

const X = (dims: readonly number[], kind: InputSpec['kind'] = 'normal'): InputSpec => ({ dims, kind });

const unary = (op: string, kind: InputSpec['kind'] = 'normal', attrs: Record<string, AttrValue> = {}): Case => ({
  name: `${op}${Object.keys(attrs).length ? ` ${JSON.stringify(attrs)}` : ''}`,
  inputs: { x: X([2, 3, 4], kind) },
  wrt: ['x'],
  build: (h) => h.op(op, [h.in('x')], attrs),
});

const binary = (op: string, a: readonly number[], b: readonly number[], kindB: InputSpec['kind'] = 'normal'): Case => ({
  name: `${op} [${a.join(',')}] ∘ [${b.join(',')}]`,
  inputs: { a: X(a), b: X(b, kindB) },
  wrt: ['a', 'b'],
  build: (h) => h.op(op, [h.in('a'), h.in('b')]),
});

const elementwise: Case[] = [
  binary('Add', [2, 3, 4], [2, 3, 4]),
  binary('Add', [2, 3, 4], [3, 1]),
  binary('Add', [4], [2, 3, 4]),
  binary('Sub', [2, 3, 4], [1, 4]),
  binary('Sub', [3, 1], [2, 1, 5]),
  binary('Mul', [2, 1, 4], [3, 1]),
  binary('Mul', [2, 3, 4], []),
  binary('Div', [2, 3, 4], [1, 4], 'pos'),
  binary('Div', [4], [2, 3, 1], 'pos'),
  binary('Max', [2, 3, 4], [3, 1]),
  binary('Min', [2, 3, 4], [4]),
  unary('Neg'),
  unary('Sqrt', 'pos'),
  unary('Exp'),
  unary('Log', 'pos'),
  unary('Sigmoid'),
  unary('Tanh'),
  unary('Relu'),
  unary('LeakyRelu', 'normal', { alpha: 0.2 }),
  unary('Sin'),
  unary('Cos'),
  unary('Abs'),
  unary('Reciprocal', 'pos'),
  {
    name: 'Softplus',
    inputs: { x: X([2, 3, 4]) },
    wrt: ['x'],
    // no double Softplus kernel: the float64 variant is log(1 + exp(x))
    build: (h) => (h.dt === 'float32' ? h.op('Softplus', [h.in('x')]) : h.op('Log', [h.op('Add', [h.op('Exp', [h.in('x')]), h.c(1)])])),
  },
  unary('Identity'),
  {
    name: 'Erf',
    inputs: { x: X([2, 3, 4]) },
    wrt: ['x'],
    build: (h) => h.erf(h.in('x')),
  },
  {
    name: 'Gelu (opset 20, exact)',
    inputs: { x: X([2, 3, 4]) },
    wrt: ['x'],
    patchOpset: 20,
    // float64 variant: 0.5·x·(1 + erf(x/√2)) composed
    build: (h) => {
      const x = h.in('x');
      if (h.dt === 'float32') return h.op('Gelu', [x]);
      return h.op('Mul', [h.op('Mul', [x, h.c(0.5)]), h.op('Add', [h.erf(h.op('Mul', [x, h.c(Math.SQRT1_2)])), h.c(1)])]);
    },
  },
  {
    name: 'Gelu (opset 20, approximate tanh)',
    inputs: { x: X([2, 3, 4]) },
    wrt: ['x'],
    patchOpset: 20,
    build: (h) => {
      const x = h.in('x');
      if (h.dt === 'float32') return h.op('Gelu', [x], { approximate: 'tanh' });
      const u = h.op('Mul', [h.op('Add', [x, h.op('Mul', [h.op('Mul', [h.op('Mul', [x, x]), x]), h.c(0.044715)])]), h.c(Math.sqrt(2 / Math.PI))]);
      return h.op('Mul', [h.op('Mul', [x, h.c(0.5)]), h.op('Add', [h.op('Tanh', [u]), h.c(1)])]);
    },
  },
  {
    name: 'Pow x^2, x^3, x^0.5, x^-1.5',
    inputs: { x: X([3, 4], 'pos') },
    wrt: ['x'],
    build: (h) => {
      const x = h.in('x');
      const parts = [2, 3, 0.5, -1.5].map((k) => h.op('Pow', [x, h.c(k)]));
      return h.op('Concat', parts, { axis: 0 });
    },
  },
  {
    name: 'Pow with a differentiable broadcast exponent',
    inputs: { a: X([2, 3], 'pos'), b: X([3]) },
    wrt: ['a', 'b'],
    build: (h) => h.op('Pow', [h.in('a'), h.in('b')]),
  },
  {
    name: 'Clip (min and max)',
    inputs: { x: X([3, 5]) },
    wrt: ['x'],
    build: (h) => h.op('Clip', [h.in('x'), h.c(-0.5), h.c(0.6)]),
  },
  {
    name: 'Where (condition from a comparison, broadcast branches)',
    inputs: { x: X([2, 3, 4]), y: X([3, 1]), t: X([4]) },
    wrt: ['x', 'y'],
    build: (h) => {
      const cond = h.op('Greater', [h.in('t'), h.c(0)]);
      return h.op('Where', [cond, h.in('x'), h.in('y')]);
    },
  },
  {
    name: 'Sum (variadic, broadcast) and Mean',
    inputs: { a: X([2, 3]), b: X([3]), c: X([2, 1]) },
    wrt: ['a', 'b', 'c'],
    build: (h) => {
      const s = h.op('Sum', [h.in('a'), h.in('b'), h.in('c')]);
      // no double Mean kernel: the float64 variant is the sum over 3
      const m = h.dt === 'float32' ? h.op('Mean', [s, 'b', 'a']) : h.op('Mul', [h.op('Sum', [s, 'b', 'a']), h.c(1 / 3)]);
      return h.op('Mul', [s, m]);
    },
  },
  {
    name: 'Cast float→float passes, Cast to int stops',
    inputs: { x: X([2, 3]) },
    wrt: ['x'],
    build: (h) => {
      const x = h.in('x');
      const code = { float32: 1, float64: 11 };
      const there = h.op('Cast', [h.op('Mul', [x, h.c(1.5)])], { to: code.float64 });
      const back = h.op('Cast', [h.op('Sin', [there])], { to: code[h.dt] });
      const stopped = h.op('Cast', [h.op('Cast', [h.op('Mul', [x, h.c(10)])], { to: 7 })], { to: code[h.dt] });
      return h.op('Add', [back, h.op('Mul', [stopped, x])]);
    },
  },
];

const reductions: Case[] = [
  { name: 'Softmax last axis', inputs: { x: X([2, 3, 5]) }, wrt: ['x'], build: (h) => h.op('Softmax', [h.in('x')], { axis: -1 }) },
  { name: 'Softmax middle axis', inputs: { x: X([2, 4, 3]) }, wrt: ['x'], build: (h) => h.op('Softmax', [h.in('x')], { axis: 1 }) },
  { name: 'LogSoftmax axis 0', inputs: { x: X([3, 4]) }, wrt: ['x'], build: (h) => h.op('LogSoftmax', [h.in('x')], { axis: 0 }) },
  { name: 'ReduceSum axes [0,2] keepdims 0', inputs: { x: X([2, 3, 4]) }, wrt: ['x'], build: (h) => h.op('ReduceSum', [h.in('x'), h.i64([0, 2])], { keepdims: 0 }) },
  { name: 'ReduceSum all (no axes) keepdims 1', inputs: { x: X([2, 3]) }, wrt: ['x'], build: (h) => h.op('ReduceSum', [h.in('x')], { keepdims: 1 }) },
  { name: 'ReduceMean axes [1] (opset 17 attribute)', inputs: { x: X([2, 3, 4]) }, wrt: ['x'], build: (h) => h.op('ReduceMean', [h.in('x')], { axes: [1], keepdims: 1 }) },
  {
    name: 'ReduceMean axes [-1] (opset 18 input)',
    opset: 18,
    inputs: { x: X([2, 3, 4]) },
    wrt: ['x'],
    build: (h) => h.op('ReduceMean', [h.in('x'), h.i64([-1])], { keepdims: 0 }),
  },
  { name: 'ReduceMax axes [2]', inputs: { x: X([2, 3, 4]) }, wrt: ['x'], build: (h) => h.op('ReduceMax', [h.in('x')], { axes: [2], keepdims: 0 }) },
  { name: 'ReduceSumSquare axes [0]', inputs: { x: X([3, 2]) }, wrt: ['x'], build: (h) => h.op('ReduceSumSquare', [h.in('x')], { axes: [0], keepdims: 1 }) },
  {
    name: 'LayerNormalization (axis -1, scale + bias)',
    inputs: { x: X([2, 3, 5]), s: X([5]), b: X([5]) },
    wrt: ['x', 's', 'b'],
    build: (h) => h.op('LayerNormalization', [h.in('x'), h.in('s'), h.in('b')], { axis: -1, epsilon: 1e-5 }),
  },
  {
    name: 'LayerNormalization opset 18 (backward ReduceMean takes axes as input)',
    opset: 18,
    inputs: { x: X([3, 6]), s: X([6]), b: X([6]) },
    wrt: ['x', 's', 'b'],
    build: (h) => h.op('LayerNormalization', [h.in('x'), h.in('s'), h.in('b')], { axis: -1 }),
  },
  {
    name: 'LayerNormalization with its Mean/InvStdDev outputs (backward reuses them), scale + bias',
    inputs: { x: X([2, 3, 5]), s: X([5]), b: X([5]) },
    wrt: ['x', 's', 'b'],
    build: (h) => h.b.opN('LayerNormalization', [h.in('x'), h.in('s'), h.in('b')], { axis: -1, epsilon: 1e-5 }, { outputs: h.dt === 'float32' ? 3 : 1 })[0]!, // no float64 kernel outputs the statistics
  },
  {
    name: 'LayerNormalization axis 1, constant unit scale, Mean/InvStdDev outputs (x̂ = y)',
    inputs: { x: X([2, 3, 4]) },
    wrt: ['x'],
    build: (h) => h.b.opN('LayerNormalization', [h.in('x'), h.c(new Array<number>(12).fill(1), [3, 4])], { axis: 1, epsilon: 1e-3 }, { outputs: h.dt === 'float32' ? 3 : 1 })[0]!,
  },
  {
    name: 'InstanceNormalization',
    inputs: { x: X([2, 3, 2, 3]), s: X([3]), b: X([3]) },
    wrt: ['x', 's', 'b'],
    build: (h) => {
      if (h.dt === 'float32') return h.op('InstanceNormalization', [h.in('x'), h.in('s'), h.in('b')], { epsilon: 1e-5 });
      // no double kernel: the float64 variant is composed
      const x = h.in('x');
      const d = h.op('Sub', [x, h.op('ReduceMean', [x], { axes: [2, 3], keepdims: 1 })]);
      const v = h.op('ReduceMean', [h.op('Mul', [d, d])], { axes: [2, 3], keepdims: 1 });
      const n = h.op('Div', [d, h.op('Sqrt', [h.op('Add', [v, h.c(1e-5)])])]);
      return h.op('Add', [h.op('Mul', [n, h.op('Reshape', [h.in('s'), h.i64([3, 1, 1])])]), h.op('Reshape', [h.in('b'), h.i64([3, 1, 1])])]);
    },
  },
  {
    name: 'LayerNormalization (axis 1 over [C,L])',
    inputs: { x: X([2, 3, 4]), s: X([3, 4]) },
    wrt: ['x', 's'],
    build: (h) => h.op('LayerNormalization', [h.in('x'), h.in('s')], { axis: 1 }),
  },
];

const shaping: Case[] = [
  { name: 'Reshape', inputs: { x: X([2, 3, 4]) }, wrt: ['x'], build: (h) => h.op('Sin', [h.op('Reshape', [h.in('x'), h.i64([4, -1])])]) },
  { name: 'Transpose perm [2,0,1]', inputs: { x: X([2, 3, 4]) }, wrt: ['x'], build: (h) => h.op('Transpose', [h.in('x')], { perm: [2, 0, 1] }) },
  { name: 'Transpose default (reverse)', inputs: { x: X([2, 3, 4]) }, wrt: ['x'], build: (h) => h.op('Transpose', [h.in('x')]) },
  { name: 'Flatten axis 2', inputs: { x: X([2, 3, 4]) }, wrt: ['x'], build: (h) => h.op('Flatten', [h.in('x')], { axis: 2 }) },
  { name: 'Unsqueeze / Squeeze', inputs: { x: X([2, 3]) }, wrt: ['x'], build: (h) => h.op('Squeeze', [h.op('Unsqueeze', [h.in('x'), h.i64([0, 3])]), h.i64([0])]) },
  {
    name: 'Concat axis 1 (a constant in the middle)',
    inputs: { a: X([2, 2, 3]), b: X([2, 1, 3]) },
    wrt: ['a', 'b'],
    build: (h) => h.op('Concat', [h.in('a'), h.c([1, 2, 3, 4, 5, 6], [2, 1, 3]), h.in('b')], { axis: 1 }),
  },
  {
    name: 'Split axis -1 into [2,3,1], middle part unused',
    inputs: { x: X([2, 6]) },
    wrt: ['x'],
    build: (h) => {
      const [a, , c] = h.b.opN('Split', [h.in('x'), h.i64([2, 3, 1])], { axis: -1 }, { outputs: 3 });
      return h.op('Mul', [a!, c!]);
    },
  },
  {
    name: 'Split opset 18 num_outputs',
    opset: 18,
    inputs: { x: X([5, 2]) },
    wrt: ['x'],
    build: (h) => {
      const [a, b] = h.b.opN('Split', [h.in('x')], { axis: 0, num_outputs: 2 }, { outputs: 2 });
      return h.op('Concat', [h.op('Exp', [b!]), h.op('Sin', [a!])], { axis: 0 });
    },
  },
  {
    name: 'Slice steps 1 on two axes',
    inputs: { x: X([4, 5, 3]) },
    wrt: ['x'],
    build: (h) => h.op('Slice', [h.in('x'), h.i64([1, -4]), h.i64([3, 4]), h.i64([0, 1])]),
  },
  {
    name: 'Slice step 2 and step -2',
    inputs: { x: X([5, 7]) },
    wrt: ['x'],
    build: (h) => h.op('Slice', [h.in('x'), h.i64([0, 6]), h.i64([100, 0]), h.i64([0, 1]), h.i64([2, -2])]),
  },
  {
    name: 'Slice step 3 (tail not reached), step -1',
    inputs: { x: X([8, 4]) },
    wrt: ['x'],
    build: (h) => h.op('Slice', [h.in('x'), h.i64([1, -1]), h.i64([7, -100]), h.i64([0, 1]), h.i64([3, -1])]),
  },
  {
    name: 'Expand [3,1] → [2,3,4]',
    inputs: { x: X([3, 1]) },
    wrt: ['x'],
    build: (h) => h.op('Expand', [h.in('x'), h.i64([2, 3, 4])]),
  },
  { name: 'Tile [1,2,3]', inputs: { x: X([2, 2, 2]) }, wrt: ['x'], build: (h) => h.op('Tile', [h.in('x'), h.i64([1, 2, 3])]) },
  {
    name: 'Pad (constant, asymmetric)',
    inputs: { x: X([2, 3, 3]) },
    wrt: ['x'],
    build: (h) => h.op('Pad', [h.in('x'), h.i64([0, 1, 2, 0, 2, 0]), h.c(0.5)]),
  },
  {
    name: 'Gather axis 0 on a table, repeated indices (embedding)',
    inputs: { E: X([5, 3]), t: { dims: [2, 4], kind: 'int', values: [1, 3, 1, 0, 4, 1, 3, 3] } },
    wrt: ['E'],
    build: (h) => h.op('Gather', [h.in('E'), h.in('t')], { axis: 0 }),
  },
  {
    name: 'Gather axis 1, negative indices',
    inputs: { x: X([2, 5, 3]), t: { dims: [3], kind: 'int', values: [-1, 2, -1] } },
    wrt: ['x'],
    build: (h) => h.op('Gather', [h.in('x'), h.in('t')], { axis: 1 }),
  },
  {
    name: 'Gather at opset 15 (OneHot + Gemm instead of ScatterND)',
    patchOpset: 15,
    inputs: { E: X([5, 2]), t: { dims: [3, 2], kind: 'int', values: [4, 0, 4, 2, 2, 4] } },
    wrt: ['E'],
    build: (h) => h.op('Gather', [h.in('E'), h.in('t')], { axis: 0 }),
  },
  { name: 'Dropout (inference: identity)', inputs: { x: X([2, 3]) }, wrt: ['x'], build: (h) => h.op('Sin', [h.op('Dropout', [h.in('x')])]) },
  {
    name: 'Gather with a constant index (scalar, axis 0)',
    inputs: { x: X([4, 3]) },
    wrt: ['x'],
    build: (h) => h.op('Gather', [h.in('x'), h.b.constI64(2, [])], { axis: 0 }),
  },
];

const linear: Case[] = [
  { name: 'MatMul 2-D', inputs: { a: X([3, 4]), b: X([4, 5]) }, wrt: ['a', 'b'], build: (h) => h.op('MatMul', [h.in('a'), h.in('b')]) },
  { name: 'MatMul batched × shared 2-D weight', inputs: { a: X([2, 3, 4, 5]), b: X([5, 6]) }, wrt: ['a', 'b'], build: (h) => h.op('MatMul', [h.in('a'), h.in('b')]) },
  { name: 'MatMul broadcast batch [2,1,4,5]×[3,5,2]', inputs: { a: X([2, 1, 4, 5]), b: X([3, 5, 2]) }, wrt: ['a', 'b'], build: (h) => h.op('MatMul', [h.in('a'), h.in('b')]) },
  { name: 'MatMul 2-D × batched [4,5]×[2,5,3]', inputs: { a: X([4, 5]), b: X([2, 5, 3]) }, wrt: ['a', 'b'], build: (h) => h.op('MatMul', [h.in('a'), h.in('b')]) },
  { name: 'MatMul vector × matrix', inputs: { a: X([5]), b: X([2, 5, 3]) }, wrt: ['a', 'b'], build: (h) => h.op('MatMul', [h.in('a'), h.in('b')]) },
  { name: 'MatMul matrix × vector', inputs: { a: X([2, 4, 5]), b: X([5]) }, wrt: ['a', 'b'], build: (h) => h.op('MatMul', [h.in('a'), h.in('b')]) },
  ...[
    [0, 0],
    [0, 1],
    [1, 0],
    [1, 1],
  ].map(([ta, tb]): Case => ({
    name: `Gemm transA=${ta} transB=${tb} alpha 0.7 beta 1.3, C [N]`,
    inputs: { a: X(ta ? [4, 3] : [3, 4]), b: X(tb ? [5, 4] : [4, 5]), c: X([5]) },
    wrt: ['a', 'b', 'c'],
    build: (h) => h.op('Gemm', [h.in('a'), h.in('b'), h.in('c')], { transA: ta!, transB: tb!, alpha: 0.7, beta: 1.3 }),
  })),
  { name: 'Gemm no C', inputs: { a: X([3, 4]), b: X([4, 2]) }, wrt: ['a', 'b'], build: (h) => h.op('Gemm', [h.in('a'), h.in('b')]) },
];

const convCase = (name: string, x: number[], w: number[], a: Parameters<H['conv']>[5], bias = true): Case => ({
  name: `Conv ${name}`,
  inputs: bias ? { x: X(x), w: X(w), b: X([w[0]!]) } : { x: X(x), w: X(w) },
  wrt: bias ? ['x', 'w', 'b'] : ['x', 'w'],
  samples: 30,
  build: (h) => h.conv(h.in('x'), h.in('w'), bias ? h.in('b') : undefined, x, w, a),
});

const convs: Case[] = [
  convCase('3×3 pad 1 + bias', [2, 3, 6, 6], [4, 3, 3, 3], { pads: [1, 1, 1, 1] }),
  convCase('3×3 no pad, no bias', [2, 2, 5, 6], [3, 2, 3, 3], {}, false),
  convCase('3×3 stride 2 pad 1 (even input)', [2, 3, 8, 8], [4, 3, 3, 3], { pads: [1, 1, 1, 1], strides: [2, 2] }),
  convCase('3×3 stride 2 pad 1 (odd input: output_padding)', [1, 2, 7, 6], [3, 2, 3, 3], { pads: [1, 1, 1, 1], strides: [2, 2] }),
  convCase('4×4 stride 2 pad 1', [1, 2, 8, 8], [3, 2, 4, 4], { pads: [1, 1, 1, 1], strides: [2, 2] }),
  convCase('1×1', [2, 4, 3, 3], [5, 4, 1, 1], {}),
  convCase('3×3 dilation 2 pad 2', [1, 2, 7, 7], [3, 2, 3, 3], { pads: [2, 2, 2, 2], dilations: [2, 2] }),
  convCase('asymmetric pads [0,1,2,1]', [1, 2, 5, 5], [2, 2, 3, 3], { pads: [0, 1, 2, 1] }),
  convCase('depthwise 3×3 (group = C)', [2, 4, 6, 6], [4, 1, 3, 3], { pads: [1, 1, 1, 1], group: 4 }),
  convCase('depthwise 3×3 stride 2, multiplier 2', [1, 3, 6, 6], [6, 1, 3, 3], { pads: [1, 1, 1, 1], strides: [2, 2], group: 3 }),
  convCase('group 2', [1, 4, 5, 5], [6, 2, 3, 3], { pads: [1, 1, 1, 1], group: 2 }),
];

const spatial: Case[] = [
  {
    name: 'Resize nearest 2× (half_pixel, round_prefer_floor)',
    inputs: { x: X([2, 3, 3, 4]) },
    wrt: ['x'],
    build: (h) => h.up2(h.in('x'), [2, 3, 3, 4]),
  },
  {
    name: 'Resize nearest 2× via sizes, asymmetric/floor',
    inputs: { x: X([1, 2, 3, 3]) },
    wrt: ['x'],
    build: (h) =>
      h.dt === 'float32'
        ? h.op('Resize', [h.in('x'), '', '', h.i64([1, 2, 6, 6])], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' })
        : h.up2(h.in('x'), [1, 2, 3, 3]),
  },
  { name: 'AveragePool 2×2 stride 2', inputs: { x: X([2, 3, 4, 6]) }, wrt: ['x'], build: (h) => h.avgPool2(h.in('x'), [2, 3, 4, 6]) },
  {
    name: 'AveragePool 3×3 stride 1 pad 1 (count_include_pad)',
    inputs: { x: X([1, 2, 5, 5]) },
    wrt: ['x'],
    build: (h) => {
      if (h.dt === 'float32') return h.op('AveragePool', [h.in('x')], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], count_include_pad: 1 });
      const w = h.c(new Array<number>(18).fill(1 / 9), [2, 1, 3, 3]);
      return h.conv(h.in('x'), w, undefined, [1, 2, 5, 5], [2, 1, 3, 3], { pads: [1, 1, 1, 1], group: 2 });
    },
  },
  { name: 'GlobalAveragePool', inputs: { x: X([2, 3, 3, 4]) }, wrt: ['x'], build: (h) => h.gap(h.in('x')) },
];

const structure: Case[] = [
  {
    name: 'value with several consumers (and x·x)',
    inputs: { x: X([3, 4]), w: X([4, 4]) },
    wrt: ['x', 'w'],
    build: (h) => {
      const x = h.in('x');
      const a = h.op('MatMul', [x, h.in('w')]);
      const b = h.op('Mul', [x, x]);
      const c = h.op('Sigmoid', [x]);
      return h.op('Add', [h.op('Add', [a, b]), h.op('Mul', [c, a])]);
    },
  },
  {
    name: 'wrt a data input (prompt embedding through attention)',
    inputs: { e: X([2, 3, 4]), wq: X([4, 4]), img: X([2, 5, 4]) },
    wrt: ['e'],
    build: (h) => {
      const q = h.op('MatMul', [h.in('img'), h.in('wq')]);
      const s = h.op('Softmax', [h.op('MatMul', [q, h.op('Transpose', [h.in('e')], { perm: [0, 2, 1] })])], { axis: -1 });
      return h.op('MatMul', [s, 'e']);
    },
  },
  {
    name: 'sinusoidal time embedding differentiated through (Sin/Cos/Concat)',
    inputs: { t: X([3, 1], 'pos'), f: X([1, 4]) },
    wrt: ['t', 'f'],
    build: (h) => {
      const arg = h.op('Mul', [h.in('t'), h.in('f')]);
      return h.op('Concat', [h.op('Sin', [arg]), h.op('Cos', [arg])], { axis: 1 });
    },
  },
];

describe('gradientGraph: every op against float64 finite differences', () => {
  for (const [group, cases] of Object.entries({ elementwise, reductions, shaping, linear, convs, spatial, structure })) {
    describe(group, () => {
      for (const c of cases) {
        it(c.name, async () => {
          await check(c);
        });
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// a whole small network

const NET = { N: 2, Cin: 3, H: 8, L: 3, V: 7, D: 8, C1: 8, C2: 16, A: 8 };

function netParams(): Record<string, InputSpec> {
  const { N, Cin, H: HH, L, V, D, C1, C2, A } = NET;
  const p: Record<string, InputSpec> = {
    x: X([N, Cin, HH, HH]),
    target: X([N, Cin, HH, HH]),
    tokens: { dims: [N, L], kind: 'int', values: [1, 4, 1, 6, 0, 4] },
    emb: X([V, D]),
    'conv_in.w': X([C1, Cin, 3, 3]),
    'conv_in.b': X([C1]),
    'gn1.g': X([C1]),
    'gn1.b': X([C1]),
    'conv1.w': X([C1, C1, 3, 3]),
    'conv1.b': X([C1]),
    'down.w': X([C2, C1, 3, 3]),
    'down.b': X([C2]),
    'gn2.g': X([C2]),
    'gn2.b': X([C2]),
    wq: X([C2, A]),
    wk: X([D, A]),
    wv: X([D, C2]),
    wo: X([C2, C2]),
    'gn3.g': X([C1 + C2]),
    'gn3.b': X([C1 + C2]),
    'out.w': X([Cin, C1 + C2, 3, 3]),
    'out.b': X([Cin]),
  };
  return p;
}

/** GroupNorm composed of Reshape / ReduceMean / Sub / Mul / Sqrt / Div, then per-channel affine. */
function groupNorm(h: H, x: string, dims: readonly number[], groups: number, gamma: string, beta: string): string {
  const [N, C, HH, WW] = dims as [number, number, number, number];
  const r = h.op('Reshape', [x, h.i64([N, groups, (C / groups) * HH * WW])]);
  const mean = h.op('ReduceMean', [r], { axes: [2], keepdims: 1 });
  const d = h.op('Sub', [r, mean]);
  const v = h.op('ReduceMean', [h.op('Mul', [d, d])], { axes: [2], keepdims: 1 });
  const n = h.op('Div', [d, h.op('Sqrt', [h.op('Add', [v, h.c(1e-5)])])]);
  const back = h.op('Reshape', [n, h.i64([N, C, HH, WW])]);
  const g = h.op('Reshape', [gamma, h.i64([C, 1, 1])]);
  const b = h.op('Reshape', [beta, h.i64([C, 1, 1])]);
  return h.op('Add', [h.op('Mul', [back, g]), b]);
}

const silu = (h: H, x: string): string => h.op('Mul', [x, h.op('Sigmoid', [x])]);

/** The network; returns the MSE loss value. */
function buildNet(h: H): string {
  const { N, Cin, H: HH, L, D, C1, C2, A } = NET;
  const P = (n: string): string => h.in(n);
  const x = P('x');
  const ctx = h.op('Gather', [P('emb'), P('tokens')], { axis: 0 }); // [N, L, D]
  const h0 = h.conv(x, P('conv_in.w'), P('conv_in.b'), [N, Cin, HH, HH], [C1, Cin, 3, 3], { pads: [1, 1, 1, 1] });
  const h1 = h.conv(silu(h, groupNorm(h, h0, [N, C1, HH, HH], 2, P('gn1.g'), P('gn1.b'))), P('conv1.w'), P('conv1.b'), [N, C1, HH, HH], [C1, C1, 3, 3], { pads: [1, 1, 1, 1] });
  const h2 = silu(h, groupNorm(h, h.conv(h1, P('down.w'), P('down.b'), [N, C1, HH, HH], [C2, C1, 3, 3], { pads: [1, 1, 1, 1], strides: [2, 2] }), [N, C2, HH / 2, HH / 2], 4, P('gn2.g'), P('gn2.b')));
  // single-head cross-attention at 4×4 over the token context
  const S = (HH / 2) * (HH / 2);
  const tokens = h.op('Transpose', [h.op('Reshape', [h2, h.i64([N, C2, S])])], { perm: [0, 2, 1] }); // [N, S, C2]
  const q = h.op('MatMul', [tokens, P('wq')]);
  const k = h.op('MatMul', [ctx, P('wk')]);
  const v = h.op('MatMul', [ctx, P('wv')]);
  const scores = h.op('Mul', [h.op('MatMul', [q, h.op('Transpose', [k], { perm: [0, 2, 1] })]), h.c(1 / Math.sqrt(A))]);
  const att = h.op('MatMul', [h.op('Softmax', [scores], { axis: -1 }), v]); // [N, S, C2]
  const o = h.op('MatMul', [att, P('wo')]);
  const h3 = h.op('Add', [h2, h.op('Reshape', [h.op('Transpose', [o], { perm: [0, 2, 1] }), h.i64([N, C2, HH / 2, HH / 2])])]);
  const up = h.up2(h3, [N, C2, HH / 2, HH / 2]);
  const cat = h.op('Concat', [up, h1], { axis: 1 });
  const h4 = silu(h, groupNorm(h, cat, [N, C1 + C2, HH, HH], 4, P('gn3.g'), P('gn3.b')));
  const pred = h.conv(h4, P('out.w'), P('out.b'), [N, C1 + C2, HH, HH], [Cin, C1 + C2, 3, 3], { pads: [1, 1, 1, 1] });
  const diff = h.op('Sub', [pred, P('target')]);
  void D;
  void L;
  return h.op('ReduceMean', [h.op('Mul', [diff, diff])], { keepdims: 0 });
}

describe('gradientGraph: a whole small network', () => {
  it('2-level conv net (GroupNorm, SiLU, stride-2 conv, up-sampling, skip Concat, cross-attention on embedded tokens, MSE): every parameter vs FD', async () => {
    const inputs = netParams();
    const params = Object.keys(inputs).filter((k) => k !== 'x' && k !== 'target' && k !== 'tokens');
    const c: Case = {
      name: 'whole network (20 coordinates per parameter)',
      inputs,
      wrt: params,
      samples: 20,
      build: (h) => buildNet(h),
    };
    // the loss is already a scalar: differentiate it directly (R = [1])
    const errs = await check({ ...c, build: (h) => buildNet(h) });
    expect(errs.err32).toBeLessThan(RTOL);
  });

  it('keeps requested forward values, prunes what no output needs, and its loss equals the forward loss', async () => {
    const h = new H('float32', netParams(), 17);
    const loss = buildNet(h);
    h.b.output(loss, 'float32', [], 'loss');
    const bytes = h.b.toBytes();
    const inputShapes = Object.fromEntries(Object.entries(netParams()).map(([k, v]) => [k, v.dims]));
    const g = gradientGraph(bytes, { loss: 'loss', wrt: ['wq', 'emb'], inputShapes, keep: ['x', loss] });
    const s = await session(g);
    expect(s.outputNames).toEqual(['loss', 'grad/wq', 'grad/emb', 'x', loss]);
    const data = makeData({ name: 'keep', inputs: netParams(), wrt: [], build: () => '' });
    const f = feeds({ name: 'keep', inputs: netParams(), wrt: [], build: () => '' }, data, 'float32');
    const out = await s.run(f);
    const fwd = await (await session(bytes)).run(f);
    expect(out['loss']!.data[0]).toBeCloseTo(fwd['loss']!.data[0]!, 6);
    expect(out[loss]!.data[0]).toBe(out['loss']!.data[0]);
    expect(out['grad/emb']!.dims).toEqual([NET.V, NET.D]);
    // embedding rows no token uses get exactly zero gradient
    for (const row of [2, 3, 5]) for (let j = 0; j < NET.D; j++) expect(out['grad/emb']!.data[row * NET.D + j]).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

describe('gradientGraph: errors and edge cases', () => {
  const small = (op: string, attrs: Record<string, AttrValue> = {}): Uint8Array => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [2, 3]);
    const w = b.input('w', 'float32', [2, 3]);
    const y = b.op(op, [b.op('Mul', [x, w])], attrs, { name: 'the_node' });
    b.output(b.op('ReduceSum', [y], { keepdims: 0 }), 'float32', [], 'loss');
    return b.toBytes();
  };
  const shapes = { x: [2, 3], w: [2, 3] };

  it('an op without a rule on a differentiable path is an error naming op and node', () => {
    expect(() => gradientGraph(small('Elu'), { loss: 'loss', wrt: ['w'], inputShapes: shapes })).toThrow(/op 'Elu' \(node 'the_node'\).*no gradient rule/);
  });

  it('an op without a rule off the differentiable path is fine', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [2, 3]);
    const w = b.input('w', 'float32', [2, 3]);
    const y = b.op('Mul', [b.op('Elu', [x]), w]); // Elu reads only x, which is not differentiated
    b.output(b.op('ReduceSum', [y], { keepdims: 0 }), 'float32', [], 'loss');
    const s = await session(gradientGraph(b.toBytes(), { loss: 'loss', wrt: ['w'], inputShapes: shapes }));
    const xv = Float32Array.of(-1, 0.5, 2, -0.2, 0, 1);
    const out = await s.run({ x: { dims: [2, 3], data: xv }, w: { dims: [2, 3], data: new Float32Array(6).fill(1) } });
    out['grad/w']!.data.forEach((g, i) => expect(g).toBeCloseTo(xv[i]! > 0 ? xv[i]! : Math.expm1(xv[i]!), 6));
  });

  it('a loss that is not a scalar is an error', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [2, 3]);
    b.output(b.op('Mul', [x, x]), 'float32', [2, 3], 'loss');
    expect(() => gradientGraph(b.toBytes(), { loss: 'loss', wrt: ['x'], inputShapes: { x: [2, 3] } })).toThrow(/loss 'loss' must be a scalar \(shape \[\] or \[1\]\), got \[2, 3\]/);
  });

  it('a loss of shape [1] works; wrt must be float graph inputs; unknown loss names are errors', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [3]);
    const i = b.input('i', 'int64', [3]);
    const l = b.op('ReduceSum', [b.op('Mul', [x, b.op('Cast', [i], { to: 1 })])], { keepdims: 1 });
    b.output(l, 'float32', [1], 'loss');
    const bytes = b.toBytes();
    const inputShapes = { x: [3], i: [3] };
    expect(() => gradientGraph(bytes, { loss: 'loss', wrt: ['i'], inputShapes })).toThrow(/wrt 'i' is not a float input/);
    expect(() => gradientGraph(bytes, { loss: 'loss', wrt: ['nope'], inputShapes })).toThrow(/wrt 'nope' is not a graph input/);
    expect(() => gradientGraph(bytes, { loss: 'nope', wrt: ['x'], inputShapes })).toThrow(/loss 'nope' is not a value/);
    expect(() => gradientGraph(bytes, { loss: 'loss', wrt: ['x'], inputShapes: { x: [3] } })).toThrow(/no shape given for graph input 'i'/);
    const s = await session(gradientGraph(bytes, { loss: 'loss', wrt: ['x'], inputShapes }));
    const out = await s.run({ x: { dims: [3], data: Float32Array.of(1, 2, 3) }, i: { type: 'int64', dims: [3], data: BigInt64Array.of(4n, 5n, 6n) } });
    expect([...out['grad/x']!.data]).toEqual([4, 5, 6]);
  });

  it('wrt inputs the loss does not depend on get zeros', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [2]);
    b.input('unused', 'float32', [3, 2]);
    b.output(b.op('ReduceSum', [b.op('Mul', [x, x])], { keepdims: 0 }), 'float32', [], 'loss');
    const s = await session(gradientGraph(b.toBytes(), { loss: 'loss', wrt: ['unused', 'x'], inputShapes: { x: [2], unused: [3, 2] } }));
    const out = await s.run({ x: { dims: [2], data: Float32Array.of(1, -2) }, unused: { dims: [3, 2], data: new Float32Array(6) } });
    expect(out['grad/unused']!.dims).toEqual([3, 2]);
    expect([...out['grad/unused']!.data]).toEqual([0, 0, 0, 0, 0, 0]);
    expect([...out['grad/x']!.data]).toEqual([2, -4]);
  });

  it('an existing value named grad/<wrt> is an error', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [2]);
    const y = b.op('Neg', [x], {}, { outputs: ['grad/x'] });
    b.output(b.op('ReduceSum', [b.op('Mul', [y, x])], { keepdims: 0 }), 'float32', [], 'loss');
    expect(() => gradientGraph(b.toBytes(), { loss: 'loss', wrt: ['x'], inputShapes: { x: [2] } })).toThrow(/already has a value named 'grad\/x'/);
  });

  it('non-differentiable Resize modes and unsupported conv ranks are clear errors', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [1, 1, 2, 2]);
    const y = b.op('Resize', [x, '', b.constF32([1, 1, 2, 2])], { mode: 'linear' }, { name: 'up' });
    b.output(b.op('ReduceSum', [y], { keepdims: 0 }), 'float32', [], 'loss');
    expect(() => gradientGraph(b.toBytes(), { loss: 'loss', wrt: ['x'], inputShapes: { x: [1, 1, 2, 2] } })).toThrow(/op 'Resize' \(node 'up'\): only mode 'nearest'/);
  });

  it('lists its supported ops', () => {
    for (const op of ['Conv', 'Gemm', 'MatMul', 'Softmax', 'Gather', 'Resize', 'Slice', 'Split', 'Where', 'LayerNormalization']) expect(SUPPORTED_GRADIENT_OPS).toContain(op);
  });
});
