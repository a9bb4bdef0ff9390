/**
 * The runtime-independent part of an onnxruntime session: memscope `Tensor`s ↔ onnxruntime
 * tensors (casts to each input's declared type, float16 conversions), metadata (names, element
 * types, shapes) and `run`. The same code drives onnxruntime-node (`session.ts`, the CLI) and
 * onnxruntime-web (`session-web.ts`, the in-browser explorer): each passes its own onnxruntime
 * `InferenceSession` and `Tensor` class, so nothing here imports a runtime.
 */
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-common';
import type { Tensor } from '../tensor/tensor.ts';

/** The onnxruntime `Tensor` class of the runtime in use (node or web). */
export type OrtTensorClass = new (type: OrtTensor.Type, data: OrtTensor.DataType, dims: readonly number[]) => OrtTensor;

/** Element types a session input or output may have (onnxruntime's names). */
export type ValueType = OrtTensor.Type;

/** What the session metadata says about one input or output. */
export interface ValueInfo {
  readonly name: string;
  /** Whether the value is a tensor (sequences and maps are not). */
  readonly isTensor: boolean;
  /** Element type (`'float32'`, `'int64'`, …); `undefined` for non-tensors. */
  readonly type?: ValueType;
  /**
   * Declared shape: numbers for fixed sizes, strings for symbolic dims, `null` when the model
   * declares no shape at all (unknown rank). A rank-0 input has `[]`.
   */
  readonly shape: readonly (number | string)[] | null;
}

/** A typed feed for inputs that are not float32 (or must keep exact integer values). */
export interface TypedFeed {
  readonly type: 'float32' | 'float16' | 'float64' | 'int64' | 'int32' | 'bool' | 'uint8' | 'int8';
  readonly dims: readonly number[];
  /** float16 data is given as float32 numbers (converted here) or as raw IEEE half bits (Uint16Array). */
  readonly data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array | Uint16Array | ArrayLike<number>;
}

/** A feed: a memscope `Tensor` (cast to the input's declared type) or an explicit {@link TypedFeed}. */
export type Feed = Tensor | TypedFeed;

/** An output exactly as the model produced it (no conversion to float32). */
export interface RawOutput {
  readonly type: ValueType;
  readonly dims: readonly number[];
  readonly data: OrtTensor['data'];
}

function toInfo(m: InferenceSession.ValueMetadata): ValueInfo {
  if (!m.isTensor) return { name: m.name, isTensor: false, shape: null };
  // onnxruntime-node reports an undeclared shape as []; we cannot tell it from rank 0 here,
  // so keep what it gives (callers that care about rank treat [] as "scalar or unknown").
  return { name: m.name, isTensor: true, type: m.type, shape: [...m.shape] };
}

