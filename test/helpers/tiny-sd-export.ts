/**
 * A TINY Stable-Diffusion-layout ONNX export written by memscope itself (SPEC §7): the same
 * folders, file names, input/output names, dtypes and ranks as real exports, with random but
 * fixed (seeded) weights and a few hundred kB in all — for tests and demos of the SD loader
 * without downloading gigabytes.
 *
 * Two exporter variants (SPEC §7 lists the differences):
 *
 * | | `legacy` (diffusers `convert_stable_diffusion_checkpoint_to_onnx.py`) | `optimum` (≥ late 2024) |
 * |---|---|---|
 * | text encoder `input_ids` | int32 `[B, 77]` | int64 `[B, 77]` |
 * | U-Net `timestep` (default; option `timestep`) | int64 `[B]` | float32 scalar `[]` |
 * | VAE encoder output | `latent_sample` (sampled in the graph) | `latent_parameters` (mean ‖ log-variance) |
 * | U-Net external weights | `unet/weights.pb` | `unet/model.onnx_data` |
 * | `model_index.json` | `OnnxStableDiffusionPipeline`, `vae_encoder`/`vae_decoder` | the source pipeline's (`StableDiffusionPipeline`, `vae`) |
 * | component `config.json` | none | `unet/config.json` (`sample_size` = latent side), `vae_encoder/config.json`, `vae_decoder/config.json` |
 *
 * Both variants built with the same seed hold the same weights, so they compute the same
 * functions (the timestep is cast / expanded to float32 `[B]` inside the U-Net graph).
 *
 * The U-Net timestep layout can also be chosen on its own (option `timestep`: int64 `[B]`, or a
 * float scalar `[]`, `[1]` or `[B]` — every layout SPEC §7 lists), and the whole export can be
 * written in float16 (option `dtype`): float inputs and outputs of every component are float16 in
 * the graph signature and the weights are stored as float16 initializers (files about half the
 * size), as in a real fp16 export. Unlike a real fp16 export — which computes in fp16 on CUDA —
 * the tiny graphs Cast their fp16 weights and inputs to float32 and compute in float32, because
 * onnxruntime's CPU execution provider lacks float16 kernels for many operators (Conv,
 * InstanceNorm, Softmax, …); outputs are Cast back to float16.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, f } from '../../src/graph/builder.ts';
import { writeModelWithExternalData } from '../../src/graph/external-data.ts';
import { fromHalfArray, toHalfArray } from '../../src/graph/session.ts';
import type { ParamFn } from '../../src/models/params.ts';
import { initParam, paramFnFor, paramSeed } from '../../src/models/init.ts';
import { conv2d, reshape, silu, upsample2x } from '../../src/models/layers.ts';
import { buildTextEncoder } from '../../src/models/text-encoder.ts';
import { buildUnet, type UnetConfigInput } from '../../src/models/unet.ts';

/** Which exporter's conventions a tiny export follows (SPEC §7). */
export type SdExporterVariant = 'legacy' | 'optimum';

/**
 * U-Net `timestep` input of a tiny export (SPEC §7): element type and shape. `int64-batch` = int64
 * `[B]` (older legacy exports), `float32-batch` = float `[B]` (current legacy script),
 * `float32-one` = float `[1]` (broadcast to the batch; the diffusers ONNX pipeline feeds `[1]`
 * even for batch 2), `float32-scalar` = float rank 0 `[]` (optimum ≥ late 2024). With
 * `dtype: 'float16'` the float layouts are float16 in the signature.
 */
export type TinySdTimestep = 'int64-batch' | 'float32-scalar' | 'float32-batch' | 'float32-one';

/** Float element type of a tiny export's model inputs, outputs and stored weights. */
export type TinySdDtype = 'float32' | 'float16';

const TIMESTEPS: readonly TinySdTimestep[] = ['int64-batch', 'float32-scalar', 'float32-batch', 'float32-one'];

