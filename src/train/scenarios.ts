/**
 * Training scenarios on the embedded Fashion-MNIST subset (SPEC §6, issue 3): which images are
 * trained with which prompts, and which prompts are memorized (held-out ground truth).
 *
 * - `duplication`: 10 class prompts over the whole training subset, plus unique captions each
 *   tied to one training image duplicated K times (Wen et al.'s scenario 3 in miniature).
 * - `small-set`: a few hundred images, each with its own unique caption (Somepalli et al.'s
 *   small-data overfitting; Jain et al.'s scenario 1).
 * - `class`: class prompts only (Jain et al.'s scenario 2).
 * - `graded`: graded duplication (issue 16 §1; Carlini et al.: memorization grows with
 *   duplication): captions whose image appears exactly 3, 10, 30 and 100 times, unique captions
 *   whose image appears exactly once (non-memorized negatives), and the 10 class prompts over
 *   every other image of the subset (caption images are kept out of the class pool, so a
 *   caption's count is the number of times its image is trained on).
 * - `edm-small`, `edm-large`: unconditional models on 1,000 images and on the whole subset
 *   (Dodson & Gao's EDM-1K setting); `edm-small-undertrained`: as `edm-small` with the loss
 *   scaled by ρ inside a mid-σ band (SPEC §5.6b).
 */
import { classIndices, sampleIndices } from '../data/indices.ts';
import type { ScenarioPrompt } from '../models/model-dir.ts';

/** Scenario names. */
export const SCENARIO_NAMES = ['duplication', 'small-set', 'class', 'edm-small', 'edm-large', 'edm-small-undertrained', 'graded'] as const;
/** A scenario name. */
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

/** A scenario's training set: examples are (image index, prompt index or −1 for none). */
export interface ScenarioData {
  readonly name: ScenarioName;
  readonly conditioning: 'text' | 'none';
  readonly prompts: readonly ScenarioPrompt[];
  /** Training examples: `image[i]` with prompt `prompt[i]` (−1: unconditional model). */
  readonly image: Int32Array;
  readonly prompt: Int32Array;
  /** Indices of the distinct training images used (for nearest-neighbour copy checks). */
  readonly imagePool: readonly number[];
  /** Mid-σ band with loss weight ρ (edm-small-undertrained only). */
  readonly band?: { readonly sigmaLo: number; readonly sigmaHi: number; readonly rho: number };
}

/** Scenario sizes (defaults follow the issue: ≥ 50 captions, duplicates K). */
export interface ScenarioSizes {
  /** duplication: number of memorized captions (default 50). */
  readonly captions?: number;
  /** duplication: duplicates per caption image (default 100). */
  readonly duplicates?: number;
  /** small-set: number of images (default 300). */
  readonly smallSet?: number;
  /** edm-small: number of images (default 1000). */
  readonly edmSmall?: number;
  /** graded: the duplication counts (default [3, 10, 30, 100]). */
  readonly gradedCounts?: readonly number[];
  /** graded: captions per duplication count (default 10). */
  readonly gradedPerCount?: number;
  /** graded: unique captions whose image appears once (default 200). */
  readonly gradedUnique?: number;
  /** graded: images of the class prompts, a seeded sample of the images no caption uses (default: all of them). */
  readonly gradedClassImages?: number;
  /** edm-small-undertrained: the mid-σ band and its loss weight ρ (default σ ∈ [0.2, 2], ρ 0.1). */
  readonly band?: { readonly sigmaLo: number; readonly sigmaHi: number; readonly rho: number };
}

const COLORS = ['red', 'blue', 'green', 'black', 'white', 'grey', 'pink', 'yellow', 'brown', 'purple'];
const PLACES = ['on a wooden table', 'on a beach towel', 'in a shop window', 'on a hanger', 'in a suitcase', 'on a sofa', 'in the snow', 'on a marble floor'];
const STYLES = ['studio photo', 'catalogue shot', 'vintage photo', 'flat lay'];

