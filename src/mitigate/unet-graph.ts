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
 * The resolved architecture of a trained model (`model.json` → `model`). Throws for EDM-preconditioned
 * models: the graphs rebuilt here lay out the bare U-Net, whose output is F_θ, not ε, for those models.
 */
export function modelConfig(model: TrainedModel): DiffusionModelConfig {
  const cfg = DiffusionModelConfigSchema.parse(model.meta['model']);
  if (cfg.preconditioning) throw new Error(`${model.denoiser.name}: EDM-preconditioned models are not supported by the rebuilt-U-Net mitigations (Wen et al. embedding, Ren et al. attention) yet; their U-Net output is F_θ, not ε`);
  return cfg;
}
