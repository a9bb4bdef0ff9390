/**
 * The mitigation evaluation table of Jain et al. 2025 (SPEC §4.5, their Tables 1–4): for each
 * method (see `mitigate/methods.ts`), sample every evaluated prompt with every seed and measure
 *
 * - **copy similarity**: descriptor cosine between each sample and its nearest training image (the
 *   model's own training pool), as the 95th percentile and mean ± std over all samples (their
 *   "Similarity (95pc)" and "Mean ± Std" with SSCD);
 * - **target similarity**: for prompts tied to a training image, the cosine to that image;
 * - **copy rate**: the fraction of samples whose similarity exceeds the threshold — given, or
 *   calibrated as the 99th percentile of the same similarity for held-out real images (the test
 *   split, which no model trained on): "closer to a training image than 99 % of unseen images";
 * - **memorization rate**: the fraction of samples that are copies, with a 95 % Wilson interval at
 *   the prompt-cluster effective n (`analysis/verdict.ts`), "inconclusive" below 10 prompts or
 *   when its threshold was calibrated on fewer than ⌈1/(1 − q)⌉ held-out images. Two definitions:
 *   - Stable Diffusion prompt sets (the papers' code, Wen et al. / Somepalli et al.): a sample
 *     whose descriptor similarity to its prompt's OWN training image exceeds a threshold — SSCD
 *     > 0.5 when the descriptor is SSCD, else the given --threshold or the held-out-calibrated
 *     one. The identity of the nearest image among the list's own images is no test there: with
 *     3 images a random model is "right" 1 time in 3 (a random-weight export scored 66.7 %).
 *   - the embedded / trained testbeds: for a prompt tied to a training image, its nearest
 *     training image in descriptor space is that image (chance 1/pool, the pool being thousands
 *     of Fashion-MNIST images; SPEC §4.5 reads "score > threshold", but on Fashion-MNIST the
 *     nearest-training similarity does not separate copies from unseen images — the held-out
 *     images' median, 0.898 with the learned descriptor, equals that of CFG copies — so where the
 *     memorized image is known, its identity is the test); for other prompts, similarity above the
 *     threshold.
 * - **alignment**: accuracy of memscope's classifier against the prompt's class (class prompts:
 *   the class named; captions: the class of the captioned garment), the testbed analogue of CLIP score;
 * - **quality**: the Fréchet distance between the classifier's 64-d features of the samples and of
 *   the held-out test split (exact matrix square root, `metrics/frechet.ts`), with the floor a set
 *   of real training images of the same size reaches;
 * - **seconds per image**: preparation (prompt encoding, embedding optimisation) plus sampling,
 *   divided by the images, all methods timed in the same process one after the other;
 * - for DTP (and OG + DTP): the fraction of samples whose trajectory never switched to λ (they were
 *   generated without guidance, or with opposite guidance only), with their similarity and
 *   alignment apart from the switched ones.
 *
 * Written as an engine {@link Study}: one unit per method × prompt (every seed of the prompt; Wen
 * et al. optimise on groups of `WEN_GROUP` seeds inside it), keyed by everything that determines
 * its samples; the units of one method share a batch (one preparation, rows of one sampler call).
 * Units already in the store are reused, so a killed run resumes with the units it had not committed.
 */
import { z } from 'zod';
import { SAMPLER_NAMES, samplerTimesteps, type SamplerName } from '../samplers/index.ts';
import type { Study, Unit, UnitOutput, StoredUnit, BlobReader, UnitStore, RunContext } from '../engine/study.ts';
import { unitKey } from '../engine/canonical.ts';
import { InProcessRunner } from '../engine/runner.ts';
import { MemoryStore } from '../engine/memory-store.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import type { Descriptor, DescriptorInfo } from '../metrics/descriptor.ts';
import { l2NormalizeRows } from '../metrics/descriptor.ts';
import { protocolMetrics, type CopyProtocol, type ProtocolMetrics } from '../analysis/protocols.ts';
import { NearestIndex } from '../metrics/nearest.ts';
import { CopyDetector } from '../metrics/copy.ts';
import { gaussianStats, frechetDistance } from '../metrics/frechet.ts';
import { quantileSorted } from '../analysis/correlation.ts';
import { MIN_N, clusteredRateText, judge, minCalibrationImages, type Interval, type Verdict } from '../analysis/verdict.ts';
import { sampleIndices, takeRows } from '../data/indices.ts';
import { mulberry32 } from '../random/mulberry32.ts';
import type { Classifier } from '../models/classifier.ts';
import { type Tensor, numel } from '../tensor/tensor.ts';
import { prepareMethod, isSwitchingMethod, methodLambda, isGatedMethod, parseMethod, type GateParams, type MethodSpec } from '../mitigate/methods.ts';
import { firstStepScores } from './gate.ts';
import { isMemorizedCondition } from '../denoisers/denoiser.ts';
import { decodeNpy, encodeNpy } from '../io/npy.ts';
import { runSampling, initialNoise } from './sampling.ts';
import type { StudySource } from './source.ts';
import { isCfgSampleBatch, isCfgSampleUnit, planCfgSamples, runCfgSampleBatch, type CfgSampleResult, type CfgSampleUnit } from './cfg-sample.ts';
import type { AlignmentScorer, EvaluatedPrompt, FeatureExtractor } from '../metrics/types.ts';

/** Settings of an evaluation. */
export interface EvaluateSettings {
  /** Condition indices evaluated. */
  readonly prompts: readonly number[];
  readonly seeds: readonly number[];
  readonly methods: readonly MethodSpec[];
  /** Guidance scale λ (default 7.5). */
  readonly lambda: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly config: SchedulerConfig;
  /** Rows per sampler call. */
  readonly batchSize: number;
  /** Copy threshold on the similarity; null = calibrate on the held-out split at `calibrationQuantile`. */
  readonly threshold: number | null;
  /** Quantile of the held-out images' nearest-training similarity used as the threshold (default 0.99). */
  readonly calibrationQuantile: number;
  /** Seed of the prompt perturbations and of the Fréchet floor's draw (default 0). */
  readonly runSeed: number;
}

/** Mean ± std and the 95th percentile of the copy similarity. */
export interface SimilarityStats {
  readonly p95: number;
  readonly mean: number;
  readonly std: number;
}

/** A subset of samples (DTP switched / never switched). */
export interface SubsetStats {
  readonly count: number;
  readonly similarityMean: number;
  readonly alignment: number | null;
}

