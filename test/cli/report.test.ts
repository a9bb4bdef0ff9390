/**
 * `memscope report --store`: one page across the study runs of a store. Its numbers are checked
 * against the files the commands themselves wrote for the same runs (detect.json, curves.json,
 * transition.json), which reduce through the model source, not through the store view.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { fmt } from '../../src/report/html.ts';

let dir = '';
let store = '';
const ids: Record<string, string> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memscope-report-'));
  store = join(dir, 'store');
  const common = ['--model', 'testbed', '--steps', '6', '--store', store];
  for (const [name, args] of [
    ['curves', ['curves', '--prompts', 'caption:0-1,class:0-1', '--seeds', '0-1']],
    ['detect', ['detect', '--prompts', 'caption:0-2,class:0-2', '--seeds', '0-1']],
    ['transition', ['transition', '--prompts', 'caption:0', '--seeds', '0-1']],
    ['sample', ['sample', '--prompts', 'caption:0,class:1', '--seeds', '0-1']],
    ['kim', ['analyze', 'kim', '--prompts', 'caption:0-1,class:0-1', '--seeds', '0-3']],
  ] as const) {
    const r = await runCli([...args, ...common, '--out', join(dir, name)]);
    expect(r.code, `${name}: ${r.err}`).toBe(0);
    ids[name] = JSON.parse(await readFile(join(dir, name, 'run.json'), 'utf8')).studyRun;
  }
  const ev = await runCli(['evaluate', '--model', 'testbed', '--prompts', 'caption:0-1', '--methods', 'cfg,dtp', '--seeds', '0-1', '--steps', '4', '--descriptor', 'pixel', '--store', store, '--out', join(dir, 'evaluate')]);
  expect(ev.code, ev.err).toBe(0);
  ids['evaluate'] = JSON.parse(await readFile(join(dir, 'evaluate', 'run.json'), 'utf8')).studyRun;
  const sw = await runCli(['sweep', '--model', 'testbed', '--prompts', 'caption:0', '--steps', '6', '--og', '--descriptor', 'pixel', '--store', store, '--out', join(dir, 'sweep')]);
  expect(sw.code, sw.err).toBe(0);
  ids['sweep'] = JSON.parse(await readFile(join(dir, 'sweep', 'run.json'), 'utf8')).studyRun;
  const g = await runCli(['geometry', '--train', '100', '--test', '50', '--store', store, '--out', join(dir, 'geometry')]);
  expect(g.code, g.err).toBe(0);
  ids['geometry'] = JSON.parse(await readFile(join(dir, 'geometry', 'run.json'), 'utf8')).studyRun;
}, 240_000);

/** The text of an HTML fragment with tags removed and entities decoded. */
const text = (html: string): string => html.replace(/<[^>]*>/g, ' ').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&').replace(/\s+/g, ' ');

/** The part of the page between a run's heading and the next one. */
function sectionOf(html: string, runId: string): string {
  const a = html.indexOf(`<h2 id="run-${runId}">`);
  expect(a, runId).toBeGreaterThanOrEqual(0);
  const b = html.indexOf('<h2 ', a + 1);
  return html.slice(a, b < 0 ? undefined : b);
}

