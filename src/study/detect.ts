/**
 * Memorization detection over a labelled prompt set (Jain et al.'s comparison, SPEC §4.4): Wen et
 * al.'s score — the text-conditional noise magnitude ‖ε_c − ε_u‖ at the first step, averaged over
 * seeds, and its mean over all steps — and, where the source has the `attention` capability (a
 * trained text model, or a Stable Diffusion export by graph surgery on its U-Net), Ren et al.'s attention entropy at the first step (lower = memorized, so −entropy is the score). Labels are the
 * ground truth ({@link isMemorizedCondition}: tied to a training image trained on more than once); ROC AUC (with its Hanley–McNeil
 * interval) and TPR at 1 % FPR (with its Wilson interval; "inconclusive" below 100 negatives).
 */
import { isMemorizedCondition } from '../denoisers/denoiser.ts';
import type { SamplerName } from '../samplers/index.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import { wenScores, WEN_AGGREGATION } from '../analysis/wen.ts';
import { rocAuc, rocCurve, tprAtFpr, type RocCurve } from '../metrics/roc.ts';
import { MIN_N, aucInterval, judge, minNegativesForFpr, wilsonInterval, type Interval, type Verdict } from '../analysis/verdict.ts';
import { attentionEntropy } from '../mitigate/ren-attention.ts';
import type { CrossAttentionUnet } from '../denoisers/attention.ts';
import { initialNoise } from './sampling.ts';
import { websterOneStepScore } from '../analysis/webster.ts';
import { z } from 'zod';
import type { Study, Unit, UnitOutput, StoredUnit, UnitStore, RunContext } from '../engine/study.ts';
import { unitKey } from '../engine/canonical.ts';
import { InProcessRunner } from '../engine/runner.ts';
import { MemoryStore } from '../engine/memory-store.ts';
import type { StudySource } from './source.ts';
import { isCfgSampleBatch, isCfgSampleUnit, planCfgSamples, runCfgSampleBatch, type CfgSampleResult, type CfgSampleUnit } from './cfg-sample.ts';

/** Settings of a detection run. */
export interface DetectSettings {
  readonly prompts: readonly number[];
  /** Seeds per prompt (Wen et al.'s notebook: 4 generations). */
  readonly seeds: readonly number[];
  /** Guidance scale of the sampling run the scores are read from (default 7.5). */
  readonly scale: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly config: SchedulerConfig;
  /** Prompts per sampler call (default 16). */
  readonly promptsPerBatch: number;
}

/** One detector's scores and ROC. */
export interface DetectorResult {
  readonly name: string;
  readonly description: string;
  /** Per prompt, higher = more likely memorized. */
  readonly scores: readonly number[];
  readonly auc: number;
  /** 95 % Hanley–McNeil interval of the AUC. */
  readonly aucInterval: Interval;
  readonly tprAt1: number;
  /** 95 % Wilson interval of the TPR at 1 % FPR over the positives (the threshold's own uncertainty is not in it). */
  readonly tprAt1Interval: Interval;
  /** Memorized (positive) and normal (negative) prompts. */
  readonly positives: number;
  readonly negatives: number;
  /** "better than chance" (AUC > 0.5) judged by the AUC interval, with at least {@link MIN_N}.aucPerClass prompts per class. */
  readonly aucVerdict: Verdict;
  /** The AUC as printed: value, interval, n per class and, below the minimum n, "inconclusive (…)". */
  readonly aucText: string;
  /** The TPR at 1 % FPR as printed: "inconclusive (n_neg = 4 < 100)" below ⌈1/0.01⌉ negatives, else value, interval and n. */
  readonly tprAt1Text: string;
  /** TPR at each FPR of {@link DETECTION_FPRS} (Ren et al. 2024 report 1, 3, 5 and 10 %), each with its Wilson interval and text ("inconclusive" below ⌈1/f⌉ negatives). */
  readonly tprAtFprs: readonly { readonly fpr: number; readonly tpr: number; readonly interval: Interval; readonly text: string }[];
  readonly roc: RocCurve;
  /** Seconds spent computing this detector beyond the shared sampling run. */
  readonly seconds: number;
}

