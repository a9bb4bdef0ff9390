/**
 * The published package works where a user installs it (issue 14 §5): `npm pack` (its `prepack`
 * builds `dist/` JS + `.d.ts` from `src/`) → install the tarball into a new empty project with no
 * network → `npx memscope demo` runs and writes its report; `import { … } from 'memscope'` works
 * from plain Node (the README's "Library" example); TypeScript resolves the package's types.
 *
 * How it stays offline: the tarball's dependencies come from the npm cache that `npm ci` filled
 * (CI runs `npm ci` first, `.ci/run`). npm resolves version ranges from registry metadata that
 * `npm ci` does not cache, so the new project gets a lockfile listing exactly the production
 * packages of memscope's own `package-lock.json` (same versions, `resolved` URLs and integrity
 * hashes) — what a user's `npm install memscope` would resolve to today — and installs with
 * `--offline`. Install scripts of dependencies are skipped (`--ignore-scripts`, as npm ≥ 11 does
 * by default for unapproved packages; `ONNXRUNTIME_NODE_INSTALL=skip` is set as a user without
 * network must), and a native dependency's compiled `build/` (e.g. better-sqlite3, built by its
 * install script during `npm ci`) is copied from the checkout's `node_modules`, so adding native
 * dependencies keeps this test offline.
 *
 * The package is packed from a copy of the checkout in a temporary folder, so the checkout's own
 * `dist/` is neither written nor used.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const ENV = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', MEMSCOPE_THREADS: process.env['MEMSCOPE_THREADS'] ?? '1', npm_config_update_notifier: 'false' };

/** The README "Library" example, importing from the installed package (the text of the README notes). */
const LIBRARY_EXAMPLE = `import { defaultTestbed, cfg, dtp, sampleDdim, stableDiffusionConfig, randnTorch } from 'memscope';

const tb = await defaultTestbed();
const guided = cfg(tb.denoiser, dtp(7.5), [10, 10]);            // caption 0, two seeds
const noise = { dims: [2, 1, 28, 28], data: new Float32Array([...randnTorch([1, 28, 28], 0).data, ...randnTorch([1, 28, 28], 1).data]) };
const x0 = await sampleDdim(guided.model, noise, stableDiffusionConfig(), {
  steps: 50,
  onStep: (e) => console.log(e.step, e.t, e.s?.[0], e.d?.[0]),  // observers see every step
});
console.log(guided.switchSteps());
`;

let root: string;
let app: string;
let tarball: string;

function run(cmd: string, args: readonly string[], cwd: string): { code: number; out: string; err: string } {
  const r = spawnSync(cmd, args, { cwd, env: ENV, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status ?? -1, out: r.stdout, err: `${r.stderr}${r.error === undefined ? '' : String(r.error)}` };
}

/** The `files` the package ships, copied (without model checkpoints) with everything `npm pack` needs to build. */
function copyCheckout(dest: string): void {
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', '.npmrc', 'README.md', 'LICENSE']) {
    if (existsSync(join(REPO, f))) cpSync(join(REPO, f), join(dest, f));
  }
  for (const d of ['bin', 'src', 'models', 'data', 'scripts/convert']) {
    cpSync(join(REPO, d), join(dest, d), { recursive: true, filter: (p) => !/[\\/]checkpoints([\\/]|$)/.test(relative(REPO, p)) });
  }
  symlinkSync(join(REPO, 'node_modules'), join(dest, 'node_modules'), 'dir');
}

