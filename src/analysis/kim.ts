/**
 * The Kim et al. analysis suite ("How diffusion models memorize", SPEC §3) as one streaming
 * observer of sampler `StepEvent`s: per prompt (a group of batch rows = its seeds) it keeps the
 * per-step scalars of every seed and the cross-seed statistics of each step, in O(rows·d) memory
 * (never O(rows·d·steps)); and the forward-noised training loss (SPEC §3.1, second variant).
 *
 * Quantities (x = the prompt's target, x_T = the state the model saw at step 0, all flattened):
 *  - §3.1 `L_x0(t) = ‖x̂0(t) − x‖²`, `L_ε(t) = (ᾱ_t/(1−ᾱ_t))·L_x0(t)`;
 *  - §3.2 `cos(x̂0(t), x)`, `k(t) = ⟨x̂0(t), x⟩/‖x‖²` and its affine split `k = k_u + s·(k_c − k_u)`;
 *  - §3.3 first-step noise diagnostics;
 *  - §3.4 `trace Cov_n[x_t^(n)]`; §3.5 PC1 ratio of `Δx = x_{t_prev} − x_t`;
 *  - §3.6 `min ‖x_t − w0·x − wT·x_T‖²`; §3.7 deviation sums.
 */
import type { CondRef, Denoiser } from '../denoisers/denoiser.ts';
import type { StepObserver } from '../record/recorders.ts';
import { TorchGenerator } from '../random/torch.ts';
import type { StepEvent } from '../samplers/types.ts';
import { concatBatch, numel, rowSize, type Tensor } from '../tensor/tensor.ts';
import { centredGram, pc1RatioFromGram } from './alignment.ts';
import { deviationSums, solveDecompositionFromGram, type DeviationSums } from './decomposition.ts';
import { traceCovariance } from './diversity.ts';

/** One prompt's seeds: the rows of the batch that belong to it. */
export interface KimGroup {
  /**
   * Row indices as the observer sees them: within one sampler call, its batch rows. When the
   * observer is reused across consecutive sampler calls (`runSampling` with `batchSize`), the
   * numbering continues: call k's batch row b is row (rows of calls 0..k−1) + b, i.e. the
   * `runSampling` row index. A group's rows must all lie in the same call.
   */
  readonly rows: readonly number[];
}

/** Options of {@link KimAccumulator}. */
export interface KimAccumulatorOptions {
  /** The groups (prompts) to analyse; one {@link KimGroupStats} each. */
  readonly groups: readonly KimGroup[];
  /**
   * Per row (same numbering as {@link KimGroup.rows}): the target x (flattened, the length of one
   * row of x_t) or null when unknown. Rows beyond the array's end have no target.
   */
  readonly targets: readonly (Float32Array | null)[];
}

/** A per-step series summarized across a group's seeds. */
export interface StepSeries {
  /** Mean over seeds, one entry per step (NaN when any seed's value is NaN). */
  readonly mean: number[];
  /** Sample standard deviation over seeds (divisor N−1; 0 when N = 1). */
  readonly std: number[];
}

/** Kim et al.'s first-step (t = T) diagnostics (SPEC §3.2, §3.3), means over seeds. */
export interface KimFirstStep {
  /** cos(ε_u, x_T) (≈ 1). NaN without ε_u. */
  readonly cosEpsUxT: number;
  /** cos(ε_c, x_T) (≈ 1). NaN without ε_c. */
  readonly cosEpsCxT: number;
  /** ‖ε_u − x_T‖² (≈ 0). NaN without ε_u. */
  readonly sqDistEpsUxT: number;
  /** cos(ε_u − x_T, −x) (≈ 0). NaN without ε_u or target. */
  readonly cosEpsUMinusXTNegX: number;
  /** cos(ε_c − x_T, −x) (high when memorized). NaN without ε_c or target. */
  readonly cosEpsCMinusXTNegX: number;
  /** k(T) = ⟨x̂0(T), x⟩/‖x‖² (≈ s when memorized and x̂0_u(T) ≈ 0). NaN without target. */
  readonly k: number;
  /** The guidance scale s at the first step (1 when the run is unguided: ε̂ = ε_c). */
  readonly s: number;
}

