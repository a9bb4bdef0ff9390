/**
 * The dashboard (issue 17 §3): a Hono app over a results store, read live while studies write it.
 * Pages: the study runs with their progress, a run (its tables and interactive figures), two runs
 * side by side, a prompt across the runs that hold it (samples per seed, x_t / x̂0 strips, d_t
 * curves with the DTP switch and the sweep transition marked). Every text from the store is
 * escaped; only the store's own blobs and the bundled assets are served (ids and names are matched
 * against fixed patterns, so no request path reaches the file system); no page loads anything
 * from another host.
 */
import { Hono } from 'hono';
import type { SqliteStore, StudyRunRow } from '../store/sqlite-store.ts';
import type { StoredUnit } from '../engine/study.ts';
import { PAPER, promptOf, runUnits, studySection } from '../study/store-report.ts';
import type { Section } from '../report/section.ts';
import type { FigureSpec } from '../report/vega.ts';
import { lineChart, type Marker, type Series } from '../report/line.ts';
import { paletteColor } from '../report/palette.ts';
import { escapeHtml, fmt } from '../report/html.ts';
import { gridPng } from '../report/png.ts';
import { decodeNpy } from '../io/npy.ts';
import { asset, ASSET_TAGS } from './assets.ts';
import { CopyLookup, type SampleCopy } from './copies.ts';
import { explorerRoutes } from './explorer.ts';

