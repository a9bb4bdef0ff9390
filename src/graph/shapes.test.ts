/**
 * Static shape inference against onnxruntime: every intermediate value of graphs that use the
 * supported ops is made a graph output (declared with the inferred element type) and its runtime
 * shape compared with the inferred one; plus constant folding of shape arithmetic, conv/pool
 * geometry, opset differences and the error / unknown-shape paths.
 */
import { afterAll, describe, expect, it } from 'vitest';
import p from 'onnx-proto';
import { GraphBuilder, type DType } from './builder.ts';
import { createSession, disposeAll, type Feed } from './session.ts';
import { ELEM, broadcastShapes, decodeTensor, inferShapes, resolveSlice } from './shapes.ts';

const { onnx } = p;

afterAll(async () => {
  await disposeAll();
});

const DTYPE: Record<number, DType> = { [ELEM.FLOAT]: 'float32', [ELEM.DOUBLE]: 'float64', [ELEM.INT64]: 'int64', [ELEM.INT32]: 'int32', [ELEM.BOOL]: 'bool', [ELEM.UINT8]: 'uint8' };

/** Declare every node output as a graph output, run, and compare runtime dims with inference. */
async function compareWithOrt(b: GraphBuilder, feeds: Record<string, Feed & { dims: readonly number[] }>): Promise<number> {
  const inputShapes = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.dims]));
  const m0 = b.toModel();
  const info = inferShapes(m0, inputShapes);
  const outs = info.nodes.flatMap((n) => n.outputs).filter((o) => o !== '');
  for (const o of outs) expect(info.values.has(o), `shape of '${o}' should be inferred (${info.unknown.get(o)})`).toBe(true);
  m0.graph!.output = outs.map((o) => {
    const v = info.values.get(o)!;
    return onnx.ValueInfoProto.create({ name: o, type: { tensorType: { elemType: v.elemType } } });
  });
  const bytes = onnx.ModelProto.encode(m0).finish();
  const s = await createSession(bytes); // a wrong element type would fail here
  const res = await s.runRaw(feeds);
  for (const o of outs) {
    const v = info.values.get(o)!;
    expect(res[o]!.dims, `dims of '${o}'`).toEqual(v.dims);
    expect(DTYPE[v.elemType], `type of '${o}'`).toBe(res[o]!.type);
    if (v.value !== undefined) expect(Array.from(res[o]!.data as ArrayLike<number | bigint>, Number), `folded value of '${o}'`).toEqual(v.value.data);
  }
  await s.release();
  return outs.length;
}

const f32 = (dims: readonly number[]): Feed & { dims: readonly number[] } => ({ type: 'float32', dims, data: Float32Array.from({ length: dims.reduce((a, c) => a * c, 1) }, (_, i) => Math.sin(i + 1)) });

