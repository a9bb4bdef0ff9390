/**
 * EDM's deterministic sampler (Karras et al. 2022, Algorithm 1 with S_churn = 0): Heun's 2nd-order
 * method on the probability-flow ODE dx/dσ = (x − D(x; σ))/σ over the time steps
 *
 *     σ_i = (σ_max^{1/ρ} + i/(N − 1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ,  i = 0..N−1,   σ_N = 0
 *
 * (defaults N = 18, ρ = 7, σ_min = 0.002, σ_max = 80), starting from x_0 = σ_0·noise:
 *
 *     d_i = (x_i − D(x_i; σ_i))/σ_i,   x_{i+1} = x_i + (σ_{i+1} − σ_i)·d_i
 *     if σ_{i+1} > 0:  d' = (x_{i+1} − D(x_{i+1}; σ_{i+1}))/σ_{i+1},  x_{i+1} = x_i + (σ_{i+1} − σ_i)·(d_i + d')/2
 *
 * — N + (N − 1) = 2N − 1 denoiser evaluations (35 for 18 steps); the last step is Euler. Unlike the
 * other samplers it drives a denoiser D at arbitrary σ (VE scale, x = x0 + σ·n), not an ε-model
 * on a VP timestep grid; the state is kept in float64.
 *
 * Step events (one per step i, after its correction) carry the VP-scale view of the state so the
 * same observers work: `t` = σ_i (EDM has no timestep grid; the noise label is σ itself),
 * `alphaBar` = 1/(1 + σ_i²), `xt` = x_i/√(1 + σ_i²), `eps` = d_i (for the VP x_t this is exactly
 * ε̂ = (x_t − √ᾱ·x̂0)/√(1 − ᾱ)), `xHat0` = D(x_i; σ_i), `xPrev` = x_{i+1}/√(1 + σ_{i+1}²),
 * `alphaBarPrev` = 1/(1 + σ_{i+1}²); with guidance also ε_u, ε_c, s and d_t = ‖ε_c − ε_u‖² of the
 * step's first evaluation.
 */
import type { Tensor } from '../tensor/tensor.ts';
import { resolveDdimConfig, type SchedulerConfig, type SchedulerConfigInput } from '../schedules/config.ts';
import { configAlphaBars } from '../schedules/timesteps.ts';
import { callModel, checkCommon, emit, like, rejectEta } from './common.ts';
import type { EpsModel, SamplerOptions, StepEvent, StepInfo } from './types.ts';

/** Where one denoiser call of the Heun sampler stands. */
export interface HeunCallInfo {
  /** 0-based step. */
  readonly step: number;
  readonly numSteps: number;
  /** 0: the Euler (predictor) evaluation at σ_i; 1: the correction at σ_{i+1}. */
  readonly evaluation: 0 | 1;
}

/** What a denoiser returns to the Heun sampler: D(x; σ) (guided), and when guided its branches and scale. */
export interface HeunModelOutput {
  /** The (guided) denoised estimate `[B, ...]`. */
  readonly denoised: Tensor;
  /** D(x; σ, e_∅) when guided. */
  readonly denoisedU?: Tensor;
  /** D(x; σ, e) when guided. */
  readonly denoisedC?: Tensor;
  /** Guidance scale per row when guided. */
  readonly s?: Float64Array;
}

/** The denoiser the Heun sampler drives: `x` in VE scale (x0 + σ·n) `[B, ...]`, one σ for the batch. */
export type HeunModel = (x: Tensor, sigma: number, info: HeunCallInfo) => Promise<HeunModelOutput>;

/** Options of {@link sampleHeunEdm}. */
export interface HeunEdmOptions {
  /** Steps N (default 18 → 35 evaluations). */
  readonly steps?: number;
  /** σ_min (default 0.002). */
  readonly sigmaMin?: number;
  /** σ_max (default 80). */
  readonly sigmaMax?: number;
  /** ρ (default 7). */
  readonly rho?: number;
  /** Called once per step, after the step's correction. */
  readonly onStep?: (e: StepEvent) => void | Promise<void>;
}

