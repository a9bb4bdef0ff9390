/**
 * The model source of a study (issue 15 §5): a denoiser with its schedule, its codec (model space
 * ↔ image space), its training data and what it can do (capabilities, each missing one with a
 * reason). Studies and commands ask the source for data, defaults and capabilities, never for the
 * kind of model: only the loaders (`study/sources/*.ts`, `study/sd-source.ts`, registered in
 * `study/source.ts`) know what they open.
 */
import { stat } from 'node:fs/promises';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DenoiseFn } from '../analysis/geometry.ts';
import type { Denoiser } from '../denoisers/denoiser.ts';
import type { PredictionType } from '../denoisers/parameterization.ts';
import type { ExecutionProvider } from '../graph/session.ts';
import type { Capability, CapabilityReasons, ModelCapabilities } from '../mitigate/capabilities.ts';
import { pad28to32 } from '../models/model-dir.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import { noiseRange, type NoiseRange } from '../schedules/range.ts';
import { TorchGenerator } from '../random/torch.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { crop32to28 } from './validate.ts';

/** The noise schedule a source's model was trained with: its scheduler config and, computed once, ᾱ and σ_min / σ_max. */
export interface SourceSchedule {
  readonly config: SchedulerConfig;
  readonly range: NoiseRange;
}

/** The {@link SourceSchedule} of `config` (its noise range computed here, once). */
export function sourceSchedule(config: SchedulerConfig): SourceSchedule {
  return { config, range: noiseRange(config) };
}

/**
 * Conversions between the model's space and the image space copies are measured in:
 * `identity` (the model samples images of the training images' shape), `pad-crop` (28×28
 * training images padded to the model's 32×32, samples cropped back) or `vae` (latents, decoded by
 * the VAE; training images encoded).
 */
export interface SourceCodec {
  readonly kind: 'identity' | 'pad-crop' | 'vae';
  /** Training image `index` in the model's space (`[1, ...denoiser.shape]`). */
  toModelSpace(index: number): Tensor;
  /** Model-space samples `[n, ...shape]` as images in [−1, 1], shaped as the training images. */
  toImageSpace(x: Tensor): Promise<Tensor>;
  /** Other images `[n, ...]` shaped as the training images (e.g. held-out ones) in the model's space `[n, ...denoiser.shape]`. */
  encode(images: Tensor): Promise<Tensor>;
  /**
   * The model's denoiser on noisy images, for studies that put noise on the images themselves
   * (Dodson & Gao's geometry): present when the model space is the image space up to a border
   * (identity, pad-crop), so a noisy image is a noisy model input; null when the model space is an
   * encoding (VAE latents: a noisy latent is no encoded noisy image), where such studies work on the
   * encoded images (`toModelSpace`, `encode`).
   */
  readonly noisyImages: NoisyImageView | null;
  /** The factor the encoder's output is multiplied by to give model-space values (a VAE's latent scaling factor); null when the codec encodes nothing. */
  readonly scalingFactor: number | null;
}

/** How a model working in a padded image space denoises noisy images (see {@link SourceCodec.noisyImages}). */
export interface NoisyImageView {
  /** `D` (on `[B, ...denoiser.shape]`) as a D(y;σ) on noisy images `[B, ...image shape]`, the model-space border noised with the draws of `TorchGenerator(seed)`. */
  denoiser(D: DenoiseFn, seed: number): DenoiseFn;
  /** What {@link NoisyImageView.denoiser} does to the calls, as data for unit keys (e.g. `{ pad: 2, fill: −1, seed }`); null when it passes them through. */
  key(seed: number): unknown;
}

/** The view of a model whose space is the image space itself: its denoiser as is. */
const IDENTITY_VIEW: NoisyImageView = { denoiser: (D) => D, key: () => null };

/** The view of a model whose space is the image space with a border of `pad` pixels of value `fill` (see {@link paddedDenoiseFn}). */
function paddedView(pad: number, fill: number): NoisyImageView {
  return { denoiser: (D, seed) => paddedDenoiseFn(D, { pad, fill, seed }), key: (seed) => ({ pad, fill, seed }) };
}

