/**
 * The coordinator lease on a real Redis (Debian's redis-server, never a mock): one holder at a
 * time, a dead holder on this host replaced at once, a live or foreign one kept, the lease set
 * again when Redis lost it, expiry after its TTL, and release only by its holder.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { HAVE_REDIS, NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.ts';
import { acquireLease, coordinatorName, leaseHolder, releaseLease, renewLease } from '../../src/queue/lease.ts';

let dir = '';
let server: RedisServer | null = null;
let redis: Redis | null = null;

beforeAll(async () => {
  if (!HAVE_REDIS) return;
  dir = await mkdtemp(join(tmpdir(), 'memscope-lease-'));
  server = await startRedis(dir);
  redis = new Redis(server.url);
}, 30_000);

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

/** The pid of a process that has exited (so no process of this host has it, until the pid is reused). */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid!;
}

describe.skipIf(!HAVE_REDIS)('coordinator lease (real Redis)', () => {
  it('one holder at a time; the holder renews and releases it; another cannot release it', async () => {
    const r = redis!;
    const me = coordinatorName();
    expect(me).toBe(`${hostname()}:${process.pid}`);
    expect(await acquireLease(r, 'aaaaaaaaaaaa', me)).toBeNull();
    expect(await acquireLease(r, 'aaaaaaaaaaaa', me)).toBeNull(); // ours already
    const other = 'elsewhere.example:4242';
    expect(await acquireLease(r, 'aaaaaaaaaaaa', other)).toBe(me);
    expect(await renewLease(r, 'aaaaaaaaaaaa', other)).toBe(false);
    await releaseLease(r, 'aaaaaaaaaaaa', other);
    expect(await leaseHolder(r, 'aaaaaaaaaaaa')).toBe(me);
    expect(await renewLease(r, 'aaaaaaaaaaaa', me)).toBe(true);
    await releaseLease(r, 'aaaaaaaaaaaa', me);
    expect(await leaseHolder(r, 'aaaaaaaaaaaa')).toBeNull();
    expect(await acquireLease(r, 'aaaaaaaaaaaa', other)).toBeNull();
    await releaseLease(r, 'aaaaaaaaaaaa', other);
  });

  it('a dead holder on this host is replaced at once; a holder on another host is kept until its lease expires', async () => {
    const r = redis!;
    const me = coordinatorName();
    const dead = `${hostname()}:${deadPid()}`;
    expect(await acquireLease(r, 'bbbbbbbbbbbb', dead)).toBeNull();
    expect(await acquireLease(r, 'bbbbbbbbbbbb', me)).toBeNull();
    expect(await leaseHolder(r, 'bbbbbbbbbbbb')).toBe(me);
    await releaseLease(r, 'bbbbbbbbbbbb', me);
    // another host's pid cannot be checked from here: its lease stands until it expires (TTL 300 ms here)
    const foreign = `not-${hostname()}:1`;
    expect(await acquireLease(r, 'cccccccccccc', foreign, 300)).toBeNull();
    expect(await acquireLease(r, 'cccccccccccc', me)).toBe(foreign);
    await new Promise((res) => setTimeout(res, 400));
    expect(await acquireLease(r, 'cccccccccccc', me)).toBeNull();
    await releaseLease(r, 'cccccccccccc', me);
  });

  it('a lease Redis lost (flushed) is set again by its holder\'s renewal, with its TTL', async () => {
    const r = redis!;
    const me = coordinatorName();
    expect(await acquireLease(r, 'dddddddddddd', me)).toBeNull();
    await r.flushdb();
    expect(await renewLease(r, 'dddddddddddd', me, 5000)).toBe(true);
    expect(await leaseHolder(r, 'dddddddddddd')).toBe(me);
    const ttl = await r.pttl('memscope:coordinator:dddddddddddd');
    expect(ttl).toBeGreaterThan(4000);
    expect(ttl).toBeLessThanOrEqual(5000);
  });
});

if (!HAVE_REDIS) it.skip(NO_REDIS, () => {});
