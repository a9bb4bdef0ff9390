/**
 * memscope's public API: `import { … } from 'memscope'`.
 *
 * What a library user composes (README "Library"): tensors and torch-compatible noise; scheduler
 * configs and the diffusers-matching samplers; guidance schedules and the `cfg` combinator; the
 * denoisers (analytic, empirical, Gaussian, mixture, ONNX, trained models, Stable Diffusion
 * exports); observers; the analyses (Kim et al., Jain et al.'s transition points, Wen et al.,
 * Dodson & Gao's geometry); the metrics (copy detection, descriptors, ROC, Fréchet distance, CLIP
 * score, Inception features); the mitigations; the study runners behind every CLI command; data
 * loaders, npy I/O and the Stable Diffusion export loader and pipeline. Every name is documented
 * at its definition (TSDoc). The CLI itself is `memscope/cli` (`main(argv)`).
 */
export * from './tensor/tensor.ts';
export * from './tensor/ops.ts';
export * from './random/torch.ts';
export * from './random/seeds.ts';
export * from './random/normal.ts';
export * from './random/mulberry32.ts';
export * from './schedules/betas.ts';
export * from './schedules/config.ts';
export * from './schedules/timesteps.ts';
export * from './samplers/index.ts';
export * from './samplers/types.ts';
export * from './guidance/cfg.ts';
export * from './guidance/schedules.ts';
export * from './guidance/spec.ts';
export * from './denoisers/denoiser.ts';
export * from './denoisers/parameterization.ts';
export * from './denoisers/analytic.ts';
export * from './denoisers/empirical.ts';
export * from './denoisers/gaussian.ts';
export * from './linalg/eigh.ts';
export { cacheDir, hashData, eighStats, eighCached, eighCachedMany, type EighCacheOptions } from './linalg/eigh-cache.ts';
export * from './denoisers/mixture.ts';
export * from './denoisers/onnx.ts';
export * from './denoisers/trained.ts';
export * from './denoisers/attention.ts';
export * from './denoisers/swap.ts';
export * from './record/recorders.ts';
export * from './analysis/alignment.ts';
export * from './analysis/correlation.ts';
export * from './analysis/decomposition.ts';
export * from './analysis/diversity.ts';
export * from './analysis/geometry.ts';
export * from './analysis/kim.ts';
export * from './analysis/transition.ts';
export * from './analysis/wen.ts';
export * from './metrics/copy.ts';
export * from './metrics/descriptor.ts';
export * from './metrics/frechet.ts';
export * from './metrics/nearest.ts';
export * from './metrics/roc.ts';
export * from './metrics/score.ts';
export * from './metrics/clip.ts';
export * from './metrics/inception.ts';
export * from './metrics/types.ts';
export * from './mitigate/methods.ts';
export * from './mitigate/prompt-noise.ts';
export * from './mitigate/ren-attention.ts';
export * from './mitigate/capabilities.ts';
export * from './mitigate/wen-embedding.ts';
export * from './study/testbed.ts';
export * from './study/source.ts';
export * from './study/sd-source.ts';
export * from './study/conditions.ts';
export * from './study/sampling.ts';
export * from './study/kim.ts';
export * from './study/curves.ts';
export * from './study/sweep.ts';
export * from './study/detect.ts';
export * from './study/evaluate.ts';
export * from './study/transition.ts';
export * from './study/capabilities.ts';
export * from './study/geometry.ts';
export * from './study/swap.ts';
export * from './study/validate.ts';
export * from './sd/export.ts';
export * from './sd/pipeline.ts';
export * from './text/clip-tokenizer.ts';
export * from './data/index.ts';
export * from './io/npy.ts';
export * from './graph/session.ts';
export * from './engine/study.ts';
export * from './engine/canonical.ts';
export * from './engine/runner.ts';
export * from './engine/memory-store.ts';
export * from './engine/progress.ts';
export * from './store/sqlite-store.ts';
export * from './store/export.ts';
export * from './store/fingerprint.ts';
export * from './store/run-record.ts';
export * from './study/sample-study.ts';
// two modules name their options `WenOptions`: the detector's stays `WenOptions`, the embedding optimisation's is renamed
export type { WenOptions } from './analysis/wen.ts';
export type { WenOptions as WenEmbeddingOptions } from './mitigate/wen-embedding.ts';
