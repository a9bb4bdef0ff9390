/**
 * The dashboard's static assets: Vega, Vega-Lite and vega-embed as their packages ship them
 * (UMD builds, resolved from node_modules, nothing fetched from a CDN), onnxruntime-web's wasm
 * build (ES module, its worker module and the wasm binary) for the explorer, the explorer's
 * bundle, the page script and the stylesheet. Served by name from a fixed table: no path from a
 * request reaches the file system.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DASHBOARD_JS, DASHBOARD_CSS } from './client.ts';
import { explorerBundle } from './bundle.ts';

const require = createRequire(import.meta.url);

/** A file of an installed package, by its path inside the package (export maps do not list the UMD builds). */
function packageFile(pkg: string, file: string): Uint8Array {
  let dir = dirname(require.resolve(pkg));
  // the package's own folder (node_modules/<pkg>), not a nested build/package.json
  while (!(existsSync(join(dir, 'package.json')) && dir.endsWith(join('node_modules', pkg)))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`dashboard assets: the package ${pkg} is not installed`);
    dir = up;
  }
  return readFileSync(join(dir, file));
}

const JS = 'text/javascript; charset=utf-8';

/** Asset name → [content type, where it comes from]. */
const TABLE: Readonly<Record<string, readonly [string, () => string | Uint8Array | Promise<string>]>> = {
  'vega.min.js': [JS, () => packageFile('vega', 'build/vega.min.js')],
  'vega-lite.min.js': [JS, () => packageFile('vega-lite', 'build/vega-lite.min.js')],
  'vega-embed.min.js': [JS, () => packageFile('vega-embed', 'build/vega-embed.min.js')],
  'ort.wasm.min.mjs': [JS, () => packageFile('onnxruntime-web', 'dist/ort.wasm.min.mjs')],
  'ort-wasm-simd-threaded.mjs': [JS, () => packageFile('onnxruntime-web', 'dist/ort-wasm-simd-threaded.mjs')],
  'ort-wasm-simd-threaded.wasm': ['application/wasm', () => packageFile('onnxruntime-web', 'dist/ort-wasm-simd-threaded.wasm')],
  'explorer.js': [JS, explorerBundle],
  'dashboard.js': [JS, () => DASHBOARD_JS],
  'dashboard.css': ['text/css; charset=utf-8', () => DASHBOARD_CSS],
};

const cache = new Map<string, Promise<string | Uint8Array>>();

/** The asset `name` as [content type, body], or null for a name not in the table. */
export async function asset(name: string): Promise<[string, string | Uint8Array] | null> {
  const e = Object.hasOwn(TABLE, name) ? TABLE[name] : undefined;
  if (!e) return null;
  let body = cache.get(name);
  if (body === undefined) {
    body = Promise.resolve(e[1]());
    cache.set(name, body);
  }
  return [e[0], await body];
}

/** The `<script>`/`<link>` tags of every page. */
export const ASSET_TAGS = ['vega.min.js', 'vega-lite.min.js', 'vega-embed.min.js', 'dashboard.js'].map((n) => `<script defer src="/assets/${n}"></script>`).join('') + '<link rel="stylesheet" href="/assets/dashboard.css">';
