/**
 * A miniature conditional U-Net (diffusers `UNet2DConditionModel` in small) as an ONNX graph
 * builder (SPEC §2.3, §6 "Trained"): `conv_in`; down levels of ResNet blocks (with Transformer
 * blocks where configured) and stride-2 conv down-sampling; a mid block (ResNet, Transformer,
 * ResNet); up levels of `layersPerLevel + 1` ResNet blocks on skip concatenations with nearest
 * 2× up-sampling + conv; GroupNorm–SiLU–`conv_out`. Conditioning by text (cross-attention to
 * `encoder_hidden_states`), by class (an embedding table added to the time embedding, row
 * `numClasses` = the null class), or none.
 *
 * Initialisation: PyTorch defaults everywhere (no zero-initialised convs), as diffusers leaves
 * them. Parameter names follow diffusers' module paths loosely (`down.1.res.0.conv1.weight`).
 */
import { z } from 'zod';
import { GraphBuilder } from '../graph/builder.ts';
import type { ParamFn } from './params.ts';
import { countParams, paramFnFor } from './init.ts';
import { CROSS_ATTENTION_BIAS, CROSS_ATTENTION_PROBS_PREFIX } from '../graph/cross-attention.ts';
import {
  type BatchDim,
  type MacTally,
  attention,
  batchDim,
  conv2d,
  feedForward,
  groupNorm,
  layerNorm,
  reshape,
  resnetBlock2d,
  silu,
  timestepEmbedding,
  upsample2x,
} from './layers.ts';

const posInt = z.number().int().positive();

/**
 * Configuration of {@link buildUnet} (zod v4; every field has a default). The defaults give a
 * 32×32 single-channel text-conditioned U-Net with channels 32/64/64, one ResNet per down level,
 * and Transformer blocks (self- and cross-attention, GEGLU feed-forward) at the 16×16 and 8×8
 * levels and in the mid block.
 */
export const UnetConfigSchema = z
  .object({
    /** Channels per level (diffusers `block_out_channels`; default [32, 64, 64]). */
    channels: z.array(posInt).min(1).default([32, 64, 64]),
    /** ResNet blocks per down level; up levels have one more (diffusers `layers_per_block`; default 1). */
    layersPerLevel: posInt.default(1),
    /** Which levels have Transformer blocks (`CrossAttnDownBlock2D`/`CrossAttnUpBlock2D`; default [false, true, true]). */
    attentionLevels: z.array(z.boolean()).default([false, true, true]),
    /** Transformer block in the mid block (`UNetMidBlock2DCrossAttn`; default true). */
    midAttention: z.boolean().default(true),
    /** Self-attention before the cross-attention in each Transformer block (default true, as diffusers). */
    selfAttention: z.boolean().default(true),
    /** GEGLU feed-forward width multiplier (diffusers `FeedForward(mult=4)`; default 4). */
    ffMult: posInt.default(4),
    /** GroupNorm groups (diffusers `norm_num_groups`; default 8). */
    groups: posInt.default(8),
    /** GroupNorm/LayerNorm ε of the ResNets and output norm (diffusers `norm_eps`; default 1e-5). */
    normEps: z.number().positive().default(1e-5),
    /** Width of `encoder_hidden_states` (diffusers `cross_attention_dim`; default 64 = the text encoder width). */
    contextDim: posInt.default(64),
    /** Tokens in `encoder_hidden_states` (default 16 = the text encoder `maxLength`). */
    contextLength: posInt.default(16),
    /** Attention heads (diffusers `attention_head_dim`, which counts heads in SD 1.x; default 4). */
    heads: posInt.default(4),
    /** Heads per level, overriding `heads` (diffusers' list `attention_head_dim`, SD 2.x `[5, 10, 20, 20]`; the mid block takes the last). Default: `heads` everywhere. */
    headsPerLevel: z.array(posInt).optional(),
    /** GELU of the GEGLU feed-forward: `'tanh'` (memscope's trained models) or `'erf'` (diffusers' exact GELU). Default `'tanh'`. */
    ffGelu: z.enum(['tanh', 'erf']).optional(),
    /** Time-embedding width (diffusers `time_embed_dim` = 4·channels[0]; default 128). */
    timeEmbedDim: posInt.default(128),
    /** Image channels in and out (default 1). */
    inChannels: posInt.default(1),
    /** Image height = width (default 32). */
    sampleSize: posInt.default(32),
    /** `'text'` (cross-attention to `context`), `'class'` (class embedding) or `'none'` (default `'text'`). */
    conditioning: z.enum(['text', 'class', 'none']).default('text'),
    /** Classes for `'class'` conditioning; the table has `numClasses + 1` rows, the last = null class (default 10). */
    numClasses: posInt.default(10),
  })
  .strict()
  .superRefine((c, ctx) => {
    const issue = (message: string, path: string): void => ctx.addIssue({ code: 'custom', message, path: [path] });
    if (c.attentionLevels.length !== c.channels.length) issue(`attentionLevels has ${c.attentionLevels.length} entries for ${c.channels.length} levels`, 'attentionLevels');
    if (c.headsPerLevel !== undefined && c.headsPerLevel.length !== c.channels.length) issue(`headsPerLevel has ${c.headsPerLevel.length} entries for ${c.channels.length} levels`, 'headsPerLevel');
    for (const [i, ch] of c.channels.entries()) {
      const h = c.headsPerLevel?.[i] ?? c.heads;
      if (ch % c.groups !== 0) issue(`channels ${ch} not divisible by groups ${c.groups}`, 'channels');
      if (ch % h !== 0) issue(`channels ${ch} not divisible by heads ${h}`, 'channels');
    }
    if (c.sampleSize % 2 ** (c.channels.length - 1) !== 0) issue(`sampleSize ${c.sampleSize} is not divisible by 2^${c.channels.length - 1}`, 'sampleSize');
    if (c.channels[0]! % 2 !== 0) issue('channels[0] (the sinusoid width) must be even', 'channels');
  });

