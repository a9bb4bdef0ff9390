/**
 * The results store (issue 15 §2): a folder holding `memscope.sqlite` (WAL mode) with one row per
 * finished unit, and content-addressed blob files `blobs/ab/<sha256>.<ext>`.
 *
 * Crash safety, instant by instant: a unit's blobs are written first, each to a temporary file in
 * its final folder, fsynced and renamed into place (a blob file is therefore whole or absent); the
 * unit's row is then inserted in one transaction (`INSERT OR IGNORE`: the first writer of a key
 * wins, a second never adds a row). A kill -9 at any instant loses at most the units in flight;
 * their orphan blobs are harmless (content-addressed, reused by the rerun) and their temporary
 * files are removed when the store is next opened. Readers may read while a study writes (WAL).
 *
 * A store folder is recognised by its marker file {@link STORE_MARKER}; memscope creates a store only
 * in a missing or empty folder (or one holding the marker) and never in protected places (the
 * current directory or its ancestors, the memscope package folder, its `src/`, `models/`, `data/`).
 */
import Database from 'better-sqlite3';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync, existsSync, lstatSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { extname, join, resolve } from 'node:path';
import type { StoredUnit, UnitRecord, UnitStore } from '../engine/study.ts';
import type { FileHashCache } from './fingerprint.ts';
import { canonicalJson, sha256Hex } from '../engine/canonical.ts';
import { memscopeVersion } from '../io/version.ts';
import { UsageError } from '../io/errors.ts';
import { isSameOrAncestor, packageRootReal, protectedPlace, realish } from '../io/results.ts';
import { isProcessAlive } from '../io/process.ts';

/** Name of the marker file of a store folder. */
export const STORE_MARKER = '.memscope-store.json';
/** `format` of {@link STORE_MARKER}. */
export const STORE_FORMAT = 'memscope-store';
/** Name of the database file in a store folder. */
export const STORE_DB = 'memscope.sqlite';
/** Layout version of the store (marker and schema). */
export const STORE_VERSION = 1;

/** Default store folder: `$MEMSCOPE_STORE`, else `runs/store` (relative to the current directory). */
export function defaultStoreDir(): string {
  const env = process.env['MEMSCOPE_STORE'];
  return env !== undefined && env !== '' ? env : join('runs', 'store');
}

/** A study run recorded in the store. */
export interface StudyRunRow {
  /** First 16 hex digits of SHA-256(study name + sorted unit keys). */
  readonly runId: string;
  readonly name: string;
  /** The resolved spec (JSON). */
  readonly spec: unknown;
  /** Units planned. */
  readonly units: number;
  /** Of those, how many are stored now. */
  readonly stored: number;
  readonly createdAt: string;
}

/** A stored unit as the store keeps it (raw JSON text of spec and result, for exports and byte comparisons). */
export interface StoredRow {
  readonly key: string;
  readonly study: string;
  readonly runId: string | null;
  readonly batch: string | null;
  readonly spec: string;
  readonly result: string;
  readonly blobs: string;
  readonly seconds: number;
  readonly host: string;
  readonly version: string;
  readonly finishedAt: string;
}

/** Options of {@link SqliteStore.open}. */
export interface StoreOpenOptions {
  /** The flag named in errors (default `--store`). */
  readonly flag?: string;
  /** Open an existing store only (for `results ls` / `export`): refuse a folder without the marker. */
  readonly mustExist?: boolean;
  /** Open read-only (no writes, no temp clean-up). */
  readonly readonly?: boolean;
}

/** The study run id of a study name and its unit keys. */
export function studyRunId(name: string, keys: readonly string[]): string {
  return sha256Hex(name + '\n' + [...keys].sort().join('\n')).slice(0, 16);
}

const TMP_RE = /^\.([0-9a-f]{64})\.(\d+)\.(\d+)\.tmp$/;
let tmpCounter = 0;

/** A {@link UnitStore} on SQLite (better-sqlite3, WAL) plus content-addressed blob files. */
export class SqliteStore implements UnitStore, FileHashCache {
  private runId: string | null = null;
  private batchOf = new Map<string, string>();

