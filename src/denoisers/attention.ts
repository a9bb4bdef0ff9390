/**
 * The one cross-attention interface (issue 15 §5): a U-Net whose cross-attention probabilities
 * come out and whose cross-attention logits can be adjusted per token. Every model source with
 * the `attention` capability provides it — a trained memscope text model (its U-Net rebuilt with
 * the attention exposed, `denoisers/trained.ts`) and a Stable Diffusion export (graph surgery on
 * its U-Net, `sd/cross-attention.ts`) — and Ren et al.'s detector (attention entropy) and
 * mitigation (`mitigate/ren-attention.ts`) use only this interface.
 */
import type { CondRef, NoiseLevel } from './denoiser.ts';
import type { Tensor } from '../tensor/tensor.ts';

/** Per-row adjustments of the cross-attention logits (each `B·L` values; defaults: scale 1, bias 0): `logit' = scale · logit + bias`. */
export interface LogitAdjustment {
  readonly scale?: Float32Array;
  readonly bias?: Float32Array;
}

/** One U-Net call with cross-attention exposed. */
export interface AttentionOutput {
  /** ε̂ `[B, ...shape]`. */
  readonly eps: Tensor;
  /** Per cross-attention layer (in graph order): probabilities averaged over heads `[B, qLen, contextLength]` (empty when not asked for). */
  readonly probs: ReadonlyMap<string, Tensor>;
}

/**
 * A U-Net with its cross-attention exposed and adjustable per token: every cross-attention logit
 * becomes `scale[b, i] · (q·k_i/√d) + bias[b, i]`; scale 1 and bias 0 give the plain U-Net.
 */
export interface CrossAttentionUnet {
  /** Cross-attention layer names, in graph order. */
  readonly layers: readonly string[];
  /** Tokens per prompt (L): the context length. */
  readonly contextLength: number;
  /** The token strings of condition `cond` (null: the unconditional prompt), length L. */
  tokens(cond: CondRef): string[];
  /** Run on `xt` `[B, ...shape]` with conditions `cond` and the logit adjustment; `probs: false` computes ε̂ only (empty `probs`). */
  run(xt: Tensor, level: NoiseLevel, cond: readonly CondRef[], adjust?: LogitAdjustment, opts?: { readonly probs?: boolean }): Promise<AttentionOutput>;
  dispose(): Promise<void>;
}
