/**
 * The model-source registry (issue 15 §5): loaders are tried in order; when none takes a
 * `--model` value the one error names every loader's reason; a new kind is one registered loader.
 */
import { describe, expect, it } from 'vitest';
import { SOURCE_LOADERS, loadStudySource, type SourceLoader } from '../../src/study/source.ts';
import type { StudySource } from '../../src/study/source.ts';

describe('SOURCE_LOADERS', () => {
  it('names every loader and its reason when none fits', async () => {
    await expect(loadStudySource('/nonexistent/model')).rejects.toThrow(
      /--model: expected 'testbed', .* got "\/nonexistent\/model" \(testbed: not the word "testbed"; trained: no model\.json in "\/nonexistent\/model"; stable-diffusion: no model_index\.json and unet\/ in "\/nonexistent\/model", and not a \.safetensors file; onnx: "\/nonexistent\/model" does not end in \.onnx\)/,
    );
  });

  it('takes a registered loader for a new kind of model, and refuses SD-only options elsewhere', async () => {
    const fake = { spec: 'fake:1' } as unknown as StudySource;
    const loader: SourceLoader = { name: 'fake', probe: async (s) => (s.startsWith('fake:') ? null : 'not fake:'), load: async () => fake };
    SOURCE_LOADERS.push(loader);
    try {
      expect(await loadStudySource('fake:1')).toBe(fake);
      await expect(loadStudySource('/nowhere')).rejects.toThrow(/fake: not fake:\)$/);
      await expect(loadStudySource('/nowhere', { sd: { promptSet: 'p.csv' } })).rejects.toThrow(/^--prompt-set: only for a Stable Diffusion export/);
    } finally {
      SOURCE_LOADERS.splice(SOURCE_LOADERS.indexOf(loader), 1);
    }
  });
});
