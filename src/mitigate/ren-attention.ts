/**
 * Ren et al. 2024 ("Unveiling and Mitigating Memorization in Text-to-image Diffusion Models through
 * Cross Attention", ECCV 2024), a baseline of Jain et al. 2025 (SPEC §4.4): memorized prompts
 * concentrate the cross-attention on a few (trigger) token embeddings instead of spreading it, or
 * parking it on the start token.
 *
 * Detection ("attention entropy"; code renjie3/MemAttn `detect.py`, `read_results.py`,
 * `MemAttn.py`): for the conditional branch, average the cross-attention probabilities over the
 * query pixels and the heads of each layer, then over the layers, giving one distribution ā over
 * ALL token positions (start token, words, end token and padding — all 77 in SD); the entropy is
 * `E = −Σ_i ā_i log ā_i` (natural log; the average is taken before the entropy). Their score "E"
 * uses the first sampling step and one layer (index 3 of SD 1.4's 16 cross-attention layers);
 * their score "D" averages E over the last 10 of 50 steps over all layers and adds the change of
 * the padding tokens' entropy. Low entropy = concentrated attention = memorization.
 * {@link attentionEntropy} computes E at one noise level for chosen layers (default: all), per seed,
 * then averages over the seeds (their code generates one image per prompt).
 *
 * Inference-time mitigation (`refactored_attention_processor.py`, run with
 * `--miti_mem --cross_attn_mask --c1 1.25`): in every cross-attention layer at every step,
 * (1) mask the attention to every token after the prompt's end token (logits → −∞; the positions
 * `< prompt_length`, i.e. start, words and end, stay; `--mask_length_minis1` also masks the end
 * token), and (2) multiply the pre-softmax logit (`q·k/√d`) of the start token by C = 1.25 in the
 * conditional rows only (`attn_weight[1::2, :, :, 0] *= c1`), which moves attention mass onto the
 * start token and away from every other token, triggers included.
 *
 * What memscope implements ({@link renMitigatedDenoiser}): exactly that rule, on a U-Net rebuilt from
 * the trained model's weights with cross-attention exposed plus a per-token logit SCALE input
 * (`logit'_i = scale_i · logit_i + bias_i`), because a multiplicative rescale of one token's logits
 * cannot be written as an additive per-token bias (the start token's logit
 * varies per pixel and head). Differences from their code: the unconditional rows get neither the
 * mask nor the scale (their code also applies the conditional prompt's padding mask to the
 * unconditional row of the pair, which the Denoiser interface cannot pair up); memscope prompts use
 * `<pad>` tokens after `<end>` (CLIP repeats its end token), so the mask removes the padding
 * embeddings; and C = 1.25 was tuned for SD's start token, whose logit is large (an attention sink),
 * while memscope's small text model need not have one — check `startMass` before relying on it.
 * An extra additive per-token bias (`tokenBias`) down-weights chosen (trigger) tokens directly.
 *
 * On a Stable Diffusion export the same rule and the same entropy run on the export's own U-Net
 * after graph surgery (`graph/cross-attention.ts`: scale and bias inserted before every `attn2`
 * softmax, head-averaged probabilities out), through the same {@link CrossAttentionUnet}
 * interface (`denoisers/attention.ts`, {@link RenTarget}); there the tokens are CLIP's (`<|startoftext|>`, BPE tokens,
 * `<|endoftext|>`, then SD 1.x's `<|endoftext|>` or SD 2.x's `!` padding) and, as in their code,
 * the mask covers everything after the FIRST end token.
 */
import { checkConds, type CondRef, type Denoiser, type NoiseLevel } from '../denoisers/denoiser.ts';
import type { TrainedModel } from '../denoisers/trained.ts';
import type { AttentionOutput, CrossAttentionUnet, LogitAdjustment } from '../denoisers/attention.ts';
import { type Tensor, assertFinite, batchSize, numel } from '../tensor/tensor.ts';

