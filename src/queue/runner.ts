/**
 * The queue-backed runner (issue 18 §1): the second implementation of the engine's `Runner`. It
 * plans nothing itself — it takes the study's planned units like the in-process runner, skips
 * those already in the store, cuts the same batches from the whole plan, and enqueues each batch
 * with a missing unit as a BullMQ job (id from its keys: a re-plan never enqueues a unit twice).
 * Workers (`worker.ts`, any number of hosts) run them; this process, the coordinator, is the
 * store's only writer: it commits each finished unit once (a second result for a key — an
 * at-least-once redelivery — is ignored by the store) and removes the job.
 *
 * A killed coordinator loses nothing: rerunning the same command re-plans the same job ids, finds
 * the jobs that finished meanwhile (kept in Redis until committed) and commits them. A job that
 * fails after its retries fails the run with its error and the units it held; what is stored stays.
 */
import { hostname } from 'node:os';
import { Job, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Study, Unit, UnitStore, StoredUnit } from '../engine/study.ts';
import { batchUnits, type RunOptions, type RunOutcome, type Runner } from '../engine/runner.ts';
import { QUEUE_NAME, redisConnection } from './connection.ts';
import { decodeOutput, jobIdOf, type JobContext, type JobData, type JobResult } from './jobs.ts';

/** Options of {@link QueueRunner}. */
export interface QueueRunnerOptions {
  /** Attempts per job before it fails the run (default 3: a worker killed twice mid-batch is survived). */
  readonly attempts?: number;
  /** First retry delay in ms, doubled each retry (default 1000). */
  readonly backoffMs?: number;
  /** How often the coordinator re-reads job states besides listening to events, in ms (default 1000). */
  readonly pollMs?: number;
  /** Called with each committed batch's worker (`host:pid`) and its seconds (for per-worker throughput). */
  readonly onCommit?: (worker: string, units: number, seconds: number) => void;
}

/** A failed job: its units and the error the worker gave. */
export class QueueJobError extends Error {
  constructor(
    readonly jobId: string,
    readonly keys: readonly string[],
    reason: string,
  ) {
    super(`the queue job ${jobId} (unit${keys.length > 1 ? 's' : ''} ${keys.join(', ')}) failed after its retries: ${reason}`);
  }
}

/** Runs units on queue workers; this process commits them to the store. */
export class QueueRunner implements Runner {
  constructor(
    private readonly url: string,
    private readonly context: JobContext,
    private readonly opts: QueueRunnerOptions = {},
  ) {}

  async run<Spec, U, R, Summary, S>(study: Study<Spec, U, R, Summary, S>, units: readonly Unit<U>[], _source: S, store: UnitStore, opts: RunOptions = {}): Promise<RunOutcome<U, R>> {
    const seen = new Set<string>();
    for (const u of units) {
      if (seen.has(u.key)) throw new Error(`study ${study.id}: two planned units share the key ${u.key}`);
      seen.add(u.key);
    }
    const t0 = performance.now();
    const stored = await store.has(units.map((u) => u.key));
    const cached = stored.size;
    let done = cached;
    let computed = 0;
    const progress = (): void => {
      const elapsed = (performance.now() - t0) / 1000;
      // the ETA from this run's pace of commits (workers run in parallel: wall time, not unit time)
      const eta = computed > 0 ? (elapsed / computed) * (units.length - done) : null;
      opts.onProgress?.({ total: units.length, cached, done, elapsed, eta });
    };
    progress();
    const pending = new Map<string, Unit<U>[]>();
    for (const b of batchUnits(units, opts.maxBatch ?? Infinity)) if (b.some((u) => !stored.has(u.key))) pending.set(jobIdOf(b), b);
    if (pending.size > 0) {
      const connections: Redis[] = [redisConnection(this.url), redisConnection(this.url)];
      for (const c of connections) c.on('error', () => {}); // ioredis reconnects; a lasting outage shows as no progress
      const queue = new Queue<JobData<U>, JobResult<R>>(QUEUE_NAME, { connection: connections[0]! });
      const events = new QueueEvents(QUEUE_NAME, { connection: connections[1]! });
      try {
        await events.waitUntilReady();
        const attempts = this.opts.attempts ?? 3;
        await queue.addBulk(
          [...pending].map(([jobId, batch]) => ({
            name: study.id,
            data: { context: this.context, study: study.id, units: batch.map((u) => ({ key: u.key, spec: u.spec, ...(u.batch === undefined ? {} : { batch: u.batch }) })) },
            opts: { jobId, attempts, backoff: { type: 'exponential', delay: this.opts.backoffMs ?? 1000 }, removeOnComplete: false, removeOnFail: false },
          })),
        );
        let wake: (() => void) | null = null;
        const nudge = (): void => {
          wake?.();
        };
        events.on('completed', nudge);
        events.on('failed', nudge);
        while (pending.size > 0) {
          opts.signal?.throwIfAborted();
          for (const [jobId, batch] of [...pending]) {
            const job = await Job.fromId<JobData<U>, JobResult<R>>(queue, jobId);
            if (job === undefined) {
              // removed (a cancel, or a flushed Redis): enqueue it again
              await queue.add(study.id, { context: this.context, study: study.id, units: batch.map((u) => ({ key: u.key, spec: u.spec, ...(u.batch === undefined ? {} : { batch: u.batch }) })) }, { jobId, attempts, backoff: { type: 'exponential', delay: this.opts.backoffMs ?? 1000 }, removeOnComplete: false, removeOnFail: false });
              continue;
            }
            const state = await job.getState();
            if (state === 'completed') {
              const res = job.returnvalue;
              if (!res || !Array.isArray(res.outputs) || res.outputs.length !== batch.length) throw new Error(`study ${study.id}: the queue job ${jobId} returned ${res?.outputs?.length ?? 'no'} outputs for ${batch.length} units`);
              let committed = 0;
              for (let i = 0; i < batch.length; i++) {
                const u = batch[i]!;
                if (stored.has(u.key)) continue;
                const o = decodeOutput(res.outputs[i]!);
                await store.put({ key: u.key, study: study.id, spec: u.spec, result: o.result, blobs: o.blobs ?? [], seconds: res.seconds / batch.length, host: res.host });
                stored.add(u.key);
                committed++;
              }
              computed += committed;
              done += committed;
              this.opts.onCommit?.(res.worker, committed, res.seconds);
              pending.delete(jobId);
              await job.remove().catch(() => {}); // committed: Redis need not keep it
              progress();
            } else if (state === 'failed' && job.attemptsMade >= attempts) {
              throw new QueueJobError(jobId, batch.map((u) => u.key), job.failedReason ?? 'unknown error');
            }
          }
          if (pending.size === 0) break;
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, this.opts.pollMs ?? 1000);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = null;
        }
      } finally {
        await events.close().catch(() => {});
        await queue.close().catch(() => {});
        for (const c of connections) c.disconnect();
      }
    }
    const all: StoredUnit<U, R>[] = [];
    for (const u of units) {
      const s = await store.get<U, R>(u.key);
      if (!s) throw new Error(`study ${study.id}: unit ${u.key} is missing from the store after the run`);
      all.push(s);
    }
    return { units: all, computed, reused: cached };
  }
}

/** This process as a worker names itself: `host:pid`. */
export function workerName(provider: string): string {
  return `${hostname()}:${process.pid} (${provider})`;
}
