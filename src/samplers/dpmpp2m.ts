/**
 * DPM-Solver++(2M) (Lu et al. 2022), as diffusers' `DPMSolverMultistepScheduler` with
 * `algorithm_type="dpmsolver++"`, `solver_order=2`, `solver_type="midpoint"`.
 */
import type { Tensor } from '../tensor/tensor.ts';
import { dpmSolverPlan } from '../schedules/timesteps.ts';
import type { SchedulerConfig, SchedulerConfigInput } from '../schedules/config.ts';
import { callModel, checkCommon, emit, f32, like, alphaSigma, rejectEta } from './common.ts';
import type { EpsModel, SamplerOptions, StepInfo } from './types.ts';

/** λ = log α − log σ_t in float32 (+∞ at σ = 0). */
function lambda(a: number, s: number): number {
  return f32(f32(Math.log(a)) - f32(Math.log(s)));
}

/**
 * Sample with DPM-Solver++(2M): `DPMSolverMultistepScheduler` (config resolved with its defaults:
 * `linspace`, `solver_order` 2, `lower_order_final` true, `final_sigmas_type` "zero").
 *
 * `noise` is the N(0, I) draw (`init_noise_sigma` = 1). With σ_i from the grid, α_i = 1/√(σ_i²+1),
 * s_i = σ_i α_i, λ_i = log α_i − log s_i and h = λ_{i+1} − λ_i, each step computes the data
 * prediction x̂0 = (x − s_i ε̂)/α_i (`convert_model_output`) and
 *
 *   first order:  x' = (s_{i+1}/s_i) x − α_{i+1}(e^{−h} − 1) x̂0
 *   second order: x' = (s_{i+1}/s_i) x − α_{i+1}(e^{−h} − 1) D0 − ½ α_{i+1}(e^{−h} − 1) D1,
 *                 D0 = x̂0_i, D1 = (x̂0_i − x̂0_{i−1})/r0, r0 = (λ_i − λ_{i−1})/h.
 *
 * First order at the first step, and at the last step when `euler_at_final`, or
 * `lower_order_final` with fewer than 15 steps, or `final_sigmas_type` "zero" (diffusers' exact
 * condition; with the default σ_last = 0 the last step is always first order and returns x̂0).
 * Emits one {@link StepEvent} per step; returns the final sample.
 */
export async function sampleDpmpp2m(
  model: EpsModel,
  noise: Tensor,
  config: SchedulerConfigInput | SchedulerConfig,
  opts: SamplerOptions & { readonly eta?: number },
): Promise<Tensor> {
  const S = 'dpmpp2m';
  checkCommon(S, noise, opts);
  rejectEta(S, opts.eta);
  const plan = dpmSolverPlan(config, opts.steps);
  const c = plan.config;
  const sig = plan.sigmas;
  const n = plan.timesteps.length;
  const N = noise.data.length;

  let x: Tensor = like(noise, noise.data.slice()); // latents * init_noise_sigma (1.0)
  let prevX0: Float32Array | null = null;
  let lowerOrderNums = 0;
  for (let i = 0; i < n; i++) {
    const t = plan.timesteps[i]!;
    const s = sig[i]!;
    const sn = sig[i + 1]!;
    const info: StepInfo = { step: i, numSteps: n, t, alphaBar: 1 / (1 + s * s), numTrainTimesteps: c.numTrainTimesteps };
    const out = await callModel(S, model, x, info);
    const eps = out.eps.data;
    const xd = x.data;

    const [aS, sS] = alphaSigma(s);
    const x0 = new Float32Array(N);
    for (let j = 0; j < N; j++) x0[j] = f32(f32(xd[j]! - f32(sS * eps[j]!)) / aS);

    const lowerOrderFinal =
      i === n - 1 && (c.eulerAtFinal || (c.lowerOrderFinal && n < 15) || c.finalSigmasType === 'zero');
    const [aT, sT] = alphaSigma(sn);
    const lamT = lambda(aT, sT);
    const lamS = lambda(aS, sS);
    const h = f32(lamT - lamS);
    const c1 = f32(sT / sS);
    const c2 = f32(aT * f32(f32(Math.exp(-h)) - 1));
    const prev = new Float32Array(N);
    if (c.solverOrder === 1 || lowerOrderNums < 1 || lowerOrderFinal || prevX0 === null) {
      for (let j = 0; j < N; j++) prev[j] = f32(f32(c1 * xd[j]!) - f32(c2 * x0[j]!));
    } else {
      const [aS1, sS1] = alphaSigma(sig[i - 1]!);
      const h0 = f32(lamS - lambda(aS1, sS1));
      const r0 = f32(h0 / h);
      const invR0 = f32(1 / r0);
      const c3 = f32(0.5 * c2);
      for (let j = 0; j < N; j++) {
        const d1 = f32(invR0 * f32(x0[j]! - prevX0[j]!));
        prev[j] = f32(f32(f32(c1 * xd[j]!) - f32(c2 * x0[j]!)) - f32(c3 * d1));
      }
    }
    if (lowerOrderNums < c.solverOrder) lowerOrderNums++;
    prevX0 = x0;
    const xPrev = like(noise, prev);
    await emit(opts, info, x, out, like(noise, x0), xPrev, 1 / (1 + sn * sn));
    x = xPrev;
  }
  return x;
}
