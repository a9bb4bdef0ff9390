/**
 * The latent text-to-image pipeline on a Stable Diffusion ONNX export (SPEC §0, §1, §7): prompts →
 * text-encoder embeddings → initial latents from torch-compatible seeds → classifier-free guided
 * sampling of the U-Net in latent space with a memscope sampler → VAE decode to images in [0, 1].
 * Also the VAE encode/decode halves on their own (targets x = scaling_factor · mean latent).
 *
 * float16 exports need nothing special: memscope tensors stay float32 and the session boundary
 * rounds feeds to float16 and widens float16 outputs (see `graph/session.ts`).
 *
 * Every step reuses the library: {@link encodePrompts} and {@link sdUnetDenoiser} (which converts
 * v-prediction to ε), the {@link cfg} combinator (cond + uncond in one batched U-Net call), the
 * diffusers-exact samplers ({@link sample}) driven by the export's own scheduler config, and
 * {@link TorchGenerator} for the initial noise.
 */
import { type SdExport, encodePrompts, sdUnetDenoiser } from './export.ts';
import { cfg } from '../guidance/cfg.ts';
import { type GuidanceSchedule, constant } from '../guidance/schedules.ts';
import { TorchGenerator } from '../random/torch.ts';
import { type SamplerName, sample } from '../samplers/index.ts';
import type { StepEvent } from '../samplers/types.ts';
import { type Tensor, numel } from '../tensor/tensor.ts';

/** Default classifier-free guidance scale of {@link generate} (SD's 7.5; SPEC §1 `constant(7.5)`). */
export const SD_DEFAULT_GUIDANCE = 7.5;
/** Default number of inference steps of {@link generate} (diffusers' 50). */
export const SD_DEFAULT_STEPS = 50;

function checkImages(what: string, t: Tensor, channels?: number): void {
  if (t.dims.length !== 4 || (channels !== undefined && t.dims[1] !== channels)) {
    throw new Error(`${what}: expected [B, ${channels ?? 'C'}, H, W], got [${t.dims.join(', ')}]`);
  }
  if (t.data.length !== numel(t.dims)) throw new Error(`${what}: data has ${t.data.length} elements, dims [${t.dims.join(', ')}] need ${numel(t.dims)}`);
}

/**
 * Encode images to target latents x = scaling_factor · mean (SPEC §0 "image" in latent space, §7).
 * `images` is `[B, 3, H, W]` in [−1, 1]; returns `[B, C, H/8, W/8]`. For `latent_parameters`
 * exports (optimum) the mean half — the first C channels — is taken, deterministically. For
 * `latent_sample` exports (legacy) the output is used as given: that graph SAMPLES
 * mean + std·noise inside itself, so the result is random and not the mean. The input is fed
 * under the name the session metadata declares (cast to its declared type). Throws when the
 * export has no `vae_encoder/`.
 */
export async function vaeEncode(exp: SdExport, images: Tensor): Promise<Tensor> {
  const enc = exp.vaeEncoder;
  const session = exp.sessions.vaeEncoder;
  if (enc === null || session === null) throw new Error(`Stable Diffusion export ${exp.dir}: no vae_encoder/ — cannot encode images`);
  checkImages('vaeEncode images', images, 3);
  const res = await session.run({ [enc.input]: images }, [enc.outputKind]);
  const out = res[enc.outputKind]!;
  if (out.dims.length !== 4) throw new Error(`vae_encoder/model.onnx output '${enc.outputKind}' has shape [${out.dims.join(', ')}]; expected rank 4`);
  const [B, C2, h, w] = out.dims as [number, number, number, number];
  const C = enc.outputKind === 'latent_parameters' ? C2 / 2 : C2;
  if (!Number.isInteger(C) || C !== exp.latentChannels) {
    throw new Error(`vae_encoder/model.onnx output '${enc.outputKind}' has ${C2} channels; expected ${enc.outputKind === 'latent_parameters' ? 2 * exp.latentChannels : exp.latentChannels}`);
  }
  const per = C * h * w;
  const perIn = C2 * h * w;
  const sf = exp.scalingFactor;
  const data = new Float32Array(B * per);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < per; i++) data[b * per + i] = sf * out.data[b * perIn + i]!;
  }
  return { dims: [B, C, h, w], data };
}

