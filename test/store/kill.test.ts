/**
 * Kill -9 test (issue 15 §2): a child process runs a small `sample` study into a temp store and is
 * SIGKILLed at 10 seeded random instants while it works (a drawn count of committed units plus 0–19 ms); after each kill the next run
 * resumes. The final store must equal an uninterrupted run's: the same keys, the same spec, result
 * and blob bytes (only seconds / host / finished-at may differ), one row per unit, no temp files.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { GraphBuilder } from '../../src/graph/builder.ts';
import { encodeNpy } from '../../src/io/npy.ts';
import { Mt19937 } from '../../src/random/torch.ts';

const CHILD = fileURLToPath(new URL('./kill-child.ts', import.meta.url));
const TSX = fileURLToPath(new URL('../../node_modules/tsx/dist/esm/index.mjs', import.meta.url));

let modelDir = '';
beforeAll(async () => {
  modelDir = await mkdtemp(join(tmpdir(), 'memscope-kill-model-'));
  // ε = 0.1·x + mean(encoder_hidden_states)·t/1000
  const b = new GraphBuilder({ name: 'ehs' });
  const x = b.input('sample', 'float32', ['B', 1, 4, 4]);
  const ts = b.input('timestep', 'int64', ['B']);
  const e = b.input('encoder_hidden_states', 'float32', ['B', 3, 5]);
  const m = b.op('ReduceMean', [e], { axes: [1, 2], keepdims: 1 });
  const tf = b.op('Reshape', [b.op('Div', [b.op('Cast', [ts], { to: 1 }), b.constF32(1000)]), b.constI64([-1, 1, 1, 1])]);
  b.output(b.op('Add', [b.op('Mul', [x, b.constF32(0.1)]), b.op('Mul', [b.op('Unsqueeze', [m, b.constI64([3])]), tf])]), 'float32', ['B', 1, 4, 4], 'out_sample');
  await writeFile(join(modelDir, 'm.onnx'), b.toBytes());
  const c = new Float32Array(4 * 15).map((_, i) => Math.sin(i));
  await writeFile(join(modelDir, 'cond.npy'), encodeNpy({ dims: [4, 3, 5], data: c }));
});

interface Kill { afterDone: number; extraMs: number }
/** Run the child into `store`; with `kill`, SIGKILL it `extraMs` after it reports `afterDone` units committed. */
function runChild(store: string, kill: Kill | null): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string; done: number }> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, ['--import', TSX, CHILD, store, modelDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let done = 0;
    let armed = false;
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      for (const m of out.matchAll(/^done (\d+)$/gm)) done = Math.max(done, Number(m[1]));
      if (kill !== null && !armed && done >= kill.afterDone) {
        armed = true;
        setTimeout(() => p.kill('SIGKILL'), kill.extraMs);
      }
    });
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', rej);
    p.on('close', (code, signal) => res({ code, signal, out, err, done }));
  });
}

interface Row { key: string; study: string; spec: string; result: string; blobs: string }
function rows(store: string): Row[] {
  const db = new Database(join(store, 'memscope.sqlite'), { readonly: true });
  try {
    return db.prepare('SELECT key, study, spec, result, blobs FROM units ORDER BY key').all() as Row[];
  } finally {
    db.close();
  }
}
async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of await readdir(join(dir, 'blobs'))) for (const f of await readdir(join(dir, 'blobs', sub))) out.push(`${sub}/${f}`);
  return out.sort();
}

describe('kill -9 at random instants', () => {
  it('the store after 10 kills and a final rerun equals an uninterrupted run', async () => {
    const t0 = performance.now();
    const root = await mkdtemp(join(tmpdir(), 'memscope-kill-'));
    const ref = join(root, 'ref');
    const killed = join(root, 'killed');
    // the uninterrupted reference run goes alongside the kill loop (it writes its own store)
    const refPromise = runChild(ref, null);
    const rng = new Mt19937(20261205);
    let kills = 0;
    let done = 0; // units known committed (a lower bound: a kill may land after a commit it did not see)
    // each kill lands at a drawn unit count in the next 1/(kills left + 1) of the remaining units, plus 0–19 ms
    // (mid-unit, mid-commit or mid-blob-write), so 10 kills never finish the 128 units whatever the machine's speed
    for (let i = 0; i < 24 && kills < 10; i++) {
      const step = Math.max(1, Math.floor((128 - done) / (10 - kills + 1)));
      const r = await runChild(killed, { afterDone: done + 1 + (rng.nextU32() % step), extraMs: rng.nextU32() % 20 });
      done = Math.max(done, r.done);
      if (r.signal === 'SIGKILL') kills++;
      else expect(r.code, r.err).toBe(0); // it finished before the kill landed
    }
    expect(kills).toBe(10);
    const refRun = await refPromise;
    expect(refRun.err).toBe('');
    expect(refRun.out).toContain('128 0');
    const last = await runChild(killed, null);
    expect(last.code, last.err).toBe(0);
    const [computed, reused] = last.out.trim().split('\n').pop()!.split(' ').map(Number);
    expect(computed! + reused!).toBe(128);
    const a = rows(ref);
    const b = rows(killed);
    expect(a).toHaveLength(128);
    expect(b).toEqual(a); // same keys, spec, result and blob bytes; no duplicate rows (key is the primary key and counts match)
    const db = new Database(join(killed, 'memscope.sqlite'), { readonly: true });
    expect(db.prepare('SELECT COUNT(*) FROM units').pluck().get()).toBe(128);
    expect(db.prepare('SELECT COUNT(DISTINCT key) FROM units').pluck().get()).toBe(128);
    db.close();
    const fa = await files(ref);
    const fb = await files(killed);
    expect(fb.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(fb).toEqual(fa);
    process.stderr.write(`kill test: ${kills} kills, ${done} units seen committed before the last run, ${computed} computed by it, ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  });
});
