/**
 * Rebuilding a trained model's U-Net inside new graphs (for the mitigation baselines of SPEC
 * §4.4): the weights are read back from the initializers of `TrainedModel.unetBytes` (named
 * `unet.<param>`, as `buildInferenceGraphs` stores them), so that `buildUnet` /
 * `buildDiffusersUnet` can lay the same network into a graph with extra inputs and outputs — a
 * loss to differentiate (Wen et al.) or a per-token logit scale (Ren et al.).
 */
import p from 'onnx-proto';
import { DiffusionModelConfigSchema, type DiffusionModelConfig } from '../models/diffusion-model.ts';
import type { TrainedModel } from '../denoisers/trained.ts';

const { onnx } = p;

/**
 * The resolved architecture of a trained model (`model.json` → `model`). Throws for EDM-preconditioned
 * models: the graphs rebuilt here lay out the bare U-Net, whose output is F_θ, not ε, for those models.
 */
export function modelConfig(model: TrainedModel): DiffusionModelConfig {
  const cfg = DiffusionModelConfigSchema.parse(model.meta['model']);
  if (cfg.preconditioning) throw new Error(`${model.denoiser.name}: EDM-preconditioned models are not supported by the rebuilt-U-Net mitigations (Wen et al. embedding, Ren et al. attention) yet; their U-Net output is F_θ, not ε`);
  return cfg;
}

const cache = new WeakMap<Uint8Array, ReadonlyMap<string, Float32Array>>();

/**
 * The float32 initializers of an ONNX model by name (raw or `float_data` storage). memscope's
 * U-Net graphs hold every parameter as `unet.<name>`; other initializers (constants) come along
 * and are ignored by the parameter lookup. Cached per byte array.
 */
export function graphWeights(bytes: Uint8Array): ReadonlyMap<string, Float32Array> {
  const hit = cache.get(bytes);
  if (hit !== undefined) return hit;
  const m = onnx.ModelProto.decode(bytes);
  const out = new Map<string, Float32Array>();
  for (const t of m.graph?.initializer ?? []) {
    if (t.dataType !== onnx.TensorProto.DataType.FLOAT || !t.name) continue;
    const raw = t.rawData;
    if (raw && raw.length > 0) {
      const copy = new Uint8Array(raw); // a fresh, aligned copy (protobufjs may hand out Buffer views)
      out.set(t.name, new Float32Array(copy.buffer, 0, copy.byteLength / 4));
    } else {
      out.set(t.name, Float32Array.from(t.floatData ?? []));
    }
  }
  cache.set(bytes, out);
  return out;
}
