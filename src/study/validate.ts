/**
 * Validation of a trained memorization testbed (issue 3 figures): sample every memorized caption
 * and every class prompt with several seeds and measure, per caption, how often the sample's
 * nearest training image is the caption's own image, the strict ratio test d1/d2 < 1/3
 * (SPEC §5.4) and the pixel copy similarity; class-prompt samples should not be copies.
 */
import type { Denoiser, CondRef } from '../denoisers/denoiser.ts';
import type { GuidanceSchedule } from '../guidance/schedules.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import type { SamplerName } from '../samplers/index.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { runSampling, type SamplingResult } from './sampling.ts';
import { CopyDetector, type CopyStat } from '../metrics/copy.ts';
import { takeRows } from '../data/indices.ts';
import type { Classifier } from '../models/classifier.ts';
import { clusteredRateInterval, rateText, type ClusteredRate } from '../analysis/verdict.ts';

/** Crop `[n, C, 32, 32]` samples to the central `[n, C, 28, 28]` (undoing the training padding). */
export function crop32to28(x: Tensor): Tensor {
  const [n, c] = x.dims as [number, number, number, number];
  if (x.dims[2] !== 32 || x.dims[3] !== 32) throw new Error(`crop32to28: expected [n, C, 32, 32], got [${x.dims.join(', ')}]`);
  const out = new Float32Array(n * c * 784);
  for (let k = 0; k < n * c; k++) for (let y = 0; y < 28; y++) out.set(x.data.subarray(k * 1024 + (y + 2) * 32 + 2, k * 1024 + (y + 2) * 32 + 30), k * 784 + y * 28);
  return { dims: [n, c, 28, 28], data: out };
}

/** Per-condition validation figures. */
export interface ConditionValidation {
  readonly id: string;
  readonly label: string;
  readonly kind: string;
  readonly target: number | null;
  /** Fraction of seeds whose nearest training image is the target (captions). */
  readonly nearestIsTarget: number | null;
  /** Fraction of seeds passing d1/d2 < 1/3. */
  readonly ratioCopy: number;
  /** Fraction of seeds passing the strict test: d1/d2 < 1/3 and the nearest image is the caption's own (null without a target). */
  readonly strictCopy: number | null;
  /** How many training examples show the condition's image, when the model records it (graded scenario). */
  readonly duplicates: number | null;
  readonly meanRatio: number;
  readonly meanSimilarity: number;
}

/** The strict copy rate of the captions of one duplication count (Carlini et al.: memorization grows with duplication). */
export interface DuplicationRow {
  /** Training examples per caption image. */
  readonly duplicates: number;
  readonly captions: number;
  /** Strict copies (d1/d2 < 1/3 and nearest = own image) over captions × seeds, with its cluster-adjusted 95 % Wilson interval. */
  readonly strict: ClusteredRate;
  /** As printed: rate, interval, n (samples), captions, effective n. */
  readonly text: string;
}

/** The whole validation. */
export interface Validation {
  readonly guidance: string;
  readonly seeds: readonly number[];
  readonly perCondition: readonly ConditionValidation[];
  /** Fraction of captions whose nearest-is-target rate is ≥ `captionThreshold`. */
  readonly captionsMemorized: number;
  readonly captionThreshold: number;
  /** Over all caption samples. */
  readonly captionNearestIsTarget: number;
  readonly captionRatioCopy: number;
  /** Over all caption samples: the strict test (d1/d2 < 1/3 and nearest = own image; Somepalli et al., Dodson & Gao). */
  readonly captionStrictCopy: number;
  /** Strict copy rate per duplication count, ascending (empty when the model records no counts). */
  readonly byDuplicates: readonly DuplicationRow[];
  readonly captionMedianRatio: number;
  readonly captionMeanSimilarity: number;
  /** Over all class-prompt samples. */
  readonly classRatioCopy: number;
  readonly classMeanSimilarity: number;
  /** Fraction of class-prompt samples that the classifier assigns to the prompt's class (null without a classifier). */
  readonly classAccuracy: number | null;
  /** Unconditional samples (an unconditional model, or `uncond` in the selection); null when none was drawn. */
  readonly uncond: UncondValidation | null;
  readonly seconds: number;
  readonly result: SamplingResult;
  readonly copies: readonly CopyStat[];
}

