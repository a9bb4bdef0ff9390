/**
 * UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
 * Diffusion Models"), as diffusers' `UniPCMultistepScheduler` with its defaults (B(h) = e^h − 1,
 * "bh2"; order 2; data prediction; the corrector on) driven by `StableDiffusionPipeline`.
 */
import type { Tensor } from '../tensor/tensor.ts';
import { dpmSolverPlan } from '../schedules/timesteps.ts';
import { parseSchedulerConfig, type SchedulerConfig, type SchedulerConfigInput } from '../schedules/config.ts';
import { callModel, checkCommon, emit, f32, like, alphaSigma, rejectEta } from './common.ts';
import type { EpsModel, SamplerOptions, StepInfo } from './types.ts';

/** λ(σ) = log α − log σ_t in float32 (+∞ at σ = 0). */
function lambdaOf(sigma: number): number {
  const [a, s] = alphaSigma(sigma);
  return f32(f32(Math.log(a)) - f32(Math.log(s)));
}

/** The bh2 coefficients for data prediction (hh = −h): h·φ₁ = e^hh − 1, B(h) = e^hh − 1, and b_k = h·φ_{k+1}·k!/B(h) for k = 1…order. */
function coefficients(h: number, order: number): { hPhi1: number; bH: number; b: number[] } {
  const hh = f32(-h);
  const hPhi1 = f32(Math.expm1(hh));
  let hPhiK = f32(f32(hPhi1 / hh) - 1);
  let factorial = 1;
  const bH = hPhi1;
  const b: number[] = [];
  for (let i = 1; i <= order; i++) {
    b.push(f32(f32(hPhiK * factorial) / bH));
    factorial *= i + 1;
    hPhiK = f32(f32(hPhiK / hh) - f32(1 / factorial));
  }
  return { hPhi1, bH, b };
}

/** Solve the 2×2 system [[1, 1], [r, 1]] ρ = b in float32 with partial pivoting (LAPACK sgesv's order of operations). */
function solve2(r: number, b: readonly number[]): [number, number] {
  // rows: (1, 1 | b0), (r, 1 | b1); pivot on the larger |first column|
  let [a00, a01, c0, a10, a11, c1] = [1, 1, b[0]!, r, 1, b[1]!];
  if (Math.abs(r) > 1) [a00, a01, c0, a10, a11, c1] = [a10, a11, c1, a00, a01, c0];
  const l = f32(a10 / a00);
  const u11 = f32(a11 - f32(l * a01));
  const y1 = f32(c1 - f32(l * c0));
  const x1 = f32(y1 / u11);
  const x0 = f32(f32(c0 - f32(a01 * x1)) / a00);
  return [x0, x1];
}

/**
 * Sample with UniPC: `UniPCMultistepScheduler` (the DPM-Solver grid — `linspace` default, final
 * σ 0 — data prediction x̂0 = (x − σ_t ε̂)/α_t). Per step i, with the model's output at x_i:
 *
 *   UniC (from step 1): x_i ← x_i' corrected from the previous start with the new x̂0 (ρ_c: 0.5 at
 *   order 1, else the solution of R ρ = b);  UniP: x_{i+1} from the corrected x_i with the last
 *   `order` x̂0 (ρ_p = 0.5 at order 2), where, with h = λ_{i+1} − λ_i, r_k the λ ratios, D_k =
 *   (m_k − m_0)/r_k and B(h) = e^{−h} − 1:
 *
 *   x_{i+1} = (σ_{i+1}/σ_i) x_i − α_{i+1} (e^{−h} − 1) m_0 − α_{i+1} B(h) Σ_k ρ_k D_k,
 *
 * order min(2, steps left) with `lower_order_final`, and at most one more than the steps so far.
 * float32 in diffusers' order of operations. Supported: `solver_order` 1 or 2, `solver_type` bh2,
 * `predict_x0` true, no `disable_corrector`; others are refused naming the key. `lower_order_final:
 * false` with a final σ of 0 is refused too (diffusers divides by h = ∞ there and returns NaN).
 * Events: x_t is the model's input at the step (before the correction), x_prev the predictor's
 * output; returns x_0.
 */
