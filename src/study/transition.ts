/**
 * The transition study (Jain et al. 2025, Figure 2; issue 15 §6): per prompt and seed, side by side,
 *
 * - the CFG-start sweep's empirical transition step — the first start step k whose sample (s = 0
 *   before k, λ from k on) is no longer a copy of the prompt's training image ({@link runSweep});
 * - the DTP switch step — the step at which Algorithm 1 (`dtp:λ`) switched to λ in a sampling run
 *   of the same seed;
 * - the zero-CFG d_t = ‖ε_c − ε_u‖² curve of the same seed (s = 0 throughout), the curve whose
 *   first local minimum DTP looks for (DTP samples with s = 0 up to its switch, so its d_t history
 *   there is this curve).
 *
 * Written as an engine {@link Study}: one unit per (prompt, seed), keyed by everything that
 * determines its result; a runner runs the units and a store keeps them.
 */
import { z } from 'zod';
import { join } from 'node:path';
import type { Study, Unit, StoredUnit } from '../engine/study.ts';
import { unitKey } from '../engine/canonical.ts';
import { constant, dtp } from '../guidance/schedules.ts';
import type { Descriptor } from '../metrics/descriptor.ts';
import { SAMPLER_NAMES, type SamplerName } from '../samplers/index.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import { runSampling } from './sampling.ts';
import { runSweep } from './sweep.ts';
import type { StudySource } from './source.ts';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.ts';
import { lineChart, type Marker, type Series } from '../report/line.ts';
import { writeSection, type Section } from '../report/section.ts';
import type { FigureSpec } from '../report/vega.ts';
import { paletteColor } from '../report/palette.ts';
import { table, fmt, escapeHtml } from '../report/html.ts';

/** The spec of a transition study (defaults here). */
export const TransitionSpecSchema = z.object({
  /** Condition indices (each must have a training image to copy). */
  prompts: z.array(z.number().int().nonnegative()).min(1),
  seeds: z.array(z.number().int().nonnegative()).min(1),
  /** Guidance scale λ (sweep from k on; DTP after its switch). */
  lambda: z.number().finite().default(7.5),
  sampler: z.enum(SAMPLER_NAMES as unknown as [SamplerName, ...SamplerName[]]).default('ddim'),
  steps: z.number().int().min(2).max(1000).default(50),
  /** Sweep every `every`-th start step (plus k = steps). */
  every: z.number().int().min(1).default(1),
  /** A sweep sample is a copy when its descriptor cosine to the target is ≥ this. */
  threshold: z.number().finite().default(0.75),
});
/** A resolved transition spec. */
export type TransitionSpec = z.infer<typeof TransitionSpecSchema>;

/** What the study plans over: the model source, its scheduler config and the copy descriptor. */
export interface TransitionSource {
  readonly src: StudySource;
  readonly config: SchedulerConfig;
  readonly descriptor: Descriptor;
  /** What identifies the model's weights (see `study/fingerprint.ts`); part of every unit key (default: the source's spec). */
  readonly fingerprint?: unknown;
}

/** One unit: one prompt and one seed. */
export interface TransitionUnit {
  readonly cond: number;
  readonly condId: string;
  readonly seed: number;
  readonly lambda: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly every: number;
  readonly threshold: number;
}

/** The result of one unit. */
export interface TransitionResult {
  readonly prompt: string;
  readonly target: number;
  /** Inference timesteps t_k of the sampler grid. */
  readonly timesteps: number[];
  /** The sweep's empirical transition step (first non-copy k; null: every output copies). */
  readonly sweepTransition: number | null;
  /** The sweep's rows: start step k and the sample's similarity to the target. */
  readonly sweep: { k: number; similarity: number; copy: boolean }[];
  /** The step at which the DTP run switched to λ (null: never). */
  readonly dtpSwitch: number | null;
  /** d_t = ‖ε_c − ε_u‖² per step of the zero-CFG run (s = 0 throughout) of the same seed. */
  readonly dZero: number[];
  /** d_t per step of the DTP run (equal to `dZero` up to the switch). */
  readonly dDtp: number[];
}

