/**
 * The queue runner against a real Redis (Debian's redis-server on a loopback port) and real worker
 * processes (`memscope worker`, children of this test), never a mock: a queued study's store equals
 * an uninterrupted in-process run of the same spec — same keys, same result and blob bytes, no
 * duplicates — after workers killed with SIGKILL at random instants, after coordinators killed with
 * SIGKILL and rerun, and across a Redis restart (append-only file on). Short job locks
 * (MEMSCOPE_QUEUE_LOCK_MS) make a killed worker's job come back within the suite's time.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runCli } from '../helpers/cli.ts';
import { HAVE_REDIS, NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.ts';
import { mulberry32 } from '../../src/random/mulberry32.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { GraphBuilder } from '../../src/graph/builder.ts';

const BIN = resolve('bin/memscope.js');
/** A study of 32 jobs (16 prompts × 4 seeds in batches of 2) that takes a few seconds on 2 workers. */
const STUDY = ['sample', '--model', 'testbed', '--prompts', 'caption:0-15', '--seeds', '0-3', '--steps', '20', '--batch-size', '2'];

let dir = '';
let redis: RedisServer | null = null;
const children = new Set<ChildProcess>();

function worker(): ChildProcess {
  const p = spawn(process.execPath, [BIN, 'worker', '--queue', redis!.url], { env: { ...process.env, MEMSCOPE_QUEUE_LOCK_MS: '1500', MEMSCOPE_THREADS: '1' }, stdio: 'ignore' });
  children.add(p);
  p.once('exit', () => children.delete(p));
  return p;
}

function coordinator(store: string, out: string): ChildProcess {
  const p = spawn(process.execPath, [BIN, ...STUDY, '--queue', redis!.url, '--store', store, '--out', out], { stdio: 'ignore' });
  children.add(p);
  p.once('exit', () => children.delete(p));
  return p;
}

const exited = (p: ChildProcess): Promise<number | null> => (p.exitCode !== null ? Promise.resolve(p.exitCode) : new Promise((res) => p.once('exit', (c) => res(c))));
const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

/** Stop workers and wait until they are gone (a worker still finishing a job would take the next test's jobs). */
async function stopWorkers(ps: readonly ChildProcess[]): Promise<void> {
  await Promise.all(
    ps.map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
      await exited(p);
      clearTimeout(t);
    }),
  );
}

/** The rows of a store's units, without the fields that say when, where and how long. */
async function rowsOf(store: string): Promise<Map<string, string>> {
  const s = await SqliteStore.open(store, { mustExist: true, readonly: true });
  const rows = s.allRows();
  s.close();
  return new Map(rows.map((r) => [r.key, JSON.stringify({ study: r.study, spec: r.spec, result: r.result, blobs: r.blobs })]));
}

let reference = new Map<string, string>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memscope-queue-'));
  const r = await runCli([...STUDY, '--store', join(dir, 'ref-store'), '--out', join(dir, 'ref')]);
  expect(r.code, r.err).toBe(0);
  reference = await rowsOf(join(dir, 'ref-store'));
  expect(reference.size).toBe(64);
  if (HAVE_REDIS) redis = await startRedis(dir);
}, 120_000);

