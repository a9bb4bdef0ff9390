/**
 * Where the package's own files are: found from this module's URL, never from the cwd, so
 * `data/` resolves the same whether memscope runs from its repo, from `node_modules`, or
 * from a test in another directory.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, parse } from 'node:path';
import { fileURLToPath } from 'node:url';

let cachedRoot: string | undefined;

/**
 * The memscope package root: the nearest directory above this module that holds a
 * `package.json` whose `name` is `memscope`. Throws when none is found.
 */
export function packageRoot(): string {
  if (cachedRoot !== undefined) return cachedRoot;
  const start = dirname(fileURLToPath(import.meta.url));
  let dir = start;
  const { root } = parse(dir);
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        const name = (JSON.parse(readFileSync(pj, 'utf8')) as { name?: unknown }).name;
        if (name === 'memscope') return (cachedRoot = dir);
      } catch {
        // not JSON: keep walking up
      }
    }
    if (dir === root) break;
    dir = dirname(dir);
  }
  throw new Error(`packageRoot: no package.json named "memscope" above ${start}`);
}

/** The package's shipped-data directory, `<package root>/data`. */
export function dataDir(): string {
  return join(packageRoot(), 'data');
}
