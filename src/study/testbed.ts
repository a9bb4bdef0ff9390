/**
 * The default analytic memorization testbed on the embedded Fashion-MNIST subset (SPEC §6):
 * 10 class prompts (class Gaussians: they generalize), M memorized captions (each the empirical
 * denoiser of one training image: it memorizes), unconditional = the mixture of the class Gaussians.
 */
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { makeAnalyticTestbed } from '../denoisers/analytic.ts';
import type { Denoiser } from '../denoisers/denoiser.ts';
import type { Tensor } from '../tensor/tensor.ts';

/** Options of the default testbed. */
export interface TestbedOptions {
  /** Number of memorized captions (default 20, at most 1000). */
  readonly captions?: number;
}

/** The testbed and the training data it was built from. */
export interface Testbed {
  readonly denoiser: Denoiser;
  readonly train: { readonly images: Tensor; readonly labels: Uint8Array; readonly classNames: readonly string[] };
  /** Training image index of caption k. */
  readonly captionTargets: readonly number[];
}

/**
 * Caption k is tied to the ⌊k/10⌋-th training image of class k mod 10 (a fixed, label-balanced
 * choice), with the text `"{class}, catalogue photo #{index}"`.
 */
export function captionTargets(labels: Uint8Array, count: number): number[] {
  const byClass: number[][] = Array.from({ length: 10 }, () => []);
  labels.forEach((l, i) => byClass[l]!.push(i));
  return Array.from({ length: count }, (_, k) => {
    const list = byClass[k % 10]!;
    const idx = list[Math.floor(k / 10)];
    if (idx === undefined) throw new Error(`captions: class ${k % 10} has only ${list.length} images`);
    return idx;
  });
}

/** Build the default analytic testbed (eigendecompositions are cached on disk after the first run). */
export async function defaultTestbed(opts: TestbedOptions = {}): Promise<Testbed> {
  const count = opts.captions ?? 20;
  if (!Number.isInteger(count) || count < 0 || count > 1000) throw new Error(`--captions: expected an integer in 0..1000, got ${count}`);
  const train = await loadFashionMnist({ split: 'train' });
  const targets = captionTargets(train.labels, count);
  const denoiser = await makeAnalyticTestbed({
    images: train.images,
    labels: train.labels,
    classNames: train.classNames,
    captions: targets.map((index) => ({ index, text: `${train.classNames[train.labels[index]!]}, catalogue photo #${index}` })),
  });
  return { denoiser, train, captionTargets: targets };
}
