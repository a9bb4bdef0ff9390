/**
 * A small text encoder for the trained testbed (SPEC §6 "Trained"): token embedding (Gather) +
 * learned position embedding, pre-LN Transformer layers (self-attention without a causal mask,
 * QuickGELU MLP) and a final LayerNorm — CLIP's text transformer in miniature, without the
 * causal mask. Its `[B, L, width]` output is the U-Net's `encoder_hidden_states`.
 *
 * Initialisation: token embedding N(0, 0.02²) and position embedding N(0, 0.01²) as in CLIP;
 * linear layers PyTorch defaults; LayerNorms ones/zeros.
 */
import { z } from 'zod';
import { GraphBuilder } from '../graph/builder.ts';
import type { ParamFn } from './params.ts';
import { countParams, paramFnFor } from './init.ts';
import { type BatchDim, type MacTally, attention, batchDim, geluErf, layerNorm, linear, quickGelu } from './layers.ts';

const posInt = z.number().int().positive();

/** Configuration of {@link buildTextEncoder} (zod v4; defaults in the schema, `vocabSize` required). */
export const TextEncoderConfigSchema = z
  .object({
    /** Vocabulary size including the 4 special tokens (the tokenizer's `vocabSize`). */
    vocabSize: z.number().int().min(5),
    /** Tokens per prompt, padded/truncated (CLIP `max_position_embeddings`; default 16). */
    maxLength: z.number().int().min(2).default(16),
    /** Model width (CLIP `hidden_size`; default 64 = the U-Net's `contextDim`). */
    width: posInt.default(64),
    /** Transformer layers (default 1). */
    layers: posInt.default(1),
    /** Attention heads (default 4; must divide `width`). */
    heads: posInt.default(4),
    /** MLP width multiplier (CLIP `intermediate_size / hidden_size`; default 4). */
    mlpMult: posInt.default(4),
    /** MLP width (CLIP `intermediate_size`), overriding `mlpMult · width`. Default: `mlpMult · width`. */
    intermediateSize: posInt.optional(),
    /** Causal self-attention mask (token i sees tokens ≤ i), as CLIP's text transformer. Default false (memscope's trained encoders). */
    causal: z.boolean().optional(),
    /** MLP activation: `'quick_gelu'` (default; OpenAI CLIP, SD 1.x) or `'gelu'` (exact; OpenCLIP ViT-H, SD 2.x). */
    activation: z.enum(['quick_gelu', 'gelu']).optional(),
    /** LayerNorm ε (CLIP `layer_norm_eps`; default 1e-5). */
    layerNormEps: z.number().positive().optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.width % c.heads !== 0) ctx.addIssue({ code: 'custom', message: `width ${c.width} is not divisible by heads ${c.heads}`, path: ['heads'] });
  });

/** A parsed text-encoder configuration. */
export type TextEncoderConfig = z.output<typeof TextEncoderConfigSchema>;
/** A text-encoder configuration as written by a user (`vocabSize` required, the rest optional). */
export type TextEncoderConfigInput = z.input<typeof TextEncoderConfigSchema>;

/**
 * Add the text encoder's nodes to `b`: `ids` (int64 `[B, maxLength]`, from the tokenizer) →
 * float32 `[B, maxLength, width]`. Per layer (CLIP `CLIPEncoderLayer`, pre-LN):
 * `x + attn(LN₁ x)` (biased q/k/v, no mask), `x + fc2(QuickGELU(fc1(LN₂ x)))`; then the
 * final LayerNorm. `batch`: build-time batch size or `'dynamic'`.
 */
export function buildTextEncoder(b: GraphBuilder, cfgIn: TextEncoderConfigInput, ids: string, param: ParamFn, batch: BatchDim): string {
  return buildCounted(b, cfgIn, ids, param, batch).out;
}

function buildCounted(b: GraphBuilder, cfgIn: TextEncoderConfigInput, ids: string, param: ParamFn, batch: BatchDim): { out: string; macs: number } {
  const cfg = TextEncoderConfigSchema.parse(cfgIn);
  batchDim(batch);
  const tally: MacTally = { macs: 0 };
  const { width: W, maxLength: L } = cfg;
  const tok = param('token_embedding.weight', [cfg.vocabSize, W], { kind: 'normal', std: 0.02 }, { noDecay: true });
  const pos = param('position_embedding.weight', [L, W], { kind: 'normal', std: 0.01 }, { noDecay: true });
  let h = b.op('Add', [b.op('Gather', [tok, ids], { axis: 0 }), pos]);
  const ln = { eps: cfg.layerNormEps ?? 1e-5 };
  // CLIP's causal mask: the most negative float32 above the diagonal (transformers' finfo.min)
  const mask = cfg.causal === true ? b.constF32(Float32Array.from({ length: L * L }, (_, k) => (k % L > Math.floor(k / L) ? -3.4028234663852886e38 : 0)), [1, 1, L, L]) : null;
  const act = cfg.activation === 'gelu' ? geluErf : quickGelu;
  for (let i = 0; i < cfg.layers; i++) {
    const n = `layers.${i}`;
    const a = layerNorm(b, param, `${n}.layer_norm1`, h, W, ln);
    h = b.op('Add', [h, attention(b, param, `${n}.self_attn`, a, a, { dim: W, heads: cfg.heads, qLen: L, kvLen: L, qkvBias: true, batch, tally, ...(mask === null ? {} : { logitBias: mask }) })]);
    const m = layerNorm(b, param, `${n}.layer_norm2`, h, W, ln);
    const inner = cfg.intermediateSize ?? cfg.mlpMult * W;
    const f = linear(b, param, `${n}.mlp.fc2`, act(b, linear(b, param, `${n}.mlp.fc1`, m, W, inner, { tally, rows: L })), inner, W, { tally, rows: L });
    h = b.op('Add', [h, f]);
  }
  return { out: layerNorm(b, param, 'final_layer_norm', h, W, ln), macs: tally.macs };
}

/** Size and cost of a text-encoder configuration. */
export interface TextEncoderStats {
  /** Trainable scalars. */
  readonly params: number;
  /** Multiply-accumulates per prompt (linears and attention matmuls). */
  readonly forwardMacsPerPrompt: number;
  /** FLOPs per prompt, 2 per multiply-accumulate. */
  readonly forwardFlopsPerPrompt: number;
}

/** Parameter count and forward cost per prompt of a text-encoder configuration. */
export function textEncoderStats(cfgIn: TextEncoderConfigInput): TextEncoderStats {
  const cfg = TextEncoderConfigSchema.parse(cfgIn);
  const b = new GraphBuilder({ name: 'text_encoder_stats' });
  const reg = paramFnFor(b, 'input');
  const ids = b.input('input_ids', 'int64', ['B', cfg.maxLength]);
  const { macs } = buildCounted(b, cfg, ids, reg.param, 'dynamic');
  return { params: countParams(reg.specs), forwardMacsPerPrompt: macs, forwardFlopsPerPrompt: 2 * macs };
}
