/**
 * `memscope sample` on the store and `memscope results ls / export`: run.json, --dry-run,
 * --config, and the exported tables read back (Parquet with hyparquet) against the store rows.
 */
import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import Database from 'better-sqlite3';
import { runCli } from '../helpers/cli.ts';

const tmp = (): Promise<string> => mkdtemp(join(tmpdir(), 'memscope-results-'));

describe('sample → store → results', () => {
  it('writes run.json, reuses the store on a rerun, re-renders with --config, dry-runs, and exports the tables', async () => {
    const dir = await tmp();
    const store = join(dir, 'store');
    const args = ['sample', '--prompts', 'caption:0,class:1', '--seeds', '0-1', '--steps', '4', '--guidance', 'dtp:7.5', '--store', store];
    const a = await runCli([...args, '--out', join(dir, 'a')]);
    expect(a.err).toBe('');
    expect(a.code).toBe(0);
    const run = JSON.parse(await readFile(join(dir, 'a', 'run.json'), 'utf8'));
    expect(run).toMatchObject({ format: 'memscope-run', command: 'sample', study: 'sample', computed: 4, reused: 0, store, spec: { model: 'testbed', prompts: 'caption:0,class:1', seeds: '0-1', steps: 4, guidance: 'dtp:7.5', sampler: 'ddim', record: [] } });
    expect(run.units).toHaveLength(4);
    expect(run.versions.resultFormat).toBe(1);

    // dry run: everything stored, nothing written
    const dry = await runCli([...args, '--dry-run', '--out', join(dir, 'never')]);
    expect(dry.code).toBe(0);
    expect(dry.out).toMatch(/units: 4 \(4 already in the store, 0 to compute\)/);
    expect(dry.out).toMatch(/"guidance": "dtp:7.5"/);
    const dry2 = await runCli([...args.map((x) => (x === '0-1' ? '0-2' : x)), '--dry-run']);
    expect(dry2.out).toMatch(/units: 6 \(4 already in the store, 2 to compute\)/);
    expect(dry2.out).toMatch(/estimated time: about \d+s/);
    expect((await readdir(dir)).sort()).toEqual(['a', 'store']);

    // --config re-renders from the store: same files, same bytes, nothing computed
    const b = await runCli(['sample', '--config', join(dir, 'a', 'run.json'), '--out', join(dir, 'b')]);
    expect(b.err).toBe('');
    const runB = JSON.parse(await readFile(join(dir, 'b', 'run.json'), 'utf8'));
    expect(runB).toMatchObject({ computed: 0, reused: 4, units: run.units, studyRun: run.studyRun });
    for (const f of ['samples.npy', 'noise.npy', 'guidance.json', 'config.json', 'grid.png']) {
      expect((await readFile(join(dir, 'b', f))).equals(await readFile(join(dir, 'a', f))), f).toBe(true);
    }

    const ls = await runCli(['results', 'ls', '--store', store]);
    expect(ls.code).toBe(0);
    expect(ls.out).toContain(`${run.studyRun}  sample      4/4`);

    const db = new Database(join(store, 'memscope.sqlite'), { readonly: true });
    const rows = db.prepare('SELECT * FROM units ORDER BY key').all() as { key: string; result: string; spec: string; seconds: number; blobs: string }[];
    db.close();
    const byKey = new Map(rows.map((r) => [r.key, r]));
    for (const format of ['parquet', 'csv', 'jsonl'] as const) {
      const out = join(dir, `x-${format}`);
      const e = await runCli(['results', 'export', '--store', store, '--study', run.studyRun.slice(0, 6), '--format', format, '--out', out]);
      expect(e.err).toBe('');
      expect(e.code).toBe(0);
      expect(e.out).toMatch(/units\.\w+ \(4 rows\)\n.*steps\.\w+ \(16 rows\)/);
      let units: Record<string, unknown>[];
      let steps: Record<string, unknown>[];
      if (format === 'parquet') {
        const read = async (f: string) => {
          const buf = await readFile(join(out, f));
          return parquetReadObjects({ file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer });
        };
        units = await read('units.parquet');
        steps = await read('steps.parquet');
      } else if (format === 'jsonl') {
        const read = async (f: string) => (await readFile(join(out, f), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
        units = await read('units.jsonl');
        steps = await read('steps.jsonl');
      } else {
        const text = await readFile(join(out, 'steps.csv'), 'utf8');
        const [head, ...lines] = text.trim().split('\n');
        expect(head).toBe('key,step,t,alphaBar,s,d');
        steps = lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [head!.split(',')[i]!, i === 0 ? v : Number(v)])));
        units = [];
      }
      // every step row equals the stored result's series entry, in plan order (units in run.units order)
      expect(steps.map((s) => s['key'])).toEqual(run.units.flatMap((k: string) => [k, k, k, k]));
      for (const s of steps) {
        const r = JSON.parse(byKey.get(s['key'] as string)!.result) as Record<string, number[]>;
        const i = Number(s['step']);
        for (const c of ['t', 'alphaBar', 's', 'd']) expect(Number(s[c]), `${format} ${c}`).toBe(r[c]![i]);
      }
      for (const u of units) {
        const row = byKey.get(u['key'] as string)!;
        const spec = JSON.parse(row.spec);
        const result = JSON.parse(row.result);
        expect(u['spec.seed']).toBe(spec.seed);
        expect(u['spec.condition.id']).toBe(spec.condition.id);
        expect(u['result.switchStep'] ?? null).toBe(result.switchStep);
        expect(u['seconds']).toBe(row.seconds);
        expect(u['blob.x0.npy']).toBe(JSON.parse(row.blobs)['x0.npy']);
      }
      if (format !== 'csv') expect(units.map((u) => u['key'])).toEqual(run.units);
    }

    const bad = await runCli(['results', 'export', '--store', store, '--study', 'zzzz']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--study "zzzz": no study run .* has that id; the store holds/);
    const fmt = await runCli(['results', 'export', '--store', store, '--study', run.studyRun, '--format', 'xlsx']);
    expect(fmt.code).toBe(2);
    expect(fmt.err).toMatch(/--format: "xlsx" is not one of parquet, csv, jsonl/);
    await writeFile(join(dir, 'notastore'), 'x');
    expect((await runCli(['results', 'ls', '--store', join(dir, 'nothing')])).err).toMatch(/--store ".*nothing" does not exist/);
  });
});

describe('sample --store refusals', () => {
  it('a folder that is not a store, or a place inside the package, is refused before any work (exit 2, nothing written)', async () => {
    const dir = await tmp();
    await writeFile(join(dir, 'notes.txt'), 'mine');
    const r = await runCli(['sample', '--steps', '2', '--store', dir, '--out', join(dir, 'out')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--store ".*" is a folder that is not a memscope store \(no \.memscope-store\.json; it holds notes\.txt\)/);
    expect(await readdir(dir)).toEqual(['notes.txt']);
    const p = await runCli(['sample', '--steps', '2', '--store', join(process.cwd(), 'src', 'x'), '--out', join(dir, 'out')]);
    expect(p.code).toBe(2);
    expect(p.err).toMatch(/inside memscope's src\/ folder/);
  });
});
