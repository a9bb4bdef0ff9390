/**
 * The cross-study report (issue 17 §2): one self-contained HTML page over a results store — for
 * each study run its settings, its tables and figures (Kim et al.'s claims and curves, Jain et al.'s
 * guidance curves, transitions and detectors, Dodson & Gao's geometry, the d_t curves of sampling
 * runs), and an index from
 * every prompt to the runs that hold it. Everything is read from the store (no model is loaded);
 * a study whose tables need its model says so and names the command that re-renders them.
 */
import type { StoredUnit } from '../engine/study.ts';
import type { SqliteStore, StudyRunRow } from '../store/sqlite-store.ts';
import { curvesStudy, type CurvesSpec } from './curves.ts';
import { detectStudy } from './detect.ts';
import type { DetectSettings } from './detect.ts';
import { transitionStudy, transitionSection, type TransitionSpec } from './transition.ts';
import { kimStudy, type KimSettings, type KimStudy } from './kim.ts';
import { kimSection } from './kim-report.ts';
import { curvesSection } from './views/curves.ts';
import { geometryStudy, type GeometrySpec } from './geometry.ts';
import { geometrySection, swapHtml, type SwapTable } from './views/geometry.ts';
import { detectSection } from './views/detect.ts';
import { evaluateSection, type EvaluateTable } from './views/evaluate.ts';
import { sweepSection, type SweepTable } from './views/sweep.ts';
import { lineChart, type Series } from '../report/line.ts';
import { paletteColor } from '../report/palette.ts';
import { escapeHtml, fmt, page } from '../report/html.ts';
import { inlineSection, type Section } from '../report/section.ts';

/** One prompt seen in the store: its id, its text, and the anchors of the runs holding it. */
interface PromptEntry {
  readonly label: string;
  readonly runs: Set<string>;
}

/** The prompt id and text a stored unit is about, if any (every study names it in its own field). */
export function promptOf(u: StoredUnit<unknown, unknown>): { id: string; label: string } | null {
  const s = u.spec as Record<string, unknown>;
  const r = u.result as Record<string, unknown> | null;
  const cond = s['condition'] as { id?: string; label?: string } | undefined;
  const prompt = r?.['prompt'];
  const id = (s['condId'] as string | undefined) ?? cond?.id ?? (typeof prompt === 'object' && prompt !== null ? (prompt as { id?: string }).id : undefined);
  if (typeof id !== 'string') return null;
  const label =
    (s['label'] as string | undefined) ??
    cond?.label ??
    (typeof prompt === 'string' ? prompt : typeof prompt === 'object' && prompt !== null ? (prompt as { label?: string }).label : undefined) ??
    '';
  return { id, label };
}

/** d_t curves of a sampling run: mean over seeds per prompt, against the step. */
function sampleSection(units: readonly StoredUnit<unknown, unknown>[]): Section {
  const byPrompt = new Map<string, number[][]>();
  for (const u of units) {
    const p = promptOf(u);
    const d = (u.result as { d?: unknown }).d;
    if (!p || !Array.isArray(d) || !d.every((v) => typeof v === 'number')) continue;
    const list = byPrompt.get(`${p.id}: ${p.label}`) ?? [];
    list.push(d as number[]);
    byPrompt.set(`${p.id}: ${p.label}`, list);
  }
  const series: Series[] = [...byPrompt].map(([label, ds], k) => {
    const n = Math.min(...ds.map((d) => d.length));
    return { label: label.length > 40 ? label.slice(0, 39) + '…' : label, x: Array.from({ length: n }, (_, i) => i), y: Array.from({ length: n }, (_, i) => ds.reduce((a, d) => a + d[i]!, 0) / ds.length), color: paletteColor(k) };
  });
  return {
    head: `<p>${units.length} units (prompt × seed).</p>`,
    figures: series.length ? [{ name: 'd_t', caption: 'd_t = ‖ε_c − ε_u‖² along the steps, mean over seeds', spec: lineChart({ title: 'd_t (mean over seeds)', xLabel: 'inference step', yLabel: 'd_t', logY: true, series }) }] : [],
  };
}