/** The codec of a model whose space is the image space (`[n, ...shape]` both): every conversion is the identity. */
export function identityCodec(images: Tensor): SourceCodec {
  const img = images.dims.slice(1);
  const per = img.reduce((a, b) => a * b, 1);
  return { kind: 'identity', toModelSpace: (i) => ({ dims: [1, ...img], data: images.data.slice(i * per, (i + 1) * per) }), toImageSpace: async (x) => x, encode: async (x) => x, noisyImages: IDENTITY_VIEW, scalingFactor: null };
}

/**
 * Run a D(y;σ) of `[B, c, h+2p, w+2p]` images on `[B, c, h, w]` inputs: the input is padded by `pad`
 * pixels of value `fill` plus σ·z (z from `TorchGenerator(seed)`, so the border is as noisy as the
 * training inputs were), and the output is cropped back. The trained testbed models see 28×28
 * Fashion-MNIST padded to 32×32 with −1 (`pad28to32`); their defaults are pad 2, fill −1.
 */
export function paddedDenoiseFn(D: DenoiseFn, opts: { pad?: number; fill?: number; seed?: number } = {}): DenoiseFn {
  const p = opts.pad ?? 2;
  const fill = opts.fill ?? -1;
  const seed = opts.seed ?? 0;
  return async (y: Tensor, sigma: number): Promise<Tensor> => {
    if (y.dims.length !== 4) throw new Error(`paddedDenoiseFn: y must be [B, c, h, w], got [${y.dims.join(', ')}]`);
    const [B, c, h, w] = y.dims as [number, number, number, number];
    const H = h + 2 * p;
    const W = w + 2 * p;
    const z = new TorchGenerator(seed).randn([B * c * H * W]);
    const big = new Float32Array(B * c * H * W);
    for (let i = 0; i < big.length; i++) big[i] = fill + sigma * z[i]!;
    for (let b = 0; b < B * c; b++) for (let r = 0; r < h; r++) big.set(y.data.subarray((b * h + r) * w, (b * h + r + 1) * w), (b * H + r + p) * W + p);
    const out = await D({ dims: [B, c, H, W], data: big }, sigma);
    const small = new Float32Array(B * c * h * w);
    for (let b = 0; b < B * c; b++) for (let r = 0; r < h; r++) small.set(out.data.subarray((b * H + r + p) * W + p, (b * H + r + p) * W + p + w), (b * h + r) * w);
    return { dims: [B, c, h, w], data: small };
  };
}

/**
 * The codec of a pixel-space model with training images `images` `[n, C, H, W]`: identity when the
 * model's per-sample shape is the images' shape, pad-crop when the model works on 32×32 padded
 * 28×28 images (memscope's trained models); else an error naming both shapes.
 */
export function pixelCodec(images: Tensor, modelShape: readonly number[]): SourceCodec {
  const img = images.dims.slice(1);
  if (img.length === modelShape.length && img.every((v, i) => v === modelShape[i])) return identityCodec(images);
  if (img.length === 3 && img[1] === 28 && img[2] === 28 && modelShape.length === 3 && modelShape[0] === img[0] && modelShape[1] === 32 && modelShape[2] === 32) {
    // pad28to32's border: 2 pixels of −1 (the background)
    return { kind: 'pad-crop', toModelSpace: (i) => pad28to32(images, [i]), toImageSpace: async (x) => crop32to28(x), encode: async (x) => pad28to32(x, Array.from({ length: x.dims[0]! }, (_, i) => i)), noisyImages: paddedView(2, -1), scalingFactor: null };
  }
  throw new Error(`the model samples [${modelShape.join(', ')}] and its training images are [${img.join(', ')}]: no codec maps one to the other`);
}

