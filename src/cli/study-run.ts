/**
 * What every study command shares (issue 15 §3–4): the `--store` and `--dry-run` flags, opening
 * the results store, the dry-run summary (units, how many are stored, an estimated time), running
 * the planned units with progress, and the `run.json` record written next to the results.
 */
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { parseFlags, flagsOf, validate, asInput, UsageError, InputError } from './args.ts';
import type { Study, Unit } from '../engine/study.ts';
import { InProcessRunner, type RunOutcome, type Runner } from '../engine/runner.ts';
import { QueueRunner } from '../queue/runner.ts';
import { checkQueue } from '../queue/connection.ts';
import { progressReporter, formatDuration } from '../engine/progress.ts';
import { SqliteStore, STORE_MARKER, defaultStoreDir } from '../store/sqlite-store.ts';
import { runRecord, RUN_FORMAT, type RunRecord, type CommandLine } from '../store/run-record.ts';
import { setFileHashCache } from '../store/fingerprint.ts';
import { flagDocs, type HelpSection } from './help.ts';

/** The `--queue` flag of the commands that can run their units on queue workers (issue 18). */
export const QUEUE_FIELDS = {
  queue: z.string().min(1).optional().register(flagDocs, {
    value: 'URL',
    help: 'run the units on queue workers (memscope worker --queue URL, any number of hosts) instead of in this process; redis://HOST:PORT/DB. This process commits every unit to the store',
  }),
  blobs: z.string().min(1).optional().register(flagDocs, {
    value: 'DIR',
    help: "with --queue: a folder every worker host sees at the same path (a network mount): the units' tensors travel as files there instead of base64 through Redis (docs/queue.md)",
  }),
};

/** Check `--queue` (Redis reachable) and `--blobs` (only with --queue; a folder this process can write) before any work; nothing for a dry run. */
export async function checkQueueFlags(o: { readonly queue?: string | undefined; readonly blobs?: string | undefined; readonly 'dry-run'?: boolean | undefined }): Promise<void> {
  if (o.blobs !== undefined && o.queue === undefined) throw new UsageError(`--blobs: only with --queue (the blob folder is where queue workers leave the units' tensors), got --blobs ${o.blobs} alone`);
  if (o['dry-run'] === true) return;
  if (o.queue !== undefined) await checkQueue(o.queue);
  if (o.blobs !== undefined) {
    const dir = resolve(o.blobs);
    await asInput('--blobs', async () => {
      await mkdir(dir, { recursive: true });
      const probe = join(dir, `.memscope-probe-${process.pid}`);
      await writeFile(probe, '');
      await rm(probe, { force: true });
    });
  }
}

/** The {@link runStudyUnits} options of `--queue` and `--blobs` (the blob folder absolute, as workers on other hosts must see it). */
export function queueOptions(o: { readonly queue?: string | undefined; readonly blobs?: string | undefined }): { queue?: string; blobs?: string } {
  if (o.queue === undefined) return {};
  return o.blobs === undefined ? { queue: o.queue } : { queue: o.queue, blobs: resolve(o.blobs) };
}

/** The help section of the `--queue` flag. */
export const QUEUE_SECTION: HelpSection = { heading: 'Several machines:', flags: ['queue', 'blobs'] };

/** Schema fields of the store flags (spread into a command's schema). */
export const STORE_FIELDS = {
  store: z.string().min(1).optional().register(flagDocs, {
    value: 'DIR',
    help: 'results store (default $MEMSCOPE_STORE, else runs/store): every finished unit is kept there; a rerun (or another command planning the same unit) reuses it',
  }),
  'dry-run': z.boolean().default(false).register(flagDocs, {
    help: 'print the resolved spec, the number of units (how many are already in the store) and an estimate of their time; computes and writes nothing',
  }),
};

/** The help section of the store flags, with `--config` (parsed by {@link parseCommandFlags}, not a schema field). */
export const STORE_SECTION: HelpSection = {
  heading: 'Results store:',
  flags: [
    'store',
    'dry-run',
    { flag: 'config', value: 'FILE', help: "re-run (or, with every unit stored, re-render) the run whose run.json FILE is, with the flags it was made from: flags given beside it override them; results go to FILE's folder unless --out is given, into run.json's store unless --store" },
  ],
};

