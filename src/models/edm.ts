/**
 * EDM preconditioning (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
 * Generative Models", Table 1 and §5) for memscope's trained U-Nets (issue 16 §2).
 *
 * The network F_θ is wrapped into the denoiser
 *
 *     D(x; σ) = c_skip(σ)·x + c_out(σ)·F_θ(c_in(σ)·x; c_noise(σ)),      x = x0 + σ·n  (VE scale)
 *     c_skip = σ_d²/(σ² + σ_d²),  c_out = σ·σ_d/√(σ² + σ_d²),  c_in = 1/√(σ² + σ_d²),  c_noise = ln(σ)/4
 *
 * with σ_d = 0.5 (the data scaled to [−1, 1]). Training (`src/train/edm-noise.ts`) draws ln σ ~ N(P_mean, P_std²) = N(−1.2, 1.2²)
 * (clamped to [σ_min, σ_max] = [0.002, 80]) and minimises λ(σ)·‖D(x; σ) − x0‖² with
 * λ(σ) = (σ² + σ_d²)/(σ·σ_d)². Because λ(σ)·c_out(σ)² = 1 exactly, that loss equals
 * ‖F_θ − F_target‖² with F_target = (x0 − c_skip·x)/c_out (Karras et al. eq. 8); the training graph
 * computes this form, which is better conditioned in float32 at small σ.
 *
 * The U-Net's time embedding is the diffusers sinusoid, built for timesteps in [0, 1000); it
 * receives `noiseLabelScale · c_noise` (default 250, so ln σ over [0.002, 80] spans ≈ 660 label
 * units, the range of the VP timesteps the embedding was designed for). This is a fixed linear
 * relabelling of c_noise, recorded in `model.json`.
 *
 * memscope's samplers and studies call an ε-model in VP scale at timesteps of the training
 * schedule. The inference graph of an EDM model therefore keeps the diffusers signature
 * (`sample`, `timestep`[, `encoder_hidden_states`] → `out_sample` = ε̂): σ(t) is read from the
 * schedule's σ table (linear interpolation for fractional t, as diffusers' Euler does), the VP
 * input becomes x = x_vp·√(1 + σ²), and ε̂ = (x − D(x; σ))/σ. A second graph offers D itself at
 * any σ (`x`, `sigma` → `denoised`) for EDM's own sampler.
 */
import { z } from 'zod';
import type { GraphBuilder } from '../graph/builder.ts';

/** σ_data of EDM (data in [−1, 1]). */
export const EDM_SIGMA_DATA = 0.5;
/** EDM's σ_min. */
export const EDM_SIGMA_MIN = 0.002;
/** EDM's σ_max. */
export const EDM_SIGMA_MAX = 80;
/** Default factor from c_noise to the U-Net's timestep input. */
export const EDM_NOISE_LABEL_SCALE = 250;

/** The preconditioning recorded in a model's config (`model.preconditioning`; absent = plain ε-prediction). */
export const EdmPreconditioningSchema = z
  .object({
    kind: z.literal('edm'),
    /** σ_data (default 0.5). */
    sigmaData: z.number().positive().default(EDM_SIGMA_DATA),
    /** The U-Net's timestep input is `noiseLabelScale · ln(σ)/4` (default 250). */
    noiseLabelScale: z.number().positive().default(EDM_NOISE_LABEL_SCALE),
  })
  .strict();
/** A resolved EDM preconditioning. */
export type EdmPreconditioning = z.output<typeof EdmPreconditioningSchema>;

/** The four EDM coefficients at one σ (c_noise unscaled: ln(σ)/4). */
export interface EdmCoefficients {
  readonly cSkip: number;
  readonly cOut: number;
  readonly cIn: number;
  readonly cNoise: number;
}

/** c_skip, c_out, c_in, c_noise at `sigma` (> 0) for σ_data `sigmaData` (default 0.5), in float64. */
export function edmCoefficients(sigma: number, sigmaData = EDM_SIGMA_DATA): EdmCoefficients {
  if (!(sigma > 0) || !Number.isFinite(sigma)) throw new Error(`edmCoefficients: sigma must be a finite number > 0, got ${sigma}`);
  const s2 = sigma * sigma + sigmaData * sigmaData;
  return { cSkip: (sigmaData * sigmaData) / s2, cOut: (sigma * sigmaData) / Math.sqrt(s2), cIn: 1 / Math.sqrt(s2), cNoise: Math.log(sigma) / 4 };
}

/**
 * Add the EDM coefficient nodes for σ `[B,1,1,1]` (float32 graph value): returns the names of
 * c_skip, c_out, c_in (`[B,1,1,1]`) and the U-Net timestep input `noiseLabelScale·ln(σ)/4` (`[B]`,
 * reshaped with `batchDimValue`: the batch size or −1).
 */
export function edmCoefficientNodes(b: GraphBuilder, sigma4: string, precond: EdmPreconditioning, batchDimValue: number): { cSkip: string; cOut: string; cIn: string; noiseLabel: string } {
  const sd2 = b.constF32(precond.sigmaData * precond.sigmaData);
  const s2 = b.op('Add', [b.op('Mul', [sigma4, sigma4]), sd2]);
  const root = b.op('Sqrt', [s2]);
  const cSkip = b.op('Div', [sd2, s2]);
  const cOut = b.op('Div', [b.op('Mul', [sigma4, b.constF32(precond.sigmaData)]), root]);
  const cIn = b.op('Reciprocal', [root]);
  const label = b.op('Mul', [b.op('Log', [sigma4]), b.constF32(precond.noiseLabelScale / 4)]);
  const noiseLabel = b.op('Reshape', [label, b.constI64([batchDimValue])]);
  return { cSkip, cOut, cIn, noiseLabel };
}

/**
 * σ(t) `[B]` from float timesteps `t` `[B]` on the schedule's σ table (length T, increasing):
 * t clamped to [0, T−1], then linear interpolation between ⌊t⌋ and ⌊t⌋ + 1 (exact at integers).
 */
export function sigmaTableNodes(b: GraphBuilder, t: string, sigmas: ArrayLike<number>): string {
  const T = sigmas.length;
  const table = b.constF32(Array.from(sigmas));
  const tc = b.op('Clip', [t, b.constF32(0), b.constF32(T - 1)]);
  const lo = b.op('Floor', [tc]);
  const hi = b.op('Min', [b.op('Add', [lo, b.constF32(1)]), b.constF32(T - 1)]);
  const w = b.op('Sub', [tc, lo]);
  const sLo = b.op('Gather', [table, b.op('Cast', [lo], { to: 7 })], { axis: 0 });
  const sHi = b.op('Gather', [table, b.op('Cast', [hi], { to: 7 })], { axis: 0 });
  return b.op('Add', [sLo, b.op('Mul', [w, b.op('Sub', [sHi, sLo])])]);
}

/** Whether a `model.json` / model config records EDM preconditioning (old files: no field ⇒ false). */
export function isEdmModel(modelConfig: unknown): boolean {
  return modelConfig !== null && typeof modelConfig === 'object' && (modelConfig as { preconditioning?: { kind?: unknown } }).preconditioning?.kind === 'edm';
}