/** Options of {@link writeTinySdExport}. */
export interface TinySdExportOptions {
  /** Exporter conventions (default `'legacy'`; see the module table). */
  readonly variant?: SdExporterVariant;
  /** Seed of every weight (default 0); the same seed gives the same weights in both variants. */
  readonly seed?: number;
  /** Image height = width in pixels, a multiple of 16 (default 64 → latents 8×8). */
  readonly imageSize?: number;
  /** Text-encoder width E = the U-Net's `cross_attention_dim` (default 32; even). */
  readonly hiddenSize?: number;
  /** Latent channels (default 4, as SD). */
  readonly latentChannels?: number;
  /** Scheduler `prediction_type` (default `'epsilon'`; SD 2.x 768 models use `'v_prediction'`). */
  readonly predictionType?: 'epsilon' | 'v_prediction';
  /** Tokenizer pad token (default `'<|endoftext|>'` as SD 1.x; `'!'` as SD 2.x). */
  readonly padToken?: '<|endoftext|>' | '!';
  /**
   * VAE scaling factor to write into `vae_encoder/config.json` and `vae_decoder/config.json`
   * (default: none written for `legacy` — readers assume 0.18215 — and 0.18215 for `optimum`,
   * which copies the VAE config).
   */
  readonly scalingFactor?: number;
  /**
   * U-Net timestep layout (default: `'int64-batch'` for `legacy`, `'float32-scalar'` for
   * `optimum`). Every layout is cast / expanded to float32 `[B]` inside the graph, so exports that
   * differ only in this option compute the same function.
   */
  readonly timestep?: TinySdTimestep;
  /**
   * Float type of every component's float inputs and outputs and of the stored weights (default
   * `'float32'`). `'float16'`: U-Net `sample` / float `timestep` / `encoder_hidden_states` /
   * `out_sample`, text-encoder `last_hidden_state` / `pooler_output`, VAE inputs and outputs are
   * float16, and the weights are float16 initializers (≈ half the bytes), Cast to float32 inside
   * the graph for compute (onnxruntime's CPU provider lacks fp16 kernels for many ops; a real fp16
   * export computes in fp16 on CUDA). The same seed draws the same weights before rounding.
   */
  readonly dtype?: TinySdDtype;
  /**
   * Round every weight to the nearest float16 but store it as float32 (default false; no effect
   * with `dtype: 'float16'`, whose weights are float16 already). An fp32 export with exactly the
   * weights of the fp16 export of the same seed — a reference that isolates the fp16 rounding of
   * the inputs and outputs.
   */
  readonly roundWeightsToHalf?: boolean;
  /**
   * Layout of the U-Net's attention softmax (default `'heads'`): `'heads'` = `[B, heads, q, L]`
   * (diffusers' SDPA processor, decomposed by the exporter), `'batch-heads'` = `[B·heads, q, L]`
   * (the classic `AttnProcessor`'s `baddbmm`). Same values either way. Softmax nodes are always
   * named as torch.onnx names diffusers' modules (`/down_blocks.1/attentions.0/transformer_blocks.0/attn2/Softmax`).
   */
  readonly attentionLayout?: 'heads' | 'batch-heads';
  /**
   * Height and width of the U-Net's `sample` / `out_sample` (default `'static'`: fixed at the
   * latent size). `'dynamic'`: `[batch, C, height, width]` as real exports declare them (both
   * exporters mark the spatial axes dynamic), the graph reading its sizes at run time, so any
   * latent side divisible by 2 works; readers then take the default size from `unet/config.json`
   * (optimum) or fall back to 512 (legacy, which has none).
   */
  readonly spatial?: 'static' | 'dynamic';
}

/** What {@link writeTinySdExport} wrote. */
export interface TinySdExportInfo {
  /** The export root. */
  readonly dir: string;
  /** Exporter conventions followed. */
  readonly variant: SdExporterVariant;
  /** Weight seed used. */
  readonly seed: number;
  /** U-Net timestep layout written. */
  readonly timestep: TinySdTimestep;
  /** Float type of the models' float inputs, outputs and weights. */
  readonly dtype: TinySdDtype;
  /** Every file written, relative to `dir`, sorted. */
  readonly files: readonly string[];
  /** Text-encoder width E. */
  readonly hiddenSize: number;
  /** Latent channels. */
  readonly latentChannels: number;
  /** Image side in pixels. */
  readonly imageSize: number;
  /** Latent side (`imageSize / 8`). */
  readonly latentSize: number;
  /** Tokens per prompt (77). */
  readonly sequenceLength: number;
  /** Tokenizer vocabulary size (the last id is `<|endoftext|>`). */
  readonly vocabSize: number;
  /** Total bytes written. */
  readonly bytes: number;
}

