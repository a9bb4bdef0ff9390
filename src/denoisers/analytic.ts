/**
 * The analytic memorization testbed (SPEC §6) as one {@link Denoiser}, every branch exactly known:
 *  - conditions 0..9: the class prompts `an image of a {class}` → that class's Gaussian
 *    (D_lin of the class, generalizes);
 *  - conditions 10..: the memorized captions → the empirical denoiser of the caption's image(s)
 *    (for one image, D = that image for every σ: it memorizes);
 *  - null: the mixture of the class Gaussians with π_k = class frequency (generalizes).
 * One batch may mix all three kinds: the class and null rows go through one onnxruntime call
 * (the mixture graph with per-row component masks), the caption rows are computed exactly in JS.
 */
import { type CondRef, type ConditionInfo, type Denoiser, type NoiseLevel, type Space, checkConds } from './denoiser.ts';
import { type Tensor, assertFinite, numel } from '../tensor/tensor.ts';
import { type EmpiricalCondition, EmpiricalDenoiser } from './empirical.ts';
import { MixtureDenoiser, fitMixtureByLabel } from './mixture.ts';

/** A memorized caption: its text and the training image(s) it is tied to. */
export interface AnalyticCaption {
  /** Caption text (the condition's label). */
  readonly text: string;
  /** Training image index (or indices) the caption memorizes; its target(s). */
  readonly index: number | readonly number[];
}

/** Input of {@link makeAnalyticTestbed}. */
export interface AnalyticTestbedInput {
  /** Training images `[n, C, H, W]` (e.g. `[n, 1, 28, 28]` in [−1, 1]). */
  readonly images: Tensor;
  /** Class label of each image, in 0..classNames.length−1. */
  readonly labels: ArrayLike<number>;
  /** Class names (10 for Fashion-MNIST / MNIST); the prompts are `an image of a {name}`. */
  readonly classNames: readonly string[];
  /** Memorized captions. */
  readonly captions: readonly AnalyticCaption[];
  /** Name for reports (default `'analytic'`). */
  readonly name?: string;
  /** Cache the class eigendecompositions on disk (default true). */
  readonly cache?: boolean;
  /** onnxruntime intra-op threads (default: `MEMSCOPE_THREADS` or 2). */
  readonly threads?: number;
}

/** The class prompt text of SPEC §6: `an image of a {class}`. */
export function classPrompt(name: string): string {
  return `an image of a ${name}`;
}

/** The analytic testbed denoiser (SPEC §6). Create with {@link makeAnalyticTestbed}. */
export class AnalyticTestbed implements Denoiser {
  readonly name: string;
  readonly space: Space = 'pixel';
  /** A closed form at every noise level: σ-samplers (`heun-edm`) may evaluate it at any σ > 0. */
  readonly sigmaRange: readonly [number, number] = [0, Infinity];
  readonly shape: readonly number[];
  readonly conditions: readonly ConditionInfo[];
  /** Number of class conditions (they come first); captions follow. */
  readonly numClasses: number;

  /** Use {@link makeAnalyticTestbed}. */
  constructor(
    /** The class-Gaussian mixture (condition k < numClasses → component k; null → mixture). */
    readonly mixture: MixtureDenoiser,
    /** The empirical denoiser over all training images with one condition per caption. */
    readonly captionDenoiser: EmpiricalDenoiser,
    classNames: readonly string[],
    shape: readonly number[],
    name: string,
  ) {
    this.name = name;
    this.shape = shape;
    this.numClasses = classNames.length;
    this.conditions = [...mixture.conditions, ...captionDenoiser.conditions];
  }

  /** Kind of a condition reference. */
  kindOf(c: CondRef): 'null' | 'class' | 'caption' {
    return c === null ? 'null' : c < this.numClasses ? 'class' : 'caption';
  }

  /** D(y;σ) for a mixed batch (VE scale): class/null rows in one onnxruntime call, caption rows exactly. */
  async denoise(y: Tensor, sigma: number, cond: readonly CondRef[]): Promise<Tensor> {
    const B = y.dims[0]!;
    checkConds(this, cond, B);
    const d = numel(this.shape);
    const out = new Float32Array(B * d);
    const gRows: number[] = [];
    const cRows: number[] = [];
    cond.forEach((c, r) => (this.kindOf(c) === 'caption' ? cRows : gRows).push(r));
    // A one-row call is padded to two rows (the row twice; the pad row's output is dropped):
    // onnxruntime's one-row MatMul rounds differently from its many-row path, and a row's result
    // must not depend on how many rows share its call (resumed or re-batched studies, issue 15).
    const gather = (rows: readonly number[]): Tensor => {
      const padded = rows.length === 1 ? [rows[0]!, rows[0]!] : rows;
      const t = new Float32Array(padded.length * d);
      padded.forEach((r, i) => t.set(y.data.subarray(r * d, (r + 1) * d), i * d));
      return { dims: [padded.length, ...this.shape], data: t };
    };
    const condsOf = (rows: readonly number[], f: (c: CondRef) => CondRef): CondRef[] => (rows.length === 1 ? [f(cond[rows[0]!]!), f(cond[rows[0]!]!)] : rows.map((r) => f(cond[r]!)));
    const jobs: Promise<void>[] = [];
    if (gRows.length > 0) {
      jobs.push(
        this.mixture.denoise(gather(gRows), sigma, condsOf(gRows, (c) => c)).then((D) => {
          gRows.forEach((r, i) => out.set(D.data.subarray(i * d, (i + 1) * d), r * d));
        }),
      );
    }
    if (cRows.length > 0) {
      jobs.push(
        this.captionDenoiser.denoise(gather(cRows), sigma, condsOf(cRows, (c) => c! - this.numClasses)).then((D) => {
          cRows.forEach((r, i) => out.set(D.data.subarray(i * d, (i + 1) * d), r * d));
        }),
      );
    }
    await Promise.all(jobs);
    return { dims: [...y.dims], data: out };
  }

