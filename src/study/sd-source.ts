/**
 * A Stable Diffusion ONNX export with a Webster-style prompt set as a study source (issue 7,
 * SPEC §7): every analysis, detector and mitigation that runs on a {@link StudySource} runs on it,
 * in latent space, through the same {@link Denoiser} interface.
 *
 * - conditions: one per prompt of the set (`caption:i`, kind `caption`, the caption text as the
 *   label, embedded once by the export's text encoder); the null condition e_∅ is the embedding
 *   of the empty prompt, as the diffusers pipeline uses;
 * - memorized prompts = prompts tied to a training image: an image in the set and a label other
 *   than `none` (verbatim or template; every prompt with an image when the set has no labels);
 * - training images: the distinct images the set names, read at the model's resolution (resized
 *   to cover and centre-cropped, see {@link loadImageFiles}), `[n, 3, H, W]` in [−1, 1]; the
 *   target latent x of image i is the VAE encoding × the scaling factor (`latent_parameters`
 *   exports: the mean, deterministic; `latent_sample` exports: the graph's own sample);
 * - image space: samples are decoded by the VAE (`(y/2 + 0.5)` clamped, mapped back to [−1, 1]);
 * - the scheduler config is the export's own.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { ConditionInfo, Denoiser } from '../denoisers/denoiser.ts';
import { loadImageFiles } from '../data/folder.ts';
import { readPromptSet, promptLengthProblem, type PromptRecord } from '../data/prompt-set.ts';
import type { ExecutionProvider } from '../graph/session.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import type { PromptTextModel } from '../mitigate/methods.ts';
import type { StudySource } from './source.ts';
import type { ScaledAttentionUnet } from '../mitigate/ren-attention.ts';
import { sdScaledAttentionUnet } from '../sd/cross-attention.ts';
import { encodePrompts, loadSdExport, sdUnetDenoiser, type SdDefaultImageSize, type SdExport } from '../sd/export.ts';
import { vaeDecode, vaeEncode } from '../sd/pipeline.ts';
import { type Tensor, concatBatch, numel, sliceBatch } from '../tensor/tensor.ts';

/** Options of {@link loadSdStudySource}. */
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

/** What an SD source adds to a study source: the open export and the prompt records. */
export interface SdSourceExtras {
  /** The open export (its sessions are released by the denoiser's `dispose`). */
  readonly export: SdExport;
  /** The prompts, row i = condition i. */
  readonly prompts: readonly PromptRecord[];
  /** The export's scheduler config. */
  readonly config: SchedulerConfig;
  /** Images per VAE call. */
  readonly vaeBatch: number;
  /** The image size the study runs at and where it came from (`--image-size` or the export's default). */
  readonly imageSize: SdDefaultImageSize;
  /** The prompts as re-encodable texts (Somepalli et al.'s prompt perturbations). */
  readonly textModel: PromptTextModel;
  /**
   * Open the U-Net with its cross-attention exposed and adjustable per token (Ren et al. 2024's
   * detector and mitigation; graph surgery on `unet/model.onnx`, see `graph/cross-attention.ts`):
   * condition k = prompt k's embedding, e_∅ = the empty (or negative) prompt's. A second session
   * — the caller disposes it. Rejects, naming the file, when the U-Net is not a diffusers export.
   */
  attention(): Promise<ScaledAttentionUnet>;
}

/**
 * The whole-word tokens of a CLIP vocabulary (`word</w>` with 3+ lower-case letters, the `</w>`
 * dropped), sorted: what random-word insertion draws from on an SD export.
 */
export function clipWordVocabulary(tokenizerJson: object): string[] {
  const vocab = (tokenizerJson as { model?: { vocab?: Record<string, number> } }).model?.vocab ?? {};
  return Object.keys(vocab)
    .filter((t) => /^[a-z]{3,}<\/w>$/.test(t))
    .map((t) => t.slice(0, -4))
    .sort();
}

/** True when `dir` looks like a Stable Diffusion export (a directory with `model_index.json` and `unet/`). */
export function isSdExportDir(dir: string): boolean {
  return existsSync(join(dir, 'model_index.json')) && existsSync(join(dir, 'unet')) && statSync(join(dir, 'unet')).isDirectory();
}

/** A Stable Diffusion study source (see the module note): a {@link StudySource} with the export, its scheduler config and the prompt set. */
export type SdStudySource = StudySource & { readonly trained: null; readonly config: SchedulerConfig; readonly sd: SdSourceExtras };

