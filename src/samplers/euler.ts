/**
 * Euler (Karras et al. 2022, Algorithm 2 with s_churn = 0), as diffusers' `EulerDiscreteScheduler`
 * driven by `StableDiffusionPipeline`.
 */
import type { Tensor } from '../tensor/tensor.ts';
import { eulerPlan } from '../schedules/timesteps.ts';
import type { SchedulerConfig, SchedulerConfigInput } from '../schedules/config.ts';
import { callVeModel, checkCommon, emit, f32, like, rejectEta, scaleF32, veEulerStep, vpOf } from './common.ts';
import type { EpsModel, SamplerOptions } from './types.ts';

/**
 * Sample with Euler: `EulerDiscreteScheduler` (config resolved with its defaults: `linspace`,
 * `final_sigmas_type` "zero"; linear σ interpolation, discrete timesteps, s_churn = 0).
 *
 * The scheduler works in VE scale, sample = x_t·√(σ²+1). `noise` is the N(0, I) draw; it is
 * multiplied by `init_noise_sigma` (σ_max for `linspace`/`trailing`, √(σ_max²+1) for `leading`).
 * Per step the model gets `scale_model_input` = sample/√(σ²+1) (VP scale) and the float32
 * timestep t (fractional for `linspace`), with ᾱ = 1/(1+σ²); then
 *
 *   x̂0 = sample − σ ε̂,  d = (sample − x̂0)/σ,  sample' = sample + d·(σ_next − σ).
 *
 * Events carry x_t and x_prev in VP scale (sample/√(σ²+1)). Returns the final sample as diffusers
 * leaves it (equal to its VP value when the last σ is 0, the default).
 */
export async function sampleEuler(
  model: EpsModel,
  noise: Tensor,
  config: SchedulerConfigInput | SchedulerConfig,
  opts: SamplerOptions & { readonly eta?: number },
): Promise<Tensor> {
  const S = 'euler';
  checkCommon(S, noise, opts);
  rejectEta(S, opts.eta);
  const plan = eulerPlan(config, opts.steps);
  const c = plan.config;
  const sig = plan.sigmas;
  const n = plan.timesteps.length;

  let x = scaleF32(noise.data, plan.initNoiseSigma);
  for (let i = 0; i < n; i++) {
    const s = sig[i]!;
    const sn = sig[i + 1]!;
    const { xt, info, out } = await callVeModel(S, model, noise, x, { step: i, numSteps: n, t: plan.timesteps[i]!, sigma: s, numTrainTimesteps: c.numTrainTimesteps });
    const { xHat0, next } = veEulerStep(x, out.eps.data, s, f32(sn - s));
    await emit(opts, info, xt, out, like(noise, xHat0), like(noise, vpOf(next, sn)), 1 / (1 + sn * sn));
    x = next;
  }
  return like(noise, x);
}