/** The graph surgery lives in `src/graph/cross-attention.ts`; re-exported here, where the public API has always had it. */
export { CROSS_ATTENTION_SCALE, addLogitScale } from '../graph/cross-attention.ts';

/** Ren et al.'s inference-time defaults (`local_cmd_inference_time_mitigation.sh`: `--c1 1.25 --cross_attn_mask`). */
export const REN_DEFAULTS = { startScale: 1.25, maskPadding: true, maskEnd: false } as const;

/** The additive logit value used as "−∞" for masked tokens (exp underflows to exactly 0 in float32). */
export const MASKED_LOGIT = -1e9;

/** The one cross-attention interface under the name this module has always used for it (see `denoisers/attention.ts`). */
export type ScaledAttentionUnet = CrossAttentionUnet;

/**
 * A trained text model's U-Net with its cross-attention exposed and adjustable per token (a new
 * session of `model.openAttention`: the inference U-Net rebuilt with the attention exposed and the
 * logit scale spliced in; prompt embeddings from its text encoder, e_∅ = `''`). The caller disposes it.
 */
export async function scaledAttentionUnet(model: TrainedModel): Promise<CrossAttentionUnet> {
  if (model.openAttention === null) throw new Error(`${model.denoiser.name}: cross-attention exists only in text-conditioned models`);
  return model.openAttention();
}

/** Options of {@link renMitigatedDenoiser} and {@link renAdjustment}; defaults in {@link REN_DEFAULTS}. */
export interface RenOptions {
  /** C: factor on the start token's logits in the conditional rows (default 1.25, `--c1`; 1 = off). */
  readonly startScale?: number;
  /** Mask every token after `<end>` in the conditional rows (default true, `--cross_attn_mask`). */
  readonly maskPadding?: boolean;
  /** Also mask the `<end>` token (default false, `--mask_length_minis1`). */
  readonly maskEnd?: boolean;
  /**
   * Extra additive logit bias for condition `cond` (L values, e.g. `log w < 0` on trigger tokens;
   * `undefined` = none), added in the conditional rows. Not part of Ren et al.'s rule. Default none.
   */
  readonly tokenBias?: (cond: number, tokens: readonly string[]) => ArrayLike<number> | undefined;
}

/** Start tokens {@link renAdjustment} accepts: memscope's word tokenizer's and CLIP's (Stable Diffusion). */
export const START_TOKENS: readonly string[] = ['<start>', '<|startoftext|>'];
/** End tokens {@link renAdjustment} accepts: memscope's word tokenizer's and CLIP's (Stable Diffusion). */
export const END_TOKENS: readonly string[] = ['<end>', '<|endoftext|>'];

/**
 * The scale and bias (L values each) Ren et al.'s rule gives a conditional row with tokens `tokens`
 * (see the module note). The first token must be a start token ({@link START_TOKENS}); the prompt
 * ends at the FIRST end token ({@link END_TOKENS}) — SD 1.x pads with `<|endoftext|>` itself, SD 2.x
 * with `!`, memscope with `<pad>` — and every token after it is masked (default; `maskEnd` also masks it).
 */
export function renAdjustment(tokens: readonly string[], opts: Omit<RenOptions, 'tokenBias'> = {}): { scale: Float32Array; bias: Float32Array } {
  const L = tokens.length;
  const c1 = opts.startScale ?? REN_DEFAULTS.startScale;
  if (!Number.isFinite(c1)) throw new Error(`Ren et al.: startScale must be finite, got ${c1}`);
  const scale = new Float32Array(L).fill(1);
  const bias = new Float32Array(L);
  if (!START_TOKENS.includes(tokens[0] ?? '')) throw new Error(`Ren et al.: expected the first token to be a start token (${START_TOKENS.join(' or ')}), got ${tokens[0]}`);
  scale[0] = c1;
  if (opts.maskPadding ?? REN_DEFAULTS.maskPadding) {
    const end = tokens.findIndex((t) => END_TOKENS.includes(t));
    if (end < 0) throw new Error(`Ren et al.: the prompt has no end token (${END_TOKENS.join(' or ')})`);
    const from = (opts.maskEnd ?? REN_DEFAULTS.maskEnd) ? end : end + 1;
    bias.fill(MASKED_LOGIT, from);
  }
  return { scale, bias };
}

