/**
 * The plain tensor of memscope: a shape and a flat row-major Float32Array.
 * Conversions to `ort.Tensor` happen only in `src/graph/`.
 */

/** A dense float32 tensor, row-major (batch first: `[B, C, H, W]`). */
export interface Tensor {
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Make a tensor, checking that `data` has exactly `numel(dims)` elements; zeros when omitted. */
export function tensor(dims: readonly number[], data?: Float32Array | ArrayLike<number>): Tensor {
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`tensor: dims must be non-negative integers, got [${dims.join(', ')}]`);
  }
  const n = numel(dims);
  const buf = data === undefined ? new Float32Array(n) : data instanceof Float32Array ? data : Float32Array.from(data);
  if (buf.length !== n) throw new Error(`tensor: dims [${dims.join(', ')}] need ${n} elements, data has ${buf.length}`);
  return { dims: [...dims], data: buf };
}

/** Elements per batch row (product of all dims after the first). */
export function rowSize(t: Tensor): number {
  return numel(t.dims.slice(1));
}

/** Batch size (first dim). */
export function batchSize(t: Tensor): number {
  if (t.dims.length === 0) throw new Error('batchSize: scalar tensor has no batch dimension');
  return t.dims[0]!;
}

/** Rows `[start, end)` of the batch as a view sharing memory (do not mutate it). */
export function sliceBatch(t: Tensor, start: number, end: number): Tensor {
  const r = rowSize(t);
  return { dims: [end - start, ...t.dims.slice(1)], data: t.data.subarray(start * r, end * r) };
}

/** Row `i` of the batch as a `[1, ...]` view. */
export function row(t: Tensor, i: number): Tensor {
  return sliceBatch(t, i, i + 1);
}

/** Concatenate tensors along the batch dimension (a new tensor). */
export function concatBatch(ts: readonly Tensor[]): Tensor {
  if (ts.length === 0) throw new Error('concatBatch: need at least one tensor');
  const tail = ts[0]!.dims.slice(1);
  let b = 0;
  for (const t of ts) {
    if (t.dims.length !== tail.length + 1 || t.dims.slice(1).some((d, i) => d !== tail[i])) {
      throw new Error(`concatBatch: shapes differ: [${ts[0]!.dims.join(', ')}] vs [${t.dims.join(', ')}]`);
    }
    b += t.dims[0]!;
  }
  const out = new Float32Array(b * numel(tail));
  let off = 0;
  for (const t of ts) {
    out.set(t.data, off);
    off += t.data.length;
  }
  return { dims: [b, ...tail], data: out };
}

/** Same data, new shape (element count must match). A view. */
export function reshape(t: Tensor, dims: readonly number[]): Tensor {
  if (numel(dims) !== t.data.length) throw new Error(`reshape: cannot view [${t.dims.join(', ')}] as [${dims.join(', ')}]`);
  return { dims: [...dims], data: t.data };
}

/** A deep copy. */
export function clone(t: Tensor): Tensor {
  return { dims: [...t.dims], data: t.data.slice() };
}

/** Throw a clear error unless `t.dims` equals `dims`; `name` names the argument. */
export function assertDims(name: string, t: Tensor, dims: readonly number[]): void {
  if (t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i])) {
    throw new Error(`${name}: expected shape [${dims.join(', ')}], got [${t.dims.join(', ')}]`);
  }
}

/** Throw a clear error naming `name` when any element is NaN or infinite. */
export function assertFinite(name: string, t: Tensor): void {
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    if (!Number.isFinite(d[i]!)) throw new Error(`${name}: non-finite value ${d[i]} at flat index ${i} (shape [${t.dims.join(', ')}])`);
  }
}