/** What a detection run produced. */
export interface DetectResult {
  readonly prompts: readonly { readonly cond: number; readonly id: string; readonly label: string; readonly memorized: boolean }[];
  readonly detectors: readonly DetectorResult[];
  readonly samplingSeconds: number;
}

const g3 = (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : 'n/a');

/** The FPRs at which detection reports a TPR: Wen et al.'s 1 % and Ren et al.'s 1, 3, 5 and 10 %. */
export const DETECTION_FPRS: readonly number[] = [0.01, 0.03, 0.05, 0.1];

/**
 * An AUC and a TPR at 1 % FPR with their intervals and n, judged: the AUC is "better than chance"
 * only when its whole Hanley–McNeil interval is above 0.5 with ≥ MIN_N.aucPerClass prompts per
 * class; the TPR at 1 % FPR is printed only from ≥ 100 negatives (below that no threshold can hold
 * the FPR at 1 %: one false positive is already more).
 */
export function detectionStats(scores: readonly number[], labels: readonly boolean[]): Pick<DetectorResult, 'auc' | 'aucInterval' | 'tprAt1' | 'tprAt1Interval' | 'positives' | 'negatives' | 'aucVerdict' | 'aucText' | 'tprAt1Text' | 'tprAtFprs'> {
  const P = labels.filter((l) => l).length;
  const N = labels.length - P;
  const auc = rocAuc(scores, labels);
  const tprAt1 = tprAtFpr(scores, labels, 0.01);
  const aucCi = aucInterval(auc, P, N);
  const tprCi = wilsonInterval(Math.round(tprAt1 * P), P);
  const nMin = Math.min(P, N);
  const aucVerdict = judge({ claim: 'detects memorized prompts better than chance (AUC > 0.5)', value: auc, interval: aucCi, n: nMin, nLabel: P <= N ? 'n_pos' : 'n_neg', minN: MIN_N.aucPerClass, side: { above: 0.5 } });
  const aucText = `${g3(auc)} [${g3(aucCi.lo)}, ${g3(aucCi.hi)}] (95 % Hanley–McNeil; n_pos = ${P}, n_neg = ${N})${nMin < MIN_N.aucPerClass ? `: ${aucVerdict.text}` : `; better than chance: ${aucVerdict.verdict}`}`;
  const tprAtFprs = DETECTION_FPRS.map((fpr) => {
    const tpr = tprAtFpr(scores, labels, fpr);
    const interval = wilsonInterval(Math.round(tpr * P), P);
    const need = minNegativesForFpr(fpr);
    const text = N < need ? `inconclusive (n_neg = ${N} < ${need})` : `${g3(tpr)} [${g3(interval.lo)}, ${g3(interval.hi)}] (95 % Wilson; n_pos = ${P}, n_neg = ${N})`;
    return { fpr, tpr, interval, text };
  });
  const tprAt1Text = tprAtFprs[0]!.text;
  return { auc, aucInterval: aucCi, tprAt1, tprAt1Interval: tprCi, positives: P, negatives: N, aucVerdict, aucText, tprAt1Text, tprAtFprs };
}

function detector(name: string, description: string, scores: number[], labels: boolean[], seconds: number): DetectorResult {
  return { name, description, scores, ...detectionStats(scores, labels), roc: rocCurve(scores, labels), seconds };
}

/** One unit of a detection run: one prompt, every seed, sampled with constant CFG λ = `scale`. */
export interface DetectUnit {
  readonly cond: number;
  readonly condId: string;
  readonly seeds: readonly number[];
  readonly scale: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly config: SchedulerConfig;
  readonly label: string;
  /** The ground truth: the condition is tied to a training image. */
  readonly memorized: boolean;
  /** Whether the unit records Ren et al.'s attention entropy (the source exposes cross-attention). */
  readonly ren: boolean;
  /** Key of the prompt's CFG sampling unit (`study/cfg-sample.ts`, shared with evaluate's `cfg` row) whose d_t the scores are read from. */
  readonly samplingKey: string;
}

/** A planned unit of a detection run: a prompt's shared CFG sampling unit, or its detection unit (scores from it). */
export type DetectPlannedUnit = DetectUnit | CfgSampleUnit;
/** What a planned unit of a detection run stores. */
export type DetectPlannedResult = DetectUnitResult | CfgSampleResult;

