/**
 * What today's model sources can do, by capability name (issue 15 §5–6): studies and methods ask
 * for `text`, `attention` or `embeddingGradient`, never for the kind of model. Until the model
 * source registry carries capabilities itself, this maps a {@link StudySource} to them, with the
 * reason a capability is missing phrased to follow a list of methods ("wen:3 need …").
 */
import type { Capability } from '../mitigate/methods.ts';
import { hasCrossAttentionSoftmax } from '../graph/cross-attention.ts';
import type { StudySource } from './source.ts';

/** Each wanted capability → null when the source has it, else why it does not. */
export type CapabilityReport = ReadonlyMap<Capability, string | null>;

/**
 * The capabilities of `src` among `wanted` (only those are checked; `attention` on a Stable
 * Diffusion export reads its U-Net graph once):
 * - trained memscope text models have all three (memscope builds and differentiates their graphs);
 * - a Stable Diffusion export has `text` (its text encoder re-encodes prompts) and `attention`
 *   when its U-Net has cross-attention Softmax nodes named like `.../attn2/Softmax`, never
 *   `embeddingGradient` (memscope differentiates only graphs it builds);
 * - other sources (the analytic testbed, class-only or bare ONNX models) have none.
 */
export function sourceCapabilities(src: StudySource, wanted: readonly Capability[]): CapabilityReport {
  const out = new Map<Capability, string | null>();
  const textModel = src.trained !== null && src.trained.textEncoderBytes !== null;
  for (const c of new Set(wanted)) {
    if (textModel) {
      out.set(c, null);
      continue;
    }
    if (src.sd) {
      if (c === 'text') out.set(c, null);
      else if (c === 'attention') {
        const unet = src.sd.export.unet.path;
        out.set(c, hasCrossAttentionSoftmax(unet) ? null : `need cross-attention Softmax nodes named like '.../attn2/Softmax' to rescale, and ${unet} has none (fused or renamed attention), so Ren et al.'s rule cannot be applied`);
      } else {
        out.set(c, "optimise the prompt embedding with gradients through the U-Net, and memscope's differentiator covers only the graphs it builds, not an export's U-Net (on an export use the guidance methods, random-word, random-number or ren)");
      }
      continue;
    }
    out.set(c, `need a trained text-conditioned model; ${src.description} has none`);
  }
  return out;
}