/** Defaults that depend on the source (what a command uses when its flag is not given). */
export interface SourceDefaults {
  /** Copy descriptor of sweep, transition and evaluate: `learned` (memscope's descriptor fits 28×28 Fashion-MNIST) or `pixel`. */
  readonly descriptor: 'pixel' | 'learned';
  /** Descriptors of `analyze kim` (first = the copy descriptor). */
  readonly analysisDescriptors: string;
  /** Whether evaluate's pixel descriptor is centred on the training mean (natural images; the Fashion-MNIST models compare raw pixels). */
  readonly centerPixels: boolean;
  /** The classifier that scores class-prompt samples (a folder that may hold `weights.safetensors`), or null with {@link SourceDefaults.noClassifier}. */
  readonly classifierDir: string | null;
  /** Why no classifier applies (when `classifierDir` is null). */
  readonly noClassifier?: string;
  /** How evaluate decides a sample is memorized: its nearest training image is the prompt's own, or its similarity to that image is above a threshold. */
  readonly memorizationRule: 'nearest-is-own' | 'own-similarity';
  /** Conditions `memscope sample` samples when `--prompts` is not given. */
  readonly samplePrompts: string;
}

/** Training and held-out data of a source beyond the training images. */
export interface SourceData {
  /** Training image indices the model saw; null = all of `trainImages`. */
  readonly imagePool: readonly number[] | null;
  /** A held-out split of the training distribution (Fashion-MNIST's test split), or null: the user gives held-out images. */
  readonly heldOut: { readonly description: string; load(): Tensor; credit?(): DataCredit } | null;
  /** The class label of condition k's prompt (its training image's class), null when unknown. */
  classOf(cond: number): number | null;
  /** Where the training images come from, for reports (absent: data the user gave). */
  credit?(): DataCredit;
  /**
   * Why the model's unconditional branch (the null condition) does not stand for a model of the
   * training images as one distribution — what Dodson & Gao's geometry compares with the exact
   * empirical denoiser D* over them; absent or null when it does.
   */
  readonly unconditionalReason?: string | null;
  /** The σ band whose loss was down-weighted in training (under-training, SPEC §5.6b); absent or null when every σ was trained alike. */
  readonly lossBand?: LossBand | null;
}

/** A data set's name, license and copyright (for reports). */
export interface DataCredit {
  readonly dataset: string;
  readonly license: string;
  readonly copyright: string;
}

/** A mid-σ loss band of training (SPEC §5.6b): the loss × `rho` for σ ∈ [sigmaLo, sigmaHi]. */
export interface LossBand {
  readonly sigmaLo: number;
  readonly sigmaHi: number;
  readonly rho?: number;
}

/** A study's model with its training data, schedule, codec, defaults and capabilities. */
export interface StudySource {
  readonly denoiser: Denoiser;
  /** A short name of the model for tables, plots and row names (absent: `denoiser.name`). */
  readonly name?: string;
  /** The training images `[n, C, H, W]` in [−1, 1] (empty when the model has none: it can only sample). */
  readonly trainImages: Tensor;
  /** What the model is, for reports. */
  readonly description: string;
  /** `'testbed'` or the model's path. */
  readonly spec: string;
  /** The scheduler config the model was trained with (its own, or Stable Diffusion 1.x's) and its noise range. */
  readonly schedule: SourceSchedule;
  /** Model space ↔ image space. */
  readonly codec: SourceCodec;
  /** Training image `index` in the model's space: `codec.toModelSpace`. */
  toModelSpace(index: number): Tensor;
  /** Model-space samples as images in [−1, 1]: `codec.toImageSpace`. */
  toImageSpace(x: Tensor): Promise<Tensor>;
  readonly defaults: SourceDefaults;
  readonly data: SourceData;
  /** What the model can do beyond a conditional denoiser (absent = missing, see {@link StudySource.capabilityReason}). */
  readonly capabilities: ModelCapabilities;
  /** Null when the source has capability `c` (and it applies), else why not (generated by the loader). */
  readonly capabilityReason: CapabilityReasons;
  /** What the model is, as data for run records (`kind`, path, …). */
  readonly info: Readonly<Record<string, unknown>>;
  /** Lines a command prints when it opens the source (e.g. the image size and where it came from). */
  readonly notes: readonly string[];
  /** Hash of the weights and configuration the results depend on (part of every unit key; see `study/fingerprint.ts`). */
  fingerprint(): Promise<string>;
}

