/**
 * `memscope serve`: the dashboard in a real browser (Debian's Chromium via playwright-core) over a
 * store written by real study runs. Each page loads without a console error or failed request and
 * draws its Vega figures; a click-through goes studies → run → prompt and finds the sample and its
 * strips; a running study's progress updates while the page is open; a prompt carrying markup is
 * rendered inert; paths that leave the dashboard are refused before routing.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { runCli } from '../helpers/cli.ts';
import { HAVE_BROWSER, NO_BROWSER, launchBrowser, watchPage } from '../helpers/browser.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { startDashboard, type Dashboard } from '../../src/cli/serve.ts';
import { decodeNpy, encodeNpy } from '../../src/io/npy.ts';
import { loadStudySource } from '../../src/study/source.ts';

let dir = '';
let store = '';
let shots = '';
const ids: Record<string, string> = {};
let dash: Dashboard | null = null;
let browser: Browser | null = null;
const K0 = 'a'.repeat(64);
const K1 = 'b'.repeat(64);
const XSS = '<img src=x onerror=alert(1)><script>alert(2)</script>';

/** GET `path` exactly as written (no client-side normalisation of `..` or escapes). */
function rawGet(url: string, path: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memscope-serve-'));
  store = join(dir, 'store');
  shots = process.env['MEMSCOPE_SCREENSHOTS'] ?? join(dir, 'screenshots');
  await mkdir(shots, { recursive: true });
  const common = ['--model', 'testbed', '--steps', '6', '--store', store];
  for (const [name, args] of [
    ['sample', ['sample', '--prompts', 'caption:0,class:1', '--seeds', '0-1', '--guidance', 'dtp:7.5', '--record', 'xt,xHat0']],
    ['detect', ['detect', '--prompts', 'caption:0-2,class:0-2', '--seeds', '0-1']],
    ['curves', ['curves', '--prompts', 'caption:0-1,class:0-1', '--seeds', '0-1']],
  ] as const) {
    const r = await runCli([...args, ...common, '--out', join(dir, name)]);
    expect(r.code, `${name}: ${r.err}`).toBe(0);
    ids[name] = JSON.parse(await readFile(join(dir, name, 'run.json'), 'utf8')).studyRun;
  }
  // a study still running (1 of 2 units stored), whose prompt carries markup
  const s = await SqliteStore.open(store);
  ids['live'] = s.beginStudy('sample', { model: 'live' }, [K0, K1]);
  await s.put({ key: K0, study: 'sample', spec: { cond: 0, condition: { id: 'caption:xss', label: XSS }, seed: 0 }, result: { d: [3, 2, 1], switchStep: 1 }, blobs: [{ name: 'x0.npy', bytes: encodeNpy({ dims: [1, 28, 28], data: new Float32Array(784).fill(0.25) }) }], seconds: 0.1 });
  s.close();
  dash = await startDashboard(store, 0);
  if (HAVE_BROWSER) browser = await launchBrowser();
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await dash?.close();
});

describe('memscope serve (HTTP)', () => {
  it('listens on 127.0.0.1 and refuses paths that leave the dashboard, however spelled', async () => {
    expect(dash!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    for (const p of ['/../package.json', '/assets/../../package.json', '/assets/..%2f..%2fpackage.json', '/assets/%2e%2e/%2e%2e/package.json', '/unit/..%5c..%5cstore.sqlite/x0.png', '/run/%2E%2E']) {
      const r = await rawGet(dash!.url, p);
      expect(r.status, p).toBe(400);
      expect(r.body).not.toContain('"name": "memscope"');
    }
    expect((await rawGet(dash!.url, '/assets/nope.js')).status).toBe(404);
    expect((await rawGet(dash!.url, `/unit/${'0'.repeat(64)}/x0.png`)).status).toBe(404);
  });

  it('serves a stored sample as a PNG of its own pixels', async () => {
    const s = await SqliteStore.open(store, { mustExist: true, readonly: true });
    const unit = (await Promise.all(s.studyRows(ids['sample']!).map((r) => s.get<{ seed: number }, unknown>(r.key)))).find((u) => u !== undefined)!;
    const x0 = decodeNpy(Buffer.from(await s.readBlob(unit, 'x0.npy')));
    s.close();
    const res = await fetch(`${dash!.url}unit/${unit.key}/x0.png`);
    expect(res.headers.get('content-type')).toBe('image/png');
    const sharp = (await import('sharp')).default;
    const { data, info } = await sharp(Buffer.from(await res.arrayBuffer())).raw().toBuffer({ resolveWithObject: true });
    // one image, 2× zoom inside a 2-pixel white frame, [-1, 1] → 0…255
    const [C, H, W] = x0.dims as [number, number, number];
    expect(C).toBe(1);
    expect([info.width, info.height]).toEqual([2 * W + 4, 2 * H + 4]);
    let worst = 0;
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const want = Math.round(((Math.max(-1, Math.min(1, x0.data[y * W + x]!)) + 1) / 2) * 255);
        for (const [dy, dx] of [[0, 0], [1, 1]] as const) worst = Math.max(worst, Math.abs(data[((2 + 2 * y + dy) * info.width + 2 + 2 * x + dx) * info.channels]! - want));
      }
    expect(worst).toBeLessThanOrEqual(1);
  });
});