/** The store folder: `--store`, else `$MEMSCOPE_STORE`, else `runs/store`. */
export function storeDirOf(flag: string | undefined): string {
  return flag ?? defaultStoreDir();
}

/**
 * Open the store for a run (created when missing), or — for a dry run — read-only when it exists,
 * else null; model fingerprints then cache their file hashes in it. Close it with {@link closeCliStore}.
 */
export async function openCliStore(dir: string, dryRun: boolean): Promise<SqliteStore | null> {
  let store: SqliteStore | null;
  if (!dryRun) store = await SqliteStore.open(dir);
  else {
    const present = await stat(join(dir, STORE_MARKER)).then((s) => s.isFile(), () => false);
    store = present ? await SqliteStore.open(dir, { mustExist: true, readonly: true }) : null;
  }
  setFileHashCache(store);
  return store;
}

/** Close a store opened by {@link openCliStore}. */
export function closeCliStore(store: SqliteStore | null): void {
  setFileHashCache(null);
  store?.close();
}

/** The `--dry-run` text: the resolved spec, the unit count (stored / to compute) and a time estimate from the stored units' mean seconds. */
export function dryRunText(command: string, spec: unknown, units: readonly Unit<unknown>[], store: SqliteStore | null, storeDir: string): string {
  const pendingUnits = units.filter((u) => store === null || store.row(u.key) === undefined);
  const stored = units.length - pendingUnits.length;
  let estimate: string;
  if (pendingUnits.length === 0) estimate = 'nothing to compute (every unit is in the store)';
  else {
    const kinds = new Map<string, number>();
    for (const u of pendingUnits) kinds.set(u.batch ?? '', (kinds.get(u.batch ?? '') ?? 0) + 1);
    let total = 0;
    let known = true;
    for (const [b, n] of kinds) {
      const m = store?.meanSeconds(b) ?? null;
      if (m === null) known = false;
      else total += m.mean * n;
    }
    estimate = known ? `about ${formatDuration(total)} (from the mean time of the stored units of the same model and settings)` : 'unknown: the store holds no finished unit of this model and these settings yet';
  }
  return [
    `memscope ${command} --dry-run (nothing is computed or written)`,
    `spec: ${JSON.stringify(spec, null, 2)}`,
    `store: ${resolve(storeDir)}${store === null ? ' (does not exist yet)' : ''}`,
    `units: ${units.length} (${stored} already in the store, ${pendingUnits.length} to compute)`,
    `estimated time: ${estimate}`,
    '',
  ].join('\n');
}

/**
 * Run `units` of `study` against `store` in this process with a progress display, registering the
 * study run in the store; returns the outcome and the `run.json` record to write next to the results.
 */
export async function runStudyUnits<Spec, U, R, Summary, S>(
  command: string,
  study: Study<Spec, U, R, Summary, S>,
  spec: unknown,
  units: readonly Unit<U>[],
  source: S,
  store: SqliteStore,
  opts: { maxBatch?: number; commandLine?: CommandLine; queue?: string; blobs?: string } = {},
): Promise<{ outcome: RunOutcome<U, R>; runJson: RunRecord }> {
  const keys = units.map((u) => u.key);
  const runId = store.beginStudy(study.id, spec, keys, new Map(units.map((u) => [u.key, u.batch ?? ''])));
  const progress = progressReporter({ label: command });
  let outcome: RunOutcome<U, R>;
  // --queue: the units run on queue workers (memscope worker), this process commits them
  if (opts.queue !== undefined && opts.commandLine === undefined) throw new Error(`${command}: --queue needs the command's recorded flags (a worker rebuilds the source from them)`);
  const runner: Runner = opts.queue === undefined ? new InProcessRunner() : new QueueRunner(opts.queue, { command, flags: opts.commandLine!.flags, cwd: opts.commandLine!.cwd, ...(opts.blobs === undefined ? {} : { blobs: opts.blobs }) });
  try {
    outcome = await runner.run(study, units, source, store, {
      onProgress: (p) => progress.update(p),
      ...(opts.maxBatch === undefined ? {} : { maxBatch: opts.maxBatch }),
    });
  } finally {
    progress.stop();
  }
  const runJson = runRecord({ command, study: study.id, runId, spec, keys, store: store.dir, computed: outcome.computed, reused: outcome.reused, ...(opts.commandLine === undefined ? {} : { commandLine: opts.commandLine }) });
  return { outcome, runJson };
}

