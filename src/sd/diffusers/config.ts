/**
 * The `config.json` files of a diffusers Stable Diffusion folder read into memscope's builder
 * configurations (issue 19 §1): `unet/config.json` (`UNet2DConditionModel`) → {@link UnetConfigInput},
 * `text_encoder/config.json` (transformers `CLIPTextModel`) → {@link TextEncoderConfigInput},
 * `vae/config.json` (`AutoencoderKL`) → {@link VaeConfigInput}. SD 1.x and 2.x settings are
 * supported: ε and v-prediction (the scheduler's), `use_linear_projection` (the loader reshapes
 * those weights), integer or per-block `attention_head_dim` (which diffusers reads as the number
 * of heads), `upcast_attention` (memscope computes attention in float32 anyway), `quick_gelu` or
 * `gelu` text MLPs. A setting memscope's graphs do not implement (SDXL's `addition_embed_type`,
 * `transformer_layers_per_block` > 1, class embeddings, other block types, …) is refused with one
 * error listing every such setting, its value and what is supported.
 */
import type { UnetConfigInput } from '../../models/unet.ts';
import type { TextEncoderConfigInput } from '../../models/text-encoder.ts';
import type { VaeConfigInput } from '../../models/vae.ts';

type Json = Readonly<Record<string, unknown>>;

/** Collects "field = value (supported: …)" problems of one config file. */
class Problems {
  readonly list: string[] = [];
  constructor(private readonly cfg: Json) {}
  /** The field's value, when it is absent or null → `dflt`. */
  get(field: string, dflt: unknown): unknown {
    const v = this.cfg[field];
    return v === undefined || v === null ? dflt : v;
  }
  /** The field must be one of `allowed` (absent/null counts as `dflt`). */
  oneOf(field: string, dflt: unknown, allowed: readonly unknown[]): void {
    const v = this.get(field, dflt);
    if (!allowed.some((a) => JSON.stringify(a) === JSON.stringify(v))) this.list.push(`${field} = ${JSON.stringify(v)} (supported: ${allowed.map((a) => JSON.stringify(a)).join(' or ')})`);
  }
  int(field: string, dflt?: number): number {
    const v = this.get(field, dflt);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      this.list.push(`${field} = ${JSON.stringify(v ?? null)} (expected a positive integer)`);
      return 1;
    }
    return v;
  }
  num(field: string, dflt: number): number {
    const v = this.get(field, dflt);
    if (typeof v !== 'number' || !(v > 0)) {
      this.list.push(`${field} = ${JSON.stringify(v)} (expected a positive number)`);
      return dflt;
    }
    return v;
  }
  ints(field: string): number[] {
    const v = this.cfg[field];
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => Number.isInteger(x) && (x as number) > 0)) {
      this.list.push(`${field} = ${JSON.stringify(v ?? null)} (expected a non-empty list of positive integers)`);
      return [1];
    }
    return v as number[];
  }
  strings(field: string, n: number): string[] {
    const v = this.cfg[field];
    if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === 'string')) {
      this.list.push(`${field} = ${JSON.stringify(v ?? null)} (expected ${n} block type names, one per entry of block_out_channels)`);
      return [];
    }
    return v as string[];
  }
  throwIfAny(rel: string, what: string): void {
    if (this.list.length > 0) throw new Error(`${rel}: ${this.list.length} setting${this.list.length === 1 ? '' : 's'} memscope's ${what} does not implement:\n  - ${this.list.join('\n  - ')}`);
  }
}

/** `UNet2DConditionModel` settings memscope ignores because they change no value in float32 (or are bookkeeping). */
const UNET_IGNORED = new Set(['_class_name', '_diffusers_version', '_name_or_path', 'sample_size', 'upcast_attention', 'use_linear_projection', 'dropout', 'in_channels', 'out_channels', 'block_out_channels', 'layers_per_block', 'down_block_types', 'up_block_types', 'mid_block_type', 'norm_num_groups', 'norm_eps', 'cross_attention_dim', 'attention_head_dim', 'num_attention_heads']);

