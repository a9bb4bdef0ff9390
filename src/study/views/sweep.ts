/**
 * The CFG-start sweep of Jain et al. (the empirical transition point): copy similarity to the
 * target against the start step k, per variant (plain, opposite guidance before k), and the first
 * k whose output is not a copy — shared by `memscope sweep` and the store views, which read the
 * table the command kept in the store (the scores need the descriptor, the store holds samples).
 */
import type { SweepResult, SweepRow } from '../sweep.ts';
import { lineChart, type Series } from '../../report/line.ts';
import { escapeHtml, fmt, table } from '../../report/html.ts';
import type { Section } from '../../report/section.ts';

/** What `memscope sweep` keeps in the store for a run (sweep.json plus the settings it was scored with). */
export interface SweepTable {
  readonly prompt: string;
  readonly target: number;
  readonly timesteps: readonly number[];
  readonly seconds: number;
  readonly descriptor: string;
  readonly settings: { readonly seed: number; readonly lambda: number; readonly sampler: string; readonly steps: number; readonly threshold: number };
  readonly variants: readonly { readonly label: string; readonly transition: number | null; readonly rows: readonly SweepRow[] }[];
}

/** The table of a scored sweep, without its images. */
export function sweepTableOf(r: SweepResult, descriptor: string): SweepTable {
  const s = r.settings;
  return {
    prompt: r.prompt,
    target: r.target,
    timesteps: r.timesteps,
    seconds: r.seconds,
    descriptor,
    settings: { seed: s.seed, lambda: s.lambda, sampler: s.sampler, steps: s.steps, threshold: s.threshold },
    variants: r.variants.map((v) => ({ label: v.label, transition: v.transition, rows: v.rows })),
  };
}

/** The similarity-vs-start-step figure and the transition table. */
export function sweepSection(t: SweepTable): Section {
  const s = t.settings;
  const colors = ['#d62728', '#1f77b4'];
  const series: Series[] = t.variants.map((v, i) => ({ label: v.label, x: v.rows.map((x) => x.k), y: v.rows.map((x) => x.similarity), color: colors[i % 2]! }));
  series.push({ label: `copy threshold ${s.threshold}`, x: [0, s.steps], y: [s.threshold, s.threshold], color: '#7f7f7f', dashed: true, width: 1 });
  const markers = t.variants.flatMap((v, i) => (v.transition === null ? [] : [{ x: v.transition, label: `k=${v.transition}`, color: colors[i % 2]! }]));
  return {
    head: [
      `<p>${escapeHtml(t.prompt)} (training image ${t.target}); seed ${s.seed}; λ = ${s.lambda}; ${escapeHtml(s.sampler)} ${s.steps} steps; descriptor ${escapeHtml(t.descriptor)}; ${fmt(t.seconds)} s.</p>`,
      table(['variant', 'empirical transition point k', 't_k'], t.variants.map((v) => [v.label, v.transition ?? 'none', v.transition === null ? '—' : (t.timesteps[v.transition] ?? 'never guided')])),
    ].join('\n'),
    figures: [
      {
        name: 'similarity',
        caption: 'copy similarity to the target against the CFG start step',
        width: 640,
        spec: lineChart({ title: `copy similarity to the target vs CFG start step: ${t.prompt}`, xLabel: 'start step k (s = 0 before, λ from k)', yLabel: `${t.descriptor} cosine`, series, markers }),
      },
    ],
  };
}