/** A parsed U-Net configuration (every field present). */
export type UnetConfig = z.output<typeof UnetConfigSchema>;
/** A U-Net configuration as written by a user (fields optional). */
export type UnetConfigInput = z.input<typeof UnetConfigSchema>;

/** Graph values {@link buildUnet} reads. */
export interface UnetIO {
  /** Noisy sample, float32 `[B, inChannels, sampleSize, sampleSize]`. */
  readonly sample: string;
  /** Timesteps, float32 `[B]`. */
  readonly timestep: string;
  /** Text conditioning, float32 `[B, contextLength, contextDim]` (required for `'text'`). */
  readonly context?: string;
  /** Class ids, int64 `[B]` in `[0, numClasses]` (required for `'class'`; `numClasses` = null class). */
  readonly classLabels?: string;
  /** Per-token bias added to every cross-attention logit, float32 `[B, contextLength]` (text models; default none). */
  readonly crossAttentionBias?: string;
  /** When given, receives one entry per cross-attention layer: its name and its head-averaged probabilities `[B, qLen, contextLength]`. */
  readonly crossAttentionProbs?: { name: string; probs: string; qLen: number }[];
}

/**
 * Graph-labelling options of {@link buildUnet} that change no value: they make the graph look like
 * a torch.onnx export of diffusers' `UNet2DConditionModel` (used by the tiny Stable Diffusion export).
 */