/** A lockfile for a project depending only on the tarball: memscope's production packages as its own lockfile pins them. */
function consumerLock(tgz: string): { pkg: object; lock: object } {
  const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, Record<string, unknown>> };
  const pj = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as Record<string, unknown>;
  const spec = `file:${tgz}`;
  const packages: Record<string, unknown> = {
    '': { name: 'app', dependencies: { memscope: spec } },
    'node_modules/memscope': { version: pj['version'], resolved: spec, license: pj['license'], dependencies: pj['dependencies'], bin: pj['bin'], engines: pj['engines'] },
  };
  for (const [k, v] of Object.entries(lock.packages)) if (k !== '' && v['dev'] !== true) packages[k] = v;
  return { pkg: { name: 'app', private: true, type: 'module', dependencies: { memscope: spec } }, lock: { name: 'app', lockfileVersion: 3, requires: true, packages } };
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'memscope-pack-'));
  const src = join(root, 'checkout');
  mkdirSync(src);
  copyCheckout(src);
  const pack = run(NPM, ['pack', '--pack-destination', root, '--json'], src);
  if (pack.code !== 0) throw new Error(`npm pack failed (${pack.code}):\n${pack.err}`);
  const name = (JSON.parse(pack.out.slice(pack.out.indexOf('['))) as { filename: string }[])[0]!.filename;
  tarball = join(root, name);

  app = join(root, 'app');
  mkdirSync(app);
  const { pkg, lock } = consumerLock(tarball);
  writeFileSync(join(app, 'package.json'), JSON.stringify(pkg, null, 2));
  writeFileSync(join(app, 'package-lock.json'), JSON.stringify(lock, null, 2));
  const inst = run(NPM, ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], app);
  if (inst.code !== 0) throw new Error(`npm install --offline of the tarball failed (${inst.code}):\n${inst.err}`);
  // compiled products of native dependencies' install scripts, from the checkout's npm ci
  for (const [k, v] of Object.entries((lock as { packages: Record<string, Record<string, unknown>> }).packages)) {
    if (v['hasInstallScript'] !== true || !k.startsWith('node_modules/')) continue;
    const built = join(REPO, k, 'build');
    if (existsSync(built) && !existsSync(join(app, k, 'build'))) cpSync(built, join(app, k, 'build'), { recursive: true });
  }
}, 900_000);

afterAll(() => {
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
});