const SEQ = 77;
const BOS = '<|startoftext|>';
const EOS = '<|endoftext|>';
/** Words whose BPE merges the tiny vocabulary has, so that they are single tokens. */
const WORDS = ['photo', 'of', 'the', 'cat', 'dog', 'on', 'beach', 'painting', 'astronaut', 'riding', 'horse', 'in', 'style'];

/** GPT-2's byte → symbol table: symbol of id i (CLIP's order: printable bytes, then the rest at U+0100 + n). */
function byteSymbols(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const chars = printable.map((b) => String.fromCharCode(b));
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!printable.includes(b)) chars.push(String.fromCharCode(0x100 + n++));
  }
  return chars;
}

/**
 * A small CLIP-layout byte-level BPE vocabulary: the 256 byte symbols, the same with `</w>`, one
 * token per merge (left-to-right merges spelling {@link WORDS}), then `<|startoftext|>` and
 * `<|endoftext|>` (the highest id, as in CLIP, so the text encoder's pooler finds eos by arg-max).
 */
function tinyVocab(): { vocab: Record<string, number>; merges: Array<[string, string]> } {
  const syms = byteSymbols();
  const vocab: Record<string, number> = {};
  syms.forEach((s, i) => (vocab[s] = i));
  syms.forEach((s, i) => (vocab[`${s}</w>`] = 256 + i));
  const merges: Array<[string, string]> = [];
  let id = 512;
  for (const w of WORDS) {
    let left = w[0]!;
    for (let i = 1; i < w.length; i++) {
      const right = i === w.length - 1 ? `${w[i]}</w>` : w[i]!;
      const merged = left + right;
      if (vocab[merged] === undefined) {
        merges.push([left, right]);
        vocab[merged] = id++;
      }
      left = merged;
    }
  }
  vocab[BOS] = id++;
  vocab[EOS] = id++;
  return { vocab, merges };
}

function tokenizerFiles(pad: string): Record<string, string> {
  const { vocab, merges } = tinyVocab();
  const added = (content: string): Record<string, unknown> => ({ __type: 'AddedToken', content, lstrip: false, normalized: true, rstrip: false, single_word: false });
  const config = {
    add_prefix_space: false,
    bos_token: added(BOS),
    clean_up_tokenization_spaces: true,
    do_lower_case: true,
    eos_token: added(EOS),
    errors: 'replace',
    model_max_length: SEQ,
    pad_token: pad === EOS ? added(EOS) : pad,
    tokenizer_class: 'CLIPTokenizer',
    unk_token: added(EOS),
  };
  const special = {
    bos_token: { content: BOS, lstrip: false, normalized: true, rstrip: false, single_word: false },
    eos_token: { content: EOS, lstrip: false, normalized: true, rstrip: false, single_word: false },
    pad_token: pad === EOS ? { content: EOS, lstrip: false, normalized: true, rstrip: false, single_word: false } : pad,
    unk_token: { content: EOS, lstrip: false, normalized: true, rstrip: false, single_word: false },
  };
  return {
    'vocab.json': JSON.stringify(vocab),
    'merges.txt': `#version: 0.2\n${merges.map(([a, b]) => `${a} ${b}`).join('\n')}\n`,
    'tokenizer_config.json': JSON.stringify(config, null, 2),
    'special_tokens_map.json': JSON.stringify(special, null, 2),
  };
}

/** Float graph-building conventions shared by the component graphs of one export. */
interface Precision {
  readonly dtype: TinySdDtype;
  readonly roundWeights: boolean;
}

const ONNX_FLOAT = 1;
const ONNX_FLOAT16 = 10;

/**
 * The weight ParamFn of one component: seeded initializers as {@link paramFnFor} draws them
 * (same seed → same values); float16 exports store them as float16 and Cast to float32.
 */