/** The detection units among planned or stored units (prompt order kept). */
function detectUnitsOf<T extends { readonly spec: DetectPlannedUnit }>(units: readonly T[]): (T & { readonly spec: DetectUnit })[] {
  return units.filter((u): u is T & { readonly spec: DetectUnit } => !isCfgSampleUnit(u.spec));
}

/** What a detection unit stores. */
export interface DetectUnitResult {
  /** Wen et al.'s first-step score and its all-steps mean for this prompt. */
  readonly wenFirst: number;
  readonly wenAll: number;
  /** Webster's one-step white-box score σ²·mean(ε̂²) at the first step, mean over the seeds (`analysis/webster.ts`). */
  readonly webster: number;
  /** −(attention entropy) at the first step (null: not recorded, or the export's U-Net has no attn2 nodes: `renSkipped` says why). */
  readonly ren: number | null;
  readonly renSkipped: string | null;
  /** This unit's share of its batch's sampling seconds, and its own attention-entropy seconds. */
  readonly samplingSeconds: number;
  readonly renSeconds: number;
}

/** What a detection study plans and runs over. */
export interface DetectSource {
  readonly src: StudySource;
  /** What identifies the model (`study/fingerprint.ts`); part of every unit key. */
  readonly fingerprint: unknown;
  readonly log?: (m: string) => void;
  /** The U-Net with exposed cross-attention (the source's `attention` capability), opened once on first use; {@link closeDetectSource} releases it. */
  attention?: Promise<CrossAttentionUnet> | undefined;
}

/** Whether `src` can give Ren et al.'s attention entropy. */
function hasAttention(src: StudySource): boolean {
  return src.capabilities.attention !== undefined;
}

function openAttention(source: DetectSource): Promise<CrossAttentionUnet> {
  const a = source.src.capabilities.attention;
  if (a === undefined) return Promise.reject(new Error(`attention: ${source.src.capabilityReason('attention')}`));
  source.attention ??= a.open();
  return source.attention;
}

/** Release what {@link openAttention} opened. */
export async function closeDetectSource(source: DetectSource): Promise<void> {
  const a = source.attention;
  source.attention = undefined;
  if (a === undefined) return;
  const att = await a.catch(() => null);
  await att?.dispose();
}

/**
 * The units of a detection run: first each prompt's CFG sampling unit (shared with evaluate's `cfg`
 * row: the same key when model, prompt, seeds, λ, sampler, steps and config agree), then one
 * detection unit per prompt, keyed by the model fingerprint, the condition, the seeds, λ, sampler,
 * steps, config and what is recorded, which reads d_t from the sampling unit.
 */
export function planDetection(s: DetectSettings, source: DetectSource): Unit<DetectPlannedUnit>[] {
  const d = source.src.denoiser;
  const sampling = planCfgSamples({ prompts: s.prompts, seeds: s.seeds, lambda: s.scale, sampler: s.sampler, steps: s.steps, config: s.config }, source.src, source.fingerprint);
  const ren = hasAttention(source.src);
  const shared = { model: source.fingerprint, seeds: s.seeds, guidance: { kind: 'cfg', lambda: s.scale }, sampler: s.sampler, steps: s.steps, config: s.config, records: { wen: WEN_AGGREGATION, ren, webster: 'one-step' } };
  const batch = unitKey('detect-batch', shared);
  const scoring = s.prompts.map((cond, i): Unit<DetectUnit> => {
    const info = d.conditions[cond];
    if (info === undefined) throw new Error(`--prompts: condition index ${cond} is out of range (0..${d.conditions.length - 1})`);
    const spec: DetectUnit = { cond, condId: info.id, label: info.label, memorized: isMemorizedCondition(info), seeds: [...s.seeds], scale: s.scale, sampler: s.sampler, steps: s.steps, config: s.config, ren, samplingKey: sampling[i]!.key };
    return { key: unitKey('detect', { ...shared, condition: { id: info.id, label: info.label, targets: info.targets ?? [] } }), spec, batch };
  });
  return [...sampling, ...scoring];
}

