/**
 * The Dodson & Gao geometry study (SPEC §5.1–5.5) on the exact empirical denoiser D* of a training
 * set: posterior concentration m_σ and the effective number of contributors for noisy training and
 * test inputs, the Gaussian-shell coverage C_σ of test inputs, the three noise regimes, the
 * linearity residual ‖D* − D_lin‖/‖D*‖, the per-σ memorization rate of test images and the
 * generalization gap (train vs test MSE), all on one log σ grid. Every curve is one call of the
 * library in `src/analysis/geometry.ts`; this module only wires them together (one D*, one D_lin,
 * one coverage index) and times them.
 *
 * On the study engine ({@link geometryStudy}) the curves are keyed units: one for D* (every D*
 * curve, and D_lin's per-σ curves, which share its training images) and one per added model (its
 * memorization rate and gap over the grid points σ ≤ its σ_max), so a rerun computes nothing and
 * another model added to the same grid reuses D*'s unit. {@link runGeometry} runs the same pieces
 * directly (no store).
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
import { z } from 'zod';
import type { Study, Unit } from '../engine/study.ts';
import { sha256Hex, unitKey } from '../engine/canonical.ts';

/** A trained (or any) denoiser whose per-σ curves the study adds (SPEC §5.4, §5.5). */
export interface GeometryModel {
  readonly name: string;
  /** D(y;σ) on images of the study's shape (a source's codec gives it: `SourceCodec.noisyImages`). */
  readonly denoise: DenoiseFn;
  /** Largest σ the model was trained on (grid points above it are skipped; default ∞). */
  readonly sigmaMax?: number;
  /**
   * What determines `denoise` (e.g. the model folder's fingerprint and how it is called); part of
   * the key of the model's unit in {@link geometryStudy} (default: `name`).
   */
  readonly identity?: unknown;
}

/** Per-σ curves of one {@link GeometryModel}, on the grid points σ ≤ its sigmaMax (the gap's train side uses the first min(n, m) training images, as many as test images). */
export interface GeometryModelCurves {
  readonly name: string;
  readonly sigma: number[];
  readonly memorization: MemorizationRate;
  readonly gap: GeneralizationGap;
  readonly seconds: number;
}

/** The pad-crop codec's denoiser on noisy images (`study/model-source.ts`; here for the studies that call a 32×32 model on 28×28 images). */
export { paddedDenoiseFn } from './model-source.ts';

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

/** What the D* part of the study measured (everything of {@link GeometryResult} but the regimes and the added models). */
interface DStarCurves {
  readonly n: number;
  readonly m: number;
  readonly d: number;
  readonly posteriorTrain: PosteriorStats;
  readonly posteriorTest: PosteriorStats;
  readonly coverage: ShellCoverage;
  readonly linearity: LinearityResidual;
  readonly memorization: MemorizationRate;
  readonly gap: GeneralizationGap;
  /** D_lin's per-σ curves (null without `linearCurves`). */
  readonly lin: GeometryModelCurves | null;
  readonly seconds: { readonly posterior: number; readonly coverage: number; readonly linearity: number; readonly memorization: number; readonly gap: number };
}

function checkSizes(train: Tensor, test: Tensor): { n: number; m: number } {
  const n = train.dims[0] ?? 0;
  const m = test.dims[0] ?? 0;
  if (n < 2) throw new Error(`runGeometry: train needs at least 2 images, got ${n}`);
  if (m < 1) throw new Error(`runGeometry: test needs at least 1 image, got ${m}`);
  return { n, m };
}

function lapTimer(): () => number {
  let t = performance.now();
  return (): number => {
    const now = performance.now();
    const s = (now - t) / 1000;
    t = now;
    return s;
  };
}

