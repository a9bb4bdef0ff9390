import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainClassifier } from '../../src/train/classifier.ts';
import { Classifier } from '../../src/models/classifier.ts';
import { loadFashionMnist } from '../../src/data/fashion-mnist.ts';

describe('classifier trained through the differentiator', () => {
  it('learns well above chance (10 %) in 150 steps, and the saved model reproduces the reported accuracy', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memscope-clf-'));
    const r = await trainClassifier(dir, { steps: 150, batch: 64 });
    expect(r.testAccuracy).toBeGreaterThan(0.5);
    const meta = JSON.parse(await readFile(join(dir, 'classifier.json'), 'utf8'));
    expect(meta.testAccuracy).toBe(r.testAccuracy);
    const clf = await Classifier.load(dir);
    const test = loadFashionMnist({ split: 'test' });
    const pred = await clf.predict(test.images);
    expect(pred.filter((p, i) => p === test.labels[i]).length / pred.length).toBe(r.testAccuracy);
    await clf.dispose();
  });
});
