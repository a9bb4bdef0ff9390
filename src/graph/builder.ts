/**
 * A small typed ONNX graph builder (SPEC §2: the exact denoisers and later U-Nets are built as
 * ONNX graphs and run by onnxruntime). Together with `session.ts` this is the only place that
 * imports `onnx-proto`.
 *
 * ```ts
 * const b = new GraphBuilder({ name: 'affine' });
 * const x = b.input('x', 'float32', ['B', 4]);
 * const w = b.initializer('w', new Float32Array(16), [4, 4]);
 * const y = b.op('MatMul', [x, w]);
 * const z = b.op('Softmax', [y], { axis: -1 });
 * b.output(z, 'float32', ['B', 4], 'out');
 * const bytes = b.toBytes();
 * ```
 */
import p from 'onnx-proto';

const { onnx } = p;

/** Element types a graph value can have (names as onnxruntime spells them). */
export type DType = 'float32' | 'float16' | 'float64' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';

/** One dimension of a value's shape: a fixed size, a symbolic name (`'B'`), or `null` (unknown). */
export type Dim = number | string | null;

/** A float attribute forced to FLOAT even when its value is an integer (see {@link f}). */
export interface FloatAttr {
  readonly kind: 'float';
  readonly value: number;
}
/** A list of floats forced to FLOATS even when all its values are integers (see {@link fs}). */
export interface FloatsAttr {
  readonly kind: 'floats';
  readonly value: readonly number[];
}
/** A tensor-valued attribute (e.g. `Constant`'s `value`; a `Uint16Array` is float16 half bits, as in {@link InitData}). */
export interface TensorAttr {
  readonly kind: 'tensor';
  readonly data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint16Array;
  readonly dims: readonly number[];
}

/**
 * An attribute value. Plain integers become INT and other numbers FLOAT, except for the
 * attribute names in {@link FLOAT_ATTRIBUTES} (`alpha`, `beta`, `epsilon`, …), which are always
 * FLOAT. Arrays of numbers follow the same rule (INTS/FLOATS). Use {@link f} / {@link fs} to
 * force floats for other names.
 */
export type AttrValue = number | string | readonly number[] | readonly string[] | FloatAttr | FloatsAttr | TensorAttr;

/** Attribute names that are FLOAT in every standard ONNX operator that has them. */
export const FLOAT_ATTRIBUTES: ReadonlySet<string> = new Set([
  'alpha',
  'beta',
  'epsilon',
  'gamma',
  'momentum',
  'lambd',
  'bias',
  'ratio',
  'extrapolation_value',
  'cubic_coeff_a',
  'spatial_scale',
  'scales',
]);

/** Force a FLOAT attribute (e.g. `{ alpha: f(1) }` for an operator not in {@link FLOAT_ATTRIBUTES}). */
export function f(value: number): FloatAttr {
  return { kind: 'float', value };
}

/** Force a FLOATS attribute. */
export function fs(value: readonly number[]): FloatsAttr {
  return { kind: 'floats', value };
}

/**
 * Initializer / constant payloads accepted by the builder; the array type decides the element
 * type: `Float32Array` float32, `Float64Array` float64, `BigInt64Array` int64, `Int32Array`
 * int32, `Uint8Array` uint8, and `Uint16Array` **float16** given as IEEE-754 half bits (convert
 * numbers with `toHalfArray` from `session.ts`; there is no uint16 element type here).
 */
export type InitData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Uint16Array;

/** Options of {@link GraphBuilder}. */
export interface GraphBuilderOptions {
  /** Graph name (default `'memscope'`). */
  readonly name?: string;
  /** Default-domain opset version: 17 (default) or 18. */
  readonly opset?: 17 | 18;
  /**
   * Layer builders emit normalisations as one `LayerNormalization` node that also outputs its
   * Mean and InvStdDev (static shapes only), instead of the ReduceMean/Sub/Mul/ReduceMean/Add/Sqrt/Div
   * composition. Training graphs set it: the backward pass then reuses the forward statistics and
   * onnxruntime runs one fused kernel (its own LayerNorm fusion cannot fire there, the intermediate
   * values being consumed by the backward pass). Default false (inference graphs keep the composed,
   * reference-tested form and their exact numbers).
   */
  readonly fusedNormalization?: boolean;
}

const DTYPE_CODE: Record<DType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  float64: onnx.TensorProto.DataType.DOUBLE,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  int8: onnx.TensorProto.DataType.INT8,
  uint8: onnx.TensorProto.DataType.UINT8,
  bool: onnx.TensorProto.DataType.BOOL,
};

function dtypeOf(data: InitData): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint16Array) return 'float16';
  return 'uint8';
}

