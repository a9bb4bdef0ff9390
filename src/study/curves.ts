/**
 * Guidance-magnitude curves (Jain et al., SPEC §4.1–4.2): per step, the mean and std over prompts'
 * seeds of ‖ε_c‖, ‖ε_u‖ and ‖ε_c − ε_u‖ (= √d_t) for memorized and normal prompts, under zero CFG
 * (s = 0), standard CFG (s = λ) and opposite guidance (s = −λ), and the static transition point
 * estimated from the mean d_t curve (`staticTransitionPoint`: the first step of the final stretch
 * where the mean d_t stays below a fraction of its maximum).
 *
 * Written as an engine {@link Study}: one unit per (mode, prompt, seed) — that row's per-step
 * norms — keyed by the model fingerprint, the condition, the seed, the sampler, steps, scheduler
 * config and guidance scale; the units of one mode share a batch, so the runner samples them in
 * one call exactly as a single `runSampling` over every prompt and seed; `reduce` aggregates the
 * rows by group.
 */
import { isMemorizedCondition } from '../denoisers/denoiser.ts';
import { z } from 'zod';
import { SAMPLER_NAMES, type SamplerName } from '../samplers/index.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import { constant } from '../guidance/schedules.ts';
import { StepNormsRecorder, staticTransitionPoint, magnitudeCurves, type MagnitudeCurve } from '../analysis/transition.ts';
import type { Study, Unit, StoredUnit } from '../engine/study.ts';
import { unitKey, canonicalJson, sha256Hex } from '../engine/canonical.ts';
import { InProcessRunner } from '../engine/runner.ts';
import { MemoryStore } from '../engine/memory-store.ts';
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

const MODES = ['zero', 'cfg', 'og'] as const;

/** The spec of a curves study (defaults here). */
export const CurvesSpecSchema = z.object({
  /** Condition indices. */
  prompts: z.array(z.number().int().nonnegative()).min(1, { message: '--prompts: need at least one prompt' }),
  seeds: z.array(z.number().int().nonnegative()).min(1),
  /** λ of standard CFG; OG uses −λ. */
  lambda: z.number().finite().default(7.5),
  modes: z.array(z.enum(MODES)).min(1).default(['zero', 'cfg', 'og']),
  sampler: z.enum(SAMPLER_NAMES as unknown as [SamplerName, ...SamplerName[]]).default('ddim'),
  steps: z.number().int().min(1).max(1000).default(50),
  /** Fraction of the maximum below which the mean d_t counts as low. */
  fraction: z.number().gt(0).lte(1).default(0.1),
});
/** A resolved curves spec. */
export type CurvesSpec = z.infer<typeof CurvesSpecSchema>;

/** What the curves study plans over: the model source and its scheduler config. */
export interface CurvesSource {
  readonly src: StudySource;
  readonly config: SchedulerConfig;
  /** What identifies the model's weights (see `study/fingerprint.ts`); part of every unit key (default: the source's spec). */
  readonly fingerprint?: unknown;
}

/** One unit: the per-step norms of one (mode, prompt, seed) sampling row. */
export interface CurvesUnit {
  readonly mode: CurveMode;
  /** Guidance scale s of the mode (0, λ or −λ). */
  readonly scale: number;
  readonly cond: number;
  readonly condId: string;
  /** Whether the condition is tied to a training image (its group). */
  readonly memorized: boolean;
  readonly seed: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly config: SchedulerConfig;
}

/** The result of one unit: per step, t and the row's norms (null: not finite, e.g. an unguided row). */
export interface CurvesUnitResult {
  readonly t: number[];
  readonly epsC: (number | null)[];
  readonly epsU: (number | null)[];
  readonly diff: (number | null)[];
}

const scaleOf = (mode: CurveMode, lambda: number): number => (mode === 'zero' ? 0 : mode === 'cfg' ? lambda : -lambda);
const finiteOrNull = (v: number): number | null => (Number.isFinite(v) ? v : null);

