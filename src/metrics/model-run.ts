/**
 * Helpers shared by the feature extractors that run user-supplied ONNX models on images
 * (`clip.ts`, `inception.ts`, `descriptor.ts`): reading declared input/output shapes, checking
 * image batches, caching preprocessing sessions, running a model whose input fixes the batch
 * size (zero-padded batches), and running inputs in chunks into one `[n, D]` result.
 */
import type { Session, ValueInfo } from '../graph/session.ts';
import type { Tensor } from '../tensor/tensor.ts';

/** The declared shape of `v` as text (`[B, 3, 224, 224]`), or `(unknown)` when it declares none. */
export function shapeText(v: ValueInfo): string {
  return v.shape === null ? '(unknown)' : `[${v.shape.join(', ')}]`;
}

/** The fixed (positive numeric) size `v` declares on `axis`, or null when it is symbolic, absent or unknown. */
export function fixedDim(v: ValueInfo, axis: number): number | null {
  const d = v.shape?.[axis];
  return typeof d === 'number' && d > 0 ? d : null;
}

/**
 * `images` checked to be `[n, C, H, W]` with C = 1 (grey) or 3 (RGB), as `[n, c, h, w]`. Throws
 * an error starting with `what` otherwise.
 */
export function checkImageBatch(what: string, images: Tensor): [n: number, c: 1 | 3, h: number, w: number] {
  if (images.dims.length !== 4) throw new Error(`${what}: images must be [n, C, H, W], got [${images.dims.join(', ')}]`);
  const [n, c, h, w] = images.dims as [number, number, number, number];
  if (c !== 1 && c !== 3) throw new Error(`${what}: images must have 1 (grey) or 3 (RGB) channels, got ${c}`);
  return [n, c, h, w];
}

/** Rows `[start, end)` of a batch `t` `[n, ...]` (a view of its data, not a copy). */
export function batchRows(t: Tensor, start: number, end: number): Tensor {
  const n = t.dims[0] ?? 0;
  const row = n === 0 ? 0 : t.data.length / n;
  return { dims: [end - start, ...t.dims.slice(1)], data: t.data.subarray(start * row, end * row) };
}

/** Sessions built on demand and kept by key (e.g. one preprocessing graph per input size). */
export interface SessionCache {
  /** The session stored under `key`, built with `make` (and stored) the first time. */
  get(key: string, make: () => Promise<Session>): Promise<Session>;
  /** Release every stored session and forget them. */
  release(): Promise<void>;
}

/** A new, empty {@link SessionCache}. */
export function sessionCache(): SessionCache {
  const sessions = new Map<string, Session>();
  return {
    async get(key: string, make: () => Promise<Session>): Promise<Session> {
      let s = sessions.get(key);
      if (s === undefined) {
        s = await make();
        sessions.set(key, s);
      }
      return s;
    },
    async release(): Promise<void> {
      for (const s of sessions.values()) await s.release();
      sessions.clear();
    },
  };
}

/**
 * Run a model on the batch `x` `[n, ...]` (n ≤ `fixedBatch`) through `run`, first padding it with
 * zero rows to `fixedBatch` rows when the model declares that fixed batch size and n differs.
 * `run` gets the fed batch and returns the model output, checked against the fed batch (its first
 * axis must be the fed row count; throw otherwise). The result is the output's first n rows as
 * `[n, D]`, D = the output's second axis (trailing axes of size 1 are flattened into the rows;
 * the padding rows are dropped).
 */
export async function runFixedBatch(x: Tensor, fixedBatch: number | null, run: (feed: Tensor) => Promise<Tensor>): Promise<Tensor> {
  const n = x.dims[0]!;
  let feed = x;
  if (fixedBatch !== null && n !== fixedBatch) {
    const data = new Float32Array(fixedBatch * (x.data.length / n));
    data.set(x.data);
    feed = { dims: [fixedBatch, ...x.dims.slice(1)], data };
  }
  const y = await run(feed);
  const d = y.dims[1]!;
  return { dims: [n, d], data: n === y.dims[0] ? y.data : y.data.slice(0, n * d) };
}

/**
 * Embed `n` inputs in chunks of at most `chunk`: `runChunk(start, end)` returns the `[end − start, D]`
 * rows of inputs `[start, end)`, collected into one `[n, D]` tensor. D is `dim` when known, else
 * the first chunk's column count (`[0, 0]` when n = 0 and D is unknown); a chunk with a different
 * column count throws `mismatch(got, expected)`.
 */
export async function runInChunks(
  n: number,
  chunk: number,
  dim: number | null,
  runChunk: (start: number, end: number) => Promise<Tensor>,
  mismatch: (got: number, expected: number) => Error,
): Promise<Tensor> {
  let d = dim;
  let res: Float32Array | null = d === null ? null : new Float32Array(n * d);
  for (let s = 0; s < n; s += chunk) {
    const y = await runChunk(s, Math.min(n, s + chunk));
    if (d === null) d = y.dims[1]!;
    if (y.dims[1] !== d) throw mismatch(y.dims[1]!, d);
    res ??= new Float32Array(n * d);
    res.set(y.data, s * d);
  }
  return { dims: [n, d ?? 0], data: res ?? new Float32Array(0) };
}

/** How {@link embedImageChunks} and {@link preprocessImages} turn images into model outputs. */
export interface ImageModelRun {
  /** Label that starts image-shape errors (see {@link checkImageBatch}). */
  readonly what: string;
  /** The preprocessing session (input `x` `[B, c, h, w]`, output `y`) for `c`×`h`×`w` images. */
  prep(c: 1 | 3, h: number, w: number): Promise<Session>;
  /** Images per model run. */
  readonly chunk: number;
  /** The model on one preprocessed batch, `[rows, D]` (e.g. through {@link runFixedBatch}). */
  run(x: Tensor): Promise<Tensor>;
  /** The error for a batch whose output has `got` columns instead of `expected`. */
  mismatch(got: number, expected: number): Error;
}

/** The model input for `images` `[n, 1|3, H, W]`: `r.prep`'s session run on the whole batch. */
export async function preprocessImages(images: Tensor, r: ImageModelRun): Promise<Tensor> {
  const [, c, h, w] = checkImageBatch(r.what, images);
  return (await (await r.prep(c, h, w)).run({ x: images }))['y']!;
}

/**
 * Model outputs `[n, D]` of `images` `[n, 1|3, H, W]`: checked, preprocessed and run through
 * `r.run` in chunks of `r.chunk` (see {@link runInChunks}; `dim` = D when known, else taken from
 * the first chunk).
 */
export async function embedImageChunks(images: Tensor, dim: number | null, r: ImageModelRun): Promise<Tensor> {
  const [n, c, h, w] = checkImageBatch(r.what, images);
  const p = await r.prep(c, h, w);
  return runInChunks(n, r.chunk, dim, async (s, e) => r.run((await p.run({ x: batchRows(images, s, e) }))['y']!), r.mismatch);
}
