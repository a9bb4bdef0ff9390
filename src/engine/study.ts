/**
 * A study is data plus functions (issue 15 §1): a zod schema for its spec, `plan` into keyed
 * units, `run` a batch of units, `reduce` the stored results into a summary, `report` it.
 * A {@link Runner} executes units; a {@link UnitStore} keeps them.
 */
import type { z } from 'zod';

/** A named binary output of a unit (an `.npy` tensor, a `.png` image, …); stored content-addressed. */
export interface Blob {
  /** Name within the unit, with its extension (`x0.npy`, `sample.png`). */
  readonly name: string;
  readonly bytes: Uint8Array;
}

/** One keyed unit of work. */
export interface Unit<U> {
  /** Stable key: {@link unitKey} of everything that determines the result. */
  readonly key: string;
  /** What `run` needs to compute the unit (serialisable; stored with the result). */
  readonly spec: U;
  /**
   * Units with the same `batch` value may be run together in one `run` call (e.g. rows of one
   * sampler call). Results must not depend on how units are batched. Absent: run alone.
   */
  readonly batch?: string;
}

/** What `run` returns for one unit. */
export interface UnitOutput<R> {
  /** Serialisable result (JSON). */
  readonly result: R;
  /** Binary outputs (default none). */
  readonly blobs?: readonly Blob[];
}

/** A unit as kept by a store (finished, committed). */
export interface StoredUnit<U, R> {
  readonly key: string;
  readonly study: string;
  readonly spec: U;
  readonly result: R;
  /** Blob name → content hash (SHA-256 hex). */
  readonly blobs: Readonly<Record<string, string>>;
  /** Wall seconds the unit took (its share of its batch). */
  readonly seconds: number;
  readonly host: string;
  readonly version: string;
  /** ISO date-time it was committed. */
  readonly finishedAt: string;
}

/** Reads the blobs of stored units. */
export interface BlobReader {
  /** The bytes of blob `name` of a stored unit (throws naming the unit and blob when absent). */
  readBlob(unit: StoredUnit<unknown, unknown>, name: string): Promise<Uint8Array>;
}

/** What a study's `run` is given besides its units. */
export interface RunContext<S> {
  /** The model source (or whatever the study plans over). */
  readonly source: S;
  /** Aborted when the run should stop (Ctrl-C, a failed sibling). */
  readonly signal?: AbortSignal;
  /**
   * The store the run commits to, for reading units that a unit depends on (e.g. detect's scores
   * read the CFG sampling unit it shares with evaluate). Read-only use; a unit must still compute
   * its result when what it reads is absent (a runner may order units differently).
   */
  readonly store?: Pick<UnitStore, 'get' | 'readBlob'>;
}

/**
 * A study: `Spec` (validated by `schema`), units of `U`, results `R`, a `Summary`, over a source `S`.
 * Nothing in a study knows where results are stored or how units are scheduled.
 */
export interface Study<Spec, U, R, Summary, S> {
  /** Stable identifier (e.g. `sample`, `kim`, `transition`); part of every unit key. */
  readonly id: string;
  /** The spec's schema; defaults live here. */
  readonly schema: z.ZodType<Spec>;
  /** Split a resolved spec into keyed units, in a deterministic order. */
  plan(spec: Spec, source: S): Unit<U>[] | Promise<Unit<U>[]>;
  /** Run a batch of units (all with the same `batch`), returning one output per unit, in order. */
  run(units: readonly Unit<U>[], ctx: RunContext<S>): Promise<UnitOutput<R>[]>;
  /** Combine the stored results of all planned units (in plan order) into a summary. */
  reduce(results: readonly StoredUnit<U, R>[], blobs: BlobReader, spec: Spec): Summary | Promise<Summary>;
  /** Write the summary's report files into `dir` (an empty results folder being prepared). */
  report?(summary: Summary, dir: string, spec: Spec): Promise<void>;
}

/** A committed-unit record as handed to {@link UnitStore.put}. */
export interface UnitRecord<U, R> {
  readonly key: string;
  readonly study: string;
  readonly spec: U;
  readonly result: R;
  readonly blobs: readonly Blob[];
  readonly seconds: number;
  /** The host that computed the unit (default: this one); a queue worker's, for units run elsewhere. */
  readonly host?: string;
}

/**
 * Where finished units live. `put` is atomic: after a crash a unit is either wholly present (row
 * and blobs) or absent. Putting a key that exists is a no-op (first writer wins).
 */
export interface UnitStore extends BlobReader {
  /** The stored unit with this key, or undefined. */
  get<U, R>(key: string): Promise<StoredUnit<U, R> | undefined>;
  /** Which of these keys are stored. */
  has(keys: readonly string[]): Promise<Set<string>>;
  /** Commit a finished unit (blobs first, then the row, in one transaction). */
  put<U, R>(record: UnitRecord<U, R>): Promise<StoredUnit<U, R>>;
}