function weightParam(b: GraphBuilder, seed: number, component: string, prec: Precision): ParamFn {
  const s = paramSeed(seed, component);
  if (prec.dtype === 'float32' && !prec.roundWeights) return paramFnFor(b, 'initializer', { seed: s }).param;
  return (name, dims, init) => {
    const half = toHalfArray(initParam({ name, dims: [...dims], init }, s));
    if (prec.dtype === 'float32') return b.initializer(name, fromHalfArray(half), dims);
    return b.op('Cast', [b.initializer(name, half, dims)], { to: ONNX_FLOAT });
  };
}

/** Declare a float graph input in the export's dtype; returns a float32 value. */
function floatInput(b: GraphBuilder, prec: Precision, name: string, dims: readonly (number | string)[]): string {
  const x = b.input(name, prec.dtype, dims);
  return prec.dtype === 'float32' ? x : b.op('Cast', [x], { to: ONNX_FLOAT });
}

/** Declare float32 `value` a graph output `name` in the export's dtype. */
function floatOutput(b: GraphBuilder, prec: Precision, value: string, dims: readonly (number | string)[], name: string): void {
  if (prec.dtype === 'float32') b.output(value, 'float32', dims, name);
  else b.output(b.op('Cast', [value], { to: ONNX_FLOAT16 }, { outputs: [name] }), 'float16', dims);
}

/** The tiny text encoder: CLIP-like transformer (`buildTextEncoder`) + CLIP's pooler (hidden state at the arg-max id = eos). */
function textEncoderGraph(variant: SdExporterVariant, vocabSize: number, E: number, seed: number, prec: Precision): GraphBuilder {
  const b = new GraphBuilder({ name: 'text_encoder' });
  const ids = b.input('input_ids', variant === 'legacy' ? 'int32' : 'int64', ['batch', SEQ]);
  const param = weightParam(b, seed, 'text_encoder', prec);
  const h = buildTextEncoder(b, { vocabSize, maxLength: SEQ, width: E, layers: 1, heads: 2, mlpMult: 2 }, ids, param, 'dynamic');
  // pooler_output: CLIP takes the hidden state at input_ids.argmax(-1) (the first eos)
  const am = b.op('ArgMax', [b.op('Cast', [ids], { to: 1 })], { axis: 1, keepdims: 1 }); // [B, 1] int64
  const pos = b.constI64(Array.from({ length: SEQ }, (_, i) => i), [1, SEQ]);
  const oneHot = b.op('Cast', [b.op('Equal', [am, pos])], { to: 1 }); // [B, 77]
  const pooled = reshape(b, b.op('MatMul', [reshape(b, oneHot, [-1, 1, SEQ]), h]), [-1, E]);
  floatOutput(b, prec, h, ['batch', SEQ, E], 'last_hidden_state');
  floatOutput(b, prec, pooled, ['batch', E], 'pooler_output');
  return b;
}

/**
 * The `buildUnet` configuration of a tiny export's U-Net (channels 16/32, attention at 32 and in the
 * mid block, 2 heads, 77 tokens) for latent side `latentSize`, width E `hiddenSize` and `latentChannels`
 * (defaults 8, 32, 4 as {@link writeTinySdExport}'s). Its weights are `paramFnFor(b, 'initializer',
 * { seed: paramSeed(seed, 'unet') })`'s, so memscope's own builder can rebuild the same U-Net.
 */
export function tinySdUnetConfig(opts: { readonly latentSize?: number; readonly hiddenSize?: number; readonly latentChannels?: number } = {}): UnetConfigInput {
  return {
    channels: [16, 32],
    attentionLevels: [false, true],
    groups: 4,
    heads: 2,
    ffMult: 2,
    timeEmbedDim: 64,
    contextDim: opts.hiddenSize ?? 32,
    contextLength: SEQ,
    inChannels: opts.latentChannels ?? 4,
    sampleSize: opts.latentSize ?? 8,
  };
}

