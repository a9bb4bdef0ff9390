/**
 * diffusers' `AutoencoderKL` (the Stable Diffusion VAE; Rombach et al. 2022 §3, the KL-regularised
 * autoencoder) as ONNX graph builders: {@link buildVaeEncoder} (image → latent moments, mean ‖
 * log-variance) and {@link buildVaeDecoder} (latent → image). Parameter names are the diffusers
 * state-dict keys (`encoder.down_blocks.0.resnets.0.conv1.weight`, `decoder.mid_block.attentions.0.to_q.weight`,
 * `quant_conv.weight`), except that the attention output projection is requested as `to_out`
 * (memscope's attention helper) where diffusers stores `to_out.0` — the loader's key map
 * (`sd/diffusers/keys.ts`) says so.
 *
 * Architecture (diffusers `Encoder` / `Decoder` with `DownEncoderBlock2D` / `UpDecoderBlock2D`):
 * - encoder: `conv_in` (3 → C₀); per level `layers_per_block` ResNets (no time embedding, GroupNorm
 *   ε 1e-6) and, except at the last level, a stride-2 3×3 conv after zero-padding one row and one
 *   column at the bottom/right (`downsample_padding = 0`); mid block ResNet – single-head
 *   self-attention with GroupNorm and a residual (ε 1e-6, biased q/k/v) – ResNet; GroupNorm, SiLU,
 *   `conv_out` (→ 2·latent channels); then `quant_conv` (1×1).
 * - decoder: `post_quant_conv` (1×1), `conv_in` (latent → C_last), mid block, per level (reversed
 *   channels) `layers_per_block + 1` ResNets and, except at the last, nearest 2× + 3×3 conv;
 *   GroupNorm, SiLU, `conv_out` (→ 3).
 * Height and width are read at run time (any multiple of 2^(levels−1)).
 */
import { z } from 'zod';
import type { GraphBuilder } from '../graph/builder.ts';
import type { ParamFn } from './params.ts';
import { attention, conv2d, groupNorm, resnetBlock2d, silu, upsample2x } from './layers.ts';

const posInt = z.number().int().positive();

/** Configuration of the VAE builders (diffusers `AutoencoderKL` `config.json` fields in memscope names; defaults = SD 1.x / 2.x). */
export const VaeConfigSchema = z
  .object({
    /** Image channels (`in_channels` = `out_channels`; default 3). */
    imageChannels: posInt.default(3),
    /** Latent channels (`latent_channels`; default 4). */
    latentChannels: posInt.default(4),
    /** Channels per level (`block_out_channels`; default [128, 256, 512, 512]). */
    channels: z.array(posInt).min(1).default([128, 256, 512, 512]),
    /** ResNets per encoder level; the decoder has one more (`layers_per_block`; default 2). */
    layersPerBlock: posInt.default(2),
    /** GroupNorm groups (`norm_num_groups`; default 32). */
    groups: posInt.default(32),
    /** `quant_conv` / `post_quant_conv` present (`use_quant_conv` / `use_post_quant_conv`; default true). */
    quantConv: z.boolean().default(true),
    /** Self-attention in the mid blocks (`mid_block_add_attention`; default true). */
    midAttention: z.boolean().default(true),
  })
  .strict()
  .superRefine((c, ctx) => {
    for (const ch of c.channels) if (ch % c.groups !== 0) ctx.addIssue({ code: 'custom', message: `channels ${ch} not divisible by groups ${c.groups}`, path: ['channels'] });
  });

/** A VAE configuration as written (fields optional). */
export type VaeConfigInput = z.input<typeof VaeConfigSchema>;
/** A parsed VAE configuration. */
export type VaeConfig = z.output<typeof VaeConfigSchema>;

const EPS = 1e-6;