const RUN_ID = /^[0-9a-f]{16}$/;
const UNIT_KEY = /^[0-9a-f]{64}$/;
const BLOB_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** A whole dashboard page (`scripts`: more tags at the end of the body). */
function page(title: string, body: string, scripts = ''): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>${ASSET_TAGS}</head><body>
<nav><a href="/">studies</a><a href="/compare">compare</a><a href="/prompts">prompts</a><a href="/explorer">explorer</a></nav>
<h1>${escapeHtml(title)}</h1>
${body}
${scripts}</body></html>`;
}

/** A run's heading text. */
function runTitle(run: StudyRunRow): string {
  return `${run.name}${PAPER[run.name] ? ` (${PAPER[run.name]})` : ''} — ${run.runId}`;
}

/** A section with its figures as live Vega-Lite views (specs fetched from `figureUrl(i)`). */
function liveSection(s: Section, figureUrl: (i: number) => string): string {
  const figs = s.figures.map((f, i) => `<figure><div class="vega" data-spec="${escapeHtml(figureUrl(i))}" aria-label="${escapeHtml(f.caption)}"></div><figcaption>${escapeHtml(f.caption)}</figcaption></figure>`);
  return [s.head, figs.length ? `<div class="grid">${figs.join('')}</div>` : '', s.tail ?? ''].filter((x) => x).join('\n').replace(/<(\/?)h2\b/g, '<$1h3');
}

/** Options of {@link dashboardApp}. */
export interface DashboardOptions {
  /** The store path shown on the pages (default the store's folder). */
  readonly storeLabel?: string;
  /** The copy tests of the samples (default: the runs' models resolved from the working folder). */
  readonly copies?: CopyLookup;
  /** The model the explorer samples in the browser (a text-conditioned trained model folder; default none: the page says so). */
  readonly explorerModel?: string;
}

/** A dashboard app and what it holds open. */
export interface DashboardApp {
  readonly app: Hono;
  dispose(): Promise<void>;
}

/** The dashboard's routes over an open (read-only) store. */
export function dashboardApp(store: SqliteStore, opts: DashboardOptions = {}): DashboardApp {
  const app = new Hono();
  const copies = opts.copies ?? new CopyLookup();
  /** The copy test of a stored unit's sample, or why there is none. */
  async function copyOf(run: StudyRunRow, unit: StoredUnit<unknown, unknown>): Promise<SampleCopy | string> {
    if (unit.blobs['x0.npy'] === undefined) return 'no sample stored';
    const x0 = decodeNpy(Buffer.from(await store.readBlob(unit, 'x0.npy')));
    return copies.sample(unit.key, x0, promptOf(unit)?.id ?? null, run.spec);
  }
  // a section is recomputed only when its run gained units
  const sections = new Map<string, { stored: number; section: Section | null; units: StoredUnit<unknown, unknown>[] }>();
  const runOf = (id: string): StudyRunRow | undefined => (RUN_ID.test(id) ? store.studies().find((r) => r.runId === id) : undefined);
  async function sectionOf(run: StudyRunRow): Promise<{ section: Section | null; units: StoredUnit<unknown, unknown>[] }> {
    const hit = sections.get(run.runId);
    if (hit && hit.stored === run.stored) return hit;
    const units = await runUnits(store, run.runId);
    let section: Section | null = null;
    if (run.stored === run.units) {
      try {
        section = await studySection(run, units, store);
      } catch {
        section = null;
      }
    }
    const e = { stored: run.stored, section, units };
    sections.set(run.runId, e);
    return e;
  }

  // refuse traversal outright, however it is spelled, before any route sees the path
  app.use('*', async (c, next) => {
    // the request line as the client sent it (Request.url is already normalised: /a/../b → /b)
    const incoming = (c.env as { incoming?: { url?: string } } | undefined)?.incoming?.url;
    const raw = c.req.raw.url;
    const path = incoming ?? raw.slice(raw.indexOf('/', raw.indexOf('//') + 2));
    if (/(^|[/\\])\.\.([/\\]|$)|%2e%2e|%2f|%5c|\0/i.test(path)) return c.text('refused: the path leaves the dashboard', 400);
    await next();
    c.header('X-Content-Type-Options', 'nosniff');
    // nothing from another host; wasm (the explorer's onnxruntime-web) and its same-origin workers
    c.header('Content-Security-Policy', "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'; worker-src 'self' blob:; connect-src 'self'");
    // cross-origin isolation: SharedArrayBuffer, so onnxruntime-web may use 2 wasm threads
    c.header('Cross-Origin-Opener-Policy', 'same-origin');
    c.header('Cross-Origin-Embedder-Policy', 'require-corp');
    c.header('Cross-Origin-Resource-Policy', 'same-origin');
  });

  app.get('/favicon.ico', (c) => c.body(null, 204));

  app.get('/assets/:name', async (c) => {
    const a = await asset(c.req.param('name'));
    if (!a) return c.text('no such asset', 404);
    return c.body(typeof a[1] === 'string' ? a[1] : a[1].slice(), 200, { 'Content-Type': a[0] });
  });

  const explorer = opts.explorerModel === undefined ? null : explorerRoutes(app, opts.explorerModel, page);
  if (explorer === null) app.get('/explorer', (c) => c.html(page('explorer', '<p class="note">No explorer model: start the dashboard with <code>--explore-model DIR</code> (a text-conditioned model from <code>memscope train</code>; the default is the shipped <code>models/graded</code>).</p>'), 404));

  app.get('/api/studies', (c) => c.json(store.studies().map((r) => ({ runId: r.runId, name: r.name, units: r.units, stored: r.stored, createdAt: r.createdAt }))));

  app.get('/', (c) => {
    const runs = store.studies();
    const rows = runs.map(
      (r) =>
        `<tr data-run="${r.runId}"><td><a href="/run/${r.runId}">${escapeHtml(r.runId)}</a></td><td>${escapeHtml(r.name)}${PAPER[r.name] ? ` <span class="note">${escapeHtml(PAPER[r.name]!)}</span>` : ''}</td><td class="status">${r.stored >= r.units ? 'done' : 'running'}</td><td><progress max="1" value="${r.units ? r.stored / r.units : 0}"></progress> <span class="stored">${r.stored}/${r.units}</span></td><td>${escapeHtml(r.createdAt)}</td></tr>`,
    );
    const body = `<p>Store <code>${escapeHtml(opts.storeLabel ?? store.dir)}</code>: ${runs.length} study run(s); the progress of running studies updates live.</p>