/** One row of the evaluation table. */
export interface MethodRow {
  readonly method: string;
  readonly kind: string;
  readonly images: number;
  readonly similarity: SimilarityStats;
  /** Descriptor cosine between each sample and its prompt's own training image (prompts with a target; null when none has). */
  readonly targetSimilarity: SimilarityStats | null;
  /** Fraction of samples with similarity (to the nearest training image) > threshold. */
  readonly copyRate: number;
  /** Fraction of samples that are copies, by {@link EvaluateResult.memorization}'s definition. */
  readonly memorizationRate: number;
  /** The memorization rate with its interval, n and printed text ("inconclusive (…)" below the minimum n). */
  readonly memorization: RateEstimate;
  /**
   * Strict copies (Somepalli et al., Dodson & Gao): pixel L2 ratio test d1/d2 < 1/3 against the
   * model's training pool, and — for prompts tied to an image — the nearest image is the prompt's
   * own; with its interval. Null where samples and training images differ in shape.
   */
  readonly strict: RateEstimate | null;
  /** The copy rate with its interval, n and printed text. */
  readonly copy: RateEstimate;
  /** Mean alignment score (testbed: classifier accuracy against the prompt's class; null when not measured). */
  readonly alignment: number | null;
  /** Fréchet distance of the quality features to the held-out split (null when not measured). */
  readonly frechet: number | null;
  readonly secondsPerImage: number;
  readonly prepSeconds: number;
  readonly samplingSeconds: number;
  /** Paired margins against the `cfg` row (null when there is none, or for it): Δ p95 of the similarity to the nearest training image and of the own-image similarity. */
  readonly vsCfg: { readonly similarityP95: QuantileMargin; readonly targetSimilarityP95: QuantileMargin | null } | null;
  /** DTP / OG + DTP only: never-switched vs switched samples. */
  readonly switching: { readonly neverFraction: number; readonly never: SubsetStats; readonly switched: SubsetStats; readonly meanSwitchStep: number | null } | null;
  /** What the method's preparation did. */
  readonly details: Record<string, unknown>;
  /** The numbers of the copy-detection protocol (`--protocol`), or null without one. */
  readonly protocol?: ProtocolMetrics | null;
  /** A gated method's detection: which prompts it mitigated, by the prompts' ground truth; null for other methods. */
  readonly gate?: GateSummary | null;
}

/** What the gate of a `gated+M` row did. */
export interface GateSummary {
  readonly threshold: number;
  readonly fpr: number | null;
  readonly calibrationPrompts: number | null;
  /** Prompts flagged (mitigated with M) of the evaluated ones, with its interval. */
  readonly flagged: RateEstimate;
  /** Among the evaluated prompts the model labels memorized / not memorized: flagged of all. */
  readonly memorized: { readonly flagged: number; readonly of: number };
  readonly normal: { readonly flagged: number; readonly of: number };
  readonly text: string;
}

/** What an evaluation produced. */
export interface EvaluateResult {
  readonly prompts: readonly EvaluatedPrompt[];
  /** What the alignment and quality columns were measured with (null: not measured). */
  readonly alignmentName: string | null;
  /** Unit of the alignment column: a `'fraction'` (classifier accuracy) or a `'score'` (CLIP score, 0–100). */
  readonly alignmentUnit: 'fraction' | 'score';
  readonly qualityName: string | null;
  readonly descriptor: DescriptorInfo;
  /** The copy-detection protocol whose numbers the rows carry (`--protocol`), or null. */
  readonly protocol?: CopyProtocol | null;
  /** The copy threshold: given, or the `quantile` of `heldOut` images' nearest-training similarity (adequate only from `minHeldOut` = ⌈1/(1 − q)⌉ images). */
  readonly threshold: { readonly value: number; readonly calibrated: boolean; readonly quantile: number | null; readonly heldOut: number; readonly minHeldOut: number | null; readonly text: string };
  /** How a sample is counted as memorized, in words and numbers. */
  readonly memorization: MemorizationDefinition;
  /** Training images the similarity is measured against. */
  readonly poolSize: number;
  /** Fréchet reference: held-out images, and the floor a same-size set of real training images reaches (null when not measured). */
  readonly reference: { readonly heldOut: number; readonly floor: number | null; readonly floorImages: number };
  readonly rows: readonly MethodRow[];
  /** Per method, the samples `[P·N, 1, 28, 28]` (row = prompt-major, seed-minor). */
  readonly samples: ReadonlyMap<string, Tensor>;
  /** Per method, per sample: the similarity to the nearest training image. */
  readonly similarities: ReadonlyMap<string, Float64Array>;
  /** Per method, per sample of a prompt with a training image: the similarity to that image (rows in order). */
  readonly targetSimilarities: ReadonlyMap<string, Float64Array>;
}

/** A rate with its interval and n, as printed. */
export interface RateEstimate {
  readonly value: number;
  readonly interval: Interval;
  readonly samples: number;
  readonly prompts: number;
  /** Prompt-cluster design effect of the interval. */
  readonly designEffect: number;
  /** "12.5 % [3.1, 38.0] (16 samples of 4 prompts)", or with ": inconclusive (…)" below the minimum n. */
  readonly text: string;
}

/** The definition of "memorized" an evaluation used. */
export interface MemorizationDefinition {
  /** `own-similarity`: similarity to the prompt's own training image > threshold (SD prompt sets); `nearest-is-own`: the nearest training image is the prompt's own (testbeds). */
  readonly rule: 'own-similarity' | 'nearest-is-own';
  /** The similarity threshold (own-similarity; and prompts without an own image). */
  readonly threshold: number;
  /** Where it comes from: the papers' SSCD 0.5, the user's --threshold, or the held-out calibration. */
  readonly thresholdSource: 'sscd-paper' | 'given' | 'calibrated';
  /** Whether the threshold rests on enough data (false: calibrated on fewer than ⌈1/(1 − q)⌉ held-out images). */
  readonly adequate: boolean;
  /** Chance level of the nearest-is-own rule (1 / training pool), null for own-similarity. */
  readonly chance: number | null;
  /** The definition in one sentence, for the table. */
  readonly text: string;
}

/** Tools the evaluation measures with. */
export interface EvaluateTools {
  readonly descriptor: Descriptor;
  /** Features of the Fréchet distance (testbed: {@link classifierTools}); null skips the column. */
  readonly quality: FeatureExtractor | null;
  /** Per-sample alignment with the prompt (testbed: classifier correct = 1 / wrong = 0); null skips the column. */
  readonly alignment: AlignmentScorer | null;
  /** Held-out real images `[n, ...]` like the training images (threshold calibration, Fréchet reference); default the embedded test split. */
  readonly heldOut?: Tensor;
  /** A copy-detection protocol (issue 20 §2) whose numbers are added per method; the descriptor must use its preprocessing. */
  readonly protocol?: CopyProtocol;
}

/**
 * The testbed's quality features and alignment from memscope's classifier: its 64-d penultimate
 * features, and 1 when the predicted class is the prompt's class, else 0 (mean = accuracy).
 */
export function classifierTools(classifier: Classifier): { quality: FeatureExtractor; alignment: AlignmentScorer } {
  return {
    quality: { name: 'memscope classifier, 64-d penultimate features', features: (x) => classifier.features(x) },
    alignment: {
      name: 'memscope classifier accuracy against the prompt\'s class',
      score: async (x, prompts) => {
        if (prompts.some((p) => p.classLabel === null)) return null;
        const pred = await classifier.predict(x);
        return pred.map((c, r) => (c === prompts[r]!.classLabel ? 1 : 0));
      },
    },
  };
}

interface MethodSamples {
  readonly samples: Tensor;
  readonly switchSteps: readonly (number | null)[];
  readonly prepSeconds: number;
  readonly samplingSeconds: number;
  readonly details: Record<string, unknown>;
}

/** One unit of an evaluation: one method on one prompt with every evaluated seed. */
export interface EvaluateUnit {
  readonly method: MethodSpec;
  readonly cond: number;
  readonly condId: string;
  readonly seeds: readonly number[];
  readonly lambda: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly config: SchedulerConfig;
  readonly runSeed: number;
}

