/**
 * The explorer in a real browser: the shipped lab model (models/graded) samples in Chromium on
 * onnxruntime-web (wasm) with the CLI's own sampler and guidance code, and its sample equals
 * `memscope sample`'s for the same prompt, seed and guidance within 1e-4 per element (wasm and
 * native kernels differ in the last bits), with the same switch step. Moving the CFG-start slider
 * samples again and changes the picture; the nearest training image comes with it; the unguided
 * prefix two slider positions share is not run again.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { runCli } from '../helpers/cli.ts';
import { HAVE_BROWSER, NO_BROWSER, launchBrowser, watchPage, type PageProblems } from '../helpers/browser.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { startDashboard, type Dashboard } from '../../src/cli/serve.ts';
import { decodeNpy } from '../../src/io/npy.ts';

interface BrowserResult {
  guidance: string;
  sample: number[];
  switchStep: number | null;
  seconds: number;
  threads: number;
  modelCalls: number;
  reusedCalls: number;
}

let dir = '';
let dash: Dashboard | null = null;
let browser: Browser | null = null;
let page: Page | null = null;
let problems: PageProblems | null = null;
let shots = '';

/** `memscope sample` of models/graded with DPM-Solver++ 2M, 50 steps: the sample and the switch step. */
async function cliSample(prompt: string, seed: number, guidance: string): Promise<{ x: Float32Array; switchStep: number | null }> {
  const out = join(dir, `cli-${prompt.replace(':', '')}-${seed}-${guidance.replace(/[^a-z0-9]/gi, '')}`);
  const r = await runCli(['sample', '--model', 'models/graded', '--prompts', prompt, '--seeds', String(seed), '--sampler', 'dpmpp2m', '--steps', '50', '--guidance', guidance, '--store', join(dir, 'cli-store'), '--out', out]);
  expect(r.code, r.err).toBe(0);
  const x = decodeNpy(await readFile(join(out, 'samples.npy'))).data;
  const g = JSON.parse(await readFile(join(out, 'guidance.json'), 'utf8')) as { switchSteps: (number | null)[] };
  return { x, switchStep: g.switchSteps[0] ?? null };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memscope-explorer-'));
  shots = process.env['MEMSCOPE_SCREENSHOTS'] ?? dir;
  (await SqliteStore.open(join(dir, 'store'))).close();
  dash = await startDashboard(join(dir, 'store'), 0, 'models/graded');
  if (!HAVE_BROWSER) return;
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  problems = watchPage(page);
  await page.goto(`${dash.url}explorer`);
  await page.waitForSelector('body[data-runs="1"]', { timeout: 300_000 });
}, 400_000);

afterAll(async () => {
  await browser?.close();
  await dash?.close();
});

describe.skipIf(!HAVE_BROWSER)('the explorer in Chromium', () => {
  it("samples in the browser what memscope sample samples (CFG, DTP, opposite guidance + DTP): within 1e-4, same switch step", async () => {
    const first = (await page!.evaluate(() => (window as unknown as { memscopeLast: unknown }).memscopeLast)) as BrowserResult;
    expect(first.guidance).toBe('constant:7.5');
    expect(await page!.locator('#status').textContent()).toMatch(/in this browser \(wasm, \d threads?\)/);
    const runs: [string, number, string, 'cfg' | 'dtp' | 'og+dtp'][] = [
      ['caption:30', 0, 'constant:7.5', 'cfg'], // a 100× caption (the page's first sample)
      ['caption:30', 1, 'dtp:7.5', 'dtp'],
      ['caption:50', 2, 'og+dtp:7.5', 'og+dtp'], // a caption seen once
    ];
    for (const [prompt, seed, guidance, method] of runs) {
      const b = (prompt === 'caption:30' && seed === 0 ? first : await page!.evaluate((s) => (window as unknown as { memscopeExplorer: { run(s: unknown): Promise<unknown> } }).memscopeExplorer.run(s), { prompt, seed, method })) as BrowserResult;
      expect(b.guidance).toBe(guidance);
      const c = await cliSample(prompt, seed, guidance);
      const diff = maxDiff(b.sample, c.x);
      expect(diff, `${prompt} seed ${seed} ${guidance}: max |browser − CLI| = ${diff}`).toBeLessThanOrEqual(1e-4);
      expect(b.switchStep, `${prompt} seed ${seed} ${guidance}: DTP switch step, browser vs CLI`).toBe(c.switchStep);
    }
    expect(problems!.errors).toEqual([]);
  });

  it('samples again when the CFG-start slider moves, and shows the new sample with its nearest training image', async () => {
    const before = (await page!.evaluate(() => (window as unknown as { memscopeLast: BrowserResult }).memscopeLast)).sample;
    const canvasBefore = await page!.locator('#sample').evaluate((c) => (c as HTMLCanvasElement).toDataURL());
    const runs = Number(await page!.evaluate(() => document.body.dataset.runs));
    await page!.locator('input[name="start"]').fill('30');
    await page!.waitForSelector(`body[data-runs="${runs + 1}"]`, { timeout: 120_000 });
    const after = await page!.evaluate(() => (window as unknown as { memscopeLast: BrowserResult }).memscopeLast);
    expect(after.guidance).toMatch(/^stp:7\.5@\d+$/);
    expect(after.switchStep).toBe(30);
    let changed = 0;
    for (let i = 0; i < before.length; i++) if (Math.abs(before[i]! - after.sample[i]!) > 1e-3) changed++;
    expect(changed).toBeGreaterThan(before.length / 10);
    expect(await page!.locator('#sample').evaluate((c) => (c as HTMLCanvasElement).toDataURL())).not.toBe(canvasBefore);
    expect(await page!.locator('#nearest').textContent()).toMatch(/nearest of 3240 training images: #\d+/);
    expect(await page!.locator('#dt svg.marks').count()).toBe(1);
    // the CLI's sample of the same schedule agrees here too
    const c = await cliSample('caption:30', 0, after.guidance);
    expect(maxDiff(after.sample, c.x)).toBeLessThanOrEqual(1e-4);
    // the previous sampling of this prompt and seed was guided from step 0: only step 0's x_T is shared
    expect([after.modelCalls, after.reusedCalls]).toEqual([50, 1]);
    // back to step 20: steps 0–20 see the x_t of the unguided prefix sampled just now and are not run again
    await page!.locator('input[name="start"]').fill('20');
    await page!.waitForSelector(`body[data-runs="${runs + 2}"]`, { timeout: 120_000 });
    const back = await page!.evaluate(() => (window as unknown as { memscopeLast: BrowserResult }).memscopeLast);
    expect(back.switchStep).toBe(20);
    expect([back.modelCalls, back.reusedCalls]).toEqual([50, 21]);
    expect(await page!.locator('#status').textContent()).toMatch(/21 of 50 U-Net calls reused from earlier samplings/);
    const c20 = await cliSample('caption:30', 0, back.guidance);
    expect(maxDiff(back.sample, c20.x)).toBeLessThanOrEqual(1e-4);
    await page!.screenshot({ path: join(shots, 'explorer.png'), fullPage: true });
    expect(problems!.errors).toEqual([]);
  });
});

if (!HAVE_BROWSER) it.skip(NO_BROWSER, () => {});