/** EDM's time steps σ_0 > … > σ_{N−1} ≥ σ_min, then σ_N = 0 (length N + 1). */
export function edmSigmas(steps: number, sigmaMin = 0.002, sigmaMax = 80, rho = 7): Float64Array {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`heun-edm: steps must be a positive integer, got ${steps}`);
  if (!(sigmaMin > 0 && sigmaMax > sigmaMin && Number.isFinite(sigmaMax))) throw new Error(`heun-edm: need 0 < sigmaMin < sigmaMax < ∞, got ${sigmaMin}, ${sigmaMax}`);
  if (!(rho > 0) || !Number.isFinite(rho)) throw new Error(`heun-edm: rho must be a finite number > 0, got ${rho}`);
  const out = new Float64Array(steps + 1);
  const a = sigmaMax ** (1 / rho);
  const b = sigmaMin ** (1 / rho);
  for (let i = 0; i < steps; i++) out[i] = (a + (steps === 1 ? 0 : i / (steps - 1)) * (b - a)) ** rho;
  out[steps] = 0;
  return out;
}

function checkOut(out: HeunModelOutput, n: number, where: string): Float32Array {
  if (!out || !out.denoised || !(out.denoised.data instanceof Float32Array)) throw new Error(`${where}: expected { denoised: Tensor }`);
  const d = out.denoised.data;
  if (d.length !== n) throw new Error(`${where}: denoised has ${d.length} values, expected ${n}`);
  for (let j = 0; j < n; j++) if (!Number.isFinite(d[j]!)) throw new Error(`${where}: non-finite denoised value at element ${j}`);
  return d;
}

function epsOf(x: Float64Array, d: ArrayLike<number>, sigma: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let j = 0; j < x.length; j++) out[j] = (x[j]! - d[j]!) / sigma;
  return out;
}

/**
 * Sample with EDM's deterministic Heun sampler (see the module note). `noise` `[B, ...]` is the
 * N(0, I) draw; returns x_N (σ = 0) in float32.
 */
export async function sampleHeunEdm(model: HeunModel, noise: Tensor, opts: HeunEdmOptions = {}): Promise<Tensor> {
  const S = 'heun-edm';
  const N = opts.steps ?? 18;
  checkCommon(S, noise, { steps: N });
  const sig = edmSigmas(N, opts.sigmaMin ?? 0.002, opts.sigmaMax ?? 80, opts.rho ?? 7);
  const n = noise.data.length;
  const B = noise.dims[0]!;
  const rows = n / B;
  const dims = [...noise.dims];
  let x = new Float64Array(n);
  for (let j = 0; j < n; j++) x[j] = noise.data[j]! * sig[0]!;
  const f32 = (v: Float64Array): Tensor => ({ dims: [...dims], data: Float32Array.from(v) });
  for (let i = 0; i < N; i++) {
    const s = sig[i]!;
    const sn = sig[i + 1]!;
    const out = await model(f32(x), s, { step: i, numSteps: N, evaluation: 0 });
    const D = checkOut(out, n, `${S}: model output at step ${i} (σ = ${s})`);
    const d = new Float64Array(n);
    const next = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      d[j] = (x[j]! - D[j]!) / s;
      next[j] = x[j]! + (sn - s) * d[j]!;
    }
    if (sn > 0) {
      const out2 = await model(f32(next), sn, { step: i, numSteps: N, evaluation: 1 });
      const D2 = checkOut(out2, n, `${S}: model output at step ${i}, correction (σ = ${sn})`);
      for (let j = 0; j < n; j++) next[j] = x[j]! + (sn - s) * 0.5 * (d[j]! + (next[j]! - D2[j]!) / sn);
    }
    if (opts.onStep) {
      const vp = (v: Float64Array, sg: number): Tensor => {
        const k = 1 / Math.sqrt(1 + sg * sg);
        return { dims: [...dims], data: Float32Array.from(v, (e) => e * k) };
      };
      let dt: Float64Array | null = null;
      let epsU: Tensor | null = null;
      let epsC: Tensor | null = null;
      if (out.denoisedU && out.denoisedC) {
        const eu = epsOf(x, out.denoisedU.data, s);
        const ec = epsOf(x, out.denoisedC.data, s);
        epsU = { dims: [...dims], data: eu };
        epsC = { dims: [...dims], data: ec };
        dt = new Float64Array(B);
        for (let b = 0; b < B; b++) {
          let acc = 0;
          for (let j = b * rows; j < (b + 1) * rows; j++) acc += (ec[j]! - eu[j]!) ** 2;
          dt[b] = acc;
        }
      }
      await opts.onStep({
        step: i,
        numSteps: N,
        t: s,
        alphaBar: 1 / (1 + s * s),
        xt: vp(x, s),
        eps: { dims: [...dims], data: Float32Array.from(d) },
        xHat0: { dims: [...dims], data: Float32Array.from(D) },
        epsU,
        epsC,
        s: out.s ?? null,
        d: dt,
        xPrev: vp(next, sn),
        alphaBarPrev: 1 / (1 + sn * sn),
      });
    }
    x = next;
  }
  return f32(x);
}