/**
 * Decode latents to images (SPEC §7): y = decoder(x / scaling_factor), image = (y/2 + 0.5)
 * clamped to [0, 1]. `latents` is `[B, C, h, w]` (VP scale, times the scaling factor, as the
 * samplers return them); returns `[B, 3, 8h, 8w]`. Input and output names come from the session
 * metadata.
 */
export async function vaeDecode(exp: SdExport, latents: Tensor): Promise<Tensor> {
  checkImages('vaeDecode latents', latents, exp.latentChannels);
  const inv = 1 / exp.scalingFactor;
  const z = new Float32Array(latents.data.length);
  for (let i = 0; i < z.length; i++) z[i] = latents.data[i]! * inv;
  const dec = exp.vaeDecoder;
  const res = await exp.sessions.vaeDecoder.run({ [dec.input]: { dims: [...latents.dims], data: z } }, [dec.output]);
  const y = res[dec.output]!;
  const img = new Float32Array(y.data.length);
  for (let i = 0; i < img.length; i++) img[i] = Math.min(1, Math.max(0, y.data[i]! / 2 + 0.5));
  return { dims: [...y.dims], data: img };
}

/** Image size of {@link initialLatents} and {@link generate}. */
export interface SdImageSize {
  /** Image height in pixels (a multiple of 8). */
  readonly height: number;
  /** Image width in pixels (a multiple of 8). */
  readonly width: number;
}

/**
 * The export's default image size (diffusers' rule, see `sdDefaultImageSize`): the U-Net's fixed
 * latent size × 8, else `unet/config.json` `sample_size` × the VAE scale factor, else 512.
 */
export function defaultImageSize(exp: SdExport): SdImageSize {
  return { height: exp.defaultSize.height, width: exp.defaultSize.width };
}

/**
 * Initial latents x_T `[B, C, H/8, W/8]` (SPEC §1): row b is
 * `torch.randn([1, C, H/8, W/8], generator=torch.Generator().manual_seed(seeds[b]))`, as the
 * diffusers pipeline draws them with one generator per image. They are NOT multiplied by the
 * scheduler's `init_noise_sigma`: memscope's samplers do that themselves (Euler multiplies its
 * `noise` argument by σ_max; DDIM and DPM-Solver++ have init_noise_sigma = 1), so these are the
 * `noise` to hand to {@link sample}. Default size: {@link defaultImageSize}.
 */
export function initialLatents(exp: SdExport, seeds: readonly number[], size: SdImageSize = defaultImageSize(exp)): Tensor {
  return latentsFrom(exp, seeds.map((s) => new TorchGenerator(s)), size);
}

/** The initial latents drawn from one torch-identical generator per row (which then go on drawing a stochastic sampler's noise). */
function latentsFrom(exp: SdExport, generators: readonly TorchGenerator[], size: SdImageSize): Tensor {
  const { height, width } = size;
  if (!(Number.isInteger(height) && Number.isInteger(width) && height > 0 && width > 0 && height % 8 === 0 && width % 8 === 0)) {
    throw new Error(`image size ${height}×${width}: height and width must be positive multiples of 8`);
  }
  if (generators.length === 0) throw new Error('seeds: need at least one seed');
  const shape = [1, exp.latentChannels, height / 8, width / 8];
  const per = numel(shape);
  const data = new Float32Array(generators.length * per);
  generators.forEach((g, b) => data.set(g.randn(shape), b * per));
  return { dims: [generators.length, ...shape.slice(1)], data };
}

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** Prompts: one per seed, or a single prompt used for every seed. */
  readonly prompts: readonly string[];
  /** One seed per image (torch `manual_seed`), see {@link initialLatents}. */
  readonly seeds: readonly number[];
  /** Guidance schedule (default `constant(7.5)`, {@link SD_DEFAULT_GUIDANCE}). */
  readonly guidance?: GuidanceSchedule;
  /** Sampler (default `'ddim'`, η = 0). */
  readonly sampler?: SamplerName;
  /** Inference steps (default {@link SD_DEFAULT_STEPS} = 50). */
  readonly steps?: number;
  /** Image height (default: {@link defaultImageSize}). */
  readonly height?: number;
  /** Image width (default: {@link defaultImageSize}). */
  readonly width?: number;
  /** Negative prompt: its embedding replaces the empty prompt's as the unconditional branch, as diffusers' `negative_prompt` (default `''`). */
  readonly negativePrompt?: string;
  /** Keep x̂0(t) of every step in `x0Latents` (default false). */
  readonly recordX0?: boolean;
  /** Called once per sampler step (SPEC §1 observers); must not mutate the event. */
  readonly onStep?: (e: StepEvent) => void | Promise<void>;
}

