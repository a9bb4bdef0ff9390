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
import { resolvePromptSet } from '../data/prompt-sources.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import type { CapabilityReasons, EmbeddingGradientCapability, TextCapability } from '../mitigate/capabilities.ts';
import { optimizeEmbedding } from '../mitigate/wen-embedding.ts';
import { createSdWenObjective } from '../sd/wen.ts';
import type { CrossAttentionUnet } from '../denoisers/attention.ts';
import { hasCrossAttentionSoftmax } from '../graph/cross-attention.ts';
import { sdScaledAttentionUnet } from '../sd/cross-attention.ts';
import { describedFingerprint, folderFingerprint } from '../store/fingerprint.ts';
import { opsWithoutGradient } from '../graph/gradient-coverage.ts';
import { sourceSchedule, type SdSourceOptions, type SourceLoader, type StudySource } from './model-source.ts';
import { encodePrompts, sdUnetDenoiser, type SdDefaultImageSize, type SdExport } from '../sd/export.ts';
import { isSingleFileCheckpoint, openStableDiffusion } from '../sd/open.ts';
import { diffusersFilesRead } from '../sd/diffusers/folder.ts';
import { vaeDecode, vaeEncode } from '../sd/pipeline.ts';
import { type Tensor, concatBatch, numel, sliceBatch } from '../tensor/tensor.ts';

export type { SdSourceOptions } from './model-source.ts';

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
  readonly textModel: TextCapability;
  /**
   * Open the U-Net with its cross-attention exposed and adjustable per token (Ren et al. 2024's
   * detector and mitigation; graph surgery on `unet/model.onnx`, see `graph/cross-attention.ts`):
   * condition k = prompt k's embedding, e_∅ = the empty (or negative) prompt's. A second session
   * — the caller disposes it. Rejects, naming the file, when the U-Net is not a diffusers export.
   */
  attention(): Promise<CrossAttentionUnet>;
}

