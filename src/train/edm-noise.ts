/**
 * EDM training noise (Karras et al. 2022, §5): the log-normal σ draw, the loss weight λ(σ) and
 * the noised training batch of `memscope train`. The preconditioning itself (c_skip, c_out, c_in,
 * c_noise, the graph nodes and the model-config schema) is in `src/models/edm.ts`, which inference
 * uses too.
 */
import type { Tensor } from '../tensor/tensor.ts';
import { stepGenerator } from './noise.ts';
import { lossWeight, type LossBand } from './noise.ts';
import { EDM_SIGMA_DATA, EDM_SIGMA_MAX, EDM_SIGMA_MIN, edmCoefficients, type EdmPreconditioning } from '../models/edm.ts';

/** P_mean of EDM's log-normal training σ. */
export const EDM_P_MEAN = -1.2;
/** P_std of EDM's log-normal training σ. */
export const EDM_P_STD = 1.2;
/** EDM's loss weight λ(σ) = (σ² + σ_d²)/(σ·σ_d)². */
export function edmLossWeight(sigma: number, sigmaData = EDM_SIGMA_DATA): number {
  return (sigma * sigma + sigmaData * sigmaData) / (sigma * sigmaData) ** 2;
}

/** Options of {@link edmNoiseBatch}. */
export interface EdmNoiseOptions {
  readonly seed: number;
  readonly step: number;
  readonly precond: EdmPreconditioning;
  /** Loss band (σ ∈ [lo, hi] weighted by ρ; default none). */
  readonly band?: LossBand | null;
  readonly pMean?: number;
  readonly pStd?: number;
  readonly sigmaMin?: number;
  readonly sigmaMax?: number;
}

/** A noised EDM training batch: what the EDM training graph takes. */
export interface EdmNoisedBatch {
  /** σ per row (float64, as drawn and clamped). */
  readonly sigma: Float64Array;
  /** n ~ N(0, I) shaped like x0 (x = x0 + σ·n). */
  readonly noise: Tensor;
  /** Graph inputs `[B,1,1,1]` (float32): σ, c_skip, c_out, c_in. */
  readonly sigma4: Float32Array;
  readonly cSkip: Float32Array;
  readonly cOut: Float32Array;
  readonly cIn: Float32Array;
  /** The U-Net's timestep input per row: noiseLabelScale·ln(σ)/4 (float32 `[B]`). */
  readonly noiseLabel: Float32Array;
  /** Extra loss weight per row (1, or ρ inside a band); λ(σ) itself is folded into the F-target form. */
  readonly weight: Float64Array;
}

/**
 * Draw an EDM training batch for clean rows `x0` `[B, ...]` at `(seed, step)`: ln σ =
 * P_mean + P_std·z with `z = torch.randn([B])` of the `'level'` stream, σ clamped to
 * [σ_min, σ_max]; n = `torch.randn(x0.shape)` of the `'noise'` stream (the same streams as VP
 * training, so runs are reproducible and resumable in the same way).
 */
export function edmNoiseBatch(x0: Tensor, o: EdmNoiseOptions): EdmNoisedBatch {
  const B = x0.dims[0]!;
  const pMean = o.pMean ?? EDM_P_MEAN;
  const pStd = o.pStd ?? EDM_P_STD;
  const lo = o.sigmaMin ?? EDM_SIGMA_MIN;
  const hi = o.sigmaMax ?? EDM_SIGMA_MAX;
  const z = stepGenerator(o.seed, o.step, 'level').randn([B]);
  const noise = stepGenerator(o.seed, o.step, 'noise').randn(x0.dims);
  const sigma = new Float64Array(B);
  const sigma4 = new Float32Array(B);
  const cSkip = new Float32Array(B);
  const cOut = new Float32Array(B);
  const cIn = new Float32Array(B);
  const noiseLabel = new Float32Array(B);
  const weight = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    const s = Math.min(hi, Math.max(lo, Math.exp(pMean + pStd * z[b]!)));
    const c = edmCoefficients(s, o.precond.sigmaData);
    sigma[b] = s;
    sigma4[b] = s;
    cSkip[b] = c.cSkip;
    cOut[b] = c.cOut;
    cIn[b] = c.cIn;
    noiseLabel[b] = o.precond.noiseLabelScale * c.cNoise;
    weight[b] = lossWeight(s, o.band ?? null);
  }
  return { sigma, noise: { dims: [...x0.dims], data: noise }, sigma4, cSkip, cOut, cIn, noiseLabel, weight };
}
