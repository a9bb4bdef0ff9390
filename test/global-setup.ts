/**
 * vitest global setup: every test run gets a fresh results store in a temporary folder
 * (MEMSCOPE_STORE), so that tests never write runs/store in the checkout; removed afterwards.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'memscope-test-store-'));
  const store = join(dir, 'store');
  process.env['MEMSCOPE_STORE'] = store;
  return () => rmSync(dir, { recursive: true, force: true });
}