/** A denoiser at arbitrary σ with conditions (e.g. `TrainedModel.edm`). */
export interface SigmaDenoiser {
  denoise(x: Tensor, sigma: ArrayLike<number>, cond: readonly (number | null)[]): Promise<Tensor>;
}

/**
 * The Heun model of a σ-denoiser with classifier-free guidance: row b uses condition `cond[b]`
 * (null = e_∅) and scale `scale` (D = D_u + s·(D_c − D_u); unguided, one call per row, when
 * s = 1 or the condition is null).
 */
export function guidedHeunModel(den: SigmaDenoiser, cond: readonly (number | null)[], scale: number): HeunModel {
  if (!Number.isFinite(scale)) throw new Error(`heun-edm guidance: scale must be finite, got ${scale}`);
  const guided = scale !== 1 && cond.some((c) => c !== null);
  return async (x, sigma) => {
    const B = x.dims[0]!;
    if (cond.length !== B) throw new Error(`heun-edm guidance: ${cond.length} conditions for a batch of ${B}`);
    if (!guided) return { denoised: await den.denoise(x, new Float64Array(B).fill(sigma), cond) };
    const n = x.data.length;
    const both = new Float32Array(2 * n);
    both.set(x.data, 0);
    both.set(x.data, n);
    const out = await den.denoise({ dims: [2 * B, ...x.dims.slice(1)], data: both }, new Float64Array(2 * B).fill(sigma), [...cond.map(() => null), ...cond]);
    const u = out.data.subarray(0, n);
    const c = out.data.subarray(n);
    const g = new Float32Array(n);
    for (let j = 0; j < n; j++) g[j] = u[j]! + scale * (c[j]! - u[j]!);
    const dims = [...x.dims];
    return { denoised: { dims, data: g }, denoisedU: { dims, data: u.slice() }, denoisedC: { dims, data: c.slice() }, s: new Float64Array(B).fill(scale) };
  };
}

/** Options of {@link sampleHeunEdmEps}: {@link HeunEdmOptions} and the common sampler options. */
export type HeunEdmEpsOptions = SamplerOptions & Omit<HeunEdmOptions, 'steps' | 'onStep'> & { readonly eta?: number };

/**
 * The schedule's timestep of each VE σ: log σ interpolated in the table σ_t = √((1 − ᾱ_t)/ᾱ_t),
 * t = 0..T − 1 (diffusers' `_sigma_to_t`), clamped to [0, T − 1] (EDM's σ above the VP table's
 * top, ≈ 14.6 for Stable Diffusion's schedule, reads as T − 1). A label for guidance schedules keyed
 * on t/T; the denoiser is evaluated at σ itself.
 */
export function sigmaTimesteps(config: SchedulerConfigInput | SchedulerConfig, sigmas: ArrayLike<number>): number[] {
  const ab = configAlphaBars(resolveDdimConfig(config));
  const logS = Array.from(ab, (a) => Math.log(Math.sqrt((1 - a) / a)));
  const T = logS.length;
  return Array.from(sigmas, (s) => {
    const l = Math.log(s);
    if (!(l > logS[0]!)) return 0;
    if (l >= logS[T - 1]!) return T - 1;
    let lo = 0;
    let hi = T - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (logS[mid]! <= l) lo = mid;
      else hi = mid;
    }
    return lo + (l - logS[lo]!) / (logS[hi]! - logS[lo]!);
  });
}

