/**
 * Runners execute a study's pending units against a store (issue 15 §4). `InProcessRunner` runs
 * them in this process in plan order, batching units that share a `batch` value; a queue-backed
 * runner (issue 18) is another implementation of the same interface.
 */
import type { Study, Unit, UnitStore, StoredUnit } from './study.ts';

/** Progress of a run, reported after each committed batch (and once at the start). */
export interface RunProgress {
  /** Units planned. */
  readonly total: number;
  /** Units found already in the store at the start. */
  readonly cached: number;
  /** Units finished so far (cached ones included). */
  readonly done: number;
  /** Seconds since the run started. */
  readonly elapsed: number;
  /** Estimated seconds left (from the pace of this run's computed units), or null before the first. */
  readonly eta: number | null;
  /** For a run on queue workers: units held by workers now, waiting, retrying and failed, and each worker's committed units. */
  readonly queue?: {
    readonly inFlight: number;
    readonly waiting: number;
    readonly retrying: number;
    readonly failed: number;
    readonly workers: readonly { readonly worker: string; readonly units: number }[];
  };
}

/** Options of {@link Runner.run}. */
export interface RunOptions {
  readonly onProgress?: (p: RunProgress) => void;
  readonly signal?: AbortSignal;
  /** Most units per `run` call (default: every unit of a batch group at once). */
  readonly maxBatch?: number;
}

/** What a run did. */
export interface RunOutcome<U, R> {
  /** Every planned unit, as stored, in plan order. */
  readonly units: StoredUnit<U, R>[];
  /** Units computed by this run. */
  readonly computed: number;
  /** Units reused from the store. */
  readonly reused: number;
}

/** Executes units of a study and commits each to a store. */
export interface Runner {
  run<Spec, U, R, Summary, S>(
    study: Study<Spec, U, R, Summary, S>,
    units: readonly Unit<U>[],
    source: S,
    store: UnitStore,
    opts?: RunOptions,
  ): Promise<RunOutcome<U, R>>;
}

/** Group pending units into batches: by `batch` value in order of first appearance, chunks of at most `maxBatch`. */
export function batchUnits<U>(units: readonly Unit<U>[], maxBatch = Infinity): Unit<U>[][] {
  const groups = new Map<string, Unit<U>[]>();
  const out: Unit<U>[][] = [];
  for (const u of units) {
    if (u.batch === undefined) {
      out.push([u]);
      continue;
    }
    let g = groups.get(u.batch);
    if (!g || g.length >= maxBatch) {
      g = [];
      groups.set(u.batch, g);
      out.push(g);
    }
    g.push(u);
  }
  return out;
}

/** Throws when two planned units share a key (a study's plan must key every unit uniquely; runners check it before any work). */
export function assertUniqueKeys(studyId: string, units: readonly Unit<unknown>[]): void {
  const seen = new Set<string>();
  for (const u of units) {
    if (seen.has(u.key)) throw new Error(`study ${studyId}: two planned units share the key ${u.key}`);
    seen.add(u.key);
  }
}

/** Runs units in this process, in plan order, committing each batch's units as soon as they finish. */
export class InProcessRunner implements Runner {
  async run<Spec, U, R, Summary, S>(
    study: Study<Spec, U, R, Summary, S>,
    units: readonly Unit<U>[],
    source: S,
    store: UnitStore,
    opts: RunOptions = {},
  ): Promise<RunOutcome<U, R>> {
    assertUniqueKeys(study.id, units);
    const t0 = performance.now();
    const stored = await store.has(units.map((u) => u.key));
    const cached = stored.size;
    let done = cached;
    let computedSeconds = 0;
    let computed = 0;
    const progress = (): void => {
      const elapsed = (performance.now() - t0) / 1000;
      const eta = computed > 0 ? (computedSeconds / computed) * (units.length - done) : null;
      opts.onProgress?.({ total: units.length, cached, done, elapsed, eta });
    };
    progress();
    // Batches are cut from the whole plan, not from the pending units: a resumed run puts every unit
    // into the same model call as an uninterrupted run, so models whose float rounding depends on
    // the batch composition still give identical bytes. A partly stored batch (a kill between two
    // commits) is recomputed whole; only its missing units are committed.
    for (const batch of batchUnits(units, opts.maxBatch ?? Infinity)) {
      const missing = batch.filter((u) => !stored.has(u.key)).length;
      if (missing === 0) continue;
      opts.signal?.throwIfAborted();
      const b0 = performance.now();
      const outputs = await study.run(batch, { source, store, ...(opts.signal ? { signal: opts.signal } : {}) });
      if (outputs.length !== batch.length) {
        throw new Error(`study ${study.id}: run returned ${outputs.length} outputs for ${batch.length} units`);
      }
      const seconds = (performance.now() - b0) / 1000;
      for (let i = 0; i < batch.length; i++) {
        const u = batch[i]!;
        if (stored.has(u.key)) continue;
        const o = outputs[i]!;
        await store.put({ key: u.key, study: study.id, spec: u.spec, result: o.result, blobs: o.blobs ?? [], seconds: seconds / batch.length });
      }
      computed += missing;
      computedSeconds += seconds;
      done += missing;
      progress();
    }
    const all: StoredUnit<U, R>[] = [];
    for (const u of units) {
      const s = await store.get<U, R>(u.key);
      if (!s) throw new Error(`study ${study.id}: unit ${u.key} is missing from the store after the run`);
      all.push(s);
    }
    return { units: all, computed, reused: cached };
  }
}
