/**
 * `npm run bench`: runs every benchmark and writes one JSON file per benchmark under
 * bench/results/ (plus all.json). Figures are ratios against a peer measured in the same run.
 * Usage: npm run bench [-- name ...]   (names: empirical, guidance, demo, autodiff, train, train-profile, kim, mitigation, geometry, sd, sd-folder, browser, queue)
 * `sd` (SD 1.x-sized U-Net at 512×512, ~15 min on 2 cores) takes MEMSCOPE_BENCH_SD_STEPS (default 50).
 */
import { writeFile, mkdir } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { cpus } from 'node:os';
import { benchGuidance } from './guidance.ts';
import { benchEmpirical } from './empirical.ts';
import { benchAutodiff } from './autodiff.ts';
import { benchTrain } from './train.ts';
import { benchTrainProfile } from './train-profile.ts';
import { benchKim } from './kim.ts';
import { benchMitigation } from './mitigation.ts';
import { benchGeometry } from './geometry.ts';
import { benchSd } from './sd.ts';
import { benchSdFolder } from './sd-folder.ts';
import { benchBrowser } from './browser.ts';
import { benchQueue } from './queue.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

async function benchDemo(): Promise<Record<string, unknown>> {
  const out = join(root, 'bench', 'results', 'demo-out');
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(root, 'bin', 'memscope.js'), 'demo', '--out', out], { encoding: 'utf8' });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`demo failed: ${r.stderr}`);
  return { what: 'wall time of `memscope demo` (npm start) in a fresh process, eigendecomposition cache warm if present', seconds, target: '< 120 s' };
}

const BENCHES: Record<string, () => Promise<Record<string, unknown>>> = {
  empirical: benchEmpirical,
  guidance: () => benchGuidance(),
  demo: benchDemo,
  autodiff: benchAutodiff,
  train: () => benchTrain(),
  'train-profile': () => benchTrainProfile(),
  kim: benchKim,
  mitigation: () => benchMitigation(5),
  geometry: benchGeometry,
  sd: benchSd,
  'sd-folder': benchSdFolder,
  browser: benchBrowser,
  queue: benchQueue,
};

const want = process.argv.slice(2).filter((a) => a !== '--');
for (const w of want) if (!BENCHES[w]) throw new Error(`bench: unknown benchmark "${w}"; expected ${Object.keys(BENCHES).join(', ')}`);
const names = want.length ? want : Object.keys(BENCHES);
await mkdir(join(root, 'bench', 'results'), { recursive: true });
const machine = { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version, date: new Date().toISOString() };
const all: Record<string, unknown> = { machine };
for (const n of names) {
  process.stderr.write(`bench ${n}…\n`);
  const res = { machine, ...(await BENCHES[n]!()) };
  all[n] = res;
  await writeFile(join(root, 'bench', 'results', `${n}.json`), JSON.stringify(res, null, 2) + '\n');
  process.stdout.write(`${n}: ${JSON.stringify(res)}\n`);
}
await writeFile(join(root, 'bench', 'results', 'all.json'), JSON.stringify(all, null, 2) + '\n');