export async function sampleUniPc(
  model: EpsModel,
  noise: Tensor,
  config: SchedulerConfigInput | SchedulerConfig,
  opts: SamplerOptions & { readonly eta?: number },
): Promise<Tensor> {
  const S = 'unipc';
  checkCommon(S, noise, opts);
  rejectEta(S, opts.eta);
  const raw = parseSchedulerConfig(config, 'scheduler config') as SchedulerConfig & { predict_x0?: boolean; disable_corrector?: number[] };
  const refuse = (key: string, value: unknown, why: string): never => {
    throw new Error(`scheduler config: ${key} = ${JSON.stringify(value)} is not supported by the unipc sampler (${why})`);
  };
  const order = raw.solver_order ?? 2;
  if (order !== 1 && order !== 2) refuse('solver_order', order, 'orders 1 and 2 are implemented (2 is diffusers\' default)');
  if (raw.solver_type !== undefined && raw.solver_type !== 'bh2') refuse('solver_type', raw.solver_type, 'only "bh2" (diffusers\' default) is implemented');
  if (raw.predict_x0 === false) refuse('predict_x0', false, 'only data prediction (diffusers\' default) is implemented');
  if (raw.disable_corrector !== undefined && raw.disable_corrector.length > 0) refuse('disable_corrector', raw.disable_corrector, 'the corrector runs at every step');
  const lowerOrderFinal = raw.lower_order_final ?? true;
  // the grid is DPM-Solver's (same set_timesteps); its solver keys do not apply here
  const { solver_type: _st, algorithm_type: _at, lambda_min_clipped: _l, euler_at_final: _e, ...gridConfig } = raw;
  void [_st, _at, _l, _e];
  const plan = dpmSolverPlan({ ...gridConfig, solver_order: 2 }, opts.steps);
  const sig = plan.sigmas;
  const n = plan.timesteps.length;
  if (!lowerOrderFinal && order > 1 && n > 1 && sig[n] === 0) refuse('lower_order_final', false, 'with a final σ of 0 the last second-order step divides by h = ∞: diffusers returns NaN; keep lower_order_final true or set final_sigmas_type "sigma_min"');
  const N = noise.data.length;

  const outs: (Float32Array | null)[] = Array.from({ length: order }, () => null);
  let lowerNums = 0;
  let thisOrder = 1;
  let lastSample: Float32Array | null = null;
  let x: Float32Array = noise.data.slice(); // init_noise_sigma = 1
  for (let i = 0; i < n; i++) {
    const t = plan.timesteps[i]!;
    const s = sig[i]!;
    const info: StepInfo = { step: i, numSteps: n, t, alphaBar: 1 / (1 + s * s), numTrainTimesteps: plan.config.numTrainTimesteps };
    const xt = like(noise, x);
    const out = await callModel(S, model, xt, info);
    const eps = out.eps.data;
    const [aS, sS] = alphaSigma(s);
    const conv = new Float32Array(N);
    for (let j = 0; j < N; j++) conv[j] = f32(f32(x[j]! - f32(sS * eps[j]!)) / aS);

    if (i > 0 && lastSample !== null) {
      // UniC: correct x_i from the previous step's start with the new output
      const m0 = outs[order - 1]!;
      const [aT, sT] = alphaSigma(s);
      const [, s0] = alphaSigma(sig[i - 1]!);
      const lam0 = lambdaOf(sig[i - 1]!);
      const h = f32(lambdaOf(s) - lam0);
      const { hPhi1, bH, b } = coefficients(h, thisOrder);
      let rhoD: number[] = [];
      let d1: Float32Array | null = null;
      let rhoLast = 0.5;
      if (thisOrder === 2) {
        const mi = outs[order - 2]!;
        const rk = f32(f32(lambdaOf(sig[i - 2]!) - lam0) / h);
        d1 = new Float32Array(N);
        for (let j = 0; j < N; j++) d1[j] = f32(f32(mi[j]! - m0[j]!) / rk);
        const rho = solve2(rk, b);
        rhoD = [rho[0]];
        rhoLast = rho[1];
      }
      const ratio = f32(sT / s0);
      const c1 = f32(aT * hPhi1);
      const c2 = f32(aT * bH);
      const last = lastSample;
      const corrected = new Float32Array(N);
      for (let j = 0; j < N; j++) {
        const base = f32(f32(ratio * last[j]!) - f32(c1 * m0[j]!));
        const corr = d1 === null ? 0 : f32(rhoD[0]! * d1[j]!);
        const dT = f32(conv[j]! - m0[j]!);
        corrected[j] = f32(base - f32(c2 * f32(corr + f32(rhoLast * dT))));
      }
      x = corrected;
    }
    for (let k = 0; k < order - 1; k++) outs[k] = outs[k + 1]!;
    outs[order - 1] = conv;
    thisOrder = lowerOrderFinal ? Math.min(order, n - i) : order;
    thisOrder = Math.min(thisOrder, lowerNums + 1);
    lastSample = x;

    // UniP: predict x_{i+1} from the (corrected) x_i
    const m0 = conv;
    const sn = sig[i + 1]!;
    const [aT, sT] = alphaSigma(sn);
    const [, s0] = alphaSigma(s);
    const lam0 = lambdaOf(s);
    const h = f32(lambdaOf(sn) - lam0);
    const { hPhi1, bH } = coefficients(h, thisOrder);
    let d1: Float32Array | null = null;
    if (thisOrder === 2) {
      const mi = outs[order - 2]!;
      const rk = f32(f32(lambdaOf(sig[i - 1]!) - lam0) / h);
      d1 = new Float32Array(N);
      for (let j = 0; j < N; j++) d1[j] = f32(f32(mi[j]! - m0[j]!) / rk);
    }
    const ratio = f32(sT / s0);
    const c1 = f32(aT * hPhi1);
    const c2 = f32(aT * bH);
    const prev = new Float32Array(N);
    for (let j = 0; j < N; j++) {
      const base = f32(f32(ratio * x[j]!) - f32(c1 * m0[j]!));
      const pred = d1 === null ? 0 : f32(0.5 * d1[j]!);
      prev[j] = f32(base - f32(c2 * pred));
    }
    if (lowerNums < order) lowerNums++;
    await emit(opts, info, xt, out, like(noise, conv), like(noise, prev), 1 / (1 + sn * sn));
    x = prev;
  }
  return like(noise, x);
}