/** The class prompt text: `an image of a {class}` (lower-case). */
export function classPromptText(name: string): string {
  return `an image of a ${name.toLowerCase()}`;
}

/** Caption k (unique for k < 320): `"{style} of a {color} {class} {place}"`. */
export function captionText(k: number, className: string): string {
  const color = COLORS[k % COLORS.length]!;
  const place = PLACES[Math.floor(k / COLORS.length) % PLACES.length]!;
  const style = STYLES[Math.floor(k / (COLORS.length * PLACES.length)) % STYLES.length]!;
  return `${style} of a ${color} ${className.toLowerCase()} ${place}`;
}

/**
 * Build a scenario's examples from the training labels (deterministic in `seed`).
 * Caption images are spread over the classes (caption k → an image of class k mod 10).
 */
export function buildScenario(name: ScenarioName, labels: Uint8Array, classNames: readonly string[], seed: number, sizes: ScenarioSizes = {}): ScenarioData {
  const n = labels.length;
  const byClass = classIndices(labels, classNames.length);
  const all = Array.from({ length: n }, (_, i) => i);
  const classPrompts: ScenarioPrompt[] = classNames.map((c, k) => ({ text: classPromptText(c), kind: 'class', label: k }));
  switch (name) {
    case 'class':
      return { name, conditioning: 'text', prompts: classPrompts, image: Int32Array.from(all), prompt: Int32Array.from(labels), imagePool: all };
    case 'duplication': {
      const M = sizes.captions ?? 50;
      const K = sizes.duplicates ?? 100;
      if (M > 320) throw new Error(`captions: at most 320 unique captions, got ${M}`);
      const perClass = byClass.map((list, c) => sampleIndices(list, Math.ceil(M / classNames.length), seed + 17 * c));
      const captions: ScenarioPrompt[] = Array.from({ length: M }, (_, k) => {
        const c = k % classNames.length;
        const img = perClass[c]![Math.floor(k / classNames.length)]!;
        return { text: captionText(k, classNames[c]!), kind: 'caption', targets: [img], label: c };
      });
      const image = new Int32Array(n + M * K);
      const prompt = new Int32Array(n + M * K);
      image.set(all);
      prompt.set(labels);
      captions.forEach((cap, k) => {
        image.fill(cap.targets![0]!, n + k * K, n + (k + 1) * K);
        prompt.fill(classNames.length + k, n + k * K, n + (k + 1) * K);
      });
      return { name, conditioning: 'text', prompts: [...classPrompts, ...captions], image, prompt, imagePool: all };
    }
    case 'small-set': {
      const S = sizes.smallSet ?? 300;
      const pick = sampleIndices(n, S, seed).sort((a, b) => a - b);
      const prompts: ScenarioPrompt[] = pick.map((img, k) => ({ text: `${captionText(k, classNames[labels[img]!]!)} number ${k}`, kind: 'caption', targets: [img], label: labels[img]! }));
      return { name, conditioning: 'text', prompts, image: Int32Array.from(pick), prompt: Int32Array.from(pick, (_, k) => k), imagePool: pick };
    }
    case 'edm-small':
    case 'edm-small-undertrained': {
      const S = sizes.edmSmall ?? 1000;
      const pick = sampleIndices(n, S, seed).sort((a, b) => a - b);
      const base = { conditioning: 'none' as const, prompts: [], image: Int32Array.from(pick), prompt: new Int32Array(pick.length).fill(-1), imagePool: pick };
      return name === 'edm-small' ? { name, ...base } : { name, ...base, band: sizes.band ?? { sigmaLo: 0.2, sigmaHi: 2, rho: 0.1 } };
    }
    case 'graded':
      return buildGraded(labels, classNames, seed, sizes);
    case 'edm-large':
      return { name, conditioning: 'none', prompts: [], image: Int32Array.from(all), prompt: new Int32Array(n).fill(-1), imagePool: all };
  }
}

