/** An in-memory {@link UnitStore}: for tests and for library calls that need no persistence. */
import { hostname } from 'node:os';
import type { StoredUnit, UnitRecord, UnitStore } from './study.ts';
import { sha256Hex } from './canonical.ts';
import { memscopeVersion } from '../io/version.ts';

/** Keeps units and blobs in maps; same semantics as the SQLite store (first writer wins). */
export class MemoryStore implements UnitStore {
  private readonly units = new Map<string, StoredUnit<unknown, unknown>>();
  private readonly blobData = new Map<string, Uint8Array>();

  async get<U, R>(key: string): Promise<StoredUnit<U, R> | undefined> {
    return this.units.get(key) as StoredUnit<U, R> | undefined;
  }

  async has(keys: readonly string[]): Promise<Set<string>> {
    return new Set(keys.filter((k) => this.units.has(k)));
  }

  async put<U, R>(r: UnitRecord<U, R>): Promise<StoredUnit<U, R>> {
    const existing = this.units.get(r.key);
    if (existing) return existing as StoredUnit<U, R>;
    const blobs: Record<string, string> = {};
    for (const b of r.blobs) {
      if (b.name in blobs) throw new Error(`unit ${r.key}: two blobs named ${b.name}`);
      const h = sha256Hex(b.bytes);
      this.blobData.set(h, b.bytes.slice());
      blobs[b.name] = h;
    }
    // round-trip through JSON so callers see what a persistent store would give back
    const s: StoredUnit<U, R> = {
      key: r.key,
      study: r.study,
      spec: JSON.parse(JSON.stringify(r.spec)) as U,
      result: JSON.parse(JSON.stringify(r.result)) as R,
      blobs,
      seconds: r.seconds,
      host: r.host ?? hostname(),
      version: memscopeVersion(),
      finishedAt: new Date().toISOString(),
    };
    this.units.set(r.key, s as StoredUnit<unknown, unknown>);
    return s;
  }

  async readBlob(unit: StoredUnit<unknown, unknown>, name: string): Promise<Uint8Array> {
    const h = unit.blobs[name];
    const d = h === undefined ? undefined : this.blobData.get(h);
    if (!d) throw new Error(`unit ${unit.key}: no blob named ${name}`);
    return d;
  }

  /** Number of stored units. */
  get size(): number {
    return this.units.size;
  }
}