/**
 * Flags run.json does not record: `--config` and `--dry-run` themselves, `--out` (the results
 * folder is the one holding run.json), `--store` (run.json's `store` names it, absolute) and
 * `--queue` and `--blobs` (where units ran is not what they are: a rerun runs locally unless given again).
 */
const UNRECORDED: ReadonlySet<string> = new Set(['config', 'dry-run', 'out', 'store', 'queue', 'blobs']);

/** How a recorded path-valued flag is rebased when `--config` runs in another folder: `(value, folder it was typed in) → value`. */
export type RebasePath = (value: string, cwd: string) => string;

const rebaseFile: RebasePath = (v, cwd) => (v === '' || isAbsolute(v) ? v : resolve(cwd, v));

/**
 * The path-valued flags of the study commands and how each is rebased: plain files and folders;
 * `--model` unless it is the word `testbed` or `default`; `--descriptor`'s `learned:DIR` /
 * `sscd:PATH` entries (a comma-separated list in `analyze kim`).
 */
export const PATH_FLAGS: Readonly<Record<string, RebasePath>> = {
  model: (v, cwd) => (v === 'testbed' || v === 'default' ? v : rebaseFile(v, cwd)),
  descriptor: (v, cwd) =>
    v
      .split(',')
      .map((e) => {
        const i = e.indexOf(':');
        const kind = i < 0 ? '' : e.slice(0, i).trim();
        return kind === 'learned' || kind === 'sscd' ? `${e.slice(0, i)}:${rebaseFile(e.slice(i + 1), cwd)}` : e;
      })
      .join(','),
  ...Object.fromEntries(['prompt-set', 'image-root', 'scheduler-config', 'cond', 'uncond', 'classifier', 'clip', 'inception', 'held-out'].map((k) => [k, rebaseFile])),
};

/** What {@link parseCommandFlags} returns. */
export interface ParsedCommandFlags<T> {
  /** The validated flags: the command line's over those recorded in `--config`'s run.json. */
  readonly o: T;
  /** What this run's run.json records (pass it to {@link runStudyUnits}). */
  readonly commandLine: CommandLine;
  /** The `--config` file (absolute), or null. */
  readonly config: string | null;
}

/**
 * Parse a study command's flags, with `--config RUN_JSON` (issue 15 §3), in one place for every
 * command that writes run.json. The flags are those of `schema` ({@link flagsOf}) plus `--config`.
 * With `--config`, the file must be a memscope run.json written by `command` (else an
 * {@link InputError} naming `--config`, the file and the command that wrote it); its recorded flags
 * are the starting point, every flag typed on the command line overrides one of them, `--store`
 * defaults to run.json's store and `--out` to the folder holding run.json (re-rendering it in
 * place). Recorded path-valued flags ({@link PATH_FLAGS} and `opts.paths`) typed relative to
 * another folder are rebased onto it, so a rerun from any folder opens the same files; from the
 * same folder they stay as typed, so the files that echo them come out byte for byte the same.
 * `opts.check` sees the merged raw values before validation (for a message of the command's own).
 */
