/**
 * Transition-point helpers of Jain et al., "Classifier-Free Guidance inside the Attraction Basin
 * May Cause Memorization" (SPEC §4.1–4.3), over per-step records of a sampling run:
 *
 * - §4.1 guidance magnitude curves: per step, mean ± std over seeds/prompts of ‖ε_c‖, ‖ε_u‖,
 *   ‖ε_c − ε_u‖ and d_t = ‖ε_c − ε_u‖² ({@link StepNormsRecorder}, {@link magnitudeCurves});
 * - §4.2 the static transition point read off the mean d_t curve ({@link staticTransitionPoint});
 * - §4.3 the empirical transition point of a CFG-start sweep ({@link empiricalTransitionPoint}).
 *
 * Steps are 0-based inference step indices (step 0 is t = T); map a step k to its timestep with
 * the run's `t[k]` (`SamplingResult.t`, `GuidanceRecorder.t`).
 */
import type { StepObserver } from '../record/recorders.ts';
import type { StepEvent } from '../samplers/types.ts';
import type { Tensor } from '../tensor/tensor.ts';

/** Per-step mean and standard deviation across rows (see {@link magnitudeCurves}). */
export interface MagnitudeCurve {
  /** Mean over the finite entries of each step (NaN when a step has none). */
  readonly mean: number[];
  /** Standard deviation over the same entries (divisor count − ddof; NaN when count ≤ ddof). */
  readonly std: number[];
  /** Number of finite entries used at each step. */
  readonly count: number[];
}

/** Options of {@link magnitudeCurves}. */
export interface MagnitudeCurveOptions {
  /** Rows to include (default: all rows of each step), e.g. the seeds of one prompt. */
  readonly rows?: readonly number[];
  /** Delta degrees of freedom of the std (default 0: population std, numpy's default). */
  readonly ddof?: 0 | 1;
}

/**
 * Mean and std across rows, per step, of a `[step][row]` record — the guidance magnitude curves
 * of Jain et al. §4.1 (SPEC §4.1) for ‖ε_c‖, ‖ε_u‖, ‖ε_c − ε_u‖ or d_t. NaN entries (e.g. an
 * unguided row) are skipped; defaults: all rows, population std (ddof 0). Accumulated in float64
 * by Welford's update.
 */
export function magnitudeCurves(values: readonly (readonly number[])[], opts: MagnitudeCurveOptions = {}): MagnitudeCurve {
  const ddof = opts.ddof ?? 0;
  const mean: number[] = [];
  const std: number[] = [];
  const count: number[] = [];
  values.forEach((row, step) => {
    const idx = opts.rows ?? row.map((_, i) => i);
    let n = 0;
    let m = 0;
    let m2 = 0;
    for (const i of idx) {
      if (!Number.isInteger(i) || i < 0 || i >= row.length) throw new Error(`magnitudeCurves: rows contains ${i}, but step ${step} has ${row.length} rows`);
      const v = row[i]!;
      if (Number.isNaN(v)) continue;
      n++;
      const delta = v - m;
      m += delta / n;
      m2 += delta * (v - m);
    }
    mean.push(n > 0 ? m : NaN);
    std.push(n > ddof ? Math.sqrt(Math.max(m2, 0) / (n - ddof)) : NaN);
    count.push(n);
  });
  return { mean, std, count };
}

/** Euclidean norm of row `b` of `x` (`rowLen` values), in float64. */
function rowNorm(x: Tensor, b: number, rowLen: number): number {
  let s = 0;
  const off = b * rowLen;
  for (let i = 0; i < rowLen; i++) {
    const v = x.data[off + i]!;
    s += v * v;
  }
  return Math.sqrt(s);
}

/** Euclidean norm of row `b` of `c − u`, in float64. */
function rowDiffNorm(c: Tensor, u: Tensor, b: number, rowLen: number): number {
  let s = 0;
  const off = b * rowLen;
  for (let i = 0; i < rowLen; i++) {
    const v = c.data[off + i]! - u.data[off + i]!;
    s += v * v;
  }
  return Math.sqrt(s);
}

/**
 * A step observer recording, per step and batch row, the norms behind Jain et al.'s magnitude
 * curves (SPEC §4.1): ‖ε_c‖, ‖ε_u‖, ‖ε_c − ε_u‖ (= √d_t, SPEC §0), ‖ε̂‖ and the guidance scale s.
 * Norms are over the whole flattened row, in float64. When the run is unguided (`epsU`/`epsC`
 * null) the guided quantities are recorded as NaN, as is s when the event carries none.
 * Pass {@link StepNormsRecorder.observe} as (part of) `onStep` or `SamplingJob.observers`; with
 * `runSampling` and `batchSize` < rows, use one recorder per chunk (rows restart at 0).
 */
export class StepNormsRecorder {
  /** t per step. */
  readonly t: number[] = [];
  /** ‖ε_c‖ as `[step][row]`. */
  readonly epsC: number[][] = [];
  /** ‖ε_u‖ as `[step][row]`. */
  readonly epsU: number[][] = [];
  /** ‖ε_c − ε_u‖ = √d_t as `[step][row]`. */
  readonly diff: number[][] = [];
  /** ‖ε̂‖ (the guided estimate the sampler used) as `[step][row]`. */
  readonly eps: number[][] = [];
  /** Guidance scale s as `[step][row]`. */
  readonly s: number[][] = [];

