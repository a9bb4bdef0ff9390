/**
 * Results directories that never destroy anything.
 *
 * A command writes its results into a hidden sibling `.<OUT>.partial-<pid>-<time>-<n>`, writes the
 * marker file {@link RESULTS_MARKER} into it last (so a complete folder is recognisable), and only
 * then swaps it into place. `--out` may be replaced only when it is missing, an empty folder, or a
 * results folder memscope wrote itself (it holds the marker and nothing the marker does not list).
 * Anything else — a regular file, a folder of the user's own files, a symbolic link, the current
 * directory or one of its ancestors, the memscope package folder or an ancestor of it, anything in
 * the package's shipped `models/` folder — is refused with a {@link UsageError} naming `--out`,
 * before any work starts ({@link checkResultsTarget}) and again just before the swap.
 *
 * The swap, instant by instant (a kill can happen between any two steps):
 * 1. the partial folder is being written (no marker): `OUT` untouched; the next run deletes the
 *    partial of the dead process;
 * 2. the marker is written: same, the complete partial of a dead process is deleted when `OUT` exists;
 * 3. `OUT` renamed to `<partial>.old`: `OUT` is missing; the next run restores the newest complete
 *    leftover (the partial, else the `.old`) as `OUT` and deletes the rest;
 * 4. the partial renamed to `OUT`: done; a dead process's `.old` is deleted by the next run.
 *
 * Resumable work is kept in the results store (`--store`, `store/sqlite-store.ts`), not next to `OUT`.
 */
import { access, constants, lstat, mkdir, readdir, readFile, readlink, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { UsageError } from '../io/errors.ts';
import { packageRoot } from '../data/paths.ts';
import { memscopeVersion } from './version.ts';
import { writeJsonAtomic } from './atomic.ts';
import { isProcessAlive } from './process.ts';

/** Name of the marker file memscope writes (last) into every results folder it creates. */
export const RESULTS_MARKER = '.memscope-results.json';
/** `format` of {@link RESULTS_MARKER}. */
export const RESULTS_FORMAT = 'memscope-results';

/** The JSON of {@link RESULTS_MARKER}. */
export interface ResultsMarker {
  /** Always {@link RESULTS_FORMAT}. */
  readonly format: typeof RESULTS_FORMAT;
  /** Layout version (1). */
  readonly version: 1;
  /** The command that wrote the folder, e.g. `sample`. */
  readonly command: string;
  /** memscope version of the writer. */
  readonly memscopeVersion: string;
  /** When the folder was completed (ISO 8601). */
  readonly createdAt: string;
  /** Every file memscope wrote into the folder, as paths relative to it (`/`-separated), sorted. */
  readonly files: readonly string[];
}

/** Options of {@link checkResultsTarget} and {@link withResultsDir}. */
export interface ResultsOptions {
  /** The flag named in errors (default `--out`). */
  readonly flag?: string;
  /** The command recorded in the marker (default `memscope`). */
  readonly command?: string;
  /** Where notes about recovered or removed leftovers go (default: standard error). */
  readonly log?: (message: string) => void;
}

let partialCounter = 0;
const defaultLog = (m: string): void => void process.stderr.write(`${m}\n`);

/** `a` is `b` or an ancestor of `b` (both absolute, normalised). */
export function isSameOrAncestor(a: string, b: string): boolean {
  if (a === b) return true;
  const prefix = a.endsWith(sep) ? a : a + sep;
  return b.startsWith(prefix);
}

/** The real path of `p` as far as it exists: realpath of the deepest existing ancestor plus the rest. */
export async function realish(p: string): Promise<string> {
  let head = resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      return join(await realpath(head), ...rest);
    } catch {
      const parent = dirname(head);
      if (parent === head) return resolve(p);
      rest.unshift(basename(head));
      head = parent;
    }
  }
}

/** The real path of the memscope package folder, or null when it cannot be found. */
export async function packageRootReal(): Promise<string | null> {
  try {
    return await realish(packageRoot());
  } catch {
    return null;
  }
}

/**
 * Why `target` is a place results must never go, or null: the current directory or an ancestor of
 * it, the memscope package folder or an ancestor of it, or anything in the package's shipped
 * `models/` folder (paths compared after resolving symbolic links).
 */
export async function protectedPlace(target: string): Promise<string | null> {
  const real = await realish(target);
  const pkg = await packageRootReal();
  if (pkg !== null) {
    if (isSameOrAncestor(real, pkg)) return real === pkg ? 'is the memscope package folder' : `contains the memscope package folder (${pkg})`;
    const models = join(pkg, 'models');
    if (isSameOrAncestor(models, real)) return `is inside memscope's shipped models folder (${models}); results never go there`;
  }
  const cwd = await realish(process.cwd());
  if (isSameOrAncestor(real, cwd)) return real === cwd ? 'is the current directory' : `contains the current directory (${cwd})`;
  return null;
}

