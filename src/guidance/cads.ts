/**
 * CADS, condition-annealed diffusion sampling (Sadat et al., ICLR 2024), as Jain et al. (CVPR 2025)
 * run it beside their guidance schedules: at timestep t the conditioning y (the U-Net's
 * `encoder_hidden_states` of the batch, unconditional and conditional rows together) is replaced by
 *
 *     ŷ = √γ(t) · y + s · √(1 − γ(t)) · n,   n ~ N(0, I),
 *     γ(t) = 1 for t ≤ τ₁,  (τ₂ − t)/(τ₂ − τ₁) for τ₁ < t ≤ τ₂,  0 for t > τ₂,
 *     y' = ψ · ((ŷ − mean(ŷ)) · std(y)/std(ŷ) + mean(y)) + (1 − ψ) · ŷ      (rescaled to y's statistics),
 *
 * means and standard deviations over the whole batch tensor. Defaults are Jain et al.'s code's:
 * s = 0.1, ψ = 1, τ₁ = 500, τ₂ = 800 (timesteps of 1000). Their code draws n with `torch.rand`
 * (uniform on [0, 1)); memscope follows the CADS paper's Gaussian. n comes from a torch-identical
 * generator seeded by (seed, t), so a run is reproducible; the same timestep gets the same noise in
 * every batch of that size.
 */
import { TorchGenerator } from '../random/torch.ts';

/** CADS settings; defaults in {@link CADS_DEFAULTS}. */
export interface CadsOptions {
  /** Noise scale s. */
  readonly s: number;
  /** Rescale mix ψ ∈ [0, 1]. */
  readonly psi: number;
  /** γ = 1 at and below this timestep. */
  readonly tau1: number;
  /** γ = 0 above this timestep. */
  readonly tau2: number;
  /** Seed of the noise. */
  readonly seed: number;
}

/** Jain et al.'s code's CADS settings (s 0.1, ψ 1, τ₁ 500, τ₂ 800), seed 0. */
export const CADS_DEFAULTS: CadsOptions = { s: 0.1, psi: 1, tau1: 500, tau2: 800, seed: 0 };

/** γ(t) of CADS: 1 for t ≤ τ₁, linear down to 0 at τ₂, 0 above. */
export function cadsGamma(t: number, tau1: number, tau2: number): number {
  if (t <= tau1) return 1;
  if (t > tau2) return 0;
  return (tau2 - t) / (tau2 - tau1);
}

function meanStd(v: ArrayLike<number>): { mean: number; std: number } {
  let m = 0;
  for (let i = 0; i < v.length; i++) m += v[i]!;
  m /= v.length;
  let q = 0;
  for (let i = 0; i < v.length; i++) q += (v[i]! - m) ** 2;
  // torch.std: the unbiased estimate
  return { mean: m, std: Math.sqrt(q / Math.max(1, v.length - 1)) };
}

/** The CADS-annealed conditioning of batch `y` (flattened `[B, L, E]`) at timestep `t` (see the module note); `y` is not modified. */
export function cadsCondition(y: Float32Array, t: number, o: CadsOptions = CADS_DEFAULTS): Float32Array {
  const g = cadsGamma(t, o.tau1, o.tau2);
  if (g === 1) return y;
  const n = new TorchGenerator(o.seed * 100_003 + Math.round(t)).randn([y.length]);
  const a = Math.sqrt(g);
  const b = o.s * Math.sqrt(1 - g);
  const yh = new Float32Array(y.length);
  for (let i = 0; i < y.length; i++) yh[i] = a * y[i]! + b * n[i]!;
  const src = meanStd(y);
  const cur = meanStd(yh);
  const k = cur.std > 0 ? src.std / cur.std : 0;
  const out = new Float32Array(y.length);
  for (let i = 0; i < y.length; i++) out[i] = o.psi * ((yh[i]! - cur.mean) * k + src.mean) + (1 - o.psi) * yh[i]!;
  return out;
}
