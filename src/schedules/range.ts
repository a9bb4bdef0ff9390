/**
 * The noise range of a scheduler config, computed in one place (issue 15 §5): ᾱ of every training
 * timestep and σ_min / σ_max = √((1 − ᾱ)/ᾱ) at the first and last of them (SPEC §0).
 */
import { alphaBars, betas, sigmaFromAlphaBar } from './betas.ts';
import type { SchedulerConfig } from './config.ts';

/** ᾱ per training timestep and the σ range of a {@link SchedulerConfig}. */
export interface NoiseRange {
  /** ᾱ_t for t = 0 … num_train_timesteps − 1 (float32-rounded as diffusers builds them). */
  readonly alphaBar: Float64Array;
  /** σ at the first training timestep, √((1 − ᾱ_0)/ᾱ_0). */
  readonly sigmaMin: number;
  /** σ at the last training timestep, √((1 − ᾱ_T)/ᾱ_T) (≈ 14.6 for SD 1.x's scaled-linear 1000-step schedule). */
  readonly sigmaMax: number;
}

/** ᾱ and σ_min / σ_max of `config` (its β schedule, train timesteps and β range, or its trained betas). */
export function noiseRange(config: SchedulerConfig): NoiseRange {
  const alphaBar = alphaBars(betas(config.beta_schedule, { numTrainTimesteps: config.num_train_timesteps, betaStart: config.beta_start, betaEnd: config.beta_end, trainedBetas: config.trained_betas }));
  return { alphaBar, sigmaMin: sigmaFromAlphaBar(alphaBar[0]!), sigmaMax: sigmaFromAlphaBar(alphaBar[alphaBar.length - 1]!) };
}
