/**
 * PNDM's pseudo linear multistep method (PLMS; Liu et al. 2022, "Pseudo Numerical Methods for
 * Diffusion Models on Manifolds"), as diffusers' `PNDMScheduler` with `skip_prk_steps` driven by
 * `StableDiffusionPipeline` — the scheduler of Stable Diffusion 1.x's own `scheduler_config.json`.
 */
import type { Tensor } from '../tensor/tensor.ts';
import { pndmPlan } from '../schedules/timesteps.ts';
import type { SchedulerConfig, SchedulerConfigInput } from '../schedules/config.ts';
import { callModel, checkCommon, emit, f32, like, rejectEta } from './common.ts';
import type { EpsModel, SamplerOptions, StepInfo } from './types.ts';

/**
 * Sample with PLMS: `PNDMScheduler.step_plms` (config resolved with PNDM's defaults: `leading`,
 * `set_alpha_to_one` false; `skip_prk_steps` must be true). n steps make n + 1 model calls: the
 * grid's second timestep is visited twice. With ε̂_k the k-th stored output (the second call's
 * output is not stored, as in diffusers) the combined ε is
 *
 *   call 0:  ε̂_0 (x_T kept);  call 1: (ε̂ + ε̂_0)/2 applied again from x_T over the first interval;
 *   then (3ε_1 − ε_0)/2, (23ε_2 − 16ε_1 + 5ε_0)/12, and (55ε_3 − 59ε_2 + 37ε_1 − 9ε_0)/24,
 *
 * and the update from t to t' = t − T//n (PNDM eq. 9, diffusers' `_get_prev_sample`):
 *
 *   x' = √(ᾱ'/ᾱ) x − (ᾱ' − ᾱ) ε / (ᾱ √(1 − ᾱ') + √(ᾱ (1 − ᾱ) ᾱ')),
 *
 * with ᾱ' = 1 (`set_alpha_to_one`) or ᾱ_0 below t = 0; float32 in diffusers' order of operations.
 * ε-prediction only (a v-prediction model would need its raw outputs combined before conversion:
 * refused). Emits one {@link StepEvent} per model call (numSteps = n + 1; x̂0 is the call's own
 * prediction (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t; the second call lands at the ᾱ it started from); returns x_0.
 */
export async function samplePndm(
  model: EpsModel,
  noise: Tensor,
  config: SchedulerConfigInput | SchedulerConfig,
  opts: SamplerOptions & { readonly eta?: number },
): Promise<Tensor> {
  const S = 'pndm';
  checkCommon(S, noise, opts);
  rejectEta(S, opts.eta);
  const plan = pndmPlan(config, opts.steps);
  const c = plan.config;
  if (c.predictionType !== 'epsilon') throw new Error(`scheduler config: prediction_type = "${c.predictionType}" is not supported by the pndm sampler (memscope's PLMS combines ε outputs; use ddim, dpmpp2m or euler for this model)`);
  const ab = plan.alphaBars;
  const ratio = plan.stepRatio;
  const N = noise.data.length;
  const calls = plan.timesteps.length;

  const ets: Float32Array[] = [];
  let curSample: Float32Array | null = null;
  let x: Float32Array = noise.data.slice(); // init_noise_sigma = 1
  for (let counter = 0; counter < calls; counter++) {
    const gridT = plan.timesteps[counter]!;
    const info: StepInfo = { step: counter, numSteps: calls, t: gridT, alphaBar: ab[gridT]!, numTrainTimesteps: c.numTrainTimesteps };
    const xt = like(noise, x);
    const out = await callModel(S, model, xt, info);
    const e = out.eps.data;

    let t = gridT;
    let prevT = gridT - ratio;
    if (counter !== 1) {
      if (ets.length > 3) ets.shift();
      ets.push(e.slice());
    } else {
      prevT = gridT;
      t = gridT + ratio;
    }
    const mo = new Float32Array(N);
    let sample: Float32Array = x;
    const L = ets.length;
    if (L === 1 && counter === 0) {
      mo.set(e);
      curSample = x;
    } else if (L === 1 && counter === 1) {
      const e0 = ets[0]!;
      for (let j = 0; j < N; j++) mo[j] = f32(f32(e[j]! + e0[j]!) / 2);
      sample = curSample!;
      curSample = null;
    } else if (L === 2) {
      const [a, b] = [ets[1]!, ets[0]!];
      for (let j = 0; j < N; j++) mo[j] = f32(f32(f32(3 * a[j]!) - b[j]!) / 2);
    } else if (L === 3) {
      const [a, b, d] = [ets[2]!, ets[1]!, ets[0]!];
      for (let j = 0; j < N; j++) mo[j] = f32(f32(f32(f32(23 * a[j]!) - f32(16 * b[j]!)) + f32(5 * d[j]!)) / 12);
    } else {
      const [a, b, d, g] = [ets[3]!, ets[2]!, ets[1]!, ets[0]!];
      const k = f32(1 / 24);
      for (let j = 0; j < N; j++) mo[j] = f32(k * f32(f32(f32(f32(55 * a[j]!) - f32(59 * b[j]!)) + f32(37 * d[j]!)) - f32(9 * g[j]!)));
    }

    // _get_prev_sample(sample, t, prevT, mo)
    const aT = ab[t]!;
    const aP = prevT >= 0 ? ab[prevT]! : plan.finalAlphaBar;
    const bT = f32(1 - aT);
    const bP = f32(1 - aP);
    const sc = f32(Math.sqrt(f32(aP / aT)));
    const denom = f32(f32(aT * f32(Math.sqrt(bP))) + f32(Math.sqrt(f32(f32(aT * bT) * aP))));
    const dA = f32(aP - aT);
    const prev = new Float32Array(N);
    for (let j = 0; j < N; j++) prev[j] = f32(f32(sc * sample[j]!) - f32(f32(dA * mo[j]!) / denom));
    // the event: this call's x_t, its ε̂ and the x̂0 they predict at the call's timestep (the model's own
    // prediction, as for every sampler), and the multistep update's result
    const aG = ab[gridT]!;
    const sqrtA = f32(Math.sqrt(aG));
    const sqrtB = f32(Math.sqrt(f32(1 - aG)));
    const x0 = new Float32Array(N);
    for (let j = 0; j < N; j++) x0[j] = f32(f32(x[j]! - f32(sqrtB * e[j]!)) / sqrtA);
    await emit(opts, info, xt, out, like(noise, x0), like(noise, prev), aP);
    x = prev;
  }
  return like(noise, x);
}