/** Check the path of a folder that does not exist yet: its nearest existing ancestor must be a writable folder. */
async function creatableProblem(target: string): Promise<string | null> {
  let p = dirname(target);
  for (;;) {
    let st;
    try {
      st = await lstat(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        const parent = dirname(p);
        if (parent === p) return `cannot be created (no existing folder above it)`;
        p = parent;
        continue;
      }
      return `cannot be created: ${p} cannot be read (${code ?? (e as Error).message})`;
    }
    if (st.isSymbolicLink()) {
      const to = await readlink(p).catch(() => '?');
      const ok = await stat(p).then((s) => s.isDirectory(), () => false);
      if (!ok) return `cannot be created: ${p} is a symbolic link to ${to}, which is not an existing folder`;
    } else if (!st.isDirectory()) {
      return `cannot be created: ${p} is a file, not a folder`;
    }
    try {
      await access(p, constants.W_OK | constants.X_OK);
    } catch {
      return `cannot be created: the folder ${p} is not writable`;
    }
    return null;
  }
}

/** Every file under `dir` (recursively), as `/`-separated relative paths, sorted. */
async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  await walk(dir);
  return out.sort();
}

function showEntries(names: readonly string[], max = 6): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown}, … (${names.length} in all)` : shown;
}

/** Read a marker file; null when absent, an error string when present but not valid. */
async function readMarker(dir: string, file: string, format: string): Promise<Record<string, unknown> | null | string> {
  let txt: string;
  try {
    txt = await readFile(join(dir, file), 'utf8');
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? null : `its ${file} cannot be read`;
  }
  try {
    const j = JSON.parse(txt) as unknown;
    if (j !== null && typeof j === 'object' && (j as Record<string, unknown>)['format'] === format) return j as Record<string, unknown>;
  } catch {
    // fall through
  }
  return `its ${file} is not a ${format} marker`;
}

/** What is at `target` (an absolute path) as a results destination. */
type TargetState = { kind: 'missing' } | { kind: 'empty' } | { kind: 'ours'; marker: ResultsMarker } | { kind: 'refuse'; what: string };

async function inspectTarget(target: string): Promise<TargetState> {
  let st;
  try {
    st = await lstat(target);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      const problem = await creatableProblem(target);
      return problem === null ? { kind: 'missing' } : { kind: 'refuse', what: problem };
    }
    return { kind: 'refuse', what: `cannot be read (${code ?? (e as Error).message})` };
  }
  if (st.isSymbolicLink()) {
    const to = await readlink(target).catch(() => '?');
    const live = await stat(target).then(() => true, () => false);
    return { kind: 'refuse', what: live ? `is a symbolic link (to ${to}); give the folder itself` : `is a broken symbolic link (to ${to}, which does not exist)` };
  }
  if (st.isFile()) return { kind: 'refuse', what: `is a file (${st.size} bytes), not a results folder` };
  if (!st.isDirectory()) return { kind: 'refuse', what: 'is not a folder (a device, socket or pipe)' };
  let entries: string[];
  try {
    entries = (await readdir(target)).sort();
  } catch (e) {
    return { kind: 'refuse', what: `is a folder that cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
  }
  try {
    await access(dirname(target), constants.W_OK | constants.X_OK);
  } catch {
    return { kind: 'refuse', what: `cannot be replaced: its folder ${dirname(target)} is not writable` };
  }
  if (entries.length === 0) return { kind: 'empty' };
  const marker = await readMarker(target, RESULTS_MARKER, RESULTS_FORMAT);
  if (marker === null) {
    return { kind: 'refuse', what: `is a folder memscope did not write (no ${RESULTS_MARKER}; it holds ${showEntries(entries)}). If it is a result of an older memscope, delete it yourself` };
  }
  if (typeof marker === 'string') return { kind: 'refuse', what: `is a folder memscope cannot recognise as its own: ${marker}` };
  const listed = new Set(Array.isArray(marker['files']) ? (marker['files'] as unknown[]).map(String) : []);
  const extra = (await listFiles(target)).filter((f) => f !== RESULTS_MARKER && !listed.has(f));
  if (extra.length) return { kind: 'refuse', what: `is a memscope results folder that also holds files memscope did not write (${showEntries(extra)})` };
  return { kind: 'ours', marker: marker as unknown as ResultsMarker };
}

