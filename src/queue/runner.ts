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
import { Job, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Study, Unit, UnitStore, StoredUnit } from '../engine/study.ts';
import { assertUniqueKeys, batchUnits, type RunOptions, type RunOutcome, type Runner } from '../engine/runner.ts';
import { QUEUE_NAME, redisConnection } from './connection.ts';
import { decodeOutput, jobIdOf, removeStudyBlobs, studyBlobDir, type JobContext, type JobData, type JobResult } from './jobs.ts';
import { acquireLease, CoordinatorBusyError, coordinatorName, LEASE_TTL_MS, releaseLease, renewLease } from './lease.ts';
import { clearStop, stopRequested, studyIdOf, writeStatus, type StudyState, type StudyStatus, type WorkerShare } from './status.ts';

/** Options of {@link QueueRunner}. */
export interface QueueRunnerOptions {
  /** Attempts per job before it fails the run (default 3: a worker killed twice mid-batch is survived). */
  readonly attempts?: number;
  /** First retry delay in ms, doubled each retry (default 1000). */
  readonly backoffMs?: number;
  /** How often the coordinator re-reads job states besides listening to events, in ms (default 1000). */
  readonly pollMs?: number;
  /** Called with each committed batch's worker (`host:pid:provider`) and its seconds (for per-worker throughput). */
  readonly onCommit?: (worker: string, units: number, seconds: number) => void;
  /** Lines for the user (the study id and how to watch or stop it); default standard error. */
  readonly log?: (line: string) => void;
}

