/**
 * Euler ancestral (k-diffusion's `sample_euler_ancestral`, η = 1), as diffusers'
 * `EulerAncestralDiscreteScheduler` driven by `StableDiffusionPipeline`.
 */
import { rowSize, type Tensor } from '../tensor/tensor.ts';
import { eulerPlan } from '../schedules/timesteps.ts';
import type { SchedulerConfig, SchedulerConfigInput } from '../schedules/config.ts';
import { callVeModel, checkCommon, emit, f32, like, rejectEta, scaleF32, veEulerStep, vpOf } from './common.ts';
import type { EpsModel, SamplerOptions } from './types.ts';

/**
 * Sample with Euler ancestral: `EulerAncestralDiscreteScheduler` (the Euler grid — `linspace`
 * default, linear σ interpolation — always ending at σ = 0; `final_sigmas_type` is not one of its
 * options). Works in VE scale like {@link sampleEuler}; per step, with σ = σ_i, σ' = σ_{i+1}:
 *
 *   x̂0 = sample − σ ε̂,
 *   σ_up = √(σ'² (σ² − σ'²) / σ²),  σ_down = √(σ'² − σ_up²),
 *   sample' = sample + (sample − x̂0)/σ · (σ_down − σ) + σ_up z,   z = generators[b].randn(row shape),
 *
 * noise drawn at every step (the last included, where σ_up = 0), one row per generator, as diffusers
 * with a list of generators. Needs `opts.generators` (one per batch row). Events carry x_t and x_prev
 * in VP scale (sample/√(σ²+1)). Returns the final sample.
 */
export async function sampleEulerAncestral(
  model: EpsModel,
  noise: Tensor,
  config: SchedulerConfigInput | SchedulerConfig,
  opts: SamplerOptions & { readonly eta?: number },
): Promise<Tensor> {
  const S = 'euler-ancestral';
  const B = checkCommon(S, noise, opts);
  rejectEta(S, opts.eta);
  if (!opts.generators) throw new Error(`${S}: needs opts.generators (one normal source per batch row, ${B} here): it draws fresh noise at every step`);
  if (opts.generators.length !== B) throw new Error(`${S}: needs one generator per batch row: got ${opts.generators.length} generators for batch size ${B}`);
  const plan = eulerPlan({ ...config, final_sigmas_type: 'zero' } as SchedulerConfigInput, opts.steps);
  const c = plan.config;
  const sig = plan.sigmas;
  const n = plan.timesteps.length;
  const rowDims = noise.dims.slice(1);
  const R = rowSize(noise);

  let x = scaleF32(noise.data, plan.initNoiseSigma);
  for (let i = 0; i < n; i++) {
    const s = sig[i]!;
    const sn = sig[i + 1]!;
    const { xt, info, out } = await callVeModel(S, model, noise, x, { step: i, numSteps: n, t: plan.timesteps[i]!, sigma: s, numTrainTimesteps: c.numTrainTimesteps });
    // σ_up and σ_down in float32, in diffusers' order of operations on 0-d tensors
    const sn2 = f32(sn * sn);
    const s2 = f32(s * s);
    const up = f32(Math.sqrt(f32(f32(sn2 * f32(s2 - sn2)) / s2)));
    const down = f32(Math.sqrt(f32(sn2 - f32(up * up))));
    const { xHat0, next: prev } = veEulerStep(x, out.eps.data, s, f32(down - s));
    for (let b = 0; b < B; b++) {
      const z = opts.generators[b]!.randn(rowDims);
      if (z.length !== R) throw new Error(`${S}: generator ${b} returned ${z.length} values for row shape [${rowDims.join(', ')}] (${R} expected)`);
      const off = b * R;
      for (let k = 0; k < R; k++) prev[off + k] = f32(prev[off + k]! + f32(z[k]! * up));
    }
    await emit(opts, info, xt, out, like(noise, xHat0), like(noise, vpOf(prev, sn)), 1 / (1 + sn * sn));
    x = prev;
  }
  return like(noise, x);
}
