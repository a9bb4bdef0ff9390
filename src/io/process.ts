/**
 * Whether a process is alive, for the lock files of results folders, stores and checkpoints (a
 * lock whose owner is gone is stale and may be taken over).
 */

/** True when `pid` is this process or a running one (signal 0 succeeds, or is refused with EPERM: it exists under another user). */
export function isProcessAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