<table><thead><tr><th>study run</th><th>study</th><th>status</th><th>units stored</th><th>started</th></tr></thead><tbody data-live>${rows.join('\n')}</tbody></table>`;
    return c.html(page('memscope dashboard', body));
  });

  app.get('/run/:id', async (c) => {
    const run = runOf(c.req.param('id'));
    if (!run) return c.text('no such study run', 404);
    const { section, units } = await sectionOf(run);
    const prompts = new Map<string, string>();
    for (const u of units) {
      const p = promptOf(u);
      if (p) prompts.set(p.id, p.label);
    }
    const body = [
      `<p>${run.stored} of ${run.units} units stored${run.stored < run.units ? ' — <strong>running</strong>: tables and figures appear when every unit is stored' : ''}; started ${escapeHtml(run.createdAt)}. <a href="/compare?a=${run.runId}">compare with…</a></p>`,
      `<details><summary>settings</summary><pre>${escapeHtml(JSON.stringify(run.spec, null, 1))}</pre></details>`,
      section ? liveSection(section, (i) => `/run/${run.runId}/figure/${i}`) : run.stored === run.units ? `<p class="note">The tables of a <code>${escapeHtml(run.name)}</code> study need its model: <code>memscope ${escapeHtml(run.name)} --config OUT/run.json</code> re-renders them from the store.</p>` : '',
      prompts.size ? `<h2>Prompts</h2><ul class="prompts">${[...prompts].map(([id, label]) => `<li><a href="/prompt/${encodeURIComponent(id)}">${escapeHtml(id)}</a> ${escapeHtml(label)}</li>`).join('')}</ul>` : '',
    ].join('\n');
    return c.html(page(runTitle(run), body));
  });

  app.get('/run/:id/figure/:n', async (c) => {
    const run = runOf(c.req.param('id'));
    const n = Number(c.req.param('n'));
    if (!run || !Number.isInteger(n)) return c.text('no such figure', 404);
    const f = (await sectionOf(run)).section?.figures[n];
    return f ? c.json(f.spec) : c.text('no such figure', 404);
  });

  app.get('/compare', async (c) => {
    const runs = store.studies();
    const pick = (name: string, sel: string | undefined): string =>
      `<select name="${name}">${runs.map((r) => `<option value="${r.runId}"${r.runId === sel ? ' selected' : ''}>${escapeHtml(runTitle(r))}</option>`).join('')}</select>`;
    const a = runOf(c.req.query('a') ?? '');
    const b = runOf(c.req.query('b') ?? '');
    const cols: string[] = [];
    for (const run of [a, b]) {
      if (!run) continue;
      const { section } = await sectionOf(run);
      cols.push(`<div><h2><a href="/run/${run.runId}">${escapeHtml(runTitle(run))}</a></h2><details><summary>settings</summary><pre>${escapeHtml(JSON.stringify(run.spec, null, 1))}</pre></details>${section ? liveSection(section, (i) => `/run/${run.runId}/figure/${i}`) : '<p class="note">no tables from the store for this study</p>'}</div>`);
    }
    const body = `<form method="get" action="/compare">${pick('a', a?.runId)} ${pick('b', b?.runId)} <button type="submit">compare</button></form>${cols.length ? `<div class="compare">${cols.join('')}</div>` : '<p>Pick two study runs (same prompts, different methods or models).</p>'}`;
    return c.html(page('compare two runs', body));
  });

  app.get('/prompts', async (c) => {
    const index = new Map<string, { label: string; runs: Set<string> }>();
    for (const run of store.studies()) {
      for (const u of (await sectionOf(run)).units) {
        const p = promptOf(u);
        if (!p) continue;
        const e = index.get(p.id) ?? { label: p.label, runs: new Set<string>() };
        e.runs.add(run.runId);
        index.set(p.id, e);
      }
    }
    const rows = [...index].sort(([x], [y]) => x.localeCompare(y, 'en', { numeric: true })).map(([id, e]) => `<tr><td><a href="/prompt/${encodeURIComponent(id)}">${escapeHtml(id)}</a></td><td>${escapeHtml(e.label)}</td><td>${[...e.runs].map((r) => `<a href="/run/${r}">${r.slice(0, 8)}</a>`).join(' ')}</td></tr>`);
    return c.html(page('prompts', `<table><thead><tr><th>prompt</th><th>text</th><th>runs</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>`));
  });

  /** Every stored unit about prompt `id`, with its run. */
  async function promptUnits(id: string): Promise<{ run: StudyRunRow; unit: StoredUnit<unknown, unknown> }[]> {
    const out: { run: StudyRunRow; unit: StoredUnit<unknown, unknown> }[] = [];
    for (const run of store.studies()) for (const unit of (await sectionOf(run)).units) if (promptOf(unit)?.id === id) out.push({ run, unit });
    return out;
  }

  app.get('/prompt/:id', async (c) => {
    const id = c.req.param('id');
    const hits = await promptUnits(id);
    if (!hits.length) return c.text('no unit of this prompt in the store', 404);
    const label = promptOf(hits[0]!.unit)!.label;
    const parts: string[] = [`<p>${escapeHtml(label)}</p>`];
    const runs = [...new Set(hits.map((h) => h.run))];
    parts.push(`<p>In ${runs.length} run(s): ${runs.map((r) => `<a href="/run/${r.runId}">${escapeHtml(runTitle(r))}</a>`).join(', ')}.</p>`);
    if (dtFigure(id, hits)) parts.push(`<div class="vega" data-spec="/prompt/${encodeURIComponent(id)}/figure"></div>`);
    const imgs = hits.filter((h) => h.unit.blobs['x0.npy'] !== undefined);
    if (imgs.length) {
      parts.push('<h2>Samples per seed</h2><div class="grid">');
      for (const h of imgs) {
        const s = h.unit.spec as { seed?: number; guidance?: string };
        const strips = ['xt', 'xHat0'].filter((b) => h.unit.blobs[`${b}.npy`] !== undefined);
        const cp = await copyOf(h.run, h.unit);
        const copyHtml =
          typeof cp === 'string'
            ? `<div class="note">nearest training image: not shown — ${escapeHtml(cp)}</div>`
            : `<div class="copy"><img class="px" src="/run/${h.run.runId}/copy/${h.unit.key}.png" alt="the sample (image space) and its nearest training image"><figcaption>sample | nearest of ${cp.poolSize} training images: #${cp.nn1}${cp.target === null ? '' : cp.nearestIsTarget ? ' (the prompt\'s own)' : ` (not the prompt's own #${cp.target})`}<br>d1/d2 = ${fmt(cp.ratio)}, similarity ${fmt(cp.similarity)} → <strong class="${cp.ratioCopy && cp.nearestIsTarget !== false ? 'is-copy' : 'no-copy'}">${cp.ratioCopy ? (cp.nearestIsTarget === false ? 'a copy of another training image' : 'a copy') : 'not a copy'}</strong> (strict test d1/d2 &lt; 1/3${cp.target === null ? '' : ' and nearest = own'})</figcaption></div>`;
        const head = `<figcaption><strong>${escapeHtml(`${h.run.name} ${h.run.runId.slice(0, 8)}, seed ${s.seed ?? '?'}${s.guidance ? `, ${s.guidance}` : ''}`)}</strong></figcaption>`;
        // the sample beside its nearest training image where the model opens; else the stored sample alone
        parts.push(`<figure>${head}${typeof cp === 'string' ? `<img class="px" width="128" src="/unit/${h.unit.key}/x0.png" alt="sample">` : ''}${copyHtml}${strips.map((b) => `<div><img class="px" src="/unit/${h.unit.key}/${b}.png" alt="${b} along the steps"><figcaption>${b === 'xt' ? 'x_t' : 'x̂0'} along the steps</figcaption></div>`).join('')}</figure>`);
      }
      parts.push('</div>');
    }
    parts.push('<p class="note">Nearest training image: pixel L2 over the model\'s image pool in image space (a padded model\'s samples cropped to 28×28), as <code>memscope validate</code>; the model is the run\'s <code>--model</code> as found from the dashboard\'s working folder now. One sample\'s test is no rate: <code>validate</code> and <code>evaluate</code> give rates with their intervals.</p>');
    return c.html(page(`prompt ${id}`, parts.join('\n')));
  });

  app.get('/prompt/:id/figure', async (c) => {
    const spec = dtFigure(c.req.param('id'), await promptUnits(c.req.param('id')));
    return spec ? c.json(spec) : c.text('no d_t curve for this prompt', 404);
  });

  app.get('/run/:id/copy/:key{[0-9a-f]{64}\\.png}', async (c) => {
    const run = runOf(c.req.param('id'));
    const key = c.req.param('key').replace(/\.png$/, '');
    const unit = run && UNIT_KEY.test(key) ? await store.get<unknown, unknown>(key) : undefined;
    if (!run || !unit) return c.text('no such image', 404);
    const cp = await copyOf(run, unit);
    if (typeof cp === 'string') return c.text(cp, 404);
    const per = cp.sample.data.length;
    const both = new Float32Array(2 * per);
    both.set(cp.sample.data, 0);
    both.set(cp.nearest.data, per);
    const png = await gridPng({ dims: [2, ...cp.sample.dims.slice(1)], data: both }, { cols: 2, zoom: 4 });
    return c.body(new Uint8Array(png), 200, { 'Content-Type': 'image/png' });
  });

  app.get('/unit/:key/:name{[A-Za-z0-9_-]+\\.png}', async (c) => {
    const key = c.req.param('key');
    const name = c.req.param('name').replace(/\.png$/, '');
    if (!UNIT_KEY.test(key) || !BLOB_NAME.test(name)) return c.text('no such image', 404);
    const unit = await store.get<unknown, unknown>(key);
    if (!unit || unit.blobs[`${name}.npy`] === undefined) return c.text('no such image', 404);
    const t = decodeNpy(Buffer.from(await store.readBlob(unit, `${name}.npy`)));
    // [C, H, W] → one image; [S, C, H, W] (a trajectory, one seed) → a strip of up to 11 steps
    let img = t;
    if (t.dims.length === 3) img = { dims: [1, ...t.dims], data: t.data };
    else if (t.dims.length === 5) img = { dims: t.dims.slice(0, 1).concat(t.dims.slice(2)), data: t.data.subarray(0, t.dims[0]! * t.dims[2]! * t.dims[3]! * t.dims[4]!) };
    if (img.dims.length !== 4 || (img.dims[1] !== 1 && img.dims[1] !== 3)) return c.text('not an image', 415);
    const S = img.dims[0]!;
    if (S > 11) {
      const per = img.dims[1]! * img.dims[2]! * img.dims[3]!;
      const pick = Array.from({ length: 11 }, (_, i) => Math.round((i * (S - 1)) / 10));
      const data = new Float32Array(pick.length * per);
      pick.forEach((k, i) => data.set(img.data.subarray(k * per, (k + 1) * per), i * per));
      img = { dims: [pick.length, img.dims[1]!, img.dims[2]!, img.dims[3]!], data };
    }
    const png = await gridPng(img, { cols: img.dims[0]! });
    return c.body(new Uint8Array(png), 200, { 'Content-Type': 'image/png' });
  });

  return {
    app,
    async dispose() {
      await explorer?.dispose();
    },
  };
}