  private constructor(
    /** Absolute path of the store folder. */
    readonly dir: string,
    private readonly db: Database.Database,
  ) {}

  /**
   * Open (creating when needed) the store in `dir`. Refuses, with a {@link UsageError} naming the
   * flag, a folder that is neither missing, empty nor a memscope store, and protected places.
   */
  static async open(dir: string, opts: StoreOpenOptions = {}): Promise<SqliteStore> {
    const flag = opts.flag ?? '--store';
    const abs = resolve(dir);
    const refuse = (what: string): UsageError => new UsageError(`${flag} "${dir}" ${what}`);
    const place = await protectedPlace(abs);
    if (place !== null) throw refuse(`${place}; a results store never goes there. Give a folder of its own, e.g. ${flag} runs/store`);
    const pkg = await packageRootReal();
    if (pkg !== null) {
      const real = await realish(abs);
      for (const sub of ['src', 'models', 'data', 'test', 'node_modules', 'dist', 'bin']) {
        if (isSameOrAncestor(join(pkg, sub), real)) throw refuse(`is inside memscope's ${sub}/ folder (${join(pkg, sub)}); a results store never goes there. Give a folder of its own, e.g. ${flag} runs/store`);
      }
    }
    let st;
    try {
      st = lstatSync(abs);
    } catch {
      st = null;
    }
    if (st !== null) {
      if (st.isSymbolicLink()) {
        const target = statSync(abs, { throwIfNoEntry: false });
        if (!target?.isDirectory()) throw refuse('is a symbolic link to something that is not a folder');
      } else if (!st.isDirectory()) throw refuse(`is a file (${st.size} bytes), not a store folder`);
    }
    const markerPath = join(abs, STORE_MARKER);
    const hasMarker = existsSync(markerPath);
    if (hasMarker) {
      let m: unknown;
      try {
        m = JSON.parse(readFileSync(markerPath, 'utf8'));
      } catch {
        m = null;
      }
      const ok = m !== null && typeof m === 'object' && (m as Record<string, unknown>)['format'] === STORE_FORMAT;
      if (!ok) throw refuse(`holds ${STORE_MARKER} but it is not a ${STORE_FORMAT} marker`);
      const v = (m as Record<string, unknown>)['version'];
      if (typeof v === 'number' && v > STORE_VERSION) throw refuse(`is a store of a newer memscope (layout ${v}; this one reads ${STORE_VERSION})`);
    } else {
      if (opts.mustExist) throw refuse(st === null ? 'does not exist' : `is not a memscope store (no ${STORE_MARKER})`);
      if (st !== null) {
        // what a creation killed before its marker was written leaves: our own half-made store, finished now
        const entries = readdirSync(abs).filter((e) => !isInterruptedCreation(abs, e));
        if (entries.length > 0) {
          const shown = entries.sort().slice(0, 6).join(', ');
          throw refuse(`is a folder that is not a memscope store (no ${STORE_MARKER}; it holds ${shown}${entries.length > 6 ? ', …' : ''}); give an empty or new folder`);
        }
      }
      mkdirSync(join(abs, 'blobs'), { recursive: true });
    }
    const db = new Database(join(abs, STORE_DB), opts.readonly ? { readonly: true, fileMustExist: true } : {});
    db.pragma('busy_timeout = 10000');
    if (!opts.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS studies (
          run_id TEXT PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL, units INTEGER NOT NULL, created_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS study_units (
          run_id TEXT NOT NULL, position INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (run_id, position));
        CREATE TABLE IF NOT EXISTS units (
          key TEXT PRIMARY KEY, study TEXT NOT NULL, run_id TEXT, batch TEXT, spec TEXT NOT NULL, result TEXT NOT NULL,
          blobs TEXT NOT NULL, seconds REAL NOT NULL, host TEXT NOT NULL, version TEXT NOT NULL, finished_at TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS units_batch ON units (batch);
        CREATE TABLE IF NOT EXISTS run_tables (
          run_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, written_at TEXT NOT NULL, PRIMARY KEY (run_id, name));
        CREATE TABLE IF NOT EXISTS file_hashes (
          path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ms REAL NOT NULL, sha256 TEXT NOT NULL);
        INSERT OR IGNORE INTO meta (key, value) VALUES ('layout', '${STORE_VERSION}');
      `);
      if (!hasMarker) {
        // the marker last: a folder with a marker always has its database
        const tmp = join(abs, `.${STORE_MARKER}.${process.pid}.tmp`);
        const fd = openSync(tmp, 'w');
        writeSync(fd, JSON.stringify({ format: STORE_FORMAT, version: STORE_VERSION, memscopeVersion: memscopeVersion(), createdAt: new Date().toISOString() }, null, 2) + '\n');
        fsyncSync(fd);
        closeSync(fd);
        renameSync(tmp, markerPath);
      }
    }
    const store = new SqliteStore(abs, db);
    if (!opts.readonly) store.cleanTemp();
    return store;
  }

  /** Remove temporary blob files left by dead processes. Returns how many were removed. */
  cleanTemp(): number {
    let n = 0;
    const blobs = join(this.dir, 'blobs');
    for (const sub of readdirSync(blobs, { withFileTypes: true })) {
      if (!sub.isDirectory()) continue;
      for (const f of readdirSync(join(blobs, sub.name))) {
        const m = TMP_RE.exec(f);
        if (m && !isProcessAlive(Number(m[2]))) {
          rmSync(join(blobs, sub.name, f), { force: true });
          n++;
        }
      }
    }
    for (const f of readdirSync(this.dir)) {
      if (/^\..*\.(\d+)\.tmp$/.test(f) && !isProcessAlive(Number(/\.(\d+)\.tmp$/.exec(f)![1]))) {
        rmSync(join(this.dir, f), { force: true });
        n++;
      }
    }
    return n;
  }

  /**
   * Record a study run (name, resolved spec, its unit keys in plan order) and make it the run that
   * units put from now on belong to. Returns the study run id. `batches` (key → batch value) is
   * kept with each unit so that `--dry-run` can estimate times from units of the same kind.
   */
  beginStudy(name: string, spec: unknown, keys: readonly string[], batches?: ReadonlyMap<string, string>): string {
    const runId = studyRunId(name, keys);
    const tx = this.db.transaction(() => {
      const r = this.db.prepare('INSERT OR IGNORE INTO studies (run_id, name, spec, units, created_at) VALUES (?, ?, ?, ?, ?)').run(runId, name, canonicalJson(spec), keys.length, new Date().toISOString());
      if (r.changes > 0) {
        const ins = this.db.prepare('INSERT INTO study_units (run_id, position, key) VALUES (?, ?, ?)');
        keys.forEach((k, i) => ins.run(runId, i, k));
      }
    });
    tx();
    this.runId = runId;
    this.batchOf = new Map(batches ?? []);
    return runId;
  }

  async get<U, R>(key: string): Promise<StoredUnit<U, R> | undefined> {
    const row = this.row(key);
    return row === undefined ? undefined : toStored<U, R>(row);
  }

  /** The raw row of a stored unit. */
  row(key: string): StoredRow | undefined {
    const r = this.db.prepare('SELECT * FROM units WHERE key = ?').get(key) as DbRow | undefined;
    return r === undefined ? undefined : fromDb(r);
  }

  async has(keys: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    const q = this.db.prepare('SELECT key FROM units WHERE key = ?').pluck();
    for (const k of keys) if (q.get(k) !== undefined) out.add(k);
    return out;
  }

  async put<U, R>(r: UnitRecord<U, R>): Promise<StoredUnit<U, R>> {
    const existing = this.row(r.key);
    if (existing) return toStored<U, R>(existing);
    const blobs: Record<string, string> = {};
    for (const b of r.blobs) {
      if (b.name in blobs) throw new Error(`unit ${r.key}: two blobs named ${b.name}`);
      const h = sha256Hex(b.bytes);
      this.writeBlob(h, extname(b.name), b.bytes);
      blobs[b.name] = h;
    }
    const row: StoredRow = {
      key: r.key,
      study: r.study,
      runId: this.runId,
      batch: this.batchOf.get(r.key) ?? null,
      spec: JSON.stringify(r.spec),
      result: JSON.stringify(r.result),
      blobs: JSON.stringify(blobs),
      seconds: r.seconds,
      host: r.host ?? hostname(),
      version: memscopeVersion(),
      finishedAt: new Date().toISOString(),
    };
    this.db
      .prepare('INSERT OR IGNORE INTO units (key, study, run_id, batch, spec, result, blobs, seconds, host, version, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(row.key, row.study, row.runId, row.batch, row.spec, row.result, row.blobs, row.seconds, row.host, row.version, row.finishedAt);
    return toStored<U, R>(this.row(r.key)!);
  }

  /** Path of the blob file with hash `h` and extension `ext` (with its dot, or empty). */
  blobPath(h: string, ext: string): string {
    return join(this.dir, 'blobs', h.slice(0, 2), `${h}${ext}`);
  }

  private writeBlob(h: string, ext: string, bytes: Uint8Array): void {
    const path = this.blobPath(h, ext);
    if (existsSync(path)) return;
    const folder = join(this.dir, 'blobs', h.slice(0, 2));
    mkdirSync(folder, { recursive: true });
    const tmp = join(folder, `.${h}.${process.pid}.${tmpCounter++}.tmp`);
    try {
      const fd = openSync(tmp, 'w');
      try {
        let off = 0;
        while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
  }

  async readBlob(unit: StoredUnit<unknown, unknown>, name: string): Promise<Uint8Array> {
    const h = unit.blobs[name];
    if (h === undefined) throw new Error(`unit ${unit.key}: no blob named ${name}`);
    const path = this.blobPath(h, extname(name));
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch {
      throw new Error(`unit ${unit.key}: blob ${name} (${path}) is missing from the store`);
    }
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Every study run, newest first, with how many of its units are stored. */
  studies(): StudyRunRow[] {
    const rows = this.db
      .prepare(
        `SELECT s.run_id, s.name, s.spec, s.units, s.created_at,
           (SELECT COUNT(*) FROM study_units su JOIN units u ON u.key = su.key WHERE su.run_id = s.run_id) AS stored
         FROM studies s ORDER BY s.created_at DESC, s.run_id`,
      )
      .all() as { run_id: string; name: string; spec: string; units: number; created_at: string; stored: number }[];
    return rows.map((r) => ({ runId: r.run_id, name: r.name, spec: JSON.parse(r.spec) as unknown, units: r.units, stored: r.stored, createdAt: r.created_at }));
  }

  /** The study run whose id is `id` or starts with it (a unique prefix); throws a usage error naming `flag` otherwise. */
  findStudy(id: string, flag = '--study'): StudyRunRow {
    const all = this.studies();
    const hits = all.filter((s) => s.runId === id || s.runId.startsWith(id.toLowerCase()));
    if (hits.length === 1) return hits[0]!;
    if (hits.length === 0) {
      const known = all.slice(0, 8).map((s) => `${s.runId} (${s.name})`).join(', ');
      throw new UsageError(`${flag} "${id}": no study run in ${this.dir} has that id${all.length ? `; the store holds ${known}${all.length > 8 ? ', …' : ''} (memscope results ls)` : ' (the store is empty)'}`);
    }
    throw new UsageError(`${flag} "${id}" matches ${hits.length} study runs (${hits.map((s) => s.runId).join(', ')}); give more digits`);
  }

  /** The stored rows of a study run's units, in plan order (units not stored are skipped). */
  studyRows(runId: string): StoredRow[] {
    const rows = this.db.prepare('SELECT u.* FROM study_units su JOIN units u ON u.key = su.key WHERE su.run_id = ? ORDER BY su.position').all(runId) as DbRow[];
    return rows.map(fromDb);
  }

  /** Every stored row (key order). */
  allRows(): StoredRow[] {
    return (this.db.prepare('SELECT * FROM units ORDER BY key').all() as DbRow[]).map(fromDb);
  }

  /**
   * Keep a table a command reduced from a study run's units (e.g. `evaluate`'s, whose reduction
   * needs the model and tools the store does not hold), so that store views can show it. A later
   * reduction of the same run under the same name replaces it (the value says what it was made with).
   */
  putRunTable(runId: string, name: string, value: unknown): void {
    this.db.prepare('INSERT OR REPLACE INTO run_tables (run_id, name, value, written_at) VALUES (?, ?, ?, ?)').run(runId, name, JSON.stringify(value), new Date().toISOString());
  }

  /** The tables kept for a study run (name → value and when it was written); empty for a store of an older layout. */
  runTables(runId: string): Map<string, { value: unknown; writtenAt: string }> {
    try {
      const rows = this.db.prepare('SELECT name, value, written_at FROM run_tables WHERE run_id = ? ORDER BY name').all(runId) as { name: string; value: string; written_at: string }[];
      return new Map(rows.map((r) => [r.name, { value: JSON.parse(r.value) as unknown, writtenAt: r.written_at }]));
    } catch {
      return new Map(); // a store written before run tables existed, opened read-only
    }
  }

  /** Mean seconds per unit of the stored units with this batch value, or null when there are none. */
  meanSeconds(batch: string): { mean: number; n: number } | null {
    const r = this.db.prepare('SELECT AVG(seconds) AS mean, COUNT(*) AS n FROM units WHERE batch = ?').get(batch) as { mean: number | null; n: number };
    return r.n > 0 && r.mean !== null ? { mean: r.mean, n: r.n } : null;
  }

  /** The cached SHA-256 of a model file, when its size and modification time are unchanged. */
  getFileHash(path: string, size: number, mtimeMs: number): string | undefined {
    try {
      return (this.db.prepare('SELECT sha256 FROM file_hashes WHERE path = ? AND size = ? AND mtime_ms = ?').pluck().get(path, size, mtimeMs) as string | undefined) ?? undefined;
    } catch {
      return undefined; // a store of an older layout opened read-only
    }
  }

  /** Remember the SHA-256 of a model file (no-op on a read-only store). */
  setFileHash(path: string, size: number, mtimeMs: number, sha256: string): void {
    if (this.db.readonly) return;
    this.db.prepare('INSERT OR REPLACE INTO file_hashes (path, size, mtime_ms, sha256) VALUES (?, ?, ?, ?)').run(path, size, mtimeMs, sha256);
  }

  /** Close the database. */
  close(): void {
    this.db.close();
  }
}

interface DbRow {
  key: string;
  study: string;
  run_id: string | null;
  batch: string | null;
  spec: string;
  result: string;
  blobs: string;
  seconds: number;
  host: string;
  version: string;
  finished_at: string;
}

function fromDb(r: DbRow): StoredRow {
  return { key: r.key, study: r.study, runId: r.run_id, batch: r.batch, spec: r.spec, result: r.result, blobs: r.blobs, seconds: r.seconds, host: r.host, version: r.version, finishedAt: r.finished_at };
}

function toStored<U, R>(r: StoredRow): StoredUnit<U, R> {
  return {
    key: r.key,
    study: r.study,
    spec: JSON.parse(r.spec) as U,
    result: JSON.parse(r.result) as R,
    blobs: JSON.parse(r.blobs) as Record<string, string>,
    seconds: r.seconds,
    host: r.host,
    version: r.version,
    finishedAt: r.finishedAt,
  };
}

/**
 * Whether `entry` of a marker-less folder is something a store creation writes before its marker
 * (the empty blobs/ folder, the database and its WAL files, the marker's temporary file): a process
 * killed there leaves only these, and the next open finishes the store instead of refusing it.
 */
function isInterruptedCreation(dir: string, entry: string): boolean {
  if (entry === STORE_DB || entry === `${STORE_DB}-wal` || entry === `${STORE_DB}-shm`) return true;
  if (entry.startsWith(`.${STORE_MARKER}.`) && entry.endsWith('.tmp')) return true;
  if (entry === 'blobs') {
    const st = statSync(join(dir, entry), { throwIfNoEntry: false });
    return st?.isDirectory() === true && readdirSync(join(dir, entry)).length === 0;
  }
  return false;
}