/** The copy figures of the unconditional samples (Dodson & Gao's test: d1/d2 < 1/3 against the training images; no own image). */
export interface UncondValidation {
  /** Samples. */
  readonly n: number;
  /** Samples passing d1/d2 < 1/3 (seeds are independent draws: plain Wilson interval). */
  readonly copies: number;
  /** As printed by {@link rateText}: rate, 95 % Wilson interval, n. */
  readonly text: string;
  readonly medianRatio: number;
  readonly meanSimilarity: number;
  /** Distinct training images among the copies' nearest images (a model that copies one image only is not a memorizer of its pool). */
  readonly distinctCopied: number;
}

/** The strict copy test of one sample: d1/d2 < 1/3 and its nearest training image is the caption's own. */
export function isStrictCopy(c: CopyStat): boolean {
  return c.ratioCopy && c.nearestIsTarget === true;
}

/**
 * Group the captions that record a duplication count by it: per count, strict copies over captions ×
 * seeds with the cluster-adjusted Wilson interval (a caption's seeds are not independent samples).
 */
export function duplicationRows(perCondition: readonly ConditionValidation[], seeds: number): DuplicationRow[] {
  const groups = new Map<number, number[]>();
  for (const p of perCondition) {
    if (p.kind !== 'caption' || p.duplicates === null || p.strictCopy === null) continue;
    const hits = groups.get(p.duplicates) ?? [];
    hits.push(Math.round(p.strictCopy * seeds));
    groups.set(p.duplicates, hits);
  }
  return [...groups.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([duplicates, hits]) => {
      const strict = clusteredRateInterval(hits, seeds);
      const pc = (v: number): string => (100 * v).toFixed(1);
      const text = `${pc(strict.value)} % [${pc(strict.interval.lo)}, ${pc(strict.interval.hi)}] (95 % ${strict.interval.method}; n = ${strict.n} samples of ${hits.length} captions, effective n ${strict.effectiveN.toFixed(1)})`;
      return { duplicates, captions: hits.length, strict, text };
    });
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Run the validation on a trained model (e.g. 32×32, padded: give its codec's `toImageSpace`) against the 28×28 training images. */
export async function validateModel(opts: {
  denoiser: Denoiser;
  trainImages: Tensor;
  /** Model-space samples → images shaped as `trainImages` (the source codec's; default identity). */
  toImageSpace?: (x: Tensor) => Tensor | Promise<Tensor>;
  conds: readonly CondRef[];
  seeds: readonly number[];
  guidance: GuidanceSchedule;
  sampler: SamplerName;
  steps: number;
  config: SchedulerConfig;
  captionThreshold?: number;
  batchSize?: number;
  /** Classifier for the alignment of class-prompt samples, with the class of each condition index. */
  classifier?: { readonly model: Classifier; readonly classOf: (cond: number) => number | null };
}): Promise<Validation> {
  const result = await runSampling({ denoiser: opts.denoiser, conds: opts.conds, seeds: opts.seeds, sampler: opts.sampler, steps: opts.steps, config: opts.config, guidance: opts.guidance, batchSize: opts.batchSize ?? VALIDATE_BATCH });
  return validateSamples({ ...opts, result, guidanceLabel: opts.guidance.label });
}

/** Rows per sampler call of a validation (the sample study's units are batched the same way, so the samples are identical). */
export const VALIDATE_BATCH = 128;

/**
 * Score the samples of a validation run (every condition × seed, in that order — e.g. the sample
 * study's units rebuilt by its `reduce`): copy tests against the 28×28 training images, the
 * per-condition and per-kind figures and the classifier alignment.
 */
export async function validateSamples(opts: {
  denoiser: Denoiser;
  trainImages: Tensor;
  /** Model-space samples → images shaped as `trainImages` (the source codec's, e.g. the 32 → 28 crop; default identity). */
  toImageSpace?: (x: Tensor) => Tensor | Promise<Tensor>;
  conds: readonly CondRef[];
  seeds: readonly number[];
  result: SamplingResult;
  guidanceLabel: string;
  /**
   * The model's training images as row indices of `trainImages` (model.json's `imagePool`): the copy
   * tests then run against these only (Dodson & Gao, Somepalli et al.: the nearest neighbours among
   * the training set); `nn1` stays an index of `trainImages`. Default: every row.
   */
  pool?: readonly number[] | null;
  captionThreshold?: number;
  classifier?: { readonly model: Classifier; readonly classOf: (cond: number) => number | null };
}): Promise<Validation> {
  const d = opts.denoiser;
  const thr = opts.captionThreshold ?? 0.8;
  const result = opts.result;
  const samples = opts.toImageSpace === undefined ? result.samples : await opts.toImageSpace(result.samples);
  const pool = opts.pool ?? null;
  const at = pool === null ? null : new Map(pool.map((img, k) => [img, k] as const));
  const targets = result.rows.map((r) => {
    const t = r.cond === null ? null : (d.conditions[r.cond]!.targets?.[0] ?? null);
    if (t === null || at === null) return t;
    const k = at.get(t);
    if (k === undefined) throw new Error(`validate: the target image ${t} of ${d.conditions[r.cond!]!.id} is not in the model's image pool`);
    return k;
  });
  const det = await CopyDetector.create(pool === null ? opts.trainImages : takeRows(opts.trainImages, pool));
  const poolCopies = await det.stats(samples, targets);
  await det.dispose();
  const copies = pool === null ? poolCopies : poolCopies.map((c) => ({ ...c, nn1: pool[c.nn1]! }));
  const N = opts.seeds.length;
  const perCondition: ConditionValidation[] = opts.conds.map((c, ci) => {
    const cs = copies.slice(ci * N, (ci + 1) * N);
    const info = c === null ? { id: 'uncond', label: '', kind: 'uncond', targets: undefined, duplicates: undefined } : d.conditions[c]!;
    const t = info.targets?.[0] ?? null;
    return {
      id: info.id,
      label: info.label,
      kind: info.kind,
      target: t,
      nearestIsTarget: t === null ? null : cs.filter((x) => x.nearestIsTarget).length / N,
      ratioCopy: cs.filter((x) => x.ratioCopy).length / N,
      strictCopy: t === null ? null : cs.filter(isStrictCopy).length / N,
      duplicates: info.duplicates ?? null,
      meanRatio: cs.reduce((a, x) => a + x.ratio, 0) / N,
      meanSimilarity: cs.reduce((a, x) => a + x.similarity, 0) / N,
    };
  });
  const rowsOf = (kind: string | null): number[] => result.rows.flatMap((r, i) => ((r.cond === null ? null : d.conditions[r.cond]!.kind) === kind ? [i] : []));
  const capIdx = rowsOf('caption');
  const clsIdx = rowsOf('class');
  const frac = (idx: number[], f: (c: CopyStat) => boolean): number => (idx.length ? idx.filter((i) => f(copies[i]!)).length / idx.length : NaN);
  const meanOf = (idx: number[], f: (c: CopyStat) => number): number => (idx.length ? idx.reduce((a, i) => a + f(copies[i]!), 0) / idx.length : NaN);
  const caps = perCondition.filter((p) => p.kind === 'caption');
  const uncIdx = rowsOf(null);
  const uncCopies = uncIdx.filter((i) => copies[i]!.ratioCopy);
  const uncond: UncondValidation | null = uncIdx.length
    ? {
        n: uncIdx.length,
        copies: uncCopies.length,
        text: rateText(uncCopies.length / uncIdx.length, uncIdx.length),
        medianRatio: median(uncIdx.map((i) => copies[i]!.ratio)),
        meanSimilarity: meanOf(uncIdx, (c) => c.similarity),
        distinctCopied: new Set(uncCopies.map((i) => copies[i]!.nn1)).size,
      }
    : null;
  let classAccuracy: number | null = null;
  if (opts.classifier && clsIdx.length) {
    const per = 784;
    const x = new Float32Array(clsIdx.length * per);
    clsIdx.forEach((i, k) => x.set(samples.data.subarray(i * per, (i + 1) * per), k * per));
    const pred = await opts.classifier.model.predict({ dims: [clsIdx.length, 1, 28, 28], data: x });
    classAccuracy = pred.filter((p, k) => p === opts.classifier!.classOf(result.rows[clsIdx[k]!]!.cond!)).length / clsIdx.length;
  }
  return {
    guidance: opts.guidanceLabel,
    seeds: opts.seeds,
    perCondition,
    captionsMemorized: caps.length ? caps.filter((p) => (p.nearestIsTarget ?? 0) >= thr).length / caps.length : NaN,
    captionThreshold: thr,
    captionNearestIsTarget: frac(capIdx, (c) => c.nearestIsTarget === true),
    captionRatioCopy: frac(capIdx, (c) => c.ratioCopy),
    captionStrictCopy: frac(capIdx, isStrictCopy),
    byDuplicates: duplicationRows(perCondition, N),
    captionMedianRatio: median(capIdx.map((i) => copies[i]!.ratio)),
    captionMeanSimilarity: meanOf(capIdx, (c) => c.similarity),
    classRatioCopy: frac(clsIdx, (c) => c.ratioCopy),
    classMeanSimilarity: meanOf(clsIdx, (c) => c.similarity),
    classAccuracy,
    uncond,
    seconds: result.seconds,
    result,
    copies,
  };
}
