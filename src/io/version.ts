/** memscope's own version, read once from the package's `package.json`. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../data/paths.ts';

let cachedVersion: string | undefined;

/** The memscope version (from the package's `package.json`; `unknown` when unreadable), recorded in checkpoints, results and stored units. */
export function memscopeVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  try {
    const pj = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: unknown };
    cachedVersion = typeof pj.version === 'string' ? pj.version : 'unknown';
  } catch {
    cachedVersion = 'unknown';
  }
  return cachedVersion;
}