/** The curves study. */
export const curvesStudy: Study<CurvesSpec, CurvesUnit, CurvesUnitResult, CurvesResult, CurvesSource> = {
  id: 'curves',
  schema: CurvesSpecSchema as unknown as z.ZodType<CurvesSpec>,
  plan(spec, source) {
    const d = source.src.denoiser;
    const model = source.fingerprint ?? source.src.spec;
    for (const c of spec.prompts) {
      if (d.conditions[c] === undefined) throw new Error(`--prompts: condition index ${c} is out of range (0..${d.conditions.length - 1})`);
    }
    const units: Unit<CurvesUnit>[] = [];
    for (const mode of spec.modes) {
      const scale = scaleOf(mode, spec.lambda);
      const kind = { model, denoiser: d.name, sampler: spec.sampler, steps: spec.steps, config: source.config, mode, scale, records: 'step-norms' };
      const batch = `curves:${sha256Hex(canonicalJson(kind))}`;
      for (const cond of spec.prompts) {
        const info = d.conditions[cond]!;
        for (const seed of spec.seeds) {
          const u: CurvesUnit = { mode, scale, cond, condId: info.id, memorized: isMemorizedCondition(info), seed, sampler: spec.sampler, steps: spec.steps, config: source.config };
          units.push({ key: unitKey('curves', { ...kind, condition: info, seed }), spec: u, batch });
        }
      }
    }
    return units;
  },
  async run(units, ctx) {
    ctx.signal?.throwIfAborted();
    const u0 = units[0]!.spec;
    const rec = new StepNormsRecorder();
    await runSampling({
      denoiser: ctx.source.src.denoiser,
      conds: [],
      seeds: [],
      rows: units.map((u) => ({ cond: u.spec.cond, seed: u.spec.seed })),
      sampler: u0.sampler,
      steps: u0.steps,
      config: u0.config,
      guidance: constant(u0.scale),
      observers: [rec.observe],
    });
    return units.map((_, b) => ({
      result: {
        t: [...rec.t],
        epsC: rec.epsC.map((row) => finiteOrNull(row[b]!)),
        epsU: rec.epsU.map((row) => finiteOrNull(row[b]!)),
        diff: rec.diff.map((row) => finiteOrNull(row[b]!)),
      },
    }));
  },
  reduce(results: readonly StoredUnit<CurvesUnit, CurvesUnitResult>[], _blobs, spec) {
    const N = spec.seeds.length;
    const P = spec.prompts.length;
    let t: number[] = [];
    const modes: CurvesResult['modes'][number][] = [];
    for (const [mi, mode] of spec.modes.entries()) {
      const rs = results.slice(mi * P * N, (mi + 1) * P * N);
      if (rs.length !== P * N || rs.some((r) => r.spec.mode !== mode)) throw new Error(`curves: the stored units do not match the spec's modes × prompts × seeds`);
      t = rs[0]!.result.t;
      const steps = t.length;
      // [step][row], rows in plan order (prompt-major, p * N + n), as one sampler run over every prompt and seed records them
      const stepRows = (f: (r: CurvesUnitResult) => (number | null)[]): number[][] => Array.from({ length: steps }, (_, st) => rs.map((r) => f(r.result)[st] ?? NaN));
      const epsC = stepRows((r) => r.epsC);
      const epsU = stepRows((r) => r.epsU);
      const diff = stepRows((r) => r.diff);
      const dd = diff.map((row) => row.map((v) => v * v));
      const group = (mem: boolean): GroupCurves | null => {
        const rows = rs.flatMap((r, i) => (r.spec.memorized === mem ? [i] : []));
        if (rows.length === 0) return null;
        const c = { epsC: magnitudeCurves(epsC, { rows }), epsU: magnitudeCurves(epsU, { rows }), diff: magnitudeCurves(diff, { rows }), d: magnitudeCurves(dd, { rows }) };
        return { ...c, staticTransition: staticTransitionPoint(c.d.mean, { fraction: spec.fraction }), rows: rows.length };
      };
      modes.push({ mode, scale: scaleOf(mode, spec.lambda), memorized: group(true), normal: group(false) });
    }
    const seconds = results.reduce((a, r) => a + r.seconds, 0);
    return { t, modes, seconds };
  },
};

/**
 * Run every mode over every prompt and seed (one sampler call per mode) and aggregate by group:
 * the curves study on an in-memory store (or on `store`, reusing its units).
 */
export async function runCurves(src: StudySource, s: CurvesSettings, store = new MemoryStore()): Promise<CurvesResult> {
  if (s.prompts.length === 0) throw new Error('--prompts: need at least one prompt');
  const started = performance.now();
  const spec = curvesStudy.schema.parse({ prompts: s.prompts, seeds: s.seeds, lambda: s.lambda, modes: s.modes, sampler: s.sampler, steps: s.steps, fraction: s.fraction });
  const source: CurvesSource = { src, config: s.config };
  const units = await curvesStudy.plan(spec, source);
  const out = await new InProcessRunner().run(curvesStudy, units, source, store);
  const r = await curvesStudy.reduce(out.units, store, spec);
  return { ...r, seconds: (performance.now() - started) / 1000 };
}