/** What a unit stores besides its `samples.npy` blob (`[N, ...image shape]`, the samples in image space, seed order). */
export interface EvaluateUnitResult {
  /** Per seed: the step at which a switching method switched to λ (null: never, or not a switching method). */
  readonly switchSteps: (number | null)[];
  /** This unit's share of its batch's preparation and sampling seconds (the batch's time ÷ its units). */
  readonly prepSeconds: number;
  readonly samplingSeconds: number;
  /** What the method's preparation did, for this prompt (per-prompt entries of `perturbed` / `optimisation` only). */
  readonly details: Record<string, unknown>;
}

/** What an evaluation's units are planned and run over. */
export interface EvaluateSource {
  readonly src: StudySource;
  /** What identifies the model's weights (`study/fingerprint.ts`); part of every unit key (default: the source's spec and denoiser name). */
  readonly fingerprint: unknown;
  /** Rows per sampler call (speed only). */
  readonly batchSize: number;
  readonly log?: (m: string) => void;
}

/** What a unit records (part of its key). */
const EVALUATE_RECORDS = { samples: 'image space', switchSteps: true };

/** A planned unit of an evaluation: a method × prompt unit, or (for plain `cfg` rows) the CFG sampling unit shared with `detect`. */
export type EvaluatePlannedUnit = EvaluateUnit | CfgSampleUnit;
/** What a planned unit of an evaluation stores. */
export type EvaluatePlannedResult = EvaluateUnitResult | CfgSampleResult;

/**
 * λ of a method that samples plain constant CFG with the model as it is (`cfg`, `cfg:λ`, `constant:λ`:
 * no preparation, no switch), whose units are the shared CFG sampling units; null for every other method.
 */
export function plainCfgLambda(m: MethodSpec, scale: number): number | null {
  return m.kind === 'cfg' ? (methodLambda(m) ?? scale) : null;
}

/** The shared CFG sampling units of a plain `cfg` method (prompt order). */
function cfgUnitsOf(s: EvaluateSettings, source: EvaluateSource, lambda: number): Unit<CfgSampleUnit>[] {
  return planCfgSamples({ prompts: s.prompts, seeds: s.seeds, lambda, sampler: s.sampler, steps: s.steps, config: s.config }, source.src, source.fingerprint);
}

/**
 * The units of an evaluation, method-major then prompt (the order of the table). A unit's key holds
 * the model fingerprint, the condition (id, label, targets), the seeds, sampler, steps, scheduler
 * config, the method (kind and parameters), λ, the run seed and what is recorded; units of one
 * method with the same settings share a batch (one preparation, rows of one sampler call, as an
 * evaluation always sampled them). A plain `cfg` method's units are the CFG sampling units shared
 * with `detect` (`study/cfg-sample.ts`: no run seed in their key, planned once when two methods
 * sample the same λ).
 */
export function planEvaluation(s: EvaluateSettings, source: EvaluateSource): Unit<EvaluatePlannedUnit>[] {
  const d = source.src.denoiser;
  const units: Unit<EvaluatePlannedUnit>[] = [];
  const planned = new Set<string>();
  for (const m of s.methods) {
    const cfgLambda = plainCfgLambda(m, s.lambda);
    if (cfgLambda !== null) {
      for (const u of cfgUnitsOf(s, source, cfgLambda)) {
        if (planned.has(u.key)) continue;
        planned.add(u.key);
        units.push(u);
      }
      continue;
    }
    const method: MethodSpec = { kind: m.kind, name: m.name, params: m.params };
    const shared = { model: source.fingerprint, seeds: s.seeds, sampler: s.sampler, steps: s.steps, config: s.config, method: { kind: m.kind, params: m.params }, lambda: s.lambda, runSeed: s.runSeed, records: EVALUATE_RECORDS };
    const batch = unitKey('evaluate-batch', shared);
    for (const cond of s.prompts) {
      const info = d.conditions[cond];
      if (info === undefined) throw new Error(`--prompts: condition index ${cond} is out of range (0..${d.conditions.length - 1})`);
      const spec: EvaluateUnit = { method, cond, condId: info.id, seeds: [...s.seeds], lambda: s.lambda, sampler: s.sampler, steps: s.steps, config: s.config, runSeed: s.runSeed };
      units.push({ key: unitKey('evaluate', { ...shared, condition: { id: info.id, label: info.label, targets: info.targets ?? [] } }), spec, batch });
    }
  }
  return units;
}

/** The prompt text of condition `c` as the prompt perturbations key their `perturbed` record (null when the model has no texts). */
function promptText(src: StudySource, c: number): string | null {
  return src.capabilities.text?.texts[c] ?? null;
}

/** The part of a batch's preparation details that concerns prompt `c` (per-prompt records filtered; the rest as is). */
function unitDetails(details: Record<string, unknown>, src: StudySource, c: number): Record<string, unknown> {
  const out: Record<string, unknown> = { ...details };
  const perturbed = details['perturbed'];
  if (perturbed !== null && typeof perturbed === 'object') {
    const text = promptText(src, c);
    const p = perturbed as Record<string, string>;
    out['perturbed'] = text !== null && text in p ? { [text]: p[text]! } : {};
  }
  const opt = details['optimisation'];
  if (Array.isArray(opt)) out['optimisation'] = (opt as { cond: number }[]).filter((o) => o.cond === c);
  return out;
}

type WenRecord = { cond: number; seeds: number[]; iterations: number; firstLoss: number; lastLoss: number; reachedTarget: boolean };

/** The details of a method row from its units' (in prompt order): per-prompt records merged back in the order one preparation writes them. */
function mergeDetails(parts: readonly Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...parts[0] };
  // a gated row: every prompt's score and decision, in prompt order
  if (parts.some((p) => p['gate'] !== undefined)) {
    out['gate'] = parts.map((p) => p['gate'] ?? null);
    out['applied'] = parts.map((p) => p['applied'] ?? null);
  }
  if (parts.some((p) => p['perturbed'] !== undefined)) out['perturbed'] = Object.assign({}, ...parts.map((p) => p['perturbed'] ?? {})) as Record<string, string>;
  if (parts.some((p) => Array.isArray(p['optimisation']))) {
    // one preparation writes seed group by seed group, prompts in order within each
    const optimisation = parts.flatMap((p, i) => ((p['optimisation'] ?? []) as WenRecord[]).map((o) => ({ o, i })));
    optimisation.sort((a, b) => (a.o.seeds[0] ?? 0) - (b.o.seeds[0] ?? 0) || a.i - b.i);
    const list = optimisation.map((x) => x.o);
    const iters = list.map((o) => o.iterations);
    out['meanIterations'] = iters.reduce((a, b) => a + b, 0) / Math.max(1, iters.length);
    out['reachedTarget'] = list.filter((o) => o.reachedTarget).length / Math.max(1, list.length);
    out['meanFirstLoss'] = list.reduce((a, o) => a + o.firstLoss, 0) / Math.max(1, list.length);
    out['optimisation'] = list;
  }
  return out;
}