/** `d.predict` run on at most `maxRows` rows at a time (same result: rows are independent). */
export function chunkedPredict(d: Pick<Denoiser, 'predict'>, maxRows: number): Denoiser['predict'] {
  return async (xt, level, cond) => {
    const B = xt.dims[0]!;
    if (B <= maxRows) return d.predict(xt, level, cond);
    const parts: Tensor[] = [];
    for (let a = 0; a < B; a += maxRows) parts.push(await d.predict(sliceBatch(xt, a, Math.min(a + maxRows, B)), level, cond.slice(a, a + maxRows)));
    return concatBatch(parts);
  };
}

/**
 * Open the export in `dir` with the prompt set `opts.promptSet` as a study source (module note).
 * Errors name the flag: `--prompt-set` (missing, unreadable, URL images — memscope downloads
 * nothing: save the images and point the image column at the files), `--model` (not an export).
 */
export async function loadSdStudySource(dir: string, opts: SdSourceOptions = {}): Promise<SdStudySource> {
  if (!isSdExportDir(dir)) throw new Error(`--model: "${dir}" is not a Stable Diffusion ONNX export (expected model_index.json and unet/ inside)`);
  if (opts.promptSet !== undefined && opts.texts !== undefined) throw new Error('--prompt: give either --prompt-set or --prompt, not both');
  if (opts.promptSet === undefined && opts.texts === undefined) {
    throw new Error('--prompt-set: required with a Stable Diffusion export — a CSV / JSONL / Parquet list of captions with an image column (the training images) and optionally memorization labels (verbatim / template / none)');
  }
  const batch = opts.batch ?? 8;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch: expected a positive integer, got ${batch}`);
  const unetBatch = opts.unetBatch ?? 2;
  const vaeBatch = opts.vaeBatch ?? 1;
  if (!Number.isInteger(vaeBatch) || vaeBatch < 1) throw new Error(`--vae-batch: expected a positive integer, got ${vaeBatch}`);
  if (!Number.isInteger(unetBatch) || unetBatch < 1) throw new Error(`--unet-batch: expected a positive integer, got ${unetBatch}`);
  if (opts.negativePrompt !== undefined) {
    const problem = promptLengthProblem(opts.negativePrompt);
    if (problem !== null) throw new Error(`--negative-prompt: ${problem}`);
  }
  let all: readonly PromptRecord[];
  if (opts.texts !== undefined) {
    if (opts.texts.length === 0) throw new Error('--prompt: need at least one prompt');
    for (const t of opts.texts) {
      const problem = promptLengthProblem(t);
      if (problem !== null) throw new Error(`--prompt: ${problem}`);
    }
    all = opts.texts.map((caption, i) => ({ id: String(i), caption, image: null, label: null }));
  } else {
    const set = await readPromptSet(opts.promptSet!, opts.imageRoot === undefined ? {} : { imageRoot: opts.imageRoot }).catch((e: Error) => {
      throw new Error(`--prompt-set: ${e.message}`);
    });
    all = set.prompts;
  }
  const limit = opts.limit ?? all.length;
  if (!Number.isInteger(limit) || limit < 1) throw new Error(`--prompt-limit: expected a positive integer, got ${limit}`);
  const prompts = all.slice(0, limit);
  for (const [i, p] of prompts.entries()) {
    if (p.image?.kind === 'url') {
      throw new Error(`--prompt-set: prompt ${i} (id ${p.id}) names its image by URL (${p.image.value}); memscope downloads nothing — save the training images locally and point the image column (or --image-root) at the files`);
    }
  }
  const exp = await loadSdExport(dir, opts.executionProvider === undefined ? {} : { executionProvider: opts.executionProvider });
  try {
    const size: SdDefaultImageSize = opts.imageSize !== undefined ? { height: opts.imageSize, width: opts.imageSize, source: '--image-size' } : exp.defaultSize;
    if (size.height % 8 !== 0 || size.width % 8 !== 0) throw new Error(`--image-size: expected a multiple of 8, got ${size.height}`);
    const declared = exp.unet.sampleSize;
    if (opts.imageSize !== undefined && declared !== null && (declared[0] * 8 !== size.height || declared[1] * 8 !== size.width)) {
      throw new Error(`--image-size: ${opts.imageSize} does not fit ${dir}'s U-Net, whose sample size is fixed at ${declared[0]}×${declared[1]} latents (${declared[0] * 8}×${declared[1] * 8} pixels); omit --image-size`);
    }

    // training images: the distinct files the set names, in first-use order
    const imageIndex = new Map<string, number>();
    for (const p of prompts) if (p.image !== null && !imageIndex.has(p.image.value)) imageIndex.set(p.image.value, imageIndex.size);
    const paths = [...imageIndex.keys()];
    if (paths.length === 0 && opts.texts === undefined) throw new Error(`--prompt-set: ${opts.promptSet} names no training image (no image column or every cell empty); memorization is measured against the training images`);
    const trainImages: Tensor =
      paths.length === 0
        ? { dims: [0, 3, size.height, size.width], data: new Float32Array(0) }
        : await loadImageFiles(paths, { size: [size.height, size.width], color: 'rgb' }).catch((e: Error) => {
            throw new Error(`--prompt-set: ${e.message}`);
          });
    const hasLabels = prompts.some((p) => p.label !== null);
    const conditions: ConditionInfo[] = prompts.map((p, i) => {
      const memorized = p.image !== null && (hasLabels ? p.label !== null && p.label !== 'none' : true);
      return { id: `caption:${i}`, kind: 'caption', label: p.caption, ...(memorized ? { targets: [imageIndex.get(p.image!.value)!] } : {}) };
    });

    // embeddings (cond rows and e_∅) and target latents, in batches
    const hidden: Tensor[] = [];
    for (let a = 0; a < prompts.length; a += batch) hidden.push((await encodePrompts(exp, prompts.slice(a, a + batch).map((p) => p.caption))).hiddenStates);
    const uncond = (await encodePrompts(exp, [opts.negativePrompt ?? ''])).hiddenStates;
    if (exp.vaeEncoder === null && paths.length > 0) throw new Error(`--model: ${dir} has no vae_encoder/; the target latents of the training images need it`);
    const latentParts: Tensor[] = [];
    for (let a = 0; a < paths.length; a += vaeBatch) {
      latentParts.push(await vaeEncode(exp, sliceBatch(trainImages, a, Math.min(a + vaeBatch, paths.length))));
    }
    const shape = [exp.latentChannels, size.height / 8, size.width / 8];
    const latents = paths.length === 0 ? { dims: [0, ...shape], data: new Float32Array(0) } : concatBatch(latentParts);
    const condRows = concatBatch(hidden);
    const inner = sdUnetDenoiser(exp, { conditions: condRows, uncond, labels: prompts.map((p) => p.caption), shape });
    const name = `sd:${basename(resolve(dir))}`;
    const textModel: PromptTextModel = {
      texts: prompts.map((p) => p.caption),
      vocabulary: clipWordVocabulary(exp.tokenizer.tokenizerJson),
      async denoiserFor(texts) {
        if (texts.length !== prompts.length) throw new Error(`denoiserFor: ${texts.length} texts for ${prompts.length} prompts`);
        const rows: Tensor[] = [];
        for (let a = 0; a < texts.length; a += batch) rows.push((await encodePrompts(exp, texts.slice(a, a + batch))).hiddenStates);
        const d2 = sdUnetDenoiser(exp, { conditions: concatBatch(rows), uncond, labels: [...texts], shape });
        // never dispose d2: it shares (and would release) the export's U-Net session
        return { name: `${name}+perturbed`, space: 'latent', shape, conditions, predict: chunkedPredict(d2, unetBatch) };
      },
    };
    const denoiser: Denoiser = {
      name,
      space: 'latent',
      shape,
      conditions,
      predict: chunkedPredict(inner, unetBatch),
      dispose: () => exp.dispose(),
    };
    const per = numel(shape);
    const memorized = conditions.filter((c) => c.targets !== undefined).length;
    return {
      denoiser,
      trainImages,
      description: `the Stable Diffusion export ${dir} (${exp.className ?? 'pipeline'}, ${exp.predictionType}, ${size.height}×${size.width}) on ${prompts.length} prompts${opts.promptSet === undefined ? '' : ` of ${opts.promptSet}`} (${memorized} tied to one of ${paths.length} training images)`,
      spec: resolve(dir),
      toModelSpace: (i) => {
        if (!Number.isInteger(i) || i < 0 || i >= paths.length) throw new Error(`training image ${i} is out of range (0..${paths.length - 1})`);
        return { dims: [1, ...shape], data: latents.data.slice(i * per, (i + 1) * per) };
      },
      toImageSpace: async (x) => {
        const parts: Tensor[] = [];
        const n = x.dims[0]!;
        for (let a = 0; a < n; a += vaeBatch) {
          const img = await vaeDecode(exp, sliceBatch(x, a, Math.min(a + vaeBatch, n)));
          const d = img.data;
          for (let k = 0; k < d.length; k++) d[k] = 2 * d[k]! - 1;
          parts.push(img);
        }
        return concatBatch(parts);
      },
      trained: null,
      config: exp.scheduler,
      sd: {
        export: exp,
        prompts,
        config: exp.scheduler,
        textModel,
        vaeBatch,
        imageSize: size,
        attention: () => sdScaledAttentionUnet(exp, { denoiser, conditions: condRows, uncond, texts: prompts.map((p) => p.caption), uncondText: opts.negativePrompt ?? '', maxRows: unetBatch }),
      },
    };
  } catch (e) {
    await exp.dispose();
    throw e;
  }
}
