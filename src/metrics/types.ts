/**
 * The interfaces the evaluation measures through: image features for the Fréchet distance
 * ({@link FeatureExtractor}), a per-sample alignment with the prompt ({@link AlignmentScorer}), and
 * the prompt as the scorers see it ({@link EvaluatedPrompt}). Implemented by memscope's classifier
 * (`classifierTools`, `src/study/evaluate.ts`), CLIP (`src/metrics/clip.ts`) and Inception
 * (`src/metrics/inception.ts`).
 */
import type { Tensor } from '../tensor/tensor.ts';

/** Image features for the Fréchet distance (memscope's classifier here; Inception pool features for Stable Diffusion). */
export interface FeatureExtractor {
  readonly name: string;
  /** Features `[n, dim]` of images `[n, ...]` (the training images' layout). */
  features(images: Tensor): Promise<Tensor>;
}

/** A per-sample alignment score with the sample's prompt (classifier accuracy here; CLIP score for text-to-image). */
export interface AlignmentScorer {
  readonly name: string;
  /** `'fraction'` (default: a 0/1 or [0, 1] score averaged into a rate) or `'score'` (e.g. CLIP score, 0–100). */
  readonly unit?: 'fraction' | 'score';
  /** One score per image (`prompts[r]` is row r's prompt); null when the prompts carry no usable label. */
  score(images: Tensor, prompts: readonly EvaluatedPrompt[]): Promise<number[] | null>;
}

/** An evaluated prompt. */
export interface EvaluatedPrompt {
  readonly cond: number;
  readonly id: string;
  readonly label: string;
  /** The class the prompt names or depicts (class prompts; captions: their garment's class), when known. */
  readonly classLabel: number | null;
  /** The training image the prompt is tied to, when any. */
  readonly target: number | null;
}
