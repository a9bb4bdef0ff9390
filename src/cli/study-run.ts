/**
 * What every study command shares (issue 15 §3–4): the `--store` and `--dry-run` flags, opening
 * the results store, the dry-run summary (units, how many are stored, an estimated time), running
 * the planned units with progress, and the `run.json` record written next to the results.
 */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import type { Study, Unit } from '../engine/study.ts';
import { InProcessRunner, type RunOutcome } from '../engine/runner.ts';
import { progressReporter, formatDuration } from '../engine/progress.ts';
import { SqliteStore, STORE_MARKER, defaultStoreDir } from '../store/sqlite-store.ts';
import { runRecord, type RunRecord } from '../store/run-record.ts';
import { setFileHashCache } from '../store/fingerprint.ts';
import { flagDocs, type HelpSection } from './help.ts';

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

/** The help section of the store flags. */
export const STORE_SECTION: HelpSection = { heading: 'Results store:', flags: ['store', 'dry-run'] };

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
  opts: { maxBatch?: number } = {},
): Promise<{ outcome: RunOutcome<U, R>; runJson: RunRecord }> {
  const keys = units.map((u) => u.key);
  const runId = store.beginStudy(study.id, spec, keys, new Map(units.map((u) => [u.key, u.batch ?? ''])));
  const progress = progressReporter({ label: command });
  let outcome: RunOutcome<U, R>;
  try {
    outcome = await new InProcessRunner().run(study, units, source, store, {
      onProgress: (p) => progress.update(p),
      ...(opts.maxBatch === undefined ? {} : { maxBatch: opts.maxBatch }),
    });
  } finally {
    progress.stop();
  }
  const runJson = runRecord({ command, study: study.id, runId, spec, keys, store: store.dir, computed: outcome.computed, reused: outcome.reused });
  return { outcome, runJson };
}
