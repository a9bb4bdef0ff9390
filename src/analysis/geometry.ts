/**
 * Dodson & Gao's geometric picture of memorization (SPEC §5.1–5.5): posterior concentration m_σ
 * and the effective number of contributors, Gaussian-shell coverage C_σ, the linearity residual
 * ‖D − D_lin‖/‖D‖, the per-noise-level memorization rate (ratio test), the generalization gap,
 * and the map of the three noise regimes. Also {@link denoiserFn}, which turns any ε-predicting
 * {@link Denoiser} into a denoiser D(y;σ) in the variance-exploding scale of SPEC §0.
 *
 * Conventions shared by every function here:
 * - Noisy inputs are `y = x + σ·z` (VE scale, SPEC §0) with ONE draw
 *   `z = new TorchGenerator(seed).randn([m, ...shape])` per call, reused for every σ of the grid
 *   (common random numbers: the curves against σ are smooth and differences between σ are not
 *   Monte-Carlo noise). `y` is formed in float64 and rounded to float32 once.
 * - σ grids must be finite and > 0 (use {@link logSigmaGrid}); results are columns, one entry
 *   per σ in the order given.
 * - Rows are processed in batches (`batch`, default 256) so memory stays bounded at 12,000 ×
 *   784; heavy math runs in onnxruntime graphs (the empirical denoiser's GEMMs, the coverage
 *   graph below, {@link NearestIndex}); JS only does per-row bookkeeping.
 */
import type { CondRef, Denoiser } from '../denoisers/denoiser.ts';
import type { EmpiricalDenoiser } from '../denoisers/empirical.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { type Session, createSession } from '../graph/session.ts';
import { NearestIndex } from '../metrics/nearest.ts';
import { TorchGenerator } from '../random/torch.ts';
import { alphaBars as alphaBarsOf, betas } from '../schedules/betas.ts';
import { type SchedulerConfig, type SchedulerConfigInput, parseSchedulerConfig } from '../schedules/config.ts';
import { type Tensor, assertFinite, numel } from '../tensor/tensor.ts';
import { quantileSorted } from './correlation.ts';

/** A denoiser in the VE scale: D(y;σ) for a batch `y` `[B, ...shape]` (SPEC §0, §5). */
export type DenoiseFn = (y: Tensor, sigma: number) => Promise<Tensor>;

const DEFAULT_BATCH = 256;
const U32 = 2 ** -24;
const U64 = 2 ** -53;
/** Safety factor of the float GEMM error estimate (the calibration of `empirical.ts`). */
const ERR_C = 16;

// ---------------------------------------------------------------------------------------------
// shared helpers

/**
 * Log-spaced noise levels σ_k = lo·(hi/lo)^{k/(n−1)}, ascending, endpoints exact (SPEC §5: "σ on
 * a log grid"). Defaults lo = 0.002, hi = 80 (EDM's σ_min, σ_max), n = 40.
 */
export function logSigmaGrid(lo = 0.002, hi = 80, n = 40): number[] {
  if (!(Number.isFinite(lo) && lo > 0)) throw new Error(`logSigmaGrid: lo must be finite and > 0, got ${lo}`);
  if (!(Number.isFinite(hi) && hi > lo)) throw new Error(`logSigmaGrid: hi must be finite and > lo = ${lo}, got ${hi}`);
  if (!Number.isInteger(n) || n < 2) throw new Error(`logSigmaGrid: n must be an integer ≥ 2, got ${n}`);
  const a = Math.log(lo);
  const b = Math.log(hi);
  const out = Array.from({ length: n }, (_, k) => Math.exp(a + ((b - a) * k) / (n - 1)));
  out[0] = lo;
  out[n - 1] = hi;
  return out;
}

function checkSigmas(who: string, sigmas: readonly number[]): void {
  if (sigmas.length === 0) throw new Error(`${who}: sigmas is empty; expected at least one σ > 0 (see logSigmaGrid)`);
  sigmas.forEach((s, i) => {
    if (!(Number.isFinite(s) && s > 0)) throw new Error(`${who}: sigmas[${i}] must be finite and > 0, got ${s}`);
  });
}

function checkBatch(who: string, batch: number | undefined): number {
  const b = batch ?? DEFAULT_BATCH;
  if (!Number.isInteger(b) || b < 1) throw new Error(`${who}: batch must be a positive integer, got ${b}`);
  return b;
}

function checkImages(who: string, name: string, x: Tensor, minRows = 1): { m: number; d: number } {
  if (x.dims.length < 2) throw new Error(`${who}: ${name} must be [n, ...shape], got [${x.dims.join(', ')}]`);
  const m = x.dims[0]!;
  if (m < minRows) throw new Error(`${who}: ${name} needs at least ${minRows} row${minRows > 1 ? 's' : ''}, got ${m}`);
  assertFinite(`${who}: ${name}`, x);
  return { m, d: numel(x.dims.slice(1)) };
}

function sameShape(a: Tensor, b: Tensor): boolean {
  return a.dims.length === b.dims.length && a.dims.every((v, i) => i === 0 || v === b.dims[i]);
}

/** The standard normal draw z `[m, ...shape]` used for `x` (see the module comment). */
function noiseFor(x: Tensor, seed: number): Float32Array {
  return new TorchGenerator(seed).randn(x.dims);
}

/** Rows [r0, r1) of y = x + σ·z as a float32 tensor (computed in float64, rounded once). */
function noisyRows(x: Tensor, z: Float32Array, r0: number, r1: number, sigma: number): Tensor {
  const d = numel(x.dims.slice(1));
  const out = new Float32Array((r1 - r0) * d);
  const o = r0 * d;
  for (let k = 0; k < out.length; k++) out[k] = x.data[o + k]! + sigma * z[o + k]!;
  return { dims: [r1 - r0, ...x.dims.slice(1)], data: out };
}

function median(v: ArrayLike<number>): number {
  return quantileSorted(Float64Array.from(v).sort(), 0.5);
}

function mean(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  return v.length === 0 ? NaN : s / v.length;
}

