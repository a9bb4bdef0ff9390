/**
 * The linear Gaussian denoiser (SPEC §2.2): fit μ and Σ from data, one symmetric
 * eigendecomposition Σ = V diag(λ) Vᵀ for all σ, and
 *
 *   D_lin(y;σ) = μ + Σ(Σ+σ²I)⁻¹(y−μ) = μ + V diag(λ/(λ+σ²)) Vᵀ(y−μ),
 *   ε = (x_t − √ᾱ·D_lin)/√(1−ᾱ)  with y = x_t/√ᾱ, σ² = (1−ᾱ)/ᾱ.
 *
 * The projections run as onnxruntime MatMuls. Eigendecompositions are slow in JS (a 784×784
 * takes seconds), so {@link eighCached} keeps them on disk under
 * `${MEMSCOPE_CACHE ?? '.cache/memscope'}`, keyed by a SHA-256 of the data, written atomically.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync, unlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { type CondRef, type ConditionInfo, type Denoiser, type NoiseLevel, type Space, checkConds } from './denoiser.ts';
import { type Tensor, assertFinite, numel } from '../tensor/tensor.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { type Session, createSession, defaultThreads, getSession } from '../graph/session.ts';

// ---------------------------------------------------------------------------------------------
// symmetric eigendecomposition

/** Result of {@link eigh}: ascending eigenvalues and orthonormal eigenvectors. */
export interface Eigh {
  /** Dimension n. */
  readonly n: number;
  /** Eigenvalues λ_0 ≤ … ≤ λ_{n−1}. */
  readonly values: Float64Array;
  /**
   * Eigenvectors, one per row: `vectorsT[j·n + k]` is component k of the eigenvector of
   * `values[j]` (i.e. Vᵀ row-major, so that A = V diag(λ) Vᵀ).
   */
  readonly vectorsT: Float64Array;
}

/**
 * Symmetric eigendecomposition of the `n×n` row-major matrix `A` (only its lower triangle is
 * read): Householder tridiagonalisation then implicit QL (the EISPACK tred2/tql2 algorithms, as
 * in JAMA and ml-matrix), on flat Float64Arrays laid out so that every O(n³) loop is contiguous.
 * About 1.9× faster than ml-matrix's `EigenvalueDecomposition` (784×784: ≈ 1.7 s vs 3.2 s on the
 * reference machine; `bench/empirical.ts` measures both). {@link eighMany} runs several in parallel.
 */
export function eigh(A: Float64Array, n: number): Eigh {
  if (A.length !== n * n) throw new Error(`eigh: expected ${n}×${n} = ${n * n} values, got ${A.length}`);
  // t[j*n + k] = V[k][j]   (column-major V)
  const t = new Float64Array(n * n);
  for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) t[j * n + k] = A[k * n + j]!;
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tred2(t, d, e, n);
  tql2(t, d, e, n);
  // sort ascending (tql2 leaves them nearly sorted)
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => d[a]! - d[b]!);
  const values = new Float64Array(n);
  const vectorsT = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = d[src]!;
    vectorsT.set(t.subarray(src * n, (src + 1) * n), dst * n);
  });
  return { n, values, vectorsT };
}

function tred2(t: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  // V[r][c] ≡ t[c*n + r]
  for (let j = 0; j < n; j++) d[j] = t[j * n + (n - 1)]!;
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
    if (scale === 0) {
      e[i] = d[i - 1]!;
      for (let j = 0; j < i; j++) {
        d[j] = t[j * n + (i - 1)]!;
        t[j * n + i] = 0;
        t[i * n + j] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k]! /= scale;
        h += d[k]! * d[k]!;
      }
      let f = d[i - 1]!;
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        t[i * n + j] = f; // V[j][i]
        const col = j * n;
        g = e[j]! + t[col + j]! * f;
        for (let k = j + 1; k <= i - 1; k++) {
          const v = t[col + k]!;
          g += v * d[k]!;
          e[k]! += v * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j]! /= h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j]! -= hh * d[j]!;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        g = e[j]!;
        const col = j * n;
        for (let k = j; k <= i - 1; k++) t[col + k]! -= f * e[k]! + g * d[k]!;
        d[j] = t[col + (i - 1)]!;
        t[col + i] = 0;
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    t[i * n + (n - 1)] = t[i * n + i]!;
    t[i * n + i] = 1;
    const h = d[i + 1]!;
    const c1 = (i + 1) * n;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = t[c1 + k]! / h;
      for (let j = 0; j <= i; j++) {
        const cj = j * n;
        let g = 0;
        for (let k = 0; k <= i; k++) g += t[c1 + k]! * t[cj + k]!;
        for (let k = 0; k <= i; k++) t[cj + k]! -= g * d[k]!;
      }
    }
    for (let k = 0; k <= i; k++) t[c1 + k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = t[j * n + (n - 1)]!;
    t[j * n + (n - 1)] = 0;
  }
  t[(n - 1) * n + (n - 1)] = 1;
  e[0] = 0;
}