describe('inferShapes vs onnxruntime', () => {
  it('convolutions, pools, matmuls, norms, resize (opset 17)', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', ['B', 3, 9, 10]);
    const w = b.initializer('w', new Float32Array(4 * 3 * 9), [4, 3, 3, 3]);
    const c1 = b.op('Conv', [x, w], { kernel_shape: [3, 3], pads: [1, 0, 2, 1], strides: [2, 1] });
    const c2 = b.op('Conv', [x, w], { auto_pad: 'SAME_UPPER', strides: [2, 2] });
    const c3 = b.op('Conv', [x, w], { dilations: [2, 3] });
    const dw = b.op('Conv', [c2, b.initializer(undefined, new Float32Array(8 * 9), [8, 1, 3, 3])], { group: 4, pads: [1, 1, 1, 1] });
    b.op('ConvTranspose', [c2, b.initializer(undefined, new Float32Array(4 * 2 * 9), [4, 2, 3, 3])], { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 0] });
    b.op('AveragePool', [x], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 });
    b.opN('MaxPool', [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, { outputs: 2 });
    b.op('GlobalAveragePool', [c3]);
    const flat = b.op('Flatten', [dw], { axis: 1 });
    b.op('Gemm', [flat, b.initializer(undefined, new Float32Array(5 * 8 * 5 * 5), [5, 8 * 5 * 5])], { transB: 1 });
    const seq = b.op('Reshape', [c1, b.constI64([0, 4, -1])]);
    b.op('MatMul', [seq, b.op('Transpose', [seq], { perm: [0, 2, 1] })]);
    b.op('MatMul', [b.op('Unsqueeze', [seq, b.constI64([1])]), b.initializer(undefined, new Float32Array(2 * 45 * 3), [2, 45, 3])]);
    b.op('MatMul', [b.constF32([1, 2, 3, 4]), b.initializer(undefined, new Float32Array(4 * 2), [4, 2])]);
    b.opN('LayerNormalization', [seq, b.constF32(new Array(45).fill(1))], { axis: -1 }, { outputs: 3 });
    b.op('Resize', [x, '', b.constF32([1, 1, 2, 2])], { mode: 'nearest' });
    b.op('Resize', [x, '', '', b.constI64([2, 3, 5, 7])], { mode: 'linear' });
    b.op('ReduceMean', [x], { axes: [1, -1], keepdims: 0 });
    b.op('ReduceSum', [x, b.constI64([2])], { keepdims: 1 });
    b.op('ReduceMax', [x], { keepdims: 0 });
    b.op('ArgMax', [x], { axis: 2, keepdims: 0 });
    b.op('Softmax', [x], { axis: 1 });
    b.op('InstanceNormalization', [x, b.constF32([1, 1, 1]), b.constF32([0, 0, 0])]);
    b.output(c1, 'float32');
    expect(await compareWithOrt(b, { x: f32([2, 3, 9, 10]) })).toBeGreaterThan(25);
  });

  it('shape arithmetic folds (Shape → Gather → Unsqueeze → Concat → Reshape), slicing, gathers, casts (opset 17)', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', ['B', 6, 4]);
    const t = b.input('t', 'int64', [2, 3]);
    const shp = b.op('Shape', [x]);
    const n = b.op('Gather', [shp, b.constI64(0, [])], { axis: 0 });
    const tail = b.op('Shape', [x], { start: -2 });
    const prod = b.op('ReduceProd', [tail], { keepdims: 1 });
    const target = b.op('Concat', [b.op('Unsqueeze', [n, b.constI64([0])]), prod], { axis: 0 });
    const flat = b.op('Reshape', [x, target]);
    b.op('Size', [flat]);
    b.op('Slice', [x, b.constI64([1, -1]), b.constI64([100, -5]), b.constI64([1, 2]), b.constI64([2, -1])]);
    b.op('Slice', [x, b.constI64([-3]), b.constI64([9223372036854775807])]);
    b.opN('Split', [x, b.constI64([1, 2, 3])], { axis: 1 }, { outputs: 3 });
    b.opN('Split', [x], { axis: 2 }, { outputs: 2 });
    b.op('Gather', [x, t], { axis: 1 });
    b.op('Gather', [x, b.constI64(-1, [])], { axis: 2 });
    b.op('Squeeze', [b.op('Unsqueeze', [x, b.constI64([0, -1])])]);
    b.op('Expand', [b.op('Slice', [x, b.constI64([0]), b.constI64([1]), b.constI64([1])]), b.constI64([2, 1, 6, 1])]);
    b.op('Tile', [x, b.constI64([1, 2, 3])]);
    b.op('Pad', [x, b.constI64([0, 1, 0, 0, 2, 3])]);
    b.op('Where', [b.op('Greater', [x, b.constF32(0)]), x, b.constF32([1, 2, 3, 4])]);
    b.op('Cast', [b.op('Mul', [x, b.constF32(3)])], { to: 7 });
    b.op('Cast', [shp], { to: 1 });
    const r = b.op('Range', [b.constI64(0, []), b.op('Gather', [shp, b.constI64(1, [])]), b.constI64(2, [])]);
    b.op('Add', [r, b.constI64([10])]);
    b.op('ConstantOfShape', [target], { value: { kind: 'tensor', data: Float32Array.of(2), dims: [1] } });
    b.op('OneHot', [t, b.constI64(5, []), b.constF32([0, 1])], { axis: 1 });
    b.op('Constant', [], { value: { kind: 'tensor', data: BigInt64Array.of(3n, 4n), dims: [2] } });
    b.op('Transpose', [x]);
    b.op('Equal', [t, b.constI64([1])]);
    b.output(flat, 'float32');
    const feeds = { x: f32([2, 6, 4]), t: { type: 'int64' as const, dims: [2, 3], data: BigInt64Array.of(0n, 5n, 2n, 1n, 1n, 3n) } };
    expect(await compareWithOrt(b, feeds)).toBeGreaterThan(30);
  });

  it('opset 18: reduce axes as inputs, Split num_outputs (uneven), Pad axes, Resize axes', async () => {
    const b = new GraphBuilder({ opset: 18 });
    const x = b.input('x', 'float32', [2, 7, 3, 3]);
    b.op('ReduceMean', [x, b.constI64([1, 3])], { keepdims: 1 });
    b.op('ReduceMax', [x], { keepdims: 1 });
    b.op('ReduceMean', [x, b.constI64([])], { keepdims: 0, noop_with_empty_axes: 1 });
    b.opN('Split', [x], { axis: 1, num_outputs: 3 }, { outputs: 3 });
    b.op('Pad', [x, b.constI64([1, 2, 3, 4]), '', b.constI64([1, 3])]);
    b.op('Resize', [x, '', b.constF32([2, 3])], { mode: 'nearest', axes: [2, 3] });
    b.output(x, 'float32', undefined, 'copy');
    expect(await compareWithOrt(b, { x: f32([2, 7, 3, 3]) })).toBeGreaterThan(6);
  });
});