/** A denoiser with Ren et al.'s mitigation, and access to its mitigated attention. */
export interface RenDenoiser extends Denoiser {
  /** The underlying U-Net (run it with {@link RenDenoiser.adjustment} to see the mitigated probabilities). */
  readonly attention: CrossAttentionUnet;
  /** The logit adjustment the denoiser applies to a batch with conditions `cond`. */
  adjustment(cond: readonly CondRef[]): Required<LogitAdjustment>;
}

/** A model other than a trained memscope model that Ren et al.'s mitigation can run on (a Stable Diffusion export). */
export interface RenTarget {
  /** The plain denoiser (its name, space, shape and conditions are the mitigated denoiser's). */
  readonly denoiser: Denoiser;
  /** The same U-Net with cross-attention exposed and adjustable (disposed by the mitigated denoiser's `dispose`). */
  readonly attention: CrossAttentionUnet;
}

/**
 * Ren et al. 2024 inference-time mitigation as a {@link Denoiser}: every call runs the U-Net with
 * the start-token logits of the conditional rows times C (default 1.25) and the tokens after
 * the prompt's end token masked (default on); unconditional rows (`null`) run unchanged. Same
 * conditions as `model.denoiser`; `startScale: 1, maskPadding: false` gives the plain model.
 * `model` is a trained memscope text model (its U-Net rebuilt by {@link scaledAttentionUnet}) or a
 * {@link RenTarget} (e.g. a Stable Diffusion export's U-Net after graph surgery).
 */
export async function renMitigatedDenoiser(model: TrainedModel | RenTarget, opts: RenOptions & { readonly name?: string } = {}): Promise<RenDenoiser> {
  const att = 'unetBytes' in model ? await scaledAttentionUnet(model) : model.attention;
  const L = att.contextLength;
  const K = 'unetBytes' in model ? model.prompts.length : model.denoiser.conditions.length;
  const rows: { scale: Float32Array; bias: Float32Array }[] = [];
  for (let k = 0; k < K; k++) {
    const toks = att.tokens(k);
    const r = renAdjustment(toks, opts);
    const extra = opts.tokenBias?.(k, toks);
    if (extra !== undefined) {
      if (extra.length !== L) throw new Error(`Ren et al.: tokenBias for condition ${k} has ${extra.length} values, expected ${L}`);
      for (let i = 0; i < L; i++) r.bias[i] = r.bias[i]! + extra[i]!;
    }
    rows.push(r);
  }
  const adjustment = (cond: readonly CondRef[]): Required<LogitAdjustment> => {
    const scale = new Float32Array(cond.length * L).fill(1);
    const bias = new Float32Array(cond.length * L);
    cond.forEach((c, r) => {
      if (c === null) return;
      scale.set(rows[c]!.scale, r * L);
      bias.set(rows[c]!.bias, r * L);
    });
    return { scale, bias };
  };
  const name = opts.name ?? `${model.denoiser.name}+ren`;
  const self: RenDenoiser = {
    name,
    space: model.denoiser.space,
    shape: model.denoiser.shape,
    conditions: model.denoiser.conditions,
    attention: att,
    adjustment,
    predict: async (xt, level, cond) => {
      checkConds(self, cond, batchSize(xt));
      const out = await att.run(xt, level, cond, adjustment(cond), { probs: false });
      assertFinite(`${name}: output at t = ${level.t}`, out.eps);
      return { dims: [...xt.dims], data: out.eps.data };
    },
    dispose: () => att.dispose(),
  };
  return self;
}

/** Options of {@link attentionProfile} / {@link attentionEntropy}. */
export interface AttentionEntropyOptions {
  /** Cross-attention layers to average (names from `layers`; default all). Their detection score "E" uses one layer. */
  readonly layers?: readonly string[];
  /** Logit adjustment per row of the batch (e.g. a mitigation's; default none). */
  readonly adjust?: LogitAdjustment;
}

