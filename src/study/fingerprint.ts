/**
 * The fingerprint of a study source (issue 15 §1): a hash of the weights and configuration its
 * results depend on, part of every unit key. Each loader computes its own (`StudySource.fingerprint`):
 * the testbed is its training data (the shipped subset, hashed in its manifest) and its conditions;
 * a trained model its folder's top-level files (`model.json`, the weights); a Stable Diffusion export
 * every file of the export plus the settings the source was opened with (image size, provider, the
 * prompts, a negative prompt); a bare ONNX file the file, its condition files and prediction type.
 */
import type { StudySource } from './model-source.ts';

/** Fingerprint of `src` (see the module comment). */
export function sourceFingerprint(src: Pick<StudySource, 'fingerprint'>): Promise<string> {
  return src.fingerprint();
}