/**
 * Implicit QL on the tridiagonal (d, e). The Givens rotations do not depend on the eigenvectors,
 * so they are recorded (column index, c, s) and applied afterwards by {@link applyRotations}, in
 * blocks of the other index — the same arithmetic as EISPACK's tql2, in the same order for every
 * element (measured: as fast as the interleaved form; it leaves room to split the blocks).
 */
function tql2(t: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  // growable rotation log (plain arrays: this function's source also runs in worker threads)
  let rIdx = new Int32Array(1 << 16);
  let rCs = new Float64Array(1 << 17);
  let rLen = 0;
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]!) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 60) throw new Error('eigh: QL iteration did not converge');
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i]! -= h;
        f += h;
        p = d[m]!;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          if (rLen === rIdx.length) {
            const ni = new Int32Array(rIdx.length * 2);
            ni.set(rIdx);
            const nc = new Float64Array(rCs.length * 2);
            nc.set(rCs);
            rIdx = ni;
            rCs = nc;
          }
          rIdx[rLen] = i;
          rCs[2 * rLen] = c;
          rCs[2 * rLen + 1] = s;
          rLen++;
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
  applyRotations(t, n, rIdx.subarray(0, rLen), rCs.subarray(0, 2 * rLen), 0, n);
}

/**
 * Apply recorded rotations to columns i, i+1 of V (stored as t[col·n + k]) for k in [k0, k1),
 * in blocks of 48 values of k so that the touched part of V stays in cache.
 */
