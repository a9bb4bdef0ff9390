/**
 * Model fingerprints: a hash of the weights and configuration a result depends on, part of every
 * unit key (issue 15 §1). A file's content is hashed, never its path or date, so that a copied or
 * moved model keeps its results.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { canonicalJson, sha256Hex } from '../engine/canonical.ts';

const fileCache = new Map<string, string>();

/** SHA-256 (hex) of a file's bytes (streamed; cached per path, size and modification time in this process). */
export async function hashFile(path: string): Promise<string> {
  const st = await stat(path);
  const cacheKey = `${path}\0${st.size}\0${st.mtimeMs}`;
  const hit = fileCache.get(cacheKey);
  if (hit !== undefined) return hit;
  const h = createHash('sha256');
  await new Promise<void>((res, rej) => {
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('end', () => res())
      .on('error', rej);
  });
  const hex = h.digest('hex');
  fileCache.set(cacheKey, hex);
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