describe('inferShapes: folding, errors and unknowns', () => {
  it('folds shape arithmetic to constants and keeps small initializer values', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', ['B', 5]);
    const s = b.op('Shape', [x]);
    const d = b.op('Div', [b.op('Mul', [s, b.constI64([3, 2])]), b.constI64([2, 4])]);
    b.output(d, 'int64');
    const info = inferShapes(b.toBytes(), { x: [7, 5] });
    expect(info.values.get(s)!.value!.data).toEqual([7, 5]);
    expect(info.values.get(d)!.value!.data).toEqual([10, 2]); // integer division truncates
    expect(info.opset).toBe(17);
    expect(info.nodes.map((n) => n.opType)).toEqual(['Shape', 'Mul', 'Div']);
  });

  it('checks the given input shapes', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', ['B', 5]);
    b.output(b.op('Neg', [x]), 'float32');
    expect(() => inferShapes(b.toBytes(), {})).toThrow(/no shape given for graph input 'x'/);
    expect(() => inferShapes(b.toBytes(), { x: [2, 4] })).toThrow(/fixed dim 1 = 5/);
    expect(() => inferShapes(b.toBytes(), { x: [2, 5, 1] })).toThrow(/declared with rank 2/);
  });

  it('reports why a shape is unknown (unknown ops, data-dependent shapes) and propagates it', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [4]);
    const nz = b.op('NonZero', [x]);
    const y = b.op('Neg', [b.op('MysteryOp', [x], {}, { domain: 'com.example', name: 'mystery' })]);
    const z = b.op('Reshape', [x, b.op('Cast', [b.op('Abs', [x])], { to: 7 })]);
    b.output(y, 'float32');
    const info = inferShapes(b.toBytes(), { x: [4] });
    expect(info.unknown.get(nz)).toMatch(/NonZero/);
    expect(info.unknown.get(y)).toMatch(/op 'com.example.MysteryOp' \(node 'mystery'\)/);
    expect(info.values.has(z)).toBe(false);
  });

  it('decodes tensors from raw bytes and from typed fields', () => {
    expect(decodeTensor({ dims: [2], dataType: ELEM.FLOAT, floatData: [1.5, -2] })).toEqual({ elemType: ELEM.FLOAT, dims: [2], data: [1.5, -2] });
    expect(decodeTensor({ dims: [3], dataType: ELEM.INT64, int64Data: [1, -2, 3] }).data).toEqual([1, -2, 3]);
    expect(decodeTensor({ dims: [1, 2], dataType: ELEM.DOUBLE, rawData: new Uint8Array(Float64Array.of(0.25, 8).buffer) }).data).toEqual([0.25, 8]);
    expect(decodeTensor({ dims: [2], dataType: ELEM.INT64, rawData: new Uint8Array(BigInt64Array.of(-5n, 7n).buffer) }).data).toEqual([-5, 7]);
    expect(decodeTensor({ dims: [1], dataType: ELEM.FLOAT16, rawData: Uint8Array.of(0x00, 0x3c) }).data).toEqual([1]);
    expect(() => decodeTensor({ name: 'w', dims: [3], dataType: ELEM.FLOAT, floatData: [1] })).toThrow(/'w' has dims \[3\] but 1 values/);
  });

  it('slice and broadcast helpers follow ONNX semantics', () => {
    expect(resolveSlice([10], [-3], [100], undefined, undefined)).toEqual([{ axis: 0, start: 7, step: 1, count: 3 }]);
    expect(resolveSlice([10], [100], [-100], [0], [-3])).toEqual([{ axis: 0, start: 9, step: -3, count: 4 }]);
    expect(resolveSlice([4, 5], [1], [0], [-1], [1])).toEqual([{ axis: 1, start: 1, step: 1, count: 0 }]);
    expect(broadcastShapes([2, 1, 4], [3, 1], [])).toEqual([2, 3, 4]);
    expect(() => broadcastShapes([2, 3], [4])).toThrow(/cannot broadcast/);
  });
});
