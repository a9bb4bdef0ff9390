/**
 * Static shape and element-type inference for ONNX graphs with fixed input shapes, plus constant
 * folding of the small integer tensors that shape arithmetic produces (`Shape → Gather → Concat →
 * Reshape`, axes, Slice starts, Resize scales…). Used by the reverse-mode differentiator
 * (`autodiff.ts`), which needs every value's concrete shape at build time.
 *
 * ```ts
 * const info = inferShapes(modelBytes, { x: [8, 3, 32, 32] });
 * info.values.get('conv_0')?.dims; // [8, 16, 32, 32]
 * ```
 *
 * Ops whose shapes cannot be inferred (unknown ops, data-dependent shapes) leave their outputs out
 * of {@link ShapeInfo.values}; {@link ShapeInfo.unknown} says why.
 */
import p from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = p;

/** ONNX `TensorProto.DataType` codes used here. */
export const ELEM = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
} as const;

/** Whether an ONNX element type code is a floating-point type (float, double, half, bfloat16). */
export function isFloatElem(t: number): boolean {
  return t === ELEM.FLOAT || t === ELEM.DOUBLE || t === ELEM.FLOAT16 || t === ELEM.BFLOAT16;
}

/** Whether an element type code is an integer or boolean type (values kept as exact numbers). */
function isIntElem(t: number): boolean {
  return !isFloatElem(t) && t !== ELEM.STRING;
}

/** A decoded constant tensor: element type, shape and values as plain numbers (int64 via `Number`). */
export interface ConstTensor {
  readonly elemType: number;
  readonly dims: readonly number[];
  readonly data: readonly number[];
}

/** A decoded attribute value. Tensor attributes are decoded to {@link ConstTensor}. */
export type AttrVal = number | readonly number[] | string | readonly string[] | ConstTensor;

/** One graph node, decoded: op type, name, inputs/outputs (`''` = omitted) and attributes. */
export interface NodeInfo {
  /** Position in the graph's node list. */
  readonly index: number;
  /** The node's name, or `#<index>` when it has none. */
  readonly name: string;
  readonly opType: string;
  /** Operator domain (`''` = the default ONNX domain). */
  readonly domain: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: ReadonlyMap<string, AttrVal>;
}

/** What inference knows about one value: element type, concrete shape and, when small and constant, its values. */
export interface ValueMeta {
  readonly elemType: number;
  readonly dims: readonly number[];
  /** Constant values (initializers up to {@link MAX_CONST_ELEMENTS} elements, folded shape arithmetic). */
  readonly value?: ConstTensor;
}

/** The result of {@link inferShapes}. */
export interface ShapeInfo {
  /** Default-domain opset version of the model. */
  readonly opset: number;
  /** Decoded nodes, in graph order. */
  readonly nodes: readonly NodeInfo[];
  /** Every value whose shape is known: graph inputs, initializers and node outputs. */
  readonly values: ReadonlyMap<string, ValueMeta>;
  /** Values whose shape could not be inferred, with the reason. */
  readonly unknown: ReadonlyMap<string, string>;
}

/** Initializers and folded values up to this many elements keep their values (default 65,536). */
export const MAX_CONST_ELEMENTS = 65_536;

type Longish = number | { toNumber(): number } | null | undefined;

/** A protobuf int64 (`number` or `Long`) as a JS number. */
export function toNum(v: Longish): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

/** Number of elements of a shape (1 for `[]`). */
export function numelOf(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Decode a TensorProto's dims and values (raw or typed fields); `withData` (default true) = false decodes only the shape. Throws for external data. */
export function decodeTensor(t: OnnxTypes.ITensorProto, withData = true): ConstTensor {
  const dims = (t.dims ?? []).map((d) => toNum(d));
  const elemType = t.dataType ?? ELEM.FLOAT;
  if (!withData) return { elemType, dims, data: [] };
  const n = numelOf(dims);
  const raw = t.rawData;
  let data: number[];
  if (raw !== null && raw !== undefined && raw.length > 0) {
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    data = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      switch (elemType) {
        case ELEM.FLOAT:
          data[i] = dv.getFloat32(4 * i, true);
          break;
        case ELEM.DOUBLE:
          data[i] = dv.getFloat64(8 * i, true);
          break;
        case ELEM.INT64:
          data[i] = Number(dv.getBigInt64(8 * i, true));
          break;
        case ELEM.UINT64:
          data[i] = Number(dv.getBigUint64(8 * i, true));
          break;
        case ELEM.INT32:
          data[i] = dv.getInt32(4 * i, true);
          break;
        case ELEM.UINT32:
          data[i] = dv.getUint32(4 * i, true);
          break;
        case ELEM.INT16:
          data[i] = dv.getInt16(2 * i, true);
          break;
        case ELEM.UINT16:
          data[i] = dv.getUint16(2 * i, true);
          break;
        case ELEM.INT8:
          data[i] = dv.getInt8(i);
          break;
        case ELEM.UINT8:
        case ELEM.BOOL:
          data[i] = dv.getUint8(i);
          break;
        case ELEM.FLOAT16:
          data[i] = halfToNumber(dv.getUint16(2 * i, true));
          break;
        default:
          throw new Error(`decodeTensor: '${t.name ?? ''}' has unsupported element type ${elemType}`);
      }
    }
    return { elemType, dims, data };
  }
  switch (elemType) {
    case ELEM.FLOAT:
      data = [...(t.floatData ?? [])];
      break;
    case ELEM.DOUBLE:
      data = [...(t.doubleData ?? [])];
      break;
    case ELEM.INT64:
      data = (t.int64Data ?? []).map((v) => toNum(v));
      break;
    case ELEM.UINT64:
    case ELEM.UINT32:
      data = (t.uint64Data ?? []).map((v) => toNum(v));
      break;
    case ELEM.FLOAT16:
      data = (t.int32Data ?? []).map((v) => halfToNumber(v));
      break;
    default:
      data = [...(t.int32Data ?? [])];
  }
  if (data.length !== n) {
    if (t.externalData !== null && t.externalData !== undefined && t.externalData.length > 0) {
      throw new Error(`decodeTensor: '${t.name ?? ''}' keeps its data in an external file`);
    }
    throw new Error(`decodeTensor: '${t.name ?? ''}' has dims [${dims.join(', ')}] but ${data.length} values`);
  }
  return { elemType, dims, data };
}