/** d_t of a prompt along the steps in every run that recorded it (per seed), DTP switches and sweep transitions marked. */
function dtFigure(id: string, hits: readonly { run: StudyRunRow; unit: StoredUnit<unknown, unknown> }[]): FigureSpec | null {
  const series: Series[] = [];
  const markers: Marker[] = [];
  hits.forEach(({ run, unit }) => {
    const r = unit.result as { d?: unknown; dZero?: unknown; switchStep?: number | null; dtpSwitch?: number | null; sweepTransition?: number | null };
    const s = unit.spec as { seed?: number; guidance?: string };
    const d = Array.isArray(r.d) && r.d.every((v) => typeof v === 'number') ? (r.d as number[]) : Array.isArray(r.dZero) ? (r.dZero as number[]) : null;
    if (!d) return;
    const color = paletteColor(series.length);
    series.push({ label: `${run.name} ${run.runId.slice(0, 6)} seed ${s.seed ?? '?'}${Array.isArray(r.dZero) ? ' (zero CFG)' : ''}`, x: d.map((_, i) => i), y: d, color });
    const sw = r.switchStep ?? r.dtpSwitch ?? null;
    if (typeof sw === 'number') markers.push({ x: sw, label: `DTP ${sw}`, color });
    if (typeof r.sweepTransition === 'number') markers.push({ x: r.sweepTransition, label: `sweep ${r.sweepTransition}`, color });
  });
  return series.length ? lineChart({ title: `d_t of ${id} along the steps`, xLabel: 'inference step', yLabel: 'd_t', logY: true, series, markers, width: 760, height: 380 }) : null;
}
