import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Mt19937 } from '../random/torch.ts';
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { learnedDescriptor, pixelDescriptor } from '../metrics/descriptor.ts';
import {
  MILD_AUGMENT,
  STRONG_AUGMENT,
  augmentViews,
  evaluateCopyRetrieval,
  trainDescriptor,
  type AugmentConfig,
} from './descriptor.ts';
import { defaultDescriptorDir, descriptorModelSchema } from '../models/descriptor.ts';

const IDENTITY: AugmentConfig = {
  cropArea: [1, 1],
  cropRatio: [1, 1],
  translate: 0,
  rotateDeg: 0,
  hflip: 0,
  jitterProb: 0,
  contrast: [1, 1],
  brightness: 0,
  blurProb: 0,
  blurSigma: [1, 1],
  noiseProb: 0,
  noiseStd: [0, 0],
  eraseProb: 0,
  eraseArea: [0.1, 0.1],
};

describe('augmentViews', () => {
  const imgs = loadFashionMnist({ split: 'train', limit: 16 }).images.data;

  it('is the identity without augmentations and an exact mirror with hflip = 1', () => {
    const rows = [3, 0, 15];
    const out = augmentViews(imgs, rows, new Mt19937(1), IDENTITY);
    rows.forEach((r, i) => {
      for (let k = 0; k < 784; k++) expect(out[i * 784 + k]).toBeCloseTo(imgs[r * 784 + k]!, 5);
    });
    const flip = augmentViews(imgs, [5], new Mt19937(1), { ...IDENTITY, hflip: 1 });
    for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) expect(flip[y * 28 + x]).toBeCloseTo(imgs[5 * 784 + y * 28 + 27 - x]!, 5);
  });

  it('is a pure function of the engine seed, stays in [-1, 1], and changes the image', () => {
    const a = augmentViews(imgs, [1, 2, 1], new Mt19937(7), STRONG_AUGMENT);
    const b = augmentViews(imgs, [1, 2, 1], new Mt19937(7), STRONG_AUGMENT);
    const c = augmentViews(imgs, [1, 2, 1], new Mt19937(8), STRONG_AUGMENT);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    for (const v of a) expect(Math.abs(v)).toBeLessThanOrEqual(1);
    // two views of the same image differ
    let diff = 0;
    for (let k = 0; k < 784; k++) diff += Math.abs(a[k]! - a[2 * 784 + k]!);
    expect(diff).toBeGreaterThan(1);
  });
});

describe('shipped learned descriptor (models/descriptor)', () => {
  it('has its metrics, is < 1 MB, and retrieves augmented copies far above chance (1/2000)', async () => {
    const dir = defaultDescriptorDir();
    const cfg = descriptorModelSchema.parse(JSON.parse(await readFile(join(dir, 'descriptor.json'), 'utf8')));
    expect((await stat(join(dir, 'weights.safetensors'))).size).toBeLessThan(1_000_000);
    expect(cfg.metrics).toBeDefined();
    const d = await learnedDescriptor(dir);
    const test = loadFashionMnist({ split: 'test' });
    // fixed subset: augmented copies of the first 300 test images, searched among all 2000 (chance 0.05 %)
    const strong = await evaluateCopyRetrieval((x) => d.embed(x), test.images, { cfg: STRONG_AUGMENT, seed: 7, queries: 300 });
    const mild = await evaluateCopyRetrieval((x) => d.embed(x), test.images, { cfg: MILD_AUGMENT, seed: 7, queries: 300 });
    // measured on this subset when shipped: strong 0.563, mild 0.903 (plain pixel cosine: 0.043, 0.593)
    expect(strong.top1).toBeGreaterThan(0.45);
    expect(mild.top1).toBeGreaterThan(0.85);
    expect(strong.meanCosCopy).toBeGreaterThan(strong.meanCosNearestOther);
    expect(mild.meanCosCopy).toBeGreaterThan(mild.meanCosNearestOther);
    // better than the plain pixel cosine on the same strong queries
    const px = await evaluateCopyRetrieval((x) => pixelDescriptor().embed(x), test.images, { cfg: STRONG_AUGMENT, seed: 7, queries: 300 });
    expect(strong.top1).toBeGreaterThan(px.top1 + 0.2);
    await d.dispose?.();
  });
});

describe('trainDescriptor', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memscope-train-descriptor-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('trains a few steps, writes a loadable model with metrics, and resumes', async () => {
    const r = await trainDescriptor(dir, { steps: 2, batch: 8, seed: 3 });
    expect(Number.isFinite(r.finalLoss)).toBe(true);
    expect(r.strong.gallery).toBe(2000);
    const cfg = descriptorModelSchema.parse(JSON.parse(await readFile(join(dir, 'descriptor.json'), 'utf8')));
    expect(cfg.architecture.dim).toBe(64);
    const d = await learnedDescriptor(dir);
    expect(d.info.dim).toBe(64);
    await d.dispose?.();
    // a second call with the same settings resumes from the step-2 checkpoint (no new steps)
    const r2 = await trainDescriptor(dir, { steps: 2, batch: 8, seed: 3 });
    expect(r2.strong.top1).toBe(r.strong.top1);
  });
});
