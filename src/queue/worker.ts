/**
 * The worker loop (issue 18 §1): takes jobs from the queue, rebuilds each job's study and source
 * from its command context once (the model is loaded once per context and kept), runs the batch
 * with the study's own `run` — the same call the in-process runner makes — and returns the
 * outputs. It writes nothing: the coordinator commits. A worker killed mid-batch leaves a job
 * whose lock expires; BullMQ's stalled-job check hands it to another worker.
 */
import { hostname } from 'node:os';
import { Worker, type Job } from 'bullmq';
import type { Study } from '../engine/study.ts';
import { QUEUE_NAME, redisConnection } from './connection.ts';
import { encodeOutputs, studyBlobDir, type JobContext, type JobData, type JobResult } from './jobs.ts';

/** A job context's study and source, as the worker rebuilt them. */
export interface ResolvedContext {
  readonly study: Study<unknown, unknown, unknown, unknown, unknown>;
  readonly source: unknown;
  dispose?(): Promise<void>;
}

/** Options of {@link startWorker}. */
export interface WorkerOptions {
  /** Jobs run at once (default 1: one model call at a time uses the threads given). */
  readonly concurrency?: number;
  /** Execution provider named in the worker's id (`cpu`, `cuda`). */
  readonly provider?: string;
  /** The job lock in ms (default 30,000): a killed worker's job is retried after about this long. */
  readonly lockMs?: number;
  /** Called when a job finishes or fails (for the worker's log line). */
  readonly onJob?: (e: { jobId: string; units: number; seconds: number; error?: string }) => void;
}

/** A running worker. */
export interface RunningWorker {
  readonly name: string;
  /** Stop taking jobs, finish the ones running, release the models. */
  close(): Promise<void>;
}

/** Start a worker on the queue at `url`; `resolve` rebuilds a context's study and source (called once per distinct context). */
export async function startWorker(url: string, resolve: (ctx: JobContext) => Promise<ResolvedContext>, opts: WorkerOptions = {}): Promise<RunningWorker> {
  const name = `${hostname()}:${process.pid}:${opts.provider ?? 'cpu'}`;
  const contexts = new Map<string, Promise<ResolvedContext>>();
  const connection = redisConnection(url);
  connection.on('error', () => {}); // reconnects after a Redis restart
  const lockDuration = opts.lockMs ?? 30_000;
  const worker = new Worker<JobData<unknown>, JobResult<unknown>>(
    QUEUE_NAME,
    async (job: Job<JobData<unknown>, JobResult<unknown>>) => {
      const { context, study: studyId, units } = job.data;
      const id = JSON.stringify(context);
      let ctx = contexts.get(id);
      if (!ctx) {
        ctx = resolve(context);
        contexts.set(id, ctx);
        ctx.catch(() => contexts.delete(id)); // a failed load is retried with the next job
      }
      const { study, source } = await ctx;
      if (study.id !== studyId) throw new Error(`the job's study is ${studyId} but memscope ${context.command} runs ${study.id}`);
      const t0 = performance.now();
      try {
        const outputs = await study.run(units, { source });
        if (outputs.length !== units.length) throw new Error(`study ${study.id}: run returned ${outputs.length} outputs for ${units.length} units`);
        const seconds = (performance.now() - t0) / 1000;
        opts.onJob?.({ jobId: job.id ?? '?', units: units.length, seconds });
        const blobDir = context.blobs === undefined ? undefined : studyBlobDir(context.blobs, job.data.run ?? 'unnamed');
        return { outputs: await encodeOutputs(outputs, blobDir), seconds, worker: name, host: hostname() };
      } catch (e) {
        opts.onJob?.({ jobId: job.id ?? '?', units: units.length, seconds: (performance.now() - t0) / 1000, error: (e as Error).message });
        throw e;
      }
    },
    { connection, name, concurrency: opts.concurrency ?? 1, lockDuration, stalledInterval: Math.max(1000, Math.floor(lockDuration / 2)), maxStalledCount: 2 },
  );
  worker.on('error', () => {}); // connection errors: the worker reconnects
  await worker.waitUntilReady();
  return {
    name,
    async close() {
      await worker.close();
      for (const c of contexts.values()) await (await c.catch(() => null))?.dispose?.();
      connection.disconnect();
    },
  };
}
