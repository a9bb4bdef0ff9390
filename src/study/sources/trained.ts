/**
 * A model directory written by `memscope train` as a model source (`model.json` + weights): its
 * U-Net as an ONNX graph over the embedded Fashion-MNIST training split (32×32 padded models get
 * the pad-crop codec). A text-conditioned model has every capability — memscope builds its graphs,
 * so it re-encodes prompts, exposes cross-attention and differentiates the prompt embedding; a
 * class-conditional or unconditional one has none.
 */
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { loadFashionMnist } from '../../data/fashion-mnist.ts';
import { loadTrainedModel } from '../../denoisers/trained.ts';
import { trainedModelCapabilities } from '../../mitigate/capabilities.ts';
import { parseSchedulerConfig, stableDiffusionConfig, type SchedulerConfig } from '../../schedules/config.ts';
import { folderFingerprint } from '../../store/fingerprint.ts';
import { SHIPPED_MODEL, defaultClassifierDir, noTextModelReasons, pixelCodec, sourceSchedule, type LossBand, type SourceLoader } from '../model-source.ts';

const isFile = (p: string): Promise<boolean> => stat(p).then((s) => s.isFile(), () => false);

/** A model directory written by `memscope train` (model.json + weights). */
export const trainedLoader: SourceLoader = {
  name: 'trained',
  takes: 'a trained model directory with model.json',
  probe: async (spec) => ((await isFile(join(spec, 'model.json'))) ? null : `no model.json in "${spec}"`),
  async load(spec, opts) {
    const tm = await loadTrainedModel(spec, opts.exposeCrossAttention === undefined ? {} : { exposeCrossAttention: opts.exposeCrossAttention });
    let config: SchedulerConfig;
    try {
      config = opts.schedulerConfig ?? (opts.ownSchedule === true ? parseSchedulerConfig(tm.meta['schedule'] ?? {}, `${spec}/model.json schedule`) : stableDiffusionConfig());
    } catch (e) {
      await tm.denoiser.dispose?.();
      throw e;
    }
    const train = loadFashionMnist({ split: 'train' });
    const images = train.images;
    const codec = pixelCodec(images, tm.denoiser.shape);
    const description = `the trained "${tm.scenario}" model (${spec === SHIPPED_MODEL ? `models/${basename(SHIPPED_MODEL)}, shipped` : spec})`;
    const capabilities = trainedModelCapabilities(tm);
    const none = noTextModelReasons(description);
    return {
      denoiser: tm.denoiser,
      name: basename(spec.replace(/\/+$/, '')),
      trainImages: images,
      description,
      spec,
      schedule: sourceSchedule(config),
      codec,
      toModelSpace: codec.toModelSpace,
      toImageSpace: codec.toImageSpace,
      defaults: { descriptor: 'learned', analysisDescriptors: 'pixel,learned', centerPixels: false, classifierDir: await defaultClassifierDir(spec), memorizationRule: 'nearest-is-own', samplePrompts: tm.denoiser.conditions.length ? 'all' : 'uncond' },
      data: {
        imagePool: tm.imagePool === 'all' ? null : tm.imagePool,
        heldOut: { description: 'the Fashion-MNIST test split', load: () => loadFashionMnist({ split: 'test' }).images, credit: () => loadFashionMnist({ split: 'test', limit: 0 }).source },
        classOf: (c) => {
          const l = tm.prompts[c]?.label;
          return typeof l === 'number' ? l : null;
        },
        credit: () => train.source,
        // memscope's geometry compares the unconditional models (the edm scenarios) with D* over their pool
        unconditionalReason: tm.textEncoderBytes === null ? null : `${spec} is a text-conditioned model (${tm.scenario})`,
        lossBand: (tm.meta['band'] as LossBand | null | undefined) ?? null,
      },
      capabilities,
      capabilityReason: (c) => (capabilities[c] === undefined ? none(c) : null),
      info: { kind: 'trained', dir: spec, scenario: tm.scenario },
      notes: [],
      fingerprint: () => folderFingerprint('trained', spec),
    };
  },
};