/** What sampling one method on some prompts gave: rows prompt-major, seed-minor. */
interface SampledRows {
  readonly samples: Tensor;
  readonly switchSteps: (number | null)[];
  readonly prepSeconds: number;
  readonly samplingSeconds: number;
  readonly details: Record<string, unknown>;
}

/** Sample method `m` on `conds` × the unit's seeds: one preparation, one sampler run per part. */
async function sampleMethodRows(m: MethodSpec, conds: readonly number[], u0: EvaluateUnit, source: EvaluateSource): Promise<SampledRows> {
  const src = source.src;
  const d = src.denoiser;
  const N = u0.seeds.length;
  const P = conds.length;
  const noise = initialNoise(d.shape, u0.seeds);
  const firstTimestep = samplerTimesteps(u0.sampler, u0.config, u0.steps)[0]!;
  const prepared = await prepareMethod(m, { denoiser: d, capabilities: src.capabilities, classOf: src.data.classOf, lambda: u0.lambda, conds, noise, firstTimestep, runSeed: u0.runSeed });
  let samples: Tensor | null = null;
  const switchSteps: (number | null)[] = new Array<number | null>(P * N).fill(null);
  let samplingSeconds = 0;
  try {
    for (const part of prepared.parts) {
      const seeds = part.seedIndices.map((i) => u0.seeds[i]!);
      const r = await runSampling({ denoiser: part.denoiser, conds, seeds, sampler: u0.sampler, steps: u0.steps, config: u0.config, guidance: prepared.guidance, batchSize: source.batchSize });
      samplingSeconds += r.seconds;
      const img = await src.toImageSpace(r.samples);
      const per = numel(img.dims.slice(1));
      samples ??= { dims: [P * N, ...img.dims.slice(1)], data: new Float32Array(P * N * per) };
      const n = seeds.length;
      for (let p = 0; p < P; p++) {
        for (let j = 0; j < n; j++) {
          const row = p * N + part.seedIndices[j]!;
          samples.data.set(img.data.subarray((p * n + j) * per, (p * n + j + 1) * per), row * per);
          switchSteps[row] = r.switchSteps[p * n + j] ?? null;
        }
      }
    }
  } finally {
    await prepared.dispose();
  }
  return { samples: samples!, switchSteps, prepSeconds: prepared.seconds, samplingSeconds, details: prepared.details };
}

/**
 * The CFG samples `[N, ...image shape]` of prompt `cond` under the unit's settings from the shared
 * CFG sampling unit in the store (with the seconds it took), or null when the store has none.
 */
async function storedCfgSamples(cond: number, u0: EvaluateUnit, source: EvaluateSource, store?: RunContext<unknown>['store']): Promise<{ samples: Tensor; samplingSeconds: number } | null> {
  if (store === undefined) return null;
  const [planned] = planCfgSamples({ prompts: [cond], seeds: u0.seeds, lambda: u0.lambda, sampler: u0.sampler, steps: u0.steps, config: u0.config }, source.src, source.fingerprint);
  const u = await store.get<CfgSampleUnit, CfgSampleResult>(planned!.key);
  if (u === undefined) return null;
  const b = await store.readBlob(u as StoredUnit<unknown, unknown>, 'samples.npy');
  return { samples: decodeNpy(Buffer.from(b.buffer, b.byteOffset, b.byteLength), `cfg ${u.spec.condId} samples.npy`), samplingSeconds: u.result.samplingSeconds };
}

/** The gate's record of one prompt in a gated unit's details. */
interface GateRecord {
  readonly score: number;
  readonly threshold: number;
  readonly flagged: boolean;
}

/** Sample a batch of units (one method, one setting, several prompts): one preparation, rows prompt-major, as one evaluation row. */
async function runEvaluateBatch(units: readonly Unit<EvaluateUnit>[], source: EvaluateSource, store?: RunContext<unknown>['store']): Promise<UnitOutput<EvaluateUnitResult>[]> {
  const src = source.src;
  const u0 = units[0]!.spec;
  const m = u0.method;
  const conds = units.map((u) => u.spec.cond);
  const N = u0.seeds.length;
  const P = conds.length;
  // a gated method: score every prompt at the first step, mitigate the flagged ones, plain CFG for the rest
  const gate = isGatedMethod(m) ? (m.params as unknown as GateParams) : null;
  let gates: GateRecord[] | null = null;
  const groups: { method: MethodSpec; idx: number[] }[] = [];
  const reused = new Map<number, { samples: Tensor; samplingSeconds: number }>();
  let gateSeconds = 0;
  if (gate !== null) {
    if (gate.threshold === null) throw new Error(`${m.name}: its threshold was not calibrated (memscope evaluate calibrates it on held-out prompts)`);
    const t0 = performance.now();
    const scores = await firstStepScores({ denoiser: src.denoiser, conds, seeds: u0.seeds, sampler: u0.sampler, steps: u0.steps, config: u0.config, lambda: u0.lambda, batchSize: source.batchSize });
    gateSeconds = (performance.now() - t0) / 1000;
    gates = scores.map((score) => ({ score, threshold: gate.threshold!, flagged: score > gate.threshold! }));
    const flagged = conds.map((_, p) => p).filter((p) => gates![p]!.flagged);
    // unflagged prompts sample plain CFG: the shared CFG sampling unit's samples when the store has them
    const plain: number[] = [];
    for (const p of conds.map((_, q) => q).filter((q) => !gates![q]!.flagged)) {
      const found = await storedCfgSamples(conds[p]!, u0, source, store);
      if (found === null) plain.push(p);
      else reused.set(p, found);
    }
    if (flagged.length) groups.push({ method: gate.inner, idx: flagged });
    if (plain.length) groups.push({ method: parseMethod('cfg'), idx: plain });
  } else {
    groups.push({ method: m, idx: conds.map((_, p) => p) });
  }
  let samples: Tensor | null = null;
  const switchSteps: (number | null)[] = new Array<number | null>(P * N).fill(null);
  const detailsOf: Record<string, unknown>[] = conds.map(() => ({}));
  let prepSeconds = gateSeconds;
  let samplingSeconds = 0;
  for (const g of groups) {
    const r = await sampleMethodRows(g.method, g.idx.map((p) => conds[p]!), u0, source);
    prepSeconds += r.prepSeconds;
    samplingSeconds += r.samplingSeconds;
    const per = numel(r.samples.dims.slice(1));
    samples ??= { dims: [P * N, ...r.samples.dims.slice(1)], data: new Float32Array(P * N * per) };
    g.idx.forEach((p, k) => {
      samples!.data.set(r.samples.data.subarray(k * N * per, (k + 1) * N * per), p * N * per);
      for (let n = 0; n < N; n++) switchSteps[p * N + n] = r.switchSteps[k * N + n] ?? null;
      detailsOf[p] = unitDetails(r.details, src, conds[p]!);
    });
  }
  for (const [p, r] of reused) {
    const per = numel(r.samples.dims.slice(1));
    samples ??= { dims: [P * N, ...r.samples.dims.slice(1)], data: new Float32Array(P * N * per) };
    samples.data.set(r.samples.data, p * N * per);
    samplingSeconds += r.samplingSeconds;
    detailsOf[p] = {};
  }
  source.log?.(`${m.name}: ${P * N} images, ${((prepSeconds + samplingSeconds) / (P * N)).toFixed(3)} s/image${gates ? `; ${gates.filter((x) => x.flagged).length} of ${P} prompts flagged and mitigated${reused.size ? ` (${reused.size} unflagged prompts' CFG samples from the store)` : ''}` : ''}`);
  const all = samples!;
  const shape = all.dims.slice(1);
  const per = numel(shape);
  return units.map((_, p) => ({
    result: {
      switchSteps: switchSteps.slice(p * N, (p + 1) * N),
      prepSeconds: prepSeconds / P,
      samplingSeconds: samplingSeconds / P,
      details: gates === null ? detailsOf[p]! : { ...detailsOf[p]!, gate: gates[p]!, applied: gates[p]!.flagged ? gate!.inner.name : 'cfg' },
    },
    blobs: [{ name: 'samples.npy', bytes: encodeNpy({ dims: [N, ...shape], data: all.data.slice(p * N * per, (p + 1) * N * per) }) }],
  }));
}