/** The tiny U-Net ({@link tinySdUnetConfig}) with the given timestep layout, cast / expanded to float32 `[B]`. */
function unetGraph(timestep: TinySdTimestep, C: number, h: number, E: number, seed: number, prec: Precision, layout: 'heads' | 'batch-heads', dynamicSpatial: boolean): GraphBuilder {
  const b = new GraphBuilder({ name: 'unet' });
  const hw: readonly (number | string)[] = dynamicSpatial ? ['height', 'width'] : [h, h];
  const sampleIn = b.input('sample', prec.dtype, ['batch', C, ...hw]);
  const sample = prec.dtype === 'float32' ? sampleIn : b.op('Cast', [sampleIn], { to: ONNX_FLOAT });
  let t: string;
  if (timestep === 'int64-batch') {
    t = b.op('Cast', [b.input('timestep', 'int64', ['batch'])], { to: ONNX_FLOAT });
  } else if (timestep === 'float32-batch') {
    t = floatInput(b, prec, 'timestep', ['batch']);
  } else {
    const one = floatInput(b, prec, 'timestep', timestep === 'float32-one' ? [1] : []);
    t = b.op('Expand', [one, b.op('Shape', [sample], { start: 0, end: 1 })]); // [] or [1] → [B]
  }
  const context = floatInput(b, prec, 'encoder_hidden_states', ['batch', SEQ, E]);
  const param = weightParam(b, seed, 'unet', prec);
  const cfg = tinySdUnetConfig({ latentSize: h, hiddenSize: E, latentChannels: C });
  const eps = buildUnet(b, cfg, { sample, timestep: t, context }, param, 'dynamic', { diffusersNodeNames: true, attentionLayout: layout, dynamicSpatial });
  floatOutput(b, prec, eps, ['batch', C, ...hw], 'out_sample');
  return b;
}

const VAE_CH = 16;

/** Tiny VAE encoder: conv_in, three stride-2 convs with SiLU, conv_out to 2C moments, 1×1 quant_conv. */
function vaeEncoderGraph(variant: SdExporterVariant, C: number, seed: number, prec: Precision): GraphBuilder {
  const b = new GraphBuilder({ name: 'vae_encoder' });
  const x = floatInput(b, prec, 'sample', ['batch', 3, 'height', 'width']);
  const param = weightParam(b, seed, 'vae', prec);
  let h = silu(b, conv2d(b, param, 'encoder.conv_in', x, 3, VAE_CH));
  for (let i = 0; i < 3; i++) h = silu(b, conv2d(b, param, `encoder.down.${i}`, h, VAE_CH, VAE_CH, { stride: 2 }));
  h = conv2d(b, param, 'encoder.conv_out', h, VAE_CH, 2 * C);
  const moments = conv2d(b, param, 'quant_conv', h, 2 * C, 2 * C, { k: 1 });
  const dims = ['batch', C, 'height_latent', 'width_latent'];
  if (variant === 'optimum') {
    floatOutput(b, prec, moments, ['batch', 2 * C, 'height_latent', 'width_latent'], 'latent_parameters');
    return b;
  }
  // legacy: DiagonalGaussianDistribution.sample() inside the graph (log-variance clamped to [−30, 20])
  const [mean, logvar] = b.opN('Split', [moments, b.constI64([C, C])], { axis: 1 }, { outputs: 2 });
  const std = b.op('Exp', [b.op('Mul', [b.op('Clip', [logvar!, b.constF32(-30), b.constF32(20)]), b.constF32(0.5)])]);
  const noise = b.op('RandomNormalLike', [mean!], { seed: f(seed) });
  floatOutput(b, prec, b.op('Add', [mean!, b.op('Mul', [std, noise])]), dims, 'latent_sample');
  return b;
}

/** Tiny VAE decoder: 1×1 post_quant_conv, conv_in, three (nearest 2× up-sampling, conv, SiLU), conv_out to RGB. */
function vaeDecoderGraph(C: number, seed: number, prec: Precision): GraphBuilder {
  const b = new GraphBuilder({ name: 'vae_decoder' });
  const z = floatInput(b, prec, 'latent_sample', ['batch', C, 'height_latent', 'width_latent']);
  const param = weightParam(b, seed, 'vae', prec);
  let h = conv2d(b, param, 'post_quant_conv', z, C, C, { k: 1 });
  h = silu(b, conv2d(b, param, 'decoder.conv_in', h, C, VAE_CH));
  for (let i = 0; i < 3; i++) h = silu(b, conv2d(b, param, `decoder.up.${i}`, upsample2x(b, h), VAE_CH, VAE_CH));
  h = conv2d(b, param, 'decoder.conv_out', h, VAE_CH, 3);
  floatOutput(b, prec, h, ['batch', 3, 'height', 'width'], 'sample');
  return b;
}