/** Settings that must keep diffusers' default (SD 1.x / 2.x) value: field → allowed values (the first is the default used when absent or null). */
const UNET_FIXED: Readonly<Record<string, readonly unknown[]>> = {
  act_fn: ['silu'],
  flip_sin_to_cos: [true],
  freq_shift: [0],
  center_input_sample: [false],
  downsample_padding: [1],
  mid_block_scale_factor: [1],
  dual_cross_attention: [false],
  only_cross_attention: [false],
  class_embed_type: [null],
  num_class_embeds: [null],
  resnet_time_scale_shift: ['default'],
  time_embedding_type: ['positional'],
  time_embedding_dim: [null],
  time_embedding_act_fn: [null],
  timestep_post_act: [null],
  time_cond_proj_dim: [null],
  conv_in_kernel: [3],
  conv_out_kernel: [3],
  addition_embed_type: [null],
  addition_time_embed_dim: [null],
  addition_embed_type_num_heads: [64],
  encoder_hid_dim: [null],
  encoder_hid_dim_type: [null],
  projection_class_embeddings_input_dim: [null],
  class_embeddings_concat: [false],
  mid_block_only_cross_attention: [null, false],
  cross_attention_norm: [null],
  resnet_skip_time_act: [false],
  resnet_out_scale_factor: [1],
  transformer_layers_per_block: [1],
  reverse_transformer_layers_per_block: [null],
  attention_type: ['default'],
};

/**
 * memscope's U-Net configuration of a diffusers `unet/config.json` (`rel` names the file in
 * errors), with `contextLength` tokens of `encoder_hidden_states` (the text encoder's 77).
 */
export function unetConfigFromDiffusers(cfg: Json, rel: string, contextLength: number): UnetConfigInput {
  const p = new Problems(cfg);
  p.oneOf('_class_name', 'UNet2DConditionModel', ['UNet2DConditionModel']);
  for (const [k, allowed] of Object.entries(UNET_FIXED)) {
    const v = cfg[k];
    if (k === 'only_cross_attention' && Array.isArray(v) && v.every((x) => x === false)) continue;
    if (k === 'transformer_layers_per_block' && Array.isArray(v) && v.every((x) => x === 1)) continue;
    p.oneOf(k, allowed[0], allowed);
  }
  for (const k of Object.keys(cfg)) if (!UNET_IGNORED.has(k) && !(k in UNET_FIXED) && cfg[k] !== null) p.list.push(`${k} = ${JSON.stringify(cfg[k])} (a setting this loader does not know)`);
  const channels = p.ints('block_out_channels');
  const L = channels.length;
  const inC = p.int('in_channels', 4);
  const outC = p.int('out_channels', 4);
  if (outC !== inC) p.list.push(`out_channels = ${outC} with in_channels = ${inC} (supported: equal, as SD's ε / v prediction)`);
  const lpb = cfg['layers_per_block'];
  const layers = Array.isArray(lpb) && lpb.length > 0 && lpb.every((x) => x === lpb[0]) ? (lpb[0] as number) : p.int('layers_per_block', 2);
  const down = p.strings('down_block_types', L);
  const up = p.strings('up_block_types', L);
  const attentionLevels = down.map((t, i) => {
    if (t !== 'CrossAttnDownBlock2D' && t !== 'DownBlock2D') p.list.push(`down_block_types[${i}] = "${t}" (supported: "CrossAttnDownBlock2D", "DownBlock2D")`);
    return t === 'CrossAttnDownBlock2D';
  });
  up.forEach((t, k) => {
    const want = attentionLevels[L - 1 - k] === true ? 'CrossAttnUpBlock2D' : 'UpBlock2D';
    if (t !== want) p.list.push(`up_block_types[${k}] = "${t}" (supported: "${want}", mirroring down_block_types[${L - 1 - k}])`);
  });
  p.oneOf('mid_block_type', 'UNetMidBlock2DCrossAttn', ['UNetMidBlock2DCrossAttn']);
  // diffusers: num_attention_heads = num_attention_heads or attention_head_dim (the latter counts heads in SD 1.x / 2.x configs)
  const headsRaw = cfg['num_attention_heads'] ?? cfg['attention_head_dim'] ?? 8;
  let heads = 8;
  let headsPerLevel: number[] | undefined;
  if (typeof headsRaw === 'number' && Number.isInteger(headsRaw) && headsRaw > 0) heads = headsRaw;
  else if (Array.isArray(headsRaw) && headsRaw.length === L && headsRaw.every((x) => Number.isInteger(x) && (x as number) > 0)) headsPerLevel = headsRaw as number[];
  else p.list.push(`attention_head_dim = ${JSON.stringify(headsRaw)} (expected a positive integer or one per block)`);
  const cross = cfg['cross_attention_dim'];
  if (typeof cross !== 'number' || !Number.isInteger(cross) || cross < 1) p.list.push(`cross_attention_dim = ${JSON.stringify(cross ?? null)} (supported: one positive integer)`);
  const ss = cfg['sample_size'];
  const sampleSize = typeof ss === 'number' ? ss : Array.isArray(ss) && typeof ss[0] === 'number' ? ss[0] : 64;
  const groups = p.int('norm_num_groups', 32);
  const normEps = p.num('norm_eps', 1e-5);
  p.throwIfAny(rel, 'U-Net (UNet2DConditionModel as in SD 1.x / 2.x)');
  return {
    channels,
    layersPerLevel: layers,
    attentionLevels,
    midAttention: true,
    groups,
    normEps,
    contextDim: cross as number,
    contextLength,
    heads,
    ...(headsPerLevel === undefined ? {} : { headsPerLevel }),
    ffGelu: 'erf',
    timeEmbedDim: 4 * channels[0]!,
    inChannels: inC,
    sampleSize,
    conditioning: 'text',
  };
}

