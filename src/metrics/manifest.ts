/**
 * The manifest an evaluation-model conversion script writes beside its ONNX file (issue 20 §1;
 * `scripts/convert/*.py`): which official checkpoint it came from (name and sha256), what
 * preprocessing the model expects, and how far the ONNX output was from the torch model's on
 * random inputs. memscope reads it when it loads the model and records it in every result, so a
 * number always says which SSCD / CLIP / Inception produced it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';

/** The manifest's schema (format `memscope-eval-model/1`). */
export const EvalModelManifestSchema = z.object({
  format: z.literal('memscope-eval-model/1'),
  kind: z.enum(['sscd', 'clip-vision', 'clip-text', 'inception']),
  /** The checkpoint's name, e.g. `sscd_disc_large`, `openai/clip-vit-large-patch14`, `pt_inception-2015-12-05`. */
  checkpoint: z.string().min(1),
  source: z.object({ file: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
  preprocessing: z.string(),
  /** The ONNX output checked against torch's on random inputs. */
  check: z.object({ inputs: z.number().int().positive(), maxAbsDiff: z.number().nonnegative(), tolerance: z.number().positive(), runtime: z.string() }),
  exporter: z.object({ script: z.string(), torch: z.string(), opset: z.number().int().positive() }),
  /** Kind-specific facts (input size, output dimension, tokenizer, …). */
  extra: z.record(z.string(), z.unknown()).default({}),
});

/** A parsed manifest. */
export type EvalModelManifest = z.infer<typeof EvalModelManifestSchema>;

/** The manifest path of an ONNX file: `model.onnx` → `model.manifest.json` (other names: `NAME.manifest.json`). */
export function manifestPathOf(onnxPath: string): string {
  return onnxPath.endsWith('.onnx') ? `${onnxPath.slice(0, -'.onnx'.length)}.manifest.json` : `${onnxPath}.manifest.json`;
}

/** The manifest beside `onnxPath`, or null when there is none; throws naming the file when it is not a valid manifest. */
export function readEvalModelManifest(onnxPath: string): EvalModelManifest | null {
  const p = manifestPathOf(onnxPath);
  if (!existsSync(p)) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(p, 'utf8'));
  } catch (e) {
    throw new Error(`manifest ${p} is not JSON: ${(e as Error).message}`);
  }
  const r = EvalModelManifestSchema.safeParse(raw);
  if (!r.success) throw new Error(`manifest ${p} is not a memscope-eval-model/1 manifest: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  if (r.data.check.maxAbsDiff > r.data.check.tolerance) throw new Error(`manifest ${p}: the ONNX model differed from the torch model by ${r.data.check.maxAbsDiff} > ${r.data.check.tolerance} when it was converted; convert it again`);
  return r.data;
}
