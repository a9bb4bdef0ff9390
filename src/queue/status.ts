/**
 * A queued study's progress and its stop request, kept in the queue's Redis beside the jobs (issue
 * 18 §3). The coordinator writes its status after every poll (units done / in flight / waiting /
 * retrying / remaining, per-worker throughput, ETA); `memscope queue status` reads every study's;
 * `memscope queue drain|cancel` leave a stop request the coordinator obeys at its next poll.
 *
 * A study is named by the SHA-256 of its planned unit keys (first 12 hex digits): the same command
 * with the same flags is the same study, so a coordinator rerun after a kill keeps its id.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/** Redis key prefix of the status records. */
const STATUS_PREFIX = 'memscope:study:';
/** Redis key prefix of the stop requests. */
const STOP_PREFIX = 'memscope:stop:';
/** How long a status record outlives its last update (seconds): a week. */
const STATUS_TTL_S = 7 * 24 * 3600;

/** The id of a study: its planned unit keys' SHA-256, 12 hex digits. */
export function studyIdOf(keys: readonly string[]): string {
  return createHash('sha256').update(keys.join('\n')).digest('hex').slice(0, 12);
}

/** One worker's share of a study, as the coordinator committed it. */
export interface WorkerShare {
  /** `host:pid:provider`. */
  readonly worker: string;
  readonly units: number;
  /** Seconds its batches took on the worker. */
  readonly seconds: number;
}

/** Where a queued study is. */
export type StudyState = 'running' | 'draining' | 'drained' | 'cancelled' | 'finished' | 'failed';

/** A queued study's progress as its coordinator last wrote it. */
export interface StudyStatus {
  readonly study: string;
  /** The memscope command and the study it runs (`sample`, `analyze kim`, …). */
  readonly command: string;
  /** `host:pid` of the coordinator. */
  readonly coordinator: string;
  readonly state: StudyState;
  readonly total: number;
  /** In the store before this coordinator started. */
  readonly cached: number;
  /** In the store now (cached included). */
  readonly done: number;
  /** Units of jobs a worker holds now. */
  readonly inFlight: number;
  /** Units of jobs waiting for a worker (or for their retry delay). */
  readonly waiting: number;
  /** Units of jobs that failed at least once and will be retried. */
  readonly retrying: number;
  /** Units of jobs that failed after their retries. */
  readonly failed: number;
  readonly workers: readonly WorkerShare[];
  /** Seconds since this coordinator started. */
  readonly elapsed: number;
  /** Estimated seconds left, or null before the first commit. */
  readonly eta: number | null;
  /** ISO time of this record. */
  readonly updatedAt: string;
  /** The error that ended a failed study. */
  readonly error?: string;
}

/** Write a study's status (kept a week after its last update). */
export async function writeStatus(redis: Redis, s: StudyStatus): Promise<void> {
  await redis.set(STATUS_PREFIX + s.study, JSON.stringify(s), 'EX', STATUS_TTL_S);
}

/** Every study status in the queue's Redis, most recently updated first. */
export async function readStatuses(redis: Redis): Promise<StudyStatus[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${STATUS_PREFIX}*`, 'COUNT', 200);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  const out: StudyStatus[] = [];
  for (const k of keys) {
    const v = await redis.get(k);
    if (v !== null) out.push(JSON.parse(v) as StudyStatus);
  }
  return out.sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
}

/** One study's status, or null. */
export async function readStatus(redis: Redis, study: string): Promise<StudyStatus | null> {
  const v = await redis.get(STATUS_PREFIX + study);
  return v === null ? null : (JSON.parse(v) as StudyStatus);
}

/** A stop request: `drain` (no new jobs; the running ones finish and are committed) or `cancel` (stop now). */
export type StopMode = 'drain' | 'cancel';

/** Leave a stop request for a study's coordinator. */
export async function requestStop(redis: Redis, study: string, mode: StopMode): Promise<void> {
  await redis.set(STOP_PREFIX + study, mode, 'EX', STATUS_TTL_S);
}

/** The stop request for a study, or null. */
export async function stopRequested(redis: Redis, study: string): Promise<StopMode | null> {
  const v = await redis.get(STOP_PREFIX + study);
  return v === 'drain' || v === 'cancel' ? v : null;
}

/** Forget a stop request (a coordinator started again runs the study again). */
export async function clearStop(redis: Redis, study: string): Promise<void> {
  await redis.del(STOP_PREFIX + study);
}

/** Human-readable lines of a status (for the coordinator's log and `memscope queue status`). */
export function statusLines(s: StudyStatus): string[] {
  const remaining = s.total - s.done;
  const lines = [
    `study ${s.study} (memscope ${s.command}, coordinator ${s.coordinator}): ${s.state}, updated ${s.updatedAt}`,
    `  units: ${s.done}/${s.total} done (${s.cached} from the store), ${s.inFlight} in flight, ${s.waiting} waiting, ${s.retrying} retrying, ${s.failed} failed, ${remaining} remaining` +
      (s.eta === null || (s.state !== 'running' && s.state !== 'draining') ? '' : `; about ${Math.round(s.eta)} s left`),
  ];
  for (const w of s.workers) {
    const perMin = s.elapsed > 0 ? (60 * w.units) / s.elapsed : 0;
    lines.push(`  worker ${w.worker}: ${w.units} units, ${perMin.toFixed(1)} units/min, ${(w.units > 0 ? w.seconds / w.units : 0).toFixed(2)} s per unit`);
  }
  if (s.error !== undefined) lines.push(`  error: ${s.error}`);
  return lines;
}