  /** The observer to pass as (part of) `onStep`. */
  readonly observe: StepObserver = (e: StepEvent) => {
    const B = e.eps.dims[0] ?? 1;
    const rowLen = B > 0 ? e.eps.data.length / B : 0;
    const c: number[] = [];
    const u: number[] = [];
    const diff: number[] = [];
    const eps: number[] = [];
    const s: number[] = [];
    for (let b = 0; b < B; b++) {
      eps.push(rowNorm(e.eps, b, rowLen));
      c.push(e.epsC ? rowNorm(e.epsC, b, rowLen) : NaN);
      u.push(e.epsU ? rowNorm(e.epsU, b, rowLen) : NaN);
      diff.push(e.epsC && e.epsU ? rowDiffNorm(e.epsC, e.epsU, b, rowLen) : NaN);
      s.push(e.s ? (e.s[b] ?? NaN) : NaN);
    }
    this.t.push(e.t);
    this.epsC.push(c);
    this.epsU.push(u);
    this.diff.push(diff);
    this.eps.push(eps);
    this.s.push(s);
  };

  /** d_t = ‖ε_c − ε_u‖² as `[step][row]` (squares of {@link StepNormsRecorder.diff}). */
  d(): number[][] {
    return this.diff.map((r) => r.map((v) => v * v));
  }

  /** The §4.1 magnitude curves of every recorded quantity (see {@link magnitudeCurves}). */
  curves(opts: MagnitudeCurveOptions = {}): { epsC: MagnitudeCurve; epsU: MagnitudeCurve; diff: MagnitudeCurve; d: MagnitudeCurve; eps: MagnitudeCurve } {
    return {
      epsC: magnitudeCurves(this.epsC, opts),
      epsU: magnitudeCurves(this.epsU, opts),
      diff: magnitudeCurves(this.diff, opts),
      d: magnitudeCurves(this.d(), opts),
      eps: magnitudeCurves(this.eps, opts),
    };
  }
}

/** Options of {@link staticTransitionPoint}. */
export interface StaticTransitionOptions {
  /** The curve counts as "low" below this fraction of its maximum (default 0.1; in (0, 1]). */
  readonly fraction?: number;
}

/**
 * The static transition point of Jain et al. (SPEC §4.2: "from the mean curves: the step after
 * which d_t stays low"), made precise as: normalise the mean d_t curve by its maximum over all
 * steps; return the smallest step k such that the normalised curve is < `fraction` at k and at
 * every later step (the first step of the final low stretch). Null when the last step is not low,
 * the curve is empty, or its maximum is ≤ 0 (no guidance signal). Default fraction 0.1. Use
 * `t[k]` for the timestep (Jain et al. quote t ≈ 779/759 on DPM-Solver's 50-step grid).
 */
export function staticTransitionPoint(meanD: readonly number[], opts: StaticTransitionOptions = {}): number | null {
  const fraction = opts.fraction ?? 0.1;
  if (!(fraction > 0 && fraction <= 1)) throw new Error(`staticTransitionPoint: fraction must be in (0, 1], got ${fraction}`);
  let max = -Infinity;
  meanD.forEach((v, i) => {
    if (!Number.isFinite(v)) throw new Error(`staticTransitionPoint: meanD[${i}] is ${v}; the mean curve must be finite`);
    if (v > max) max = v;
  });
  if (meanD.length === 0 || !(max > 0)) return null;
  let k = meanD.length;
  while (k > 0 && meanD[k - 1]! / max < fraction) k--;
  return k === meanD.length ? null : k;
}

/**
 * Whether an output is still a copy of its target: similarity ≥ threshold (SPEC §4.3). The
 * threshold is the caller's (e.g. an SSCD-style cosine cut-off); a similarity equal to it counts
 * as a copy.
 */
export function isCopy(similarity: number, threshold: number): boolean {
  return similarity >= threshold;
}

/**
 * The empirical transition point of a CFG-start sweep (Jain et al. Fig. 2/4, SPEC §4.3):
 * `similarities[k]` is the similarity to the target of the output sampled with s = 0 before step k
 * and s = λ from step k on; the result is the first k whose output is no longer a copy
 * (`!isCopy(similarities[k], threshold)`, i.e. similarity < threshold), or null when every output
 * is a copy. Later k are not inspected: a non-monotone sweep still reports its first non-copy.
 */
export function empiricalTransitionPoint(similarities: readonly number[], threshold: number): number | null {
  if (Number.isNaN(threshold)) throw new Error('empiricalTransitionPoint: threshold is NaN');
  for (let k = 0; k < similarities.length; k++) {
    const v = similarities[k]!;
    if (Number.isNaN(v)) throw new Error(`empiricalTransitionPoint: similarities[${k}] is NaN`);
    if (!isCopy(v, threshold)) return k;
  }
  return null;
}
