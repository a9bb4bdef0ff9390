/**
 * `--queue` on every study command that distributes its units, and `memscope study run --queue`:
 * each command's units run on real worker processes (`memscope worker`) through a real Redis, and
 * the store they leave equals the store of the same command run in-process — same keys, same
 * result and blob bytes — and the command's own results agree. Commands whose study is built from
 * their flags (kim's settings, evaluate's scoring tools) are rebuilt by the worker from the flags
 * the coordinator recorded, so this also checks that the worker's study is the coordinator's.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runCli } from '../helpers/cli.ts';
import { HAVE_REDIS, NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';

const BIN = resolve('bin/memscope.js');
let dir = '';
let redis: RedisServer | null = null;
const children = new Set<ChildProcess>();

function worker(): ChildProcess {
  const p = spawn(process.execPath, [BIN, 'worker', '--queue', redis!.url], { env: { ...process.env, MEMSCOPE_THREADS: '1' }, stdio: 'ignore' });
  children.add(p);
  p.once('exit', () => children.delete(p));
  return p;
}

/** JSON text without its timing fields (any key naming seconds: how long, not what). */
function untimed(text: string): string {
  return JSON.stringify(JSON.parse(text), (k, v: unknown) => (/seconds/i.test(k) ? undefined : v));
}

/** The rows of a store's units, without the fields that say when, where and how long. */
async function rowsOf(store: string): Promise<Map<string, string>> {
  const s = await SqliteStore.open(store, { mustExist: true, readonly: true });
  const rows = s.allRows();
  s.close();
  return new Map(rows.map((r) => [r.key, JSON.stringify({ study: r.study, spec: r.spec, result: untimed(r.result), blobs: r.blobs })]));
}

/** A results file's text, JSON without its timing fields. */
async function resultFile(path: string): Promise<string> {
  const text = await readFile(path, 'utf8');
  return path.endsWith('.json') ? untimed(text) : text;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memscope-queue-cmd-'));
  if (HAVE_REDIS) {
    redis = await startRedis(dir);
    worker();
    worker();
  }
}, 60_000);

afterAll(async () => {
  for (const p of children) p.kill('SIGKILL');
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!HAVE_REDIS)('--queue on the study commands (real Redis, 2 worker processes)', () => {
  it('study run --queue: sample, analyze kim, evaluate and detect leave the in-process store, and the same tables', async () => {
    const spec = join(dir, 'study.yaml');
    await writeFile(spec, 'models: testbed\nprompts: caption:0,class:0\nseeds: 0-1\nsteps: 5\nguidance: [constant:7.5]\nanalyses: [kim, evaluate, detect]\n');
    const local = await runCli(['study', 'run', spec, '--store', join(dir, 'local'), '--out', join(dir, 'local-out')]);
    expect(local.code, local.err).toBe(0);
    const queued = await runCli(['study', 'run', spec, '--store', join(dir, 'queued'), '--out', join(dir, 'queued-out'), '--queue', redis!.url]);
    expect(queued.code, queued.err).toBe(0);
    const want = await rowsOf(join(dir, 'local'));
    expect(want.size).toBeGreaterThan(10);
    expect(await rowsOf(join(dir, 'queued'))).toEqual(want);
    // the coordinator's results are computed from the same units: the same tables
    for (const f of ['testbed/ddim/evaluate/evaluate.json', 'testbed/ddim/detect/detect.json']) {
      expect(await resultFile(join(dir, 'queued-out', f))).toBe(await resultFile(join(dir, 'local-out', f)));
    }
    const runs = JSON.parse(await readFile(join(dir, 'queued-out', 'study.json'), 'utf8')) as { runs: { name: string }[] };
    expect(runs.runs.map((r) => r.name)).toEqual(['testbed/ddim/sample-constant_7.5', 'testbed/ddim/kim', 'testbed/ddim/evaluate', 'testbed/ddim/detect']);
  }, 240_000);

  it.each([
    ['transition', ['transition', '--model', 'testbed', '--prompts', 'caption:0', '--seeds', '0', '--steps', '6', '--every', '2'], 'transition.csv'],
    ['curves', ['curves', '--model', 'testbed', '--prompts', 'caption:0,class:0', '--seeds', '0-1', '--steps', '5'], 'curves.json'],
    ['sweep', ['sweep', '--model', 'testbed', '--prompts', 'caption:0', '--seeds', '0', '--steps', '6', '--every', '2'], 'sweep.csv'],
    ['validate', ['validate', '--model', 'models/graded', '--prompts', 'caption:0-1', '--seeds', '0-1', '--steps', '5'], null],
  ] as const)('%s --queue leaves the in-process store', async (name, args, file) => {
    const local = await runCli([...args, '--store', join(dir, `${name}-local`), '--out', join(dir, `${name}-local-out`)]);
    expect(local.code, local.err).toBe(0);
    const queued = await runCli([...args, '--store', join(dir, `${name}-queued`), '--out', join(dir, `${name}-queued-out`), '--queue', redis!.url]);
    expect(queued.code, queued.err).toBe(0);
    const want = await rowsOf(join(dir, `${name}-local`));
    expect(want.size).toBeGreaterThan(0);
    expect(await rowsOf(join(dir, `${name}-queued`))).toEqual(want);
    if (file !== null) expect(await resultFile(join(dir, `${name}-queued-out`, file))).toBe(await resultFile(join(dir, `${name}-local-out`, file)));
  }, 240_000);

});

describe('--queue on a command that runs in-process only', () => {
  it('a command whose units do not go to workers refuses --queue by name (exit 2)', async () => {
    const r = await runCli(['geometry', '--queue', 'redis://127.0.0.1:1/0', '--out', join(dir, 'geo')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unknown flag --queue: this command runs in this process only/);
  });
});

if (!HAVE_REDIS) it.skip(NO_REDIS, () => {});