/**
 * A method's stored units (prompt order) as method × prompt units: a shared CFG sampling unit reads
 * as a `cfg` unit (no switch, no preparation, no details).
 */
function methodUnitsOf(m: MethodSpec, s: EvaluateSettings, source: EvaluateSource, stored: readonly StoredUnit<EvaluatePlannedUnit, EvaluatePlannedResult>[]): StoredUnit<EvaluateUnit, EvaluateUnitResult>[] {
  const cfgLambda = plainCfgLambda(m, s.lambda);
  if (cfgLambda === null) return stored.filter((u): u is StoredUnit<EvaluateUnit, EvaluateUnitResult> => !isCfgSampleUnit(u.spec) && u.spec.method.name === m.name);
  const byKey = new Map(stored.map((u) => [u.key, u]));
  return cfgUnitsOf(s, source, cfgLambda).flatMap((p) => {
    const u = byKey.get(p.key);
    if (u === undefined || !isCfgSampleUnit(u.spec)) return [];
    const r = u.result as CfgSampleResult;
    const spec: EvaluateUnit = { method: m, cond: u.spec.cond, condId: u.spec.condId, seeds: u.spec.seeds, lambda: s.lambda, sampler: u.spec.sampler, steps: u.spec.steps, config: u.spec.config, runSeed: s.runSeed };
    return [{ ...u, spec, result: { switchSteps: u.spec.seeds.map(() => null), prepSeconds: 0, samplingSeconds: r.samplingSeconds, details: {} } }];
  });
}

/** A method row's samples from its stored units (prompt order): rows prompt-major, seed-minor. */
async function methodSamplesOf(units: readonly StoredUnit<EvaluateUnit, EvaluateUnitResult>[], blobs: BlobReader): Promise<MethodSamples> {
  const parts: Tensor[] = [];
  for (const u of units) {
    const b = await blobs.readBlob(u as StoredUnit<unknown, unknown>, 'samples.npy');
    parts.push(decodeNpy(Buffer.from(b.buffer, b.byteOffset, b.byteLength), `${u.spec.method.name} ${u.spec.condId} samples.npy`));
  }
  const per = numel(parts[0]!.dims.slice(1));
  const rows = parts.reduce((a, t) => a + t.dims[0]!, 0);
  const data = new Float32Array(rows * per);
  let at = 0;
  for (const t of parts) {
    data.set(t.data, at);
    at += t.data.length;
  }
  return {
    samples: { dims: [rows, ...parts[0]!.dims.slice(1)], data },
    switchSteps: units.flatMap((u) => u.result.switchSteps),
    prepSeconds: units.reduce((a, u) => a + u.result.prepSeconds, 0),
    samplingSeconds: units.reduce((a, u) => a + u.result.samplingSeconds, 0),
    details: mergeDetails(units.map((u) => u.result.details)),
  };
}
/** Cosine similarity of each query embedding to its nearest row of the index (unit rows: cos = 1 − ‖a − b‖²/2). */
async function nearestCosine(index: NearestIndex, unitQueries: Tensor): Promise<{ sim: Float64Array; nn: Int32Array }> {
  const n = unitQueries.dims[0]!;
  const sim = new Float64Array(n);
  const nn = new Int32Array(n);
  const dim = unitQueries.dims[1]!;
  const chunk = 512;
  for (let a = 0; a < n; a += chunk) {
    const b = Math.min(n, a + chunk);
    const r = await index.query({ dims: [b - a, dim], data: unitQueries.data.subarray(a * dim, b * dim) }, 1);
    for (let i = 0; i < b - a; i++) {
      sim[a + i] = 1 - r.dist2[i]! / 2;
      nn[a + i] = r.index[i]!;
    }
  }
  return { sim, nn };
}

function meanStd(v: ArrayLike<number>): { mean: number; std: number } {
  const n = v.length;
  if (n === 0) return { mean: NaN, std: NaN };
  let m = 0;
  for (let i = 0; i < n; i++) m += v[i]!;
  m /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (v[i]! - m) ** 2;
  return { mean: m, std: n > 1 ? Math.sqrt(ss / (n - 1)) : 0 };
}

/** Mean ± std (sample std, n − 1) and the numpy-style 95th percentile of `v`. */
export function similarityStats(v: ArrayLike<number>): SimilarityStats {
  const sorted = Float64Array.from(v).sort();
  return { p95: quantileSorted(sorted, 0.95), ...meanStd(v) };
}

/** A paired difference of quantiles between two methods with a prompt-cluster bootstrap interval. */
export interface QuantileMargin {
  /** Q_q(b) − Q_q(a) over all samples. */
  readonly delta: number;
  /** Percentile-bootstrap interval of the difference (prompts resampled with replacement, both methods with the same draw). */
  readonly lo: number;
  readonly hi: number;
  readonly q: number;
  readonly level: number;
  readonly resamples: number;
  /** Prompts resampled (the interval's n). */
  readonly prompts: number;
}

/**
 * Q_q(b) − Q_q(a) for per-sample values of two methods on the same prompts × seeds (prompt-major,
 * `N` seeds per prompt) with a seeded percentile-bootstrap interval that resamples whole prompts
 * (seeds of a prompt are not independent). Defaults: q = 0.95, 2,000 resamples, level 0.95, seed 0.
 */
export function quantileMargin(a: ArrayLike<number>, b: ArrayLike<number>, N: number, opts: { q?: number; resamples?: number; level?: number; seed?: number } = {}): QuantileMargin {
  const q = opts.q ?? 0.95;
  const B = opts.resamples ?? 2000;
  const level = opts.level ?? 0.95;
  if (a.length !== b.length || a.length === 0 || a.length % N !== 0) throw new Error(`quantileMargin: need two equal, non-empty arrays of P·N values (N = ${N}), got ${a.length} and ${b.length}`);
  const P = a.length / N;
  const qOf = (v: Float64Array): number => quantileSorted(v.sort(), q);
  const delta = qOf(Float64Array.from(b)) - qOf(Float64Array.from(a));
  const rnd = mulberry32(opts.seed ?? 0);
  const diffs = new Float64Array(B);
  const xa = new Float64Array(P * N);
  const xb = new Float64Array(P * N);
  for (let r = 0; r < B; r++) {
    for (let p = 0; p < P; p++) {
      const src = Math.floor(rnd() * P);
      for (let j = 0; j < N; j++) {
        xa[p * N + j] = a[src * N + j]!;
        xb[p * N + j] = b[src * N + j]!;
      }
    }
    diffs[r] = qOf(xb) - qOf(xa);
  }
  diffs.sort();
  const tail = (1 - level) / 2;
  return { delta, lo: quantileSorted(diffs, tail), hi: quantileSorted(diffs, 1 - tail), q, level, resamples: B, prompts: P };
}

