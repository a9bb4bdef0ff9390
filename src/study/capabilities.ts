/**
 * What a model source can do, by capability name (issue 15 §5–6): studies and methods ask for
 * `text`, `attention` or `embeddingGradient`, never for the kind of model. Each loader states its
 * capabilities and the reason for each one it lacks (`StudySource.capabilityReason`); this maps a
 * source to the report `skippedMethods` reads.
 */
import type { Capability } from '../mitigate/capabilities.ts';
import { capabilityReport } from './model-source.ts';
import type { StudySource } from './model-source.ts';

/** Each wanted capability → null when the source has it, else why it does not. */
export type CapabilityReport = ReadonlyMap<Capability, string | null>;

/** The capabilities of `src` among `wanted` (only those are checked: a Stable Diffusion export's `attention` reads its U-Net graph once). */
export function sourceCapabilities(src: StudySource, wanted: readonly Capability[]): CapabilityReport {
  return capabilityReport(src, wanted);
}
