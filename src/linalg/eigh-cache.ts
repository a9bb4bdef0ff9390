/**
 * The disk cache of eigendecompositions: a 784×784 {@link eigh} takes seconds in JS, so results are
 * kept under `${MEMSCOPE_CACHE ?? '.cache/memscope'}`, keyed by a SHA-256 of the matrix (or a
 * caller's key), written atomically (temp file + rename).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { type Eigh, eigh, eighMany } from './eigh.ts';

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

/** The cached eigendecomposition of an `n×n` matrix at `path` (an `eigh-<key>.bin` file), or null when absent or not a valid file. */
export function readEigh(path: string, n: number): Eigh | null {
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

/** Clamp eigenvalues below 0 (round-off of a PSD matrix) to 0, in place; returns `r`. */
export function clampValues(r: Eigh): Eigh {
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