/** The D* curves: posterior stats (train, test), shell coverage, linearity residual, memorization rate, gap; then D_lin's per-σ curves. */
async function dStarCurves(train: Tensor, test: Tensor, sweep: { sigmas: number[]; seed: number; batch: number }, kappa: number, ratio: number, linearCurves: boolean, log: (msg: string) => void): Promise<DStarCurves> {
  const { n, m } = checkSizes(train, test);
  const sigmas = sweep.sigmas;
  const den = await makeEmpiricalDenoiser(train, { name: `empirical D* (n = ${n})` });
  const lin = await makeGaussianDenoiser(train, { name: `D_lin (n = ${n})` });
  const dStar: DenoiseFn = (y, sigma) => den.denoise(y, sigma, new Array<CondRef>(y.dims[0]!).fill(null));
  const dLin: DenoiseFn = (y, sigma) => lin.denoise(y, sigma);
  const lap = lapTimer();
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
    const linearity = await linearityResidual(dStar, dLin, test, sweep);
    const tLin = lap();
    log(`linearity residual in ${tLin.toFixed(1)} s`);
    const memorization = await memorizationRate(dStar, test, train, { ...sweep, threshold: ratio });
    const tMem = lap();
    log(`memorization rate in ${tMem.toFixed(1)} s`);
    const gap = await generalizationGap(dStar, train, test, sweep);
    const tGap = lap();
    log(`generalization gap in ${tGap.toFixed(1)} s`);
    const linCurves = linearCurves ? await modelCurves({ name: 'D_lin', denoise: dLin }, train, test, sweep, ratio, log) : null;
    return { n, m, d: coverage.d, posteriorTrain, posteriorTest, coverage, linearity, memorization, gap, lin: linCurves, seconds: { posterior: tPost, coverage: tCov, linearity: tLin, memorization: tMem, gap: tGap } };
  } finally {
    await den.dispose();
    await lin.dispose();
  }
}

/** The grid points σ ≤ the model's sigmaMax (throws when none is). */
function modelSigmas(model: GeometryModel, sigmas: readonly number[]): number[] {
  const ms = sigmas.filter((x) => x <= (model.sigmaMax ?? Infinity));
  if (ms.length === 0) throw new Error(`runGeometry: model '${model.name}': no grid σ ≤ its sigmaMax = ${model.sigmaMax}`);
  return ms;
}

/** One model's per-σ memorization rate and generalization gap (the gap's train side: the first min(n, m) training images). */
async function modelCurves(model: GeometryModel, train: Tensor, test: Tensor, sweep: { sigmas: number[]; seed: number; batch: number }, ratio: number, log: (msg: string) => void): Promise<GeometryModelCurves> {
  const { n, m } = checkSizes(train, test);
  const t0 = performance.now();
  const ms = modelSigmas(model, sweep.sigmas);
  const sw = { ...sweep, sigmas: ms };
  const mm = await memorizationRate(model.denoise, test, train, { ...sw, threshold: ratio });
  const gapTrain = n > m ? { dims: [m, ...train.dims.slice(1)], data: train.data.subarray(0, (train.data.length / n) * m) } : train;
  const mg = await generalizationGap(model.denoise, gapTrain, test, sw);
  const secs = (performance.now() - t0) / 1000;
  const peak = mm.rate.reduce((k, v, i, a) => (v > a[k]! ? i : k), 0);
  log(`${model.name}: ${ms.length} σ in ${secs.toFixed(1)} s; peak memorization rate ${mm.rate[peak]!.toFixed(3)} at σ = ${ms[peak]!.toPrecision(3)}`);
  return { name: model.name, sigma: ms, memorization: mm, gap: mg, seconds: secs };
}

/** Assemble a {@link GeometryResult} from the D* curves and the added models' curves (the regime map is computed here). */
function assemble(sigmas: number[], dc: DStarCurves, models: GeometryModelCurves[], kappa: number, ratio: number, thresholds: { coverageMin?: number | undefined; concentrationMin?: number | undefined }, total: number): GeometryResult {
  const regimes = regimeMap(sigmas, dc.coverage.coverage, dc.posteriorTest.mSigma, { ...(thresholds.coverageMin === undefined ? {} : { coverageMin: thresholds.coverageMin }), ...(thresholds.concentrationMin === undefined ? {} : { concentrationMin: thresholds.concentrationMin }) });
  const all = [...(dc.lin ? [dc.lin] : []), ...models];
  return {
    sigma: sigmas,
    n: dc.n,
    m: dc.m,
    d: dc.d,
    posteriorTrain: dc.posteriorTrain,
    posteriorTest: dc.posteriorTest,
    coverage: dc.coverage,
    regimes,
    linearity: dc.linearity,
    memorization: dc.memorization,
    gap: dc.gap,
    models: all,
    kappa,
    ratio,
    seconds: { ...dc.seconds, models: all.reduce((a, x) => a + x.seconds, 0), total },
  };
}