function checkDenoised(who: string, D: Tensor, rows: number, d: number): void {
  if (D.data.length !== rows * d) throw new Error(`${who}: the denoiser returned ${D.data.length} values for ${rows} rows of ${d}; expected ${rows * d}`);
  assertFinite(`${who}: denoised estimate`, D);
}

// ---------------------------------------------------------------------------------------------
// §5.1 posterior concentration

/** Options of {@link posteriorStats}. */
export interface PosteriorStatsOptions {
  /** Noise levels σ (> 0). */
  readonly sigmas: readonly number[];
  /** Seed of the noise draw z (see the module comment). */
  readonly seed: number;
  /**
   * For training inputs: the training index of each row of `x` (its source image). When given,
   * {@link PosteriorStats.sourceRecovery} is the fraction of rows whose arg-max weight is the
   * source or an exact duplicate of it (duplicated training images count as recovered).
   */
  readonly sourceIndex?: ArrayLike<number>;
  /** Condition of each row (default: all `null`, the whole training set). */
  readonly cond?: readonly CondRef[];
  /** Rows per call (default 256). */
  readonly batch?: number;
}

/** Posterior statistics per σ (SPEC §5.1), one entry per σ. */
export interface PosteriorStats {
  readonly sigma: number[];
  /** m_σ = mean over inputs of max_i w_i(y,σ). */
  readonly mSigma: number[];
  /** Mean over inputs of the effective number of contributors 1/Σ_i w_i². */
  readonly effectiveCount: number[];
  /** Median over inputs of 1/Σ_i w_i² (the mean is dominated by diffuse rows). */
  readonly effectiveCountMedian: number[];
  /** Fraction of inputs whose arg-max is their source image; `null` without `sourceIndex`. */
  readonly sourceRecovery: number[] | null;
  /** Number of inputs. */
  readonly count: number;
}

/**
 * Posterior concentration m_σ = E[max_i w_i(y,σ)], the mean and median effective number of
 * contributors 1/Σw², and (for training inputs) how often the arg-max is the source image, for
 * `y = x + σz` (SPEC §5.1, weights of §2.1). Computed by the exact empirical denoiser's
 * `posterior` (float32 / float64 / exact paths picked by its logit-error bound). Pass training
 * rows with `sourceIndex` for the "train" curve and test images for the "test" curve.
 */