  /** ε for a mixed batch (SPEC §0/§2): ε = (x_t − √ᾱ·D(x_t/√ᾱ; σ))/√(1−ᾱ); requires 0 < ᾱ < 1. */
  async predict(xt: Tensor, level: NoiseLevel, cond: readonly CondRef[]): Promise<Tensor> {
    if (xt.dims.length !== this.shape.length + 1 || xt.dims.slice(1).some((v, i) => v !== this.shape[i])) {
      throw new Error(`${this.name}: x_t must be [B, ${this.shape.join(', ')}], got [${xt.dims.join(', ')}]`);
    }
    checkConds(this, cond, xt.dims[0]!);
    assertFinite(`${this.name}: x_t`, xt);
    const a = level.alphaBar;
    if (!(a > 0 && a < 1)) throw new Error(`${this.name}: ᾱ must be in (0, 1), got ${a}`);
    const sa = Math.sqrt(a);
    const sb = Math.sqrt(1 - a);
    const y = new Float32Array(xt.data.length);
    for (let i = 0; i < y.length; i++) y[i] = xt.data[i]! / sa;
    const D = await this.denoise({ dims: xt.dims, data: y }, Math.sqrt((1 - a) / a), cond);
    assertFinite(`${this.name}: denoised estimate`, D);
    const eps = new Float32Array(y.length);
    for (let i = 0; i < eps.length; i++) eps[i] = (xt.data[i]! - sa * D.data[i]!) / sb;
    return { dims: [...xt.dims], data: eps };
  }

  /** Release the onnxruntime sessions. */
  async dispose(): Promise<void> {
    await this.mixture.dispose();
    await this.captionDenoiser.dispose();
  }
}

/**
 * Build the analytic testbed of SPEC §6: conditions = the class prompts `an image of a {class}`
 * (ids `class:k`, kind `class`), then the captions (ids `caption:j`, kind `caption`, targets = the
 * caption's image indices); null = the mixture of the class Gaussians. The class
 * eigendecompositions are computed once and cached on disk (see `gaussian.ts`).
 */
export async function makeAnalyticTestbed(input: AnalyticTestbedInput): Promise<AnalyticTestbed> {
  const { images, labels, classNames, captions } = input;
  if (images.dims.length < 2) throw new Error(`analytic: images must be [n, C, H, W], got [${images.dims.join(', ')}]`);
  const n = images.dims[0]!;
  const shape = images.dims.slice(1);
  const K = classNames.length;
  if (labels.length !== n) throw new Error(`analytic: ${labels.length} labels for ${n} images`);
  for (let i = 0; i < n; i++) {
    const l = labels[i]!;
    if (!Number.isInteger(l) || l < 0 || l >= K) throw new Error(`analytic: label ${l} of image ${i} is not a class index in [0, ${K})`);
  }
  const comps = await fitMixtureByLabel(images, labels, K, input.cache ?? true);
  const name = input.name ?? 'analytic';
  const threads = input.threads === undefined ? {} : { threads: input.threads };
  const mixture = new MixtureDenoiser(comps, {
    name: `${name}/classes`,
    shape,
    conditions: classNames.map((c, k) => ({ id: `class:${k}`, kind: 'class' as const, label: classPrompt(c), component: k })),
    ...threads,
  });
  const capConds: EmpiricalCondition[] = captions.map((c, j) => {
    const idx = typeof c.index === 'number' ? [c.index] : [...c.index];
    for (const i of idx) if (!Number.isInteger(i) || i < 0 || i >= n) throw new Error(`analytic: caption ${j} ('${c.text}') has image index ${i} outside [0, ${n})`);
    return { id: `caption:${j}`, kind: 'caption', label: c.text, targets: idx, indices: idx };
  });
  const captionDenoiser = new EmpiricalDenoiser(images, { name: `${name}/captions`, conditions: capConds, ...threads });
  return new AnalyticTestbed(mixture, captionDenoiser, classNames, shape, name);
}
