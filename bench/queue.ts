/**
 * Benchmark of the queue runner (issue 18): the same `memscope sample` study of the lab's
 * duplication model (DDIM 50 steps, CFG 7.5) run three ways on this machine, each in fresh
 * processes with one onnxruntime thread per process:
 *   - in-process (`memscope sample`, MEMSCOPE_THREADS=1): the peer;
 *   - queued, 1 worker (`memscope sample --queue` + one `memscope worker`);
 *   - queued, 2 workers.
 * A unit of distribution (one job) is one prompt × a group of seeds (`--batch-size` = the group),
 * sized so that it takes ≥ 1 s on one thread. The three modes are interleaved over the rounds and
 * the medians reported: throughput (units/s) and its ratios (2 workers / 1 worker; 1 worker /
 * in-process), and the queue's overhead per job against the in-process runner
 * ((wall_queue1 − wall_inprocess) / jobs) in ms and as a fraction of a job's time.
 *
 * From the same runs, a projection for 16 GPU workers: the payload of a job result (measured here;
 * computed for Stable Diffusion from its tensor sizes), Redis traffic and the coordinator's commit
 * rate at a given GPU time per image.
 *
 * Workers are started (and have connected) before each timed run, and load the model inside it,
 * as the in-process command does. Needs /usr/bin/redis-server (or REDIS_SERVER).
 * Standalone: `node --import tsx bench/queue.ts` prints JSON.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HAVE_REDIS, NO_REDIS, startRedis } from '../test/helpers/redis.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import { redisConnection, QUEUE_NAME } from '../src/queue/connection.ts';
import { Queue } from 'bullmq';

const BIN = resolve('bin/memscope.js');
const median = (v: number[]): number => [...v].sort((a, b) => a - b)[v.length >> 1]!;

/** The study: PROMPTS prompts × GROUP seeds, one job per prompt. */
const PROMPTS = Number(process.env['MEMSCOPE_BENCH_QUEUE_PROMPTS'] ?? 12);
const GROUP = Number(process.env['MEMSCOPE_BENCH_QUEUE_GROUP'] ?? 8);
const ROUNDS = Number(process.env['MEMSCOPE_BENCH_QUEUE_ROUNDS'] ?? 2);
const study = (store: string, out: string): string[] => [
  'sample', '--model', 'models/duplication', '--prompts', `caption:0-${PROMPTS - 1}`, '--seeds', `0-${GROUP - 1}`,
  '--sampler', 'ddim', '--steps', '50', '--guidance', 'constant:7.5', '--batch-size', String(GROUP), '--store', store, '--out', out,
];

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<number> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, MEMSCOPE_THREADS: '1', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    p.once('exit', (c) => (c === 0 ? res((performance.now() - t0) / 1000) : rej(new Error(`memscope ${args[0]} exited ${c}: ${err.slice(-2000)}`))));
  });
}

async function startWorkers(url: string, n: number): Promise<ChildProcess[]> {
  const ws: ChildProcess[] = [];
  for (let i = 0; i < n; i++) ws.push(spawn(process.execPath, [BIN, 'worker', '--queue', url, '--threads', '1'], { stdio: 'ignore' }));
  // wait until every worker has registered with the queue
  const c = redisConnection(url);
  const q = new Queue(QUEUE_NAME, { connection: c });
  for (let i = 0; i < 300 && (await q.getWorkers()).length < n; i++) await new Promise((r) => setTimeout(r, 100));
  await q.close();
  c.disconnect();
  return ws;
}

async function stopWorkers(ws: ChildProcess[]): Promise<void> {
  await Promise.all(ws.map((w) => new Promise((r) => (w.exitCode !== null ? r(null) : (w.once('exit', r), w.kill('SIGTERM'))))));
}

/** Unit seconds (on the machine that ran them) and the median bytes of a unit's output (result JSON + blobs) in a store. */
async function storeFacts(dir: string): Promise<{ units: number; unitSeconds: number; unitBytes: number }> {
  const s = await SqliteStore.open(dir, { mustExist: true, readonly: true });
  const rows = s.allRows();
  const sizes: number[] = [];
  for (const r of rows) {
    const u = (await s.get<unknown, unknown>(r.key))!;
    let n = r.result.length;
    for (const name of Object.keys(u.blobs)) n += (await s.readBlob(u, name)).byteLength;
    sizes.push(n);
  }
  s.close();
  return { units: rows.length, unitSeconds: rows.reduce((a, r) => a + r.seconds, 0), unitBytes: median(sizes) };
}

