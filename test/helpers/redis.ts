/**
 * A real Redis server for the queue tests: Debian's `redis-server` on a free loopback port, with
 * its append-only file in a temporary folder (so a restart keeps the queue), stopped afterwards.
 * Where the binary is absent the tests that need it are skipped with {@link NO_REDIS} as the reason.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';

/** The redis-server binary (default Debian's). */
export const REDIS_SERVER = process.env['REDIS_SERVER'] ?? '/usr/bin/redis-server';

/** Whether {@link REDIS_SERVER} exists. */
export const HAVE_REDIS = existsSync(REDIS_SERVER);

/** Why the queue tests are skipped, when they are. */
export const NO_REDIS = `queue tests skipped: no redis-server at ${REDIS_SERVER} (apt-get install redis-server, or set REDIS_SERVER=/path); .ci/run installs it`;

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** A running redis-server. */
export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** Stop it (SHUTDOWN: the append-only file is complete) and start it again on the same port and folder. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function waitUp(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' });
    if (r.stdout?.trim() === 'PONG') return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`redis-server on port ${port} did not start`);
}

/** Start redis-server on a free loopback port with AOF in `dir`. */
export async function startRedis(dir: string): Promise<RedisServer> {
  const port = await freePort();
  let proc: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    proc = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], { stdio: 'ignore' });
    await waitUp(port);
  };
  const stopNow = async (): Promise<void> => {
    const p = proc as ChildProcess | null;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((res) => p.once('exit', res));
    spawnSync('redis-cli', ['-p', String(port), 'shutdown'], { encoding: 'utf8' });
    await Promise.race([exited, new Promise((res) => setTimeout(res, 5000))]);
    if (p.exitCode === null) p.kill('SIGKILL');
  };
  await start();
  return { url: `redis://127.0.0.1:${port}/0`, port, restart: async () => (await stopNow(), await start()), stop: stopNow };
}