/** The CFG sampling results of a batch of detection units: read from the store, the missing ones sampled here (d_t only, not stored). */
async function samplingOf(units: readonly Unit<DetectUnit>[], src: StudySource, store: RunContext<unknown>['store']): Promise<CfgSampleResult[]> {
  const found = await Promise.all(units.map(async (u) => (await store?.get<CfgSampleUnit, CfgSampleResult>(u.spec.samplingKey))?.result));
  const missing = units.filter((_, i) => found[i] === undefined);
  if (missing.length > 0) {
    const sampled = await runCfgSampleBatch(
      missing.map((u) => ({ key: u.spec.samplingKey, spec: { kind: 'cfg-sample', cond: u.spec.cond, condId: u.spec.condId, seeds: u.spec.seeds, lambda: u.spec.scale, sampler: u.spec.sampler, steps: u.spec.steps, config: u.spec.config } })),
      src,
      { withoutSamples: true },
    );
    let k = 0;
    for (let i = 0; i < units.length; i++) if (found[i] === undefined) found[i] = sampled[k++]!.result;
  }
  return found as CfgSampleResult[];
}

/** Score a batch of prompts from their CFG sampling units (Wen et al.) and, where recorded, their attention entropy at the first step (Ren et al.). */
async function runDetectBatch(units: readonly Unit<DetectUnit>[], source: DetectSource, store: RunContext<unknown>['store']): Promise<UnitOutput<DetectUnitResult>[]> {
  const src = source.src;
  const d = src.denoiser;
  const u0 = units[0]!.spec;
  const conds = units.map((u) => u.spec.cond);
  const N = u0.seeds.length;
  const sampled = await samplingOf(units, src, store);
  // per prompt, the same sums in the same order as one wenScores over the batch's rows
  const scores = sampled.map((x) => wenScores(x.d, N));
  const w = { firstStep: scores.map((x) => x.firstStep[0]!), allSteps: scores.map((x) => x.allSteps[0]!) };
  const r = { t: sampled[0]!.t, alphaBar: sampled[0]!.alphaBar };
  source.log?.(`${conds.length} prompts scored (${units.map((u) => u.spec.condId).join(', ')})`);
  // Webster's one-step white-box score: recorded by the sampling units (σ₀²·mean(ε̂²) of the first guided step, mean over
  // the seeds); units stored before it was recorded get one batched (uncond, cond) call per prompt at x_T
  const webster: number[] = [];
  for (const [i, c] of conds.entries()) {
    const rec = sampled[i]!.webster;
    webster.push(rec !== undefined && rec.length === N ? rec.reduce((a, v) => a + v, 0) / N : await websterOneStepScore(d, c, initialNoise(d.shape, [...u0.seeds]), { t: r.t[0]!, alphaBar: r.alphaBar[0]! }, u0.scale));
  }
  const ren: (number | null)[] = conds.map(() => null);
  const renSeconds: number[] = conds.map(() => 0);
  let renSkipped: string | null = null;
  if (u0.ren) {
    const t0 = { t: r.t[0]!, alphaBar: r.alphaBar[0]! };
    const xT = initialNoise(d.shape, [...u0.seeds]);
    // an export whose U-Net has no diffusers attn2 nodes gets no ren-entropy row (the reason is stored and logged)
    const att = await openAttention(source).catch((e: Error) => {
      renSkipped = e.message;
      return null;
    });
    if (att !== null) {
      for (let i = 0; i < conds.length; i++) {
        const started = performance.now();
        ren[i] = -(await attentionEntropy(att, conds[i]!, xT, t0));
        renSeconds[i] = (performance.now() - started) / 1000;
      }
    }
  }
  return units.map((_, i) => ({ result: { wenFirst: w.firstStep[i]!, wenAll: w.allSteps[i]!, webster: webster[i]!, ren: ren[i]!, renSkipped, samplingSeconds: sampled[i]!.samplingSeconds, renSeconds: renSeconds[i]! } }));
}

