/**
 * Benchmark of the dashboard (issue 17): time to first render in Debian's Chromium of its pages
 * over a store of 10,000 sampling units (10 study runs × 100 prompts × 10 seeds, each unit with a
 * 50-step d_t curve and a 1×32×32 sample, written through the store as the sample study writes),
 * from navigation to the page's `data-ready` (every Vega figure drawn). Peer in the same run: the
 * same pages over a store of 100 units (1 run × 10 prompts × 10 seeds), interleaved, so the figure
 * is the ratio large / small per page: how the dashboard scales with the store.
 *
 * The first visit of a run reads its units and builds its tables (cold); the dashboard then keeps
 * them until the run gains units, so a second visit is warm: both are reported.
 *
 * The explorer: one sample of the shipped lab model (models/graded, prompt caption:30, CFG 7.5,
 * DPM-Solver++ 2M 50 steps) in the browser (onnxruntime-web wasm, 2 threads when cross-origin
 * isolated) beside the CLI's (onnxruntime-node, `MEMSCOPE_THREADS` or 2 threads, the same
 * `runSampling` in this process), sampling time only, 3 interleaved repetitions (medians), and
 * the largest difference between the two samples.
 *
 * Standalone: `node --import tsx bench/browser.ts` prints JSON. Needs /usr/bin/chromium (or CHROMIUM).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import { encodeNpy } from '../src/io/npy.ts';
import { TorchGenerator } from '../src/random/torch.ts';
import { startDashboard } from '../src/cli/serve.ts';
import { HAVE_BROWSER, NO_BROWSER, launchBrowser } from '../test/helpers/browser.ts';
import { loadStudySource } from '../src/study/source.ts';
import { runSampling } from '../src/study/sampling.ts';
import { parseGuidance } from '../src/guidance/spec.ts';
import { defaultThreads } from '../src/graph/session.ts';

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[v.length >> 1]!;

/** Seconds per explorer sample in the browser vs the CLI's runSampling, interleaved. */
async function benchExplorer(page: import('playwright-core').Page, url: string): Promise<Record<string, unknown>> {
  await page.goto(`${url}explorer`);
  await page.waitForSelector('body[data-runs="1"]', { timeout: 600_000 });
  const src = await loadStudySource('models/graded');
  const cond = src.denoiser.conditions.findIndex((c) => c.id === 'caption:30');
  const browser: number[] = [];
  const cli: number[] = [];
  let diff = 0;
  let threads = 0;
  for (let rep = 0; rep < 3; rep++) {
    const b = (await page.evaluate(() => (window as unknown as { memscopeExplorer: { run(s: unknown): Promise<unknown> } }).memscopeExplorer.run({ prompt: 'caption:30', seed: 0, method: 'cfg' }))) as { seconds: number; sample: number[]; threads: number };
    browser.push(b.seconds);
    threads = b.threads;
    const t0 = performance.now();
    const r = await runSampling({ denoiser: src.denoiser, conds: [cond], seeds: [0], sampler: 'dpmpp2m', steps: 50, config: src.schedule.config, guidance: parseGuidance('constant:7.5') });
    cli.push((performance.now() - t0) / 1000);
    for (let i = 0; i < b.sample.length; i++) diff = Math.max(diff, Math.abs(b.sample[i]! - r.samples.data[i]!));
  }
  await src.denoiser.dispose?.();
  return { what: 'one sample of models/graded, caption:30, CFG 7.5, DPM-Solver++ 2M 50 steps: browser (wasm) vs CLI (native), sampling only, median of 3 interleaved', browserSeconds: median(browser), cliSeconds: median(cli), ratio: median(browser) / median(cli), browserThreads: threads, cliThreads: defaultThreads(), maxAbsDiff: diff };
}

const STEPS = 50;

