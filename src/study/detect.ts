/**
 * Memorization detection over a labelled prompt set (Jain et al.'s comparison, SPEC §4.4): Wen et
 * al.'s score — the text-conditional noise magnitude ‖ε_c − ε_u‖ at the first step, averaged over
 * seeds, and its mean over all steps — and, where the model exposes cross-attention (a trained
 * text model loaded with `exposeCrossAttention`, or a Stable Diffusion export, by graph surgery on
 * its U-Net: `src.sd.attention`), Ren et al.'s attention entropy at the first step (lower = memorized, so −entropy is the score). Labels are the
 * ground truth (a condition tied to a training image is memorized); ROC AUC (with its Hanley–McNeil
 * interval) and TPR at 1 % FPR (with its Wilson interval; "inconclusive" below 100 negatives).
 */
import type { SamplerName } from '../samplers/index.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import { constant } from '../guidance/schedules.ts';
import { wenScores, WEN_AGGREGATION } from '../analysis/wen.ts';
import { rocAuc, rocCurve, tprAtFpr, type RocCurve } from '../metrics/roc.ts';
import { MIN_N, aucInterval, judge, minNegativesForFpr, wilsonInterval, type Interval, type Verdict } from '../analysis/verdict.ts';
import { attentionEntropy } from '../mitigate/ren-attention.ts';
import { runSampling, initialNoise } from './sampling.ts';
import type { StudySource } from './source.ts';

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

/**
 * An AUC and a TPR at 1 % FPR with their intervals and n, judged: the AUC is "better than chance"
 * only when its whole Hanley–McNeil interval is above 0.5 with ≥ MIN_N.aucPerClass prompts per
 * class; the TPR at 1 % FPR is printed only from ≥ 100 negatives (below that no threshold can hold
 * the FPR at 1 %: one false positive is already more).
 */
export function detectionStats(scores: readonly number[], labels: readonly boolean[]): Pick<DetectorResult, 'auc' | 'aucInterval' | 'tprAt1' | 'tprAt1Interval' | 'positives' | 'negatives' | 'aucVerdict' | 'aucText' | 'tprAt1Text'> {
  const P = labels.filter((l) => l).length;
  const N = labels.length - P;
  const auc = rocAuc(scores, labels);
  const tprAt1 = tprAtFpr(scores, labels, 0.01);
  const aucCi = aucInterval(auc, P, N);
  const tprCi = wilsonInterval(Math.round(tprAt1 * P), P);
  const nMin = Math.min(P, N);
  const aucVerdict = judge({ claim: 'detects memorized prompts better than chance (AUC > 0.5)', value: auc, interval: aucCi, n: nMin, nLabel: P <= N ? 'n_pos' : 'n_neg', minN: MIN_N.aucPerClass, side: { above: 0.5 } });
  const aucText = `${g3(auc)} [${g3(aucCi.lo)}, ${g3(aucCi.hi)}] (95 % Hanley–McNeil; n_pos = ${P}, n_neg = ${N})${nMin < MIN_N.aucPerClass ? `: ${aucVerdict.text}` : `; better than chance: ${aucVerdict.verdict}`}`;
  const needNeg = minNegativesForFpr(0.01);
  const tprAt1Text = N < needNeg ? `inconclusive (n_neg = ${N} < ${needNeg})` : `${g3(tprAt1)} [${g3(tprCi.lo)}, ${g3(tprCi.hi)}] (95 % Wilson; n_pos = ${P}, n_neg = ${N})`;
  return { auc, aucInterval: aucCi, tprAt1, tprAt1Interval: tprCi, positives: P, negatives: N, aucVerdict, aucText, tprAt1Text };
}

function detector(name: string, description: string, scores: number[], labels: boolean[], seconds: number): DetectorResult {
  return { name, description, scores, ...detectionStats(scores, labels), roc: rocCurve(scores, labels), seconds };
}

/** Score every prompt with every available detector and evaluate them against the ground truth. */
export async function runDetection(src: StudySource, s: DetectSettings, log: (m: string) => void = () => {}): Promise<DetectResult> {
  const d = src.denoiser;
  const prompts = s.prompts.map((c) => {
    const info = d.conditions[c];
    if (info === undefined) throw new Error(`--prompts: condition index ${c} is out of range (0..${d.conditions.length - 1})`);
    return { cond: c, id: info.id, label: info.label, memorized: info.targets !== undefined && info.targets.length > 0 };
  });
  const labels = prompts.map((p) => p.memorized);
  if (!labels.some((l) => l) || labels.every((l) => l)) throw new Error('--prompts: need both memorized and normal prompts to evaluate detection');
  const N = s.seeds.length;
  const first: number[] = [];
  const all: number[] = [];
  let samplingSeconds = 0;
  let t0: { t: number; alphaBar: number } | null = null;
  for (let b = 0; b < prompts.length; b += s.promptsPerBatch) {
    const batch = prompts.slice(b, b + s.promptsPerBatch).map((p) => p.cond);
    const r = await runSampling({ denoiser: d, conds: batch, seeds: s.seeds, sampler: s.sampler, steps: s.steps, config: s.config, guidance: constant(s.scale) });
    samplingSeconds += r.seconds;
    t0 ??= { t: r.t[0]!, alphaBar: r.alphaBar[0]! };
    const w = wenScores(r.d, N);
    first.push(...w.firstStep);
    all.push(...w.allSteps);
    log(`prompts ${b + 1}–${b + batch.length} of ${prompts.length} scored`);
  }
  const detectors = [
    detector('wen-first-step', `Wen et al.: first-step ${WEN_AGGREGATION}`, first, labels, 0),
    detector('wen-all-steps', `Wen et al.: the same magnitude averaged over all ${s.steps} steps and the seeds`, all, labels, 0),
  ];
  const tm = src.trained;
  const sdAttention = src.sd?.attention;
  if ((tm?.attention || sdAttention !== undefined) && t0) {
    const started = performance.now();
    const xT = initialNoise(d.shape, s.seeds);
    const ent: number[] = [];
    // a trained model's own exposed U-Net, or the Stable Diffusion export's U-Net after graph surgery
    // (an export whose U-Net has no diffusers attn2 nodes gets no ren-entropy row, with a log line)
    let att: Awaited<ReturnType<NonNullable<typeof sdAttention>>> | null = null;
    if (!tm?.attention) {
      try {
        att = await sdAttention!();
      } catch (e) {
        log(`ren-entropy skipped: ${(e as Error).message}`);
        return { prompts, detectors, samplingSeconds };
      }
    }
    try {
      for (const p of prompts) ent.push(-(await attentionEntropy(att ?? tm!, p.cond, xT, t0)));
    } finally {
      await att?.dispose();
    }
    detectors.push(detector('ren-entropy', 'Ren et al.: −(entropy of the cross-attention over the prompt tokens at the first step, averaged over pixels, heads, layers and seeds)', ent, labels, (performance.now() - started) / 1000));
  }
  return { prompts, detectors, samplingSeconds };
}
