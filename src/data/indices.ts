/**
 * Index helpers for datasets: per-class index lists, class counts, seeded sampling without
 * replacement and row gathering. Sampling uses an explicit PRNG (mulberry32) keyed by a
 * seed, so the same arguments give the same indices on every machine; nothing here reads
 * `Math.random`.
 */
import { type Tensor, batchSize, rowSize } from '../tensor/tensor.ts';
import { mulberry32 } from '../random/mulberry32.ts';

function checkLabel(l: number, i: number, numClasses: number | undefined): void {
  if (!Number.isInteger(l) || l < 0) throw new Error(`labels: element ${i} is ${l}, not a non-negative integer`);
  if (numClasses !== undefined && l >= numClasses) throw new Error(`labels: element ${i} is ${l}, outside 0..${numClasses - 1}`);
}

function checkNumClasses(numClasses: number | undefined): void {
  if (numClasses !== undefined && (!Number.isInteger(numClasses) || numClasses < 0)) {
    throw new Error(`numClasses: must be a non-negative integer, got ${numClasses}`);
  }
}

/**
 * `out[c]` = the indices `i` (ascending) with `labels[i] === c`. The result has
 * `numClasses` entries (default: max label + 1), empty lists for absent classes. Throws
 * when a label is not a non-negative integer or is ≥ `numClasses`.
 */
export function classIndices(labels: ArrayLike<number>, numClasses?: number): number[][] {
  checkNumClasses(numClasses);
  let k = numClasses ?? 0;
  for (let i = 0; i < labels.length; i++) {
    checkLabel(labels[i]!, i, numClasses);
    if (numClasses === undefined && labels[i]! + 1 > k) k = labels[i]! + 1;
  }
  const out: number[][] = Array.from({ length: k }, () => []);
  for (let i = 0; i < labels.length; i++) out[labels[i]!]!.push(i);
  return out;
}

/** `out[c]` = how many labels equal `c` (length `numClasses`, default max label + 1). */
export function classCounts(labels: ArrayLike<number>, numClasses?: number): number[] {
  return classIndices(labels, numClasses).map((l) => l.length);
}

/**
 * `k` distinct elements drawn uniformly without replacement, deterministically from `seed`
 * (mulberry32 + partial Fisher–Yates), in draw order (sort them if you need ascending).
 * `from` is either a count `n` (draw from `0..n−1`) or a list of indices to draw from
 * (e.g. one entry of {@link classIndices}). Throws when `k` exceeds the pool.
 */
export function sampleIndices(from: number | readonly number[], k: number, seed: number): number[] {
  let pool: number[];
  if (typeof from === 'number') {
    if (!Number.isInteger(from) || from < 0) throw new Error(`sampleIndices: from must be a non-negative integer count or an index list, got ${from}`);
    pool = Array.from({ length: from }, (_, i) => i);
  } else {
    pool = [...from];
  }
  if (!Number.isInteger(k) || k < 0) throw new Error(`sampleIndices: k must be a non-negative integer, got ${k}`);
  if (k > pool.length) throw new Error(`sampleIndices: k = ${k} exceeds the ${pool.length} available indices`);
  const rnd = mulberry32(seed);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rnd() * (pool.length - i));
    const t = pool[i]!;
    pool[i] = pool[j]!;
    pool[j] = t;
  }
  return pool.slice(0, k);
}

/** A new tensor made of the batch rows `indices` of `t`, in that order (repeats allowed). */
export function takeRows(t: Tensor, indices: readonly number[]): Tensor {
  const n = batchSize(t);
  const r = rowSize(t);
  const out = new Float32Array(indices.length * r);
  indices.forEach((idx, j) => {
    if (!Number.isInteger(idx) || idx < 0 || idx >= n) throw new Error(`takeRows: index ${idx} (position ${j}) is outside 0..${n - 1}`);
    out.set(t.data.subarray(idx * r, (idx + 1) * r), j * r);
  });
  return { dims: [indices.length, ...t.dims.slice(1)], data: out };
}
