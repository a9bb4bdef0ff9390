/**
 * Detect-then-mitigate (issue 20 §4; Jain et al. 2025, limitations: mitigate only the prompts a
 * detector flags). The detector is Wen et al.'s first-step score — per prompt, the mean over its
 * seeds of ‖ε_θ(x_T, e_p) − ε_θ(x_T, e_∅)‖ at the sampler's first step (ICLR 2024 §3.1; the
 * `firstStep` of `analysis/wen.ts`) — and its threshold is calibrated on held-out prompts known not
 * to be memorized: the (1 − FPR) quantile of their scores, so that about FPR of normal prompts are
 * mitigated needlessly. A gated method `gated+M` samples M for flagged prompts and plain CFG at λ
 * for the others.
 */
import type { CondRef, Denoiser } from '../denoisers/denoiser.ts';
import { cfg } from '../guidance/cfg.ts';
import { constant } from '../guidance/schedules.ts';
import { GuidanceRecorder } from '../record/recorders.ts';
import { seededNoise } from './sampling.ts';
import { sample, type SamplerName } from '../samplers/index.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import { quantileSorted } from '../analysis/correlation.ts';

/** Thrown by the observer after the first step: the score needs no more of the trajectory. */
const FIRST_STEP_DONE = Symbol('first step done');

/** What the first-step scores are computed over (the evaluation's sampler settings). */
export interface GateScoreJob {
  readonly denoiser: Denoiser;
  readonly conds: readonly number[];
  readonly seeds: readonly number[];
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly config: SchedulerConfig;
  /** λ of the CFG whose first step is scored (d_t does not depend on it; recorded for the key). */
  readonly lambda: number;
  /** Rows per model call (default all). */
  readonly batchSize?: number;
}

/**
 * Wen et al.'s first-step score of each prompt: the sampler's first step under CFG on x_T of each
 * seed (torch-seeded, as every memscope run), mean over the seeds of √d_0. The same number as
 * `wenScores(run.d, N).firstStep` of a full CFG run with these settings; only the first step runs.
 */
export async function firstStepScores(job: GateScoreJob): Promise<number[]> {
  const N = job.seeds.length;
  if (N === 0 || job.conds.length === 0) throw new Error('firstStepScores: need at least one prompt and one seed');
  const rows = job.conds.flatMap((cond) => job.seeds.map((seed) => ({ cond, seed })));
  const shape = job.denoiser.shape;
  const bs = Math.max(1, Math.min(job.batchSize ?? rows.length, rows.length));
  const d0: number[] = [];
  for (let start = 0; start < rows.length; start += bs) {
    const chunk = rows.slice(start, start + bs);
    const { generators, noise } = seededNoise(shape, chunk.map((r) => r.seed));
    const cond: CondRef[] = chunk.map((r) => r.cond);
    const guided = cfg(job.denoiser, constant(job.lambda), cond);
    const rec = new GuidanceRecorder();
    try {
      await sample(job.sampler, guided.model, noise, job.config, {
        steps: job.steps,
        generators,
        onStep: (e) => {
          rec.observe(e);
          throw FIRST_STEP_DONE;
        },
      });
    } catch (e) {
      if (e !== FIRST_STEP_DONE) throw e;
    }
    const first = rec.d[0];
    if (first === undefined || first.length !== chunk.length) throw new Error('firstStepScores: the sampler recorded no ε_c − ε_u at its first step');
    d0.push(...first);
  }
  return job.conds.map((_, p) => {
    let s = 0;
    for (let n = 0; n < N; n++) s += Math.sqrt(d0[p * N + n]!);
    return s / N;
  });
}

/** The gate's threshold and where it comes from. */
export interface GateCalibration {
  /** Flag a prompt when its score exceeds this. */
  readonly threshold: number;
  /** Target false-positive rate: the threshold is the (1 − fpr) quantile of the calibration scores. */
  readonly fpr: number;
  /** Calibration prompts (condition ids) and their scores. */
  readonly prompts: readonly string[];
  readonly scores: readonly number[];
  /** ⌈1/fpr⌉: fewer calibration prompts cannot place the quantile (the rates read "inconclusive"). */
  readonly minPrompts: number;
  readonly text: string;
}

/** The threshold from calibration prompts' scores: their (1 − fpr) quantile (see `quantileSorted`). */
export function calibrateGate(ids: readonly string[], scores: readonly number[], fpr: number): GateCalibration {
  if (!(fpr > 0 && fpr < 1)) throw new Error(`gate: the false-positive rate must be strictly between 0 and 1, got ${fpr}`);
  if (scores.length === 0 || scores.length !== ids.length) throw new Error(`gate: need one score per calibration prompt, got ${scores.length} scores for ${ids.length} prompts`);
  const sorted = Float64Array.from(scores).sort();
  const threshold = quantileSorted(sorted, 1 - fpr);
  const minPrompts = Math.ceil(1 / fpr);
  const short = scores.length < minPrompts ? `: inconclusive (n = ${scores.length} < ${minPrompts})` : '';
  return {
    threshold,
    fpr,
    prompts: [...ids],
    scores: [...scores],
    minPrompts,
    text: `${threshold.toFixed(4)} = the ${1 - fpr} quantile of Wen et al.'s first-step score over ${scores.length} held-out non-memorized prompts (target FPR ${(100 * fpr).toFixed(1)} %)${short}`,
  };
}