/**
 * Run the geometry study of SPEC §5 on the exact empirical denoiser D* over `settings.train`:
 * posterior stats (train and test), shell coverage of test inputs, the regime map, the linearity
 * residual against the Gaussian denoiser fitted on the same training images, the per-σ
 * memorization rate of test images and the generalization gap. Defaults: κ = 3, coverageMin =
 * concentrationMin = 0.5, ratio 1/3, batch 256. `log` receives one line per finished stage.
 * Computes everything directly; {@link geometryStudy} is the same study on the engine.
 */
export async function runGeometry(settings: GeometrySettings, log: (msg: string) => void = () => {}): Promise<GeometryResult> {
  const t0 = performance.now();
  const { train, test, seed } = settings;
  const sigmas = [...settings.sigmas];
  const kappa = settings.kappa ?? 3;
  const ratio = settings.ratio ?? 1 / 3;
  const sweep = { sigmas, seed, batch: settings.batch ?? 256 };
  checkSizes(train, test);
  for (const model of settings.models ?? []) modelSigmas(model, sigmas);
  const dc = await dStarCurves(train, test, sweep, kappa, ratio, settings.linearCurves ?? true, log);
  const models: GeometryModelCurves[] = [];
  for (const model of settings.models ?? []) models.push(await modelCurves(model, train, test, sweep, ratio, log));
  return assemble(sigmas, dc, models, kappa, ratio, settings, (performance.now() - t0) / 1000);
}

/** The spec of a geometry study (the settings of {@link runGeometry} but the data and models; defaults here). */
export const GeometrySpecSchema = z.object({
  /** Noise levels σ > 0. */
  sigmas: z.array(z.number().positive().finite()).min(1),
  /** Seed of every noise draw z. */
  seed: z.number().int().nonnegative().default(0),
  /** Shell half-thickness κ of C_σ. */
  kappa: z.number().nonnegative().finite().default(3),
  /** Small regime where C_σ < coverageMin (applied when reducing: not part of any unit key). */
  coverageMin: z.number().min(0).max(1).default(0.5),
  /** Large regime where the test m_σ < concentrationMin (applied when reducing). */
  concentrationMin: z.number().min(0).max(1).default(0.5),
  /** Ratio-test threshold of the memorization rates. */
  ratio: z.number().positive().finite().default(1 / 3),
  /** Rows per denoiser call. */
  batch: z.number().int().positive().default(256),
  /** Add D_lin's per-σ curves as the first model. */
  linearCurves: z.boolean().default(true),
  /** Names of the source's added models, in order (the curves carry these names). */
  models: z.array(z.string().min(1)).default([]),
});
/** A resolved geometry spec. */
export type GeometrySpec = z.infer<typeof GeometrySpecSchema>;

/** What the geometry study runs over: the training and test images and the added models. */
export interface GeometrySource {
  readonly train: Tensor;
  readonly test: Tensor;
  /** Added models (their names must equal the spec's `models`). */
  readonly models: readonly GeometryModel[];
  /** Receives one line per finished stage (default none). */
  readonly log?: (msg: string) => void;
}

/** The sweep settings every unit carries. */
interface UnitSweep {
  readonly sigmas: number[];
  readonly seed: number;
  readonly batch: number;
  readonly ratio: number;
}

/** A unit of the geometry study: the D* curves, or one added model's curves (by index into the source's models) on its grid points. */
export type GeometryUnit = (UnitSweep & { readonly part: 'dstar'; readonly kappa: number; readonly linearCurves: boolean }) | (UnitSweep & { readonly part: 'model'; readonly index: number; readonly name: string });

/** JSON form of a memorization rate (typed arrays as arrays). */
type StoredMemorization = Omit<MemorizationRate, 'ratio' | 'nearest'> & { readonly ratio: number[][]; readonly nearest: number[][] };
type StoredCurves = Omit<GeometryModelCurves, 'memorization'> & { readonly memorization: StoredMemorization };
/** A unit's stored result. */
export type GeometryUnitResult =
  | { readonly part: 'dstar'; readonly curves: Omit<DStarCurves, 'memorization' | 'lin'> & { readonly memorization: StoredMemorization; readonly lin: StoredCurves | null } }
  | { readonly part: 'model'; readonly curves: StoredCurves };

function memToJson(r: MemorizationRate): StoredMemorization {
  return { ...r, ratio: r.ratio.map((a) => Array.from(a)), nearest: r.nearest.map((a) => Array.from(a)) };
}
function memFromJson(r: StoredMemorization): MemorizationRate {
  return { ...r, ratio: r.ratio.map((a) => Float64Array.from(a)), nearest: r.nearest.map((a) => Int32Array.from(a)) };
}
function curvesToJson(c: GeometryModelCurves): StoredCurves {
  return { ...c, memorization: memToJson(c.memorization) };
}
function curvesFromJson(c: StoredCurves, name: string): GeometryModelCurves {
  return { ...c, name, memorization: memFromJson(c.memorization) };
}