/** A gated row's detection summary from its units' gate records (prompt order) and the prompts' ground truth. */
function gateSummary(m: MethodSpec, gates: readonly { flagged: boolean }[], memorized: readonly boolean[]): GateSummary {
  const g = m.params as unknown as GateParams;
  const hits: number[] = gates.map((x) => (x.flagged ? 1 : 0));
  const flagged = rateEstimate(hits, 1, null, null);
  const count = (want: boolean) => ({ flagged: hits.filter((h, i) => memorized[i] === want && h === 1).length, of: memorized.filter((x) => x === want).length });
  const mem = count(true);
  const normal = count(false);
  const text =
    `${m.name}: ${g.inner.name} applied to ${hits.reduce((a, b) => a + b, 0)} of ${gates.length} prompts (detection rate ${flagged.text.replace(/ \(\d+ samples of (\d+) prompts\)/, ' (n = $1 prompts)')}; ` +
    `memorized prompts flagged ${mem.flagged}/${mem.of}, non-memorized ${normal.flagged}/${normal.of}), plain CFG for the rest; ` +
    `threshold ${g.threshold!.toFixed(4)} on Wen et al.'s first-step score (the ${g.fpr === null ? '?' : 1 - g.fpr} quantile of ${g.calibrationPrompts ?? '?'} held-out non-memorized prompts)`;
  return { threshold: g.threshold!, fpr: g.fpr, calibrationPrompts: g.calibrationPrompts, flagged, memorized: mem, normal, text };
}

/** The printed rate: value, 95 % cluster-adjusted Wilson interval and n; "inconclusive" below the minimum prompts or with an under-calibrated threshold. */
function rateEstimate(hitsPerPrompt: readonly number[], seedsPerPrompt: number, heldOutShort: number | null, minHeldOut: number | null): RateEstimate {
  const c = clusteredRateText(hitsPerPrompt, seedsPerPrompt, 'samples', heldOutShort === null ? null : `threshold from n_heldout = ${heldOutShort} < ${minHeldOut}`);
  return { value: c.value, interval: c.interval, samples: c.n, prompts: c.clusters, designEffect: c.designEffect, text: c.text };
}

/** Whether two image batches have the same per-row shape (pixel comparison possible). */
function sameRowShape(a: Tensor, b: Tensor): boolean {
  return a.dims.length === b.dims.length && a.dims.slice(1).every((v, i) => v === b.dims[i + 1]);
}

/** The papers' SSCD copy threshold (Somepalli et al. 2023; Wen et al. 2024: "SSCD similarity > 0.5"). */
export const SSCD_COPY_THRESHOLD = 0.5;

/**
 * Which definition of "memorized" applies. Stable Diffusion prompt sets: similarity to the prompt's
 * own training image above a threshold — the given `--threshold`, else SSCD 0.5 with an SSCD
 * descriptor, else the held-out-calibrated copy threshold. Embedded / trained testbeds: the
 * nearest training image is the prompt's own (chance 1/pool).
 */
export function memorizationDefinition(sd: boolean, sscd: boolean, given: number | null, copyThreshold: number, copyAdequate: boolean, pool: number, copyThresholdText: string): MemorizationDefinition {
  if (sd) {
    const source: MemorizationDefinition['thresholdSource'] = given !== null ? 'given' : sscd ? 'sscd-paper' : 'calibrated';
    const threshold = source === 'sscd-paper' ? SSCD_COPY_THRESHOLD : copyThreshold;
    const from = source === 'sscd-paper' ? 'SSCD > 0.5, as Wen et al. and Somepalli et al.' : source === 'given' ? `--threshold ${threshold}` : `the calibrated copy threshold ${copyThresholdText}`;
    return {
      rule: 'own-similarity',
      threshold,
      thresholdSource: source,
      adequate: source !== 'calibrated' || copyAdequate,
      chance: null,
      text: `a sample is memorized when its descriptor similarity to its prompt's own training image exceeds ${threshold.toFixed(4)} (${from}); prompts without an image: similarity to the nearest training image above it`,
    };
  }
  return {
    rule: 'nearest-is-own',
    threshold: copyThreshold,
    thresholdSource: given !== null ? 'given' : 'calibrated',
    adequate: given !== null || copyAdequate,
    chance: 1 / pool,
    text: `a sample of a prompt tied to a training image is memorized when its nearest training image (descriptor) is that image (chance 1/${pool} = ${(100 / pool).toPrecision(2)} %); other prompts: similarity above the copy threshold ${copyThresholdText}`,
  };
}

/** "lowers the p95 similarity vs cfg", judged by the prompt-bootstrap interval of Δ p95 with at least {@link MIN_N}.bootstrapPrompts prompts. */
export function marginVerdict(what: string, m: QuantileMargin): Verdict {
  return judge({ claim: `lowers the ${what} vs cfg`, value: m.delta, interval: { lo: m.lo, hi: m.hi, level: m.level, method: 'prompt bootstrap' }, n: m.prompts, nLabel: 'prompts', minN: MIN_N.bootstrapPrompts, side: { below: 0 } });
}

/**
 * Check an evaluation's inputs before anything is sampled or written (the errors name the flag).
 * Returns the evaluated prompts and the held-out images (null: none, the threshold is given).
 */
export function checkEvaluation(src: StudySource, s: EvaluateSettings, tools: EvaluateTools): { prompts: EvaluatedPrompt[]; heldOut: Tensor | null } {
  const d = src.denoiser;
  if (s.prompts.length === 0) throw new Error('--prompts: no prompt to evaluate');
  if (s.seeds.length === 0) throw new Error('--seeds: need at least one seed');
  if (s.methods.length === 0) throw new Error('--methods: need at least one method');
  if (!(s.calibrationQuantile > 0 && s.calibrationQuantile < 1)) throw new Error(`--calibration: expected a quantile in (0, 1), got ${s.calibrationQuantile}`);
  if (s.threshold !== null && !Number.isFinite(s.threshold)) throw new Error(`--threshold: expected a finite number, got ${s.threshold}`);
  const prompts: EvaluatedPrompt[] = s.prompts.map((c) => {
    const info = d.conditions[c];
    if (info === undefined) throw new Error(`--prompts: condition index ${c} is out of range (0..${d.conditions.length - 1})`);
    return { cond: c, id: info.id, label: info.label, classLabel: src.data.classOf(c), target: info.targets?.[0] ?? null };
  });
  const R = prompts.length * s.seeds.length;
  if (tools.quality && R < 2) throw new Error(`--seeds: the Fréchet distance (${tools.quality.name}) needs at least 2 samples per method (a covariance); --prompts gives ${prompts.length} and --seeds ${s.seeds.length}: ${prompts.length} × ${s.seeds.length} = ${R}`);
  // a Stable Diffusion source has no embedded held-out split: the user gives one (--held-out) or a threshold
  const heldOut = tools.heldOut ?? src.data.heldOut?.load() ?? null;
  if (heldOut === null && s.threshold === null) throw new Error('--held-out: a Stable Diffusion export needs held-out real images (a folder) to calibrate the copy threshold, or give --threshold');
  if (heldOut === null && tools.quality) throw new Error(`--held-out: the Fréchet distance (${tools.quality.name}) needs held-out real images as its reference (a folder)`);
  return { prompts, heldOut };
}

