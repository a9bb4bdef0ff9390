/**
 * The model-source registry (issue 15 §5): `--model` values are opened by the first loader of
 * {@link SOURCE_LOADERS} whose probe takes them — the analytic testbed, a trained memscope model
 * directory, a Stable Diffusion export directory, a bare ONNX U-Net file — as a {@link StudySource}
 * (`study/model-source.ts`: denoiser, schedule, codec, training data, defaults, capabilities).
 * Adding a kind of model = one loader registered here.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SHIPPED_MODEL, SOURCE_OPTION_FLAGS, refuseOptionGroup, type SourceLoader, type SourceOptionGroup, type StudySource, type StudySourceOptions } from './model-source.ts';
import { testbedLoader } from './sources/testbed.ts';
import { trainedLoader } from './sources/trained.ts';
import { onnxLoader } from './sources/onnx.ts';
import { sdExportLoader } from './sd-source.ts';

export * from './model-source.ts';
export { testbedLoader } from './sources/testbed.ts';
export { trainedLoader } from './sources/trained.ts';
export { onnxLoader } from './sources/onnx.ts';
export { sdExportLoader } from './sd-source.ts';

/** `'default'` → the shipped duplication model when present, else the analytic testbed. */
export async function resolveModelSpec(model: string): Promise<string> {
  if (model !== 'default') return model;
  return (await stat(join(SHIPPED_MODEL, 'model.json')).then(() => true, () => false)) ? SHIPPED_MODEL : 'testbed';
}

/** The loaders {@link loadStudySource} tries, in order (a new model kind registers one here). */
export const SOURCE_LOADERS: SourceLoader[] = [testbedLoader, trainedLoader, sdExportLoader, onnxLoader];

const GROUPS = Object.keys(SOURCE_OPTION_FLAGS) as SourceOptionGroup[];

/**
 * Open `spec` with the first loader of {@link SOURCE_LOADERS} whose probe takes it, after refusing
 * the options that loader does not read (naming the flag). When none takes it: one error naming
 * every loader's reason. Load errors that name no flag are about `--model`.
 */
export async function loadStudySource(spec: string, opts: StudySourceOptions = {}): Promise<StudySource> {
  const reasons: string[] = [];
  for (const l of SOURCE_LOADERS) {
    const why = await l.probe(spec);
    if (why === null) {
      for (const g of GROUPS) if (!(l.options ?? []).includes(g)) refuseOptionGroup(g, spec, opts);
      return l.load(spec, opts).catch((e: Error) => {
        throw /^--[a-z]/.test(e.message) ? e : new Error(`--model: ${e.message}`, { cause: e });
      });
    }
    reasons.push(`${l.name}: ${why}`);
  }
  for (const g of GROUPS) refuseOptionGroup(g, spec, opts);
  const [first, ...rest] = SOURCE_LOADERS.map((l) => l.takes ?? l.name);
  throw new Error(`--model: expected ${[first, rest.join(' or ')].filter((x) => x).join(', ')}, got "${spec}" (${reasons.join('; ')})`);
}
