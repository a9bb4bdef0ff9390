/**
 * Where a study's model and training data come from: the analytic testbed (SPEC §6) or a trained
 * memscope model directory, with the conversions between the model's space (32×32 padded for
 * trained models) and the 28×28 training images that copies are measured against.
 */
import { stat } from 'node:fs/promises';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Denoiser } from '../denoisers/denoiser.ts';
import { loadTrainedModel, type LoadTrainedOptions, type TrainedModel } from '../denoisers/trained.ts';
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { defaultTestbed } from './testbed.ts';
import { crop32to28 } from './validate.ts';
import { pad28to32 } from '../models/model-dir.ts';
import type { Tensor } from '../tensor/tensor.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import { isSdExportDir, loadSdStudySource, type SdSourceExtras, type SdSourceOptions } from './sd-source.ts';

/** A study's model with its training data. */
export interface StudySource {
  readonly denoiser: Denoiser;
  /** The 28×28 training images `[n, 1, 28, 28]` in [−1, 1]. */
  readonly trainImages: Tensor;
  /** What the model is, for reports. */
  readonly description: string;
  /** `'testbed'` or the model directory. */
  readonly spec: string;
  /** Training image `index` in the model's space (`[1, ...denoiser.shape]`). */
  toModelSpace(index: number): Tensor;
  /** Model-space samples `[n, ...shape]` as images in [−1, 1] (crops the training padding; VAE-decodes latents). */
  toImageSpace(x: Tensor): Promise<Tensor>;
  /** The trained model, when the source is one. */
  readonly trained: TrainedModel | null;
  /** The scheduler config the model was trained with, when it brings one (SD exports); else studies use SD 1.x's. */
  readonly config?: SchedulerConfig;
  /** The Stable Diffusion export and prompt set, when the source is one. */
  readonly sd?: SdSourceExtras;
}

/** Options of {@link loadStudySource}. */
export interface StudySourceOptions extends LoadTrainedOptions {
  /** For a Stable Diffusion export: the prompt set and friends (see {@link loadSdStudySource}). */
  readonly sd?: SdSourceOptions;
}

/** The shipped trained model used by default (inside the package, wherever it is run from). */
export const SHIPPED_MODEL = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'duplication');

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

/** `'default'` → the shipped duplication model when present, else the analytic testbed. */
export async function resolveModelSpec(model: string): Promise<string> {
  if (model !== 'default') return model;
  return (await stat(join(SHIPPED_MODEL, 'model.json')).then(() => true, () => false)) ? SHIPPED_MODEL : 'testbed';
}

/**
 * One way to open a `--model` value as a study source. `probe` says whether this loader takes the
 * value (null) or why not (a reason in words); `load` opens it. Loaders live in {@link SOURCE_LOADERS}
 * and are tried in order; when none takes a value, the error lists every loader's reason (as
 * onnxruntime's backend registry does).
 */
export interface SourceLoader {
  /** Short name shown in errors (`testbed`, `stable-diffusion`, `trained`). */
  readonly name: string;
  probe(spec: string): Promise<string | null>;
  load(spec: string, opts: StudySourceOptions): Promise<StudySource>;
}

const SD_ONLY: [keyof SdSourceOptions, string][] = [['promptSet', '--prompt-set'], ['texts', '--prompt'], ['imageRoot', '--image-root'], ['limit', '--prompt-limit'], ['imageSize', '--image-size'], ['executionProvider', '--provider'], ['negativePrompt', '--negative-prompt'], ['unetBatch', '--unet-batch'], ['vaeBatch', '--vae-batch']];

/** Refuse Stable-Diffusion-only options on another kind of source. */
function refuseSdOptions(spec: string, opts: StudySourceOptions): void {
  for (const [k, flag] of SD_ONLY) if (opts.sd?.[k] !== undefined) throw new Error(`${flag}: only for a Stable Diffusion export (--model EXPORT_DIR); "${spec}" is not one`);
}

const isFile = (p: string): Promise<boolean> => stat(p).then((s) => s.isFile(), () => false);

/** The analytic testbed (docs/methods.md §6): `--model testbed`. */
export const testbedLoader: SourceLoader = {
  name: 'testbed',
  probe: async (spec) => (spec === 'testbed' ? null : 'not the word "testbed"'),
  async load(spec, opts) {
    refuseSdOptions(spec, opts);
    const tb = await defaultTestbed();
    const images = tb.train.images;
    return {
      denoiser: tb.denoiser,
      trainImages: images,
      description: 'the analytic testbed (docs/methods.md §6)',
      spec,
      toModelSpace: (i) => ({ dims: [1, 1, 28, 28], data: images.data.slice(i * 784, (i + 1) * 784) }),
      toImageSpace: async (x) => x,
      trained: null,
    };
  },
};

/** A Stable Diffusion ONNX export directory (diffusers / optimum layout) with a prompt set. */
export const sdExportLoader: SourceLoader = {
  name: 'stable-diffusion',
  probe: async (spec) => (isSdExportDir(spec) ? null : `no model_index.json and unet/ in "${spec}"`),
  load: (spec, opts) => loadSdStudySource(spec, opts.sd ?? {}),
};

/** A model directory written by `memscope train` (model.json + weights). */
export const trainedLoader: SourceLoader = {
  name: 'trained',
  probe: async (spec) => ((await isFile(join(spec, 'model.json'))) ? null : `no model.json in "${spec}"`),
  async load(spec, opts) {
    refuseSdOptions(spec, opts);
    const tm = await loadTrainedModel(spec, opts);
    const images = loadFashionMnist({ split: 'train' }).images;
    const padded = tm.denoiser.shape[1] === 32;
    return {
      denoiser: tm.denoiser,
      trainImages: images,
      description: `the trained "${tm.scenario}" model (${spec === SHIPPED_MODEL ? 'models/duplication, shipped' : spec})`,
      spec,
      toModelSpace: (i) => (padded ? pad28to32(images, [i]) : { dims: [1, 1, 28, 28], data: images.data.slice(i * 784, (i + 1) * 784) }),
      toImageSpace: async (x) => (x.dims[2] === 32 ? crop32to28(x) : x),
      trained: tm,
    };
  },
};

/** The loaders {@link loadStudySource} tries, in order (a new model kind registers one here). */
export const SOURCE_LOADERS: SourceLoader[] = [testbedLoader, sdExportLoader, trainedLoader];

/**
 * Load `'testbed'` (the analytic testbed, 20 captions), a trained model directory, or a Stable
 * Diffusion ONNX export directory (with `opts.sd.promptSet`, see {@link loadSdStudySource}): the
 * first loader of {@link SOURCE_LOADERS} whose probe takes `spec`; when none does, one error
 * naming every loader's reason.
 */
export async function loadStudySource(spec: string, opts: StudySourceOptions = {}): Promise<StudySource> {
  const reasons: string[] = [];
  for (const l of SOURCE_LOADERS) {
    const why = await l.probe(spec);
    if (why === null) return l.load(spec, opts);
    reasons.push(`${l.name}: ${why}`);
  }
  refuseSdOptions(spec, opts);
  throw new Error(`--model: expected 'testbed', a trained model directory with model.json or a Stable Diffusion ONNX export directory (model_index.json, unet/, …), got "${spec}" (${reasons.join('; ')})`);
}