/** The line memscope prints about the image size of a Stable Diffusion run: the size and where it came from. */
export function sdImageSizeNote(size: SdDefaultImageSize): string {
  return `image size ${size.height}×${size.width} (${size.source === '--image-size' ? 'from --image-size' : `${size.source}; --image-size PX to change`})`;
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

/** A Stable Diffusion study source (see the module note): a {@link StudySource} with the export, its scheduler config and the prompt set (for code that works on exports only). */
export type SdStudySource = StudySource & { readonly config: SchedulerConfig; readonly sd: SdSourceExtras };

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
export async function loadSdStudySource(dir: string, opts: SdSourceOptions = {}, schedulerConfig?: SchedulerConfig): Promise<SdStudySource> {
  if (!isSdExportDir(dir) && !isSingleFileCheckpoint(dir)) throw new Error(`--model: "${dir}" is not a Stable Diffusion ONNX export, diffusers pipeline folder (expected model_index.json and unet/ inside) or single-file .safetensors checkpoint`);
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
    // names of public sets (memscope prompts list) read their fetched files with the catalogue's column mapping;
    // a comma-separated list is read set by set and concatenated (e.g. memorized + non-memorized prompts for detection)
    const specs = existsSync(opts.promptSet!) ? [opts.promptSet!] : opts.promptSet!.split(',').map((x) => x.trim()).filter((x) => x !== '');
    const parts: PromptRecord[] = [];
    for (const spec of specs) {
      const named = resolvePromptSet(spec);
      const one = await readPromptSet(named.path, { ...(named.read ?? {}), ...(opts.imageRoot === undefined ? {} : { imageRoot: opts.imageRoot }) }).catch((e: Error) => {
        throw new Error(`--prompt-set: ${e.message}`);
      });
      // a public set's training images are URLs memscope does not download: its labels are the ground truth
      for (const p of one.prompts) parts.push(named.source !== null && p.image?.kind === 'url' ? { ...p, id: specs.length > 1 ? `${spec}:${p.id}` : p.id, image: null } : specs.length > 1 ? { ...p, id: `${spec}:${p.id}` } : p);
    }
    const set = { prompts: parts };
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
  const exp = await openStableDiffusion(dir, {
    ...(opts.executionProvider === undefined ? {} : { executionProvider: opts.executionProvider }),
    ...(opts.tokenizer === undefined ? {} : { tokenizer: opts.tokenizer }),
    ...(opts.variant === undefined ? {} : { variant: opts.variant }),
    ...(opts.lora === undefined ? {} : { lora: opts.lora }),
    ...(opts.pipelineConfig === undefined ? {} : { pipelineConfig: opts.pipelineConfig }),
  }).catch((e: Error) => {
    throw new Error(`--model: ${e.message}`);
  });
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
    if (paths.length === 0 && opts.texts === undefined && !prompts.every((p) => p.label !== null)) throw new Error(`--prompt-set: ${opts.promptSet} names no training image (no image column or every cell empty) and does not label every prompt; memorization is measured against the training images or given by the labels`);
    const trainImages: Tensor =
      paths.length === 0
        ? { dims: [0, 3, size.height, size.width], data: new Float32Array(0) }
        : await loadImageFiles(paths, { size: [size.height, size.width], color: 'rgb' }).catch((e: Error) => {
            throw new Error(`--prompt-set: ${e.message}`);
          });
    const hasLabels = prompts.some((p) => p.label !== null);
    const conditions: ConditionInfo[] = prompts.map((p, i) => {
      const memorized = p.image !== null && (hasLabels ? p.label !== null && p.label !== 'none' : true);
      // a labelled prompt without its image (public sets): the label alone says whether it is memorized
      const labelOnly = p.image === null && p.label !== null ? { memorized: p.label !== 'none' } : {};
      return {
        id: `caption:${i}`,
        kind: 'caption',
        label: p.caption,
        ...(memorized ? { targets: [imageIndex.get(p.image!.value)!] } : {}),
        ...labelOnly,
        ...(p.label === null ? {} : { memorizationLabel: p.label }),
      };
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
    const textModel: TextCapability = {
      texts: prompts.map((p) => p.caption),
      vocabulary: clipWordVocabulary(exp.tokenizer.tokenizerJson),
      async denoiserFor(texts, dName) {
        if (texts.length !== prompts.length) throw new Error(`denoiserFor: ${texts.length} texts for ${prompts.length} prompts`);
        const rows: Tensor[] = [];
        for (let a = 0; a < texts.length; a += batch) rows.push((await encodePrompts(exp, texts.slice(a, a + batch))).hiddenStates);
        const d2 = sdUnetDenoiser(exp, { conditions: concatBatch(rows), uncond, labels: [...texts], shape });
        // never dispose d2: it shares (and would release) the export's U-Net session
        return { name: dName ?? `${name}+perturbed`, space: 'latent', shape, conditions, predict: chunkedPredict(d2, unetBatch) };
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
    const description = `the Stable Diffusion ${exp.diffusers === null ? 'export' : 'pipeline folder'} ${dir} (${exp.className ?? 'pipeline'}, ${exp.predictionType}, ${size.height}×${size.width}) on ${prompts.length} prompts${opts.promptSet === undefined ? '' : ` of ${opts.promptSet}`} (${memorized} tied to one of ${paths.length} training images)`;
    const toModelSpace = (i: number): Tensor => {
      if (!Number.isInteger(i) || i < 0 || i >= paths.length) throw new Error(`training image ${i} is out of range (0..${paths.length - 1})`);
      return { dims: [1, ...shape], data: latents.data.slice(i * per, (i + 1) * per) };
    };
    const toImageSpace = async (x: Tensor): Promise<Tensor> => {
      const parts: Tensor[] = [];
      const n = x.dims[0]!;
      for (let a = 0; a < n; a += vaeBatch) {
        const img = await vaeDecode(exp, sliceBatch(x, a, Math.min(a + vaeBatch, n)));
        const d = img.data;
        for (let k = 0; k < d.length; k++) d[k] = 2 * d[k]! - 1;
        parts.push(img);
      }
      return concatBatch(parts);
    };
    const encode = async (x: Tensor): Promise<Tensor> => {
      if (exp.vaeEncoder === null) throw new Error(`--model: ${dir} has no vae_encoder/; encoding images needs it`);
      const parts: Tensor[] = [];
      const n = x.dims[0]!;
      for (let a = 0; a < n; a += vaeBatch) parts.push(await vaeEncode(exp, sliceBatch(x, a, Math.min(a + vaeBatch, n))));
      return n === 0 ? { dims: [0, ...shape], data: new Float32Array(0) } : concatBatch(parts);
    };
    const attention = (): Promise<CrossAttentionUnet> => sdScaledAttentionUnet(exp, { denoiser, conditions: condRows, uncond, texts: prompts.map((p) => p.caption), uncondText: opts.negativePrompt ?? '', maxRows: unetBatch });
    let attentionReason: string | null | undefined;
    let gradientReason: string | null | undefined;
    const capabilityReason: CapabilityReasons = (c) => {
      if (c === 'text') return null;
      if (c === 'attention') {
        const unet = exp.unet.path;
        attentionReason ??= hasCrossAttentionSoftmax(unet) ? null : `need cross-attention Softmax nodes named like '.../attn2/Softmax' to rescale, and ${unet} has none (fused or renamed attention), so Ren et al.'s rule cannot be applied`;
        return attentionReason;
      }
      gradientReason ??= (() => {
        if (exp.unet.dtype !== 'float32') return `optimise the prompt embedding with gradients through the U-Net, and ${exp.unet.path} is a ${exp.unet.dtype} U-Net (memscope differentiates float32 U-Nets; use a float32 export or a diffusers folder, which memscope computes in float32)`;
        const missing = opsWithoutGradient(exp.unet.path);
        if (missing.length === 0) return null;
        return `optimise the prompt embedding with gradients through the U-Net, and memscope's differentiator has no gradient rule for ${missing.length} op type${missing.length === 1 ? '' : 's'} of ${exp.unet.path} (${missing.join(', ')}) (on this export use the guidance methods, random-word, random-number or ren)`;
      })();
      return gradientReason;
    };
    // Wen et al.'s mitigation through the U-Net file (graph surgery + memscope's differentiator); unetBatch/2 seeds per call
    const seedsPerCall = Math.max(1, Math.floor(unetBatch / 2));
    const rowOf = (k: number): Tensor => {
      const per = condRows.data.length / condRows.dims[0]!;
      return { dims: [1, ...condRows.dims.slice(1)], data: condRows.data.slice(k * per, (k + 1) * per) };
    };
    const latent = shape as [number, number, number];
    const embeddingGradient: EmbeddingGradientCapability = {
      objective: (seeds) => createSdWenObjective(exp, seeds, { uncond, latent, seedsPerCall }),
      async optimize(cond, xT, t, o) {
        if (!Number.isInteger(cond) || cond < 0 || cond >= prompts.length) throw new Error(`Wen et al.: condition ${cond} is out of range (0..${prompts.length - 1})`);
        const objective = o.objective ?? (await createSdWenObjective(exp, xT.dims[0]!, { uncond, latent, seedsPerCall }));
        try {
          return await optimizeEmbedding(rowOf(cond), objective, xT, t, o);
        } finally {
          if (o.objective === undefined) await objective.dispose();
        }
      },
      async denoiser(embeddings, dName) {
        const rows = condRows.data.slice();
        const per = rows.length / prompts.length;
        for (const [k, e] of embeddings) {
          if (!Number.isInteger(k) || k < 0 || k >= prompts.length) throw new Error(`Wen et al.: condition ${k} is out of range (0..${prompts.length - 1})`);
          if (e.data.length !== per) throw new Error(`Wen et al.: the embedding of condition ${k} has ${e.data.length} values, expected ${per}`);
          rows.set(e.data, k * per);
        }
        const d2 = sdUnetDenoiser(exp, { conditions: { dims: condRows.dims, data: rows }, uncond, labels: prompts.map((p) => p.caption), shape });
        // never dispose d2: it shares (and would release) the export's U-Net session
        return { name: dName, space: 'latent', shape, conditions, predict: chunkedPredict(d2, unetBatch) };
      },
    };
    const spec = resolve(dir);
    return {
      denoiser,
      name,
      trainImages,
      description,
      spec,
      schedule: sourceSchedule(schedulerConfig ?? exp.scheduler),
      codec: { kind: 'vae', toModelSpace, toImageSpace, encode, noisyImages: null, scalingFactor: exp.scalingFactor },
      toModelSpace,
      toImageSpace,
      defaults: { descriptor: 'pixel', analysisDescriptors: 'pixel', centerPixels: true, classifierDir: null, noClassifier: "memscope's classifier is for the 28×28 testbed models, not a Stable Diffusion export", memorizationRule: 'own-similarity', samplePrompts: 'all' },
      // Stable Diffusion has no unconditional model: its unconditional branch (e_∅) stands in for one; the prompt set's images are the user's
      data: { imagePool: null, heldOut: null, classOf: () => null, unconditionalReason: null, lossBand: null },
      capabilities: {
        text: textModel,
        attention: { open: attention },
        embeddingGradient,
        // CADS: the same U-Net session, each batch's encoder_hidden_states transformed from t (never dispose: shared session)
        conditionTransform: {
          denoiser: async (transform, dName) => {
            const d2 = sdUnetDenoiser(exp, { conditions: condRows, uncond, labels: prompts.map((p) => p.caption), shape, contextTransform: transform });
            return { name: dName, space: 'latent', shape, conditions, predict: chunkedPredict(d2, unetBatch) };
          },
        },
        provider: exp.executionProvider,
      },
      capabilityReason,
      info: { kind: 'stable-diffusion', dir, format: exp.diffusers === null ? 'onnx-export' : exp.diffusers.singleFile !== undefined ? 'single-file' : 'diffusers-folder', ...(opts.pipelineConfig === undefined ? {} : { pipelineConfig: opts.pipelineConfig }), ...(exp.diffusers === null ? {} : { diffusers: exp.diffusers }), promptSet: opts.promptSet ?? null, prompt: opts.texts === undefined ? null : opts.texts.length === 1 ? opts.texts[0]! : [...opts.texts], predictionType: exp.predictionType, executionProvider: exp.executionProvider, shape, imageSize: size },
      notes: [sdImageSizeNote(size)],
      // every file of the export plus the settings it was opened with (image size, provider, the prompts; the negative prompt when one is given)
      fingerprint: async () => {
        const configDir = opts.pipelineConfig === undefined ? spec : resolve(opts.pipelineConfig);
        // a pipeline folder: only the files memscope reads (its other weights — .bin, the other variant, safety_checker — change nothing)
        const files =
          exp.diffusers === null
            ? await folderFingerprint('stable-diffusion', spec, { recursive: true })
            : await describedFingerprint('diffusers-folder', exp.diffusers, { ...Object.fromEntries(diffusersFilesRead(configDir, exp.diffusers).map((f) => [f, join(configDir, f)])), ...(exp.diffusers.singleFile === undefined ? {} : { 'single-file': exp.diffusers.singleFile.path }), ...Object.fromEntries((exp.diffusers.lora ?? []).map((l, i) => [`lora:${i}`, l.path])) });
        return describedFingerprint('stable-diffusion-source', { files, shape, imageSize: [size.height, size.width], denoiser: name, predictionType: exp.predictionType, provider: exp.executionProvider, conditions: conditions.map((c) => c.label), ...(opts.negativePrompt === undefined || opts.negativePrompt === '' ? {} : { negativePrompt: opts.negativePrompt }), ...(opts.tokenizer === 'slow' ? { tokenizer: 'slow' } : {}) });
      },
      config: exp.scheduler,
      sd: { export: exp, prompts, config: exp.scheduler, textModel, vaeBatch, imageSize: size, attention },
    };
  } catch (e) {
    await exp.dispose();
    throw e;
  }
}

/** A Stable Diffusion ONNX export directory (diffusers / optimum layout) with a prompt set; takes `opts.sd`. */
export const sdExportLoader: SourceLoader = {
  name: 'stable-diffusion',
  takes: 'a Stable Diffusion ONNX export directory (model_index.json, unet/, …), diffusers pipeline folder or single-file .safetensors checkpoint (with --pipeline-config)',
  options: ['sd'],
  probe: async (spec) =>
    isSdExportDir(spec) || isSingleFileCheckpoint(spec)
      ? null
      : /\.(ckpt|pt|pth|bin)$/.test(spec)
        ? `"${spec}" is a pickle checkpoint, which memscope does not open (loading pickle runs arbitrary code): convert it to .safetensors once (e.g. safetensors.torch.save_file(torch.load(F, weights_only=True)["state_dict"], "model.safetensors")) and give that with --pipeline-config`
        : `no model_index.json and unet/ in "${spec}", and not a .safetensors file`,
  load: (spec, opts) => loadSdStudySource(spec, opts.sd ?? {}, opts.schedulerConfig),
};