/** The timestep labels {@link sampleHeunEdmEps} passes for `steps` steps (one per step, σ_0..σ_{N−1}). */
export function heunEdmTimesteps(config: SchedulerConfigInput | SchedulerConfig, steps: number, opts: Omit<HeunEdmOptions, 'steps' | 'onStep'> = {}): number[] {
  const sig = edmSigmas(steps, opts.sigmaMin ?? 0.002, opts.sigmaMax ?? 80, opts.rho ?? 7);
  return sigmaTimesteps(config, sig.subarray(0, steps));
}

/**
 * EDM's Heun sampler (Karras et al. 2022, Algorithm 1, S_churn = 0; see the module note) over an
 * ε-model, the `heun-edm` of {@link SAMPLERS}: with D = x − σ·ε̂ the ODE slope (x − D)/σ is ε̂
 * itself, so
 *
 *     x_{i+1} = x_i + (σ_{i+1} − σ_i)·ε̂(x_i; σ_i),   corrected by ½·(ε̂(x_i; σ_i) + ε̂(x_{i+1}; σ_{i+1})) while σ_{i+1} > 0.
 *
 * The model sees x_t = x/√(1 + σ²) (VP scale) with `info.sigma` = σ, ᾱ = 1/(1 + σ²) and `t` the
 * schedule's timestep label of σ ({@link sigmaTimesteps}); the correction call carries
 * `evaluation: 1`, so guidance keeps the step's scale. Only denoisers that can be evaluated at any σ
 * (`Denoiser.sigmaRange`) are meaningful here. `noise` is N(0, I); x_0 = σ_0·noise; the state is
 * float64. Events: one per step, as the other samplers' (VP scale, ε̂ and x̂0 = D of the step's
 * first evaluation). Defaults N = 18, ρ = 7, σ ∈ [0.002, 80].
 */
export async function sampleHeunEdmEps(model: EpsModel, noise: Tensor, config: SchedulerConfigInput | SchedulerConfig, opts: HeunEdmEpsOptions): Promise<Tensor> {
  const S = 'heun-edm';
  checkCommon(S, noise, opts);
  rejectEta(S, opts.eta);
  const N = opts.steps;
  const sig = edmSigmas(N, opts.sigmaMin ?? 0.002, opts.sigmaMax ?? 80, opts.rho ?? 7);
  const labels = sigmaTimesteps(config, sig);
  const T = configAlphaBars(resolveDdimConfig(config)).length;
  const n = noise.data.length;
  let x = new Float64Array(n);
  for (let j = 0; j < n; j++) x[j] = noise.data[j]! * sig[0]!;
  const vp = (v: Float64Array, s: number): Tensor => {
    const k = 1 / Math.sqrt(1 + s * s);
    return like(noise, Float32Array.from(v, (e) => e * k));
  };
  for (let i = 0; i < N; i++) {
    const s = sig[i]!;
    const sn = sig[i + 1]!;
    const info: StepInfo = { step: i, numSteps: N, t: labels[i]!, alphaBar: 1 / (1 + s * s), numTrainTimesteps: T, sigma: s };
    const xt = vp(x, s);
    const out = await callModel(S, model, xt, info);
    const e = out.eps.data;
    const next = new Float64Array(n);
    const xHat0 = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      next[j] = x[j]! + (sn - s) * e[j]!;
      xHat0[j] = x[j]! - s * e[j]!;
    }
    if (sn > 0) {
      const info2: StepInfo = { step: i, numSteps: N, t: labels[i + 1]!, alphaBar: 1 / (1 + sn * sn), numTrainTimesteps: T, sigma: sn, evaluation: 1 };
      const e2 = (await callModel(S, model, vp(next, sn), info2)).eps.data;
      for (let j = 0; j < n; j++) next[j] = x[j]! + (sn - s) * 0.5 * (e[j]! + e2[j]!);
    }
    await emit(opts, info, xt, out, like(noise, xHat0), vp(next, sn), 1 / (1 + sn * sn));
    x = next;
  }
  return like(noise, Float32Array.from(x));
}