/** One table row of the summary. */
export interface TransitionRow extends TransitionResult {
  readonly cond: number;
  readonly condId: string;
  readonly seed: number;
}

/** The study's summary. */
export interface TransitionSummary {
  readonly spec: TransitionSpec;
  readonly rows: TransitionRow[];
  /** Rows where both steps exist: mean of (sweep transition − DTP switch), and of its absolute value. */
  readonly agreement: { readonly n: number; readonly meanDiff: number | null; readonly meanAbsDiff: number | null };
}

/** The sweep settings of a unit (as `memscope sweep` would run it, without the OG variant). */
function sweepSettings(u: TransitionUnit, config: SchedulerConfig) {
  return { cond: u.cond, seed: u.seed, lambda: u.lambda, og: false, ogLambda: u.lambda, sampler: u.sampler, steps: u.steps, config, every: u.every, threshold: u.threshold };
}

/** Run one unit: the zero-CFG run, the DTP run and the sweep of one prompt and seed. */
export async function runTransitionUnit(u: TransitionUnit, s: TransitionSource): Promise<TransitionResult> {
  const d = s.src.denoiser;
  const job = { denoiser: d, conds: [u.cond], seeds: [u.seed], sampler: u.sampler, steps: u.steps, config: s.config };
  const zero = await runSampling({ ...job, guidance: constant(0) });
  const dyn = await runSampling({ ...job, guidance: dtp(u.lambda) });
  const sw = await runSweep(s.src, sweepSettings(u, s.config), s.descriptor);
  const v = sw.variants[0]!;
  return {
    prompt: sw.prompt,
    target: sw.target,
    timesteps: [...sw.timesteps],
    sweepTransition: v.transition,
    sweep: v.rows.map((r) => ({ k: r.k, similarity: r.similarity, copy: r.copy })),
    dtpSwitch: dyn.switchSteps[0] ?? null,
    dZero: zero.d.map((row) => row[0]!),
    dDtp: dyn.d.map((row) => row[0]!),
  };
}

/** The transition study. */
export const transitionStudy: Study<TransitionSpec, TransitionUnit, TransitionResult, TransitionSummary, TransitionSource> = {
  id: 'transition',
  schema: TransitionSpecSchema,
  plan(spec, source) {
    const d = source.src.denoiser;
    const units: Unit<TransitionUnit>[] = [];
    for (const cond of spec.prompts) {
      const info = d.conditions[cond];
      if (info === undefined) throw new Error(`--prompts: condition index ${cond} is out of range (0..${d.conditions.length - 1})`);
      if (info.targets?.[0] === undefined) throw new Error(`--prompts: ${info.id} ("${info.label}") has no training image to copy; the transition study needs memorized prompts`);
      for (const seed of spec.seeds) {
        const u: TransitionUnit = { cond, condId: info.id, seed, lambda: spec.lambda, sampler: spec.sampler, steps: spec.steps, every: spec.every, threshold: spec.threshold };
        // identity: the model (source spec and denoiser), the scheduler config, the descriptor, and the unit's settings
        units.push({ key: unitKey('transition', { model: source.fingerprint ?? source.src.spec, denoiser: d.name, condition: d.conditions[u.cond], config: source.config, descriptor: source.descriptor.info, unit: u }), spec: u });
      }
    }
    return units;
  },
  async run(units, ctx) {
    const out = [];
    for (const u of units) {
      ctx.signal?.throwIfAborted();
      out.push({ result: await runTransitionUnit(u.spec, ctx.source) });
    }
    return out;
  },
  reduce(results: readonly StoredUnit<TransitionUnit, TransitionResult>[], _blobs, spec) {
    const rows: TransitionRow[] = results.map((r) => ({ cond: r.spec.cond, condId: r.spec.condId, seed: r.spec.seed, ...r.result }));
    const both = rows.filter((r) => r.sweepTransition !== null && r.dtpSwitch !== null);
    const diffs = both.map((r) => r.sweepTransition! - r.dtpSwitch!);
    const mean = (v: number[]): number | null => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : null);
    return { spec, rows, agreement: { n: both.length, meanDiff: mean(diffs), meanAbsDiff: mean(diffs.map(Math.abs)) } };
  },
  async report(summary, dir) {
    await writeTransitionReport(summary, dir);
  },
};

