/**
 * DDIM (Song et al. 2021), as diffusers' `DDIMScheduler.step` driven by `StableDiffusionPipeline`.
 */
import { rowSize, type Tensor } from '../tensor/tensor.ts';
import { ddimPlan } from '../schedules/timesteps.ts';
import type { SchedulerConfig, SchedulerConfigInput } from '../schedules/config.ts';
import { callModel, checkCommon, emit, f32, like } from './common.ts';
import type { EpsModel, SamplerOptions, StepInfo } from './types.ts';

/** Options of {@link sampleDdim}. */
export interface DdimOptions extends SamplerOptions {
  /** η ≥ 0 (default 0: deterministic DDIM; 1: DDPM-like). η > 0 needs one generator per batch row. */
  readonly eta?: number;
  /**
   * diffusers' `use_clipped_model_output` (default false, as in `StableDiffusionPipeline` and
   * `DDIMPipeline`): when true, ε is recomputed from the clipped x̂0 before the direction term.
   */
  readonly useClippedModelOutput?: boolean;
}

/**
 * Sample with DDIM: `DDIMScheduler` (config resolved with DDIM's defaults: `leading`,
 * `clip_sample` true, `set_alpha_to_one` true — SD configs override the last two with false).
 *
 * `noise` is the N(0, I) draw `[B, ...]` (`init_noise_sigma` = 1). Per step, t on the grid and
 * t_prev = t − T//n (every spacing, as diffusers):
 *
 *   x̂0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t, clamped to ±clip_sample_range when clip_sample;
 *   σ_t = η √((1−ᾱ_prev)/(1−ᾱ_t) · (1 − ᾱ_t/ᾱ_prev));
 *   x_prev = √ᾱ_prev x̂0 + √(1 − ᾱ_prev − σ_t²) ε̂ + σ_t z,   z = generators[b].randn(row shape),
 *
 * with ᾱ_prev = 1 (`set_alpha_to_one`) or ᾱ_0 after the last step. For η > 0 noise is drawn at
 * every step (the last included, where σ_t may be 0), like diffusers with a list of generators.
 * Emits one {@link StepEvent} per step; returns x_0.
 */
export async function sampleDdim(
  model: EpsModel,
  noise: Tensor,
  config: SchedulerConfigInput | SchedulerConfig,
  opts: DdimOptions,
): Promise<Tensor> {
  const S = 'ddim';
  const B = checkCommon(S, noise, opts);
  const eta = opts.eta ?? 0;
  if (!Number.isFinite(eta) || eta < 0) throw new Error(`${S}: eta must be a finite number ≥ 0, got ${eta}`);
  const rowDims = noise.dims.slice(1);
  const R = rowSize(noise);
  if (eta > 0) {
    if (!opts.generators) throw new Error(`${S}: eta = ${eta} > 0 needs opts.generators (one normal source per batch row, ${B} here)`);
    if (opts.generators.length !== B) {
      throw new Error(`${S}: eta = ${eta} > 0 needs one generator per batch row: got ${opts.generators.length} generators for batch size ${B}`);
    }
  }
  const plan = ddimPlan(config, opts.steps);
  const c = plan.config;
  const n = plan.timesteps.length;
  const range = f32(c.clipSampleRange);
  const etaF = f32(eta);
  const N = noise.data.length;

  let x: Tensor = like(noise, noise.data.slice()); // latents * init_noise_sigma (1.0)
  for (let i = 0; i < n; i++) {
    const t = plan.timesteps[i]!;
    const aT = plan.alphaBar[i]!;
    const aP = plan.alphaBarPrev[i]!;
    const info: StepInfo = { step: i, numSteps: n, t, alphaBar: aT, numTrainTimesteps: c.numTrainTimesteps };
    const out = await callModel(S, model, x, info);
    const eps = out.eps.data;
    const xd = x.data;

    const bT = f32(1 - aT);
    const sqrtB = f32(Math.sqrt(bT));
    const sqrtA = f32(Math.sqrt(aT));
    const x0 = new Float32Array(N);
    for (let j = 0; j < N; j++) {
      let v = f32(f32(xd[j]! - f32(sqrtB * eps[j]!)) / sqrtA);
      if (c.clipSample) v = v < -range ? -range : v > range ? range : v;
      x0[j] = v;
    }
    const variance = f32(f32(f32(1 - aP) / bT) * f32(1 - f32(aT / aP)));
    const std = f32(etaF * f32(Math.sqrt(variance)));
    const dirC = f32(Math.sqrt(f32(f32(1 - aP) - f32(std * std))));
    const sqrtAP = f32(Math.sqrt(aP));
    const prev = new Float32Array(N);
    for (let j = 0; j < N; j++) {
      const pe = opts.useClippedModelOutput ? f32(f32(xd[j]! - f32(sqrtA * x0[j]!)) / sqrtB) : eps[j]!;
      prev[j] = f32(f32(sqrtAP * x0[j]!) + f32(dirC * pe));
    }
    if (eta > 0) {
      for (let b = 0; b < B; b++) {
        const z = opts.generators![b]!.randn(rowDims);
        if (z.length !== R) throw new Error(`${S}: generator ${b} returned ${z.length} values for row shape [${rowDims.join(', ')}] (${R} expected)`);
        const off = b * R;
        for (let k = 0; k < R; k++) prev[off + k] = f32(prev[off + k]! + f32(std * z[k]!));
      }
    }
    const xPrev = like(noise, prev);
    await emit(opts, info, x, out, like(noise, x0), xPrev, aP);
    x = xPrev;
  }
  return x;
}
