/**
 * The Dodson & Gao geometry study (SPEC §5.1–5.5) on the exact empirical denoiser D* of a training
 * set: posterior concentration m_σ and the effective number of contributors for noisy training and
 * test inputs, the Gaussian-shell coverage C_σ of test inputs, the three noise regimes, the
 * linearity residual ‖D* − D_lin‖/‖D*‖, the per-σ memorization rate of test images and the
 * generalization gap (train vs test MSE), all on one log σ grid. Every curve is one call of the
 * library in `src/analysis/geometry.ts`; this module only wires them together (one D*, one D_lin,
 * one coverage index) and times them.
 *
 * Noise: every curve draws `z = TorchGenerator(seed).randn(...)` for its input set (the library's
 * convention), so the test inputs of m_σ (test), C_σ, the linearity residual and the memorization
 * rate are the SAME noisy points `x_test + σz` at each σ, and the regime map compares coverage and
 * concentration of identical inputs.
 */
import type { CondRef } from '../denoisers/denoiser.ts';
import { makeEmpiricalDenoiser } from '../denoisers/empirical.ts';
import { makeGaussianDenoiser } from '../denoisers/gaussian.ts';
import {
  type DenoiseFn,
  type GeneralizationGap,
  type LinearityResidual,
  type MemorizationRate,
  type PosteriorStats,
  type RegimeMap,
  type ShellCoverage,
  ShellCoverageIndex,
  generalizationGap,
  linearityResidual,
  memorizationRate,
  posteriorStats,
  regimeMap,
  shellCoverage,
} from '../analysis/geometry.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { TorchGenerator } from '../random/torch.ts';

/** A trained (or any) denoiser whose per-σ curves the study adds (SPEC §5.4, §5.5). */
export interface GeometryModel {
  readonly name: string;
  /** D(y;σ) on images of the study's shape (see {@link paddedDenoiseFn} for 32×32 models). */
  readonly denoise: DenoiseFn;
  /** Largest σ the model was trained on (grid points above it are skipped; default ∞). */
  readonly sigmaMax?: number;
}

/** Per-σ curves of one {@link GeometryModel}, on the grid points σ ≤ its sigmaMax (the gap's train side uses the first min(n, m) training images, as many as test images). */
export interface GeometryModelCurves {
  readonly name: string;
  readonly sigma: number[];
  readonly memorization: MemorizationRate;
  readonly gap: GeneralizationGap;
  readonly seconds: number;
}

/**
 * Run a D(y;σ) of `[B, c, h+2p, w+2p]` images on `[B, c, h, w]` inputs: the input is padded by `pad`
 * pixels of value `fill` plus σ·z (z from `TorchGenerator(seed)`, so the border is as noisy as the
 * training inputs were), and the output is cropped back. The trained testbed models see 28×28
 * Fashion-MNIST padded to 32×32 with −1 (`pad28to32`); their defaults are pad 2, fill −1.
 */
export function paddedDenoiseFn(D: DenoiseFn, opts: { pad?: number; fill?: number; seed?: number } = {}): DenoiseFn {
  const p = opts.pad ?? 2;
  const fill = opts.fill ?? -1;
  const seed = opts.seed ?? 0;
  return async (y: Tensor, sigma: number): Promise<Tensor> => {
    if (y.dims.length !== 4) throw new Error(`paddedDenoiseFn: y must be [B, c, h, w], got [${y.dims.join(', ')}]`);
    const [B, c, h, w] = y.dims as [number, number, number, number];
    const H = h + 2 * p;
    const W = w + 2 * p;
    const z = new TorchGenerator(seed).randn([B * c * H * W]);
    const big = new Float32Array(B * c * H * W);
    for (let i = 0; i < big.length; i++) big[i] = fill + sigma * z[i]!;
    for (let b = 0; b < B * c; b++) for (let r = 0; r < h; r++) big.set(y.data.subarray((b * h + r) * w, (b * h + r + 1) * w), (b * H + r + p) * W + p);
    const out = await D({ dims: [B, c, H, W], data: big }, sigma);
    const small = new Float32Array(B * c * h * w);
    for (let b = 0; b < B * c; b++) for (let r = 0; r < h; r++) small.set(out.data.subarray((b * H + r + p) * W + p, (b * H + r + p) * W + p + w), (b * h + r) * w);
    return { dims: [B, c, h, w], data: small };
  };
}