const stepText = (k: number | null, t: readonly number[]): string => (k === null ? 'none' : `${k} (t = ${t[k] ?? 'never guided'})`);

/** The CSV table: one row per prompt and seed (steps k and their timesteps t_k; empty: none). The d_t curves are in transition.json. */
export function transitionCsv(s: TransitionSummary): string {
  const header = ['prompt_id', 'seed', 'target', 'sweep_transition_k', 'sweep_transition_t', 'dtp_switch_k', 'dtp_switch_t', 'steps'];
  const lines = s.rows.map((r) =>
    [r.condId, r.seed, r.target, r.sweepTransition ?? '', r.sweepTransition === null ? '' : (r.timesteps[r.sweepTransition] ?? ''), r.dtpSwitch ?? '', r.dtpSwitch === null ? '' : r.timesteps[r.dtpSwitch]!, r.dZero.length].join(','),
  );
  return [header.join(','), ...lines].join('\n') + '\n';
}



/** The figure: zero-CFG d_t per prompt and seed against the step, with the sweep's transition (●) and DTP's switch (◆) marked. */
export function transitionFigure(s: TransitionSummary): FigureSpec {
  const series: Series[] = [];
  const markers: Marker[] = [];
  s.rows.forEach((r, i) => {
    const color = paletteColor(i);
    series.push({ label: `${r.condId} seed ${r.seed}`, x: r.dZero.map((_, k) => k), y: r.dZero, color, width: 1.2 });
    if (r.sweepTransition !== null) markers.push({ x: r.sweepTransition, label: `● ${r.sweepTransition}`, color });
    if (r.dtpSwitch !== null) markers.push({ x: r.dtpSwitch, label: `◆ ${r.dtpSwitch}`, color });
  });
  return lineChart({
    title: 'zero-CFG d_t with the sweep transition (●) and the DTP switch (◆)',
    xLabel: 'step k (0 = t = T)',
    yLabel: 'd_t = ‖ε_c − ε_u‖²',
    series,
    markers,
    logY: true,
    width: 760,
    height: 420,
  });
}

/** The report section of a transition study: the settings, the agreement, the figure and the per-unit table. */
export function transitionSection(s: TransitionSummary): Section {
  const a = s.agreement;
  return {
    head: [
      `<p>${s.rows.length} units (${s.spec.prompts.length} prompts × ${s.spec.seeds.length} seeds); λ = ${s.spec.lambda}; ${escapeHtml(s.spec.sampler)} ${s.spec.steps} steps; sweep every ${s.spec.every} step(s), copy threshold ${s.spec.threshold}.</p>`,
      `<p>Both steps found in ${a.n} units; mean (sweep transition − DTP switch) ${a.meanDiff === null ? '—' : fmt(a.meanDiff)} steps, mean |difference| ${a.meanAbsDiff === null ? '—' : fmt(a.meanAbsDiff)} steps.</p>`,
    ].join('\n'),
    figures: [{ name: 'transition', spec: transitionFigure(s), caption: 'zero-CFG d_t curves with the sweep transition and DTP switch', width: 760 }],
    tail: table(['prompt', 'seed', 'sweep transition k', 'DTP switch k'], s.rows.map((r) => [`${r.condId}: ${r.prompt}`, r.seed, stepText(r.sweepTransition, r.timesteps), stepText(r.dtpSwitch, r.timesteps)])),
  };
}

/** Write transition.csv, transition.json, transition.vl.json|svg|png and report.html into `dir`. */
export async function writeTransitionReport(s: TransitionSummary, dir: string): Promise<void> {
  await writeFileAtomic(join(dir, 'transition.csv'), transitionCsv(s));
  await writeJsonAtomic(join(dir, 'transition.json'), s);
  await writeSection(dir, 'memscope transition', transitionSection(s));
}
