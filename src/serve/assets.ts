/**
 * The dashboard's static assets: Vega, Vega-Lite and vega-embed as their packages ship them
 * (UMD builds, resolved from node_modules, nothing fetched from a CDN), the page script and the
 * stylesheet. Served by name from a fixed table: no path from a request reaches the file system.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DASHBOARD_JS, DASHBOARD_CSS } from './client.ts';

const require = createRequire(import.meta.url);

/** A file of an installed package, by its path inside the package (export maps do not list the UMD builds). */
function packageFile(pkg: string, file: string): string {
  let dir = dirname(require.resolve(pkg));
  // the package's own folder (node_modules/<pkg>), not a nested build/package.json
  while (!(existsSync(join(dir, 'package.json')) && dir.endsWith(join('node_modules', pkg)))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`dashboard assets: the package ${pkg} is not installed`);
    dir = up;
  }
  return readFileSync(join(dir, file), 'utf8');
}

/** Asset name → [content type, where it comes from]. */
const TABLE: Readonly<Record<string, readonly [string, () => string]>> = {
  'vega.min.js': ['text/javascript; charset=utf-8', () => packageFile('vega', 'build/vega.min.js')],
  'vega-lite.min.js': ['text/javascript; charset=utf-8', () => packageFile('vega-lite', 'build/vega-lite.min.js')],
  'vega-embed.min.js': ['text/javascript; charset=utf-8', () => packageFile('vega-embed', 'build/vega-embed.min.js')],
  'dashboard.js': ['text/javascript; charset=utf-8', () => DASHBOARD_JS],
  'dashboard.css': ['text/css; charset=utf-8', () => DASHBOARD_CSS],
};

const cache = new Map<string, string>();

/** The asset `name` as [content type, text], or null for a name not in the table. */
export function asset(name: string): [string, string] | null {
  const e = TABLE[name];
  if (!e) return null;
  let text = cache.get(name);
  if (text === undefined) {
    text = e[1]();
    cache.set(name, text);
  }
  return [e[0], text];
}

/** The `<script>`/`<link>` tags of every page. */
export const ASSET_TAGS = ['vega.min.js', 'vega-lite.min.js', 'vega-embed.min.js', 'dashboard.js'].map((n) => `<script defer src="/assets/${n}"></script>`).join('') + '<link rel="stylesheet" href="/assets/dashboard.css">';