export async function posteriorStats(den: EmpiricalDenoiser, x: Tensor, opts: PosteriorStatsOptions): Promise<PosteriorStats> {
  const who = 'posteriorStats';
  checkSigmas(who, opts.sigmas);
  const batch = checkBatch(who, opts.batch);
  const { m, d } = checkImages(who, 'x', x);
  if (x.dims.length !== den.shape.length + 1 || den.shape.some((v, i) => v !== x.dims[i + 1])) throw new Error(`${who}: x must be [n, ${den.shape.join(', ')}] (the denoiser's shape), got [${x.dims.join(', ')}]`);
  const src = opts.sourceIndex;
  if (src !== undefined) {
    if (src.length !== m) throw new Error(`${who}: sourceIndex must have one entry per row of x (${m}), got ${src.length}`);
    for (let i = 0; i < m; i++) {
      const s = src[i]!;
      if (!Number.isInteger(s) || s < 0 || s >= den.n) throw new Error(`${who}: sourceIndex[${i}] = ${s} is not a training index in [0, ${den.n})`);
    }
  }
  const cond = opts.cond ?? new Array<CondRef>(m).fill(null);
  if (cond.length !== m) throw new Error(`${who}: cond must have one entry per row of x (${m}), got ${cond.length}`);
  const z = noiseFor(x, opts.seed);
  const X = den.X;
  const out = { sigma: [...opts.sigmas], mSigma: [] as number[], effectiveCount: [] as number[], effectiveCountMedian: [] as number[], sourceRecovery: src === undefined ? null : ([] as number[]), count: m };
  for (const sigma of opts.sigmas) {
    const maxw = new Float64Array(m);
    const neff = new Float64Array(m);
    let hit = 0;
    for (let r0 = 0; r0 < m; r0 += batch) {
      const r1 = Math.min(m, r0 + batch);
      const p = await den.posterior(noisyRows(x, z, r0, r1, sigma), sigma, cond.slice(r0, r1));
      maxw.set(p.maxWeight, r0);
      neff.set(p.effectiveCount, r0);
      if (src !== undefined) {
        for (let k = 0; k < r1 - r0; k++) {
          const a = p.argmax[k]!;
          const s = src[r0 + k]!;
          if (a === s) hit++;
          else {
            // an exact duplicate of the source counts as the source
            let same = true;
            for (let j = 0; j < d && same; j++) same = X[a * d + j] === X[s * d + j];
            if (same) hit++;
          }
        }
      }
    }
    out.mSigma.push(mean(maxw));
    out.effectiveCount.push(mean(neff));
    out.effectiveCountMedian.push(median(neff));
    out.sourceRecovery?.push(hit / m);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// §5.2 Gaussian-shell coverage

/** Options of {@link ShellCoverageIndex.create}. */
export interface ShellIndexOptions {
  /**
   * Element type of the distance GEMM (default `'float32'`). `'float64'` is ≈ 4× slower and
   * makes {@link ShellCoverage.uncertain} vanish in practice.
   */
  readonly dtype?: 'float32' | 'float64';
  /** onnxruntime intra-op threads (default: `MEMSCOPE_THREADS` or 2). */
  readonly threads?: number;
}

/** Per-row shell deviations of a batch (see {@link ShellCoverageIndex.deviations}). */
export interface ShellDeviations {
  /** min_i |‖y − x_i‖ − σ√d| per row. */
  readonly deviation: Float64Array;
  /** An estimate of the float error of each deviation (see the class comment). */
  readonly errorBound: Float64Array;
}

/**
 * The training set of SPEC §5.2 as one onnxruntime graph that returns, for noisy inputs y and a
 * shell radius r = σ√d, the distance to the nearest shell `min_i |‖y − x_i‖ − r|`:
 * distances by GEMM on mean-centred data (‖y'‖² − 2⟨y', x'_i⟩ + ‖x'_i‖², clamped at 0, Sqrt),
 * then `ReduceMin_i |dist − r|`. r is an input, so one session serves every σ; the caller
 * compares the deviation with the tolerance κ·σ/√2 (so one run serves every κ).
 *
 * Precision: the expansion in float32 (unit round-off u = 2⁻²⁴) has an absolute error on ‖y−x_i‖²
 * of about e₂ = 16·u·(‖y'‖ + max_i‖x'_i‖)² (the same calibration as the empirical denoiser's
 * logit bound; centring keeps the norms small), hence on the distances near the shell radius
 * δ = min(√e₂, e₂/(r − tol)). A row is reported as uncertain when its deviation is within δ of
 * the tolerance. On centred Fashion-MNIST (‖x'‖ ≲ 20) e₂ ≈ 1e-3 in float32: decisions are
 * exact unless the shell tolerance is below ~1e-3, i.e. σ ≲ 1e-3; use `dtype: 'float64'` there.
 */
export class ShellCoverageIndex {
  private constructor(
    private readonly session: Session,
    /** Number of training images n. */
    readonly n: number,
    /** Dimension d. */
    readonly d: number,
    /** Per-sample shape of the training images. */
    readonly shape: readonly number[],
    private readonly mu: Float64Array,
    private readonly maxNorm: number,
    /** Element type of the distance graph. */
    readonly dtype: 'float32' | 'float64',
  ) {}

  /** Build the graph over training images `train` `[n, ...shape]` (centred by their mean). */
  static async create(train: Tensor, opts: ShellIndexOptions = {}): Promise<ShellCoverageIndex> {
    const who = 'ShellCoverageIndex';
    const { m: n, d } = checkImages(who, 'train', train);
    const dtype = opts.dtype ?? 'float32';
    if (dtype !== 'float32' && dtype !== 'float64') throw new Error(`${who}: dtype must be 'float32' or 'float64', got ${String(dtype)}`);
    const mu = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let j = 0, o = i * d; j < d; j++) mu[j]! += train.data[o + j]!;
    for (let j = 0; j < d; j++) mu[j]! /= n;
    const f64 = dtype === 'float64';
    const XT = f64 ? new Float64Array(d * n) : new Float32Array(d * n); // −2·x'ᵀ  [d, n]
    const xn = f64 ? new Float64Array(n) : new Float32Array(n); // ‖x'_i‖²
    let mx = 0;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0, o = i * d; j < d; j++) {
        const v = f64 ? train.data[o + j]! - mu[j]! : Math.fround(train.data[o + j]! - mu[j]!);
        XT[j * n + i] = -2 * v; // exact: a power-of-two scaling
        s += v * v;
      }
      xn[i] = s;
      if (s > mx) mx = s;
    }
    const b = new GraphBuilder({ name: 'shell_coverage' });
    const y = b.input('y', dtype, ['B', d]);
    const r = b.input('r', dtype, [1]);
    const yn = b.op('ReduceSumSquare', [y], { axes: [1], keepdims: 1 });
    const d2 = b.op('Add', [b.op('Add', [b.op('MatMul', [y, b.initializer('XT', XT, [d, n])]), yn]), b.initializer('xn', xn, [n])]);
    const dist = b.op('Sqrt', [b.op('Relu', [d2])]);
    const dev = b.op('ReduceMin', [b.op('Abs', [b.op('Sub', [dist, r])])], { axes: [1], keepdims: 0 });
    b.output(dev, dtype, ['B'], 'dev');
    const session = await createSession(b.toBytes(), opts.threads === undefined ? {} : { threads: opts.threads });
    return new ShellCoverageIndex(session, n, d, train.dims.slice(1), mu, Math.sqrt(mx), dtype);
  }

  /**
   * For each row of `y` `[B, ...shape]`: min_i |‖y − x_i‖ − σ√d| and its error estimate δ for the
   * tolerance `tol` (default 3σ/√2). σ > 0.
   */
  async deviations(y: Tensor, sigma: number, tol = (3 * sigma) / Math.SQRT2): Promise<ShellDeviations> {
    const { d } = this;
    if (y.dims.length < 2 || y.data.length !== y.dims[0]! * d) throw new Error(`shell coverage: y must be [B, ${this.shape.join(', ')}], got [${y.dims.join(', ')}]`);
    if (!(Number.isFinite(sigma) && sigma > 0)) throw new Error(`shell coverage: σ must be finite and > 0, got ${sigma}`);
    const B = y.dims[0]!;
    const f64 = this.dtype === 'float64';
    const yc = f64 ? new Float64Array(B * d) : new Float32Array(B * d);
    const errorBound = new Float64Array(B);
    const rad = sigma * Math.sqrt(d);
    const u = f64 ? U64 : U32;
    for (let k = 0; k < B; k++) {
      let s = 0;
      for (let j = 0, o = k * d; j < d; j++) {
        const v = y.data[o + j]! - this.mu[j]!;
        yc[o + j] = v;
        s += v * v;
      }
      const e2 = ERR_C * u * (Math.sqrt(s) + this.maxNorm) ** 2;
      errorBound[k] = rad > tol ? Math.min(Math.sqrt(e2), e2 / (rad - tol)) : Math.sqrt(e2);
    }
    const res = await this.session.runRaw({ y: { type: this.dtype, dims: [B, d], data: yc }, r: { type: this.dtype, dims: [1], data: f64 ? Float64Array.of(rad) : Float32Array.of(rad) } }, ['dev']);
    return { deviation: Float64Array.from(res['dev']!.data as Float32Array | Float64Array), errorBound };
  }

  /** Release the onnxruntime session. */
  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** Options of {@link shellCoverage}. */