function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m === 0 ? s * Infinity : NaN;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const td = new TextDecoder();

function decodeAttr(a: OnnxTypes.IAttributeProto): AttrVal | undefined {
  const A = onnx.AttributeProto.AttributeType;
  let type = a.type ?? A.UNDEFINED;
  if (type === A.UNDEFINED) {
    // old producers: infer from the field that is set
    if (a.floats && a.floats.length) type = A.FLOATS;
    else if (a.ints && a.ints.length) type = A.INTS;
    else if (a.strings && a.strings.length) type = A.STRINGS;
    else if (a.t) type = A.TENSOR;
    else if (a.s && a.s.length) type = A.STRING;
    else if (a.f !== null && a.f !== undefined && a.f !== 0) type = A.FLOAT;
    else type = A.INT;
  }
  switch (type) {
    case A.FLOAT:
      return a.f ?? 0;
    case A.INT:
      return toNum(a.i);
    case A.STRING:
      return td.decode(a.s ?? new Uint8Array());
    case A.TENSOR:
      return a.t ? decodeTensor(a.t) : undefined;
    case A.FLOATS:
      return [...(a.floats ?? [])];
    case A.INTS:
      return (a.ints ?? []).map((v) => toNum(v));
    case A.STRINGS:
      return (a.strings ?? []).map((s) => td.decode(s));
    default:
      return undefined; // graphs, sparse tensors, type protos: not used by supported ops
  }
}

/** Decode one NodeProto (`index` = its position, used for unnamed nodes). */
export function decodeNode(n: OnnxTypes.INodeProto, index: number): NodeInfo {
  const attrs = new Map<string, AttrVal>();
  for (const a of n.attribute ?? []) {
    const v = decodeAttr(a);
    if (v !== undefined && a.name) attrs.set(a.name, v);
  }
  return {
    index,
    name: n.name ? n.name : `#${index}`,
    opType: n.opType ?? '',
    domain: n.domain ?? '',
    inputs: [...(n.input ?? [])],
    outputs: [...(n.output ?? [])],
    attrs,
  };
}

/** Attribute `name` of `node` as a number (or `def` when absent). */
export function attrInt(node: NodeInfo, name: string, def: number): number {
  const v = node.attrs.get(name);
  if (v === undefined) return def;
  if (typeof v !== 'number') throw new Error(`${describeNode(node)}: attribute '${name}' must be a number`);
  return v;
}

/** Attribute `name` of `node` as a float (or `def`). */
export function attrFloat(node: NodeInfo, name: string, def: number): number {
  return attrInt(node, name, def);
}

/** Attribute `name` of `node` as a list of integers (or `def`). */
export function attrInts(node: NodeInfo, name: string, def: readonly number[] | undefined): readonly number[] | undefined {
  const v = node.attrs.get(name);
  if (v === undefined) return def;
  if (!Array.isArray(v)) throw new Error(`${describeNode(node)}: attribute '${name}' must be a list of integers`);
  return v as readonly number[];
}

/** Attribute `name` of `node` as a string (or `def`). */
export function attrString(node: NodeInfo, name: string, def: string): string {
  const v = node.attrs.get(name);
  if (v === undefined) return def;
  if (typeof v !== 'string') throw new Error(`${describeNode(node)}: attribute '${name}' must be a string`);
  return v;
}

/** `op 'Conv' (node 'Conv_3')` — how errors name a node. */
export function describeNode(node: NodeInfo): string {
  return `op '${node.domain ? `${node.domain}.` : ''}${node.opType}' (node '${node.name}')`;
}

/** Normalise a possibly negative axis for rank `r` (throws when out of range; `what` names it in the error, default 'axis'). */
export function normAxis(axis: number, r: number, what = 'axis'): number {
  const a = axis < 0 ? axis + r : axis;
  if (a < 0 || a >= r) throw new Error(`${what} ${axis} out of range for rank ${r}`);
  return a;
}

/** Numpy-style broadcast of several shapes (throws when incompatible). */
export function broadcastShapes(...shapes: readonly (readonly number[])[]): number[] {
  const r = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(r).fill(1);
  for (const s of shapes) {
    const off = r - s.length;
    for (let i = 0; i < s.length; i++) {
      const d = s[i]!;
      const o = out[off + i]!;
      if (d === o || d === 1) continue;
      if (o === 1) out[off + i] = d;
      else throw new Error(`cannot broadcast shapes ${shapes.map((x) => `[${x.join(', ')}]`).join(' and ')}`);
    }
  }
  return out;
}

/** Explicit 2-D/N-D convolution or pooling geometry: kernel, strides, dilations, pads `[begins…, ends…]`. */
export interface ConvGeometry {
  readonly kernel: readonly number[];
  readonly strides: readonly number[];
  readonly dilations: readonly number[];
  readonly pads: readonly number[];
  readonly group: number;
  /** Output spatial sizes. */
  readonly out: readonly number[];
}

/**
 * Resolve a Conv / pooling node's geometry for input spatial sizes `inSpatial`: auto_pad resolved
 * to explicit pads; strides and dilations default to 1, pads to 0, group to 1; `kernelDefault`
 * (the weight's spatial dims for Conv) is used when the node has no kernel_shape; `ceilMode`
 * (default false) rounds pool outputs up.
 */
