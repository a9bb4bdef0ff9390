/**
 * Redis connections of the queue runner and its workers (BullMQ on ioredis). A queue is named by a
 * URL `redis://HOST:PORT/DB` (or `rediss://` for TLS); every connection memscope opens is checked
 * first with a bounded ping, so an unreachable queue is one clear error naming the URL, not a
 * retry loop or a stack dump.
 */
import { Redis } from 'ioredis';
import { InputError } from '../io/errors.ts';

/** The BullMQ queue every memscope study uses (jobs carry their study and command). */
export const QUEUE_NAME = 'memscope-units';

/** Parse and check a queue URL (`redis://HOST[:PORT][/DB]`); throws an InputError naming `flag`. */
export function parseQueueUrl(url: string, flag = '--queue'): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InputError(`${flag}: "${url}" is not a URL; expected redis://HOST:PORT/DB (e.g. redis://127.0.0.1:6379/0)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new InputError(`${flag}: "${url}" is a ${u.protocol.replace(':', '')} URL; expected redis://HOST:PORT/DB`);
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new InputError(`${flag}: "${url}": the database must be a number (redis://HOST:PORT/0), got "${db}"`);
  return u;
}

/** A new connection as BullMQ wants it (`maxRetriesPerRequest: null`: blocking commands wait, workers reconnect after a Redis restart). */
export function redisConnection(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
}

/** Ping the queue's Redis once within `timeoutMs`; an InputError naming the URL when it cannot be reached. */
export async function checkQueue(url: string, flag = '--queue', timeoutMs = 5000): Promise<void> {
  parseQueueUrl(url, flag);
  const r = new Redis(url, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  r.on('error', () => {}); // reported below
  try {
    await r.connect();
    await r.ping();
  } catch (e) {
    throw new InputError(`${flag}: cannot reach Redis at ${url} (${(e as Error).message}); start it (redis-server --appendonly yes) or give the right URL`);
  } finally {
    r.disconnect();
  }
}
