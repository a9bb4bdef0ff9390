/**
 * The analytic testbed as a model source (`--model testbed`, docs/methods.md §6): its closed-form
 * denoiser over the embedded Fashion-MNIST subset, with memorized captions. It has no text
 * encoder, no cross-attention and no graph to differentiate: no capabilities.
 */
import { join } from 'node:path';
import { defaultFashionMnistDir, loadFashionMnist } from '../../data/fashion-mnist.ts';
import { stableDiffusionConfig } from '../../schedules/config.ts';
import { describedFingerprint } from '../../store/fingerprint.ts';
import { defaultTestbed } from '../testbed.ts';
import { SHIPPED_MODEL, defaultClassifierDir, noTextModelReasons, pixelCodec, sourceSchedule, type SourceLoader } from '../model-source.ts';

/** The analytic testbed (docs/methods.md §6): `--model testbed`; takes `opts.testbed.captions`. */
export const testbedLoader: SourceLoader = {
  name: 'testbed',
  takes: "'testbed'",
  options: ['testbed'],
  probe: async (spec) => (spec === 'testbed' ? null : 'not the word "testbed"'),
  async load(spec, opts) {
    const tb = await defaultTestbed(opts.testbed?.captions === undefined ? {} : { captions: opts.testbed.captions });
    const images = tb.train.images;
    const d = tb.denoiser;
    const codec = pixelCodec(images, d.shape);
    const description = 'the analytic testbed (docs/methods.md §6)';
    return {
      denoiser: d,
      name: d.name,
      trainImages: images,
      description,
      spec,
      schedule: sourceSchedule(opts.schedulerConfig ?? stableDiffusionConfig()),
      codec,
      toModelSpace: codec.toModelSpace,
      toImageSpace: codec.toImageSpace,
      defaults: { descriptor: 'learned', analysisDescriptors: 'pixel,learned', centerPixels: false, classifierDir: await defaultClassifierDir(SHIPPED_MODEL), memorizationRule: 'nearest-is-own', samplePrompts: 'caption:0-1,class:0-1' },
      data: {
        imagePool: null,
        heldOut: { description: 'the Fashion-MNIST test split', load: () => loadFashionMnist({ split: 'test' }).images, credit: () => loadFashionMnist({ split: 'test', limit: 0 }).source },
        classOf: () => null,
        credit: () => loadFashionMnist({ split: 'train', limit: 0 }).source,
        unconditionalReason: `${description}'s unconditional branch is the mixture of its class Gaussians, not a model of its training images`,
        lossBand: null,
      },
      capabilities: {},
      capabilityReason: noTextModelReasons(description),
      info: { kind: 'testbed', name: d.name, captions: tb.captionTargets.length, captionTargets: tb.captionTargets },
      notes: [],
      // the testbed is its training data (the shipped subset, hashed in its manifest) and its conditions
      fingerprint: () => describedFingerprint('testbed', { name: d.name, conditions: d.conditions }, { manifest: join(defaultFashionMnistDir(), 'manifest.json') }),
    };
  },
};
