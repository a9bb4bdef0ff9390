/**
 * Tables of a study run for pandas / DuckDB users (issue 15 §2): `units` (one row per unit: its
 * key, study, run, timing, host, version, the flattened scalar fields of its spec and result, its
 * blob hashes) and `steps` (one row per unit × step, from the result's per-step series: arrays of
 * numbers, or null, of one common length), written as Parquet, CSV or JSON Lines.
 */
import { parquetWriteBuffer } from 'hyparquet-writer';
import type { StoredRow } from './sqlite-store.ts';

/** Export formats. */
export const EXPORT_FORMATS = ['parquet', 'csv', 'jsonl'] as const;
/** An export format. */
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** A table: column names in order and rows of scalar values (null where absent). */
export interface Table {
  readonly columns: readonly string[];
  readonly rows: readonly Record<string, string | number | boolean | null>[];
}

type Scalar = string | number | boolean | null;

/** Flatten `v` into `out` with dotted names; arrays become JSON text (series are taken out before). */
function flatten(prefix: string, v: unknown, out: Record<string, Scalar>): void {
  if (v === null || v === undefined) out[prefix] = null;
  else if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') out[prefix] = v;
  else if (Array.isArray(v)) out[prefix] = JSON.stringify(v);
  else if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length === 0) out[prefix] = '{}';
    for (const [k, x] of entries) flatten(`${prefix}.${k}`, x, out);
  } else out[prefix] = String(v);
}

/** The per-step series of a result: its top-level fields that are arrays of numbers (or null) of the most common length ≥ 1. */
export function seriesOf(result: unknown): { length: number; names: string[] } {
  if (result === null || typeof result !== 'object' || Array.isArray(result)) return { length: 0, names: [] };
  const counts = new Map<number, number>();
  const numeric = Object.entries(result as Record<string, unknown>).filter(([, v]) => Array.isArray(v) && v.length > 0 && v.every((x) => x === null || typeof x === 'number')) as [string, unknown[]][];
  for (const [, v] of numeric) counts.set(v.length, (counts.get(v.length) ?? 0) + 1);
  let length = 0;
  let best = 0;
  for (const [n, c] of counts) if (c > best || (c === best && n > length)) [length, best] = [n, c];
  return { length, names: numeric.filter(([, v]) => v.length === length).map(([k]) => k) };
}

/** Build the `units` and `steps` tables of stored rows (plan order). */
export function exportTables(rows: readonly StoredRow[]): { units: Table; steps: Table } {
  const unitRows: Record<string, Scalar>[] = [];
  const stepRows: Record<string, Scalar>[] = [];
  const unitCols = new Set<string>(['key', 'study', 'run_id', 'seconds', 'host', 'version', 'finished_at']);
  const stepCols = new Set<string>(['key', 'step']);
  for (const r of rows) {
    const spec = JSON.parse(r.spec) as unknown;
    const result = JSON.parse(r.result) as unknown;
    const blobs = JSON.parse(r.blobs) as Record<string, string>;
    const { length, names } = seriesOf(result);
    const seriesNames = new Set(names);
    const u: Record<string, Scalar> = { key: r.key, study: r.study, run_id: r.runId, seconds: r.seconds, host: r.host, version: r.version, finished_at: r.finishedAt };
    const flat: Record<string, Scalar> = {};
    flatten('spec', spec, flat);
    if (result !== null && typeof result === 'object' && !Array.isArray(result)) {
      for (const [k, v] of Object.entries(result as Record<string, unknown>)) if (!seriesNames.has(k)) flatten(`result.${k}`, v, flat);
    } else flatten('result', result, flat);
    for (const [n, h] of Object.entries(blobs)) flat[`blob.${n}`] = h;
    for (const [k, v] of Object.entries(flat)) {
      u[k] = v;
      unitCols.add(k);
    }
    unitRows.push(u);
    const res = result as Record<string, unknown>;
    for (let i = 0; i < length; i++) {
      const s: Record<string, Scalar> = { key: r.key, step: i };
      for (const n of names) {
        s[n] = ((res[n] as (number | null)[])[i] ?? null) as Scalar;
        stepCols.add(n);
      }
      stepRows.push(s);
    }
  }
  const fill = (cols: Set<string>, rs: Record<string, Scalar>[]): Table => ({ columns: [...cols], rows: rs.map((r) => Object.fromEntries([...cols].map((c) => [c, r[c] ?? null]))) });
  return { units: fill(unitCols, unitRows), steps: fill(stepCols, stepRows) };
}

function csvCell(v: Scalar): string {
  if (v === null) return '';
  const s = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : v > 0 ? 'inf' : v < 0 ? '-inf' : 'nan') : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The bytes of `t` in `format`. */
export function encodeTable(t: Table, format: ExportFormat): Uint8Array {
  if (format === 'csv') {
    const lines = [t.columns.map((c) => csvCell(c)).join(','), ...t.rows.map((r) => t.columns.map((c) => csvCell(r[c] ?? null)).join(','))];
    return new TextEncoder().encode(lines.join('\n') + '\n');
  }
  if (format === 'jsonl') return new TextEncoder().encode(t.rows.map((r) => JSON.stringify(r)).join('\n') + (t.rows.length ? '\n' : ''));
  const columnData = t.columns.map((name) => {
    const data = t.rows.map((r) => r[name] ?? null);
    const kinds = new Set(data.filter((v) => v !== null).map((v) => typeof v));
    if (kinds.size === 1 && kinds.has('number')) return { name, data: data as (number | null)[], type: 'DOUBLE' as const };
    if (kinds.size === 1 && kinds.has('boolean')) return { name, data: data as (boolean | null)[], type: 'BOOLEAN' as const };
    return { name, data: data.map((v) => (v === null ? null : String(v))), type: 'STRING' as const };
  });
  return new Uint8Array(parquetWriteBuffer({ columnData, createdBy: 'memscope' }));
}