describe('the packed package, installed offline into an empty project', () => {
  it('ships dist/ (JS + .d.ts), models, data, the conversion scripts, README and LICENSE; no sources, tests or checkpoints; no tsx needed', () => {
    const pkg = join(app, 'node_modules', 'memscope');
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'bin/memscope.js', 'models/duplication/model.json', 'models/classifier/weights.safetensors', 'models/descriptor/descriptor.json', 'data/fashion-mnist/train-images-idx3-ubyte.gz', 'scripts/convert/sscd_to_onnx.py', 'scripts/convert/check_onnx.mjs', 'README.md', 'LICENSE']) {
      expect(existsSync(join(pkg, f)), f).toBe(true);
    }
    expect(existsSync(join(pkg, 'src'))).toBe(false);
    const all: string[] = [];
    const walk = (d: string): void => {
      for (const e of readdirSync(d)) {
        const p = join(d, e);
        if (statSync(p).isDirectory()) walk(p);
        else all.push(relative(pkg, p));
      }
    };
    walk(pkg);
    expect(all.filter((f) => /\.test\.|test-helpers|[\\/]checkpoints[\\/]|[\\/]validation[\\/]/.test(f))).toEqual([]);
    expect(existsSync(join(app, 'node_modules', 'tsx'))).toBe(false); // a devDependency only
  });

  it('npx memscope demo runs from the installed package (the shipped trained model) and writes its report', () => {
    const r = run('npx', ['--no-install', 'memscope', 'demo', '--seeds', '0-1', '--steps', '4', '--memorized', 'caption:0', '--generalizing', 'class:0', '--guidance', 'constant:7.5', '--out', 'out/demo'], app);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/the trained "graded" model \(models\/graded, shipped\)/);
    const report = readFileSync(join(app, 'out', 'demo', 'report.html'), 'utf8');
    expect(report).toMatch(/<html/i);
    const cfg = JSON.parse(readFileSync(join(app, 'out', 'demo', 'config.json'), 'utf8')) as { model: { name: string } };
    expect(cfg.model.name).toBe('trained:graded');
    expect(JSON.stringify(cfg)).toContain('"steps":4');
  }, 300_000);

  it("the README 'Library' example runs with plain Node from the installed package", () => {
    writeFileSync(join(app, 'library.mjs'), LIBRARY_EXAMPLE);
    const r = run(process.execPath, ['library.mjs'], app);
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n');
    // one line per DDIM step (50), then switchSteps() of the two rows
    expect(lines.filter((l) => /^\d+ \d+ /.test(l))).toHaveLength(50);
    expect(lines[0]!.split(' ').slice(0, 2)).toEqual(['0', '981']); // DDIM, 50 leading steps with steps_offset 1: t = 981 first
  }, 300_000);

  it('TypeScript resolves the types of `memscope` (and rejects a wrong use of them)', () => {
    const tsc = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
    const tsconfig = (file: string): string =>
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, typeRoots: [join(REPO, 'node_modules', '@types')], types: ['node'] }, files: [file] });
    writeFileSync(
      join(app, 'ok.ts'),
      `import { stableDiffusionConfig, sampleDdim, cfg, dtp, readNpy, type SchedulerConfig, type Tensor, type Denoiser } from 'memscope';
import { main } from 'memscope/cli';
const c: SchedulerConfig = stableDiffusionConfig();
const n: number = c.num_train_timesteps;
const t: Tensor = { dims: [1], data: new Float32Array(1) };
const f: (argv: string[]) => Promise<number> = main;
export const used = [n, t, f, sampleDdim, cfg, dtp, readNpy] as const;
export type D = Denoiser;
`,
    );
    writeFileSync(join(app, 'bad.ts'), `import { stableDiffusionConfig } from 'memscope';\nexport const s: string = stableDiffusionConfig().num_train_timesteps;\n`);
    writeFileSync(join(app, 'tsconfig.ok.json'), tsconfig('ok.ts'));
    writeFileSync(join(app, 'tsconfig.bad.json'), tsconfig('bad.ts'));
    const ok = run(process.execPath, [tsc, '-p', 'tsconfig.ok.json'], app);
    expect(ok.code, ok.out + ok.err).toBe(0);
    const bad = run(process.execPath, [tsc, '-p', 'tsconfig.bad.json'], app);
    expect(bad.code).not.toBe(0);
    expect(bad.out).toMatch(/bad\.ts.*TS2322: Type 'number' is not assignable to type 'string'/);
  }, 120_000);

  const readmeBlock = ((): string | undefined => {
    const md = readFileSync(join(REPO, 'README.md'), 'utf8');
    return /```ts\n([\s\S]*?)```/.exec(md.slice(md.indexOf('## Library')))?.[1];
  })();
  it("the README 'Library' section's own example imports from 'memscope' and runs from the installed package", () => {
    expect(readmeBlock, "README.md has no ```ts block after '## Library'").toBeDefined();
    expect(readmeBlock).toContain("from 'memscope'");
    writeFileSync(join(app, 'readme-library.mjs'), readmeBlock!);
    const r = run(process.execPath, ['readme-library.mjs'], app);
    expect(r.code, r.err).toBe(0);
    // as the inline copy: one line per DDIM step, the first at t = 981
    const lines = r.out.trim().split('\n');
    expect(lines.filter((l) => /^\d+ \d+ /.test(l))).toHaveLength(50);
    expect(lines[0]!.split(' ').slice(0, 2)).toEqual(['0', '981']);
  }, 300_000);

  it('the installed bin runs dist/ with plain Node; in a checkout bin/memscope.js runs src/ through tsx, never a stale dist/', () => {
    const help = run(process.execPath, [join(app, 'node_modules', 'memscope', 'bin', 'memscope.js'), '--help'], app);
    expect(help.code, help.err).toBe(0);
    expect(help.out).toMatch(/^memscope — /);
    // the packed copy of the checkout has a fresh dist/; make it stale (a main that fails) and run its bin
    const co = join(root, 'checkout');
    writeFileSync(join(co, 'dist', 'cli', 'main.js'), 'export async function main() { process.stderr.write("stale dist\\n"); return 3; }\n');
    const r = run(process.execPath, [join(co, 'bin', 'memscope.js'), '--help'], co);
    expect(r.code, r.err).toBe(0);
    expect(r.err).not.toContain('stale dist');
    expect(r.out).toMatch(/^memscope — /);
  }, 120_000);
});
