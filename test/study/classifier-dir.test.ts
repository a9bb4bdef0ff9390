import { describe, it, expect } from 'vitest';
import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { defaultClassifierDir, SHIPPED_MODEL } from '../../src/study/source.ts';

describe('defaultClassifierDir', () => {
  it('uses classifier/ beside the model when it has weights, else the shipped models/classifier', async () => {
    const root = await mkdtemp(join(tmpdir(), 'memscope-clf-'));
    try {
      const model = join(root, 'train', 'graded');
      await mkdir(model, { recursive: true });
      // a model trained into runs/train/ with no classifier beside it: the shipped one
      expect(await defaultClassifierDir(model)).toBe(join(dirname(SHIPPED_MODEL), 'classifier'));
      // an empty classifier folder (no weights) does not count
      await mkdir(join(root, 'train', 'classifier'));
      expect(await defaultClassifierDir(model)).toBe(join(dirname(SHIPPED_MODEL), 'classifier'));
      await writeFile(join(root, 'train', 'classifier', 'weights.safetensors'), 'x');
      expect(await defaultClassifierDir(model)).toBe(join(root, 'train', 'classifier'));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