/** A study stopped by `memscope queue drain|cancel`: what is stored stays; rerunning the command finishes it. */
export class QueueStoppedError extends Error {
  constructor(
    readonly study: string,
    readonly mode: 'drain' | 'cancel',
    done: number,
    total: number,
  ) {
    super(`study ${study} was ${mode === 'drain' ? 'drained' : 'cancelled'} (memscope queue ${mode}): ${done} of ${total} units are in the store; run the same command again to finish it`);
  }
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
    assertUniqueKeys(study.id, units);
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
      const studyId = studyIdOf(units.map((u) => u.key));
      const coordinator = coordinatorName();
      const connections: Redis[] = [redisConnection(this.url), redisConnection(this.url), redisConnection(this.url)];
      for (const c of connections) c.on('error', () => {}); // ioredis reconnects; a lasting outage shows as no progress
      const plain = connections[2]!;
      const queue = new Queue<JobData<U>, JobResult<R>>(QUEUE_NAME, { connection: connections[0]! });
      const events = new QueueEvents(QUEUE_NAME, { connection: connections[1]! });
      const shares = new Map<string, { units: number; seconds: number }>();
      const counts = { inFlight: 0, waiting: 0, retrying: 0, failed: 0 };
      const status = (state: StudyState, error?: string): StudyStatus => {
        const elapsed = (performance.now() - t0) / 1000;
        const workers: WorkerShare[] = [...shares].map(([worker, v]) => ({ worker, ...v }));
        return { study: studyId, command: this.context.command, coordinator, state, total: units.length, cached, done, ...counts, workers, elapsed, eta: computed > 0 ? (elapsed / computed) * (units.length - done) : null, updatedAt: new Date().toISOString(), ...(error === undefined ? {} : { error }) };
      };
      const report = async (state: StudyState, error?: string): Promise<void> => {
        const s = status(state, error);
        opts.onProgress?.({ total: s.total, cached, done, elapsed: s.elapsed, eta: s.eta, queue: { ...counts, workers: s.workers } });
        await writeStatus(plain, s).catch(() => {}); // the status is for watching; a Redis hiccup must not stop the study
      };
      const attempts = this.opts.attempts ?? 3;
      const jobOf = (jobId: string, batch: readonly Unit<U>[]) => ({
        name: study.id,
        data: { context: this.context, study: study.id, run: studyId, units: batch.map((u) => ({ key: u.key, spec: u.spec, ...(u.batch === undefined ? {} : { batch: u.batch }) })) },
        opts: { jobId, attempts, backoff: { type: 'exponential', delay: this.opts.backoffMs ?? 1000 }, removeOnComplete: false, removeOnFail: false },
      });
      let draining = false;
      let leased = false;
      let leaseLost: string | null = null;
      let renewal: ReturnType<typeof setInterval> | undefined;
      try {
        await events.waitUntilReady();
        // one coordinator per study: a second would re-enqueue what the first committed and clear its stop requests
        const holder = await redisRetry(() => acquireLease(plain, studyId, coordinator));
        if (holder !== null) throw new CoordinatorBusyError(studyId, holder, this.url, LEASE_TTL_MS);
        leased = true;
        renewal = setInterval(() => {
          renewLease(plain, studyId, coordinator).then(
            (ok) => {
              if (!ok) leaseLost ??= `study ${studyId}: another coordinator took over this study's lease (its renewal was late by more than ${LEASE_TTL_MS / 1000} s); this one stops, what is stored stays`;
            },
            () => {}, // Redis away: the next renewal tries again (the lease outlives three missed ones)
          );
        }, LEASE_TTL_MS / 3);
        renewal.unref();
        await redisRetry(() => clearStop(plain, studyId));
        await redisRetry(() => queue.addBulk([...pending].map(([jobId, batch]) => jobOf(jobId, batch))));
        const log = this.opts.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
        log(`memscope ${this.context.command}: study ${studyId}: ${pending.size} jobs (${units.length - cached} units) on ${this.url}; memscope queue status ${this.url} shows it, memscope queue drain ${this.url} --study ${studyId} stops it`);
        let wake: (() => void) | null = null;
        const nudge = (): void => {
          wake?.();
        };
        events.on('completed', nudge);
        events.on('failed', nudge);
        while (pending.size > 0) {
          opts.signal?.throwIfAborted();
          if (leaseLost !== null) throw new Error(leaseLost);
          const stop = await redisRetry(() => stopRequested(plain, studyId));
          if (stop === 'cancel') {
            await report('cancelled');
            throw new QueueStoppedError(studyId, 'cancel', done, units.length);
          }
          if (stop === 'drain') draining = true;
          counts.inFlight = counts.waiting = counts.retrying = counts.failed = 0;
          let live = 0; // jobs still to be committed that a worker holds or has finished
          for (const [jobId, batch] of [...pending]) {
            // the state first, then the job: a job read before it completes would carry no return value
            const state = await redisRetry(() => queue.getJobState(jobId));
            const job = state === 'unknown' ? undefined : await redisRetry(() => Job.fromId<JobData<U>, JobResult<R>>(queue, jobId));
            if (job === undefined) {
              // removed (a drain, a cancel, or a flushed Redis): enqueue it again unless draining
              if (draining) continue;
              const j = jobOf(jobId, batch);
              await redisRetry(() => queue.add(j.name, j.data, j.opts));
              counts.waiting += batch.length;
              continue;
            }
            if (state === 'completed') {
              const res = job.returnvalue;
              if (!res || !Array.isArray(res.outputs) || res.outputs.length !== batch.length) throw new Error(`study ${study.id}: the queue job ${jobId} returned ${res?.outputs?.length ?? 'no'} outputs for ${batch.length} units`);
              let committed = 0;
              for (let i = 0; i < batch.length; i++) {
                const u = batch[i]!;
                if (stored.has(u.key)) continue;
                const o = await decodeOutput(res.outputs[i]!, this.context.blobs === undefined ? undefined : studyBlobDir(this.context.blobs, studyId));
                await store.put({ key: u.key, study: study.id, spec: u.spec, result: o.result, blobs: o.blobs ?? [], seconds: res.seconds / batch.length, host: res.host });
                stored.add(u.key);
                committed++;
              }
              computed += committed;
              done += committed;
              const share = shares.get(res.worker) ?? { units: 0, seconds: 0 };
              shares.set(res.worker, { units: share.units + committed, seconds: share.seconds + res.seconds });
              this.opts.onCommit?.(res.worker, committed, res.seconds);
              pending.delete(jobId);
              await job.remove().catch(() => {}); // committed: Redis need not keep it
            } else if (state === 'failed' && job.attemptsMade >= attempts) {
              counts.failed += batch.length;
              await report('failed', job.failedReason ?? 'unknown error');
              throw new QueueJobError(jobId, batch.map((u) => u.key), job.failedReason ?? 'unknown error');
            } else if (state === 'active') {
              counts.inFlight += batch.length;
              live++;
            } else if (job.attemptsMade > 0) counts.retrying += batch.length;
            else counts.waiting += batch.length;
          }
          if (pending.size === 0) break;
          if (draining && live === 0) {
            await report('drained');
            throw new QueueStoppedError(studyId, 'drain', done, units.length);
          }
          await report(draining ? 'draining' : 'running');
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, this.opts.pollMs ?? 1000);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = null;
        }
        await report('finished');
        if (this.context.blobs !== undefined) await removeStudyBlobs(this.context.blobs, studyId);
      } finally {
        clearInterval(renewal);
        if (leased) await releaseLease(plain, studyId, coordinator).catch(() => {});
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

/** Errors of a connection to Redis that is down or reconnecting (a restart), as ioredis and Node report them. */
const CONNECTION_ERROR = /Connection is closed|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|Stream isn't writeable|LOADING|connect E|Socket closed/i;

/**
 * Run a Redis call of the coordinator's poll loop, retrying while the connection is down (every
 * 0.5 s for up to 2 minutes: a Redis restart with its append-only file); other errors are thrown
 * at once, and so is the last connection error when Redis stays away.
 */
async function redisRetry<T>(f: () => Promise<T>, tries = 240): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await f();
    } catch (e) {
      if (i >= tries || !CONNECTION_ERROR.test((e as Error).message ?? '')) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