/** Everything SPEC §3.1–§3.7 reports for one prompt (group of seeds) of one run. */
export interface KimGroupStats {
  /** Timestep of each step. */
  readonly t: number[];
  /** ᾱ_t of each step (of the x_t the model saw). */
  readonly alphaBar: number[];
  /** Whether every row of the group had a target (otherwise target-based series are NaN). */
  readonly hasTarget: boolean;
  /** §3.1 L_x0(t) = ‖x̂0(t) − x‖². */
  readonly lossX0: StepSeries;
  /** §3.1 L_ε(t) = (ᾱ_t/(1−ᾱ_t))·‖x̂0(t) − x‖². */
  readonly lossEps: StepSeries;
  /** §3.2 cos(x̂0(t), x). */
  readonly cos: StepSeries;
  /** §3.2 k(t) = ⟨x̂0(t), x⟩/‖x‖², from the sampler's x̂0. */
  readonly k: StepSeries;
  /** §3.2 k_u(t) = ⟨x̂0_u(t), x⟩/‖x‖², x̂0_u = (x_t − √(1−ᾱ)ε_u)/√ᾱ (NaN without ε_u). */
  readonly kU: StepSeries;
  /** §3.2 k_c(t) = ⟨x̂0_c(t), x⟩/‖x‖², x̂0_c = (x_t − √(1−ᾱ)ε_c)/√ᾱ (NaN without ε_c). */
  readonly kC: StepSeries;
  /** §3.2/§3.3 first-step diagnostics. */
  readonly firstStep: KimFirstStep;
  /** §3.4 trace Cov_n[x_t^(n)] at each step (of the x_t the model saw). */
  readonly trace: number[];
  /** §3.4 trace Cov_n of the final samples x_0^(n). */
  readonly traceFinal: number;
  /** §3.5 PC1 explained-variance ratio of Δx = x_{t_prev} − x_t across seeds, per step. */
  readonly pc1: number[];
  /** §3.6 w0(t) of min ‖x_t − w0·x − wT·x_T‖². */
  readonly w0: StepSeries;
  /** §3.6 wT(t). */
  readonly wT: StepSeries;
  /** §3.6 residual norm ‖x_t − w0·x − wT·x_T‖. */
  readonly residual: StepSeries;
  /** §3.6 relative residual ‖r‖/‖x_t‖. */
  readonly relResidual: StepSeries;
  /** §3.7 deviation sums of the mean w0/wT against √ᾱ_t and √(1−ᾱ_t). */
  readonly deviation: DeviationSums;
  /** Final samples x_0 of the group's rows, `[N·d]` row-major in the order of `rows`. */
  readonly finalSamples: Float32Array;
}

/** Per-seed scalar quantities kept for every step. */
const SERIES = ['lossX0', 'lossEps', 'cos', 'k', 'kU', 'kC', 'w0', 'wT', 'residual', 'relResidual'] as const;
type SeriesName = (typeof SERIES)[number];

/** The mutable state of one group. */
interface GroupState {
  readonly rows: readonly number[];
  readonly n: number;
  /** Targets of the members (null when unknown). */
  readonly targets: (Float32Array | null)[];
  readonly hasTarget: boolean;
  /** Batch rows of the members in the current call (set when the call starts). */
  local: number[];
  /** x_T of each member (copied at step 0). */
  xT: Float32Array[];
  xx: Float64Array;
  xTxT: Float64Array;
  xxT: Float64Array;
  t: number[];
  alphaBar: number[];
  /** series[name][step][member]. */
  series: Record<SeriesName, Float64Array[]>;
  trace: number[];
  pc1: number[];
  first: KimFirstStep | null;
  traceFinal: number;
  finalSamples: Float32Array | null;
  /** Reused n·d float64 buffer for the cross-seed statistics (allocated when the group's call starts). */
  work: Float64Array;
  started: boolean;
  done: boolean;
}

function emptySeries(): Record<SeriesName, Float64Array[]> {
  const o = {} as Record<SeriesName, Float64Array[]>;
  for (const s of SERIES) o[s] = [];
  return o;
}

/** Mean and sample std (N−1) of each step's per-seed values. */
function summarize(perStep: readonly Float64Array[]): StepSeries {
  const mean: number[] = [];
  const std: number[] = [];
  for (const v of perStep) {
    const n = v.length;
    let m = 0;
    for (let i = 0; i < n; i++) m += v[i]!;
    m /= n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += (v[i]! - m) * (v[i]! - m);
    mean.push(m);
    std.push(n > 1 ? Math.sqrt(ss / (n - 1)) : Number.isNaN(m) ? NaN : 0);
  }
  return { mean, std };
}

function meanOf(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  return v.length === 0 ? NaN : s / v.length;
}

