/**
 * `run.json`: what a results folder was made from (issue 15 §3) — the resolved spec, the unit keys,
 * the store and the versions — so that `memscope <command> --config OUT/run.json` re-runs (or, with
 * every unit in the store, re-renders) it exactly.
 */
import { RESULT_FORMAT_VERSION } from '../engine/canonical.ts';
import { memscopeVersion } from '../io/version.ts';
import { STORE_VERSION } from './sqlite-store.ts';

/** `format` of run.json. */
export const RUN_FORMAT = 'memscope-run';

/** The JSON of run.json. */
export interface RunRecord {
  readonly format: typeof RUN_FORMAT;
  readonly version: 1;
  /** The command that wrote it (e.g. `sample`). */
  readonly command: string;
  /** The study id. */
  readonly study: string;
  /** The study run id in the store (first 16 hex of SHA-256(study + sorted unit keys)). */
  readonly studyRun: string;
  /** The resolved spec (every default filled in). */
  readonly spec: unknown;
  /** Unit keys in plan order. */
  readonly units: readonly string[];
  /** Absolute path of the store folder. */
  readonly store: string;
  /** Units this run computed and reused from the store. */
  readonly computed: number;
  readonly reused: number;
  /** The flags the run was made from, as typed (names without `--`; a switch is `true`), less `--config`, `--dry-run`, `--out` and `--store`; absent in files of earlier versions. */
  readonly flags?: Readonly<Record<string, string | boolean>>;
  /** The folder the flags were typed in (relative paths among them are relative to it). */
  readonly cwd?: string;
  readonly versions: { readonly memscope: string; readonly resultFormat: number; readonly storeLayout: number; readonly node: string };
  readonly createdAt: string;
}

/** The command line a run was made from, as run.json records it (see {@link RunRecord.flags}). */
export interface CommandLine {
  readonly flags: Readonly<Record<string, string | boolean>>;
  readonly cwd: string;
}

/** Build the run.json record of a finished run. */
export function runRecord(r: { command: string; study: string; runId: string; spec: unknown; keys: readonly string[]; store: string; computed: number; reused: number; commandLine?: CommandLine }): RunRecord {
  return {
    format: RUN_FORMAT,
    version: 1,
    command: r.command,
    study: r.study,
    studyRun: r.runId,
    spec: r.spec,
    units: [...r.keys],
    store: r.store,
    computed: r.computed,
    reused: r.reused,
    ...(r.commandLine === undefined ? {} : { flags: r.commandLine.flags, cwd: r.commandLine.cwd }),
    versions: { memscope: memscopeVersion(), resultFormat: RESULT_FORMAT_VERSION, storeLayout: STORE_VERSION, node: process.versions.node },
    createdAt: new Date().toISOString(),
  };
}
