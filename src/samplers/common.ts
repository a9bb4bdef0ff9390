/**
 * Plumbing shared by the samplers: argument checks, the checked model call, the step event.
 *
 * The samplers emulate diffusers' float32 tensor arithmetic: every scalar coefficient that
 * diffusers holds in a 0-d float32 tensor, and every element-wise tensor operation, is rounded to
 * float32 with `Math.fround` in the same order of operations (a float64 operation followed by one
 * rounding to float32 equals the float32 operation for + − × ÷ √). What is left are the last bits
 * of float32 log/exp (libm vs. V8), so trajectories match diffusers to float32 round-off.
 */
import { assertFinite, batchSize, numel, type Tensor } from '../tensor/tensor.ts';
import type { EpsModel, ModelOutput, SamplerOptions, StepEvent, StepInfo } from './types.ts';

/** `Math.fround`: round a float64 to the nearest float32. */
export const f32 = Math.fround;

/** √(σ² + 1) in float32, as `(sigma**2 + 1) ** 0.5` on a 0-d float32 tensor (the Euler samplers' VP scale). */
export function vpScale(sigma: number): number {
  return f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
}

/**
 * The model call of the samplers that carry the VE-scale sample (the Euler samplers): the model
 * gets `scale_model_input` = sample/√(σ²+1) in float32 at the step's timestep, with ᾱ = 1/(1+σ²).
 * Returns that x_t, the step info and the checked output.
 */
export async function callVeModel(
  sampler: string,
  model: EpsModel,
  like0: Tensor,
  sample: Float32Array,
  step: { readonly step: number; readonly numSteps: number; readonly t: number; readonly sigma: number; readonly numTrainTimesteps: number },
): Promise<{ xt: Tensor; info: StepInfo; out: ModelOutput }> {
  const xt = like(like0, vpOf(sample, step.sigma));
  const info: StepInfo = { step: step.step, numSteps: step.numSteps, t: step.t, alphaBar: 1 / (1 + step.sigma * step.sigma), numTrainTimesteps: step.numTrainTimesteps };
  return { xt, info, out: await callModel(sampler, model, xt, info) };
}

/**
 * One Euler step of the VE-scale sample (both Euler samplers), in float32 as diffusers:
 * x̂0 = sample − σ ε̂, d = (sample − x̂0)/σ, sample' = sample + d·dt. Returns x̂0 and sample'.
 */
export function veEulerStep(sample: Float32Array, eps: Float32Array, sigma: number, dt: number): { xHat0: Float32Array; next: Float32Array } {
  const N = sample.length;
  const xHat0 = new Float32Array(N);
  const next = new Float32Array(N);
  for (let j = 0; j < N; j++) {
    const p0 = f32(sample[j]! - f32(sigma * eps[j]!));
    const d = f32(f32(sample[j]! - p0) / sigma);
    xHat0[j] = p0;
    next[j] = f32(sample[j]! + f32(d * dt));
  }
  return { xHat0, next };
}

/** `a`·k in float32 (`init_noise_sigma`·noise). */
export function scaleF32(a: Float32Array, k: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let j = 0; j < a.length; j++) out[j] = f32(a[j]! * k);
  return out;
}

/** The VP view of a VE-scale sample at σ: sample/√(σ²+1) in float32 (`scale_model_input`). */
export function vpOf(sample: Float32Array, sigma: number): Float32Array {
  const scale = vpScale(sigma);
  const out = new Float32Array(sample.length);
  for (let j = 0; j < sample.length; j++) out[j] = f32(sample[j]! / scale);
  return out;
}

/** diffusers `_sigma_to_alpha_sigma_t` on a float32 σ: α = 1/√(σ²+1), σ_t = σ·α (float32). */
export function alphaSigma(sigma: number): [number, number] {
  const a = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
  return [a, f32(sigma * a)];
}

/** Check the options and the noise every sampler shares; returns the batch size. */
export function checkCommon(sampler: string, noise: Tensor, opts: SamplerOptions): number {
  if (opts === null || typeof opts !== 'object') throw new Error(`${sampler}: options are required ({ steps })`);
  if (!Number.isInteger(opts.steps) || opts.steps < 1) {
    throw new Error(`${sampler}: steps must be a positive integer, got ${String(opts.steps)}`);
  }
  if (!noise || !Array.isArray(noise.dims) || !(noise.data instanceof Float32Array)) {
    throw new Error(`${sampler}: noise must be a Tensor { dims, data: Float32Array }`);
  }
  if (noise.dims.length < 1 || noise.dims[0]! < 1) {
    throw new Error(`${sampler}: noise must be batched [B, ...] with B ≥ 1, got shape [${noise.dims.join(', ')}]`);
  }
  if (numel(noise.dims) !== noise.data.length) {
    throw new Error(`${sampler}: noise shape [${noise.dims.join(', ')}] needs ${numel(noise.dims)} values, data has ${noise.data.length}`);
  }
  assertFinite(`${sampler}: noise`, noise);
  return batchSize(noise);
}

/** Reject η for the deterministic samplers. */
export function rejectEta(sampler: string, eta: number | undefined): void {
  if (eta !== undefined && eta !== 0) throw new Error(`${sampler}: eta = ${eta} is only defined for the ddim sampler`);
}

/**
 * Call the model and check its answer: ε̂ must have the shape of x_t and be finite (the error
 * names the sampler, the step and t).
 */
export async function callModel(sampler: string, model: EpsModel, xt: Tensor, info: StepInfo): Promise<ModelOutput> {
  const out = await model(xt, info);
  const where = `${sampler}: model output at step ${info.step} (t = ${info.t})`;
  if (!out || !out.eps || !(out.eps.data instanceof Float32Array)) throw new Error(`${where}: expected { eps: Tensor }`);
  const e = out.eps;
  if (e.dims.length !== xt.dims.length || e.dims.some((d, i) => d !== xt.dims[i]) || e.data.length !== xt.data.length) {
    throw new Error(`${where}: eps has shape [${e.dims.join(', ')}], expected [${xt.dims.join(', ')}]`);
  }
  assertFinite(where, e);
  return out;
}

/** Build the step event (SPEC §1) and await the observer, if any. */
export async function emit(
  opts: SamplerOptions,
  info: StepInfo,
  xt: Tensor,
  out: ModelOutput,
  xHat0: Tensor,
  xPrev: Tensor,
  alphaBarPrev: number,
): Promise<void> {
  if (!opts.onStep) return;
  const e: StepEvent = {
    step: info.step,
    numSteps: info.numSteps,
    t: info.t,
    alphaBar: info.alphaBar,
    xt,
    eps: out.eps,
    xHat0,
    epsU: out.epsU ?? null,
    epsC: out.epsC ?? null,
    s: out.s ?? null,
    d: out.d ?? null,
    xPrev,
    alphaBarPrev,
  };
  await opts.onStep(e);
}

/** A tensor with the dims of `like` over `data`. */
export function like(likeT: Tensor, data: Float32Array): Tensor {
  return { dims: [...likeT.dims], data };
}