/** The section of one study run, from its stored units (null: the study has no store view; the generic summary is shown). */
export async function studySection(run: StudyRunRow, units: StoredUnit<unknown, unknown>[], store: SqliteStore): Promise<Section | null> {
  const spec = run.spec as Record<string, unknown>;
  switch (run.name) {
    case 'curves': {
      const r = await curvesStudy.reduce(units as never, store, spec as CurvesSpec);
      return curvesSection(r);
    }
    case 'detect':
      return detectSection(await detectStudy.reduce(units as never, store, spec as unknown as DetectSettings));
    case 'transition':
      return transitionSection(await transitionStudy.reduce(units as never, store, spec as TransitionSpec));
    case 'kim': {
      const s = spec as unknown as KimSettings;
      const reduced = await kimStudy(s).reduce(units as never, store, s);
      // the descriptors as the run named them (`pixel,learned:DIR`): the first is primary
      const names = String(spec['descriptor'] ?? 'descriptor').split(',').map((x) => x.trim().split(':')[0]!);
      const record = (name: string): KimStudy['scoreRecord'] => ({ descriptor: { name } as KimStudy['scoreRecord']['descriptor'], aggregation: '', threshold: Number(spec['threshold'] ?? NaN) });
      const study: KimStudy = {
        ...reduced,
        model: String(spec['model'] ?? ''),
        // the model's dimension is not in the store: the claim that needs it reads "not measured"
        dim: NaN,
        imageShape: [],
        scoreRecord: record(names[0]!),
        extraScoreRecords: names.slice(1).map(record),
      };
      return kimSection(study);
    }
    case 'geometry': {
      // the run also lists the swap table's units (kept with it); the curves are the geometry units
      const r = await geometryStudy.reduce(units.filter((u) => u.study === 'geometry') as never, store, spec as unknown as GeometrySpec);
      const swap = store.runTables(run.runId).get('swap');
      return geometrySection(
        r,
        `<p>Exact empirical denoiser D* over ${r.n} training images; ${r.m} test images; ${r.sigma.length} σ from ${fmt(r.sigma[0]!)} to ${fmt(r.sigma[r.sigma.length - 1]!)}. Plots use log10 σ on the x axis.</p>`,
        swap ? [`<p class="note">The swap table as <code>memscope geometry</code> scored it on ${escapeHtml(swap.writtenAt)} (kept in the store).</p>`, ...swapHtml(swap.value as SwapTable)] : [],
      );
    }
    case 'sample':
    case 'demo':
    case 'validate':
      return sampleSection(units);
    case 'evaluate':
    case 'sweep': {
      // the tables these commands reduced with the model and its tools, kept in the store
      const t = store.runTables(run.runId).get(run.name);
      if (!t) return null;
      const s = run.name === 'evaluate' ? evaluateSection(t.value as EvaluateTable) : sweepSection(t.value as SweepTable);
      return { ...s, head: `<p class="note">The table as <code>memscope ${run.name}</code> reduced it on ${escapeHtml(t.writtenAt)} (kept in the store).</p>\n${s.head}` };
    }
    default:
      return null;
  }
}

/** The stored units of a study run, in plan order (units not stored yet are absent). */
export async function runUnits(store: SqliteStore, runId: string): Promise<StoredUnit<unknown, unknown>[]> {
  const units: StoredUnit<unknown, unknown>[] = [];
  for (const r of store.studyRows(runId)) {
    const u = await store.get<unknown, unknown>(r.key);
    if (u) units.push(u);
  }
  return units;
}

/** What the paper of a study is, for the section heading. */
export const PAPER: Readonly<Record<string, string>> = {
  kim: 'Kim et al.',
  curves: 'Jain et al.',
  transition: 'Jain et al.',
  evaluate: 'Jain et al.',
  sweep: 'Jain et al.',
  detect: 'Wen et al. / Ren et al.',
  geometry: 'Dodson & Gao',
  swap: 'Dodson & Gao',
};

