/**
 * Rebuilding a trained model's U-Net inside new graphs (for the mitigation baselines of SPEC
 * §4.4): the weights are read back from the initializers of `TrainedModel.unetBytes` (named
 * `unet.<param>`, as `buildInferenceGraphs` stores them; `graphWeights`, `src/graph/weights.ts`), so that `buildUnet` /
 * `buildDiffusersUnet` can lay the same network into a graph with extra inputs and outputs — a
 * loss to differentiate (Wen et al.) or a per-token logit scale (Ren et al.).
 */
import { DiffusionModelConfigSchema, type DiffusionModelConfig } from '../models/diffusion-model.ts';
import type { TrainedModel } from '../denoisers/trained.ts';

/**
 * The resolved architecture of a trained model (`model.json` → `model`), EDM preconditioning
 * included (rebuild its ε with `buildEpsNetwork`, never the bare U-Net, whose output is F_θ there).
 */
export function modelConfig(model: TrainedModel): DiffusionModelConfig {
  return DiffusionModelConfigSchema.parse(model.meta['model']);
}