/** The detection study: units from {@link planDetection}; `reduce` = the detectors' ROC statistics. */
export const detectStudy: Study<DetectSettings, DetectPlannedUnit, DetectPlannedResult, DetectResult, DetectSource> = {
  id: 'detect',
  schema: z.custom<DetectSettings>((v) => typeof v === 'object' && v !== null, 'expected detection settings'),
  plan: (s, source) => planDetection(s, source),
  // a batch holds units of one kind (the batch key differs); sampling units record what evaluate's cfg row needs too
  run: (units, ctx) =>
    isCfgSampleBatch(units)
      ? runCfgSampleBatch(units, ctx.source.src, ctx.source.log ? { log: ctx.source.log } : {})
      : runDetectBatch(units as readonly Unit<DetectUnit>[], ctx.source, ctx.store),
  reduce: (stored, _blobs, s) => detectionResult(detectUnitsOf(stored).map((u) => ({ cond: u.spec.cond, id: u.spec.condId, label: u.spec.label, memorized: u.spec.memorized })), stored, s),
};

/** Score every prompt with every available detector and evaluate them against the ground truth. */
export async function runDetection(src: StudySource, s: DetectSettings, log: (m: string) => void = () => {}, opts: { store?: UnitStore; fingerprint?: unknown } = {}): Promise<DetectResult> {
  const prompts = detectPrompts(src, s);
  const source: DetectSource = { src, fingerprint: opts.fingerprint ?? { spec: src.spec, denoiser: src.denoiser.name }, log };
  const units = planDetection(s, source);
  const store = opts.store ?? new MemoryStore();
  try {
    const outcome = await new InProcessRunner().run(detectStudy, units, source, store, { maxBatch: Math.max(1, s.promptsPerBatch) });
    return detectionResult(prompts, outcome.units, s, log);
  } finally {
    await closeDetectSource(source);
  }
}

/** The labelled prompts of a detection run (throws naming --prompts when a class is missing). */
export function detectPrompts(src: StudySource, s: DetectSettings): DetectResult['prompts'] {
  const d = src.denoiser;
  const prompts = s.prompts.map((c) => {
    const info = d.conditions[c];
    if (info === undefined) throw new Error(`--prompts: condition index ${c} is out of range (0..${d.conditions.length - 1})`);
    return { cond: c, id: info.id, label: info.label, memorized: isMemorizedCondition(info) };
  });
  const labels = prompts.map((p) => p.memorized);
  if (!labels.some((l) => l) || labels.every((l) => l)) throw new Error('--prompts: need both memorized and normal prompts to evaluate detection');
  return prompts;
}

/** The detectors from the stored units (prompt order; sampling units are skipped). */
export function detectionResult(prompts: DetectResult['prompts'], planned: readonly StoredUnit<DetectPlannedUnit, DetectPlannedResult>[], s: DetectSettings, log: (m: string) => void = () => {}): DetectResult {
  const stored = detectUnitsOf(planned) as StoredUnit<DetectUnit, DetectUnitResult>[];
  const labels = prompts.map((p) => p.memorized);
  const first = stored.map((u) => u.result.wenFirst);
  const all = stored.map((u) => u.result.wenAll);
  const detectors = [
    detector('wen-first-step', `Wen et al.: first-step ${WEN_AGGREGATION}`, first, labels, 0),
    detector('wen-all-steps', `Wen et al.: the same magnitude averaged over all ${s.steps} steps and the seeds`, all, labels, 0),
  ];
  if (stored.every((u) => typeof u.result.webster === 'number')) {
    detectors.push(detector('webster-one-step', `Webster: one-step white-box score σ²·mean((ε_u + ${s.scale}(ε_c − ε_u))²) at the first step, mean over the seeds`, stored.map((u) => u.result.webster), labels, 0));
  }
  const samplingSeconds = stored.reduce((a, u) => a + u.result.samplingSeconds, 0);
  if (stored.length > 0 && stored.every((u) => u.spec.ren)) {
    const skipped = stored.find((u) => u.result.renSkipped !== null);
    if (skipped) log(`ren-entropy skipped: ${skipped.result.renSkipped}`);
    else {
      detectors.push(
        detector('ren-entropy', 'Ren et al.: −(entropy of the cross-attention over the prompt tokens at the first step, averaged over pixels, heads, layers and seeds)', stored.map((u) => u.result.ren!), labels, stored.reduce((a, u) => a + u.result.renSeconds, 0)),
      );
    }
  }
  return { prompts, detectors, samplingSeconds };
}
