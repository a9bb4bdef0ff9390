/**
 * Memorization detection over a labelled prompt set (Jain et al.'s comparison, SPEC §4.4): Wen et
 * al.'s score — the text-conditional noise magnitude ‖ε_c − ε_u‖ at the first step, averaged over
 * seeds, and its mean over all steps — and, where the model exposes cross-attention (a trained
 * text model loaded with `exposeCrossAttention`, or a Stable Diffusion export, by graph surgery on
 * its U-Net: `src.sd.attention`), Ren et al.'s attention entropy at the first step (lower = memorized, so −entropy is the score). Labels are the
 * ground truth (a condition tied to a training image is memorized); ROC AUC and TPR at 1 % FPR.
 */
import type { SamplerName } from '../samplers/index.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import { constant } from '../guidance/schedules.ts';
import { wenScores, WEN_AGGREGATION } from '../analysis/wen.ts';
import { rocAuc, rocCurve, tprAtFpr, type RocCurve } from '../metrics/roc.ts';
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
  readonly tprAt1: number;
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

function detector(name: string, description: string, scores: number[], labels: boolean[], seconds: number): DetectorResult {
  return { name, description, scores, auc: rocAuc(scores, labels), tprAt1: tprAtFpr(scores, labels, 0.01), roc: rocCurve(scores, labels), seconds };
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
