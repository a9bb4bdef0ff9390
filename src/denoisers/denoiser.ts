/**
 * The one interface every denoiser backend implements (SPEC §2). A denoiser predicts the noise
 * ε in the variance-preserving parameterisation of SPEC §0: given `x_t = √ᾱ_t·x + √(1−ᾱ_t)·ε`
 * it returns ε̂(x_t, t, e). Backends that predict x0 or v convert with `parameterization.ts`.
 */
import type { Tensor } from '../tensor/tensor.ts';

/** The space a denoiser works in: pixels, or VAE latents (already times the VAE scaling factor). */
export type Space = 'pixel' | 'latent';

/** One condition a denoiser accepts (a class, a caption tied to training images, a text, an embedding row). */
export interface ConditionInfo {
  /** Stable identifier, e.g. `class:3`, `caption:12`, `row:0`. */
  readonly id: string;
  readonly kind: 'class' | 'caption' | 'text' | 'embedding';
  /** Human-readable label (the prompt text or class name). */
  readonly label: string;
  /** Indices of the training images this condition is tied to, when known (its targets). */
  readonly targets?: readonly number[];
  /** How many training examples show this condition's image, when the model records it (the `graded` scenario: 1, 3, 10, 30, 100). */
  readonly duplicates?: number;
  /** Ground truth given by a prompt list's label when its training image is not at hand (a public set's URL images): overrides the targets rule. */
  readonly memorized?: boolean;
  /** The prompt set's memorization label (`verbatim`, `template`, `none`, …; NeMo's VM / TM), when it has one. */
  readonly memorizationLabel?: string;
}

/**
 * The ground-truth label of memorization studies: a condition tied to a training image (its
 * targets) is memorized, except one whose image is trained on once (the `graded` scenario's unique
 * captions, the honest negatives of Wen et al.'s detection). A label given without an image
 * (`memorized`) decides on its own.
 */
export function isMemorizedCondition(info: ConditionInfo): boolean {
  if (info.memorized !== undefined) return info.memorized;
  return (info.targets?.length ?? 0) > 0 && (info.duplicates === undefined || info.duplicates > 1);
}

/** A condition reference in a batch: an index into `Denoiser.conditions`, or `null` for e_∅. */
export type CondRef = number | null;

/** The noise level of one call: the (possibly fractional) timestep t and ᾱ at that level. */
export interface NoiseLevel {
  readonly t: number;
  readonly alphaBar: number;
  /**
   * Set by σ-samplers (`heun-edm`): evaluate at this VE σ (= √((1 − ᾱ)/ᾱ)) rather than at timestep
   * `t` of the schedule; only denoisers with {@link Denoiser.sigmaRange} accept it.
   */
  readonly sigma?: number;
}

/** A batched ε-prediction model (SPEC §2). */
export interface Denoiser {
  /** Short name of the backend and configuration, for reports. */
  readonly name: string;
  readonly space: Space;
  /** Per-sample shape, e.g. `[1, 28, 28]` or `[4, 64, 64]`. */
  readonly shape: readonly number[];
  /** Conditions accepted by `predict` (indices into this list). */
  readonly conditions: readonly ConditionInfo[];
  /**
   * ε̂ for a batch: `xt` is `[B, ...shape]` in VP scale, `cond` has length B.
   * Returns a new tensor of the same dims. Throws when the model returns non-finite values.
   */
  predict(xt: Tensor, level: NoiseLevel, cond: readonly CondRef[]): Promise<Tensor>;
  /**
   * The VE σ interval over which `predict` honours {@link NoiseLevel.sigma} (any σ, not only the
   * schedule's grid): the closed-form denoisers [0, ∞), an EDM-trained model its training range
   * [0.002, 80]. Absent: the denoiser is defined on its schedule's timesteps only (σ-samplers refuse it).
   */
  readonly sigmaRange?: readonly [number, number];
  /** Release native resources (onnxruntime sessions). */
  dispose?(): Promise<void>;
}

/** Throw a clear error naming `arg` unless every entry of `cond` is `null` or a valid condition index. */
export function checkConds(d: Denoiser, cond: readonly CondRef[], batch: number, arg = 'cond'): void {
  if (cond.length !== batch) throw new Error(`${arg}: expected ${batch} condition entries (one per batch row), got ${cond.length}`);
  for (const c of cond) {
    if (c !== null && (!Number.isInteger(c) || c < 0 || c >= d.conditions.length)) {
      throw new Error(`${arg}: condition index ${c} is out of range; ${d.name} has ${d.conditions.length} conditions (0..${d.conditions.length - 1}) or null for unconditional`);
    }
  }
}