export interface UnetGraphOptions {
  /**
   * Name each attention Softmax node as torch.onnx names diffusers' modules:
   * `/down_blocks.I/attentions.J/transformer_blocks.0/attn1/Softmax` (self) and `…/attn2/Softmax`
   * (cross), `/mid_block/attentions.0/…`, `/up_blocks.I/…` (diffusers counts up blocks from the
   * lowest resolution). Default false (the builder's `Softmax_<n>`).
   */
  readonly diffusersNodeNames?: boolean;
  /** Attention softmax layout: `'heads'` `[B, heads, q, L]` (SDPA, default) or `'batch-heads'` `[B·heads, q, L]` (classic `AttnProcessor`); same values. */
  readonly attentionLayout?: 'heads' | 'batch-heads';
  /**
   * Height and width of `sample` read at run time (as exported diffusers U-Nets, whose `sample` is
   * `[batch, C, height, width]`): GroupNorm and Transformer reshapes take their sizes from the
   * tensors, so any side divisible by 2^(levels−1) works; `sampleSize` then only sizes the MAC
   * tally. Same values at `sampleSize`. Default false.
   */
  readonly dynamicSpatial?: boolean;
  /**
   * Attention by onnxruntime's fused `com.microsoft.MultiHeadAttention` kernel where no softmax node
   * is needed (see `AttentionOptions.fused`): faster sampling on the CPU; not for graphs that
   * memscope differentiates or whose cross-attention it exposes. Same values. Default false.
   */
  readonly fusedAttention?: boolean;
}

/** The diffusers module path (torch.onnx scope, `/`-separated) of memscope Transformer block `name` (`down.1.attn.0`) in a U-Net of `levels` levels. */
function diffusersScope(name: string, levels: number): string {
  const m = /^(down|up|mid)\.(?:(\d+)\.)?attn\.(\d+)$/.exec(name);
  if (m === null) throw new Error(`diffusersScope: unexpected block name '${name}'`);
  const [, kind, lvl, j] = m;
  if (kind === 'mid') return `/mid_block/attentions.${j}`;
  const i = Number(lvl);
  return kind === 'down' ? `/down_blocks.${i}/attentions.${j}` : `/up_blocks.${levels - 1 - i}/attentions.${j}`;
}

interface Ctx {
  readonly graph: UnetGraphOptions;
  readonly b: GraphBuilder;
  readonly param: ParamFn;
  readonly cfg: UnetConfig;
  readonly batch: BatchDim;
  readonly tally: MacTally;
  /** SiLU of the time (+ class) embedding, `[B, timeEmbedDim]`. */
  readonly temb: string;
  readonly context: string | null;
  /** Cross-attention logit bias reshaped to `[B, 1, 1, contextLength]`, or null. */
  readonly crossBias: string | null;
  readonly crossProbs: { name: string; probs: string; qLen: number }[] | null;
}

/** diffusers `ResnetBlock2D` with the time embedding ({@link resnetBlock2d}). */
function resBlock(c: Ctx, name: string, x: string, cin: number, cout: number, hw: number): string {
  const { cfg, batch, tally } = c;
  return resnetBlock2d(c.b, c.param, name, x, cin, cout, { groups: cfg.groups, eps: cfg.normEps, temb: { value: c.temb, dim: cfg.timeEmbedDim }, batch, dynamicSpatial: c.graph.dynamicSpatial === true, hw, tally });
}

/**
 * diffusers `Transformer2DModel` with one `BasicTransformerBlock`: GN(ε 1e-6), 1×1 `proj_in`,
 * to tokens `[B, HW, C]`; `x + attn1(LN x)` (self, optional), `x + attn2(LN x, context)` (cross;
 * self-attention when there is no context, as diffusers does without `encoder_hidden_states`),
 * `x + ff(LN x)`; back to `[B, C, H, W]`, 1×1 `proj_out`, + input.
 */