/** SHA-256 of a tensor's shape and float32 values (the identity of a data set in unit keys). */
export function tensorDigest(t: Tensor): string {
  return sha256Hex(`${t.dims.join(',')}\n`) + sha256Hex(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
}

const digests = new WeakMap<Tensor, string>();
function digestOf(t: Tensor): string {
  let d = digests.get(t);
  if (d === undefined) digests.set(t, (d = tensorDigest(t)));
  return d;
}

/**
 * The geometry study (SPEC §5) on the engine: unit `dstar` (every D* curve and D_lin's) keyed by
 * the training and test images' digests, the grid, the seed, κ, the ratio threshold and the rows
 * per call; one unit per added model keyed by its identity (fingerprint) and the same data and
 * settings on its grid points σ ≤ σ_max. The regime thresholds are applied in `reduce`, so changing
 * them recomputes nothing.
 */
export const geometryStudy: Study<GeometrySpec, GeometryUnit, GeometryUnitResult, GeometryResult, GeometrySource> = {
  id: 'geometry',
  schema: GeometrySpecSchema as unknown as z.ZodType<GeometrySpec>,

  plan(spec, src) {
    checkSizes(src.train, src.test);
    if (src.models.length !== spec.models.length || src.models.some((m, i) => m.name !== spec.models[i])) {
      throw new Error(`geometry: the spec names the models [${spec.models.join(', ')}], the source has [${src.models.map((m) => m.name).join(', ')}]`);
    }
    const data = { train: digestOf(src.train), test: digestOf(src.test) };
    const sweep = { seed: spec.seed, ratio: spec.ratio, batch: spec.batch };
    const dstar: GeometryUnit = { part: 'dstar', ...sweep, sigmas: [...spec.sigmas], kappa: spec.kappa, linearCurves: spec.linearCurves };
    const units: Unit<GeometryUnit>[] = [{ key: unitKey('geometry', { ...dstar, ...data }), spec: dstar }];
    src.models.forEach((m, index) => {
      const sigmas = modelSigmas(m, spec.sigmas);
      units.push({ key: unitKey('geometry', { part: 'model', ...sweep, sigmas, ...data, model: m.identity ?? m.name }), spec: { part: 'model', ...sweep, sigmas, index, name: m.name } });
    });
    return units;
  },

  async run(units, ctx) {
    const src = ctx.source;
    const log = src.log ?? (() => {});
    const out: { result: GeometryUnitResult }[] = [];
    for (const { spec: u } of units) {
      ctx.signal?.throwIfAborted();
      const sweep = { sigmas: u.sigmas, seed: u.seed, batch: u.batch };
      if (u.part === 'dstar') {
        const dc = await dStarCurves(src.train, src.test, sweep, u.kappa, u.ratio, u.linearCurves, log);
        out.push({ result: { part: 'dstar', curves: { ...dc, memorization: memToJson(dc.memorization), lin: dc.lin === null ? null : curvesToJson(dc.lin) } } });
      } else {
        const model = src.models[u.index];
        if (model === undefined || model.name !== u.name) throw new Error(`geometry: the source has no model '${u.name}' at ${u.index}`);
        out.push({ result: { part: 'model', curves: curvesToJson(await modelCurves(model, src.train, src.test, sweep, u.ratio, log)) } });
      }
    }
    return out;
  },

  reduce(stored, _blobs, spec) {
    const first = stored[0]?.result;
    if (first === undefined || first.part !== 'dstar') throw new Error('geometry: the first unit must be the D* curves');
    const c = first.curves;
    const dc: DStarCurves = { ...c, memorization: memFromJson(c.memorization), lin: c.lin === null ? null : curvesFromJson(c.lin, 'D_lin') };
    const models = stored.slice(1).map((u, i) => {
      if (u.result.part !== 'model') throw new Error(`geometry: unit ${u.key} is not a model's curves`);
      return curvesFromJson(u.result.curves, spec.models[i]!);
    });
    const total = stored[0]!.seconds + stored.slice(1).reduce((a, u) => a + u.seconds, 0);
    return assemble([...spec.sigmas], dc, models, spec.kappa, spec.ratio, spec, total);
  },
};