function numelOf(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

function tensorProto(name: string, data: InitData, dims: readonly number[]): InstanceType<typeof onnx.TensorProto> {
  if (numelOf(dims) !== data.length) {
    throw new Error(`GraphBuilder: tensor '${name}' has dims [${dims.join(', ')}] (${numelOf(dims)} elements) but ${data.length} values`);
  }
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return onnx.TensorProto.create({
    name,
    dims: [...dims],
    dataType: DTYPE_CODE[dtypeOf(data)],
    // copy: protobufjs keeps a reference, and callers may reuse their buffers
    rawData: raw.slice(),
  });
}

function valueInfo(name: string, dtype: DType, dims: readonly Dim[] | undefined): InstanceType<typeof onnx.ValueInfoProto> {
  const tensorType: Record<string, unknown> = { elemType: DTYPE_CODE[dtype] };
  if (dims !== undefined) {
    tensorType['shape'] = {
      dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : typeof d === 'string' ? { dimParam: d } : {})),
    };
  }
  return onnx.ValueInfoProto.create({ name, type: { tensorType } });
}

function attribute(name: string, v: AttrValue): InstanceType<typeof onnx.AttributeProto> {
  const A = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return onnx.AttributeProto.create({ name, type: A.STRING, s: new TextEncoder().encode(v) });
  if (typeof v === 'number') {
    if (Number.isInteger(v) && !FLOAT_ATTRIBUTES.has(name)) return onnx.AttributeProto.create({ name, type: A.INT, i: v });
    return onnx.AttributeProto.create({ name, type: A.FLOAT, f: v });
  }
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') {
      return onnx.AttributeProto.create({ name, type: A.STRINGS, strings: (v as string[]).map((s) => new TextEncoder().encode(s)) });
    }
    const nums = v as number[];
    if (nums.every((x) => Number.isInteger(x)) && !FLOAT_ATTRIBUTES.has(name)) return onnx.AttributeProto.create({ name, type: A.INTS, ints: nums });
    return onnx.AttributeProto.create({ name, type: A.FLOATS, floats: nums });
  }
  const o = v as FloatAttr | FloatsAttr | TensorAttr;
  switch (o.kind) {
    case 'float':
      return onnx.AttributeProto.create({ name, type: A.FLOAT, f: o.value });
    case 'floats':
      return onnx.AttributeProto.create({ name, type: A.FLOATS, floats: [...o.value] });
    case 'tensor':
      return onnx.AttributeProto.create({ name, type: A.TENSOR, t: tensorProto(name, o.data, o.dims) });
  }
}

/** Options of {@link GraphBuilder.op}. */
export interface OpOptions {
  /** Number of outputs (default 1), or explicit output names. */
  readonly outputs?: number | readonly string[];
  /** Operator domain (default: the ONNX default domain). */
  readonly domain?: string;
  /** Node name (default: `<op>_<counter>`). */
  readonly name?: string;
}

/**
 * Builds one ONNX model: inputs, initializers, nodes and outputs, then `toBytes()` for
 * `onnxruntime`. Value names are plain strings; every helper returns the name(s) of what it
 * created. IR version 8, default-domain opset 17 (or 18).
 */
