/**
 * The fingerprint of a study source (issue 15 §1): a hash of the weights and configuration its
 * results depend on, part of every unit key. The testbed is its training data (the shipped subset,
 * hashed in its manifest) and its conditions; a trained model its folder's top-level files
 * (`model.json`, the weights); a Stable Diffusion export every file of the export plus the settings
 * the source was opened with (image size, negative prompt, provider).
 */
import { join } from 'node:path';
import { describedFingerprint, folderFingerprint } from '../store/fingerprint.ts';
import { defaultFashionMnistDir } from '../data/fashion-mnist.ts';
import type { StudySource } from './source.ts';

/** Fingerprint of `src` (see the module comment). */
export async function sourceFingerprint(src: StudySource): Promise<string> {
  const d = src.denoiser;
  if (src.spec === 'testbed') return describedFingerprint('testbed', { name: d.name, conditions: d.conditions }, { manifest: join(defaultFashionMnistDir(), 'manifest.json') });
  if (src.sd) {
    const files = await folderFingerprint('stable-diffusion', src.spec, { recursive: true });
    return describedFingerprint('stable-diffusion-source', { files, shape: d.shape, imageSize: [src.sd.imageSize.height, src.sd.imageSize.width], denoiser: d.name, predictionType: src.sd.export.predictionType, provider: src.sd.export.executionProvider, conditions: d.conditions.map((c) => c.label) });
  }
  return folderFingerprint('trained', src.spec);
}