/** diffusers `UNetMidBlock2D` without time embedding: ResNet, single-head attention (GroupNorm, residual), ResNet. */
function midBlock(b: GraphBuilder, param: ParamFn, p: string, x: string, C: number, cfg: VaeConfig): string {
  const rb = { groups: cfg.groups, eps: EPS, dynamicSpatial: true };
  let h = resnetBlock2d(b, param, `${p}.resnets.0`, x, C, C, rb);
  if (cfg.midAttention) {
    const a = `${p}.attentions.0`;
    const n = groupNorm(b, param, `${a}.group_norm`, h, C, cfg.groups, 1, 1, { eps: EPS, dynamicSpatial: true });
    const tokens = b.op('Transpose', [b.op('Reshape', [n, b.constI64([0, C, -1])])], { perm: [0, 2, 1] }); // [B, HW, C]
    const o = attention(b, param, a, tokens, tokens, { dim: C, heads: 1, qLen: 1, kvLen: 1, qkvBias: true, dynamicLength: true });
    h = b.op('Add', [b.op('Reshape', [b.op('Transpose', [o], { perm: [0, 2, 1] }), b.op('Shape', [h])]), h]);
  }
  return resnetBlock2d(b, param, `${p}.resnets.1`, h, C, C, rb);
}

function outHead(b: GraphBuilder, param: ParamFn, p: string, h: string, cin: number, cout: number, cfg: VaeConfig): string {
  const n = groupNorm(b, param, `${p}.conv_norm_out`, h, cin, cfg.groups, 1, 1, { eps: EPS, dynamicSpatial: true });
  return conv2d(b, param, `${p}.conv_out`, silu(b, n), cin, cout);
}

/**
 * Add the VAE encoder to `b`: `image` float32 `[B, imageChannels, H, W]` in [−1, 1] → the latent
 * moments `[B, 2·latentChannels, H/2^(L−1), W/2^(L−1)]` (mean ‖ log-variance, after `quant_conv`).
 */
export function buildVaeEncoder(b: GraphBuilder, cfgIn: VaeConfigInput, image: string, param: ParamFn): string {
  const cfg = VaeConfigSchema.parse(cfgIn);
  const ch = cfg.channels;
  let h = conv2d(b, param, 'encoder.conv_in', image, cfg.imageChannels, ch[0]!);
  let cur = ch[0]!;
  for (const [i, out] of ch.entries()) {
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      h = resnetBlock2d(b, param, `encoder.down_blocks.${i}.resnets.${j}`, h, cur, out, { groups: cfg.groups, eps: EPS, dynamicSpatial: true });
      cur = out;
    }
    if (i < ch.length - 1) {
      const padded = b.op('Pad', [h, b.constI64([0, 0, 0, 0, 0, 0, 1, 1])], { mode: 'constant' });
      h = conv2d(b, param, `encoder.down_blocks.${i}.downsamplers.0.conv`, padded, cur, cur, { stride: 2, pad: 0 });
    }
  }
  h = midBlock(b, param, 'encoder.mid_block', h, cur, cfg);
  h = outHead(b, param, 'encoder', h, cur, 2 * cfg.latentChannels, cfg);
  return cfg.quantConv ? conv2d(b, param, 'quant_conv', h, 2 * cfg.latentChannels, 2 * cfg.latentChannels, { k: 1 }) : h;
}

/**
 * Add the VAE decoder to `b`: `latent` float32 `[B, latentChannels, h, w]` (already divided by the
 * scaling factor) → the image `[B, imageChannels, h·2^(L−1), w·2^(L−1)]` (≈ [−1, 1], not clamped).
 */
export function buildVaeDecoder(b: GraphBuilder, cfgIn: VaeConfigInput, latent: string, param: ParamFn): string {
  const cfg = VaeConfigSchema.parse(cfgIn);
  const rev = [...cfg.channels].reverse();
  const Lc = cfg.latentChannels;
  let h = cfg.quantConv ? conv2d(b, param, 'post_quant_conv', latent, Lc, Lc, { k: 1 }) : latent;
  h = conv2d(b, param, 'decoder.conv_in', h, Lc, rev[0]!);
  h = midBlock(b, param, 'decoder.mid_block', h, rev[0]!, cfg);
  let cur = rev[0]!;
  for (const [i, out] of rev.entries()) {
    for (let j = 0; j <= cfg.layersPerBlock; j++) {
      h = resnetBlock2d(b, param, `decoder.up_blocks.${i}.resnets.${j}`, h, cur, out, { groups: cfg.groups, eps: EPS, dynamicSpatial: true });
      cur = out;
    }
    if (i < rev.length - 1) h = conv2d(b, param, `decoder.up_blocks.${i}.upsamplers.0.conv`, upsample2x(b, h), cur, cur);
  }
  return outHead(b, param, 'decoder', h, cur, cfg.imageChannels, cfg);
}
