/**
 * What samplers call and what they emit. A sampler is a plain async function
 * `sampleX(model, noise, config, opts)`; it calls `model` once per step and emits one
 * `StepEvent` per step to `opts.onStep`. History (e.g. DPM-Solver's previous x̂0) stays local
 * to the sampler's loop.
 */
import type { Tensor } from '../tensor/tensor.ts';
import type { NormalSource } from '../random/normal.ts';

/** The noise level of one model call as a sampler sees it. */
export interface StepInfo {
  /** 0-based inference step index. */
  readonly step: number;
  readonly numSteps: number;
  /** The timestep passed to the model (fractional for Euler). */
  readonly t: number;
  /** ᾱ at this timestep (for Euler: 1/(1+σ²) with σ interpolated as the scheduler does). */
  readonly alphaBar: number;
  /** Number of training timesteps (1000), for schedules keyed on t/T. */
  readonly numTrainTimesteps: number;
  /**
   * The VE noise level σ = √((1 − ᾱ)/ᾱ) to evaluate at, set only by σ-samplers (`heun-edm`) whose
   * σ need not lie on the schedule's grid (EDM's σ_max = 80 lies above a VP schedule's ≈ 14.6); `t`
   * is then the schedule's timestep of σ, clamped to the grid, a label for schedules keyed on t/T.
   */
  readonly sigma?: number;
  /**
   * 1 for a second-order sampler's correction call within step `step` (Heun's evaluation at
   * σ_{i+1}): guidance reuses the scale it chose for the step and records nothing (default 0).
   */
  readonly evaluation?: 0 | 1;
}

/** What a model returns to a sampler: ε̂, and when guided, the branches, scale and magnitude. */
export interface ModelOutput {
  /** The guided noise estimate ε̂ `[B, ...]`. */
  readonly eps: Tensor;
  /** ε_u = ε_θ(x_t, t, e_∅), when the model is guided. */
  readonly epsU?: Tensor;
  /** ε_c = ε_θ(x_t, t, e), when the model is guided. */
  readonly epsC?: Tensor;
  /** Guidance scale s used for each batch row. */
  readonly s?: Float64Array;
  /** d_t = ‖ε_c − ε_u‖² for each batch row (SPEC §0). */
  readonly d?: Float64Array;
}

/** The model a sampler drives: `xt` is the VP-scale model input `[B, ...]`. */
export type EpsModel = (xt: Tensor, info: StepInfo) => Promise<ModelOutput>;

/** One denoising step as observers see it (SPEC §1). Observers must not mutate any field. */
export interface StepEvent {
  readonly step: number;
  readonly numSteps: number;
  readonly t: number;
  readonly alphaBar: number;
  /** x_t in VP scale (what the model saw) `[B, ...]`. */
  readonly xt: Tensor;
  /** ε̂ (guided). */
  readonly eps: Tensor;
  /** x̂0(t) = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t, as the sampler used it (after clipping when configured). */
  readonly xHat0: Tensor;
  readonly epsU: Tensor | null;
  readonly epsC: Tensor | null;
  /** Guidance scale per row (null when unguided). */
  readonly s: Float64Array | null;
  /** d_t per row (null when unguided). */
  readonly d: Float64Array | null;
  /** The state after this step in VP scale: x_{t_prev} (x_0 after the last step). */
  readonly xPrev: Tensor;
  /** ᾱ at t_prev (1 after the last step when the scheduler ends at σ = 0). */
  readonly alphaBarPrev: number;
}

/** Options common to every sampler. */
export interface SamplerOptions {
  /** Number of inference steps (> 0). */
  readonly steps: number;
  /** Called once per step, in order; may be async (awaited). */
  readonly onStep?: (e: StepEvent) => void | Promise<void>;
  /**
   * One normal source per batch row, for stochastic samplers (DDIM η > 0): each step's noise for
   * row b is `generators[b].randn(rowShape)`, as diffusers does with a list of generators.
   */
  readonly generators?: readonly NormalSource[];
}