/** cos from a dot product and two squared norms (0 when a norm is 0, as `ops.cosine`). */
function cosFrom(ab: number, aa: number, bb: number): number {
  const den = Math.sqrt(aa * bb);
  return den === 0 ? 0 : ab / den;
}

/**
 * Streaming accumulator of Kim et al.'s statistics (SPEC §3) over the `StepEvent`s of one or
 * more consecutive sampler calls: pass {@link KimAccumulator.observe} to `runSampling`'s
 * `observers` (or a sampler's `onStep`), then call {@link KimAccumulator.result}. Per step it
 * makes one fused float64 pass over each group row (≈ 8 multiply-adds per element) plus
 * O(N²·d + N³) for the PCA of each group; memory is O(rows·d) (x_T, target norms, one float64
 * work buffer per group, the final samples) plus O(rows·steps) scalars. Measured: ≈ 3 ms per
 * step for 4 prompts × 16 seeds × 784 pixels replayed warm, ≈ 4 % of the analytic testbed's
 * sampling time (a cheap denoiser; negligible next to a UNet).
 *
 * Notes: x̂0 is the sampler's (after clipping when the scheduler clips, which breaks the affine
 * split k = k_u + s(k_c − k_u)); k_u/k_c are computed from x_t, ε_u, ε_c and ᾱ_t. Events are
 * never mutated; what is kept is copied.
 */
export class KimAccumulator {
  private readonly groups: GroupState[];
  /** Observer row index of the current call's batch row 0. */
  private rowOffset = 0;
  /** Batch size of the current call (−1 between calls). */
  private callRows = -1;
  private nextStep = 0;
  /** Per observer row: its final sample (copied), for rows in some group. */
  private readonly finals = new Map<number, Float32Array>();

  /** Build an accumulator for `opts.groups`; throws on empty or overlapping groups. */
  constructor(opts: KimAccumulatorOptions) {
    const seen = new Set<number>();
    this.groups = opts.groups.map((g, gi) => {
      if (g.rows.length === 0) throw new Error(`KimAccumulator: group ${gi} has no rows`);
      for (const r of g.rows) {
        if (!Number.isInteger(r) || r < 0) throw new Error(`KimAccumulator: group ${gi} has row ${r}, not a non-negative integer`);
        if (seen.has(r)) throw new Error(`KimAccumulator: row ${r} appears in more than one group (or twice in group ${gi})`);
        seen.add(r);
      }
      const targets = g.rows.map((r) => opts.targets[r] ?? null);
      const n = g.rows.length;
      return {
        rows: [...g.rows],
        n,
        targets,
        hasTarget: targets.every((x) => x !== null),
        local: [],
        xT: [],
        xx: new Float64Array(n),
        xTxT: new Float64Array(n),
        xxT: new Float64Array(n),
        t: [],
        alphaBar: [],
        series: emptySeries(),
        trace: [],
        pc1: [],
        first: null,
        traceFinal: NaN,
        finalSamples: null,
        work: new Float64Array(0),
        started: false,
        done: false,
      };
    });
  }

  /** The step observer to pass to `runSampling`'s `observers` or a sampler's `onStep`. */
  readonly observe: StepObserver = (e) => {
    this.onStep(e);
  };

  private onStep(e: StepEvent): void {
    const B = e.xt.dims[0];
    if (B === undefined || B < 1) throw new Error(`KimAccumulator: x_t must be batched [B, ...], got [${e.xt.dims.join(', ')}]`);
    const d = rowSize(e.xt);
    if (e.step === 0) {
      if (this.callRows !== -1) throw new Error(`KimAccumulator: a new run started (step 0) before the previous one reached its last step (${this.nextStep - 1} of ${e.numSteps})`);
      this.callRows = B;
      this.startCall(e, d);
    } else if (e.step !== this.nextStep || B !== this.callRows) {
      throw new Error(`KimAccumulator: expected step ${this.nextStep} with batch ${this.callRows}, got step ${e.step} with batch ${B}`);
    }
    for (const g of this.groups) if (g.started && !g.done) this.stepGroup(g, e, d);
    this.nextStep = e.step + 1;
    if (e.step === e.numSteps - 1) {
      for (const g of this.groups) if (g.started && !g.done) this.finishGroup(g, e, d);
      this.rowOffset += B;
      this.callRows = -1;
      this.nextStep = 0;
    }
  }

