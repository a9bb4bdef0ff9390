/** Flags shared by the study commands for a Stable Diffusion ONNX export as `--model` (issue 7). */
import { z } from 'zod';
import { positiveInt, UsageError, type SamplerFlag } from './args.ts';
import { parseSamplerName, SAMPLER_NAMES, type SamplerName } from '../samplers/index.ts';
import { flagDocs, type HelpSection } from './help.ts';
import { loadStudySource, resolveModelSpec, type SdSourceOptions, type StudySource, type StudySourceOptions } from '../study/source.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import { promptLengthProblem } from '../data/prompt-set.ts';
import { parseLoraSpec } from '../sd/diffusers/lora.ts';

/** A prompt text flag (`--prompt`, `--negative-prompt`): non-empty unless `allowEmpty`, at most `MAX_PROMPT_CHARS` (10,000) characters. */
export function promptText(allowEmpty = false) {
  return z.string().transform((s, ctx) => {
    const problem = s.trim() === '' && !allowEmpty ? 'empty prompt' : promptLengthProblem(s);
    if (problem !== null) {
      ctx.addIssue({ code: 'custom', message: problem });
      return z.NEVER;
    }
    return s;
  });
}


/** The zod fields of the SD source flags (merged into each command's schema). */
export const SD_SOURCE_FIELDS = {
  'prompt-set': z.string().min(1).optional().register(flagDocs, { value: 'FILE', help: 'CSV / JSONL / Parquet prompt list (caption, image path, optional verbatim / template / none label); memorized = prompts tied to a training image' }),
  'image-root': z.string().min(1).optional().register(flagDocs, { value: 'DIR', help: "folder that relative image paths resolve against (default: the list's folder)" }),
  'prompt-limit': positiveInt('prompt-limit', 1_000_000).optional().register(flagDocs, { value: 'N', help: 'use only the first N prompts' }),
  'image-size': positiveInt('image-size', 8192).optional().register(flagDocs, { value: 'PX', help: 'image side (default: unet/config.json sample_size × VAE scale factor, as diffusers: SD 1.x 512, SD 2.1 768; 512 without unet/config.json)' }),
  tokenizer: z.enum(['fast', 'slow']).optional().register(flagDocs, { value: 'T', help: "fast | slow: the CLIP tokenizer's text clean-up — fast (default) as transformers 5 and CLIPTokenizerFast; slow as transformers 4.x's slow CLIPTokenizer without ftfy (drops zero-width / control characters, spaces out CJK ideographs)" }),
  variant: z.enum(['fp32', 'fp16']).optional().register(flagDocs, { value: 'V', help: 'fp32 | fp16: which weight files of a diffusers pipeline folder to read (default fp32 when present, else the .fp16.safetensors variant; computed in float32 either way)' }),
  lora: z
    .string()
    .min(1)
    .transform((v, ctx) => {
      try {
        return v.split(',').map((x) => parseLoraSpec(x.trim()));
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message.replace(/^--lora: /, '') });
        return z.NEVER;
      }
    })
    .optional()
    .register(flagDocs, { value: 'FILE[:s],…', help: "LoRA adapters (safetensors, kohya or diffusers/PEFT format) merged into a diffusers folder's U-Net and text encoder at load, each W + s·(α/r)·B·A (s default 1)" }),
  'pipeline-config': z.string().min(1).optional().register(flagDocs, { value: 'DIR', help: "with --model FILE.safetensors (an original single-file SD 1.x / 2.x checkpoint): the diffusers pipeline folder whose configs, scheduler and tokenizer it is read with (its weights are not read); as diffusers' from_single_file(config=DIR)" }),
  provider: z.enum(['cpu', 'cuda']).optional().register(flagDocs, { value: 'P', help: "cpu | cuda (default cpu; cuda needs onnxruntime's CUDA provider)" }),
  'negative-prompt': promptText(true).optional().register(flagDocs, { value: 'T', help: "the unconditional branch e_∅ = this text's embedding (default the empty prompt)" }),
  'unet-batch': positiveInt('unet-batch', 4096).optional().register(flagDocs, { value: 'N', help: 'rows per U-Net call (default 2 = cond + uncond of one image; raise on a GPU)' }),
  'vae-batch': positiveInt('vae-batch', 4096).optional().register(flagDocs, { value: 'N', help: 'images per VAE encode / decode call (default 1)' }),
} as const;

/** Throw a usage error naming the first SD source flag (or one of `extra`) given, for a model that is not a Stable Diffusion export. */
export function refuseSdFlags(o: Readonly<Record<string, unknown>>, extra: readonly string[] = []): void {
  for (const k of [...extra, ...Object.keys(SD_SOURCE_FIELDS)]) {
    if (o[k] !== undefined) throw new UsageError(`--${k}: only for Stable Diffusion (--model SD_DIR: an ONNX export or a diffusers pipeline folder)`);
  }
}

export { sdImageSizeNote } from '../study/sd-source.ts';

/** The doc of a study command's `--model SPEC` flag: the sources {@link loadCliSource} loads; `{default}` is the schema default. */
export const MODEL_SPEC_HELP = 'testbed | a trained model directory | a Stable Diffusion ONNX export, diffusers pipeline folder or single-file .safetensors checkpoint (with --pipeline-config) (with --prompt-set) | {default} (models/graded when present)';