/** Run the benchmark. */
export async function benchQueue(): Promise<Record<string, unknown>> {
  if (!HAVE_REDIS) return { skipped: NO_REDIS };
  const dir = mkdtempSync(join(tmpdir(), 'memscope-bench-queue-'));
  const redis = await startRedis(dir);
  const times: Record<'inProcess' | 'queue1' | 'queue2', number[]> = { inProcess: [], queue1: [], queue2: [] };
  let facts: Awaited<ReturnType<typeof storeFacts>> | null = null;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // interleaved, the order rotated each round
      const order = (['inProcess', 'queue1', 'queue2'] as const).map((_, i, a) => a[(i + round) % 3]!);
      for (const mode of order) {
        const store = join(dir, `${mode}-${round}`);
        const out = join(dir, `${mode}-${round}-out`);
        if (mode === 'inProcess') {
          times.inProcess.push(await run(study(store, out)));
          facts ??= await storeFacts(store);
        } else {
          const ws = await startWorkers(redis.url, mode === 'queue1' ? 1 : 2);
          try {
            times[mode].push(await run([...study(store, out), '--queue', redis.url]));
          } finally {
            await stopWorkers(ws);
          }
        }
      }
    }
  } finally {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const units = PROMPTS * GROUP;
  const jobs = PROMPTS;
  const wall = { inProcess: median(times.inProcess), queue1: median(times.queue1), queue2: median(times.queue2) };
  const jobSeconds = facts!.unitSeconds / jobs;
  const overheadPerJobMs = ((wall.queue1 - wall.inProcess) / jobs) * 1000;
  // Stable Diffusion 1.x at 512²: what one sampled image's outputs weigh on the wire (base64 in the job result)
  const sd = {
    latentBytes: 4 * 64 * 64 * 4, // x0.npy and noise.npy each: 4×64×64 float32
    imageBytes: 3 * 512 * 512 * 4, // image.npy: the decoded image, 3×512×512 float32
    trajectoryBytes: 51 * 4 * 64 * 64 * 4, // --trajectory: x_t at 51 points of a 50-step run
  };
  const sdPerImage = 2 * sd.latentBytes + sd.imageBytes;
  const projection = (gpuSecondsPerImage: number) => {
    const imagesPerS = 16 / gpuSecondsPerImage;
    return {
      gpuSecondsPerImage,
      imagesPerSecond: imagesPerS,
      redisMBPerSecond: (imagesPerS * sdPerImage * 4) / 3 / 1e6,
      redisMBPerSecondWithTrajectory: (imagesPerS * (sdPerImage + sd.trajectoryBytes) * 4) / 3 / 1e6,
      jobsPerSecondAtGroup4: imagesPerS / 4,
    };
  };
  return {
    what: `memscope sample of models/duplication (DDIM 50 steps, CFG 7.5), ${PROMPTS} prompts × ${GROUP} seeds = ${units} images in ${jobs} jobs (one prompt × ${GROUP} seeds each); in-process vs queued with 1 and 2 workers, each process 1 onnxruntime thread; ${ROUNDS} interleaved rounds, medians`,
    wallSeconds: wall,
    runs: times,
    unitsPerSecond: { inProcess: units / wall.inProcess, queue1: units / wall.queue1, queue2: units / wall.queue2 },
    ratioTwoWorkersVsOne: wall.queue1 / wall.queue2,
    ratioOneWorkerVsInProcess: wall.inProcess / wall.queue1,
    jobSeconds,
    overheadPerJobMs,
    overheadFractionOfJob: overheadPerJobMs / 1000 / jobSeconds,
    goals: { twoVsOne: '≥ 1.8×', overhead: '≤ 2 % of a job' },
    payload: { labUnitBytes: facts!.unitBytes, labJobResultBytes: facts!.unitBytes * GROUP, sdImageBytes: sdPerImage, sdTrajectoryBytes: sd.trajectoryBytes, base64Factor: 4 / 3 },
    sixteenGpuProjection: [projection(1), projection(3)],
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) process.stdout.write(`${JSON.stringify(await benchQueue(), null, 2)}\n`);