// ---------------------------------------------------------------------------------------------
// float16 conversions (Node 20 has no Float16Array)

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** IEEE-754 float32 → half bits, round to nearest even. */
export function toHalfBits(v: number): number {
  f32buf[0] = v;
  const x = u32buf[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  e = h; // may carry into the exponent, which is the correct rounding
  return sign | e;
}

/** Half bits → number. */
export function fromHalfBits(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m === 0 ? s * Infinity : NaN;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * Numbers → IEEE-754 half bits, element-wise with {@link toHalfBits} (round to nearest even;
 * overflow gives ±Infinity). The form float16 initializers and feeds take (Node 20 has no
 * Float16Array).
 */
export function toHalfArray(values: ArrayLike<number>): Uint16Array {
  const o = new Uint16Array(values.length);
  for (let i = 0; i < o.length; i++) o[i] = toHalfBits(values[i]!);
  return o;
}

/** IEEE-754 half bits → float32, element-wise with {@link fromHalfBits} (exact: every half is a float32). */
export function fromHalfArray(bits: ArrayLike<number>): Float32Array {
  const o = new Float32Array(bits.length);
  for (let i = 0; i < o.length; i++) o[i] = fromHalfBits(bits[i]!);
  return o;
}

// ---------------------------------------------------------------------------------------------

function isTensorFeed(f: Feed): f is Tensor {
  return (f as TypedFeed).type === undefined;
}

function castData(type: TypedFeed['type'], src: ArrayLike<number> | BigInt64Array, name: string): OrtTensor['data'] {
  const n = src.length;
  const num = (i: number): number => Number((src as ArrayLike<number | bigint>)[i]);
  switch (type) {
    case 'float32':
      return src instanceof Float32Array ? src : Float32Array.from({ length: n }, (_, i) => num(i));
    case 'float64':
      return src instanceof Float64Array ? src : Float64Array.from({ length: n }, (_, i) => num(i));
    case 'float16': {
      if (src instanceof Uint16Array) return src;
      if (!(src instanceof BigInt64Array)) return toHalfArray(src);
      const o = new Uint16Array(n);
      for (let i = 0; i < n; i++) o[i] = toHalfBits(num(i));
      return o;
    }
    case 'int64': {
      if (src instanceof BigInt64Array) return src;
      const o = new BigInt64Array(n);
      for (let i = 0; i < n; i++) {
        const v = num(i);
        if (!Number.isInteger(v)) throw new Error(`input '${name}': int64 value expected, got ${v} at index ${i}`);
        o[i] = BigInt(v);
      }
      return o;
    }
    case 'int32': {
      if (src instanceof Int32Array) return src;
      const o = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = num(i);
        if (!Number.isInteger(v)) throw new Error(`input '${name}': int32 value expected, got ${v} at index ${i}`);
        o[i] = v;
      }
      return o;
    }
    case 'bool':
    case 'uint8': {
      if (src instanceof Uint8Array) return src;
      const o = new Uint8Array(n);
      for (let i = 0; i < n; i++) o[i] = type === 'bool' ? (num(i) !== 0 ? 1 : 0) : num(i);
      return o;
    }
    case 'int8': {
      if (src instanceof Int8Array) return src;
      return Int8Array.from({ length: n }, (_, i) => num(i));
    }
  }
}

const FEEDABLE = new Set(['float32', 'float16', 'float64', 'int64', 'int32', 'bool', 'uint8', 'int8']);

/** A loaded model: metadata plus `run` with memscope tensors. Create with `createSession` (session.ts; session-web.ts in the browser). */
export class Session {
  /** Input metadata, in model order. */
  readonly inputs: readonly ValueInfo[];
  /** Output metadata, in model order. */
  readonly outputs: readonly ValueInfo[];
  private released = false;

  constructor(
    /** The underlying onnxruntime session (escape hatch; prefer `run`). */
    readonly ort: InferenceSession,
    /** Where the model came from: its path, or `bytes:<sha1 prefix>`. */
    readonly source: string,
    /** The runtime's `Tensor` class. */
    private readonly TensorClass: OrtTensorClass,
    /** Called once when the session is released (the node runtime drops it from its cache). */
    private readonly onRelease: (s: Session) => void = () => {},
  ) {
    this.inputs = ort.inputMetadata.map(toInfo);
    this.outputs = ort.outputMetadata.map(toInfo);
  }

  /** Stop onnxruntime's profiler and write its file (sessions created with `profile` only). */
  endProfiling(): void {
    this.ort.endProfiling();
  }

  /** Input names, in model order. */
  get inputNames(): readonly string[] {
    return this.inputs.map((i) => i.name);
  }

  /** Output names, in model order. */
  get outputNames(): readonly string[] {
    return this.outputs.map((o) => o.name);
  }

  /** Metadata of input `name` (throws naming the model's inputs when absent). */
  input(name: string): ValueInfo {
    const i = this.inputs.find((v) => v.name === name);
    if (i === undefined) throw new Error(`${this.source}: no input '${name}' (inputs: ${this.inputNames.join(', ')})`);
    return i;
  }

  private toOrt(name: string, feed: Feed): OrtTensor {
    const info = this.inputs.find((v) => v.name === name);
    if (info === undefined) throw new Error(`${this.source}: unknown input '${name}' (inputs: ${this.inputNames.join(', ')})`);
    const want = info.type ?? 'float32';
    if (!FEEDABLE.has(want)) throw new Error(`${this.source}: input '${name}' has type ${want}, which memscope cannot feed`);
    const type = want as TypedFeed['type'];
    if (isTensorFeed(feed)) return new this.TensorClass(type, castData(type, feed.data, name) as never, [...feed.dims]);
    // a typed feed of another type is cast to the declared one (integers must stay integers)
    const src = feed.type === 'float16' && type !== 'float16' && feed.data instanceof Uint16Array ? Float32Array.from(feed.data, fromHalfBits) : feed.data;
    return new this.TensorClass(type, castData(type, src as ArrayLike<number>, name) as never, [...feed.dims]);
  }

  private async runOrt(feeds: Readonly<Record<string, Feed>>, outputs?: readonly string[]): Promise<InferenceSession.ReturnType> {
    if (this.released) throw new Error(`${this.source}: session was released`);
    const o: Record<string, OrtTensor> = {};
    for (const [k, v] of Object.entries(feeds)) o[k] = this.toOrt(k, v);
    for (const i of this.inputs) {
      if (o[i.name] === undefined) throw new Error(`${this.source}: missing input '${i.name}' (given: ${Object.keys(feeds).join(', ') || 'none'})`);
    }
    return outputs === undefined ? this.ort.run(o) : this.ort.run(o, [...outputs]);
  }

  /**
   * Run the model. Tensor feeds are cast to each input's declared element type (float32 →
   * int64/int32 must hold integers; float16 rounds to nearest). Returns the requested outputs
   * (default: all) as float32 memscope tensors (float16/float64/integer outputs are converted).
   */
  async run(feeds: Readonly<Record<string, Feed>>, outputs?: readonly string[]): Promise<Record<string, Tensor>> {
    const res = await this.runOrt(feeds, outputs);
    const out: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(res)) {
      const t = v as OrtTensor;
      out[k] = { dims: [...t.dims], data: toFloat32(t, `${this.source}: output '${k}'`) };
    }
    return out;
  }

  /** Run and return outputs as onnxruntime produced them (typed arrays of the declared type). */
  async runRaw(feeds: Readonly<Record<string, Feed>>, outputs?: readonly string[]): Promise<Record<string, RawOutput>> {
    const res = await this.runOrt(feeds, outputs);
    const out: Record<string, RawOutput> = {};
    for (const [k, v] of Object.entries(res)) {
      const t = v as OrtTensor;
      out[k] = { type: t.type, dims: [...t.dims], data: t.data };
    }
    return out;
  }

  /** Release the native session (also drops it from the cache). */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.onRelease(this);
    await this.ort.release();
  }
}

function toFloat32(t: OrtTensor, what: string): Float32Array {
  const d = t.data;
  if (d instanceof Float32Array) return d;
  if (t.type === 'float16') return fromHalfArray(d as Uint16Array);
  if (d instanceof Float64Array || d instanceof Int32Array || d instanceof Uint8Array || d instanceof Int8Array || d instanceof Uint16Array || d instanceof Int16Array || d instanceof Uint32Array) {
    return Float32Array.from(d);
  }
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Float32Array.from(d, (x) => Number(x));
  throw new Error(`${what}: cannot convert type ${t.type} to float32`);
}
