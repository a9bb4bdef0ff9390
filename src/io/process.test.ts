import { describe, it, expect } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { isProcessAlive } from './process.ts';

describe('isProcessAlive', () => {
  it('is true for this process and a running child, false once the child has exited', async () => {
    expect(isProcessAlive(process.pid)).toBe(true);
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)'], { stdio: 'ignore' });
    expect(isProcessAlive(child.pid!)).toBe(true);
    const exited = new Promise<void>((res) => child.once('exit', () => res()));
    child.kill('SIGKILL');
    await exited;
    expect(isProcessAlive(child.pid!)).toBe(false);
    const done = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    expect(isProcessAlive(Number(done.stdout))).toBe(false);
  });
});
