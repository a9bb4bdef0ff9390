/**
 * Training checkpoints on disk, written all-or-nothing.
 *
 * Layout of a checkpoint directory `<dir>/step-<N>/` (N = number of completed steps):
 *
 * - `weights.safetensors` — the parameters (F32, one tensor per parameter name);
 * - `ema.safetensors` — the EMA weights, when the run keeps an EMA;
 * - `optim.safetensors` — AdamW's moments as `m/<name>` and `v/<name>` (parameters that never
 *   received a gradient have none, as in torch);
 * - `state.json` — {@link CheckpointStateJson}: step, per-parameter optimizer step counts, EMA
 *   update count, random-generator state, the run's config, loss history, elapsed seconds, the
 *   memscope version and, when the caller keeps one, its own `extra` state (optional: checkpoints
 *   without it load as before).
 *
 * {@link writeCheckpoint} writes every file into a temporary sibling `<dir>/.step-<N>.tmp-…`,
 * flushes it to disk, then renames it to `step-<N>` (an atomic step on POSIX file systems), then
 * rewrites the pointer file `<dir>/latest` (containing `step-<N>`) atomically and deletes all but
 * the newest `keep` checkpoints (default 2). A run killed at any point therefore leaves either
 * the new complete checkpoint or none, never a partial `step-<N>`; leftovers of killed writers
 * (`.step-*.tmp-*` of processes no longer alive) are removed by the next write.
 * {@link loadLatestCheckpoint} never reads temporary directories and takes the complete
 * checkpoint with the highest N (which is what `latest` names, except in the instant between
 * the rename and the pointer update).
 */
import { memscopeVersion } from '../io/version.ts';
import { open, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import type { AdamWParamState, AdamWState } from '../optim/adamw.ts';
import type { EmaState } from './ema.ts';
import type { ParamSpec } from '../models/params.ts';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { isProcessAlive } from '../io/process.ts';

/** The `format` tag of `state.json`. */
export const CHECKPOINT_FORMAT = 'memscope-checkpoint';
/** The layout version of checkpoints written by this module. */
export const CHECKPOINT_FORMAT_VERSION = 1;

/** Everything a checkpoint holds, in memory. */
export interface Checkpoint {
  /** Number of completed training steps. */
  readonly step: number;
  /** Parameter declarations (names, shapes, initialisers, noDecay), in declaration order. */
  readonly specs: readonly ParamSpec[];
  /** Parameter values by name. */
  readonly params: ReadonlyMap<string, Float32Array>;
  /** The optimizer state. */
  readonly optimizer: AdamWState;
  /** The EMA state, or null when the run keeps none. */
  readonly ema: EmaState | null;
  /** Random-generator state of stateful generators (JSON), null when none. */
  readonly rng: unknown;
  /** The run's configuration (JSON) that a resume must match. */
  readonly config: unknown;
  /** Loss of every completed step: `lossHistory[i]` is the loss of step i (0-based). */
  readonly lossHistory: readonly number[];
  /** Training time so far, summed over sessions, in seconds. */
  readonly elapsedSeconds: number;
  /** The caller's own state carried through resumes (JSON; e.g. the Wen filter's counts); absent when none. */
  readonly extra?: unknown;
}

/** A checkpoint as read back: {@link Checkpoint} plus where it came from and who wrote it. */
export interface LoadedCheckpoint extends Checkpoint {
  /** The checkpoint directory. */
  readonly path: string;
  /** The memscope version that wrote it. */
  readonly memscopeVersion: string;
}

/** The JSON of `state.json`. */
export interface CheckpointStateJson {
  /** Always `"memscope-checkpoint"`. */
  readonly format: typeof CHECKPOINT_FORMAT;
  /** {@link CHECKPOINT_FORMAT_VERSION} of the writer. */
  readonly formatVersion: number;
  /** Completed steps. */
  readonly step: number;
  /** memscope version of the writer. */
  readonly memscopeVersion: string;
  /** Wall-clock time of the write (ISO 8601; informational). */
  readonly savedAt: string;
  /** Training time so far, in seconds. */
  readonly elapsedSeconds: number;
  /** Parameter declarations. */
  readonly specs: readonly ParamSpec[];
  /** AdamW step count per parameter that has optimizer state. */
  readonly optimizer: { readonly steps: Readonly<Record<string, number>> };
  /** EMA update count, or null without EMA. */
  readonly ema: { readonly updates: number } | null;
  /** Generator state (JSON) or null. */
  readonly rng: unknown;
  /** The run configuration compared on resume. */
  readonly config: unknown;
  /** Loss of every completed step. */
  readonly lossHistory: readonly number[];
  /** {@link Checkpoint.extra} (absent in checkpoints written without it, and before it existed). */
  readonly extra?: unknown;
}

/** Options of {@link writeCheckpoint}. */
export interface WriteCheckpointOptions {
  /** How many checkpoints to keep in `dir`, newest first (default 2; at least 1). */
  readonly keep?: number;
}

const STEP_DIR = /^step-(\d+)$/;
const TMP_DIR = /^\.step-\d+\.(?:tmp|old)-(\d+)-\d+$/;
let tmpCounter = 0;

export { memscopeVersion };

/** The directory name of the checkpoint after `step` steps: `step-<step>`. */
export function checkpointName(step: number): string {
  return `step-${step}`;
}

async function writeSynced(path: string, data: Uint8Array | string): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

function toTensors(values: ReadonlyMap<string, Float32Array>, specs: readonly ParamSpec[], what: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const s of specs) {
    const v = values.get(s.name);
    if (v === undefined) throw new Error(`writeCheckpoint: ${what} has no value for parameter "${s.name}"`);
    out.set(s.name, { dims: s.dims, data: v });
  }
  if (values.size !== specs.length) {
    const extra = [...values.keys()].filter((k) => !specs.some((s) => s.name === k));
    throw new Error(`writeCheckpoint: ${what} has values for undeclared parameters: ${extra.join(', ')}`);
  }
  return out;
}