describe('memscope serve: the nearest training image beside each sample', () => {
  it('names the nearest image, d1/d2 and similarity of a brute-force float64 search, and shows that image', async () => {
    const src = await loadStudySource('testbed');
    const train = src.trainImages;
    const pool = src.data.imagePool ?? Array.from({ length: train.dims[0]! }, (_, i) => i);
    const per = train.data.length / train.dims[0]!;
    const s = await SqliteStore.open(store, { mustExist: true, readonly: true });
    const units = (await Promise.all(s.studyRows(ids['sample']!).map((r) => s.get<{ seed: number; condition: { id: string } }, unknown>(r.key)))).filter((u) => u !== undefined);
    const html = await (await fetch(`${dash!.url}prompt/caption%3A0`)).text();
    let checked = 0;
    for (const u of units) {
      if (u.spec.condition.id !== 'caption:0') continue;
      const x = decodeNpy(Buffer.from(await s.readBlob(u, 'x0.npy'))).data;
      expect(x.length).toBe(per); // the testbed samples in image space
      const d2 = pool.map((p) => {
        let acc = 0;
        for (let j = 0; j < per; j++) acc += (x[j]! - train.data[p * per + j]!) ** 2;
        return [acc, p] as const;
      }).sort((a, b) => a[0] - b[0]);
      const ratio = Math.sqrt(d2[0]![0] / d2[1]![0]);
      const want = src.denoiser.conditions.find((c) => c.id === 'caption:0')!.targets![0]!;
      const fig = html.slice(html.indexOf(`/copy/${u.key}.png`));
      const cap = fig.slice(0, fig.indexOf('</figcaption>'));
      expect(cap).toContain(`nearest of ${pool.length} training images: #${d2[0]![1]}`);
      expect(cap).toContain(d2[0]![1] === want ? "(the prompt's own)" : `(not the prompt's own #${want})`);
      const shown = Number(/d1\/d2 = ([0-9.e+-]+)/.exec(cap)![1]);
      expect(Math.abs(shown - ratio)).toBeLessThan(Math.max(1e-3 * ratio, 1e-3));
      // the picture: the sample, then the nearest training image (zoom 4 in a 2-pixel frame)
      const sharp = (await import('sharp')).default;
      const png = Buffer.from(await (await fetch(`${dash!.url}run/${ids['sample']}/copy/${u.key}.png`)).arrayBuffer());
      const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
      const W = Math.sqrt(per);
      let worst = 0;
      for (let y = 0; y < W; y++)
        for (let xx = 0; xx < W; xx++) {
          const v = Math.round(((train.data[d2[0]![1] * per + y * W + xx]! + 1) / 2) * 255);
          worst = Math.max(worst, Math.abs(data[((2 + 4 * y) * info.width + 2 + (4 * W + 2) + 4 * xx) * info.channels]! - Math.min(255, Math.max(0, v))));
        }
      expect(worst).toBeLessThanOrEqual(1);
      checked++;
    }
    s.close();
    await src.denoiser.dispose?.();
    expect(checked).toBe(2);
    // a run whose model cannot be opened says so instead
    const live = await (await fetch(`${dash!.url}prompt/caption%3Axss`)).text();
    expect(live).toContain('nearest training image: not shown — its model live cannot be opened from here');
  });
});