afterAll(async () => {
  for (const p of children) p.kill('SIGKILL');
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('memscope sample --queue', () => {
  it('refuses an unreachable queue before any work, naming the URL (exit 2)', async () => {
    const r = await runCli([...STUDY, '--queue', 'redis://127.0.0.1:1/0', '--store', join(dir, 'none'), '--out', join(dir, 'none-out')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--queue: cannot reach Redis at redis:\/\/127\.0\.0\.1:1\/0/);
    expect(r.err).not.toMatch(/\n\s+at /);
    const bad = await runCli([...STUDY, '--queue', 'http://x', '--out', join(dir, 'none-out')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--queue: "http:\/\/x" is a http URL; expected redis:\/\/HOST:PORT\/DB/);
  });
});

describe.skipIf(!HAVE_REDIS)('the queue runner on a real Redis with worker processes', () => {
  it('2 workers: the store equals the in-process run; a rerun enqueues and computes nothing', async () => {
    worker();
    worker();
    const store = join(dir, 'q1');
    const r = await runCli([...STUDY, '--queue', redis!.url, '--store', store, '--out', join(dir, 'q1-out')]);
    expect(r.code, r.err).toBe(0);
    expect(await rowsOf(store)).toEqual(reference);
    const rerun = await runCli([...STUDY, '--queue', redis!.url, '--store', store, '--out', join(dir, 'q1-again')]);
    expect(rerun.code, rerun.err).toBe(0);
    const rj = JSON.parse(await readFile(join(dir, 'q1-again', 'run.json'), 'utf8')) as { computed: number; reused: number };
    expect([rj.computed, rj.reused]).toEqual([0, 64]);
    expect(await rowsOf(store)).toEqual(reference);
    await stopWorkers([...children]);
  });

  it('--blobs DIR: the tensors travel as files of a shared folder (seen mid-run), the same store, the folder emptied at the end', async () => {
    const pool = [worker(), worker()];
    const store = join(dir, 'q-blobs');
    const blobs = join(dir, 'shared-blobs');
    const args = [...STUDY, '--queue', redis!.url, '--blobs', blobs, '--store', store, '--out', join(dir, 'q-blobs-out')];
    // a coordinator killed mid-run leaves the workers' blob files: they are there, named by SHA-256
    const c = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore' });
    children.add(c);
    let files: string[] = [];
    for (let i = 0; i < 600 && files.length === 0; i++) {
      await sleep(50);
      files = existsSync(blobs) ? readdirSync(blobs).flatMap((d) => (d.startsWith('study-') ? readdirSync(join(blobs, d)) : [])) : [];
    }
    c.kill('SIGKILL');
    await exited(c);
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(f).toMatch(/^[0-9a-f]{64}$/);
    const r = await runCli(args);
    expect(r.code, r.err).toBe(0);
    expect(await rowsOf(store)).toEqual(reference);
    expect(readdirSync(blobs)).toEqual([]);
    await stopWorkers(pool);
  }, 120_000);

  it('survives workers killed (SIGKILL) at 6 random instants, and a Redis restart', async () => {
    const rnd = mulberry32(17);
    const store = join(dir, 'q2');
    const pool = [worker(), worker()];
    const run = runCli([...STUDY, '--queue', redis!.url, '--store', store, '--out', join(dir, 'q2-out')]);
    let kills = 0;
    let restarted = false;
    let finished = false;
    void run.then(() => (finished = true));
    while (!finished && kills < 6) {
      await sleep(150 + rnd() * 500);
      if (finished) break;
      const i = Math.floor(rnd() * pool.length);
      pool[i]!.kill('SIGKILL');
      await exited(pool[i]!);
      pool[i] = worker();
      kills++;
      if (kills === 3 && !restarted) {
        await redis!.restart();
        restarted = true;
      }
    }
    const r = await run;
    expect(r.code, r.err).toBe(0);
    expect(kills).toBeGreaterThanOrEqual(3);
    expect(await rowsOf(store)).toEqual(reference);
    await stopWorkers(pool);
  }, 240_000);

  it('a coordinator killed (SIGKILL) 3 times and rerun finishes with the same store', async () => {
    const rnd = mulberry32(5);
    const store = join(dir, 'q3');
    const pool = [worker(), worker()];
    for (let k = 0; k < 3; k++) {
      const c = coordinator(store, join(dir, `q3-out-${k}`));
      await sleep(800 + rnd() * 1200);
      c.kill('SIGKILL');
      await exited(c);
    }
    const last = watchedCoordinator(store, join(dir, 'q3-out'));
    expect(await exited(last.p), last.err()).toBe(0);
    expect(await rowsOf(store)).toEqual(reference);
    await stopWorkers(pool);
  }, 240_000);
});


/** A coordinator whose standard error is kept. */
function watchedCoordinator(store: string, out: string): { p: ChildProcess; err: () => string } {
  const p = spawn(process.execPath, [BIN, ...STUDY, '--queue', redis!.url, '--store', store, '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  children.add(p);
  p.once('exit', () => children.delete(p));
  return { p, err: () => err };
}

interface StatusJson {
  jobs: Record<string, number>;
  workers: string[];
  studies: { study: string; command: string; coordinator: string; state: string; total: number; cached: number; done: number; inFlight: number; waiting: number; retrying: number; failed: number; workers: { worker: string; units: number; seconds: number }[] }[];
}

async function statusJson(): Promise<StatusJson> {
  const r = await runCli(['queue', 'status', redis!.url, '--json']);
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out) as StatusJson;
}

/** Wait until the running study of STUDY has committed at least one unit; its status. */
async function runningStudy(coordinatorPid: number): Promise<StatusJson['studies'][number] & { coordinator: string }> {
  for (let i = 0; i < 600; i++) {
    const s = (await statusJson()).studies.find((x) => x.coordinator.endsWith(`:${coordinatorPid}`) && x.state === 'running' && x.done > 0);
    if (s) return s;
    await sleep(100);
  }
  throw new Error('no running study appeared in memscope queue status');
}

describe.skipIf(!HAVE_REDIS)('memscope queue status | drain | cancel', () => {
  it('status shows the running study and its worker; drain lets running jobs finish, stops the coordinator, and a rerun finishes', async () => {
    const pool = [worker()];
    const store = join(dir, 'q5');
    const c = watchedCoordinator(store, join(dir, 'q5-out'));
    const s = await runningStudy(c.p.pid!);
    expect(s.study).toMatch(/^[0-9a-f]{12}$/);
    expect(s.total).toBe(64);
    // every unit is in exactly one of the counts, or not yet re-read (a commit between two polls)
    expect(s.done + s.inFlight + s.waiting + s.retrying + s.failed).toBeLessThanOrEqual(64);
    expect(s.workers.map((w) => w.worker)).toEqual([expect.stringMatching(new RegExp(`:${pool[0]!.pid}:cpu$`))]);
    expect((await statusJson()).workers).toContainEqual(expect.stringMatching(new RegExp(`:${pool[0]!.pid}:cpu$`)));
    const human = await runCli(['queue', 'status', redis!.url, '--study', s.study]);
    expect(human.out).toMatch(new RegExp(`study ${s.study} \\(memscope sample, coordinator [^)]+\\): running`));
    expect(human.out).toMatch(/units: \d+\/64 done \(0 from the store\), \d+ in flight, \d+ waiting/);
    const d = await runCli(['queue', 'drain', redis!.url, '--study', s.study]);
    expect(d.code, d.err).toBe(0);
    expect(d.out).toMatch(new RegExp(`study ${s.study} \\(memscope sample\\): draining; \\d+ jobs? removed`));
    expect(await exited(c.p), c.err()).toBe(1);
    expect(c.err()).toMatch(new RegExp(`study ${s.study} was drained \\(memscope queue drain\\): \\d+ of 64 units are in the store`));
    const part = await rowsOf(store);
    expect(part.size).toBeGreaterThan(0);
    expect(part.size).toBeLessThan(64);
    for (const [k, v] of part) expect(v).toBe(reference.get(k));
    const after = await statusJson();
    expect(after.studies.find((x) => x.study === s.study)?.state).toBe('drained');
    expect(after.jobs['waiting'] ?? 0).toBe(0);
    const rerun = await runCli([...STUDY, '--queue', redis!.url, '--store', store, '--out', join(dir, 'q5-out')]);
    expect(rerun.code, rerun.err).toBe(0);
    expect(await rowsOf(store)).toEqual(reference);
    expect((await statusJson()).studies.find((x) => x.study === s.study)?.state).toBe('finished');
    await stopWorkers(pool);
  }, 240_000);

  it('cancel stops the coordinator at once, keeps what is stored, and a rerun finishes', async () => {
    const pool = [worker()];
    const store = join(dir, 'q6');
    const c = watchedCoordinator(store, join(dir, 'q6-out'));
    const s = await runningStudy(c.p.pid!);
    const r = await runCli(['queue', 'cancel', redis!.url, '--study', s.study]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/cancelled; \d+ jobs? removed/);
    expect(await exited(c.p), c.err()).toBe(1);
    expect(c.err()).toMatch(/was cancelled \(memscope queue cancel\)/);
    const part = await rowsOf(store);
    expect(part.size).toBeLessThan(64);
    for (const [k, v] of part) expect(v).toBe(reference.get(k));
    const rerun = await runCli([...STUDY, '--queue', redis!.url, '--store', store, '--out', join(dir, 'q6-out')]);
    expect(rerun.code, rerun.err).toBe(0);
    expect(await rowsOf(store)).toEqual(reference);
    await stopWorkers(pool);
  }, 240_000);

  it('a second coordinator of a running study is refused, naming the first; the first finishes and frees the study', async () => {
    const pool = [worker()];
    const store = join(dir, 'q7');
    const c = watchedCoordinator(store, join(dir, 'q7-out'));
    const s = await runningStudy(c.p.pid!);
    const second = await runCli([...STUDY, '--queue', redis!.url, '--store', join(dir, 'q7-second'), '--out', join(dir, 'q7-second-out')]);
    expect(second.code).toBe(1);
    expect(second.err).toMatch(new RegExp(`study ${s.study} is already being coordinated by [^ ]+:${c.p.pid} \\(memscope queue status`));
    expect(second.err).toMatch(/wait for it to finish, or stop it with memscope queue drain/i);
    expect(existsSync(join(dir, 'q7-second-out'))).toBe(false);
    expect(await exited(c.p), c.err()).toBe(0);
    expect(await rowsOf(store)).toEqual(reference);
    // the finished coordinator released the study
    const lease = spawnSync('redis-cli', ['-p', String(redis!.port), 'exists', `memscope:coordinator:${s.study}`], { encoding: 'utf8' });
    expect(lease.stdout.trim()).toBe('0');
    await stopWorkers(pool);
  }, 240_000);

  it('refuses a missing or malformed --study and an unknown verb (exit 2)', async () => {
    const a = await runCli(['queue', 'drain', redis!.url]);
    expect(a.code).toBe(2);
    expect(a.err).toMatch(/--study: required by memscope queue drain/);
    const b = await runCli(['queue', 'cancel', redis!.url, '--study', 'xyz']);
    expect(b.code).toBe(2);
    expect(b.err).toMatch(/--study: .*12-hex-digit study id/);
    const c = await runCli(['queue', 'stauts', redis!.url]);
    expect(c.code).toBe(2);
    expect(c.err).toMatch(/expected status, drain or cancel \(got "stauts"\).*did you mean "status"/);
    const d = await runCli(['queue', 'drain', redis!.url, '--study', '000000000000']);
    expect(d.code).toBe(2);
    expect(d.err).toMatch(/--study: no study 000000000000 on/);
  });
});

describe.skipIf(!HAVE_REDIS)('a unit that fails on every worker', () => {
  it('fails the study after its retries with the error and the unit, and stores nothing false', async () => {
    // an ONNX U-Net that predicts NaN: every worker fails the unit the same way
    const b = new GraphBuilder({ name: 'nan-unet' });
    const x = b.input('sample', 'float32', ['B', 1, 4, 4]);
    b.input('timestep', 'int64', [1]);
    b.output(b.op('Mul', [x, b.constF32(Number.NaN)]), 'float32', ['B', 1, 4, 4], 'out_sample');
    const model = join(dir, 'nan.onnx');
    await writeFile(model, b.toBytes());
    const pool = [worker()];
    const store = join(dir, 'q4');
    const r = await runCli(['sample', '--model', model, '--guidance', 'none', '--seeds', '0', '--steps', '3', '--queue', redis!.url, '--store', store, '--out', join(dir, 'q4-out')]);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/the queue job [0-9a-f]{64} \(unit [0-9a-f]{64}\) failed after its retries: .*non-finite value/);
    expect(await rowsOf(store)).toEqual(new Map());
    await stopWorkers(pool);
  }, 120_000);
});

if (!HAVE_REDIS) it.skip(NO_REDIS, () => {});