  /** At step 0: find the groups of this call, copy x_T and precompute the target inner products. */
  private startCall(e: StepEvent, d: number): void {
    const lo = this.rowOffset;
    const hi = lo + e.xt.dims[0]!;
    this.groups.forEach((g, gi) => {
      const inside = g.rows.filter((r) => r >= lo && r < hi).length;
      if (inside === 0) return;
      if (inside !== g.n) throw new Error(`KimAccumulator: group ${gi} (rows ${g.rows.join(', ')}) spans several sampler calls; this call has rows ${lo}..${hi - 1}`);
      if (g.started) throw new Error(`KimAccumulator: group ${gi} was already observed`);
      g.started = true;
      g.local = g.rows.map((r) => r - lo);
      g.work = new Float64Array(g.n * d);
      g.targets.forEach((x, m) => {
        if (x !== null && x.length !== d) throw new Error(`KimAccumulator: target of row ${g.rows[m]} has ${x.length} values, x_t rows have ${d}`);
      });
      g.xT = g.local.map((b) => e.xt.data.slice(b * d, (b + 1) * d));
      for (let m = 0; m < g.n; m++) {
        const xT = g.xT[m]!;
        const x = g.targets[m];
        let tt = 0;
        let xx = 0;
        let xt = 0;
        for (let i = 0; i < d; i++) {
          tt += xT[i]! * xT[i]!;
          if (x) {
            xx += x[i]! * x[i]!;
            xt += x[i]! * xT[i]!;
          }
        }
        g.xTxT[m] = tt;
        g.xx[m] = x ? xx : NaN;
        g.xxT[m] = x ? xt : NaN;
      }
    });
  }

  private stepGroup(g: GroupState, e: StepEvent, d: number): void {
    const a = e.alphaBar;
    const sqA = Math.sqrt(a);
    const sqB = Math.sqrt(1 - a);
    const xtD = e.xt.data;
    const xhD = e.xHat0.data;
    const euD = e.epsU?.data ?? null;
    const ecD = e.epsC?.data ?? null;
    const vals = {} as Record<SeriesName, Float64Array>;
    for (const s of SERIES) vals[s] = new Float64Array(g.n).fill(NaN);
    g.t.push(e.t);
    g.alphaBar.push(a);
    for (let m = 0; m < g.n; m++) {
      const x = g.targets[m];
      if (!x) continue;
      const xT = g.xT[m]!;
      const off = g.local[m]! * d;
      let hx = 0;
      let hh = 0;
      let hd = 0;
      let tx = 0;
      let tT = 0;
      let tt = 0;
      let ux = 0;
      let cx = 0;
      for (let i = 0; i < d; i++) {
        const xi = x[i]!;
        const h = xhD[off + i]!;
        const v = xtD[off + i]!;
        const r = h - xi;
        hx += h * xi;
        hh += h * h;
        hd += r * r;
        tx += v * xi;
        tT += v * xT[i]!;
        tt += v * v;
        if (euD) ux += euD[off + i]! * xi;
        if (ecD) cx += ecD[off + i]! * xi;
      }
      const xx = g.xx[m]!;
      vals.lossX0[m] = hd;
      vals.lossEps[m] = (a / (1 - a)) * hd;
      vals.cos[m] = cosFrom(hx, hh, xx);
      vals.k[m] = hx / xx;
      if (euD) vals.kU[m] = (tx - sqB * ux) / (sqA * xx);
      if (ecD) vals.kC[m] = (tx - sqB * cx) / (sqA * xx);
      const dec = solveDecompositionFromGram({ xx, xTxT: g.xTxT[m]!, xxT: g.xxT[m]!, xtx: tx, xtxT: tT, xtxt: tt });
      vals.w0[m] = dec.w0;
      vals.wT[m] = dec.wT;
      vals.residual[m] = dec.residual;
      vals.relResidual[m] = tt > 0 ? dec.residual / Math.sqrt(tt) : NaN;
    }
    for (const s of SERIES) g.series[s].push(vals[s]);
    if (e.step === 0) g.first = this.firstStep(g, e, d, vals.k);
    // §3.4 diversity of x_t
    const w = g.work;
    g.local.forEach((b, m) => {
      const o = b * d;
      const q = m * d;
      for (let i = 0; i < d; i++) w[q + i] = xtD[o + i]!;
    });
    g.trace.push(traceCovariance(w, g.n, d));
    // §3.5 alignment of Δx = x_{t_prev} − x_t (float64 differences, centred in place)
    const xp = e.xPrev.data;
    g.local.forEach((b, m) => {
      const o = b * d;
      const q = m * d;
      for (let i = 0; i < d; i++) w[q + i] = xp[o + i]! - xtD[o + i]!;
    });
    g.pc1.push(pc1RatioFromGram(centredGram(w, g.n, d, w), g.n));
  }