/**
 * Write `ckpt` as `<dir>/step-<ckpt.step>/` atomically (see the module note), point
 * `<dir>/latest` at it and keep only the newest `keep` checkpoints. An existing checkpoint of the
 * same step is replaced. Returns the checkpoint directory.
 */
export async function writeCheckpoint(dir: string, ckpt: Checkpoint, options: WriteCheckpointOptions = {}): Promise<string> {
  const keep = options.keep ?? 2;
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`writeCheckpoint: keep must be a positive integer, got ${keep}`);
  if (!Number.isSafeInteger(ckpt.step) || ckpt.step < 0) throw new Error(`writeCheckpoint: step must be a non-negative integer, got ${ckpt.step}`);
  const root = resolve(dir);
  await mkdir(root, { recursive: true });
  const name = checkpointName(ckpt.step);
  const meta = { format: CHECKPOINT_FORMAT, step: String(ckpt.step) };

  const weights = encodeSafetensors(toTensors(ckpt.params, ckpt.specs, 'params'), { ...meta, content: 'weights' });
  const ema = ckpt.ema === null ? null : encodeSafetensors(toTensors(ckpt.ema.values, ckpt.specs, 'ema'), { ...meta, content: 'ema' });
  const moments = new Map<string, Tensor>();
  const steps: Record<string, number> = {};
  const dimsOf = new Map(ckpt.specs.map((s) => [s.name, s.dims]));
  for (const [pname, st] of ckpt.optimizer.params) {
    const dims = dimsOf.get(pname);
    if (dims === undefined) throw new Error(`writeCheckpoint: optimizer state for undeclared parameter "${pname}"`);
    moments.set(`m/${pname}`, { dims, data: st.m });
    moments.set(`v/${pname}`, { dims, data: st.v });
    steps[pname] = st.step;
  }
  const optim = encodeSafetensors(moments, { ...meta, content: 'optimizer' });
  const state: CheckpointStateJson = {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    step: ckpt.step,
    memscopeVersion: memscopeVersion(),
    savedAt: new Date().toISOString(),
    elapsedSeconds: ckpt.elapsedSeconds,
    specs: ckpt.specs,
    optimizer: { steps },
    ema: ckpt.ema === null ? null : { updates: ckpt.ema.updates },
    rng: ckpt.rng ?? null,
    config: ckpt.config ?? null,
    lossHistory: ckpt.lossHistory,
    ...(ckpt.extra === undefined ? {} : { extra: ckpt.extra }),
  };
  for (const l of ckpt.lossHistory) if (!Number.isFinite(l)) throw new Error(`writeCheckpoint: loss history holds a non-finite value (${l})`);

  const tmp = join(root, `.${name}.tmp-${process.pid}-${tmpCounter++}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  try {
    await writeSynced(join(tmp, 'weights.safetensors'), weights);
    if (ema !== null) await writeSynced(join(tmp, 'ema.safetensors'), ema);
    await writeSynced(join(tmp, 'optim.safetensors'), optim);
    await writeSynced(join(tmp, 'state.json'), JSON.stringify(state) + '\n');
    const target = join(root, name);
    if (await exists(target)) {
      const old = join(root, `.${name}.old-${process.pid}-${tmpCounter++}`);
      await rename(target, old);
      await rename(tmp, target);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, target);
    }
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  await writeFileAtomic(join(root, 'latest'), `${name}\n`);
  await prune(root, keep, ckpt.step);
  return join(root, name);
}

/** Delete all but the newest `keep` checkpoints (never `current`) and dead writers' temporaries. */
async function prune(root: string, keep: number, current: number): Promise<void> {
  const entries = await readdir(root, { withFileTypes: true });
  const steps: number[] = [];
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const m = STEP_DIR.exec(e.name);
    if (m !== null) {
      steps.push(Number(m[1]));
      continue;
    }
    const t = TMP_DIR.exec(e.name);
    if (t !== null && !isProcessAlive(Number(t[1]))) await rm(join(root, e.name), { recursive: true, force: true });
  }
  steps.sort((a, b) => b - a);
  for (const s of steps.slice(keep)) {
    if (s !== current) await rm(join(root, checkpointName(s)), { recursive: true, force: true });
  }
}

/** The checkpoints in `dir`, complete ones only (state.json and all tensor files present), by ascending step. */
export async function listCheckpoints(dir: string): Promise<{ step: number; path: string }[]> {
  const root = resolve(dir);
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: { step: number; path: string }[] = [];
  for (const e of entries) {
    const m = STEP_DIR.exec(e.name);
    if (m === null || !e.isDirectory()) continue;
    const path = join(root, e.name);
    if (await isComplete(path)) out.push({ step: Number(m[1]), path });
  }
  return out.sort((a, b) => a.step - b.step);
}

async function isComplete(path: string): Promise<boolean> {
  for (const f of ['state.json', 'weights.safetensors', 'optim.safetensors']) if (!(await exists(join(path, f)))) return false;
  return true;
}

/**
 * The newest complete checkpoint in `dir` (highest step), or null when there is none (or `dir`
 * does not exist). Temporary directories of interrupted writes and `step-<N>` directories
 * without their files are ignored; a complete-looking checkpoint that fails to parse is an error.
 */
export async function loadLatestCheckpoint(dir: string): Promise<LoadedCheckpoint | null> {
  const list = await listCheckpoints(dir);
  const last = list[list.length - 1];
  return last === undefined ? null : loadCheckpoint(last.path);
}

function bad(path: string, msg: string): never {
  throw new Error(`checkpoint ${path}: ${msg}`);
}

/** Read the checkpoint in directory `path` (the file set described in the module note). */
export async function loadCheckpoint(path: string): Promise<LoadedCheckpoint> {
  const p = resolve(path);
  let state: CheckpointStateJson;
  try {
    state = JSON.parse(await readFile(join(p, 'state.json'), 'utf8')) as CheckpointStateJson;
  } catch (e) {
    bad(p, `cannot read state.json: ${(e as Error).message}`);
  }
  if (state === null || typeof state !== 'object' || state.format !== CHECKPOINT_FORMAT) bad(p, `state.json is not a ${CHECKPOINT_FORMAT} file`);
  if (state.formatVersion !== CHECKPOINT_FORMAT_VERSION) {
    bad(p, `format version ${state.formatVersion} is not supported (this memscope reads version ${CHECKPOINT_FORMAT_VERSION})`);
  }
  if (!Number.isSafeInteger(state.step) || state.step < 0) bad(p, `invalid step ${String(state.step)}`);
  if (!Array.isArray(state.specs)) bad(p, 'state.json has no parameter specs');
  if (!Array.isArray(state.lossHistory) || state.lossHistory.length !== state.step) {
    bad(p, `loss history has ${Array.isArray(state.lossHistory) ? state.lossHistory.length : 'no'} entries for ${state.step} steps`);
  }
  const readTensors = async (file: string): Promise<Map<string, Tensor>> =>
    decodeSafetensors(await readFile(join(p, file)), join(p, file)).tensors;
  const checkDims = (file: string, name: string, t: Tensor | undefined, spec: ParamSpec): Float32Array => {
    if (t === undefined) bad(p, `${file} has no tensor "${name}"`);
    if (t.dims.length !== spec.dims.length || t.dims.some((d, i) => d !== spec.dims[i])) {
      bad(p, `${file}: "${name}" has shape [${t.dims.join(', ')}], the spec says [${spec.dims.join(', ')}]`);
    }
    return t.data;
  };
  const specs = state.specs;
  const w = await readTensors('weights.safetensors');
  const params = new Map<string, Float32Array>();
  for (const s of specs) params.set(s.name, checkDims('weights.safetensors', s.name, w.get(s.name), s));
  if (w.size !== specs.length) bad(p, `weights.safetensors has ${w.size} tensors for ${specs.length} parameters`);

  let ema: EmaState | null = null;
  if (state.ema !== null && state.ema !== undefined) {
    if (!(await exists(join(p, 'ema.safetensors')))) bad(p, 'state.json records an EMA but ema.safetensors is missing');
    const e = await readTensors('ema.safetensors');
    const values = new Map<string, Float32Array>();
    for (const s of specs) values.set(s.name, checkDims('ema.safetensors', s.name, e.get(s.name), s));
    ema = { updates: state.ema.updates, values };
  }

  const o = await readTensors('optim.safetensors');
  const optParams = new Map<string, AdamWParamState>();
  const specByName = new Map(specs.map((s) => [s.name, s]));
  for (const [name, step] of Object.entries(state.optimizer?.steps ?? {})) {
    const spec = specByName.get(name);
    if (spec === undefined) bad(p, `optimizer state for unknown parameter "${name}"`);
    optParams.set(name, {
      step,
      m: checkDims('optim.safetensors', `m/${name}`, o.get(`m/${name}`), spec),
      v: checkDims('optim.safetensors', `v/${name}`, o.get(`v/${name}`), spec),
    });
  }
  if (o.size !== 2 * optParams.size) bad(p, `optim.safetensors has ${o.size} tensors for ${optParams.size} parameters with state`);

  return {
    path: p,
    memscopeVersion: state.memscopeVersion,
    step: state.step,
    specs,
    params,
    optimizer: { params: optParams },
    ema,
    rng: state.rng ?? null,
    config: state.config ?? null,
    lossHistory: state.lossHistory,
    elapsedSeconds: state.elapsedSeconds,
    ...(state.extra === undefined ? {} : { extra: state.extra }),
  };
}

/** Whether `path` is a complete checkpoint directory (state.json, weights and optimizer files present). */
export async function isCheckpointDir(path: string): Promise<boolean> {
  return isComplete(resolve(path));
}
