/**
 * Model fingerprints: a hash of the weights and configuration a result depends on, part of every
 * unit key (issue 15 §1). A file's content is hashed, never its path or date, so that a copied or
 * moved model keeps its results.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { canonicalJson, sha256Hex } from '../engine/canonical.ts';

const fileCache = new Map<string, string>();

/** A persistent cache of file hashes by (absolute path, size, modification time), e.g. the results store's. */
export interface FileHashCache {
  getFileHash(path: string, size: number, mtimeMs: number): string | undefined;
  setFileHash(path: string, size: number, mtimeMs: number, sha256: string): void;
}

let persistent: FileHashCache | null = null;

/** Use `cache` (or none) for the file hashes of model fingerprints (multi-GB exports are hashed once). */
export function setFileHashCache(cache: FileHashCache | null): void {
  persistent = cache;
}

/** SHA-256 (hex) of a file's bytes (streamed; cached per path, size and modification time). */
export async function hashFile(path: string): Promise<string> {
  const abs = resolve(path);
  const st = await stat(abs);
  const cacheKey = `${abs}\0${st.size}\0${st.mtimeMs}`;
  const hit = fileCache.get(cacheKey) ?? persistent?.getFileHash(abs, st.size, st.mtimeMs);
  if (hit !== undefined) {
    fileCache.set(cacheKey, hit);
    return hit;
  }
  const h = createHash('sha256');
  await new Promise<void>((res, rej) => {
    createReadStream(abs)
      .on('data', (c) => h.update(c))
      .on('end', () => res())
      .on('error', rej);
  });
  const hex = h.digest('hex');
  fileCache.set(cacheKey, hex);
  persistent?.setFileHash(abs, st.size, st.mtimeMs, hex);
  return hex;
}

/** The regular files of `dir` (top level only, or every level with `recursive`), hidden ones skipped, as sorted relative paths. */
async function listFiles(dir: string, recursive: boolean): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (recursive) await walk(p);
      } else if (e.isFile() || e.isSymbolicLink()) out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  await walk(dir);
  return out.sort();
}

/**
 * Fingerprint of a model folder: SHA-256 of the canonical JSON of `{ kind, files: { name: sha256 } }`
 * over its files (top level only for a trained model — `model.json` and the weights; every level
 * for a Stable Diffusion export), skipping hidden files and the folders named in `skip`.
 */
export async function folderFingerprint(kind: string, dir: string, opts: { recursive?: boolean; skip?: readonly string[] } = {}): Promise<string> {
  const files: Record<string, string> = {};
  for (const f of await listFiles(dir, opts.recursive ?? false)) {
    if ((opts.skip ?? []).some((s) => f === s || f.startsWith(`${s}/`))) continue;
    files[f] = await hashFile(join(dir, f));
  }
  return sha256Hex(canonicalJson({ kind, files }));
}

/** Fingerprint of anything described by JSON plus named files (e.g. a bare ONNX file and its condition arrays). */
export async function describedFingerprint(kind: string, description: unknown, files: Readonly<Record<string, string | undefined>> = {}): Promise<string> {
  const hashes: Record<string, string> = {};
  for (const [name, path] of Object.entries(files)) if (path !== undefined) hashes[name] = await hashFile(path);
  return sha256Hex(canonicalJson({ kind, description, files: hashes }));
}
