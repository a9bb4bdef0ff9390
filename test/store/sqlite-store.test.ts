import { describe, it, expect } from 'vitest';
import { mkdtemp, mkdir, readdir, writeFile, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore, STORE_MARKER, studyRunId } from '../../src/store/sqlite-store.ts';
import { sha256Hex } from '../../src/engine/canonical.ts';
import { UsageError } from '../../src/cli/args.ts';
import { packageRoot } from '../../src/data/paths.ts';

const tmp = (): Promise<string> => mkdtemp(join(tmpdir(), 'memscope-store-'));

describe('SqliteStore', () => {
  it('commits a unit with its blobs once; get / has / readBlob give back what was put', async () => {
    const dir = join(await tmp(), 's');
    const s = await SqliteStore.open(dir);
    const runId = s.beginStudy('toy', { a: 1 }, ['k1', 'k2'], new Map([['k1', 'b']]));
    expect(runId).toBe(sha256Hex('toy\nk1\nk2').slice(0, 16));
    expect(studyRunId('toy', ['k2', 'k1'])).toBe(runId);
    const bytes = new Uint8Array([1, 2, 3, 250]);
    const u = await s.put({ key: 'k1', study: 'toy', spec: { seed: 1 }, result: { x: 0.5, s: [1, 2] }, blobs: [{ name: 'x0.npy', bytes }], seconds: 0.25 });
    expect(u.blobs['x0.npy']).toBe(sha256Hex(bytes));
    expect(await readdir(join(dir, 'blobs', u.blobs['x0.npy']!.slice(0, 2)))).toEqual([`${u.blobs['x0.npy']}.npy`]);
    // a second put of the same key changes nothing (first writer wins)
    await s.put({ key: 'k1', study: 'toy', spec: { seed: 1 }, result: { x: 99 }, blobs: [], seconds: 9 });
    expect((await s.get<{ seed: number }, { x: number }>('k1'))!.result.x).toBe(0.5);
    expect([...(await s.has(['k1', 'k2']))]).toEqual(['k1']);
    expect(Array.from(await s.readBlob(u as never, 'x0.npy'))).toEqual([1, 2, 3, 250]);
    expect(s.studies()).toMatchObject([{ runId, name: 'toy', units: 2, stored: 1 }]);
    expect(s.findStudy(runId.slice(0, 4)).runId).toBe(runId);
    expect(s.meanSeconds('b')).toEqual({ mean: 0.25, n: 1 });
    s.close();
    // reopen: same contents; a reader sees the row while the writer holds the database open (WAL)
    const s2 = await SqliteStore.open(dir);
    const reader = new Database(join(dir, 'memscope.sqlite'), { readonly: true });
    await s2.put({ key: 'k2', study: 'toy', spec: { seed: 2 }, result: { x: 1 }, blobs: [], seconds: 0.1 });
    expect((reader.prepare('SELECT COUNT(*) FROM units').pluck().get() as number)).toBe(2);
    expect(reader.pragma('journal_mode', { simple: true })).toBe('wal');
    reader.close();
    s2.close();
  });

  it('refuses a non-empty folder that is not a store, a file, and places inside the package', async () => {
    const d = await tmp();
    await writeFile(join(d, 'mine.txt'), 'keep');
    await expect(SqliteStore.open(d)).rejects.toThrow(UsageError);
    await expect(SqliteStore.open(d)).rejects.toThrow(/--store ".*" is a folder that is not a memscope store .*mine\.txt/);
    expect(await readdir(d)).toEqual(['mine.txt']);
    await expect(SqliteStore.open(join(d, 'mine.txt'))).rejects.toThrow(/is a file/);
    await expect(SqliteStore.open(join(packageRoot(), 'src', 'store-here'))).rejects.toThrow(/inside memscope's src\/ folder/);
    await expect(SqliteStore.open(join(packageRoot(), 'models', 'x'))).rejects.toThrow(/models/);
    await expect(SqliteStore.open(packageRoot())).rejects.toThrow(/package folder|current directory/);
    await expect(SqliteStore.open(join(d, 'none'), { mustExist: true })).rejects.toThrow(/does not exist/);
  });

  it('finishes a store whose creation was killed before its marker (and still refuses a folder holding more)', async () => {
    // the state a kill between the database and the marker's rename leaves: blobs/ empty, the
    // database (and its WAL files), maybe the marker's temporary file — and no marker
    const dir = join(await tmp(), 's');
    (await SqliteStore.open(dir)).close();
    await rm(join(dir, STORE_MARKER));
    await writeFile(join(dir, `.${STORE_MARKER}.4242.tmp`), '{');
    const s = await SqliteStore.open(dir);
    await s.put({ key: 'k', study: 'toy', spec: {}, result: { x: 1 }, blobs: [], seconds: 0 });
    s.close();
    expect(JSON.parse(await readFile(join(dir, STORE_MARKER), 'utf8'))).toMatchObject({ format: 'memscope-store' });
    // not ours: a marker-less folder with the database *and* a user's file, or blobs in blobs/
    const d2 = join(await tmp(), 's2');
    (await SqliteStore.open(d2)).close();
    await rm(join(d2, STORE_MARKER));
    await writeFile(join(d2, 'notes.txt'), 'keep');
    await expect(SqliteStore.open(d2)).rejects.toThrow(/is a folder that is not a memscope store .*notes\.txt/);
    const d3 = join(await tmp(), 's3');
    (await SqliteStore.open(d3)).close();
    await rm(join(d3, STORE_MARKER));
    await writeFile(join(d3, 'blobs', 'x'), 'keep');
    await expect(SqliteStore.open(d3)).rejects.toThrow(/is a folder that is not a memscope store .*blobs/);
  });

  it('removes temporary blob files of dead processes on open, keeps the marker and data', async () => {
    const dir = join(await tmp(), 's');
    (await SqliteStore.open(dir)).close();
    const h = 'ab'.padEnd(64, '0');
    await mkdir(join(dir, 'blobs', 'ab'), { recursive: true });
    const dead = 2 ** 22 + 12345; // above Linux's default pid_max: no such process
    await writeFile(join(dir, 'blobs', 'ab', `.${h}.${dead}.0.tmp`), 'half');
    await writeFile(join(dir, 'blobs', 'ab', `.${h}.${process.pid}.0.tmp`), 'mine, in flight');
    const s = await SqliteStore.open(dir);
    expect(await readdir(join(dir, 'blobs', 'ab'))).toEqual([`.${h}.${process.pid}.0.tmp`]);
    expect(JSON.parse(await readFile(join(dir, STORE_MARKER), 'utf8')).format).toBe('memscope-store');
    s.close();
  });
});

describe('model fingerprints', () => {
  it('hash file contents (not names or dates) and remember them in the store by path, size and date', async () => {
    const { folderFingerprint, hashFile, setFileHashCache } = await import('../../src/store/fingerprint.ts');
    const d = await tmp();
    await mkdir(join(d, 'm1'));
    await mkdir(join(d, 'm2'));
    await writeFile(join(d, 'm1', 'model.json'), '{"a":1}');
    await writeFile(join(d, 'm1', 'weights.bin'), 'wwww');
    await writeFile(join(d, 'm2', 'model.json'), '{"a":1}');
    await writeFile(join(d, 'm2', 'weights.bin'), 'wwww');
    expect(await folderFingerprint('trained', join(d, 'm1'))).toBe(await folderFingerprint('trained', join(d, 'm2')));
    await writeFile(join(d, 'm2', 'weights.bin'), 'wwwx');
    expect(await folderFingerprint('trained', join(d, 'm1'))).not.toBe(await folderFingerprint('trained', join(d, 'm2')));
    const s = await SqliteStore.open(join(d, 'store'));
    setFileHashCache(s);
    try {
      await writeFile(join(d, 'big.onnx'), 'onnx bytes');
      expect(await hashFile(join(d, 'big.onnx'))).toBe(sha256Hex('onnx bytes'));
      const { size, mtimeMs } = await import('node:fs').then((fs) => fs.statSync(join(d, 'big.onnx')));
      expect(s.getFileHash(join(d, 'big.onnx'), size, mtimeMs)).toBe(sha256Hex('onnx bytes'));
      expect(s.getFileHash(join(d, 'big.onnx'), size + 1, mtimeMs)).toBeUndefined();
    } finally {
      setFileHashCache(null);
      s.close();
    }
  });
});
