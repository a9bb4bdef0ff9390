/**
 * One coordinator per queued study: a lease in the queue's Redis (`memscope:coordinator:<study>`,
 * value `host:pid`, expiring {@link LEASE_TTL_MS} after its last renewal). Two coordinators of the
 * same study would each re-enqueue the jobs the other committed and removed, clear each other's
 * stop requests and delete the shared blob folder under the other's feet; the second one is
 * refused instead, naming the first.
 *
 * A coordinator that dies without releasing its lease frees the study when the lease expires; on
 * the same host a dead holder (no such process) is taken over at once, so a coordinator killed and
 * rerun on its machine never waits.
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { isProcessAlive } from '../io/process.ts';

/** Redis key prefix of the coordinator leases. */
const LEASE_PREFIX = 'memscope:coordinator:';
/** How long a lease outlives its last renewal, in ms (default 30 s; renewed every third of it). */
export const LEASE_TTL_MS = 30_000;

/** Set the lease to ARGV[1] when it is free, ours, or still held by ARGV[3] (the dead holder we read); 1 if set. */
const TAKE = `local v = redis.call('get', KEYS[1])
if v == false or v == ARGV[1] or v == ARGV[3] then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0`;

/** A second coordinator of a study that one is coordinating already. */
export class CoordinatorBusyError extends Error {
  constructor(
    readonly study: string,
    readonly holder: string,
    url: string,
    ttlMs: number,
  ) {
    super(
      `study ${study} is already being coordinated by ${holder} (memscope queue status ${url} --study ${study} shows it): ` +
        `two coordinators of one study would enqueue and commit its units twice. Wait for it to finish, or stop it with ` +
        `memscope queue drain ${url} --study ${study} and run the command again; a coordinator that died frees the study within ${Math.ceil(ttlMs / 1000)} s`,
    );
  }
}

/** `host:pid` of this process, the value of its leases. */
export function coordinatorName(): string {
  return `${hostname()}:${process.pid}`;
}

/** Whether `holder` (`host:pid`) is a process of this host that no longer runs. */
function deadHereHolder(holder: string): boolean {
  const i = holder.lastIndexOf(':');
  if (i < 0 || holder.slice(0, i) !== hostname()) return false;
  const pid = Number(holder.slice(i + 1));
  return Number.isInteger(pid) && pid > 0 && !isProcessAlive(pid);
}

/**
 * Take the coordinator lease of `study` for `me`; null when taken, else the live holder. A holder
 * on this host whose process is gone is replaced.
 */
export async function acquireLease(redis: Redis, study: string, me: string, ttlMs = LEASE_TTL_MS): Promise<string | null> {
  const key = LEASE_PREFIX + study;
  for (let tries = 0; tries < 5; tries++) {
    if ((await redis.set(key, me, 'PX', ttlMs, 'NX')) === 'OK') return null;
    const holder = await redis.get(key);
    if (holder === null) continue; // expired between the two calls
    if (holder === me) return null;
    if (!deadHereHolder(holder)) return holder;
    if (Number(await redis.eval(TAKE, 1, key, me, String(ttlMs), holder)) === 1) return null;
  }
  return (await redis.get(key)) ?? 'another coordinator';
}

/**
 * Renew `me`'s lease of `study` (set again if Redis lost it, e.g. a flushed or restarted server);
 * false when another coordinator holds it now.
 */
export async function renewLease(redis: Redis, study: string, me: string, ttlMs = LEASE_TTL_MS): Promise<boolean> {
  return Number(await redis.eval(TAKE, 1, LEASE_PREFIX + study, me, String(ttlMs), '')) === 1;
}

/** Give up `me`'s lease of `study` (nothing if another holds it). */
export async function releaseLease(redis: Redis, study: string, me: string): Promise<void> {
  await redis.eval(`if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) end return 0`, 1, LEASE_PREFIX + study, me);
}

/** The holder of `study`'s lease, or null. */
export async function leaseHolder(redis: Redis, study: string): Promise<string | null> {
  return redis.get(LEASE_PREFIX + study);
}