/** Default duplication counts of the `graded` scenario. */
export const GRADED_COUNTS: readonly number[] = [3, 10, 30, 100];

/**
 * The `graded` scenario: `perCount` captions for each count K of `counts` (the caption's image
 * appears in exactly K training examples, all with that caption), `unique` captions whose image
 * appears once, and the class prompts over every other image (or a seeded sample of
 * `gradedClassImages` of them; the image pool is then those and the captions' images). Caption k (of all captions) has the
 * text {@link captionText}(j, class) with j a seeded permutation of 0..captions−1 (so memorized
 * and unique captions draw on the same styles and places) and an image of class k mod 10 drawn
 * without replacement from that class. Prompt order: the 10 class prompts, the graded captions
 * (count by count, ascending), then the unique ones. Deterministic in `seed`.
 */
function buildGraded(labels: Uint8Array, classNames: readonly string[], seed: number, sizes: ScenarioSizes): ScenarioData {
  const counts = sizes.gradedCounts ?? GRADED_COUNTS;
  const P = sizes.gradedPerCount ?? 10;
  const U = sizes.gradedUnique ?? 200;
  for (const c of counts) if (!Number.isInteger(c) || c < 1) throw new Error(`graded counts: expected positive integers, got ${counts.join(', ')}`);
  if (!Number.isInteger(P) || P < 1) throw new Error(`graded captions per count: expected a positive integer, got ${P}`);
  if (!Number.isInteger(U) || U < 0) throw new Error(`graded unique captions: expected a non-negative integer, got ${U}`);
  const M = counts.length * P + U;
  if (M > 320) throw new Error(`graded: at most 320 captions (${counts.length} counts × ${P} + ${U} unique = ${M})`);
  const n = labels.length;
  const nc = classNames.length;
  const byClass = classIndices(labels, nc);
  const perClass = byClass.map((list, c) => sampleIndices(list, Math.ceil(M / nc), seed + 31 * c + 7));
  const textOrder = sampleIndices(M, M, seed + 1009);
  const dup: number[] = [];
  for (const K of counts) for (let i = 0; i < P; i++) dup.push(K);
  for (let i = 0; i < U; i++) dup.push(1);
  const captions: ScenarioPrompt[] = dup.map((K, k) => {
    const c = k % nc;
    const img = perClass[c]![Math.floor(k / nc)]!;
    return { text: captionText(textOrder[k]!, classNames[c]!), kind: 'caption', targets: [img], label: c, duplicates: K };
  });
  const captionImages = new Set(captions.map((p) => p.targets![0]!));
  const rest: number[] = [];
  for (let i = 0; i < n; i++) if (!captionImages.has(i)) rest.push(i);
  const C = sizes.gradedClassImages;
  if (C !== undefined && !(Number.isInteger(C) && C >= nc && C <= rest.length)) throw new Error(`graded class images: expected an integer in [${nc}, ${rest.length}], got ${C}`);
  const classPool = C === undefined ? rest : sampleIndices(rest, C, seed + 2027).sort((a, b) => a - b);
  const total = classPool.length + dup.reduce((a, b) => a + b, 0);
  const image = new Int32Array(total);
  const prompt = new Int32Array(total);
  classPool.forEach((img, i) => {
    image[i] = img;
    prompt[i] = labels[img]!;
  });
  let at = classPool.length;
  captions.forEach((cap, k) => {
    image.fill(cap.targets![0]!, at, at + cap.duplicates!);
    prompt.fill(nc + k, at, at + cap.duplicates!);
    at += cap.duplicates!;
  });
  const classPrompts: ScenarioPrompt[] = classNames.map((c, k) => ({ text: classPromptText(c), kind: 'class', label: k }));
  const imagePool = C === undefined ? Array.from({ length: n }, (_, i) => i) : [...classPool, ...captionImages].sort((a, b) => a - b);
  return { name: 'graded', conditioning: 'text', prompts: [...classPrompts, ...captions], image, prompt, imagePool };
}