export async function parseCommandFlags<T extends z.ZodObject>(
  argv: readonly string[],
  schema: T,
  opts: {
    command: string;
    renamed?: Readonly<Record<string, string>>;
    paths?: Readonly<Record<string, RebasePath>>;
    check?: (raw: Readonly<Record<string, string | boolean | undefined>>) => void;
    /** Flags of a run.json written before run.json recorded them (from its spec), or undefined to refuse it. */
    legacyFlags?: (spec: unknown, path: string) => Record<string, string | boolean>;
  },
): Promise<ParsedCommandFlags<z.infer<T>>> {
  const known = flagsOf(schema);
  const raw = parseFlags(argv, { ...known, config: { type: 'string' } }, opts.renamed ?? {});
  const configFlag = raw['config'];
  delete raw['config'];
  const typed: Record<string, string | boolean> = {};
  for (const [k, v] of Object.entries(raw)) if (v !== undefined) typed[k] = v;
  let merged: Record<string, string | boolean> = typed;
  let recorded: Record<string, string | boolean> = {};
  let config: string | null = null;
  if (typeof configFlag === 'string') {
    config = resolve(configFlag);
    const r = await readRunConfig(configFlag, opts.command, opts.legacyFlags);
    for (const k of Object.keys(r.flags)) {
      if (!(k in known) || UNRECORDED.has(k)) throw new InputError(`--config: ${configFlag} records the flag --${k}, which memscope ${opts.command} does not take (written by another memscope version?)`);
    }
    const paths = { ...PATH_FLAGS, ...opts.paths };
    recorded = { ...r.flags };
    if (r.cwd !== null && r.cwd !== process.cwd()) {
      for (const [k, v] of Object.entries(recorded)) if (typeof v === 'string' && paths[k] !== undefined) recorded[k] = paths[k](v, r.cwd);
    }
    merged = {
      ...recorded,
      ...('store' in known && r.store !== null ? { store: r.store } : {}),
      ...('out' in known ? { out: dirname(config) } : {}),
      ...typed,
    };
  }
  opts.check?.(merged);
  let o: z.infer<T>;
  try {
    o = validate(schema, merged);
  } catch (e) {
    // a bad value that came from the file, not from the command line: say so
    const key = e instanceof UsageError ? /^--([^\s:]+)/.exec(e.message)?.[1] : undefined;
    if (key !== undefined && config !== null && !(key in typed) && key in recorded) throw new InputError(`--config: ${configFlag as string} records ${e instanceof Error ? e.message : String(e)}`);
    throw e;
  }
  const flags: Record<string, string | boolean> = {};
  for (const [k, v] of Object.entries(merged)) if (!UNRECORDED.has(k)) flags[k] = v;
  return { o, commandLine: { flags, cwd: process.cwd() }, config };
}

/**
 * The validated flags of a queue job's command context: its recorded flags with path-valued ones
 * resolved against the folder they were typed in (a worker on another host needs the same paths,
 * e.g. a shared mount), validated by the command's schema.
 */
export function workerFlags<T extends z.ZodObject>(schema: T, ctx: { readonly flags: Readonly<Record<string, string | boolean>>; readonly cwd: string }): z.infer<T> {
  const flags: Record<string, string | boolean> = {};
  for (const [k, v] of Object.entries(ctx.flags)) flags[k] = typeof v === 'string' && PATH_FLAGS[k] !== undefined ? PATH_FLAGS[k](v, ctx.cwd) : v;
  return validate(schema, flags);
}

/** Read `--config PATH`: a run.json of `command` — its recorded flags, the folder they were typed in, and its store. */
async function readRunConfig(
  path: string,
  command: string,
  legacyFlags: ((spec: unknown, path: string) => Record<string, string | boolean>) | undefined,
): Promise<{ flags: Record<string, string | boolean>; cwd: string | null; store: string | null }> {
  const text = await asInput('--config', () => readFile(path, 'utf8'));
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new InputError(`--config: ${path} is not valid JSON (${(e as Error).message})`);
  }
  const r = j as { format?: unknown; command?: unknown; spec?: unknown; store?: unknown; flags?: unknown; cwd?: unknown } | null;
  if (r === null || typeof r !== 'object' || Array.isArray(r) || r.format !== RUN_FORMAT) throw new InputError(`--config: ${path} is not a memscope run.json (expected "format": "${RUN_FORMAT}")`);
  if (r.command !== command) throw new InputError(`--config: ${path} is the run.json of memscope ${String(r.command)}, not of memscope ${command}`);
  const store = typeof r.store === 'string' ? r.store : null;
  if (r.flags === undefined) {
    if (legacyFlags === undefined) throw new InputError(`--config: ${path} records no flags (written by an earlier memscope); run memscope ${command} with its flags again`);
    return { flags: legacyFlags(r.spec, path), cwd: null, store };
  }
  const f = r.flags;
  const ok = f !== null && typeof f === 'object' && !Array.isArray(f) && Object.values(f).every((v) => typeof v === 'string' || typeof v === 'boolean');
  if (!ok) throw new InputError(`--config: ${path}: "flags" must be an object of flag names to strings or true`);
  return { flags: { ...(f as Record<string, string | boolean>) }, cwd: typeof r.cwd === 'string' ? r.cwd : null, store };
}