export function convGeometry(node: NodeInfo, inSpatial: readonly number[], kernelDefault: readonly number[] | undefined, ceilMode = false): ConvGeometry {
  const nd = inSpatial.length;
  const kernel = attrInts(node, 'kernel_shape', kernelDefault);
  if (kernel === undefined || kernel.length !== nd) throw new Error(`${describeNode(node)}: kernel_shape missing or of wrong length`);
  const strides = attrInts(node, 'strides', undefined) ?? new Array<number>(nd).fill(1);
  const dilations = attrInts(node, 'dilations', undefined) ?? new Array<number>(nd).fill(1);
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  let pads = attrInts(node, 'pads', undefined) ?? new Array<number>(2 * nd).fill(0);
  const out: number[] = [];
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    const pp = new Array<number>(2 * nd).fill(0);
    for (let i = 0; i < nd; i++) {
      const o = Math.ceil(inSpatial[i]! / strides[i]!);
      const total = Math.max(0, (o - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - inSpatial[i]!);
      const small = Math.floor(total / 2);
      pp[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pp[i + nd] = total - pp[i]!;
      out.push(o);
    }
    pads = pp;
  } else {
    if (autoPad === 'VALID') pads = new Array<number>(2 * nd).fill(0);
    for (let i = 0; i < nd; i++) {
      const span = inSpatial[i]! + pads[i]! + pads[i + nd]! - ((kernel[i]! - 1) * dilations[i]! + 1);
      out.push((ceilMode ? Math.ceil(span / strides[i]!) : Math.floor(span / strides[i]!)) + 1);
    }
  }
  return { kernel, strides, dilations, pads, group: attrInt(node, 'group', 1), out };
}

/** Normalised Slice parameters for one axis: first index, step and count. */
export interface SliceAxis {
  readonly axis: number;
  readonly start: number;
  readonly step: number;
  readonly count: number;
}

/** Resolve ONNX Slice semantics (negative indices, clamping) for a tensor of shape `dims`. */
export function resolveSlice(dims: readonly number[], starts: readonly number[], ends: readonly number[], axes: readonly number[] | undefined, steps: readonly number[] | undefined): SliceAxis[] {
  const r = dims.length;
  const out: SliceAxis[] = [];
  for (let k = 0; k < starts.length; k++) {
    const axis = normAxis(axes ? axes[k]! : k, r, 'Slice axis');
    const d = dims[axis]!;
    const step = steps ? steps[k]! : 1;
    if (step === 0) throw new Error('Slice step 0');
    let s = starts[k]!;
    let e = ends[k]!;
    if (s < 0) s += d;
    if (e < 0) e += d;
    if (step > 0) {
      s = Math.min(Math.max(s, 0), d);
      e = Math.min(Math.max(e, 0), d);
    } else {
      s = Math.min(Math.max(s, 0), d - 1);
      e = Math.min(Math.max(e, -1), d - 1);
    }
    const count = Math.max(0, Math.ceil((e - s) / step));
    out.push({ axis, start: s, step, count });
  }
  return out;
}

/** Where a node reads its reduce axes: attribute (before the opset in which they became an input) or input 1. */
export function reduceAxes(node: NodeInfo, opset: number, constOf: (name: string) => ConstTensor | undefined, rank: number): number[] | undefined {
  const axesAsInput = node.opType === 'ReduceSum' ? opset >= 13 : opset >= 18;
  let axes: readonly number[] | undefined;
  if (axesAsInput) {
    const n = node.inputs[1];
    if (n !== undefined && n !== '') {
      const c = constOf(n);
      if (c === undefined) return undefined;
      axes = c.data;
    }
  } else axes = attrInts(node, 'axes', undefined);
  if (axes === undefined || axes.length === 0) {
    if (axesAsInput && attrInt(node, 'noop_with_empty_axes', 0) === 1) return [];
    return Array.from({ length: rank }, (_, i) => i);
  }
  return [...new Set(axes.map((a) => normAxis(a, rank, 'reduce axis')))].sort((a, b) => a - b);
}

/** The axes of a Squeeze/Unsqueeze node (attribute before opset 13, input 1 from 13). */
function squeezeAxes(node: NodeInfo, opset: number, constOf: (name: string) => ConstTensor | undefined): readonly number[] | undefined | null {
  if (opset < 13) return attrInts(node, 'axes', undefined) ?? null;
  const n = node.inputs[1];
  if (n === undefined || n === '') return null;
  const c = constOf(n);
  return c === undefined ? undefined : c.data;
}

/** The per-output sizes of a Split node for an axis of size `d`. */
export function splitSizes(node: NodeInfo, opset: number, d: number, constOf: (name: string) => ConstTensor | undefined): number[] | undefined {
  const nOut = node.outputs.length;
  let split: readonly number[] | undefined;
  if (opset >= 13) {
    const n = node.inputs[1];
    if (n !== undefined && n !== '') {
      const c = constOf(n);
      if (c === undefined) return undefined;
      split = c.data;
    }
  } else split = attrInts(node, 'split', undefined);
  if (split !== undefined) return [...split];
  const num = opset >= 18 ? attrInt(node, 'num_outputs', nOut) : nOut;
  const chunk = Math.ceil(d / num);
  return Array.from({ length: num }, (_, i) => Math.max(0, Math.min(chunk, d - i * chunk)));
}

/** Output dims of a Resize node from its constant `sizes` or `scales` input (`undefined` when neither is constant). */
export function resizeOutDims(node: NodeInfo, xDims: readonly number[], constOf: (name: string) => ConstTensor | undefined): number[] | undefined {
  const scalesName = node.inputs[2];
  const sizesName = node.inputs[3];
  const axesAttr = attrInts(node, 'axes', undefined);
  const r = xDims.length;
  const axes = axesAttr ? axesAttr.map((a) => normAxis(a, r)) : Array.from({ length: r }, (_, i) => i);
  const out = [...xDims];
  if (sizesName !== undefined && sizesName !== '') {
    const c = constOf(sizesName);
    if (c === undefined) return undefined;
    if (c.data.length > 0) {
      axes.forEach((a, k) => (out[a] = c.data[k]!));
      return out;
    }
  }
  if (scalesName !== undefined && scalesName !== '') {
    const c = constOf(scalesName);
    if (c === undefined) return undefined;
    axes.forEach((a, k) => (out[a] = Math.floor(xDims[a]! * c.data[k]!)));
    return out;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// constant evaluation helpers

function bcastIndex(outDims: readonly number[], inDims: readonly number[]): (i: number) => number {
  const r = outDims.length;
  const off = r - inDims.length;
  const strides = new Array<number>(r).fill(0);
  let s = 1;
  for (let i = inDims.length - 1; i >= 0; i--) {
    strides[off + i] = inDims[i] === 1 ? 0 : s;
    s *= inDims[i]!;
  }
  return (flat) => {
    let idx = 0;
    let rem = flat;
    for (let i = r - 1; i >= 0; i--) {
      const d = outDims[i]!;
      idx += (rem % d) * strides[i]!;
      rem = Math.floor(rem / d);
    }
    return idx;
  };
}

function elementwise(ins: readonly ConstTensor[], elemType: number, f: (...v: number[]) => number): ConstTensor {
  const dims = broadcastShapes(...ins.map((c) => c.dims));
  const n = numelOf(dims);
  const idx = ins.map((c) => bcastIndex(dims, c.dims));
  const data = new Array<number>(n);
  for (let i = 0; i < n; i++) data[i] = f(...ins.map((c, k) => c.data[idx[k]!(i)]!));
  return { elemType, dims, data };
}

function castValue(v: number, to: number): number {
  if (isFloatElem(to)) return v;
  if (to === ELEM.BOOL) return v !== 0 ? 1 : 0;
  return Math.trunc(v);
}

function transposeConst(c: ConstTensor, perm: readonly number[]): ConstTensor {
  const dims = perm.map((p_) => c.dims[p_]!);
  const n = numelOf(dims);
  const inStrides = new Array<number>(c.dims.length).fill(1);
  for (let i = c.dims.length - 2; i >= 0; i--) inStrides[i] = inStrides[i + 1]! * c.dims[i + 1]!;
  const data = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    let rem = i;
    let src = 0;
    for (let k = dims.length - 1; k >= 0; k--) {
      src += (rem % dims[k]!) * inStrides[perm[k]!]!;
      rem = Math.floor(rem / dims[k]!);
    }
    data[i] = c.data[src]!;
  }
  return { elemType: c.elemType, dims, data };
}

/** Fold a reduction of a constant (Sum, Prod, Max, Min, Mean; others are left unfolded). */
function reduceConst(op: string, c: ConstTensor, axes: readonly number[], outDims: readonly number[]): ConstTensor | undefined {
  const init: Record<string, [number, (a: number, b: number) => number]> = {
    ReduceSum: [0, (a, b) => a + b],
    ReduceMean: [0, (a, b) => a + b],
    ReduceProd: [1, (a, b) => a * b],
    ReduceMax: [-Infinity, (a, b) => Math.max(a, b)],
    ReduceMin: [Infinity, (a, b) => Math.min(a, b)],
  };
  const f = init[op];
  if (f === undefined) return undefined;
  const keptDims = c.dims.map((d, i) => (axes.includes(i) ? 1 : d));
  const n = numelOf(keptDims);
  const data = new Array<number>(n).fill(f[0]);
  const r = c.dims.length;
  for (let i = 0; i < c.data.length; i++) {
    let rem = i;
    let o = 0;
    let stride = 1;
    for (let k = r - 1; k >= 0; k--) {
      const idx = rem % c.dims[k]!;
      rem = Math.floor(rem / c.dims[k]!);
      if (!axes.includes(k)) o += idx * stride;
      stride *= keptDims[k]!;
    }
    data[o] = f[1](data[o]!, c.data[i]!);
  }
  if (op === 'ReduceMean') {
    const cnt = numelOf(c.dims) / n;
    for (let i = 0; i < n; i++) data[i] = data[i]! / cnt;
  }
  return { elemType: c.elemType, dims: outDims, data };
}

// ---------------------------------------------------------------------------------------------

/** Input element types and shapes of the model's graph, as declared. */
function declaredType(v: OnnxTypes.IValueInfoProto): number {
  return v.type?.tensorType?.elemType ?? ELEM.FLOAT;
}

/** Decode a serialized ModelProto (or pass one through). */
export function decodeModel(model: Uint8Array | OnnxTypes.IModelProto): OnnxTypes.IModelProto {
  return model instanceof Uint8Array ? onnx.ModelProto.decode(model) : model;
}

/** The default-domain opset version a model imports. */
export function modelOpset(model: OnnxTypes.IModelProto): number {
  const imp = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  return imp ? toNum(imp.version) : 1;
}

/**
 * Infer the concrete shape and element type of every value of `model` given the shape of each
 * graph input (inputs that are also initializers default to the initializer's shape). Small
 * constants are folded. Throws when an input shape is missing or contradicts a fixed declared dim.
 */
export function inferShapes(model: Uint8Array | OnnxTypes.IModelProto, inputShapes: Readonly<Record<string, readonly number[]>>): ShapeInfo {
  const m = decodeModel(model);
  const graph = m.graph;
  if (!graph) throw new Error('inferShapes: the model has no graph');
  const opset = modelOpset(m);
  const values = new Map<string, ValueMeta>();
  const unknown = new Map<string, string>();
  const inits = new Map<string, OnnxTypes.ITensorProto>();
  for (const t of graph.initializer ?? []) if (t.name) inits.set(t.name, t);
  for (const t of graph.initializer ?? []) {
    if (!t.name) continue;
    const head = decodeTensor(t, false);
    // weights in an external file are known by shape only (their values never decide a shape)
    const external = (t.externalData?.length ?? 0) > 0;
    const small = numelOf(head.dims) <= MAX_CONST_ELEMENTS && !external;
    values.set(t.name, small ? { elemType: head.elemType, dims: head.dims, value: decodeTensor(t) } : { elemType: head.elemType, dims: head.dims });
  }
  for (const vi of graph.input ?? []) {
    const name = vi.name ?? '';
    const given = inputShapes[name];
    const declared = vi.type?.tensorType?.shape?.dim;
    if (given === undefined) {
      if (inits.has(name)) {
        const cur = values.get(name)!;
        values.set(name, { elemType: cur.elemType, dims: cur.dims }); // an input may override it: not constant
        continue;
      }
      throw new Error(`inferShapes: no shape given for graph input '${name}'`);
    }
    if (declared) {
      if (declared.length !== given.length) {
        throw new Error(`inferShapes: input '${name}' is declared with rank ${declared.length} but given shape [${given.join(', ')}]`);
      }
      declared.forEach((d, i) => {
        if (d.dimValue !== null && d.dimValue !== undefined && toNum(d.dimValue) > 0 && toNum(d.dimValue) !== given[i]) {
          throw new Error(`inferShapes: input '${name}' has fixed dim ${i} = ${toNum(d.dimValue)} but given shape [${given.join(', ')}]`);
        }
      });
    }
    values.set(name, { elemType: declaredType(vi), dims: [...given] });
  }
  const nodes = (graph.node ?? []).map((n, i) => decodeNode(n, i));
  const constOf = (name: string): ConstTensor | undefined => values.get(name)?.value;
  for (const node of nodes) {
    const missing = node.inputs.find((i) => i !== '' && !values.has(i));
    if (missing !== undefined) {
      const why = unknown.get(missing) ?? `'${missing}' is not defined before ${describeNode(node)}`;
      for (const o of node.outputs) if (o !== '') unknown.set(o, why);
      continue;
    }
    let res: (ValueMeta | undefined)[];
    try {
      res = inferNode(node, opset, (n) => values.get(n), constOf);
    } catch (e) {
      const why = `${describeNode(node)}: ${(e as Error).message}`;
      for (const o of node.outputs) if (o !== '') unknown.set(o, why);
      continue;
    }
    node.outputs.forEach((o, i) => {
      if (o === '') return;
      const r = res[i];
      if (r === undefined) unknown.set(o, `${describeNode(node)}: shape of output ${i} cannot be inferred statically`);
      else values.set(o, r);
    });
  }
  return { opset, nodes, values, unknown };
}

const UNARY_SAME = new Set([
  'Identity', 'Neg', 'Sqrt', 'Exp', 'Log', 'Sigmoid', 'Tanh', 'Relu', 'LeakyRelu', 'Erf', 'Sin', 'Cos', 'Tan',
  'Abs', 'Reciprocal', 'Floor', 'Ceil', 'Round', 'Sign', 'Softmax', 'LogSoftmax', 'Elu', 'Selu', 'Celu',
  'Softplus', 'Softsign', 'HardSigmoid', 'HardSwish', 'Clip', 'Not', 'Mish', 'Gelu', 'CumSum', 'Trilu',
  'ThresholdedRelu', 'Asin', 'Acos', 'Atan', 'Sinh', 'Cosh', 'Asinh', 'Acosh', 'Atanh', 'Shrink',
  'LpNormalization', 'LRN', 'MeanVarianceNormalization', 'InstanceNormalization', 'GroupNormalization',
  'BatchNormalization', 'ScatterND', 'ScatterElements', 'PRelu',
]);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'Mod', 'BitShift']);
const COMPARE = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor']);

