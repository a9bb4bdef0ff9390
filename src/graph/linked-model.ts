/**
 * Write models derived from an ONNX file (graph surgery, a loss around a U-Net, its gradient
 * graph) without copying the weights: into a fresh folder under `os.tmpdir()`, beside HARD links
 * to every external data file the source model names — onnxruntime resolves external data
 * relative to the model file and (1.30) refuses symbolic links that resolve outside the model's
 * folder. Where a hard link is impossible (the temp folder on another file system) the file is
 * handed to onnxruntime in memory instead (session option `externalData`). Nothing is written
 * next to the source.
 */
import { linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, normalize, resolve } from 'node:path';
import p from 'onnx-proto';

const { onnx } = p;
type ModelProto = InstanceType<typeof onnx.ModelProto>;

/** Models written by {@link writeBesideWeights}. */
export interface LinkedModels {
  /** Path of each written model, by the file name it was given. */
  readonly paths: Readonly<Record<string, string>>;
  /** The external data files the source model names (relative locations). */
  readonly externalData: readonly string[];
  /** Those that could not be hard-linked (another file system): pass {@link LinkedModels.inMemoryData} to the session. */
  readonly unlinked: readonly string[];
  /** The `externalData` session option for the unlinked files (reads them; `[]` when none). */
  inMemoryData(): { path: string; data: Uint8Array }[];
  /** Remove the temp folder (the source is untouched). */
  dispose(): void;
}

/** The external data locations `model`'s initializers name. */
export function externalLocations(model: ModelProto): string[] {
  const locations = new Set<string>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    const loc = (t.externalData ?? []).find((e) => e.key === 'location')?.value;
    if (typeof loc === 'string') locations.add(loc);
  }
  return [...locations];
}

/**
 * Write `models` (file name → serialized ModelProto) into a fresh folder under `os.tmpdir()`
 * (name prefix `prefix`) beside hard links to `locations` — the external data files of the model
 * at `sourcePath`, resolved relative to it as onnxruntime does, or taken from `sources`
 * (location → absolute path) where given. `dispose()` removes the folder.
 */
export function writeBesideWeights(sourcePath: string, locations: readonly string[], models: Readonly<Record<string, Uint8Array>>, prefix: string, sources: Readonly<Record<string, string>> = {}): LinkedModels {
  // where each location's file really is: `sources` (e.g. a diffusers folder's weights that could not be linked beside its temp graph), else beside the source model
  const where = (loc: string): string => sources[loc] ?? resolve(dirname(sourcePath), normalize(loc));
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    const unlinked: string[] = [];
    for (const loc of locations) {
      const rel = normalize(loc);
      if (isAbsolute(rel) || rel.startsWith('..')) throw new Error(`${sourcePath}: external data location '${loc}' leaves the model's folder`);
      const link = join(dir, rel);
      mkdirSync(dirname(link), { recursive: true });
      try {
        linkSync(where(loc), link);
      } catch {
        unlinked.push(loc);
      }
    }
    const paths: Record<string, string> = {};
    for (const [name, bytes] of Object.entries(models)) {
      paths[name] = join(dir, name);
      writeFileSync(paths[name], bytes);
    }
    return {
      paths,
      externalData: [...locations],
      unlinked,
      inMemoryData: () => unlinked.map((loc) => ({ path: loc, data: readFileSync(where(loc)) })),
      dispose: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