  /** §3.3 diagnostics at step 0 (x_T = this step's x_t), direct passes for the near-zero differences. */
  private firstStep(g: GroupState, e: StepEvent, d: number, k: Float64Array): KimFirstStep {
    const n = g.n;
    const cu = new Float64Array(n).fill(NaN);
    const cc = new Float64Array(n).fill(NaN);
    const du = new Float64Array(n).fill(NaN);
    const nu = new Float64Array(n).fill(NaN);
    const nc = new Float64Array(n).fill(NaN);
    const diag = (eps: Float32Array, off: number, xT: Float32Array, x: Float32Array | null): [number, number, number] => {
      let ee = 0;
      let eT = 0;
      let tt = 0;
      let dd = 0;
      let dx = 0;
      let xx = 0;
      for (let i = 0; i < d; i++) {
        const v = eps[off + i]!;
        const w = xT[i]!;
        const r = v - w;
        ee += v * v;
        eT += v * w;
        tt += w * w;
        dd += r * r;
        if (x) {
          dx += r * x[i]!;
          xx += x[i]! * x[i]!;
        }
      }
      // cos(ε − x_T, −x) = −⟨ε − x_T, x⟩/(‖ε − x_T‖‖x‖)
      return [cosFrom(eT, ee, tt), dd, x ? -cosFrom(dx, dd, xx) : NaN];
    };
    for (let m = 0; m < n; m++) {
      const off = g.local[m]! * d;
      const x = g.targets[m] ?? null;
      if (e.epsU) [cu[m], du[m], nu[m]] = diag(e.epsU.data, off, g.xT[m]!, x);
      if (e.epsC) [cc[m], , nc[m]] = diag(e.epsC.data, off, g.xT[m]!, x);
    }
    const s = e.s ? meanOf(g.local.map((b) => e.s![b]!)) : 1;
    return { cosEpsUxT: meanOf(cu), cosEpsCxT: meanOf(cc), sqDistEpsUxT: meanOf(du), cosEpsUMinusXTNegX: meanOf(nu), cosEpsCMinusXTNegX: meanOf(nc), k: meanOf(k), s };
  }

  /** After the last step: the final samples and their diversity. */
  private finishGroup(g: GroupState, e: StepEvent, d: number): void {
    const out = new Float32Array(g.n * d);
    g.local.forEach((b, m) => {
      const row = e.xPrev.data.slice(b * d, (b + 1) * d);
      out.set(row, m * d);
      this.finals.set(g.rows[m]!, row);
    });
    g.finalSamples = out;
    g.traceFinal = traceCovariance(out, g.n, d);
    g.done = true;
    g.work = new Float64Array(0);
  }

  /**
   * Per observer row: its final sample x_0^(n) (rows outside every group, or not yet finished,
   * are null). Pass as `targets` to a second accumulator over a rerun of the same deterministic
   * sampling for SPEC §3.6's "target unknown" variant (x := each seed's own final sample): the
   * decomposition needs ⟨x_t, x⟩ at every step, which one streaming pass cannot have.
   */
  finalTargets(): (Float32Array | null)[] {
    const max = Math.max(-1, ...this.finals.keys());
    return Array.from({ length: max + 1 }, (_, r) => this.finals.get(r) ?? null);
  }

  /** One {@link KimGroupStats} per group, in the order given; throws if a group's run has not finished. */
  result(): KimGroupStats[] {
    return this.groups.map((g, gi) => {
      if (!g.done || !g.first || !g.finalSamples) {
        throw new Error(`KimAccumulator: group ${gi} (rows ${g.rows.join(', ')}) has not been observed to its last step (rows seen: ${this.rowOffset})`);
      }
      const s = {} as Record<SeriesName, StepSeries>;
      for (const name of SERIES) s[name] = summarize(g.series[name]);
      return {
        t: [...g.t],
        alphaBar: [...g.alphaBar],
        hasTarget: g.hasTarget,
        lossX0: s.lossX0,
        lossEps: s.lossEps,
        cos: s.cos,
        k: s.k,
        kU: s.kU,
        kC: s.kC,
        firstStep: g.first,
        trace: [...g.trace],
        traceFinal: g.traceFinal,
        pc1: [...g.pc1],
        w0: s.w0,
        wT: s.wT,
        residual: s.residual,
        relResidual: s.relResidual,
        deviation: deviationSums(s.w0.mean, s.wT.mean, g.alphaBar),
        finalSamples: g.finalSamples,
      };
    });
  }
}