type Get = (name: string) => ValueMeta | undefined;
type ConstOf = (name: string) => ConstTensor | undefined;

function small(c: ConstTensor): ConstTensor | undefined {
  return numelOf(c.dims) <= MAX_CONST_ELEMENTS ? c : undefined;
}

function withValue(elemType: number, dims: readonly number[], value: ConstTensor | undefined): ValueMeta {
  return value === undefined ? { elemType, dims } : { elemType, dims, value };
}

/** Shapes (and folded values) of one node's outputs; entries `undefined` when not inferable. */
function inferNode(node: NodeInfo, opset: number, get: Get, constOf: ConstOf): (ValueMeta | undefined)[] {
  if (node.domain !== '' && node.domain !== 'ai.onnx') throw new Error('operator domain not supported by shape inference');
  const op = node.opType;
  const inp = (i: number): ValueMeta => {
    const n = node.inputs[i];
    if (n === undefined || n === '') throw new Error(`input ${i} is missing`);
    return get(n)!;
  };
  const has = (i: number): boolean => node.inputs[i] !== undefined && node.inputs[i] !== '';
  const cv = (i: number): ConstTensor | undefined => (has(i) ? constOf(node.inputs[i]!) : undefined);
  const allConst = (): ConstTensor[] | undefined => {
    const cs: ConstTensor[] = [];
    for (let i = 0; i < node.inputs.length; i++) {
      if (!has(i)) continue;
      const c = cv(i);
      if (c === undefined) return undefined;
      cs.push(c);
    }
    return cs;
  };
  const x = (): ValueMeta => inp(0);

  if (UNARY_SAME.has(op)) {
    const a = x();
    let value: ConstTensor | undefined;
    if (op === 'Identity') value = a.value;
    else if (op === 'Neg' && a.value) value = { ...a.value, data: a.value.data.map((v) => -v) };
    else if (op === 'Abs' && a.value) value = { ...a.value, data: a.value.data.map((v) => Math.abs(v)) };
    if (op === 'PRelu') return [{ elemType: a.elemType, dims: broadcastShapes(a.dims, inp(1).dims) }];
    return [withValue(a.elemType, a.dims, value), ...node.outputs.slice(1).map(() => undefined)];
  }
  if (BINARY.has(op) || COMPARE.has(op)) {
    const ins = node.inputs.map((_, i) => inp(i));
    const dims = broadcastShapes(...ins.map((v) => v.dims));
    const elemType = COMPARE.has(op) ? ELEM.BOOL : ins[0]!.elemType;
    let value: ConstTensor | undefined;
    const cs = allConst();
    if (cs !== undefined && numelOf(dims) <= MAX_CONST_ELEMENTS) {
      const isInt = isIntElem(ins[0]!.elemType);
      const fns: Record<string, (...v: number[]) => number> = {
        Add: (a, b) => a + b,
        Sub: (a, b) => a - b,
        Mul: (a, b) => a * b,
        Div: (a, b) => (isInt ? Math.trunc(a / b) : a / b),
        Pow: (a, b) => a ** b,
        Max: (...v) => Math.max(...v),
        Min: (...v) => Math.min(...v),
        Sum: (...v) => v.reduce((s, t) => s + t, 0),
        Mod: (a, b) => (isInt ? ((a % b) + b) % b : a % b),
        Equal: (a, b) => (a === b ? 1 : 0),
        Less: (a, b) => (a < b ? 1 : 0),
        Greater: (a, b) => (a > b ? 1 : 0),
        LessOrEqual: (a, b) => (a <= b ? 1 : 0),
        GreaterOrEqual: (a, b) => (a >= b ? 1 : 0),
        And: (a, b) => (a && b ? 1 : 0),
        Or: (a, b) => (a || b ? 1 : 0),
      };
      const f = fns[op];
      if (f !== undefined) value = elementwise(cs, elemType, f);
    }
    return [withValue(elemType, dims, value)];
  }
  switch (op) {
    case 'Constant': {
      const a = node.attrs;
      let c: ConstTensor | undefined;
      const v = a.get('value');
      if (v !== undefined && typeof v === 'object' && !Array.isArray(v)) c = v as ConstTensor;
      else if (a.has('value_float')) c = { elemType: ELEM.FLOAT, dims: [], data: [a.get('value_float') as number] };
      else if (a.has('value_floats')) c = { elemType: ELEM.FLOAT, dims: [(a.get('value_floats') as number[]).length], data: a.get('value_floats') as number[] };
      else if (a.has('value_int')) c = { elemType: ELEM.INT64, dims: [], data: [a.get('value_int') as number] };
      else if (a.has('value_ints')) c = { elemType: ELEM.INT64, dims: [(a.get('value_ints') as number[]).length], data: a.get('value_ints') as number[] };
      if (c === undefined) throw new Error('unsupported Constant form');
      return [withValue(c.elemType, c.dims, small(c))];
    }
    case 'Cast': {
      const a = x();
      const to = attrInt(node, 'to', ELEM.FLOAT);
      const value = a.value ? { elemType: to, dims: a.value.dims, data: a.value.data.map((v) => castValue(v, to)) } : undefined;
      return [withValue(to, a.dims, value)];
    }
    case 'CastLike': {
      const a = x();
      const to = inp(1).elemType;
      const value = a.value ? { elemType: to, dims: a.value.dims, data: a.value.data.map((v) => castValue(v, to)) } : undefined;
      return [withValue(to, a.dims, value)];
    }
    case 'Shape': {
      const a = x();
      const r = a.dims.length;
      let s = attrInt(node, 'start', 0);
      let e = attrInt(node, 'end', r);
      if (s < 0) s += r;
      if (e < 0) e += r;
      s = Math.min(Math.max(s, 0), r);
      e = Math.min(Math.max(e, 0), r);
      const data = a.dims.slice(s, Math.max(s, e));
      return [{ elemType: ELEM.INT64, dims: [data.length], value: { elemType: ELEM.INT64, dims: [data.length], data } }];
    }
    case 'Size': {
      const n = numelOf(x().dims);
      return [{ elemType: ELEM.INT64, dims: [], value: { elemType: ELEM.INT64, dims: [], data: [n] } }];
    }
    case 'ConstantOfShape': {
      const s = cv(0);
      if (s === undefined) return [undefined];
      const v = node.attrs.get('value') as ConstTensor | undefined;
      const elemType = v?.elemType ?? ELEM.FLOAT;
      const fill = v?.data[0] ?? 0;
      const n = numelOf(s.data);
      return [withValue(elemType, s.data, n <= MAX_CONST_ELEMENTS ? { elemType, dims: s.data, data: new Array<number>(n).fill(fill) } : undefined)];
    }
    case 'Range': {
      const cs = allConst();
      if (cs === undefined) return [undefined];
      const [st, lim, dl] = cs.map((c) => c.data[0]!) as [number, number, number];
      const n = Math.max(Math.ceil((lim - st) / dl), 0);
      const data = Array.from({ length: n }, (_, i) => st + i * dl);
      return [withValue(x().elemType, [n], { elemType: x().elemType, dims: [n], data })];
    }
    case 'Reshape': {
      const a = x();
      const s = cv(1);
      if (s === undefined) return [undefined];
      const allowZero = attrInt(node, 'allowzero', 0) === 1;
      const dims = s.data.map((d, i) => (d === 0 && !allowZero ? a.dims[i]! : d));
      const neg = dims.indexOf(-1);
      if (neg >= 0) {
        const rest = numelOf(dims.filter((_, i) => i !== neg));
        dims[neg] = rest === 0 ? 0 : numelOf(a.dims) / rest;
      }
      if (numelOf(dims) !== numelOf(a.dims) || dims.some((d) => !Number.isInteger(d) || d < 0)) {
        throw new Error(`cannot reshape [${a.dims.join(', ')}] to [${s.data.join(', ')}]`);
      }
      return [withValue(a.elemType, dims, a.value ? { ...a.value, dims } : undefined)];
    }
    case 'Flatten': {
      const a = x();
      const ax = normAxis(attrInt(node, 'axis', 1), a.dims.length + 1);
      const dims = [numelOf(a.dims.slice(0, ax)), numelOf(a.dims.slice(ax))];
      return [withValue(a.elemType, dims, a.value ? { ...a.value, dims } : undefined)];
    }
    case 'Squeeze': {
      const a = x();
      const ax = squeezeAxes(node, opset, constOf);
      if (ax === undefined) return [undefined];
      const axes = ax === null ? a.dims.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0) : ax.map((v) => normAxis(v, a.dims.length));
      const dims = a.dims.filter((_, i) => !axes.includes(i));
      return [withValue(a.elemType, dims, a.value ? { ...a.value, dims } : undefined)];
    }
    case 'Unsqueeze': {
      const a = x();
      const ax = squeezeAxes(node, opset, constOf);
      if (ax === undefined || ax === null) return [undefined];
      const r = a.dims.length + ax.length;
      const axes = ax.map((v) => normAxis(v, r));
      const dims: number[] = [];
      let k = 0;
      for (let i = 0; i < r; i++) dims.push(axes.includes(i) ? 1 : a.dims[k++]!);
      return [withValue(a.elemType, dims, a.value ? { ...a.value, dims } : undefined)];
    }
    case 'Transpose': {
      const a = x();
      const perm = attrInts(node, 'perm', undefined) ?? a.dims.map((_, i) => a.dims.length - 1 - i);
      const dims = perm.map((q) => a.dims[q]!);
      return [withValue(a.elemType, dims, a.value ? transposeConst(a.value, perm) : undefined)];
    }
    case 'Concat': {
      const ins = node.inputs.filter((n) => n !== '').map((n) => get(n)!);
      const r = ins[0]!.dims.length;
      const ax = normAxis(attrInt(node, 'axis', 0), r);
      const dims = [...ins[0]!.dims];
      dims[ax] = ins.reduce((s, v) => s + v.dims[ax]!, 0);
      let value: ConstTensor | undefined;
      if (ins.every((v) => v.value !== undefined) && numelOf(dims) <= MAX_CONST_ELEMENTS) {
        const outer = numelOf(dims.slice(0, ax));
        const data: number[] = [];
        for (let o = 0; o < outer; o++) {
          for (const v of ins) {
            const blk = numelOf(v.dims.slice(ax));
            data.push(...v.value!.data.slice(o * blk, (o + 1) * blk));
          }
        }
        value = { elemType: ins[0]!.elemType, dims, data };
      }
      return [withValue(ins[0]!.elemType, dims, value)];
    }
    case 'Split': {
      const a = x();
      const ax = normAxis(attrInt(node, 'axis', 0), a.dims.length);
      const sizes = splitSizes(node, opset, a.dims[ax]!, constOf);
      if (sizes === undefined) return node.outputs.map(() => undefined);
      return sizes.map((s) => {
        const dims = [...a.dims];
        dims[ax] = s;
        return { elemType: a.elemType, dims };
      });
    }
    case 'Slice': {
      const a = x();
      const st = cv(1);
      const en = cv(2);
      const ax = has(3) ? cv(3) : undefined;
      const sp = has(4) ? cv(4) : undefined;
      if (st === undefined || en === undefined || (has(3) && ax === undefined) || (has(4) && sp === undefined)) return [undefined];
      const res = resolveSlice(a.dims, st.data, en.data, ax?.data, sp?.data);
      const dims = [...a.dims];
      for (const s of res) dims[s.axis] = s.count;
      let value: ConstTensor | undefined;
      if (a.value && a.dims.length === 1 && res.length === 1) {
        const s = res[0]!;
        value = { elemType: a.elemType, dims, data: Array.from({ length: s.count }, (_, i) => a.value!.data[s.start + i * s.step]!) };
      }
      return [withValue(a.elemType, dims, value)];
    }
    case 'Gather': {
      const a = x();
      const idx = inp(1);
      const ax = normAxis(attrInt(node, 'axis', 0), a.dims.length);
      const dims = [...a.dims.slice(0, ax), ...idx.dims, ...a.dims.slice(ax + 1)];
      let value: ConstTensor | undefined;
      if (a.value && idx.value && a.dims.length === 1) {
        const d = a.dims[0]!;
        value = { elemType: a.elemType, dims, data: idx.value.data.map((i) => a.value!.data[i < 0 ? i + d : i]!) };
      }
      return [withValue(a.elemType, dims, value)];
    }
    case 'GatherElements':
      return [{ elemType: x().elemType, dims: inp(1).dims }];
    case 'Expand': {
      const a = x();
      const s = cv(1);
      if (s === undefined) return [undefined];
      const dims = broadcastShapes(a.dims, s.data);
      const value = a.value && numelOf(dims) <= MAX_CONST_ELEMENTS ? elementwise([a.value, { elemType: a.elemType, dims, data: new Array<number>(numelOf(dims)).fill(0) }], a.elemType, (v) => v) : undefined;
      return [withValue(a.elemType, dims, value)];
    }
    case 'Where': {
      const [c, a, b] = [inp(0), inp(1), inp(2)];
      const dims = broadcastShapes(c.dims, a.dims, b.dims);
      const value = c.value && a.value && b.value && numelOf(dims) <= MAX_CONST_ELEMENTS ? elementwise([c.value, a.value, b.value], a.elemType, (cc, aa, bb) => (cc ? aa : bb)) : undefined;
      return [withValue(a.elemType, dims, value)];
    }
    case 'Tile': {
      const a = x();
      const r = cv(1);
      if (r === undefined) return [undefined];
      return [{ elemType: a.elemType, dims: a.dims.map((d, i) => d * r.data[i]!) }];
    }
    case 'Pad': {
      const a = x();
      let pads: readonly number[] | undefined;
      if (opset >= 11) {
        const c = cv(1);
        if (c === undefined) return [undefined];
        pads = c.data;
      } else pads = attrInts(node, 'pads', []);
      const r = a.dims.length;
      const dims = [...a.dims];
      if (opset >= 18 && has(3)) {
        const axc = cv(3);
        if (axc === undefined) return [undefined];
        const axes = axc.data.map((v) => normAxis(v, r));
        axes.forEach((ax, k) => (dims[ax] = a.dims[ax]! + pads![k]! + pads![k + axes.length]!));
      } else for (let i = 0; i < r; i++) dims[i] = a.dims[i]! + pads![i]! + pads![i + r]!;
      return [{ elemType: a.elemType, dims }];
    }
    case 'Resize':
    case 'Upsample': {
      const a = x();
      if (op === 'Upsample') {
        const c = cv(1);
        if (c === undefined) return [undefined];
        return [{ elemType: a.elemType, dims: a.dims.map((d, i) => Math.floor(d * c.data[i]!)) }];
      }
      const dims = resizeOutDims(node, a.dims, constOf);
      return [dims === undefined ? undefined : { elemType: a.elemType, dims }];
    }
    case 'MatMul': {
      const a = x().dims;
      const b = inp(1).dims;
      const a2 = a.length === 1 ? [1, a[0]!] : a;
      const b2 = b.length === 1 ? [b[0]!, 1] : b;
      if (a2[a2.length - 1] !== b2[b2.length - 2]) throw new Error(`MatMul shapes [${a.join(', ')}] and [${b.join(', ')}] do not match`);
      const batch = broadcastShapes(a2.slice(0, -2), b2.slice(0, -2));
      const dims = [...batch];
      if (a.length !== 1) dims.push(a2[a2.length - 2]!);
      if (b.length !== 1) dims.push(b2[b2.length - 1]!);
      return [{ elemType: x().elemType, dims }];
    }
    case 'Gemm': {
      const a = x().dims;
      const b = inp(1).dims;
      const M = attrInt(node, 'transA', 0) ? a[1]! : a[0]!;
      const N = attrInt(node, 'transB', 0) ? b[0]! : b[1]!;
      return [{ elemType: x().elemType, dims: [M, N] }];
    }
    case 'Conv': {
      const a = x().dims;
      const w = inp(1).dims;
      const g = convGeometry(node, a.slice(2), w.slice(2));
      return [{ elemType: x().elemType, dims: [a[0]!, w[0]!, ...g.out] }];
    }
    case 'ConvTranspose': {
      const a = x().dims;
      const w = inp(1).dims;
      const nd = a.length - 2;
      const kernel = attrInts(node, 'kernel_shape', w.slice(2))!;
      const strides = attrInts(node, 'strides', undefined) ?? new Array<number>(nd).fill(1);
      const dil = attrInts(node, 'dilations', undefined) ?? new Array<number>(nd).fill(1);
      const pads = attrInts(node, 'pads', undefined) ?? new Array<number>(2 * nd).fill(0);
      const outPad = attrInts(node, 'output_padding', undefined) ?? new Array<number>(nd).fill(0);
      const outShape = attrInts(node, 'output_shape', undefined);
      const group = attrInt(node, 'group', 1);
      const sp = outShape
        ? outShape.slice(-nd)
        : a.slice(2).map((d, i) => strides[i]! * (d - 1) + outPad[i]! + (kernel[i]! - 1) * dil[i]! + 1 - pads[i]! - pads[i + nd]!);
      return [{ elemType: x().elemType, dims: [a[0]!, w[1]! * group, ...sp] }];
    }
    case 'AveragePool':
    case 'MaxPool':
    case 'LpPool': {
      const a = x().dims;
      const g = convGeometry(node, a.slice(2), undefined, attrInt(node, 'ceil_mode', 0) === 1);
      const out: ValueMeta = { elemType: x().elemType, dims: [a[0]!, a[1]!, ...g.out] };
      return [out, { elemType: ELEM.INT64, dims: out.dims }];
    }
    case 'GlobalAveragePool':
    case 'GlobalMaxPool': {
      const a = x().dims;
      return [{ elemType: x().elemType, dims: [a[0]!, a[1]!, ...a.slice(2).map(() => 1)] }];
    }
    case 'ReduceSum':
    case 'ReduceMean':
    case 'ReduceMax':
    case 'ReduceMin':
    case 'ReduceProd':
    case 'ReduceL1':
    case 'ReduceL2':
    case 'ReduceLogSum':
    case 'ReduceLogSumExp':
    case 'ReduceSumSquare': {
      const a = x();
      const axes = reduceAxes(node, opset, constOf, a.dims.length);
      if (axes === undefined) return [undefined];
      const keep = attrInt(node, 'keepdims', 1) === 1;
      const dims: number[] = [];
      a.dims.forEach((d, i) => {
        if (!axes.includes(i)) dims.push(d);
        else if (keep) dims.push(1);
      });
      return [withValue(a.elemType, dims, a.value ? reduceConst(op, a.value, axes, dims) : undefined)];
    }
    case 'ArgMax':
    case 'ArgMin': {
      const a = x();
      const ax = normAxis(attrInt(node, 'axis', 0), a.dims.length);
      const keep = attrInt(node, 'keepdims', 1) === 1;
      const dims = keep ? a.dims.map((d, i) => (i === ax ? 1 : d)) : a.dims.filter((_, i) => i !== ax);
      return [{ elemType: ELEM.INT64, dims }];
    }
    case 'LayerNormalization': {
      const a = x();
      const ax = normAxis(attrInt(node, 'axis', -1), a.dims.length);
      const stat = a.dims.map((d, i) => (i < ax ? d : 1));
      const stash = attrInt(node, 'stash_type', 1);
      return [{ elemType: a.elemType, dims: a.dims }, { elemType: stash, dims: stat }, { elemType: stash, dims: stat }];
    }
    case 'Dropout': {
      const a = x();
      return [{ elemType: a.elemType, dims: a.dims }, { elemType: ELEM.BOOL, dims: a.dims }];
    }
    case 'OneHot': {
      const idx = inp(0);
      const depth = cv(1);
      if (depth === undefined) return [undefined];
      const r = idx.dims.length + 1;
      const ax = normAxis(attrInt(node, 'axis', -1), r);
      const dims = [...idx.dims];
      dims.splice(ax, 0, depth.data[0]!);
      return [{ elemType: inp(2).elemType, dims }];
    }
    case 'NonZero':
      return [undefined];
    default:
      throw new Error('no shape inference rule');
  }
}