function transformer(c: Ctx, name: string, x: string, C: number, hw: number, heads: number): string {
  const { b, param, cfg, batch, tally } = c;
  const bd = batchDim(batch);
  const n = hw * hw;
  const dyn = c.graph.dynamicSpatial === true;
  let h = groupNorm(b, param, `${name}.norm`, x, C, cfg.groups, hw, hw, { eps: 1e-6, batch, dynamicSpatial: dyn });
  h = conv2d(b, param, `${name}.proj_in`, h, C, C, { k: 1, tally, hw: [hw, hw] });
  h = reshape(b, b.op('Transpose', [h], { perm: [0, 2, 3, 1] }), dyn ? [0, -1, C] : [bd, n, C]);
  const blk = `${name}.block`;
  const att = { dim: C, heads, qLen: n, batch, tally, ...(c.graph.attentionLayout === 'batch-heads' ? { foldHeadsIntoBatch: true } : {}), ...(dyn ? { dynamicLength: true } : {}), ...(c.graph.fusedAttention === true ? { fused: true } : {}) };
  const scope = c.graph.diffusersNodeNames === true ? `${diffusersScope(name, cfg.channels.length)}/transformer_blocks.0` : null;
  const sm = (a: 'attn1' | 'attn2'): { softmaxName?: string } => (scope === null ? {} : { softmaxName: `${scope}/${a}/Softmax` });
  if (cfg.selfAttention) {
    const q = layerNorm(b, param, `${blk}.norm1`, h, C);
    h = b.op('Add', [h, attention(b, param, `${blk}.attn1`, q, q, { ...att, kvLen: n, ...sm('attn1') })]);
  }
  const q2 = layerNorm(b, param, `${blk}.norm2`, h, C);
  const cross =
    c.context === null
      ? attention(b, param, `${blk}.attn2`, q2, q2, { ...att, kvLen: n, ...sm('attn1') })
      : attention(b, param, `${blk}.attn2`, q2, c.context, {
          ...att,
          ...sm('attn2'),
          kvLen: cfg.contextLength,
          kvDim: cfg.contextDim,
          ...(c.crossBias === null ? {} : { logitBias: c.crossBias }),
          ...(c.crossProbs === null ? {} : { onProbs: (p: string) => c.crossProbs!.push({ name: `${blk}.attn2`, probs: b.op('ReduceMean', [p], { axes: [1], keepdims: 0 }), qLen: n }) }),
        });
  h = b.op('Add', [h, cross]);
  const f = feedForward(b, param, `${blk}.ff`, layerNorm(b, param, `${blk}.norm3`, h, C), C, { mult: cfg.ffMult, rows: n, tally, ...(cfg.ffGelu === undefined ? {} : { gelu: cfg.ffGelu }) });
  h = b.op('Add', [h, f]);
  h = dyn ? b.op('Reshape', [b.op('Transpose', [h], { perm: [0, 2, 1] }), b.op('Shape', [x])]) : b.op('Transpose', [reshape(b, h, [bd, hw, hw, C])], { perm: [0, 3, 1, 2] });
  h = conv2d(b, param, `${name}.proj_out`, h, C, C, { k: 1, tally, hw: [hw, hw] });
  return b.op('Add', [h, x]);
}

/**
 * Add the U-Net's nodes to `b` and return the name of its ε prediction
 * `[B, inChannels, sampleSize, sampleSize]` (float32). Inputs are existing graph values
 * ({@link UnetIO}); parameters are declared through `param`. `batch` is the build-time batch size
 * (training graphs: every shape static) or `'dynamic'` (Reshape targets use −1 in the batch
 * position). `cfg` may be partial; it is parsed with {@link UnetConfigSchema}. `graph` only
 * labels / lays out the graph ({@link UnetGraphOptions}; default: neither) and changes no value.
 */
export function buildUnet(b: GraphBuilder, cfgIn: UnetConfigInput, io: UnetIO, param: ParamFn, batch: BatchDim, graph: UnetGraphOptions = {}): string {
  return buildUnetCounted(b, cfgIn, io, param, batch, graph).out;
}

