/**
 * Training scenarios on the embedded Fashion-MNIST subset (SPEC §6, issue 3): which images are
 * trained with which prompts, and which prompts are memorized (held-out ground truth).
 *
 * - `duplication`: 10 class prompts over the whole training subset, plus unique captions each
 *   tied to one training image duplicated K times (Wen et al.'s scenario 3 in miniature).
 * - `small-set`: a few hundred images, each with its own unique caption (Somepalli et al.'s
 *   small-data overfitting; Jain et al.'s scenario 1).
 * - `class`: class prompts only (Jain et al.'s scenario 2).
 * - `edm-small`, `edm-large`: unconditional models on 1,000 images and on the whole subset
 *   (Dodson & Gao's EDM-1K setting); `edm-small-undertrained`: as `edm-small` with the loss
 *   scaled by ρ inside a mid-σ band (SPEC §5.6b).
 */
import { classIndices, sampleIndices } from '../data/indices.ts';

/** Scenario names. */
export const SCENARIO_NAMES = ['duplication', 'small-set', 'class', 'edm-small', 'edm-large', 'edm-small-undertrained'] as const;
/** A scenario name. */
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

/** One prompt of a scenario. */
export interface ScenarioPrompt {
  readonly text: string;
  readonly kind: 'class' | 'caption';
  /** Training images tied to this prompt when it is a memorization target (captions). */
  readonly targets?: readonly number[];
  /** The class of its image(s), when known. */
  readonly label?: number;
}

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
    case 'edm-large':
      return { name, conditioning: 'none', prompts: [], image: Int32Array.from(all), prompt: new Int32Array(n).fill(-1), imagePool: all };
  }
}