/** memscope's text-encoder configuration of a transformers `text_encoder/config.json` (`CLIPTextModel`). */
export function textEncoderConfigFromDiffusers(cfg: Json, rel: string): TextEncoderConfigInput {
  const p = new Problems(cfg);
  const arch = cfg['architectures'];
  if (Array.isArray(arch) && !arch.every((a) => a === 'CLIPTextModel' || a === 'CLIPTextModelWithProjection')) p.list.push(`architectures = ${JSON.stringify(arch)} (supported: "CLIPTextModel")`);
  p.oneOf('hidden_act', 'quick_gelu', ['quick_gelu', 'gelu']);
  const width = p.int('hidden_size', 512);
  const heads = p.int('num_attention_heads', 8);
  if (width % heads !== 0) p.list.push(`hidden_size = ${width} with num_attention_heads = ${heads} (supported: heads dividing the width)`);
  const out: TextEncoderConfigInput = {
    vocabSize: p.int('vocab_size', 49408),
    maxLength: p.int('max_position_embeddings', 77),
    width,
    layers: p.int('num_hidden_layers', 12),
    heads,
    intermediateSize: p.int('intermediate_size', 2048),
    causal: true,
    activation: p.get('hidden_act', 'quick_gelu') === 'gelu' ? 'gelu' : 'quick_gelu',
    layerNormEps: p.num('layer_norm_eps', 1e-5),
  };
  p.throwIfAny(rel, 'text encoder (CLIPTextModel)');
  return out;
}

/** memscope's VAE configuration of a diffusers `vae/config.json` (`AutoencoderKL`), and its scaling factor. */
export function vaeConfigFromDiffusers(cfg: Json, rel: string): VaeConfigInput {
  const p = new Problems(cfg);
  p.oneOf('_class_name', 'AutoencoderKL', ['AutoencoderKL']);
  p.oneOf('act_fn', 'silu', ['silu']);
  p.oneOf('shift_factor', null, [null]);
  p.oneOf('latents_mean', null, [null]);
  p.oneOf('latents_std', null, [null]);
  const channels = p.ints('block_out_channels');
  const down = p.strings('down_block_types', channels.length);
  const up = p.strings('up_block_types', channels.length);
  down.forEach((t, i) => t !== 'DownEncoderBlock2D' && p.list.push(`down_block_types[${i}] = "${t}" (supported: "DownEncoderBlock2D")`));
  up.forEach((t, i) => t !== 'UpDecoderBlock2D' && p.list.push(`up_block_types[${i}] = "${t}" (supported: "UpDecoderBlock2D")`));
  const inC = p.int('in_channels', 3);
  const outC = p.int('out_channels', 3);
  if (inC !== outC) p.list.push(`out_channels = ${outC} with in_channels = ${inC} (supported: equal)`);
  const out: VaeConfigInput = {
    imageChannels: inC,
    latentChannels: p.int('latent_channels', 4),
    channels,
    layersPerBlock: p.int('layers_per_block', 1),
    groups: p.int('norm_num_groups', 32),
    quantConv: p.get('use_quant_conv', true) === true,
    midAttention: p.get('mid_block_add_attention', true) === true,
  };
  if (p.get('use_quant_conv', true) !== p.get('use_post_quant_conv', true)) p.list.push(`use_quant_conv = ${JSON.stringify(p.get('use_quant_conv', true))} with use_post_quant_conv = ${JSON.stringify(p.get('use_post_quant_conv', true))} (supported: both true or both false)`);
  p.throwIfAny(rel, 'VAE (AutoencoderKL)');
  return out;
}
