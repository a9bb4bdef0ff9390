/**
 * A bare ONNX U-Net file as a model source (`--model PATH.onnx`): a noise-prediction model with the
 * diffusers U-Net signature (`sample`, `timestep`, optionally `class_labels` or
 * `encoder_hidden_states`), run by `denoisers/onnx.ts`, with condition rows from `.npy` files. It
 * comes without training data, text encoder or graph memscope built: studies that measure copies
 * refuse it (no training images) and it has no capabilities; `memscope sample` runs on it.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { loadOnnxDenoiser } from '../../denoisers/onnx.ts';
import { readNpy } from '../../io/npy.ts';
import { stableDiffusionConfig } from '../../schedules/config.ts';
import { describedFingerprint } from '../../store/fingerprint.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import type { CapabilityReasons } from '../../mitigate/capabilities.ts';
import { identityCodec, sourceSchedule, type SourceCodec, type SourceLoader } from '../model-source.ts';

const isFile = (p: string): Promise<boolean> => stat(p).then((s) => s.isFile(), () => false);

/** A `.onnx` file: the U-Net alone (see the module note); takes `opts.onnx`. */
export const onnxLoader: SourceLoader = {
  name: 'onnx',
  takes: 'an ONNX U-Net file (PATH.onnx)',
  options: ['onnx'],
  async probe(spec) {
    if (!spec.endsWith('.onnx')) return `"${spec}" does not end in .onnx`;
    return (await isFile(spec)) ? null : `${spec} does not exist or is not a file`;
  },
  async load(spec, opts) {
    const o = opts.onnx ?? {};
    const read = (path: string | undefined, flag: string): Promise<Tensor | undefined> => (path === undefined ? Promise.resolve(undefined) : readNpy(path, flag));
    const condT = await read(o.cond, '--cond');
    const uncondT = await read(o.uncond, '--uncond');
    const config = opts.schedulerConfig ?? stableDiffusionConfig();
    const predictionType = o.predictionType ?? config.prediction_type ?? 'epsilon';
    const denoiser = await loadOnnxDenoiser({
      path: spec,
      ...(condT ? { conditions: condT } : {}),
      ...(uncondT ? { uncond: uncondT } : {}),
      predictionType,
      ...(o.shape ? { shape: o.shape } : {}),
    });
    const description = `the ONNX model ${spec}`;
    const empty: Tensor = { dims: [0, ...denoiser.shape], data: new Float32Array(0) };
    const codec: SourceCodec = {
      kind: 'identity',
      toModelSpace: (i) => {
        throw new Error(`training image ${i}: ${description} comes without training images (it can only sample)`);
      },
      toImageSpace: async (x) => x,
      encode: async (x) => x,
      noisyImages: identityCodec(empty).noisyImages,
      scalingFactor: null,
    };
    const reason: CapabilityReasons = (c) =>
      c === 'text'
        ? `need prompts as text, and ${description} takes condition rows (--cond FILE.npy), not text`
        : c === 'attention'
          ? `need cross-attention memscope can expose, and ${description} is a bare U-Net file (memscope exposes it on its trained models and on Stable Diffusion exports)`
          : `need gradients through the U-Net with respect to the prompt embedding, and memscope differentiates only the graphs it builds, not ${description}`;
    return {
      denoiser,
      name: basename(spec),
      trainImages: empty,
      description,
      spec,
      schedule: sourceSchedule(config),
      codec,
      toModelSpace: codec.toModelSpace,
      toImageSpace: codec.toImageSpace,
      defaults: {
        descriptor: 'pixel',
        analysisDescriptors: 'pixel',
        centerPixels: true,
        classifierDir: null,
        noClassifier: `${description} comes without a classifier`,
        memorizationRule: 'own-similarity',
        samplePrompts: denoiser.conditions.length ? 'all' : 'uncond',
      },
      data: { imagePool: null, heldOut: null, classOf: () => null, unconditionalReason: `${description} comes without training images`, lossBand: null },
      capabilities: { provider: 'cpu' },
      capabilityReason: reason,
      info: { kind: 'onnx', path: spec, cond: o.cond ?? null, uncond: o.uncond ?? null, predictionType, shape: denoiser.shape },
      notes: [],
      fingerprint: () => describedFingerprint('onnx', { predictionType, shape: denoiser.shape }, { model: spec, cond: o.cond, uncond: o.uncond }),
    };
  },
};