function buildUnetCounted(b: GraphBuilder, cfgIn: UnetConfigInput, io: UnetIO, param: ParamFn, batch: BatchDim, graph: UnetGraphOptions = {}): { out: string; macs: number } {
  const cfg = UnetConfigSchema.parse(cfgIn);
  batchDim(batch); // validate
  const tally: MacTally = { macs: 0 };
  const ch = cfg.channels;
  const T = cfg.timeEmbedDim;
  const headsAt = (level: number): number => cfg.headsPerLevel?.[level] ?? cfg.heads;

  let emb = timestepEmbedding(b, param, 'time_embedding', io.timestep, T, { freqDim: ch[0]!, batch, tally });
  let context: string | null = null;
  if (cfg.conditioning === 'class') {
    if (io.classLabels === undefined) throw new Error("buildUnet: conditioning 'class' needs io.classLabels");
    const table = param('class_embedding.weight', [cfg.numClasses + 1, T], { kind: 'normal', std: 1 }, { noDecay: true });
    emb = b.op('Add', [emb, b.op('Gather', [table, io.classLabels], { axis: 0 })]);
  } else if (cfg.conditioning === 'text') {
    if (io.context === undefined) throw new Error("buildUnet: conditioning 'text' needs io.context");
    context = io.context;
  }
  if ((io.crossAttentionBias !== undefined || io.crossAttentionProbs !== undefined) && context === null) {
    throw new Error("buildUnet: cross-attention bias/probabilities need conditioning 'text'");
  }
  const crossBias = io.crossAttentionBias === undefined ? null : reshape(b, io.crossAttentionBias, [batchDim(batch), 1, 1, cfg.contextLength]);
  const c: Ctx = { graph, b, param, cfg, batch, tally, temb: silu(b, emb), context, crossBias, crossProbs: io.crossAttentionProbs ?? null };

  let hw = cfg.sampleSize;
  let h = conv2d(b, param, 'conv_in', io.sample, cfg.inChannels, ch[0]!, { tally, hw: [hw, hw] });
  let cur = ch[0]!;
  const skips: { v: string; ch: number }[] = [{ v: h, ch: cur }];

  // down
  for (let i = 0; i < ch.length; i++) {
    const out = ch[i]!;
    for (let j = 0; j < cfg.layersPerLevel; j++) {
      h = resBlock(c, `down.${i}.res.${j}`, h, cur, out, hw);
      cur = out;
      if (cfg.attentionLevels[i]) h = transformer(c, `down.${i}.attn.${j}`, h, cur, hw, headsAt(i));
      skips.push({ v: h, ch: cur });
    }
    if (i < ch.length - 1) {
      h = conv2d(b, param, `down.${i}.downsample`, h, cur, cur, { stride: 2, tally, hw: [hw, hw] });
      hw /= 2;
      skips.push({ v: h, ch: cur });
    }
  }

  // mid
  h = resBlock(c, 'mid.res.0', h, cur, cur, hw);
  if (cfg.midAttention) h = transformer(c, 'mid.attn.0', h, cur, hw, headsAt(ch.length - 1));
  h = resBlock(c, 'mid.res.1', h, cur, cur, hw);

  // up
  for (let i = ch.length - 1; i >= 0; i--) {
    const out = ch[i]!;
    for (let j = 0; j <= cfg.layersPerLevel; j++) {
      const s = skips.pop()!;
      h = resBlock(c, `up.${i}.res.${j}`, b.op('Concat', [h, s.v], { axis: 1 }), cur + s.ch, out, hw);
      cur = out;
      if (cfg.attentionLevels[i]) h = transformer(c, `up.${i}.attn.${j}`, h, cur, hw, headsAt(i));
    }
    if (i > 0) {
      h = upsample2x(b, h);
      hw *= 2;
      h = conv2d(b, param, `up.${i}.upsample`, h, cur, cur, { tally, hw: [hw, hw] });
    }
  }
  if (skips.length !== 0) throw new Error('buildUnet: internal error, unused skips');

  h = silu(b, groupNorm(b, param, 'conv_norm_out', h, cur, cfg.groups, hw, hw, { eps: cfg.normEps, batch, dynamicSpatial: c.graph.dynamicSpatial === true }));
  h = conv2d(b, param, 'conv_out', h, cur, cfg.inChannels, { tally, hw: [hw, hw] });
  return { out: h, macs: tally.macs };
}

