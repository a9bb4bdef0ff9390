/**
 * Euler (Karras et al. 2022, Algorithm 2 with s_churn = 0), as diffusers' `EulerDiscreteScheduler`
 * driven by `StableDiffusionPipeline`.
 */
import type { Tensor } from '../tensor/tensor.ts';
import { eulerPlan } from '../schedules/timesteps.ts';
import type { SchedulerConfig, SchedulerConfigInput } from '../schedules/config.ts';
import { callVeModel, checkCommon, emit, f32, like, vpScale, rejectEta } from './common.ts';
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
  const N = noise.data.length;

  const init = plan.initNoiseSigma;
  let x = new Float32Array(N);
  for (let j = 0; j < N; j++) x[j] = f32(noise.data[j]! * init);
  for (let i = 0; i < n; i++) {
    const s = sig[i]!;
    const sn = sig[i + 1]!;
    const { xt, info, out } = await callVeModel(S, model, noise, x, { step: i, numSteps: n, t: plan.timesteps[i]!, sigma: s, numTrainTimesteps: c.numTrainTimesteps });
    const eps = out.eps.data;

    const dt = f32(sn - s);
    const x0 = new Float32Array(N);
    const prev = new Float32Array(N);
    const prevVp = new Float32Array(N);
    const scaleN = vpScale(sn);
    for (let j = 0; j < N; j++) {
      const p0 = f32(x[j]! - f32(s * eps[j]!));
      const d = f32(f32(x[j]! - p0) / s);
      const v = f32(x[j]! + f32(d * dt));
      x0[j] = p0;
      prev[j] = v;
      prevVp[j] = f32(v / scaleN);
    }
    await emit(opts, info, xt, out, like(noise, x0), like(noise, prevVp), 1 / (1 + sn * sn));
    x = prev;
  }
  return like(noise, x);
}