/** Settings of {@link runGeometry} (SPEC §5); the CLI fills the defaults noted here. */
export interface GeometrySettings {
  /** Training images `[n, ...shape]` (n ≥ 2): the support of D* (CLI default: the first 1,000 embedded Fashion-MNIST training images, or a --model's image pool). */
  readonly train: Tensor;
  /** Test images `[m, ...shape]`, disjoint from `train` (CLI default: the first 200 embedded test images). */
  readonly test: Tensor;
  /** Noise levels σ > 0 (CLI default: `logSigmaGrid(0.002, 80, 40)`). */
  readonly sigmas: readonly number[];
  /** Seed of every noise draw z (CLI default 0). */
  readonly seed: number;
  /** Shell half-thickness in units of σ/√2 for C_σ (SPEC §5.2; default 3). */
  readonly kappa?: number;
  /** Small regime where C_σ < coverageMin (SPEC §5.3; default 0.5). */
  readonly coverageMin?: number;
  /** Large regime where the test m_σ < concentrationMin (SPEC §5.3; default 0.5). */
  readonly concentrationMin?: number;
  /** Ratio-test threshold of the memorization rate (SPEC §5.4; default 1/3). */
  readonly ratio?: number;
  /** Rows per denoiser call (default 256). */
  readonly batch?: number;
  /** Denoisers whose per-σ memorization rate and generalization gap are added (default none). */
  readonly models?: readonly GeometryModel[];
  /** Also add the curves of D_lin (the linear Gaussian denoiser of the training images) as the first model (default true). */
  readonly linearCurves?: boolean;
}

/** Everything {@link runGeometry} measured, one entry per σ in every curve (SPEC §5). */
export interface GeometryResult {
  /** The σ grid, in the order given. */
  readonly sigma: number[];
  /** Number of training images n, test images m, and the dimension d. */
  readonly n: number;
  readonly m: number;
  readonly d: number;
  /** §5.1 for noisy training inputs (with source recovery). */
  readonly posteriorTrain: PosteriorStats;
  /** §5.1 for noisy test inputs. */
  readonly posteriorTest: PosteriorStats;
  /** §5.2 shell coverage C_σ of noisy test inputs. */
  readonly coverage: ShellCoverage;
  /** §5.3 regimes from C_σ and the test m_σ. */
  readonly regimes: RegimeMap;
  /** §5.3 ‖D* − D_lin‖/‖D*‖ on noisy test inputs, D_lin fitted on the same training images. */
  readonly linearity: LinearityResidual;
  /** §5.4 per-σ memorization rate of test images under D*. */
  readonly memorization: MemorizationRate;
  /** §5.5 train vs test per-pixel MSE of D*. */
  readonly gap: GeneralizationGap;
  /** Per-σ memorization rate and generalization gap of D_lin (unless `linearCurves: false`) and each of `settings.models`. */
  readonly models: GeometryModelCurves[];
  /** The thresholds used. */
  readonly kappa: number;
  readonly ratio: number;
  /** Wall-clock seconds per stage and in total. */
  readonly seconds: { readonly posterior: number; readonly coverage: number; readonly linearity: number; readonly memorization: number; readonly gap: number; readonly models: number; readonly total: number };
}

/**
 * Run the geometry study of SPEC §5 on the exact empirical denoiser D* over `settings.train`:
 * posterior stats (train and test), shell coverage of test inputs, the regime map, the linearity
 * residual against the Gaussian denoiser fitted on the same training images, the per-σ
 * memorization rate of test images and the generalization gap. Defaults: κ = 3, coverageMin =
 * concentrationMin = 0.5, ratio 1/3, batch 256. `log` receives one line per finished stage.
 */