/** Size and cost of a U-Net configuration (see {@link unetStats}). */
export interface UnetStats {
  /** Trainable scalars. */
  readonly params: number;
  /** Multiply-accumulates of one forward pass per image (convs, linears, attention matmuls). */
  readonly forwardMacsPerImage: number;
  /**
   * FLOPs of one forward pass per image, counted as 2 per multiply-accumulate (element-wise ops,
   * norms and softmax not counted). Note that fvcore/thop-style counters report MACs as "FLOPs".
   */
  readonly forwardFlopsPerImage: number;
}

/** Parameter count and forward cost per image of a U-Net configuration (builds the graph without weights). */
export function unetStats(cfgIn: UnetConfigInput = {}): UnetStats {
  const cfg = UnetConfigSchema.parse(cfgIn);
  const b = new GraphBuilder({ name: 'unet_stats' });
  const reg = paramFnFor(b, 'input');
  const io = declareUnetInputs(b, cfg, 'dynamic');
  const { macs } = buildUnetCounted(b, cfg, io, reg.param, 'dynamic');
  return { params: countParams(reg.specs), forwardMacsPerImage: macs, forwardFlopsPerImage: 2 * macs };
}

function declareUnetInputs(b: GraphBuilder, cfg: UnetConfig, batch: BatchDim): UnetIO {
  const B = batch === 'dynamic' ? 'B' : batch;
  const sample = b.input('sample', 'float32', [B, cfg.inChannels, cfg.sampleSize, cfg.sampleSize]);
  const timestep = b.input('timestep', 'float32', [B]);
  if (cfg.conditioning === 'text') return { sample, timestep, context: b.input('encoder_hidden_states', 'float32', [B, cfg.contextLength, cfg.contextDim]) };
  if (cfg.conditioning === 'class') return { sample, timestep, classLabels: b.input('class_labels', 'int64', [B]) };
  return { sample, timestep };
}

/**
 * Build the U-Net as a complete model with the diffusers ONNX signature that
 * `loadOnnxDenoiser` reads: inputs `sample` float32 `[B, inChannels, S, S]`, `timestep` float32
 * `[B]`, and `encoder_hidden_states` float32 `[B, contextLength, contextDim]` (`'text'`) or
 * `class_labels` int64 `[B]` (`'class'`); output `out_sample` `[B, inChannels, S, S]`. `B` is the
 * symbolic `'B'` when `batch` is `'dynamic'`. Returns the output name (`'out_sample'`).
 */
export function buildDiffusersUnet(b: GraphBuilder, cfgIn: UnetConfigInput, param: ParamFn, batch: BatchDim, opts: DiffusersUnetOptions = {}): string {
  const cfg = UnetConfigSchema.parse(cfgIn);
  const io = declareUnetInputs(b, cfg, batch);
  const B = batch === 'dynamic' ? 'B' : batch;
  const expose = opts.exposeCrossAttention === true;
  if (expose && cfg.conditioning !== 'text') throw new Error("exposeCrossAttention: needs a text-conditioned U-Net (conditioning 'text')");
  const probs: { name: string; probs: string; qLen: number }[] = [];
  const full: UnetIO = expose ? { ...io, crossAttentionBias: b.input(CROSS_ATTENTION_BIAS, 'float32', [B, cfg.contextLength]), crossAttentionProbs: probs } : io;
  const eps = buildUnet(b, cfg, full, param, batch);
  for (const p of probs) b.output(p.probs, 'float32', [B, p.qLen, cfg.contextLength], `${CROSS_ATTENTION_PROBS_PREFIX}${p.name}`);
  return b.output(eps, 'float32', [B, cfg.inChannels, cfg.sampleSize, cfg.sampleSize], 'out_sample');
}

/** Options of {@link buildDiffusersUnet}. */
export interface DiffusersUnetOptions {
  /**
   * Also take `cross_attention_bias` float32 `[B, contextLength]` (added to every cross-attention
   * logit before the softmax; zeros = the plain model) and output each cross-attention layer's
   * probabilities averaged over heads as `cross_attention_probs/<layer>` — what Ren et al. 2024's
   * attention-entropy detection and token re-weighting need. Default false (plain diffusers signature).
   */
  readonly exposeCrossAttention?: boolean;
}