/** The averaged token attention of one condition at one noise level, per seed. */
export interface AttentionProfile {
  /** Token strings (length L). */
  readonly tokens: string[];
  /** Layers used. */
  readonly layers: readonly string[];
  /** Per seed: ā over the L tokens (mean over query pixels, heads, then layers). */
  readonly distributions: Float64Array[];
  /** Per seed: E = −Σ ā_i ln ā_i. */
  readonly entropies: number[];
  /** Mean of `entropies` over the seeds. */
  readonly entropy: number;
  /** Mean over seeds of ā on the start token. */
  readonly startMass: number;
}

/** The entropy of the token distribution `a` (natural log; 0·ln 0 = 0). */
export function tokenEntropy(a: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    if (v > 0) e -= v * Math.log(v);
  }
  return e;
}

/**
 * Ren et al. 2024 attention profile of condition `cond` on the seeds' `xT` `[N, ...shape]` at
 * `level` (their detection uses the first step): ā per seed (pixels, heads, then the chosen
 * layers averaged — default all) and its entropy over all L tokens. Uses `model.attention` (load
 * with `exposeCrossAttention: true`), or the scaled U-Net when `opts.adjust` is given.
 */
export async function attentionProfile(
  model: TrainedModel | CrossAttentionUnet,
  cond: number,
  xT: Tensor,
  level: NoiseLevel,
  opts: AttentionEntropyOptions = {},
): Promise<AttentionProfile> {
  const N = batchSize(xT);
  const conds = new Array<CondRef>(N).fill(cond);
  let out: AttentionOutput;
  let tokens: string[];
  let all: readonly string[];
  let att: CrossAttentionUnet;
  if ('run' in model) att = model;
  else {
    if (model.attention === null) throw new Error(`${model.denoiser.name}: load the model with exposeCrossAttention: true to measure attention entropy`);
    att = model.attention;
  }
  out = await att.run(xT, level, conds, opts.adjust ?? {});
  tokens = att.tokens(cond);
  all = att.layers;
  const layers = opts.layers ?? all;
  if (layers.length === 0) throw new Error('attentionProfile: no layers selected');
  const L = tokens.length;
  const distributions: Float64Array[] = [];
  for (let b = 0; b < N; b++) distributions.push(new Float64Array(L));
  for (const name of layers) {
    const p = out.probs.get(name);
    if (p === undefined) throw new Error(`attentionProfile: no cross-attention layer '${name}' (layers: ${all.join(', ')})`);
    const q = p.dims[1]!;
    if (p.dims[0] !== N || p.dims[2] !== L || numel(p.dims) !== p.data.length) throw new Error(`attentionProfile: layer '${name}' has probabilities [${p.dims.join(', ')}], expected [${N}, qLen, ${L}]`);
    for (let b = 0; b < N; b++) {
      const acc = distributions[b]!;
      const w = 1 / (q * layers.length);
      for (let r = 0; r < q; r++) {
        const off = (b * q + r) * L;
        for (let i = 0; i < L; i++) acc[i] = acc[i]! + p.data[off + i]! * w;
      }
    }
  }
  const entropies = distributions.map(tokenEntropy);
  return {
    tokens,
    layers,
    distributions,
    entropies,
    entropy: entropies.reduce((a, v) => a + v, 0) / N,
    startMass: distributions.reduce((a, d) => a + d[0]!, 0) / N,
  };
}

/**
 * Ren et al. 2024 attention entropy E of condition `cond` at `level`, averaged over the seeds'
 * `xT` (see {@link attentionProfile}; default all layers, all L tokens). Lower = more concentrated.
 */
export async function attentionEntropy(model: TrainedModel | CrossAttentionUnet, cond: number, xT: Tensor, level: NoiseLevel, opts: AttentionEntropyOptions = {}): Promise<number> {
  return (await attentionProfile(model, cond, xT, level, opts)).entropy;
}