export async function runGeometry(settings: GeometrySettings, log: (msg: string) => void = () => {}): Promise<GeometryResult> {
  const t0 = performance.now();
  const { train, test, seed } = settings;
  const sigmas = [...settings.sigmas];
  const kappa = settings.kappa ?? 3;
  const ratio = settings.ratio ?? 1 / 3;
  const batch = settings.batch ?? 256;
  const sweep = { sigmas, seed, batch };
  const n = train.dims[0] ?? 0;
  const m = test.dims[0] ?? 0;
  if (n < 2) throw new Error(`runGeometry: train needs at least 2 images, got ${n}`);
  if (m < 1) throw new Error(`runGeometry: test needs at least 1 image, got ${m}`);
  const den = await makeEmpiricalDenoiser(train, { name: `empirical D* (n = ${n})` });
  const lin = await makeGaussianDenoiser(train, { name: `D_lin (n = ${n})` });
  const dStar: DenoiseFn = (y, sigma) => den.denoise(y, sigma, new Array<CondRef>(y.dims[0]!).fill(null));
  const dLin: DenoiseFn = (y, sigma) => lin.denoise(y, sigma);
  const lap = (() => {
    let t = performance.now();
    return (): number => {
      const now = performance.now();
      const s = (now - t) / 1000;
      t = now;
      return s;
    };
  })();
  try {
    const posteriorTrain = await posteriorStats(den, train, { ...sweep, sourceIndex: Int32Array.from({ length: n }, (_, i) => i) });
    const posteriorTest = await posteriorStats(den, test, sweep);
    const tPost = lap();
    log(`posterior concentration: ${n} train + ${m} test inputs × ${sigmas.length} σ in ${tPost.toFixed(1)} s`);
    const index = await ShellCoverageIndex.create(train);
    let coverage: ShellCoverage;
    try {
      coverage = await shellCoverage(index, test, { ...sweep, kappa });
    } finally {
      await index.dispose();
    }
    const tCov = lap();
    log(`shell coverage (κ = ${kappa}) in ${tCov.toFixed(1)} s`);
    const regimes = regimeMap(sigmas, coverage.coverage, posteriorTest.mSigma, { ...(settings.coverageMin === undefined ? {} : { coverageMin: settings.coverageMin }), ...(settings.concentrationMin === undefined ? {} : { concentrationMin: settings.concentrationMin }) });
    const linearity = await linearityResidual(dStar, dLin, test, sweep);
    const tLin = lap();
    log(`linearity residual in ${tLin.toFixed(1)} s`);
    const memorization = await memorizationRate(dStar, test, train, { ...sweep, threshold: ratio });
    const tMem = lap();
    log(`memorization rate in ${tMem.toFixed(1)} s`);
    const gap = await generalizationGap(dStar, train, test, sweep);
    const tGap = lap();
    log(`generalization gap in ${tGap.toFixed(1)} s`);
    const models: GeometryModelCurves[] = [];
    const curveModels: GeometryModel[] = [...((settings.linearCurves ?? true) ? [{ name: 'D_lin', denoise: dLin }] : []), ...(settings.models ?? [])];
    for (const model of curveModels) {
      const ms = sigmas.filter((x) => x <= (model.sigmaMax ?? Infinity));
      if (ms.length === 0) throw new Error(`runGeometry: model '${model.name}': no grid σ ≤ its sigmaMax = ${model.sigmaMax}`);
      const sw = { ...sweep, sigmas: ms };
      const mm = await memorizationRate(model.denoise, test, train, { ...sw, threshold: ratio });
      const gapTrain = n > m ? { dims: [m, ...train.dims.slice(1)], data: train.data.subarray(0, (train.data.length / n) * m) } : train;
      const mg = await generalizationGap(model.denoise, gapTrain, test, sw);
      const secs = lap();
      models.push({ name: model.name, sigma: ms, memorization: mm, gap: mg, seconds: secs });
      const peak = mm.rate.reduce((k, v, i, a) => (v > a[k]! ? i : k), 0);
      log(`${model.name}: ${ms.length} σ in ${secs.toFixed(1)} s; peak memorization rate ${mm.rate[peak]!.toFixed(3)} at σ = ${ms[peak]!.toPrecision(3)}`);
    }
    return {
      sigma: sigmas,
      n,
      m,
      d: coverage.d,
      posteriorTrain,
      posteriorTest,
      coverage,
      regimes,
      linearity,
      memorization,
      gap,
      models,
      kappa,
      ratio,
      seconds: { posterior: tPost, coverage: tCov, linearity: tLin, memorization: tMem, gap: tGap, models: models.reduce((a, x) => a + x.seconds, 0), total: (performance.now() - t0) / 1000 },
    };
  } finally {
    await den.dispose();
    await lin.dispose();
  }
}
