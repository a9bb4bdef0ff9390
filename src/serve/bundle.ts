/**
 * The explorer's browser bundle, built with esbuild when the dashboard first serves it (≈ 0.2 s,
 * then kept): `explorer-client.ts` and the CLI modules it imports (denoiser, sampling job,
 * samplers, guidance, schedules, the line chart), with `graph/session-web.ts` put in place of
 * `graph/session.ts` so that the U-Net runs on onnxruntime-web. onnxruntime-web itself stays
 * outside the bundle: its ES module and wasm files are served as they ship (`assets.ts`).
 * Works from the TypeScript sources (a checkout) and from the compiled `dist/` (the package).
 */
import { build } from 'esbuild';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
const SESSION = resolve(here, '..', 'graph', `session.${ext}`);
const SESSION_WEB = resolve(here, '..', 'graph', `session-web.${ext}`);

let built: Promise<string> | null = null;

/** The explorer's bundle (ES module text), built once per process. */
export function explorerBundle(): Promise<string> {
  built ??= build({
    entryPoints: [join(here, `explorer-client.${ext}`)],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    logLevel: 'silent',
    legalComments: 'none',
    plugins: [
      {
        name: 'memscope-web',
        setup(b) {
          // the CLI's onnxruntime-node sessions → the same Session class over onnxruntime-web
          b.onResolve({ filter: /(^|\/)session\.(ts|js)$/ }, (a) => (resolve(a.resolveDir, a.path) === SESSION ? { path: SESSION_WEB } : undefined));
          // onnxruntime-web as it ships, served beside the bundle
          b.onResolve({ filter: /^onnxruntime-web(\/|$)/ }, () => ({ path: '/assets/ort.wasm.min.mjs', external: true }));
        },
      },
    ],
  }).then((r) => r.outputFiles[0]!.text);
  return built;
}