/** Options of {@link forwardNoisedLoss}. */
export interface ForwardNoisedLossOptions {
  /** The condition (prompt) c; null for the unconditional model. */
  readonly cond: CondRef;
  /** The target x (flattened, `numel(denoiser.shape)` values). */
  readonly x: Float32Array;
  /** Noise levels (t, ᾱ_t) to evaluate, e.g. a sampler's grid. */
  readonly levels: readonly { readonly t: number; readonly alphaBar: number }[];
  /** One ε per seed: `torch.randn(shape, generator=manual_seed(seed))`, the same ε at every level. */
  readonly seeds: readonly number[];
  /** Guidance scale s of ε̂ = ε_u + s(ε_c − ε_u). */
  readonly guidanceScale: number;
}

/**
 * The literal training loss along the noise levels (Kim et al., SPEC §3.1 "forward-noised
 * variant"): for each level and seed, ε = `new TorchGenerator(seed).randn(shape)`,
 * `x_t = √ᾱ·x + √(1−ᾱ)·ε`, `ε̂ = ε_u + s·(ε_c − ε_u)` from one batched `predict` of `[x_t; x_t]`
 * with conditions `[c; ∅]` per level (all seeds batched; a single conditional call when s = 1 or
 * c is null, where ε̂ = ε_c exactly), `L_ε = ‖ε̂ − ε‖²` and `L_x0 = ((1−ᾱ)/ᾱ)·L_ε = ‖x̂0 − x‖²`.
 * Returns mean/std over seeds (N−1), one entry per level.
 */
export async function forwardNoisedLoss(denoiser: Denoiser, opts: ForwardNoisedLossOptions): Promise<{ lossEps: StepSeries; lossX0: StepSeries }> {
  const shape = denoiser.shape;
  const d = numel(shape);
  const { cond, x, levels, seeds } = opts;
  const s = opts.guidanceScale;
  if (x.length !== d) throw new Error(`forwardNoisedLoss: x has ${x.length} values, ${denoiser.name} rows have ${d}`);
  if (seeds.length === 0) throw new Error('forwardNoisedLoss: need at least one seed');
  if (!Number.isFinite(s)) throw new Error(`forwardNoisedLoss: guidanceScale must be finite, got ${s}`);
  const N = seeds.length;
  const eps = new Float32Array(N * d);
  const lossEps: Float64Array[] = [];
  const lossX0: Float64Array[] = [];
  const single = s === 1 || cond === null;
  for (const level of levels) {
    const a = level.alphaBar;
    if (!(a > 0 && a < 1)) throw new Error(`forwardNoisedLoss: ᾱ must be in (0, 1), got ${a} at t = ${level.t}`);
    const sqA = Math.sqrt(a);
    const sqB = Math.sqrt(1 - a);
    const xt = new Float32Array(N * d);
    seeds.forEach((seed, n) => {
      const z = new TorchGenerator(seed).randn(shape);
      eps.set(z, n * d);
      for (let i = 0; i < d; i++) xt[n * d + i] = sqA * x[i]! + sqB * z[i]!;
    });
    const xtT: Tensor = { dims: [N, ...shape], data: xt };
    const conds: CondRef[] = seeds.map(() => cond);
    const out = single
      ? await denoiser.predict(xtT, level, conds)
      : await denoiser.predict(concatBatch([xtT, xtT]), level, [...conds, ...seeds.map(() => null)]);
    const le = new Float64Array(N);
    const lx = new Float64Array(N);
    for (let n = 0; n < N; n++) {
      const oc = n * d;
      const ou = (N + n) * d;
      let acc = 0;
      for (let i = 0; i < d; i++) {
        const c = out.data[oc + i]!;
        const e = single ? c : out.data[ou + i]! + s * (c - out.data[ou + i]!);
        const r = e - eps[oc + i]!;
        acc += r * r;
      }
      le[n] = acc;
      lx[n] = ((1 - a) / a) * acc;
    }
    lossEps.push(le);
    lossX0.push(lx);
  }
  return { lossEps: summarize(lossEps), lossX0: summarize(lossX0) };
}