function schedulerConfig(predictionType: 'epsilon' | 'v_prediction'): Record<string, unknown> {
  return {
    _class_name: 'PNDMScheduler',
    _diffusers_version: '0.30.0',
    beta_end: 0.012,
    beta_schedule: 'scaled_linear',
    beta_start: 0.00085,
    clip_sample: false,
    num_train_timesteps: 1000,
    prediction_type: predictionType,
    set_alpha_to_one: false,
    skip_prk_steps: true,
    steps_offset: 1,
    timestep_spacing: 'leading',
    trained_betas: null,
  };
}

function modelIndex(variant: SdExporterVariant): Record<string, unknown> {
  if (variant === 'legacy') {
    return {
      _class_name: 'OnnxStableDiffusionPipeline',
      _diffusers_version: '0.30.0',
      feature_extractor: [null, null],
      requires_safety_checker: false,
      safety_checker: [null, null],
      scheduler: ['diffusers', 'PNDMScheduler'],
      text_encoder: ['diffusers', 'OnnxRuntimeModel'],
      tokenizer: ['transformers', 'CLIPTokenizer'],
      unet: ['diffusers', 'OnnxRuntimeModel'],
      vae_decoder: ['diffusers', 'OnnxRuntimeModel'],
      vae_encoder: ['diffusers', 'OnnxRuntimeModel'],
    };
  }
  // optimum keeps the source pipeline's index (no vae_encoder/vae_decoder keys)
  return {
    _class_name: 'StableDiffusionPipeline',
    _diffusers_version: '0.30.0',
    feature_extractor: [null, null],
    requires_safety_checker: false,
    safety_checker: [null, null],
    scheduler: ['diffusers', 'PNDMScheduler'],
    text_encoder: ['transformers', 'CLIPTextModel'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'],
    vae: ['diffusers', 'AutoencoderKL'],
  };
}

/** optimum's copy of the source U-Net's `config.json` (the fields readers use; `sample_size` = the latent side). */
function unetConfigJson(C: number, latentSize: number, E: number): Record<string, unknown> {
  const u = tinySdUnetConfig({ latentSize, hiddenSize: E, latentChannels: C });
  return {
    _class_name: 'UNet2DConditionModel',
    _diffusers_version: '0.30.0',
    block_out_channels: u.channels,
    cross_attention_dim: E,
    in_channels: C,
    out_channels: C,
    sample_size: latentSize,
  };
}

function vaeConfig(C: number, imageSize: number, scalingFactor: number): Record<string, unknown> {
  return {
    _class_name: 'AutoencoderKL',
    _diffusers_version: '0.30.0',
    block_out_channels: [VAE_CH, VAE_CH, VAE_CH, VAE_CH],
    in_channels: 3,
    latent_channels: C,
    out_channels: 3,
    sample_size: imageSize,
    scaling_factor: scalingFactor,
  };
}

/**
 * Write a tiny Stable-Diffusion ONNX export into `dir` (created if needed; existing files are
 * overwritten) following the `legacy` or `optimum` exporter conventions of SPEC §7:
 * `model_index.json`, `scheduler/scheduler_config.json` (SD's PNDM config: scaled_linear
 * 0.00085–0.012, 1000 steps, `clip_sample: false`, `set_alpha_to_one: false`, `steps_offset: 1`,
 * `skip_prk_steps: true`), `tokenizer/` (a small CLIP byte-level BPE vocabulary),
 * `text_encoder/model.onnx`, `unet/model.onnx` (weights external: `weights.pb` or
 * `model.onnx_data`), `vae_encoder/model.onnx`, `vae_decoder/model.onnx`, and for `optimum`
 * `unet/config.json` and the VAE configs. Defaults: variant
 * `legacy`, seed 0, image 64×64 (latents 4×8×8), E = 32, epsilon prediction, pad `<|endoftext|>`,
 * timestep int64 `[B]` (legacy) / float32 `[]` (optimum), dtype float32 (`'float16'`: fp16
 * signatures and stored weights, float32 compute inside — see {@link TinySdExportOptions.dtype}).
 */
export function writeTinySdExport(dir: string, opts: TinySdExportOptions = {}): TinySdExportInfo {
  const variant = opts.variant ?? 'legacy';
  const seed = opts.seed ?? 0;
  const imageSize = opts.imageSize ?? 64;
  const E = opts.hiddenSize ?? 32;
  const C = opts.latentChannels ?? 4;
  if (variant !== 'legacy' && variant !== 'optimum') throw new Error(`writeTinySdExport: variant must be 'legacy' or 'optimum', got '${String(variant)}'`);
  const timestep = opts.timestep ?? (variant === 'legacy' ? 'int64-batch' : 'float32-scalar');
  if (!TIMESTEPS.includes(timestep)) throw new Error(`writeTinySdExport: timestep must be one of ${TIMESTEPS.map((t) => `'${t}'`).join(', ')}, got '${String(timestep)}'`);
  const dtype = opts.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float16') throw new Error(`writeTinySdExport: dtype must be 'float32' or 'float16', got '${String(dtype)}'`);
  const attentionLayout = opts.attentionLayout ?? 'heads';
  const spatial = opts.spatial ?? 'static';
  if (spatial !== 'static' && spatial !== 'dynamic') throw new Error(`writeTinySdExport: spatial must be 'static' or 'dynamic', got '${String(spatial)}'`);
  if (attentionLayout !== 'heads' && attentionLayout !== 'batch-heads') throw new Error(`writeTinySdExport: attentionLayout must be 'heads' or 'batch-heads', got '${String(attentionLayout)}'`);
  const prec: Precision = { dtype, roundWeights: opts.roundWeightsToHalf === true };
  if (!Number.isInteger(imageSize) || imageSize < 16 || imageSize % 16 !== 0) throw new Error(`writeTinySdExport: imageSize must be a multiple of 16 (≥ 16), got ${imageSize}`);
  if (!Number.isInteger(E) || E < 2 || E % 2 !== 0) throw new Error(`writeTinySdExport: hiddenSize must be an even integer ≥ 2, got ${E}`);
  if (!Number.isInteger(C) || C < 1) throw new Error(`writeTinySdExport: latentChannels must be a positive integer, got ${C}`);
  const h = imageSize / 8;
  const files: string[] = [];
  let bytes = 0;
  const put = (rel: string, body: string | Uint8Array): void => {
    const full = join(dir, rel);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, body);
    files.push(rel);
    bytes += typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  };
  const json = (o: unknown): string => `${JSON.stringify(o, null, 2)}\n`;

  put('model_index.json', json(modelIndex(variant)));
  put('scheduler/scheduler_config.json', json(schedulerConfig(opts.predictionType ?? 'epsilon')));
  const tok = tokenizerFiles(opts.padToken ?? EOS);
  for (const [name, body] of Object.entries(tok)) put(`tokenizer/${name}`, body);
  const vocabSize = Object.keys(JSON.parse(tok['vocab.json']!) as object).length;

  put('text_encoder/model.onnx', textEncoderGraph(variant, vocabSize, E, seed, prec).toBytes());
  const location = variant === 'legacy' ? 'weights.pb' : 'model.onnx_data';
  const unet = writeModelWithExternalData(unetGraph(timestep, C, h, E, seed, prec, attentionLayout, spatial === 'dynamic'), join(dir, 'unet', 'model.onnx'), { location });
  files.push('unet/model.onnx', `unet/${location}`);
  if (variant === 'optimum') put('unet/config.json', json(unetConfigJson(C, h, E)));
  bytes += unet.model.byteLength + unet.data.byteLength;
  put('vae_encoder/model.onnx', vaeEncoderGraph(variant, C, seed, prec).toBytes());
  put('vae_decoder/model.onnx', vaeDecoderGraph(C, seed, prec).toBytes());
  const sf = opts.scalingFactor ?? (variant === 'optimum' ? 0.18215 : undefined);
  if (sf !== undefined) {
    put('vae_encoder/config.json', json(vaeConfig(C, imageSize, sf)));
    put('vae_decoder/config.json', json(vaeConfig(C, imageSize, sf)));
  }
  return { dir, variant, seed, timestep, dtype, files: files.sort(), hiddenSize: E, latentChannels: C, imageSize, latentSize: h, sequenceLength: SEQ, vocabSize, bytes };
}