/** The capabilities of `src` among `wanted`: each → null (present) or why it is missing. */
export function capabilityReport(src: Pick<StudySource, 'capabilityReason'>, wanted: readonly Capability[]): ReadonlyMap<Capability, string | null> {
  return new Map([...new Set(wanted)].map((c) => [c, src.capabilityReason(c)] as const));
}

/** Options of a Stable Diffusion export as a source (see `loadSdStudySource`). */
export interface SdSourceOptions {
  /** The prompt set (CSV / JSONL / Parquet, see `readPromptSet`); required unless `texts` is given. */
  readonly promptSet?: string;
  /** Plain prompts instead of a prompt set (no training images: sampling only, nothing to copy). */
  readonly texts?: readonly string[];
  /** Folder that relative image paths resolve against (default: the prompt set's folder). */
  readonly imageRoot?: string;
  /** Use only the first `limit` prompts (default all). */
  readonly limit?: number;
  /** Execution provider (default `'cpu'`). */
  readonly executionProvider?: ExecutionProvider;
  /** Image side in pixels (default: the export's, see `sdDefaultImageSize`: unet/config.json `sample_size` × the VAE scale factor, else 512). */
  readonly imageSize?: number;
  /** Negative prompt: the unconditional branch e_∅ becomes its embedding (diffusers' `negative_prompt`; default the empty prompt). */
  readonly negativePrompt?: string;
  /** The CLIP tokenizer's text clean-up (default `'fast'`; `'slow'`: transformers 4.x's slow CLIPTokenizer, part of the source's fingerprint). */
  readonly tokenizer?: 'fast' | 'slow';
  /** Weight files of a diffusers pipeline folder: `'fp32'` or `'fp16'` (default: fp32 when present, else fp16); refused for an ONNX export. */
  readonly variant?: 'fp32' | 'fp16';
  /** LoRA adapters merged into a diffusers folder at load (`--lora`); refused for an ONNX export. */
  readonly lora?: readonly { readonly path: string; readonly scale: number }[];
  /** A diffusers pipeline folder whose configs, scheduler and tokenizer a single-file checkpoint `--model FILE.safetensors` is read with (`--pipeline-config`). */
  readonly pipelineConfig?: string;
  /** Prompts per text-encoder call (default 8). */
  readonly batch?: number;
  /** Images per VAE encoder / decoder call (default 1: the SD VAE decoder at 512² holds ≈ 1 GB of activations per image). */
  readonly vaeBatch?: number;
  /**
   * Rows per U-Net call (default 2 = one image's cond + uncond, as diffusers runs CFG): the studies
   * hand the denoiser up to hundreds of rows, and at 512×512 the attention scores alone take
   * 8·4096²·4 B ≈ 0.5 GB per row; larger values trade memory for speed on a GPU.
   */
  readonly unetBatch?: number;
}

/** Options of a bare ONNX U-Net file as a source (`--model PATH.onnx`). */
export interface OnnxSourceOptions {
  /** `.npy` file of condition rows (class labels `[K]` or `encoder_hidden_states` `[K, L, D]`). */
  readonly cond?: string;
  /** `.npy` file of the null condition (default zeros). */
  readonly uncond?: string;
  /** What the model outputs (default: the scheduler config's `prediction_type`, else epsilon). */
  readonly predictionType?: PredictionType;
  /** Per-sample shape when the model's is dynamic. */
  readonly shape?: readonly number[];
}

/** Options of the analytic testbed as a source. */
export interface TestbedSourceOptions {
  /** Number of memorized captions (default 20). */
  readonly captions?: number;
}

/** Options of {@link SourceLoader.load}: one group per kind of source, refused (naming the flag) by the others. */
export interface StudySourceOptions {
  /** For a Stable Diffusion export: the prompt set and friends. */
  readonly sd?: SdSourceOptions;
  /** For a bare ONNX U-Net file. */
  readonly onnx?: OnnxSourceOptions;
  /** For the analytic testbed. */
  readonly testbed?: TestbedSourceOptions;
  /** The scheduler config to use instead of the model's own (`--scheduler-config`). */
  readonly schedulerConfig?: SchedulerConfig;
  /**
   * Use the scheduler config stored with the model's weights (a trained model's `model.json`
   * `schedule`, as `memscope train` wrote it) instead of Stable Diffusion 1.x's pipeline config
   * (default false: the commands sample a trained model as the SD pipeline does); an export's own
   * config is used either way, and `schedulerConfig` overrides both.
   */
  readonly ownSchedule?: boolean;
  /** Trained models: also open the U-Net with cross-attention exposed at load (default false; studies open it through the `attention` capability). */
  readonly exposeCrossAttention?: boolean;
}