/** What {@link generate} produced. */
export interface GenerateResult {
  /** Final latents x_0 `[B, C, H/8, W/8]` (times the scaling factor). */
  readonly latents: Tensor;
  /** Decoded images `[B, 3, H, W]` in [0, 1]. */
  readonly images: Tensor;
  /** x̂0(t) latents of every step `[steps, B, C, H/8, W/8]`, only with `recordX0`. */
  readonly x0Latents?: Tensor;
}

/**
 * Text-to-image on an SD export (SPEC §1, §7): encode the prompts (cond) and the empty prompt
 * (uncond e_∅) with {@link encodePrompts}, wrap the U-Net ({@link sdUnetDenoiser}, latent space,
 * v-prediction converted to ε) in the {@link cfg} combinator (cond and uncond in one batched
 * U-Net call), sample from {@link initialLatents} with the named memscope sampler on the export's
 * scheduler config (its `clip_sample`, `set_alpha_to_one`, `steps_offset` honoured), and decode
 * with {@link vaeDecode}. Defaults: guidance `constant(7.5)`, sampler `ddim`, 50 steps, the
 * export's default size ({@link defaultImageSize}). The export's sessions stay open (dispose the export when done).
 */
export async function generate(exp: SdExport, opts: GenerateOptions): Promise<GenerateResult> {
  const { prompts, seeds } = opts;
  if (seeds.length === 0) throw new Error('generate: need at least one seed');
  if (prompts.length !== 1 && prompts.length !== seeds.length) {
    throw new Error(`generate: ${prompts.length} prompts for ${seeds.length} seeds; give one prompt per seed or a single prompt`);
  }
  const steps = opts.steps ?? SD_DEFAULT_STEPS;
  const def = opts.height === undefined || opts.width === undefined ? defaultImageSize(exp) : null;
  const size: SdImageSize = { height: opts.height ?? def!.height, width: opts.width ?? def!.width };
  // one generator per row, as the pipeline with a list of generators: the initial latents, then a
  // stochastic sampler's per-step noise (Euler ancestral)
  const generators = seeds.map((s) => new TorchGenerator(s));
  const noise = latentsFrom(exp, generators, size);

  const cond = await encodePrompts(exp, prompts);
  const uncond = await encodePrompts(exp, [opts.negativePrompt ?? '']);
  const denoiser = sdUnetDenoiser(exp, {
    conditions: cond.hiddenStates,
    uncond: uncond.hiddenStates,
    labels: prompts,
    shape: noise.dims.slice(1),
  });
  // never dispose `denoiser`: it shares (and would release) the export's U-Net session
  const rows = seeds.map((_, b) => (prompts.length === 1 ? 0 : b));
  const guided = cfg(denoiser, opts.guidance ?? constant(SD_DEFAULT_GUIDANCE), rows);

  const x0s: Float32Array[] = [];
  const onStep = opts.onStep;
  const record = opts.recordX0 === true;
  const latents = await sample(opts.sampler ?? 'ddim', guided.model, noise, exp.scheduler, {
    steps,
    generators,
    ...(record || onStep !== undefined
      ? {
          onStep: async (e: StepEvent): Promise<void> => {
            if (record) x0s.push(e.xHat0.data.slice());
            if (onStep !== undefined) await onStep(e);
          },
        }
      : {}),
  });
  const images = await vaeDecode(exp, latents);
  if (!record) return { latents, images };
  const per = latents.data.length;
  const x0 = new Float32Array(x0s.length * per);
  x0s.forEach((d, i) => x0.set(d, i * per));
  return { latents, images, x0Latents: { dims: [x0s.length, ...latents.dims], data: x0 } };
}