/** A store of `runs` × `prompts` × `seeds` sampling units; returns the seconds it took to write. */
async function fillStore(dir: string, runs: number, prompts: number, seeds: number): Promise<{ seconds: number; runIds: string[] }> {
  const t0 = performance.now();
  const s = await SqliteStore.open(dir);
  const gen = new TorchGenerator(0);
  const runIds: string[] = [];
  for (let r = 0; r < runs; r++) {
    const keys: string[] = [];
    for (let p = 0; p < prompts; p++) for (let k = 0; k < seeds; k++) keys.push(`${r.toString(16).padStart(4, '0')}${p.toString(16).padStart(4, '0')}${k.toString(16).padStart(4, '0')}`.padEnd(64, 'c'));
    const runId = s.beginStudy('sample', { model: 'bench', guidance: 'dtp:7.5', run: r, prompts: `caption:0-${prompts - 1}`, seeds: `0-${seeds - 1}` }, keys);
    runIds.push(runId);
    let i = 0;
    for (let p = 0; p < prompts; p++) {
      for (let k = 0; k < seeds; k++) {
        const noise = { dims: [1, 32, 32], data: gen.randn([1, 32, 32]) };
        const d = Array.from({ length: STEPS }, (_, j) => Math.exp(j / 10) * (1 + 0.1 * noise.data[j]!));
        const t = Array.from({ length: STEPS }, (_, j) => Math.round(999 - (j * 1000) / STEPS));
        await s.put({
          key: keys[i++]!,
          study: 'sample',
          spec: { cond: p, condition: { id: `caption:${p}`, label: `bench caption ${p}` }, seed: k, sampler: 'dpmpp2m', steps: STEPS, guidance: 'dtp:7.5' },
          result: { t, alphaBar: t.map((x) => 1 - x / 1000), s: d.map((_, j) => (j < 20 ? 0 : 7.5)), d, switchStep: 20 },
          blobs: [{ name: 'x0.npy', bytes: encodeNpy(noise) }],
          seconds: 0.1,
        });
      }
    }
  }
  s.close();
  return { seconds: (performance.now() - t0) / 1000, runIds };
}

/** Seconds from navigation to `body[data-ready]` of `url`. */
async function firstRender(page: import('playwright-core').Page, url: string): Promise<number> {
  const t0 = performance.now();
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 600_000 });
  return (performance.now() - t0) / 1000;
}

/** Run the benchmark. */
export async function benchBrowser(): Promise<Record<string, unknown>> {
  if (!HAVE_BROWSER) return { skipped: NO_BROWSER };
  const dir = mkdtempSync(join(tmpdir(), 'memscope-bench-browser-'));
  try {
    const large = await fillStore(join(dir, 'large'), 10, 100, 10);
    const small = await fillStore(join(dir, 'small'), 1, 10, 10);
    const dl = await startDashboard(join(dir, 'large'), 0);
    const ds = await startDashboard(join(dir, 'small'), 0);
    const browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
    const pages: Record<string, { large: number; small: number; ratio: number }> = {};
    // interleaved: each page on the large store, then on the small one
    const visits: [string, (ids: string[]) => string][] = [
      ['studies', () => ''],
      ['run (cold: first visit)', (ids) => `run/${ids[0]}`],
      ['run (warm)', (ids) => `run/${ids[0]}`],
      ['prompt (every run read)', () => 'prompt/caption%3A3'],
      ['prompts index', () => 'prompts'],
    ];
    for (const [name, path] of visits) {
      const l = await firstRender(page, dl.url + path(large.runIds));
      const s = await firstRender(page, ds.url + path(small.runIds));
      pages[name] = { large: l, small: s, ratio: l / s };
    }
    const explorer = await benchExplorer(page, ds.url);
    await browser.close();
    await dl.close();
    await ds.close();
    return {
      what: 'dashboard time to first render (navigation → every figure drawn) in Chromium, a store of 10,000 sampling units vs one of 100, interleaved',
      units: { large: 10 * 100 * 10, small: 100 },
      storeWriteSeconds: { large: large.seconds, small: small.seconds },
      seconds: pages,
      explorer,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) process.stdout.write(`${JSON.stringify(await benchBrowser(), null, 2)}\n`);