/** An option group of {@link StudySourceOptions} that only some loaders take. */
export type SourceOptionGroup = 'sd' | 'onnx' | 'testbed';

/** Each option group's fields and flags, and what the flags are for. */
export const SOURCE_OPTION_FLAGS: Readonly<Record<SourceOptionGroup, { readonly only: string; readonly flags: readonly (readonly [string, string])[] }>> = {
  sd: {
    only: 'only for a Stable Diffusion export (--model EXPORT_DIR)',
    flags: [['promptSet', '--prompt-set'], ['texts', '--prompt'], ['imageRoot', '--image-root'], ['limit', '--prompt-limit'], ['imageSize', '--image-size'], ['executionProvider', '--provider'], ['variant', '--variant'], ['lora', '--lora'], ['pipelineConfig', '--pipeline-config'], ['negativePrompt', '--negative-prompt'], ['unetBatch', '--unet-batch'], ['vaeBatch', '--vae-batch']],
  },
  onnx: { only: 'only for --model PATH.onnx (an ONNX noise-prediction model)', flags: [['cond', '--cond'], ['uncond', '--uncond'], ['predictionType', '--prediction-type'], ['shape', '--shape']] },
  testbed: { only: 'only for --model testbed (the number of memorized captions it builds)', flags: [['captions', '--captions']] },
};

/** Throw naming the first flag of `group` set in `opts`: those options are not for `spec`. */
export function refuseOptionGroup(group: SourceOptionGroup, spec: string, opts: StudySourceOptions): void {
  const given = opts[group] as Readonly<Record<string, unknown>> | undefined;
  const g = SOURCE_OPTION_FLAGS[group];
  for (const [k, flag] of g.flags) if (given?.[k] !== undefined) throw new Error(`${flag}: ${g.only}; "${spec}" is not one`);
}

/**
 * One way to open a `--model` value as a study source. `probe` says whether this loader takes the
 * value (null) or why not (a reason in words); `load` opens it. Loaders live in `SOURCE_LOADERS`
 * (`study/source.ts`) and are tried in order; when none takes a value, the error lists every
 * loader's reason (as onnxruntime's backend registry does).
 */
export interface SourceLoader {
  /** Short name shown in errors (`testbed`, `stable-diffusion`, `trained`, `onnx`). */
  readonly name: string;
  /** What `--model` values it takes, for the "no loader fits" error (e.g. `a trained model directory with model.json`). */
  readonly takes?: string;
  /** The option groups it reads (the others are refused before `load`; default none). */
  readonly options?: readonly SourceOptionGroup[];
  probe(spec: string): Promise<string | null>;
  load(spec: string, opts: StudySourceOptions): Promise<StudySource>;
}

/**
 * The shipped trained model used by default (inside the package, wherever it is run from): the
 * `graded` duplication model (captions trained on 1, 3, 10, 30 and 100 times, class prompts; EDM).
 */
export const SHIPPED_MODEL = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'graded');

/**
 * The classifier that scores a trained model's class-prompt samples: `classifier/` beside the model
 * when there is one (a model trained into runs/train/ next to its own classifier), else the shipped
 * `models/classifier`.
 */
export async function defaultClassifierDir(modelDir: string): Promise<string> {
  const beside = join(dirname(resolve(modelDir)), 'classifier');
  const has = await stat(join(beside, 'weights.safetensors')).then(() => true, () => false);
  return has ? beside : join(dirname(SHIPPED_MODEL), 'classifier');
}

/** The reason every capability is missing on a model without text conditioning (the testbed, class-only and bare ONNX models). */
export function noTextModelReasons(description: string): CapabilityReasons {
  return () => `need a trained text-conditioned model; ${description} has none`;
}