function applyRotations(t: Float64Array, n: number, idx: Int32Array, cs: Float64Array, k0: number, k1: number): void {
  const R = idx.length;
  const BS = 48;
  for (let kb = k0; kb < k1; kb += BS) {
    const ke = Math.min(kb + BS, k1);
    for (let q = 0; q < R; q++) {
      const a = idx[q]! * n;
      const b = a + n;
      const c = cs[2 * q]!;
      const s = cs[2 * q + 1]!;
      for (let k = kb; k < ke; k++) {
        const hv = t[b + k]!;
        const va = t[a + k]!;
        t[b + k] = s * va + c * hv;
        t[a + k] = c * va - s * hv;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// disk cache

/** The cache directory: `MEMSCOPE_CACHE` or `.cache/memscope` (relative to the working directory). */
export function cacheDir(): string {
  const env = process.env['MEMSCOPE_CACHE'];
  return env !== undefined && env !== '' ? env : join('.cache', 'memscope');
}

/** SHA-256 (hex) of typed-array bytes and optional extra strings — the cache key of the data. */
export function hashData(parts: readonly (ArrayBufferView | string)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(typeof p === 'string' ? p : new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
  return h.digest('hex');
}

const MAGIC = 'MSEIGH01';

function writeAtomic(path: string, data: Uint8Array): void {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(tmp, data);
  try {
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
}

function readEigh(path: string, n: number): Eigh | null {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch {
    return null;
  }
  const need = 16 + 8 * (n + n * n);
  if (buf.length !== need || buf.toString('latin1', 0, 8) !== MAGIC || buf.readUInt32LE(8) !== n) return null;
  const ab = buf.buffer.slice(buf.byteOffset + 16, buf.byteOffset + need);
  const all = new Float64Array(ab);
  return { n, values: all.slice(0, n), vectorsT: all.slice(n) };
}

/** Statistics of the eigendecomposition cache (for benchmarks and tests). */
export const eighStats = { hits: 0, misses: 0, computeMs: 0 };

function writeEigh(path: string, dir: string, r: Eigh): void {
  const n = r.n;
  mkdirSync(dir, { recursive: true });
  const buf = Buffer.alloc(16 + 8 * (n + n * n));
  buf.write(MAGIC, 0, 'latin1');
  buf.writeUInt32LE(n, 8);
  const f = new Float64Array(buf.buffer, buf.byteOffset + 16, n + n * n);
  f.set(r.values, 0);
  f.set(r.vectorsT, n);
  writeAtomic(path, buf);
}

function clampValues(r: Eigh): Eigh {
  const v = r.values;
  for (let i = 0; i < v.length; i++) if (v[i]! < 0) v[i] = 0;
  return r;
}

/** Options of {@link eighCached} / {@link eighCachedMany}. */
export interface EighCacheOptions {
  /** Cache key (default: SHA-256 of the matrix). */
  readonly key?: string;
  /** Use the disk cache (default true). */
  readonly cache?: boolean;
  /** Clamp eigenvalues below 0 (round-off of a PSD matrix) to 0 (default true). */
  readonly clamp?: boolean;
}

/**
 * {@link eigh} with a disk cache: the result for `key` (default: SHA-256 of `A`) is read from
 * `${cacheDir()}/eigh-<key>.bin` when present, else computed and written atomically (tmp file +
 * rename). Eigenvalues below 0 (round-off of a PSD matrix) are clamped to 0 when `clamp` (default
 * true). Set `cache: false` to bypass the disk.
 */
export function eighCached(A: Float64Array, n: number, opts: EighCacheOptions = {}): Eigh {
  const useCache = opts.cache ?? true;
  const key = opts.key ?? hashData([A, `n=${n}`]);
  const dir = cacheDir();
  const path = join(dir, `eigh-${key}.bin`);
  let r = useCache ? readEigh(path, n) : null;
  if (r !== null) eighStats.hits++;
  else {
    eighStats.misses++;
    const t0 = performance.now();
    r = eigh(A, n);
    eighStats.computeMs += performance.now() - t0;
    if (useCache) writeEigh(path, dir, r);
  }
  return opts.clamp ?? true ? clampValues(r) : r;
}

/**
 * Several cached eigendecompositions of `n×n` matrices: cache hits are read from disk, the
 * misses computed in parallel by {@link eighMany} (worker threads) and written atomically.
 */
export async function eighCachedMany(items: readonly { readonly A: Float64Array; readonly key?: string }[], n: number, opts: { cache?: boolean; clamp?: boolean; workers?: number } = {}): Promise<Eigh[]> {
  const useCache = opts.cache ?? true;
  const dir = cacheDir();
  const paths = items.map((it) => join(dir, `eigh-${it.key ?? hashData([it.A, `n=${n}`])}.bin`));
  const out: (Eigh | null)[] = paths.map((p) => (useCache ? readEigh(p, n) : null));
  const miss = out.flatMap((r, i) => (r === null ? [i] : []));
  eighStats.hits += items.length - miss.length;
  eighStats.misses += miss.length;
  if (miss.length > 0) {
    const t0 = performance.now();
    const done = await eighMany(
      miss.map((i) => items[i]!.A),
      n,
      opts.workers === undefined ? {} : { workers: opts.workers },
    );
    eighStats.computeMs += performance.now() - t0;
    miss.forEach((i, k) => {
      out[i] = done[k]!;
      if (useCache) writeEigh(paths[i]!, dir, done[k]!);
    });
  }
  return out.map((r) => (opts.clamp ?? true ? clampValues(r!) : r!));
}

function workerSource(): string {
  // the algorithm functions are self-contained (they use only Math and typed arrays), so their
  // compiled source runs as is in an eval'd worker; __name guards against bundler name helpers
  return [
    "'use strict';",
    'var __name = (f) => f;',
    tred2.toString(),
    tql2.toString(),
    applyRotations.toString(),
    eigh.toString(),
    "const { parentPort } = require('node:worker_threads');",
    'parentPort.on("message", (m) => {',
    '  try { const r = eigh(m.A, m.n); parentPort.postMessage({ id: m.id, values: r.values, vectorsT: r.vectorsT }, [r.values.buffer, r.vectorsT.buffer]); }',
    '  catch (e) { parentPort.postMessage({ id: m.id, error: String((e && e.message) || e) }); }',
    '});',
  ].join('\n');
}

/**
 * {@link eigh} of several `n×n` matrices, in parallel worker threads (default: as many as
 * `MEMSCOPE_THREADS` or 2, at most the available CPUs and the number of matrices). Falls back to
 * the calling thread for one matrix, one worker or n < 96.
 */
export async function eighMany(mats: readonly Float64Array[], n: number, opts: { workers?: number } = {}): Promise<Eigh[]> {
  const W = Math.min(mats.length, opts.workers ?? Math.min(defaultThreads(), availableParallelism()));
  if (W <= 1 || n < 96) return mats.map((A) => eigh(A, n));
  const src = workerSource();
  const workers = Array.from({ length: W }, () => new Worker(src, { eval: true }));
  const out: Eigh[] = new Array(mats.length);
  let next = 0;
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            const feed = (): void => {
              if (next >= mats.length) {
                resolve();
                return;
              }
              const id = next++;
              w.postMessage({ id, A: mats[id]!, n });
            };
            w.on('message', (m: { id: number; values?: Float64Array; vectorsT?: Float64Array; error?: string }) => {
              if (m.error !== undefined) {
                reject(new Error(`eigh worker: ${m.error}`));
                return;
              }
              out[m.id] = { n, values: m.values!, vectorsT: m.vectorsT! };
              feed();
            });
            w.on('error', reject);
            feed();
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// fitting

/** A fitted Gaussian: mean, covariance and a data hash. */
export interface GaussianFit {
  readonly d: number;
  readonly mean: Float64Array;
  /** Covariance `[d·d]` row-major (exactly symmetric). */
  readonly cov: Float64Array;
  /** SHA-256 of the data the fit came from (the eigendecomposition cache key). */
  readonly key: string;
}

let covSession: Promise<Session> | null = null;

function covGraph(): Promise<Session> {
  covSession ??= (async () => {
    const b = new GraphBuilder({ name: 'gram' });
    const x = b.input('x', 'float64', ['N', 'D']);
    b.output(b.op('MatMul', [b.op('Transpose', [x], { perm: [1, 0] }), x]), 'float64', ['D', 'D'], 'g');
    return getSession(b.toBytes());
  })();
  return covSession;
}

/**
 * Fit μ and Σ = (1/(n−ddof)) Σ_i (x_i−μ)(x_i−μ)ᵀ of the rows of `X` `[n, ...]` in float64 (the
 * Gram matrix as an onnxruntime float64 MatMul). Default ddof = 0: the covariance of the
 * empirical distribution, whose optimal linear denoiser is D_lin (SPEC §2.2).
 */
export async function fitGaussian(X: Tensor, opts: { ddof?: number } = {}): Promise<GaussianFit> {
  if (X.dims.length < 2) throw new Error(`fitGaussian: expected [n, ...], got [${X.dims.join(', ')}]`);
  assertFinite('fitGaussian: data', X);
  const n = X.dims[0]!;
  const d = numel(X.dims.slice(1));
  const ddof = opts.ddof ?? 0;
  if (n - ddof <= 0) throw new Error(`fitGaussian: need more than ${ddof} rows, got ${n}`);
  const mean = meanOf(X, d);
  const xc = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) xc[i * d + j] = X.data[i * d + j]! - mean[j]!;
  const s = await covGraph();
  const g = (await s.runRaw({ x: { type: 'float64', dims: [n, d], data: xc } }, ['g']))['g']!.data as Float64Array;
  const cov = new Float64Array(d * d);
  const k = 1 / (n - ddof);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      const v = 0.5 * (g[i * d + j]! + g[j * d + i]!) * k;
      cov[i * d + j] = v;
      cov[j * d + i] = v;
    }
  }
  return { d, mean, cov, key: dataKey(X, ddof) };
}

function meanOf(X: Tensor, d: number): Float64Array {
  const n = X.dims[0]!;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += X.data[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j]! /= n;
  return mean;
}

function dataKey(X: Tensor, ddof: number): string {
  return hashData([X.data, `dims=${X.dims.join('x')};ddof=${ddof}`]);
}

/** A Gaussian in its eigenbasis: what the linear and mixture denoisers use. */
export interface GaussianComponent {
  readonly d: number;
  readonly mean: Float64Array;
  /** Eigenvalues of Σ (ascending, clamped at 0). */
  readonly values: Float64Array;
  /** Eigenvectors as rows (Vᵀ row-major), see {@link Eigh}. */
  readonly vectorsT: Float64Array;
}

/**
 * Fit a Gaussian to `X` and eigendecompose its covariance, with the disk cache keyed by the
 * data hash (SPEC §2.2). `cache: false` skips the disk.
 */
export async function gaussianComponent(X: Tensor, opts: { ddof?: number; cache?: boolean } = {}): Promise<GaussianComponent> {
  return (await gaussianComponents([X], opts))[0]!;
}

/**
 * Fit several Gaussians (one per data tensor) and eigendecompose their covariances, cached on
 * disk and computed in parallel worker threads when not cached (SPEC §2.2). All tensors must have
 * the same row size d.
 */
export async function gaussianComponents(Xs: readonly Tensor[], opts: { ddof?: number; cache?: boolean; workers?: number } = {}): Promise<GaussianComponent[]> {
  if (Xs.length === 0) return [];
  const ddof = opts.ddof ?? 0;
  const useCache = opts.cache ?? true;
  const d = numel(Xs[0]!.dims.slice(1));
  if (Xs.some((X) => numel(X.dims.slice(1)) !== d)) throw new Error('gaussianComponents: all data must have the same row size');
  const dir = cacheDir();
  // the cache key is the data hash, so a hit needs only the mean, not the covariance
  const keys = Xs.map((X) => `${dataKey(X, ddof)}-d${d}`);
  const out: (GaussianComponent | null)[] = Xs.map((X, k) => {
    const e = useCache ? readEigh(join(dir, `eigh-${keys[k]}.bin`), d) : null;
    if (e === null) return null;
    eighStats.hits++;
    return { d, mean: meanOf(X, d), values: clampValues(e).values, vectorsT: e.vectorsT };
  });
  const miss = out.flatMap((c, k) => (c === null ? [k] : []));
  if (miss.length > 0) {
    const fits: GaussianFit[] = [];
    for (const k of miss) fits.push(await fitGaussian(Xs[k]!, { ddof }));
    const es = await eighCachedMany(
      fits.map((f, i) => ({ A: f.cov, key: keys[miss[i]!]! })),
      d,
      { cache: useCache, ...(opts.workers === undefined ? {} : { workers: opts.workers }) },
    );
    miss.forEach((k, i) => (out[k] = { d, mean: fits[i]!.mean, values: es[i]!.values, vectorsT: es[i]!.vectorsT }));
  }
  return out as GaussianComponent[];
}

/** D_lin(y;σ) in float64 JS (SPEC §2.2), for tests and single vectors. */
export function linearDenoise(c: GaussianComponent, y: Float64Array | Float32Array, sigma: number): Float64Array {
  const { d, mean, values, vectorsT } = c;
  const yc = new Float64Array(d);
  for (let j = 0; j < d; j++) yc[j] = y[j]! - mean[j]!;
  const out = Float64Array.from(mean);
  const s2 = sigma * sigma;
  for (let k = 0; k < d; k++) {
    const lam = values[k]!;
    if (lam === 0) continue;
    const row = k * d;
    let z = 0;
    for (let j = 0; j < d; j++) z += vectorsT[row + j]! * yc[j]!;
    z *= lam / (lam + s2);
    for (let j = 0; j < d; j++) out[j]! += z * vectorsT[row + j]!;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// the denoiser

/** Options of {@link makeGaussianDenoiser}. */
export interface GaussianDenoiserOptions {
  /** Name for reports (default `'gaussian'`). */
  readonly name?: string;
  /** Data space (default `'pixel'`). */
  readonly space?: Space;
  /** Per-sample shape (default `[d]`, or the data's trailing dims when built from a tensor). */
  readonly shape?: readonly number[];
  /** onnxruntime intra-op threads (default: `MEMSCOPE_THREADS` or 2). */
  readonly threads?: number;
  /** Use the disk cache for the eigendecomposition (default true). */
  readonly cache?: boolean;
}

/**
 * The linear Gaussian denoiser D_lin (SPEC §2.2) as a {@link Denoiser} with no conditions (every
 * row is unconditional; a `cond` entry must be `null`).
 */
export class GaussianDenoiser implements Denoiser {
  readonly name: string;
  readonly space: Space;
  readonly shape: readonly number[];
  readonly conditions: readonly ConditionInfo[] = [];
  private session: Promise<Session> | null = null;

  constructor(
    /** The fitted component. */
    readonly component: GaussianComponent,
    private readonly opts: GaussianDenoiserOptions = {},
  ) {
    this.name = opts.name ?? 'gaussian';
    this.space = opts.space ?? 'pixel';
    this.shape = opts.shape ?? [component.d];
    if (numel(this.shape) !== component.d) throw new Error(`${this.name}: shape [${this.shape.join(', ')}] does not have d = ${component.d} elements`);
  }

  private graph(): Promise<Session> {
    this.session ??= (async () => {
      const { d, mean, vectorsT } = this.component;
      const b = new GraphBuilder({ name: 'gaussian' });
      const y = b.input('y', 'float32', ['B', d]);
      const c = b.input('c', 'float32', [d]);
      const mu = b.initializer('mu', Float32Array.from(mean), [d]);
      const Vt = Float32Array.from(vectorsT); // [d(k), d(j)] = Vᵀ
      const V = new Float32Array(d * d);
      for (let k = 0; k < d; k++) for (let j = 0; j < d; j++) V[j * d + k] = Vt[k * d + j]!;
      const z = b.op('MatMul', [b.op('Sub', [y, mu]), b.initializer('V', V, [d, d])]);
      const D = b.op('Add', [b.op('MatMul', [b.op('Mul', [z, c]), b.initializer('Vt', Vt, [d, d])]), mu]);
      b.output(D, 'float32', ['B', d], 'D');
      return createSession(b.toBytes(), this.opts.threads === undefined ? {} : { threads: this.opts.threads });
    })();
    return this.session;
  }

  /** D_lin(y;σ) for a batch `y` `[B, ...shape]` (VE scale), via two onnxruntime MatMuls. */
  async denoise(y: Tensor, sigma: number): Promise<Tensor> {
    const d = this.component.d;
    if (y.data.length % d !== 0 || y.dims.length === 0) throw new Error(`${this.name}: y must be [B, ${this.shape.join(', ')}], got [${y.dims.join(', ')}]`);
    if (!(sigma >= 0) || !Number.isFinite(sigma)) throw new Error(`${this.name}: σ must be finite and ≥ 0, got ${sigma}`);
    const B = y.data.length / d;
    const s2 = sigma * sigma;
    const c = Float32Array.from(this.component.values, (l) => (l + s2 > 0 ? l / (l + s2) : 0));
    const s = await this.graph();
    const out = await s.run({ y: { dims: [B, d], data: y.data }, c: { dims: [d], data: c } }, ['D']);
    return { dims: [...y.dims], data: out['D']!.data };
  }

  /** ε = (x_t − √ᾱ·D_lin(x_t/√ᾱ; σ))/√(1−ᾱ) (SPEC §2.2 with §0). Requires 0 < ᾱ < 1. */
  async predict(xt: Tensor, level: NoiseLevel, cond: readonly CondRef[]): Promise<Tensor> {
    const B = xt.dims[0] ?? 0;
    if (xt.dims.length !== this.shape.length + 1 || xt.dims.slice(1).some((v, i) => v !== this.shape[i])) {
      throw new Error(`${this.name}: x_t must be [B, ${this.shape.join(', ')}], got [${xt.dims.join(', ')}]`);
    }
    checkConds(this, cond, B);
    assertFinite(`${this.name}: x_t`, xt);
    return epsFromDenoiser(xt, level, this.name, (y, sigma) => this.denoise(y, sigma));
  }

  /** Release the onnxruntime session. */
  async dispose(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (s !== null) await (await s).release();
  }
}

/**
 * Shared ε wrapper: y = x_t/√ᾱ, σ = √((1−ᾱ)/ᾱ), D = denoise(y, σ), ε = (x_t − √ᾱ D)/√(1−ᾱ)
 * in float64 per element. Throws unless 0 < ᾱ < 1 and D is finite.
 */
export async function epsFromDenoiser(xt: Tensor, level: NoiseLevel, name: string, denoise: (y: Tensor, sigma: number) => Promise<Tensor>): Promise<Tensor> {
  const a = level.alphaBar;
  if (!(a > 0 && a < 1)) throw new Error(`${name}: ᾱ must be in (0, 1), got ${a}`);
  const sa = Math.sqrt(a);
  const sb = Math.sqrt(1 - a);
  const y = new Float32Array(xt.data.length);
  for (let i = 0; i < y.length; i++) y[i] = xt.data[i]! / sa;
  const D = await denoise({ dims: xt.dims, data: y }, Math.sqrt((1 - a) / a));
  assertFinite(`${name}: denoised estimate`, D);
  const eps = new Float32Array(y.length);
  for (let i = 0; i < eps.length; i++) eps[i] = (xt.data[i]! - sa * D.data[i]!) / sb;
  return { dims: [...xt.dims], data: eps };
}

/**
 * Build the linear Gaussian denoiser (SPEC §2.2) from training images `X` `[n, ...shape]`
 * (fit + cached eigendecomposition) or from a fitted {@link GaussianComponent}.
 */
export async function makeGaussianDenoiser(data: Tensor | GaussianComponent, opts: GaussianDenoiserOptions = {}): Promise<GaussianDenoiser> {
  if ('dims' in data) {
    const comp = await gaussianComponent(data, opts.cache === undefined ? {} : { cache: opts.cache });
    return new GaussianDenoiser(comp, { shape: data.dims.slice(1), ...opts });
  }
  return new GaussianDenoiser(data, opts);
}