/** Options of {@link storeReport}. */
export interface StoreReportOptions {
  /** Study runs to include (resolved run ids); default all, newest first. */
  readonly runs?: readonly StudyRunRow[];
  /** The store path shown in the page (default the store's folder). */
  readonly storeLabel?: string;
}

/** The whole page (self-contained: figures inlined as SVG, no external resource). */
export async function storeReport(store: SqliteStore, opts: StoreReportOptions = {}): Promise<string> {
  const runs = opts.runs ?? store.studies();
  const prompts = new Map<string, PromptEntry>();
  const sections: string[] = [];
  const toc: string[] = [];
  for (const run of runs) {
    const anchor = `run-${run.runId}`;
    const units = await runUnits(store, run.runId);
    for (const u of units) {
      const p = promptOf(u);
      if (!p) continue;
      const e = prompts.get(p.id) ?? { label: p.label, runs: new Set<string>() };
      e.runs.add(run.runId);
      prompts.set(p.id, e);
    }
    const seconds = units.reduce((a, u) => a + u.seconds, 0);
    const hosts = [...new Set(units.map((u) => u.host))];
    const title = `${run.name}${PAPER[run.name] ? ` (${PAPER[run.name]})` : ''} — ${run.runId}`;
    toc.push(`<li><a href="#${anchor}">${escapeHtml(title)}</a> · ${run.stored}/${run.units} units</li>`);
    const parts = [
      `<h2 id="${anchor}">${escapeHtml(title)}</h2>`,
      `<p>${run.stored} of ${run.units} units stored${run.stored < run.units ? ' (<strong>incomplete</strong>: the tables below cover the stored units only)' : ''}; ${fmt(seconds)} s of unit time on ${escapeHtml(hosts.join(', ') || '—')}; started ${escapeHtml(run.createdAt)}.</p>`,
      `<details><summary>settings</summary><pre>${escapeHtml(JSON.stringify(run.spec, null, 1))}</pre></details>`,
    ];
    let section: Section | null = null;
    let error: string | null = null;
    if (run.stored === run.units) {
      try {
        section = await studySection(run, units, store);
      } catch (e) {
        error = (e as Error).message;
      }
    }
    // a section's own headings sit one level below the run's
    if (section) parts.push((await inlineSection(section)).replace(/<(\/?)h2\b/g, '<$1h3'));
    else if (error !== null) parts.push(`<p class="note">The stored units could not be reduced: ${escapeHtml(error)}</p>`);
    else if (run.stored === run.units) parts.push(`<p class="note">The tables of a <code>${escapeHtml(run.name)}</code> study need its model; <code>memscope ${escapeHtml(run.name)} --config OUT/run.json</code> re-renders them from this store without recomputing a unit.</p>`);
    sections.push(parts.join('\n'));
  }
  const promptRows = [...prompts].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }));
  const index = promptRows.length
    ? `<h2 id="prompts">Prompts → runs</h2><table><thead><tr><th>prompt</th><th>text</th><th>runs</th></tr></thead><tbody>${promptRows
        .map(([id, e]) => `<tr><td>${escapeHtml(id)}</td><td>${escapeHtml(e.label)}</td><td>${[...e.runs].map((r) => `<a href="#run-${escapeHtml(r)}">${escapeHtml(r.slice(0, 8))}</a>`).join(' ')}</td></tr>`)
        .join('\n')}</tbody></table>`
    : '';
  const body = [
    `<p>Store <code>${escapeHtml(opts.storeLabel ?? store.dir)}</code>: ${runs.length} study run(s), ${prompts.size} prompts. Every number below is read from the stored units.</p>`,
    `<ul>${toc.join('\n')}</ul>`,
    ...(index ? ['<p><a href="#prompts">prompts → runs</a></p>'] : []),
    ...sections,
    index,
  ].join('\n');
  return page('memscope report', body);
}
