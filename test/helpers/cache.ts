/** Point MEMSCOPE_CACHE at a fresh temporary folder for one test file; restore and clean up after. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { disposeAll } from '../../src/graph/session.ts';

/** Call at module level (before denoisers are built); returns the folder. */
export function useTempCache(prefix: string): string {
  const prev = process.env['MEMSCOPE_CACHE'];
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.env['MEMSCOPE_CACHE'] = dir;
  afterAll(async () => {
    if (prev === undefined) delete process.env['MEMSCOPE_CACHE'];
    else process.env['MEMSCOPE_CACHE'] = prev;
    rmSync(dir, { recursive: true, force: true });
    await disposeAll();
  });
  return dir;
}