export class GraphBuilder {
  readonly name: string;
  readonly opset: number;
  /** See {@link GraphBuilderOptions.fusedNormalization}. */
  readonly fusedNormalization: boolean;
  private readonly inputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  private readonly outputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  private readonly inits: InstanceType<typeof onnx.TensorProto>[] = [];
  private readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(opts: GraphBuilderOptions = {}) {
    this.name = opts.name ?? 'memscope';
    this.opset = opts.opset ?? 17;
    this.fusedNormalization = opts.fusedNormalization ?? false;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`GraphBuilder: value name '${name}' is already used`);
    this.names.add(name);
    return name;
  }

  /** A fresh unique value name starting with `prefix`. */
  fresh(prefix = 'v'): string {
    let n: string;
    do n = `${prefix}_${this.counter++}`;
    while (this.names.has(n));
    return n;
  }

  /**
   * Declare a graph input; returns its name. `dims` entries may be symbolic (`'B'`) or `null`;
   * `dims = null` declares no shape at all (unknown rank).
   */
  input(name: string, dtype: DType, dims: readonly Dim[] | null): string {
    this.inputs.push(valueInfo(this.claim(name), dtype, dims ?? undefined));
    return name;
  }

  /**
   * Add a constant tensor (an initializer); returns its name (a fresh one when `name` is omitted).
   * The element type follows the array type ({@link InitData}; `Uint16Array` = float16 half bits).
   */
  initializer(name: string | undefined, data: InitData, dims: readonly number[]): string {
    const n = this.claim(name ?? this.fresh('init'));
    this.inits.push(tensorProto(n, data, dims));
    return n;
  }

  /**
   * Add an initializer whose bytes stay in a file (ONNX external data): `location` (relative to
   * the model file's folder), `offset` and `length` in bytes, element type `dataType` (an ONNX
   * `TensorProto.DataType` code: 1 float, 10 float16, 16 bfloat16, …). onnxruntime reads it when
   * the model is opened by path. Returns the name.
   */
  externalInitializer(name: string, dataType: number, dims: readonly number[], ref: { readonly location: string; readonly offset: number; readonly length: number }): string {
    const n = this.claim(name);
    this.inits.push(
      onnx.TensorProto.create({
        name: n,
        dims: [...dims],
        dataType,
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: ref.location },
          { key: 'offset', value: String(ref.offset) },
          { key: 'length', value: String(ref.length) },
        ],
      }),
    );
    return n;
  }

  /** A float32 constant (scalar when `dims` is omitted and one value is given). */
  constF32(values: number | readonly number[] | Float32Array, dims?: readonly number[]): string {
    const data = typeof values === 'number' ? Float32Array.of(values) : Float32Array.from(values);
    return this.initializer(undefined, data, dims ?? (typeof values === 'number' ? [] : [data.length]));
  }

  /** An int64 constant (1-D by default: the form `Reshape`, `ReduceSum` axes etc. want). */
  constI64(values: number | readonly number[], dims?: readonly number[]): string {
    const arr = typeof values === 'number' ? [values] : values;
    const data = BigInt64Array.from(arr.map((v) => BigInt(v)));
    return this.initializer(undefined, data, dims ?? (typeof values === 'number' ? [] : [data.length]));
  }

  /**
   * Add a node `opType(inputs)` with attributes; returns its (first) output name. Use `''` for an
   * omitted optional input. For several outputs use {@link GraphBuilder.opN}.
   */
  op(opType: string, inputs: readonly string[], attrs: Readonly<Record<string, AttrValue>> = {}, opts: OpOptions = {}): string {
    return this.opN(opType, inputs, attrs, opts)[0]!;
  }

  /** Like {@link GraphBuilder.op} but returns every output name (`opts.outputs` = count or names). */
  opN(opType: string, inputs: readonly string[], attrs: Readonly<Record<string, AttrValue>> = {}, opts: OpOptions = {}): string[] {
    for (const i of inputs) {
      if (i !== '' && !this.names.has(i)) throw new Error(`GraphBuilder: ${opType} input '${i}' is not defined yet`);
    }
    const outs = opts.outputs ?? 1;
    const outNames = typeof outs === 'number' ? Array.from({ length: outs }, () => this.fresh(opType.toLowerCase())) : [...outs];
    for (const o of outNames) {
      if (typeof outs !== 'number') this.claim(o);
      else this.names.add(o);
    }
    const attribute_ = Object.entries(attrs).map(([k, v]) => attribute(k, v));
    const node: Record<string, unknown> = {
      opType,
      input: [...inputs],
      output: outNames,
      name: opts.name ?? `${opType}_${this.nodes.length}`,
      attribute: attribute_,
    };
    if (opts.domain !== undefined) node['domain'] = opts.domain;
    this.nodes.push(onnx.NodeProto.create(node));
    return outNames;
  }

  /**
   * Declare `value` a graph output of the given element type (`dims` optional: unknown shape when
   * omitted). When `name` differs from `value`, an `Identity` node renames it. Returns the output name.
   */
  output(value: string, dtype: DType, dims?: readonly Dim[], name?: string): string {
    let v = value;
    if (name !== undefined && name !== value) v = this.op('Identity', [value], {}, { outputs: [name] });
    if (!this.names.has(v)) throw new Error(`GraphBuilder: output '${v}' is not defined`);
    this.outputs.push(valueInfo(v, dtype, dims));
    return v;
  }

  /** The ModelProto object (protobufjs message). */
  toModel(): InstanceType<typeof onnx.ModelProto> {
    return onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'memscope',
      // the default domain, plus version 1 of every other domain a node uses (com.microsoft's fused kernels)
      opsetImport: [{ domain: '', version: this.opset }, ...[...new Set(this.nodes.map((n) => n.domain ?? '').filter((d) => d !== ''))].sort().map((domain) => ({ domain, version: 1 }))],
      graph: {
        name: this.name,
        input: this.inputs,
        output: this.outputs,
        initializer: this.inits,
        node: this.nodes,
      },
    });
  }

  /** Serialized ModelProto bytes, ready for `createSession`. */
  toBytes(): Uint8Array {
    return onnx.ModelProto.encode(this.toModel()).finish();
  }
}