export interface ShellCoverageOptions extends ShellIndexOptions {
  /** Noise levels σ (> 0). */
  readonly sigmas: readonly number[];
  /** Seed of the noise draw z (see the module comment). */
  readonly seed: number;
  /** Shell half-thickness in units of σ/√2 (SPEC §5.2 default κ = 3). */
  readonly kappa?: number;
  /** Rows per call (default 256). */
  readonly batch?: number;
}

/** Gaussian-shell coverage per σ (SPEC §5.2), one entry per σ. */
export interface ShellCoverage {
  readonly sigma: number[];
  /** C_σ: fraction of noisy test inputs inside some training shell. */
  readonly coverage: number[];
  /** Fraction of rows whose decision is within the float error estimate of the tolerance. */
  readonly uncertain: number[];
  /** Median over rows of min_i |‖y − x_i‖ − σ√d| / (σ/√2) (covered ⇔ ≤ κ). */
  readonly medianDeviation: number[];
  /** The κ used. */
  readonly kappa: number;
  /** Dimension d (the shell radius is σ√d). */
  readonly d: number;
  /** Number of test inputs. */
  readonly count: number;
}

/**
 * Gaussian-shell coverage C_σ (SPEC §5.2): the fraction of noisy test inputs `y = x_test + σz`
 * with `|‖y − x_i‖ − σ√d| ≤ κ·σ/√2` for some training image x_i (κ default 3) — the regions the
 * training loss ever supervised at that σ. `train` is a tensor (an index is built and released
 * here) or a prebuilt {@link ShellCoverageIndex} (reuse it across calls; see its precision note).
 */