describe.skipIf(!HAVE_BROWSER)('memscope serve in Chromium', () => {
  it('loads every page without errors, draws the figures, and clicks through studies → run → prompt', async () => {
    const page = await browser!.newPage({ viewport: { width: 1300, height: 900 } });
    const problems = watchPage(page);
    await page.goto(dash!.url);
    await page.waitForSelector('body[data-ready="true"]');
    expect(await page.locator('tbody[data-live] tr').count()).toBe(4);
    await page.screenshot({ path: join(shots, 'dashboard-studies.png'), fullPage: true });

    // open the detect run: its ROC figure is drawn by vega-embed as an SVG with marks
    await page.click(`a[href="/run/${ids['detect']}"]`);
    await page.waitForSelector('body[data-ready="true"]');
    const figs = page.locator('.vega[data-drawn="true"] svg.marks');
    expect(await figs.count()).toBeGreaterThanOrEqual(1);
    expect(await page.locator('.vega svg path').count()).toBeGreaterThan(3);
    await page.screenshot({ path: join(shots, 'dashboard-run.png'), fullPage: true });

    // open a prompt: d_t along the steps (per seed), the samples per seed and their strips
    await page.click('ul.prompts a[href="/prompt/caption%3A0"]');
    await page.waitForSelector('body[data-ready="true"]');
    expect(await page.locator('.vega[data-drawn="true"] svg.marks').count()).toBe(1);
    const imgs = page.locator('img.px');
    expect(await imgs.count()).toBeGreaterThanOrEqual(6); // 2 seeds of the sample run × (x0, x_t, x̂0)
    for (const w of await imgs.evaluateAll((els) => els.map((e) => (e as HTMLImageElement).naturalWidth))) expect(w).toBeGreaterThan(0);
    await page.screenshot({ path: join(shots, 'dashboard-prompt.png'), fullPage: true });

    // compare two runs side by side
    await page.goto(`${dash!.url}compare?a=${ids['curves']}&b=${ids['detect']}`);
    await page.waitForSelector('body[data-ready="true"]');
    expect(await page.locator('.compare > div').count()).toBe(2);
    expect(await page.locator('.vega[data-drawn="true"]').count()).toBeGreaterThanOrEqual(3);
    await page.screenshot({ path: join(shots, 'dashboard-compare.png'), fullPage: true });

    await page.goto(`${dash!.url}prompts`);
    expect(await page.locator('a[href="/prompt/class%3A1"]').count()).toBe(1);
    expect(problems.errors).toEqual([]);
    await page.close();
  });

  it('the static report of the same store opens offline without errors and draws its inlined figures', async () => {
    const r = await runCli(['report', '--store', store, '--out', join(dir, 'report')]);
    expect(r.code, r.err).toBe(0);
    const page = await browser!.newPage({ viewport: { width: 1300, height: 900 } });
    const problems = watchPage(page);
    const requests: string[] = [];
    page.on('request', (q) => requests.push(q.url()));
    await page.goto(pathToFileURL(join(dir, 'report', 'report.html')).href);
    expect(await page.locator('svg.marks').count()).toBeGreaterThanOrEqual(3);
    expect(requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:'))).toEqual([]);
    await page.screenshot({ path: join(shots, 'report.png'), fullPage: true });
    expect(problems.errors).toEqual([]);
    await page.close();
  });

  it('shows a running study progressing while the page is open', async () => {
    const page = await browser!.newPage();
    const problems = watchPage(page);
    await page.goto(dash!.url);
    const row = page.locator(`tr[data-run="${ids['live']}"]`);
    expect(await row.locator('.status').textContent()).toBe('running');
    expect(await row.locator('.stored').textContent()).toBe('1/2');
    const s = await SqliteStore.open(store);
    await s.put({ key: K1, study: 'sample', spec: { cond: 0, condition: { id: 'caption:xss', label: XSS }, seed: 1 }, result: { d: [3, 2.5, 1], switchStep: 2 }, blobs: [], seconds: 0.1 });
    s.close();
    await page.waitForFunction((id) => document.querySelector(`tr[data-run="${id}"] .stored`)?.textContent === '2/2', ids['live'], { timeout: 10_000 });
    expect(await row.locator('.status').textContent()).toBe('done');
    expect(problems.errors).toEqual([]);
    await page.close();
  });

  it('renders prompt text from the store inert', async () => {
    const page = await browser!.newPage();
    const problems = watchPage(page);
    for (const path of ['prompts', 'prompt/caption%3Axss', `run/${ids['live']}`]) {
      await page.goto(dash!.url + path);
      await page.waitForSelector('body[data-ready="true"]');
      expect(await page.locator('body').innerText()).toContain(XSS);
      expect(await page.locator('script:not([src])').count()).toBe(0);
      expect(await page.locator('img[src="x"]').count()).toBe(0);
    }
    // the prompt page marked each seed's DTP switch (steps 1 and 2 in the stored units)
    await page.goto(`${dash!.url}prompt/caption%3Axss`);
    await page.waitForSelector('body[data-ready="true"]');
    expect((await page.locator('.vega svg text').allTextContents()).filter((t) => /^DTP \d$/.test(t)).sort()).toEqual(['DTP 1', 'DTP 2']);
    await page.waitForTimeout(300);
    expect(problems.dialogs).toEqual([]);
    expect(problems.errors).toEqual([]);
    await page.close();
  });
});

if (!HAVE_BROWSER) it.skip(NO_BROWSER, () => {});