describe('memscope report --store', () => {
  it('covers every study run with its counts, settings, tables and inline figures, and indexes the prompts', async () => {
    const out = join(dir, 'report');
    const r = await runCli(['report', '--store', store, '--out', out]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const html = await readFile(join(out, 'report.html'), 'utf8');
    expect(html).not.toMatch(/<script|<link|src="http|href="http/); // self-contained, nothing fetched
    const s = await SqliteStore.open(store, { mustExist: true, readonly: true });
    const runs = s.studies();
    s.close();
    expect(runs).toHaveLength(8);
    for (const run of runs) expect(text(sectionOf(html, run.runId))).toContain(`${run.stored} of ${run.units} units stored`);

    // detect: the AUC texts equal the command's own detect.json (reduced through the model source)
    const det = JSON.parse(await readFile(join(dir, 'detect', 'detect.json'), 'utf8')) as { detectors: { name: string; aucText: string }[] };
    const detSec = text(sectionOf(html, ids['detect']!));
    for (const d of det.detectors) expect(detSec).toContain(`${d.name} ${d.aucText}`);
    expect((sectionOf(html, ids['detect']!).match(/<svg /g) ?? []).length).toBe(1);

    // curves: the static transition steps equal curves.json
    const cur = JSON.parse(await readFile(join(dir, 'curves', 'curves.json'), 'utf8')) as { modes: { mode: string; memorized: { rows: number; staticTransition: number | null; diff: { mean: number[] } } | null }[] };
    const curSec = text(sectionOf(html, ids['curves']!));
    for (const m of cur.modes) if (m.memorized) expect(curSec).toContain(`memorized ${m.memorized.rows} ${m.memorized.staticTransition === null ? 'never' : m.memorized.staticTransition}`);
    expect(curSec).toContain(fmt(cur.modes[0]!.memorized!.diff.mean[0]!));
    expect((sectionOf(html, ids['curves']!).match(/<svg /g) ?? []).length).toBe(2);

    // transition: the agreement line equals transition.json
    const tr = JSON.parse(await readFile(join(dir, 'transition', 'transition.json'), 'utf8')) as { agreement: { n: number } };
    expect(text(sectionOf(html, ids['transition']!))).toContain(`Both steps found in ${tr.agreement.n} units`);

    // kim: the claims table equals the command's claims.md, row for row, but for the claim that
    // needs the model's dimension (not in the store), which reads "not measured"
    const kimSec = text(sectionOf(html, ids['kim']!));
    const md = (await readFile(join(dir, 'kim', 'claims.md'), 'utf8')).split('\n').filter((l) => l.startsWith('| §'));
    expect(md.length).toBeGreaterThan(10);
    const missing = md.filter((l) => !kimSec.includes(l.split(' | ')[3]!.replace(/\\\|/g, '|')));
    expect(missing.length).toBeLessThanOrEqual(1);
    for (const l of missing) expect(l).toMatch(/ε_u|x_T/);
    expect((sectionOf(html, ids['kim']!).match(/<svg /g) ?? []).length).toBe(5);

    // geometry: the regime spans and the per-σ rows equal the command's geometry.json
    const geo = JSON.parse(await readFile(join(dir, 'geometry', 'geometry.json'), 'utf8')) as { sigma: number[]; regimes: { labels: string[] } };
    const geoSec = text(sectionOf(html, ids['geometry']!));
    for (const k of ['small', 'medium', 'large']) expect(geoSec).toContain(`${k} ${geo.regimes.labels.filter((l) => l === k).length === 0 ? 'none' : 'σ ∈'}`);
    expect(geoSec).toContain(`${fmt(geo.sigma[0]!)} ${geo.regimes.labels[0]}`);
    expect((sectionOf(html, ids['geometry']!).match(/<svg /g) ?? []).length).toBe(4);

    // evaluate: the table the command kept in the store, row for row as its evaluate.json
    const evj = JSON.parse(await readFile(join(dir, 'evaluate', 'evaluate.json'), 'utf8')) as { rows: { method: string; memorization: { text: string }; similarity: { p95: number } }[] };
    const evSec = text(sectionOf(html, ids['evaluate']!));
    expect(evj.rows.map((x) => x.method)).toEqual(['cfg', 'dtp']);
    for (const x of evj.rows) expect(evSec).toContain(`${x.method} ${fmt(x.similarity.p95)}`);
    for (const x of evj.rows) expect(evSec).toContain(x.memorization.text);
    expect(evSec).toContain('as memscope evaluate reduced it');

    // sweep: the transition table equals the command's sweep.json; its similarity figure is inlined
    const swj = JSON.parse(await readFile(join(dir, 'sweep', 'sweep.json'), 'utf8')) as { timesteps: number[]; variants: { label: string; transition: number | null }[] };
    const swSec = text(sectionOf(html, ids['sweep']!));
    expect(swj.variants).toHaveLength(2);
    for (const v of swj.variants) expect(swSec).toContain(`${v.label} ${v.transition ?? 'none'} ${v.transition === null ? '—' : (swj.timesteps[v.transition] ?? 'never guided')}`);
    expect((sectionOf(html, ids['sweep']!).match(/<svg /g) ?? []).length).toBe(1);

    // prompts → runs: caption:0 is in the seven runs that sample it; every link points at a heading of the page
    const index = html.slice(html.indexOf('<h2 id="prompts">'));
    const row = /<tr><td>caption:0<\/td>.*?<\/tr>/.exec(index)![0];
    expect((row.match(/href="#run-/g) ?? []).length).toBe(7);
    for (const m of index.matchAll(/href="#(run-[0-9a-f]+)"/g)) expect(html).toContain(`id="${m[1]}"`);
    // SVG ids of different inlined figures never collide
    const clipIds = [...html.matchAll(/<clipPath id="([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(clipIds).size).toBe(clipIds.length);
  });

  it('selects runs by id prefix and refuses an unknown id, naming --study', async () => {
    const out = join(dir, 'one');
    const r = await runCli(['report', '--store', store, '--study', ids['detect']!.slice(0, 6), '--out', out]);
    expect(r.code).toBe(0);
    const html = await readFile(join(out, 'report.html'), 'utf8');
    expect(html).toContain(`id="run-${ids['detect']}"`);
    expect(html).not.toContain(`id="run-${ids['curves']}"`);
    const bad = await runCli(['report', '--store', store, '--study', 'ffffffffff', '--out', join(dir, 'bad')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--study/);
    const noStore = await runCli(['report', '--store', join(dir, 'nowhere'), '--out', join(dir, 'bad2')]);
    expect(noStore.code).toBe(2);
    expect(noStore.err).toMatch(/--store/);
  });

  it('renders prompt text from the store inert', async () => {
    // a unit whose prompt carries markup, written the way every study writes (beginStudy + put)
    const xs = join(dir, 'xss-store');
    const s = await SqliteStore.open(xs);
    const label = '<img src=x onerror=alert(1)><script>alert(2)</script>';
    const spec = { cond: 0, condition: { id: 'caption:"><b>', label }, seed: 0 };
    s.beginStudy('sample', { model: label }, ['k0']);
    await s.put({ key: 'k0', study: 'sample', spec, result: { t: [1, 0], alphaBar: [0.5, 0.9], s: [7.5, 7.5], d: [1, 2], switchStep: null }, blobs: [], seconds: 0.1 });
    s.close();
    const out = join(dir, 'xss');
    const r = await runCli(['report', '--store', xs, '--out', out]);
    expect(r.code).toBe(0);
    const html = await readFile(join(out, 'report.html'), 'utf8');
    expect(html).not.toMatch(/<img|<script|<b>/);
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(text(html)).toContain('caption:"><b>');
  });
});