/** The SD source flags (keys of {@link SD_SOURCE_FIELDS}) in their help order. */
export const SD_SOURCE_FLAGS: readonly string[] = Object.keys(SD_SOURCE_FIELDS);

/** The help section of the SD source flags, with its heading. */
export const SD_SOURCE_SECTION: HelpSection = {
  heading: 'Stable Diffusion (--model SD_DIR: a diffusers/optimum ONNX export or a diffusers pipeline folder with safetensors, latent space):',
  flags: SD_SOURCE_FLAGS,
};

/** Parsed SD source flag values. */
export interface SdSourceFlags {
  readonly 'prompt-set'?: string | undefined;
  readonly 'image-root'?: string | undefined;
  readonly 'prompt-limit'?: number | undefined;
  readonly 'image-size'?: number | undefined;
  readonly provider?: 'cpu' | 'cuda' | undefined;
  readonly tokenizer?: 'fast' | 'slow' | undefined;
  readonly variant?: 'fp32' | 'fp16' | undefined;
  readonly lora?: readonly { readonly path: string; readonly scale: number }[] | undefined;
  readonly 'pipeline-config'?: string | undefined;
  readonly 'negative-prompt'?: string | undefined;
  readonly 'unet-batch'?: number | undefined;
  readonly 'vae-batch'?: number | undefined;
}

/** The {@link SdSourceOptions} the flags ask for. */
export function sdSourceOptions(o: SdSourceFlags): SdSourceOptions {
  return {
    ...(o['prompt-set'] === undefined ? {} : { promptSet: o['prompt-set'] }),
    ...(o['image-root'] === undefined ? {} : { imageRoot: o['image-root'] }),
    ...(o['prompt-limit'] === undefined ? {} : { limit: o['prompt-limit'] }),
    ...(o['image-size'] === undefined ? {} : { imageSize: o['image-size'] }),
    ...(o.provider === undefined ? {} : { executionProvider: o.provider }),
    ...(o.tokenizer === undefined ? {} : { tokenizer: o.tokenizer }),
    ...(o.variant === undefined ? {} : { variant: o.variant }),
    ...(o.lora === undefined ? {} : { lora: o.lora }),
    ...(o['pipeline-config'] === undefined ? {} : { pipelineConfig: o['pipeline-config'] }),
    ...(o['negative-prompt'] === undefined ? {} : { negativePrompt: o['negative-prompt'] }),
    ...(o['unet-batch'] === undefined ? {} : { unetBatch: o['unet-batch'] }),
    ...(o['vae-batch'] === undefined ? {} : { vaeBatch: o['vae-batch'] }),
  };
}

/**
 * Resolve `--model` and load the study source (testbed, trained model or SD export with its
 * prompt set; see `SOURCE_LOADERS`), print its notes; load errors become usage errors naming the
 * flag. The studies measure copies against training images: a source without any (a bare ONNX
 * U-Net) is refused — unless `use.labelsSuffice` (detection) and its prompts carry labels.
 */
export async function loadCliSource(model: string, flags: SdSourceFlags, extra: Omit<StudySourceOptions, 'sd'> = {}, use: { readonly labelsSuffice?: boolean } = {}): Promise<{ spec: string; src: StudySource }> {
  const spec = await resolveModelSpec(model);
  const src = await loadStudySource(spec, { ...extra, sd: sdSourceOptions(flags) }).catch((e: Error) => {
    throw new UsageError(e.message);
  });
  // detection needs only the memorized / not labels (a public prompt set whose images are URLs); the other studies measure copies
  if (src.trainImages.dims[0] === 0 && !(use.labelsSuffice === true && src.denoiser.conditions.some((c) => c.memorized !== undefined))) {
    await src.denoiser.dispose?.();
    throw new UsageError(`--model: ${src.description} comes without training images, and this study measures copies of them; memscope sample runs on it`);
  }
  for (const line of src.notes) process.stderr.write(`${line}\n`);
  return { spec, src };
}

/** The scheduler config of a study: the source's schedule (an export's own, else Stable Diffusion 1.x's). */
export function studyConfig(src: StudySource): SchedulerConfig {
  return src.schedule.config;
}

/**
 * The sampler a `--sampler` value means for a loaded model: as given, or for `auto` the sampler of
 * the scheduler class its scheduler config names (`_class_name`: a Stable Diffusion export's own
 * `scheduler_config.json`, e.g. `PNDMScheduler` → `pndm`). A {@link UsageError} naming the flag when
 * the config names no class or one memscope does not implement. `note` hears the resolution.
 */
export function samplerFor(flag: SamplerFlag, config: SchedulerConfig, model: string, note?: (line: string) => void): SamplerName {
  if (flag !== 'auto') return flag;
  const cls = config._class_name;
  if (cls === undefined) throw new UsageError(`--sampler auto: the scheduler config of ${model} names no scheduler class (_class_name); give one of ${SAMPLER_NAMES.join(', ')}`);
  const name = parseSamplerName(cls);
  if (name === null) throw new UsageError(`--sampler auto: ${model} is configured for ${cls}, which memscope does not implement; give one of ${SAMPLER_NAMES.join(', ')}`);
  note?.(`--sampler auto: ${model}'s ${cls} → ${name}`);
  return name;
}