export async function shellCoverage(train: Tensor | ShellCoverageIndex, test: Tensor, opts: ShellCoverageOptions): Promise<ShellCoverage> {
  const who = 'shellCoverage';
  checkSigmas(who, opts.sigmas);
  const batch = checkBatch(who, opts.batch);
  const kappa = opts.kappa ?? 3;
  if (!(Number.isFinite(kappa) && kappa >= 0)) throw new Error(`${who}: kappa must be finite and ≥ 0, got ${kappa}`);
  const { m } = checkImages(who, 'test', test);
  const own = !(train instanceof ShellCoverageIndex);
  if (own) checkImages(who, 'train', train);
  if (own && !sameShape(train, test)) throw new Error(`${who}: train [${train.dims.join(', ')}] and test [${test.dims.join(', ')}] have different image shapes`);
  const opt: ShellIndexOptions = { ...(opts.dtype === undefined ? {} : { dtype: opts.dtype }), ...(opts.threads === undefined ? {} : { threads: opts.threads }) };
  const index = own ? await ShellCoverageIndex.create(train, opt) : train;
  try {
    if (!sameShape({ dims: [1, ...index.shape], data: new Float32Array(0) }, test)) throw new Error(`${who}: test images [${test.dims.join(', ')}] do not match the index's shape [${index.shape.join(', ')}]`);
    const z = noiseFor(test, opts.seed);
    const out: ShellCoverage = { sigma: [...opts.sigmas], coverage: [], uncertain: [], medianDeviation: [], kappa, d: index.d, count: m };
    for (const sigma of opts.sigmas) {
      const tol = (kappa * sigma) / Math.SQRT2;
      const dev = new Float64Array(m);
      let covered = 0;
      let unsure = 0;
      for (let r0 = 0; r0 < m; r0 += batch) {
        const r1 = Math.min(m, r0 + batch);
        const res = await index.deviations(noisyRows(test, z, r0, r1, sigma), sigma, tol);
        for (let k = 0; k < r1 - r0; k++) {
          const v = res.deviation[k]!;
          dev[r0 + k] = v / (sigma / Math.SQRT2);
          if (v <= tol) covered++;
          if (Math.abs(v - tol) <= res.errorBound[k]!) unsure++;
        }
      }
      out.coverage.push(covered / m);
      out.uncertain.push(unsure / m);
      out.medianDeviation.push(median(dev));
    }
    return out;
  } finally {
    if (own) await index.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// §5.3 linearity residual

/** Options shared by the σ sweeps that take a {@link DenoiseFn}. */
export interface SweepOptions {
  /** Noise levels σ (> 0). */
  readonly sigmas: readonly number[];
  /** Seed of the noise draw z (see the module comment). */
  readonly seed: number;
  /** Rows per denoiser call (default 256). */
  readonly batch?: number;
}

/** Linearity residual per σ (SPEC §5.3), one entry per σ. */
export interface LinearityResidual {
  readonly sigma: number[];
  /** Mean over inputs of ‖D(y;σ) − D_lin(y;σ)‖ / ‖D(y;σ)‖. */
  readonly residual: number[];
  /** Median over inputs of the same ratio. */
  readonly residualMedian: number[];
  readonly count: number;
}

/**
 * The linearity residual ‖D(y;σ) − D_lin(y;σ)‖/‖D(y;σ)‖ (SPEC §5.3: large σ, "the denoiser is near
 * linear Gaussian"), mean and median over `y = x + σz`. `D` is typically the empirical D* (or a
 * trained model through {@link denoiserFn}), `dLin` the Gaussian denoiser's `denoise`. The norm
 * is of the uncentred D, as the SPEC writes it (at large σ, ‖D‖ ≈ ‖μ‖). A row with ‖D‖ = 0 gives
 * 0 when D_lin = D too, +∞ otherwise.
 */
export async function linearityResidual(D: DenoiseFn, dLin: DenoiseFn, x: Tensor, opts: SweepOptions): Promise<LinearityResidual> {
  const who = 'linearityResidual';
  checkSigmas(who, opts.sigmas);
  const batch = checkBatch(who, opts.batch);
  const { m, d } = checkImages(who, 'x', x);
  const z = noiseFor(x, opts.seed);
  const out: LinearityResidual = { sigma: [...opts.sigmas], residual: [], residualMedian: [], count: m };
  for (const sigma of opts.sigmas) {
    const ratio = new Float64Array(m);
    for (let r0 = 0; r0 < m; r0 += batch) {
      const r1 = Math.min(m, r0 + batch);
      const y = noisyRows(x, z, r0, r1, sigma);
      const a = await D(y, sigma);
      checkDenoised(`${who} (D)`, a, r1 - r0, d);
      const b = await dLin(y, sigma);
      checkDenoised(`${who} (D_lin)`, b, r1 - r0, d);
      for (let k = 0; k < r1 - r0; k++) {
        let num = 0;
        let den = 0;
        for (let j = k * d, e = j + d; j < e; j++) {
          const av = a.data[j]!;
          num += (av - b.data[j]!) ** 2;
          den += av * av;
        }
        ratio[r0 + k] = den > 0 ? Math.sqrt(num / den) : num > 0 ? Infinity : 0;
      }
    }
    out.residual.push(mean(ratio));
    out.residualMedian.push(median(ratio));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// §5.4 per-noise-level memorization rate

/** Options of {@link memorizationRate}. */
export interface MemorizationRateOptions extends SweepOptions {
  /** Ratio-test threshold: memorized when ‖x̂ − NN1‖/‖x̂ − NN2‖ < threshold (SPEC §5.4 default 1/3). */
  readonly threshold?: number;
}

/** Per-noise-level memorization rate (SPEC §5.4), one entry per σ. */
export interface MemorizationRate {
  readonly sigma: number[];
  /** Fraction of test images whose denoised estimate passes the ratio test. */
  readonly rate: number[];
  /** Median over test images of ‖x̂ − NN1‖/‖x̂ − NN2‖. */
  readonly medianRatio: number[];
  /** Per σ, the ratio of every test image. */
  readonly ratio: Float64Array[];
  /** Per σ, the nearest training image of every denoised estimate. */
  readonly nearest: Int32Array[];
  readonly threshold: number;
  readonly count: number;
}

/**
 * Per-noise-level memorization rate (SPEC §5.4): for each test image and σ, x̂ = D(x + σz; σ)
 * (one denoising call), NN1/NN2 = its nearest and second-nearest training images, memorized when
 * ‖x̂ − NN1‖/‖x̂ − NN2‖ < threshold (default 1/3, strict). Candidates come from a
 * {@link NearestIndex} (float32 GEMM + TopK, k = 3); the distances of the candidates are then
 * recomputed exactly in float64 and re-sorted, so an exact copy gives ratio 0 and an equidistant
 * point ratio 1 up to float32 rounding of x̂. When NN2 is at distance 0 (x̂ equals a duplicated
 * image) the ratio is 0, as in `CopyDetector`. The index over `train` (≥ 2 images) is built and
 * released here.
 */
export async function memorizationRate(denoise: DenoiseFn, test: Tensor, train: Tensor, opts: MemorizationRateOptions): Promise<MemorizationRate> {
  const who = 'memorizationRate';
  checkSigmas(who, opts.sigmas);
  const batch = checkBatch(who, opts.batch);
  const thr = opts.threshold ?? 1 / 3;
  if (!(Number.isFinite(thr) && thr > 0)) throw new Error(`${who}: threshold must be finite and > 0, got ${thr}`);
  const { m, d } = checkImages(who, 'test', test);
  checkImages(who, 'train', train, 2);
  if (!sameShape(train, test)) throw new Error(`${who}: train [${train.dims.join(', ')}] and test [${test.dims.join(', ')}] have different image shapes`);
  const index = await NearestIndex.create(train);
  try {
    const z = noiseFor(test, opts.seed);
    const out: MemorizationRate = { sigma: [...opts.sigmas], rate: [], medianRatio: [], ratio: [], nearest: [], threshold: thr, count: m };
    for (const sigma of opts.sigmas) {
      const ratio = new Float64Array(m);
      const nn1 = new Int32Array(m);
      let hits = 0;
      for (let r0 = 0; r0 < m; r0 += batch) {
        const r1 = Math.min(m, r0 + batch);
        const xh = await denoise(noisyRows(test, z, r0, r1, sigma), sigma);
        checkDenoised(who, xh, r1 - r0, d);
        const rt = await ratioTestRows(index, train, xh.data, r1 - r0);
        ratio.set(rt.ratio, r0);
        nn1.set(rt.nearest, r0);
        for (const r of rt.ratio) if (r < thr) hits++;
      }
      out.rate.push(hits / m);
      out.medianRatio.push(median(ratio));
      out.ratio.push(ratio);
      out.nearest.push(nn1);
    }
    return out;
  } finally {
    await index.dispose();
  }
}

/** Ratio-test result per row: ‖x̂ − NN1‖/‖x̂ − NN2‖ (float64) and the index of NN1. */
export interface RatioTest {
  readonly ratio: Float64Array;
  readonly nearest: Int32Array;
}

/**
 * The ratio test of SPEC §5.4 for `rows` flat images `xh` against `train` (the images `index` was
 * built on): candidates from the float32 {@link NearestIndex} (top 3), distances recomputed in
 * float64 and re-sorted (ties by index); ratio 0 when NN2 is at distance 0.
 */
export async function ratioTestRows(index: NearestIndex, train: Tensor, xh: Float32Array, rows: number): Promise<RatioTest> {
  const n = train.dims[0]!;
  const d = train.data.length / n;
  const k = Math.min(3, n);
  const X = train.data;
  const nb = await index.query({ dims: [rows, d], data: xh.subarray(0, rows * d) }, k);
  const ratio = new Float64Array(rows);
  const nearest = new Int32Array(rows);
  for (let q = 0; q < rows; q++) {
    const cand: { i: number; d2: number }[] = [];
    for (let c = 0; c < k; c++) {
      const i = nb.index[q * k + c]!;
      let s = 0;
      for (let j = 0, o = i * d, p = q * d; j < d; j++) s += (xh[p + j]! - X[o + j]!) ** 2;
      cand.push({ i, d2: s });
    }
    cand.sort((a, b) => a.d2 - b.d2 || a.i - b.i);
    ratio[q] = cand[1]!.d2 > 0 ? Math.sqrt(cand[0]!.d2 / cand[1]!.d2) : 0;
    nearest[q] = cand[0]!.i;
  }
  return { ratio, nearest };
}

/** Trajectory-level memorization (SPEC §5.4): the ratio test on finished samples. */
export interface TrajectoryMemorization extends RatioTest {
  /** Fraction of samples with ratio < threshold. */
  readonly rate: number;
  readonly medianRatio: number;
  readonly threshold: number;
  readonly count: number;
}

/**
 * Trajectory-level memorization rate (SPEC §5.4): the same ratio test as {@link memorizationRate}
 * on samples from full generation `[R, ...shape]` against `train` (≥ 2 images, same image shape).
 * Default threshold 1/3. Throws naming the argument on shape mismatch.
 */
export async function trajectoryMemorization(samples: Tensor, train: Tensor, opts: { threshold?: number; batch?: number } = {}): Promise<TrajectoryMemorization> {
  const who = 'trajectoryMemorization';
  const thr = opts.threshold ?? 1 / 3;
  if (!(Number.isFinite(thr) && thr > 0)) throw new Error(`${who}: threshold must be finite and > 0, got ${thr}`);
  const batch = checkBatch(who, opts.batch);
  const { m, d } = checkImages(who, 'samples', samples);
  checkImages(who, 'train', train, 2);
  if (!sameShape(train, samples)) throw new Error(`${who}: train [${train.dims.join(', ')}] and samples [${samples.dims.join(', ')}] have different image shapes`);
  const index = await NearestIndex.create(train);
  try {
    const ratio = new Float64Array(m);
    const nearest = new Int32Array(m);
    for (let r0 = 0; r0 < m; r0 += batch) {
      const r1 = Math.min(m, r0 + batch);
      const rt = await ratioTestRows(index, train, samples.data.subarray(r0 * d, r1 * d), r1 - r0);
      ratio.set(rt.ratio, r0);
      nearest.set(rt.nearest, r0);
    }
    let hits = 0;
    for (const r of ratio) if (r < thr) hits++;
    return { ratio, nearest, rate: hits / m, medianRatio: median(ratio), threshold: thr, count: m };
  } finally {
    await index.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// §5.5 generalization gap

/** Generalization gap per σ (SPEC §5.5), one entry per σ; errors are per pixel. */
export interface GeneralizationGap {
  readonly sigma: number[];
  /** Mean over training images of ‖D(x+σz;σ) − x‖²/d (per-pixel MSE). */
  readonly trainMse: number[];
  /** Mean over test images of ‖D(x+σz;σ) − x‖²/d. */
  readonly testMse: number[];
  /** testMse − trainMse. */
  readonly gap: number[];
  /** Dimension d (multiply an MSE by d for the total squared error E‖D − x‖²). */
  readonly d: number;
}

/**
 * The generalization gap of SPEC §5.5: E‖D(x+σz;σ) − x‖² for training vs test images against σ,
 * reported PER PIXEL (divided by d; `d` is returned to convert). Both sets draw z from the same
 * `seed` (row k of each set gets the same z when the sets have the same size). A memorizing
 * denoiser has train MSE ≪ test MSE at medium σ.
 */
export async function generalizationGap(denoise: DenoiseFn, train: Tensor, test: Tensor, opts: SweepOptions): Promise<GeneralizationGap> {
  const who = 'generalizationGap';
  checkSigmas(who, opts.sigmas);
  const batch = checkBatch(who, opts.batch);
  const { d } = checkImages(who, 'train', train);
  checkImages(who, 'test', test);
  if (!sameShape(train, test)) throw new Error(`${who}: train [${train.dims.join(', ')}] and test [${test.dims.join(', ')}] have different image shapes`);
  const zTrain = noiseFor(train, opts.seed);
  const zTest = noiseFor(test, opts.seed);
  const mse = async (x: Tensor, z: Float32Array, sigma: number): Promise<number> => {
    const m = x.dims[0]!;
    let s = 0;
    for (let r0 = 0; r0 < m; r0 += batch) {
      const r1 = Math.min(m, r0 + batch);
      const D = await denoise(noisyRows(x, z, r0, r1, sigma), sigma);
      checkDenoised(who, D, r1 - r0, d);
      for (let j = 0, o = r0 * d; j < D.data.length; j++) s += (D.data[j]! - x.data[o + j]!) ** 2;
    }
    return s / (m * d);
  };
  const out: GeneralizationGap = { sigma: [...opts.sigmas], trainMse: [], testMse: [], gap: [], d };
  for (const sigma of opts.sigmas) {
    const a = await mse(train, zTrain, sigma);
    const b = await mse(test, zTest, sigma);
    out.trainMse.push(a);
    out.testMse.push(b);
    out.gap.push(b - a);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// §5.3 regime map

/** Thresholds of {@link regimeMap}. */
export interface RegimeOptions {
  /** Small regime where C_σ < coverageMin (default 0.5). */
  readonly coverageMin?: number;
  /** Large regime where m_σ < concentrationMin (default 0.5). */
  readonly concentrationMin?: number;
}

/** The regime of one grid point. */
export type Regime = 'small' | 'medium' | 'large';

/** The three noise regimes on a σ grid (SPEC §5.3). */
export interface RegimeMap {
  /** [smallest, largest] grid σ labelled small (uncovered), or null. */
  readonly small: [number, number] | null;
  /** [smallest, largest] grid σ labelled medium (covered and concentrated: the danger zone), or null. */
  readonly medium: [number, number] | null;
  /** [smallest, largest] grid σ labelled large (diffuse posterior), or null. */
  readonly large: [number, number] | null;
  /** Label of every grid point, in ascending σ. */
  readonly labels: Regime[];
  /** The grid σ, ascending. */
  readonly sigma: number[];
  /**
   * Whether the labels read small…, medium…, large… in ascending σ (each regime one interval,
   * no overlaps). False on noisy or non-monotone curves: the intervals then only span each label.
   */
  readonly contiguous: boolean;
  /**
   * Interpolated boundaries (linear in log σ between grid points): `coverage` = the first σ where
   * C_σ rises to coverageMin, `concentration` = the first σ where m_σ falls below
   * concentrationMin; null when the curve never crosses.
   */
  readonly boundaries: { readonly coverage: number | null; readonly concentration: number | null };
  readonly coverageMin: number;
  readonly concentrationMin: number;
}

/**
 * Map the σ grid to Dodson & Gao's three regimes (SPEC §5.3) from the coverage C_σ
 * ({@link shellCoverage}) and the concentration m_σ of TEST inputs ({@link posteriorStats}).
 * Rule, per grid point: **small** when C_σ < coverageMin (the training loss never supervised these
 * inputs: no memorization possible); otherwise **large** when m_σ < concentrationMin (diffuse
 * posterior, near-linear denoiser); otherwise **medium** (covered and concentrated: the danger
 * zone). Coverage takes precedence: an uncovered point is small whatever m_σ. The defaults 0.5
 * read "more likely than not": a noisy test input is more likely than not inside a training
 * shell, and its largest posterior weight is more than all the others together (one training
 * image dominates D*). Points are sorted by σ first; the arrays must have equal lengths.
 */
export function regimeMap(sigma: readonly number[], coverage: readonly number[], mSigma: readonly number[], opts: RegimeOptions = {}): RegimeMap {
  const who = 'regimeMap';
  const cMin = opts.coverageMin ?? 0.5;
  const mMin = opts.concentrationMin ?? 0.5;
  if (!(Number.isFinite(cMin) && cMin >= 0 && cMin <= 1)) throw new Error(`${who}: coverageMin must be in [0, 1], got ${cMin}`);
  if (!(Number.isFinite(mMin) && mMin >= 0 && mMin <= 1)) throw new Error(`${who}: concentrationMin must be in [0, 1], got ${mMin}`);
  if (coverage.length !== sigma.length || mSigma.length !== sigma.length) {
    throw new Error(`${who}: sigma, coverage and mSigma must have equal lengths, got ${sigma.length}, ${coverage.length}, ${mSigma.length}`);
  }
  if (sigma.length === 0) throw new Error(`${who}: empty σ grid`);
  sigma.forEach((s, i) => {
    if (!(Number.isFinite(s) && s > 0)) throw new Error(`${who}: sigma[${i}] must be finite and > 0, got ${s}`);
    if (!Number.isFinite(coverage[i]!)) throw new Error(`${who}: coverage[${i}] is not finite (${coverage[i]})`);
    if (!Number.isFinite(mSigma[i]!)) throw new Error(`${who}: mSigma[${i}] is not finite (${mSigma[i]})`);
  });
  const order = Array.from(sigma, (_, i) => i).sort((a, b) => sigma[a]! - sigma[b]!);
  const s = order.map((i) => sigma[i]!);
  const c = order.map((i) => coverage[i]!);
  const mm = order.map((i) => mSigma[i]!);
  const labels: Regime[] = s.map((_, k) => (c[k]! < cMin ? 'small' : mm[k]! < mMin ? 'large' : 'medium'));
  const span = (r: Regime): [number, number] | null => {
    const ks = labels.flatMap((l, k) => (l === r ? [k] : []));
    return ks.length === 0 ? null : [s[ks[0]!]!, s[ks[ks.length - 1]!]!];
  };
  const rank: Record<Regime, number> = { small: 0, medium: 1, large: 2 };
  const contiguous = labels.every((l, k) => k === 0 || rank[l] >= rank[labels[k - 1]!]);
  const crossing = (v: number[], level: number, rising: boolean): number | null => {
    for (let k = 1; k < v.length; k++) {
      const a = v[k - 1]!;
      const b = v[k]!;
      const hit = rising ? a < level && b >= level : a >= level && b < level;
      if (!hit) continue;
      const la = Math.log(s[k - 1]!);
      const lb = Math.log(s[k]!);
      return Math.exp(la + ((level - a) / (b - a)) * (lb - la));
    }
    return null;
  };
  return {
    small: span('small'),
    medium: span('medium'),
    large: span('large'),
    labels,
    sigma: s,
    contiguous,
    boundaries: { coverage: crossing(c, cMin, true), concentration: crossing(mm, mMin, false) },
    coverageMin: cMin,
    concentrationMin: mMin,
  };
}

// ---------------------------------------------------------------------------------------------
// Denoiser → D(y;σ)

/** Maps ᾱ to the (possibly fractional) training timestep a trained model expects. */
export type TimestepOf = (alphaBar: number) => number;

/**
 * Where {@link denoiserFn} gets t from: a callback; an ᾱ table (`alphaBars[t]`, decreasing in
 * t); a diffusers scheduler config (its training ᾱ table); or `'unused'` for denoisers that ignore
 * t (the exact empirical, Gaussian and mixture denoisers), which then receive t = NaN.
 */
export type TimestepSource =
  | TimestepOf
  | { readonly alphaBars: ArrayLike<number>; readonly rounding?: 'interpolate' | 'nearest' }
  | { readonly config: SchedulerConfigInput | SchedulerConfig; readonly rounding?: 'interpolate' | 'nearest' }
  | 'unused';

/**
 * The timestep of ᾱ on a training schedule `alphaBars` (ᾱ_0 > ᾱ_1 > …, SPEC §0): with σ_t =
 * √((1−ᾱ_t)/ᾱ_t) and σ = √((1−ᾱ)/ᾱ), `'interpolate'` (default) inverts the piecewise-linear σ(t)
 * that diffusers' Euler scheduler uses for fractional t (so Euler's own timesteps map back
 * exactly); `'nearest'` returns the integer t whose σ_t is nearest in log σ. σ outside
 * [σ_0, σ_{T−1}] clamps to 0 or T − 1 (the model is then used outside its training range).
 */
export function timestepFromAlphaBars(alphaBars: ArrayLike<number>, rounding: 'interpolate' | 'nearest' = 'interpolate'): TimestepOf {
  const T = alphaBars.length;
  if (T < 1) throw new Error('timestepFromAlphaBars: alphaBars is empty');
  if (rounding !== 'interpolate' && rounding !== 'nearest') throw new Error(`timestepFromAlphaBars: rounding must be 'interpolate' or 'nearest', got ${String(rounding)}`);
  const sig = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    const a = alphaBars[t]!;
    if (!(a > 0 && a <= 1)) throw new Error(`timestepFromAlphaBars: alphaBars[${t}] = ${a} is not in (0, 1]`);
    sig[t] = Math.sqrt((1 - a) / a);
    if (t > 0 && !(sig[t]! > sig[t - 1]!)) throw new Error(`timestepFromAlphaBars: alphaBars must decrease strictly in t (ᾱ[${t - 1}] = ${alphaBars[t - 1]}, ᾱ[${t}] = ${a})`);
  }
  return (alphaBar: number): number => {
    if (!(alphaBar > 0 && alphaBar <= 1)) throw new Error(`timestepOf: ᾱ must be in (0, 1], got ${alphaBar}`);
    const s = Math.sqrt((1 - alphaBar) / alphaBar);
    if (s <= sig[0]!) return 0;
    if (s >= sig[T - 1]!) return T - 1;
    let lo = 0;
    let hi = T - 1; // sig[lo] < s < sig[hi]
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (sig[mid]! <= s) lo = mid;
      else hi = mid;
    }
    if (rounding === 'nearest') return Math.log(s) - Math.log(sig[lo]!) <= Math.log(sig[hi]!) - Math.log(s) ? lo : hi;
    return lo + (s - sig[lo]!) / (sig[hi]! - sig[lo]!);
  };
}

function resolveTimestep(time: TimestepSource): TimestepOf {
  if (time === 'unused') return () => NaN;
  if (typeof time === 'function') return time;
  if (typeof time === 'object' && time !== null && 'alphaBars' in time) return timestepFromAlphaBars(time.alphaBars, time.rounding ?? 'interpolate');
  if (typeof time === 'object' && time !== null && 'config' in time) {
    const c = parseSchedulerConfig(time.config, 'denoiserFn: config');
    const ab = alphaBarsOf(betas(c.beta_schedule, { numTrainTimesteps: c.num_train_timesteps, betaStart: c.beta_start, betaEnd: c.beta_end, trainedBetas: c.trained_betas }));
    return timestepFromAlphaBars(ab, time.rounding ?? 'interpolate');
  }
  throw new Error(`denoiserFn: time must be a timestepOf callback, { alphaBars }, { config } or 'unused', got ${String(time)}`);
}

/** Options of {@link denoiserFn}. */
export interface DenoiserFnOptions {
  /** Condition of every row (default `null`: unconditional). */
  readonly cond?: CondRef;
}

/**
 * Turn an ε-predicting {@link Denoiser} into D(y;σ) in the VE scale (SPEC §0): ᾱ = 1/(1+σ²),
 * x_t = √ᾱ·y, t = timestepOf(ᾱ), ε̂ = d.predict(x_t, {t, ᾱ}, cond), and
 * D = (x_t − √(1−ᾱ)·ε̂)/√ᾱ (computed in float64 per element). The level passed carries the exact
 * ᾱ of σ (not ᾱ_t of the rounded t), and σ itself where `d.sigmaRange` covers it (an EDM-trained
 * model then runs its D(x; σ) graph). σ must be > 0 (ᾱ = 1 has no ε parameterisation). Default
 * condition `null` (unconditional, SPEC §5 studies the unconditional model). A non-finite ε̂ is an
 * error naming σ and t (trained models given t = NaN by `'unused'` fail this way).
 */
export function denoiserFn(d: Denoiser, time: TimestepSource, opts: DenoiserFnOptions = {}): DenoiseFn {
  const timestepOf = resolveTimestep(time);
  const cond = opts.cond ?? null;
  const dn = numel(d.shape);
  return async (y: Tensor, sigma: number): Promise<Tensor> => {
    if (!(Number.isFinite(sigma) && sigma > 0)) throw new Error(`denoiserFn(${d.name}): σ must be finite and > 0, got ${sigma}`);
    if (y.dims.length !== d.shape.length + 1 || y.dims.slice(1).some((v, i) => v !== d.shape[i])) {
      throw new Error(`denoiserFn(${d.name}): y must be [B, ${d.shape.join(', ')}], got [${y.dims.join(', ')}]`);
    }
    const B = y.dims[0]!;
    const a = 1 / (1 + sigma * sigma);
    const sa = Math.sqrt(a);
    const sb = sigma * sa; // √(1−ᾱ) = σ·√ᾱ, without cancellation at small σ
    const xt = new Float32Array(B * dn);
    for (let i = 0; i < xt.length; i++) xt[i] = y.data[i]! * sa;
    const t = timestepOf(a);
    // a denoiser defined at every σ (closed forms, EDM-trained models) is evaluated at σ itself, not at a timestep of its grid
    const r = d.sigmaRange;
    const level = r !== undefined && sigma >= r[0] && sigma <= r[1] ? { t, alphaBar: a, sigma } : { t, alphaBar: a };
    const eps = await d.predict({ dims: [...y.dims], data: xt }, level, new Array<CondRef>(B).fill(cond));
    if (eps.data.length !== xt.length) throw new Error(`denoiserFn(${d.name}): predict returned ${eps.data.length} values, expected ${xt.length}`);
    for (let i = 0; i < eps.data.length; i++) {
      if (!Number.isFinite(eps.data[i]!)) {
        const hint = Number.isNaN(t) ? " (t = NaN from time 'unused': this denoiser needs a timestep source)" : '';
        throw new Error(`denoiserFn(${d.name}): non-finite ε̂ (${eps.data[i]}) at σ = ${sigma}, t = ${t}, flat index ${i}${hint}`);
      }
    }
    const out = new Float32Array(xt.length);
    for (let i = 0; i < out.length; i++) out[i] = (xt[i]! - sb * eps.data[i]!) / sa;
    return { dims: [...y.dims], data: out };
  };
}
