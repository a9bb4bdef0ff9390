/**
 * Guidance-magnitude curves (Jain et al., SPEC §4.1–4.2): per step, the mean and std over prompts'
 * seeds of ‖ε_c‖, ‖ε_u‖ and ‖ε_c − ε_u‖ (= √d_t) for memorized and normal prompts, under zero CFG
 * (s = 0), standard CFG (s = λ) and opposite guidance (s = −λ), and the static transition point
 * estimated from the mean d_t curve (`staticTransitionPoint`: the first step of the final stretch
 * where the mean d_t stays below a fraction of its maximum).
 */
import type { SamplerName } from '../samplers/index.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import { constant } from '../guidance/schedules.ts';
import { StepNormsRecorder, staticTransitionPoint, type MagnitudeCurve } from '../analysis/transition.ts';
import { runSampling } from './sampling.ts';
import type { StudySource } from './source.ts';

/** The guidance regimes compared. */
export type CurveMode = 'zero' | 'cfg' | 'og';

/** Settings of a curves run. */
export interface CurvesSettings {
  readonly prompts: readonly number[];
  readonly seeds: readonly number[];
  /** λ of standard CFG; OG uses −λ (default 7.5). */
  readonly lambda: number;
  readonly modes: readonly CurveMode[];
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly config: SchedulerConfig;
  /** Fraction of the maximum below which the mean d_t counts as low (default 0.1). */
  readonly fraction: number;
}

/** Curves of one prompt group under one mode. */
export interface GroupCurves {
  readonly epsC: MagnitudeCurve;
  readonly epsU: MagnitudeCurve;
  readonly diff: MagnitudeCurve;
  readonly d: MagnitudeCurve;
  /** Static transition point from the mean d_t curve (step index; null: d_t never stays low). */
  readonly staticTransition: number | null;
  readonly rows: number;
}

/** All curves of a run. */
export interface CurvesResult {
  readonly t: readonly number[];
  readonly modes: readonly { readonly mode: CurveMode; readonly scale: number; readonly memorized: GroupCurves | null; readonly normal: GroupCurves | null }[];
  readonly seconds: number;
}

/** Run every mode over every prompt and seed (one sampler run per mode) and aggregate by group. */
export async function runCurves(src: StudySource, s: CurvesSettings): Promise<CurvesResult> {
  const d = src.denoiser;
  if (s.prompts.length === 0) throw new Error('--prompts: need at least one prompt');
  const memorized = s.prompts.map((c) => {
    const info = d.conditions[c];
    if (info === undefined) throw new Error(`--prompts: condition index ${c} is out of range (0..${d.conditions.length - 1})`);
    return (info.targets?.length ?? 0) > 0;
  });
  const N = s.seeds.length;
  const started = performance.now();
  let t: number[] = [];
  const modes: CurvesResult['modes'][number][] = [];
  for (const mode of s.modes) {
    const scale = mode === 'zero' ? 0 : mode === 'cfg' ? s.lambda : -s.lambda;
    const rec = new StepNormsRecorder();
    await runSampling({ denoiser: d, conds: s.prompts, seeds: s.seeds, sampler: s.sampler, steps: s.steps, config: s.config, guidance: constant(scale), observers: [rec.observe] });
    t = rec.t;
    const group = (mem: boolean): GroupCurves | null => {
      const rows = s.prompts.flatMap((_, p) => (memorized[p] === mem ? Array.from({ length: N }, (_, n) => p * N + n) : []));
      if (rows.length === 0) return null;
      const c = rec.curves({ rows });
      return { ...c, staticTransition: staticTransitionPoint(c.d.mean, { fraction: s.fraction }), rows: rows.length };
    };
    modes.push({ mode, scale, memorized: group(true), normal: group(false) });
  }
  return { t, modes, seconds: (performance.now() - started) / 1000 };
}
