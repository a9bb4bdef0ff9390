/**
 * A small synthetic analytic testbed for the study tests: 10 classes × 12 images of 4×4 pixels in
 * [−1, 1] (class prototypes plus seeded noise), memorized captions tied to chosen images, wrapped
 * as a `StudySource` whose model space is the image space.
 */
import { makeAnalyticTestbed } from '../../src/denoisers/analytic.ts';
import type { Denoiser } from '../../src/denoisers/denoiser.ts';
import { noTextModelReasons, pixelCodec, sourceSchedule, type StudySource } from '../../src/study/source.ts';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import type { Tensor } from '../../src/tensor/tensor.ts';
import { mulberry32 } from './random.ts';

/** Pixels per synthetic image (4×4). */
export const SYNTHETIC_D = 16;

/** The synthetic training images `[120, 1, 4, 4]` and their labels, deterministic in `seed`. */
export function syntheticImages(seed: number): { images: Float32Array; labels: number[]; trainImages: Tensor } {
  const K = 10;
  const n = 120;
  const d = SYNTHETIC_D;
  const rng = mulberry32(seed);
  const protos = Array.from({ length: K }, () => Float32Array.from({ length: d }, () => rng() * 1.6 - 0.8));
  const images = new Float32Array(n * d);
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    labels.push(i % K);
    for (let j = 0; j < d; j++) images[i * d + j] = Math.max(-1, Math.min(1, protos[i % K]![j]! + 0.5 * (rng() - 0.5)));
  }
  return { images, labels, trainImages: { dims: [n, 1, 4, 4], data: images } };
}

/**
 * The analytic testbed over {@link syntheticImages}: conditions 0–9 are the class prompts, 10… the
 * memorized captions of `captionImages` (in order). `wrap` may replace the denoiser (e.g. to inject
 * failures).
 */
export async function syntheticSource(seed: number, captionImages: readonly number[], wrap?: (d: Denoiser) => Denoiser): Promise<{ src: StudySource; images: Float32Array }> {
  const { images, labels, trainImages } = syntheticImages(seed);
  const d = SYNTHETIC_D;
  const tb = await makeAnalyticTestbed({
    images: trainImages,
    labels,
    classNames: Array.from({ length: 10 }, (_, k) => `thing${k}`),
    captions: captionImages.map((index, k) => ({ text: `memorized ${k}`, index })),
  });
  const codec = pixelCodec(trainImages, tb.shape);
  return {
    images,
    src: {
      denoiser: wrap ? wrap(tb) : tb,
      trainImages,
      description: 'synthetic testbed',
      spec: 'synthetic',
      schedule: sourceSchedule(stableDiffusionConfig()),
      codec,
      toModelSpace: (i) => ({ dims: [1, 1, 4, 4], data: images.slice(i * d, (i + 1) * d) }),
      toImageSpace: async (x) => x,
      defaults: { descriptor: 'learned', analysisDescriptors: 'pixel,learned', centerPixels: false, classifierDir: null, noClassifier: 'a synthetic testbed has no classifier', memorizationRule: 'nearest-is-own', samplePrompts: 'all' },
      data: { imagePool: null, heldOut: null, classOf: (c) => (c < 10 ? c : null) },
      capabilities: {},
      capabilityReason: noTextModelReasons('synthetic testbed'),
      info: { kind: 'synthetic', seed, captionImages },
      notes: [],
      fingerprint: async () => `synthetic:${seed}:${captionImages.join(',')}`,
    },
  };
}
