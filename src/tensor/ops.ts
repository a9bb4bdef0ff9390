/**
 * Pure element-wise and reduction ops on tensors. Every function returns a new tensor unless
 * its name ends in `InPlace`. Reductions accumulate in float64. These are single passes over
 * memory; matrix products go through `src/graph/` (onnxruntime).
 */
import { type Tensor, rowSize, batchSize } from './tensor.ts';

function same(a: Tensor, b: Tensor, op: string): void {
  if (a.data.length !== b.data.length) throw new Error(`${op}: sizes differ ([${a.dims.join(', ')}] vs [${b.dims.join(', ')}])`);
}

/** `a + b`. */
export function add(a: Tensor, b: Tensor): Tensor {
  same(a, b, 'add');
  const o = new Float32Array(a.data.length);
  for (let i = 0; i < o.length; i++) o[i] = a.data[i]! + b.data[i]!;
  return { dims: [...a.dims], data: o };
}

/** `a − b`. */
export function sub(a: Tensor, b: Tensor): Tensor {
  same(a, b, 'sub');
  const o = new Float32Array(a.data.length);
  for (let i = 0; i < o.length; i++) o[i] = a.data[i]! - b.data[i]!;
  return { dims: [...a.dims], data: o };
}

/** `k · a`. */
export function scale(a: Tensor, k: number): Tensor {
  const o = new Float32Array(a.data.length);
  for (let i = 0; i < o.length; i++) o[i] = k * a.data[i]!;
  return { dims: [...a.dims], data: o };
}

/** `α·a + β·b` (a linear combination, computed in float64 per element). */
export function axpby(alpha: number, a: Tensor, beta: number, b: Tensor): Tensor {
  same(a, b, 'axpby');
  const o = new Float32Array(a.data.length);
  for (let i = 0; i < o.length; i++) o[i] = alpha * a.data[i]! + beta * b.data[i]!;
  return { dims: [...a.dims], data: o };
}

/** `y += α·x` in place. */
export function axpyInPlace(y: Tensor, alpha: number, x: Tensor): void {
  same(y, x, 'axpyInPlace');
  for (let i = 0; i < y.data.length; i++) y.data[i] = y.data[i]! + alpha * x.data[i]!;
}

/** ⟨a, b⟩ over all elements (float64 accumulation). */
export function dot(a: Tensor | Float32Array, b: Tensor | Float32Array): number {
  const x = a instanceof Float32Array ? a : a.data;
  const y = b instanceof Float32Array ? b : b.data;
  if (x.length !== y.length) throw new Error(`dot: sizes differ (${x.length} vs ${y.length})`);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * y[i]!;
  return s;
}

/** ‖a‖² over all elements. */
export function sqNorm(a: Tensor | Float32Array): number {
  return dot(a, a);
}

/** ‖a − b‖² over all elements. */
export function sqDist(a: Tensor | Float32Array, b: Tensor | Float32Array): number {
  const x = a instanceof Float32Array ? a : a.data;
  const y = b instanceof Float32Array ? b : b.data;
  if (x.length !== y.length) throw new Error(`sqDist: sizes differ (${x.length} vs ${y.length})`);
  let s = 0;
  for (let i = 0; i < x.length; i++) {
    const d = x[i]! - y[i]!;
    s += d * d;
  }
  return s;
}

/** cos(a, b) = ⟨a,b⟩/(‖a‖‖b‖); 0 when either is the zero vector. */
export function cosine(a: Tensor | Float32Array, b: Tensor | Float32Array): number {
  const ab = dot(a, b);
  const n = Math.sqrt(sqNorm(a) * sqNorm(b));
  return n === 0 ? 0 : ab / n;
}

/** Per-row ‖a_b − b_b‖² of two batched tensors (`[B, ...]`), float64. */
export function rowSqDist(a: Tensor, b: Tensor): Float64Array {
  same(a, b, 'rowSqDist');
  const r = rowSize(a);
  const n = batchSize(a);
  const o = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    let s = 0;
    const off = k * r;
    for (let i = 0; i < r; i++) {
      const d = a.data[off + i]! - b.data[off + i]!;
      s += d * d;
    }
    o[k] = s;
  }
  return o;
}

/** Mean over the batch dimension: `[B, ...] → [1, ...]`. */
export function meanBatch(a: Tensor): Tensor {
  const r = rowSize(a);
  const n = batchSize(a);
  const acc = new Float64Array(r);
  for (let k = 0; k < n; k++) for (let i = 0; i < r; i++) acc[i] = acc[i]! + a.data[k * r + i]!;
  const o = new Float32Array(r);
  for (let i = 0; i < r; i++) o[i] = acc[i]! / n;
  return { dims: [1, ...a.dims.slice(1)], data: o };
}

/** Mean of all elements. */
export function mean(a: Tensor | Float32Array): number {
  const x = a instanceof Float32Array ? a : a.data;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return x.length === 0 ? NaN : s / x.length;
}