/** The zod schema of an evaluation's settings (defaults here; the scheduler config is the source's). */
export const EvaluateSpecSchema = z.object({
  prompts: z.array(z.number().int().nonnegative()).min(1),
  seeds: z.array(z.number().int().nonnegative()).min(1),
  methods: z.array(z.object({ kind: z.string(), name: z.string(), params: z.record(z.string(), z.unknown()) })).min(1),
  lambda: z.number().finite().default(7.5),
  sampler: z.enum(SAMPLER_NAMES as unknown as [SamplerName, ...SamplerName[]]).default('ddim'),
  steps: z.number().int().min(1).max(1000).default(50),
  config: z.custom<SchedulerConfig>((v) => typeof v === 'object' && v !== null, 'expected a scheduler config'),
  batchSize: z.number().int().min(1).default(128),
  threshold: z.number().finite().nullable().default(null),
  calibrationQuantile: z.number().gt(0).lt(1).default(0.99),
  runSeed: z.number().int().nonnegative().default(0),
});

/**
 * The evaluation as an engine {@link Study}: units from {@link planEvaluation}, a batch sampled by
 * one preparation of its method, `reduce` = the table's metrics measured with `tools` (the
 * descriptor, quality features and alignment scorer, which are not part of any unit).
 */
export function evaluateStudy(source: EvaluateSource, tools: EvaluateTools): Study<EvaluateSettings, EvaluatePlannedUnit, EvaluatePlannedResult, EvaluateResult, EvaluateSource> {
  return {
    id: 'evaluate',
    schema: EvaluateSpecSchema as unknown as z.ZodType<EvaluateSettings>,
    plan: (spec, src) => planEvaluation(spec, src),
    // a batch holds units of one kind (the batch key differs)
    run: (units, ctx) =>
      isCfgSampleBatch(units)
        ? runCfgSampleBatch(units, ctx.source.src, { batchSize: ctx.source.batchSize, ...(ctx.source.log ? { log: ctx.source.log } : {}) })
        : runEvaluateBatch(units as readonly Unit<EvaluateUnit>[], ctx.source, ctx.store),
    reduce: (results, blobs, spec) => reduceEvaluation(source, spec, tools, results, blobs),
  };
}

/** Options of {@link runEvaluation}. */
export interface EvaluateRunOptions {
  /** Where finished units live (default a fresh in-memory store): units already there are reused. */
  readonly store?: UnitStore;
  /** What identifies the model (default: the source's spec and denoiser name). */
  readonly fingerprint?: unknown;
  readonly log?: (m: string) => void;
}

/**
 * Run the evaluation: every method × prompt unit not yet in `opts.store` (a method's prompts in one
 * preparation and sampler run), then the metrics.
 */
export async function runEvaluation(src: StudySource, s: EvaluateSettings, tools: EvaluateTools, opts: EvaluateRunOptions = {}): Promise<EvaluateResult> {
  checkEvaluation(src, s, tools);
  const source: EvaluateSource = { src, fingerprint: opts.fingerprint ?? { spec: src.spec, denoiser: src.denoiser.name }, batchSize: s.batchSize, ...(opts.log ? { log: opts.log } : {}) };
  const study = evaluateStudy(source, tools);
  const units = planEvaluation(s, source);
  const store = opts.store ?? new MemoryStore();
  const outcome = await new InProcessRunner().run(study, units, source, store);
  if (outcome.reused > 0) opts.log?.(`${outcome.reused} of ${units.length} method × prompt units reused from the store`);
  return study.reduce(outcome.units, store, s);
}