function refusal(flag: string, out: string, what: string): UsageError {
  return new UsageError(
    `${flag} "${out}" ${what}. memscope replaces only a missing path, an empty folder or a results folder it wrote itself (one holding ${RESULTS_MARKER}); nothing was written. Give a new folder, e.g. ${flag} runs/<name>`,
  );
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Settle what killed writes to `target` left behind: when `target` is missing, restore the newest
 * complete leftover of a dead process (a partial folder holding the marker, else a `.old` previous
 * result) as `target`; then delete every other leftover of dead processes. Partial folders of live
 * processes (another run writing the same `--out`) are left alone. Returns what was done, one line each.
 */
export async function settleLeftovers(target: string): Promise<string[]> {
  const parent = dirname(target);
  const base = basename(target);
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return [];
  }
  const re = new RegExp(`^\\.${escapeRegExp(base)}\\.partial-(\\d+)-(\\d+)(?:-(\\d+))?(\\.old)?$`);
  const dead: { name: string; time: number; n: number; old: boolean }[] = [];
  for (const name of names) {
    const m = re.exec(name);
    if (m === null || isProcessAlive(Number(m[1]))) continue;
    dead.push({ name, time: Number(m[2]), n: Number(m[3] ?? 0), old: m[4] !== undefined });
  }
  if (dead.length === 0) return [];
  const notes: string[] = [];
  const missing = await lstat(target).then(() => false, () => true);
  if (missing) {
    // newest first; within one write, the finished partial is newer than the .old it was to replace
    const order = [...dead].sort((a, b) => b.time - a.time || b.n - a.n || Number(a.old) - Number(b.old));
    for (const c of order) {
      const path = join(parent, c.name);
      // a .old is a whole previous result (it was at `target`); a partial is complete once its marker is written
      const marker = c.old ? null : await readMarker(path, RESULTS_MARKER, RESULTS_FORMAT);
      const complete = c.old ? await readdir(path).then((e) => e.length > 0, () => false) : marker !== null && typeof marker === 'object';
      if (!complete) continue;
      await rename(path, target);
      notes.push(`restored ${target} from ${c.name}, left by an interrupted run (${c.old ? 'the previous result' : 'its finished result'})`);
      dead.splice(dead.indexOf(c), 1);
      break;
    }
  }
  for (const c of dead) {
    await rm(join(parent, c.name), { recursive: true, force: true });
    notes.push(`removed ${join(parent, c.name)}, left by an interrupted run`);
  }
  return notes;
}

/**
 * Preflight of a results destination, to be called right after argument validation (before any
 * model is loaded or any sample drawn): settle leftovers of killed writes ({@link settleLeftovers}),
 * then throw a {@link UsageError} naming the flag, the path and what is there unless `out` is
 * missing (and can be created), an empty folder, or a results folder memscope wrote itself.
 */
export async function checkResultsTarget(out: string, opts: ResultsOptions = {}): Promise<void> {
  const flag = opts.flag ?? '--out';
  const target = resolve(out);
  const place = await protectedPlace(target);
  if (place !== null) throw refusal(flag, out, place);
  for (const note of await settleLeftovers(target)) (opts.log ?? defaultLog)(`memscope: ${note}`);
  const s = await inspectTarget(target);
  if (s.kind === 'refuse') throw refusal(flag, out, s.what);
}

/**
 * Run `write(tmpDir)` in a hidden sibling of `out`; on success write the marker and swap the folder
 * into place (replacing a previous memscope result), on failure delete it. `out` is checked as by
 * {@link checkResultsTarget} before `write` runs and again before the swap.
 */
export async function withResultsDir<T>(out: string, write: (dir: string) => Promise<T>, opts: ResultsOptions = {}): Promise<T> {
  const flag = opts.flag ?? '--out';
  const target = resolve(out);
  await checkResultsTarget(out, opts);
  await mkdir(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.partial-${process.pid}-${Date.now()}-${partialCounter++}`);
  await mkdir(tmp);
  let result: T;
  try {
    result = await write(tmp);
    const files = (await listFiles(tmp)).filter((f) => f !== RESULTS_MARKER);
    const marker: ResultsMarker = { format: RESULTS_FORMAT, version: 1, command: opts.command ?? 'memscope', memscopeVersion: memscopeVersion(), createdAt: new Date().toISOString(), files };
    await writeJsonAtomic(join(tmp, RESULTS_MARKER), marker);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  // what is at `out` may have changed while the command ran
  const now = await inspectTarget(target);
  if (now.kind === 'refuse') {
    throw new UsageError(`${flag} "${out}" ${now.what} (it changed while memscope ran); nothing there was touched. The finished results are in ${tmp}`);
  }
  if (now.kind === 'missing') {
    await rename(tmp, target);
  } else {
    const old = `${tmp}.old`;
    await rename(target, old);
    await rename(tmp, target);
    // a failure here only leaves the .old leftover, which the next run for this --out removes
    await rm(old, { recursive: true, force: true }).catch(() => undefined);
  }
  return result;
}