/** The metrics of the table from the stored units (plan order: method-major, then prompt). */
async function reduceEvaluation(source: EvaluateSource, s: EvaluateSettings, tools: EvaluateTools, stored: readonly StoredUnit<EvaluatePlannedUnit, EvaluatePlannedResult>[], blobs: BlobReader): Promise<EvaluateResult> {
  const src = source.src;
  const log = source.log ?? (() => {});
  const { prompts, heldOut } = checkEvaluation(src, s, tools);
  const N = s.seeds.length;
  const P = prompts.length;
  const R = P * N;

  // the training pool in descriptor space, and the held-out split
  const pool = src.data.imagePool;
  const poolImages = pool === null ? src.trainImages : takeRows(src.trainImages, pool);
  const poolIndex = pool ?? Array.from({ length: poolImages.dims[0]! }, (_, i) => i);
  const index = await NearestIndex.create(l2NormalizeRows(await tools.descriptor.embed(poolImages)));
  let strictDetector: CopyDetector | null = null;
  try {
    let threshold: EvaluateResult['threshold'];
    if (s.threshold === null) {
      const h = await nearestCosine(index, l2NormalizeRows(await tools.descriptor.embed(heldOut!)));
      const sorted = Float64Array.from(h.sim).sort();
      const value = quantileSorted(sorted, s.calibrationQuantile);
      const minHeldOut = minCalibrationImages(s.calibrationQuantile);
      const text = `${value.toFixed(4)} (the ${s.calibrationQuantile} quantile of ${sorted.length} held-out images' nearest-training similarity${sorted.length < minHeldOut ? `: inconclusive (n_heldout = ${sorted.length} < ${minHeldOut})` : ''})`;
      threshold = { value, calibrated: true, quantile: s.calibrationQuantile, heldOut: sorted.length, minHeldOut, text };
      log(`copy threshold ${text}`);
    } else {
      threshold = { value: s.threshold, calibrated: false, quantile: null, heldOut: 0, minHeldOut: null, text: `${s.threshold} (given)` };
    }
    const thresholdAdequate = !threshold.calibrated || threshold.heldOut >= threshold.minHeldOut!;
    const memorization = memorizationDefinition(src.defaults.memorizationRule === 'own-similarity', tools.descriptor.info.name === 'sscd', s.threshold, threshold.value, thresholdAdequate, poolImages.dims[0]!, threshold.text);
    log(`memorization: ${memorization.text}`);
    // Fréchet reference features and the same-size floor of real training images
    let refStats: ReturnType<typeof gaussianStats> | null = null;
    let floor: number | null = null;
    const floorImages = Math.min(R, poolImages.dims[0]!);
    if (tools.quality) {
      const ref = await tools.quality.features(heldOut!);
      refStats = gaussianStats(ref.data, ref.dims[0]!, ref.dims[1]!);
      const real = await tools.quality.features(takeRows(poolImages, sampleIndices(poolImages.dims[0]!, floorImages, s.runSeed + 1)));
      floor = frechetDistance(gaussianStats(real.data, floorImages, real.dims[1]!), refStats);
    }
    // each prompt's own training image in descriptor space (zeros for prompts without one)
    const targetUnit = prompts.some((p) => p.target !== null)
      ? l2NormalizeRows(await tools.descriptor.embed(takeRows(src.trainImages, prompts.map((p) => p.target ?? 0))))
      : null;
    // the protocol's references: each prompt's ground-truth images (all its targets) in descriptor space
    const protocolOwn: (Tensor | null)[] | null = tools.protocol
      ? await Promise.all(
          prompts.map(async (p) => {
            const t = src.denoiser.conditions[p.cond]!.targets ?? [];
            return t.length === 0 ? null : l2NormalizeRows(await tools.descriptor.embed(takeRows(src.trainImages, [...new Set(t)])));
          }),
        )
      : null;
    const protocolLabels = prompts.map((p) => src.denoiser.conditions[p.cond]!.memorizationLabel ?? null);
    const rows: MethodRow[] = [];
    const samplesBy = new Map<string, Tensor>();
    const simsBy = new Map<string, Float64Array>();
    const targetSimsBy = new Map<string, Float64Array>();
    for (const m of s.methods) {
      const mine = methodUnitsOf(m, s, source, stored);
      if (mine.length !== P) throw new Error(`evaluate: ${mine.length} stored units of ${m.name} for ${P} prompts`);
      const ms = await methodSamplesOf(mine, blobs);
      const unit = l2NormalizeRows(await tools.descriptor.embed(ms.samples));
      const { sim, nn } = await nearestCosine(index, unit);
      const dim = unit.dims[1]!;
      const copiesPer = new Array<number>(P).fill(0);
      const aboveThreshold = new Array<number>(P).fill(0);
      const targetSims: number[] = [];
      for (let r = 0; r < R; r++) {
        const p = Math.floor(r / N);
        const t = prompts[p]!.target;
        if (sim[r]! > threshold.value) aboveThreshold[p]!++;
        if (t === null) {
          if (sim[r]! > memorization.threshold) copiesPer[p]!++;
          continue;
        }
        let c = 0;
        for (let k = 0; k < dim; k++) c += unit.data[r * dim + k]! * targetUnit!.data[p * dim + k]!;
        targetSims.push(c);
        if (memorization.rule === 'nearest-is-own' ? poolIndex[nn[r]!] === t : c > memorization.threshold) copiesPer[p]!++;
      }
      const copies = copiesPer.reduce((a, b) => a + b, 0);
      const gate = isGatedMethod(m) ? gateSummary(m, mine.map((u) => u.result.details['gate'] as { flagged: boolean }), prompts.map((p) => isMemorizedCondition(src.denoiser.conditions[p.cond]!))) : null;
      let strict: RateEstimate | null = null;
      if (sameRowShape(ms.samples, poolImages)) {
        strictDetector ??= await CopyDetector.create(src.trainImages, pool);
        const st = await strictDetector.stats(ms.samples, Array.from({ length: R }, (_, r) => prompts[Math.floor(r / N)]!.target));
        const strictPer = new Array<number>(P).fill(0);
        st.forEach((c, r) => {
          if (c.ratioCopy && c.nearestIsTarget !== false) strictPer[Math.floor(r / N)]!++;
        });
        strict = rateEstimate(strictPer, N, null, null);
      }
      // prompts without an own image use the threshold under both rules
      const memUsesThreshold = memorization.rule === 'own-similarity' || prompts.some((q) => q.target === null);
      const memEstimate = rateEstimate(copiesPer, N, memUsesThreshold && !memorization.adequate ? threshold.heldOut : null, threshold.minHeldOut);
      const copyEstimate = rateEstimate(aboveThreshold, N, thresholdAdequate ? null : threshold.heldOut, threshold.minHeldOut);
      const rowPrompts = Array.from({ length: R }, (_, r) => prompts[Math.floor(r / N)]!);
      const align = tools.alignment ? await tools.alignment.score(ms.samples, rowPrompts) : null;
      let frechet: number | null = null;
      if (tools.quality) {
        const f = await tools.quality.features(ms.samples);
        frechet = frechetDistance(gaussianStats(f.data, R, f.dims[1]!), refStats!);
      }
      const acc = (idx: number[]): number | null => (align === null || idx.length === 0 ? null : idx.reduce((a, r) => a + align[r]!, 0) / idx.length);
      const all = Array.from({ length: R }, (_, r) => r);
      let switching: MethodRow['switching'] = null;
      if (isSwitchingMethod(m)) {
        const never = all.filter((r) => ms.switchSteps[r] === null);
        const switched = all.filter((r) => ms.switchSteps[r] !== null);
        const simMean = (idx: number[]): number => (idx.length ? idx.reduce((a, r) => a + sim[r]!, 0) / idx.length : NaN);
        switching = {
          neverFraction: never.length / R,
          never: { count: never.length, similarityMean: simMean(never), alignment: acc(never) },
          switched: { count: switched.length, similarityMean: simMean(switched), alignment: acc(switched) },
          meanSwitchStep: switched.length ? switched.reduce((a, r) => a + ms.switchSteps[r]!, 0) / switched.length : null,
        };
      }
      rows.push({
        method: m.name,
        kind: m.kind,
        images: R,
        similarity: similarityStats(sim),
        targetSimilarity: targetSims.length ? similarityStats(targetSims) : null,
        copyRate: sim.filter((v) => v > threshold.value).length / R,
        memorizationRate: copies / R,
        memorization: memEstimate,
        strict,
        copy: copyEstimate,
        alignment: acc(all),
        frechet,
        secondsPerImage: (ms.prepSeconds + ms.samplingSeconds) / R,
        prepSeconds: ms.prepSeconds,
        samplingSeconds: ms.samplingSeconds,
        switching,
        vsCfg: null,
        details: ms.details,
        gate,
        protocol: tools.protocol ? protocolMetrics(tools.protocol, { generations: unit, perPrompt: N, own: protocolOwn!, nearestTrain: sim, labels: protocolLabels }) : null,
      });
      samplesBy.set(m.name, ms.samples);
      simsBy.set(m.name, sim);
      targetSimsBy.set(m.name, Float64Array.from(targetSims));
    }
    const base = simsBy.get('cfg');
    const withMargins: MethodRow[] = rows.map((row) => {
      if (base === undefined || row.method === 'cfg') return row;
      const tb = targetSimsBy.get('cfg')!;
      const tr = targetSimsBy.get(row.method)!;
      const nT = prompts.filter((p) => p.target !== null).length;
      return {
        ...row,
        vsCfg: {
          similarityP95: quantileMargin(base, simsBy.get(row.method)!, N, { seed: s.runSeed }),
          targetSimilarityP95: nT > 0 ? quantileMargin(tb, tr, N, { seed: s.runSeed }) : null,
        },
      };
    });
    return {
      prompts,
      alignmentName: tools.alignment?.name ?? null,
      alignmentUnit: tools.alignment?.unit ?? 'fraction',
      qualityName: tools.quality?.name ?? null,
      descriptor: tools.descriptor.info,
      protocol: tools.protocol ?? null,
      threshold,
      memorization,
      poolSize: poolImages.dims[0]!,
      reference: { heldOut: heldOut?.dims[0] ?? 0, floor, floorImages },
      rows: withMargins,
      samples: samplesBy,
      similarities: simsBy,
      targetSimilarities: targetSimsBy,
    };
  } finally {
    await index.dispose();
    await strictDetector?.dispose();
  }
}
