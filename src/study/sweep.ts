/**
 * The CFG-start sweep of Jain et al. (SPEC §4.3, their Fig. 2/4): for one prompt and seed, one
 * sample per start step k — guidance s = 0 before step k and λ from k on (the static-transition
 * schedule `stp:λ@t_k`), optionally with opposite guidance −λ_og before k — and each sample's copy
 * similarity to the prompt's training image. The empirical transition point is the first k whose
 * output is no longer a copy (similarity below the threshold).
 */
import type { SamplerName } from '../samplers/index.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import { stp, constant } from '../guidance/schedules.ts';
import { type Tensor, numel } from '../tensor/tensor.ts';
import type { Descriptor } from '../metrics/descriptor.ts';
import { empiricalTransitionPoint } from '../analysis/transition.ts';
import { CopyDetector } from '../metrics/copy.ts';
import { runSampling } from './sampling.ts';
import type { StudySource } from './source.ts';

/** Settings of a sweep. */
export interface SweepSettings {
  /** Condition index (must have a target training image). */
  readonly cond: number;
  readonly seed: number;
  /** Guidance scale λ from step k on. */
  readonly lambda: number;
  /** Also sweep with opposite guidance −λ_og before k (Jain et al.'s OG variant). */
  readonly og: boolean;
  /** λ_og (default λ, as in their Algorithm 1). */
  readonly ogLambda: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly config: SchedulerConfig;
  /** Sweep every `every`-th start step (default 1: every step, plus k = steps: never guided). */
  readonly every: number;
  /** A sample is a copy when its descriptor cosine to the target is ≥ this (default 0.75). */
  readonly threshold: number;
}

/** One start step of a sweep. */
export interface SweepRow {
  /** Start step k (0 = standard CFG throughout; `steps` = never guided). */
  readonly k: number;
  /** Timestep t_k from which λ applies (null for k = steps). */
  readonly t: number | null;
  /** Descriptor cosine between the sample and the target. */
  readonly similarity: number;
  /** Whether the sample's nearest training image (pixel L2) is the target. */
  readonly nearestIsTarget: boolean;
  readonly copy: boolean;
}

/** One sweep variant (plain or OG before k). */
export interface SweepVariant {
  readonly label: string;
  readonly rows: readonly SweepRow[];
  /** First k whose output is not a copy (null: every output is a copy). */
  readonly transition: number | null;
  /** The samples in image space, in the order of `rows`. */
  readonly images: Tensor;
}

/** What a sweep produced. */
export interface SweepResult {
  readonly settings: SweepSettings;
  readonly prompt: string;
  readonly target: number;
  /** The inference timesteps of the sampler grid. */
  readonly timesteps: readonly number[];
  readonly variants: readonly SweepVariant[];
  readonly seconds: number;
}

/** Run the CFG-start sweep (one sampler run per start step; every run uses the same seed). */
export async function runSweep(src: StudySource, s: SweepSettings, descriptor: Descriptor, log: (m: string) => void = () => {}): Promise<SweepResult> {
  const d = src.denoiser;
  const info = d.conditions[s.cond];
  if (info === undefined) throw new Error(`--prompt: condition index ${s.cond} is out of range (0..${d.conditions.length - 1})`);
  const target = info.targets?.[0];
  if (target === undefined) throw new Error(`--prompt: ${info.id} ("${info.label}") has no training image to copy; pick a memorized caption`);
  if (!(Number.isInteger(s.every) && s.every >= 1)) throw new Error(`--every: expected a positive integer, got ${s.every}`);
  const started = performance.now();
  const job = { denoiser: d, conds: [s.cond], seeds: [s.seed], sampler: s.sampler, steps: s.steps, config: s.config };
  // the grid of timesteps, from the standard-CFG run (k = 0)
  const first = await runSampling({ ...job, guidance: constant(s.lambda) });
  const timesteps = first.t;
  const ks = [...new Set([...Array.from({ length: Math.ceil(s.steps / s.every) }, (_, i) => i * s.every), s.steps])];
  const imgPer = numel(src.trainImages.dims.slice(1));
  const targetImage: Tensor = { dims: [1, ...src.trainImages.dims.slice(1)], data: src.trainImages.data.slice(target * imgPer, (target + 1) * imgPer) };
  const fTarget = await descriptor.embed(targetImage);
  const detector = await CopyDetector.create(src.trainImages);
  const variants: SweepVariant[] = [];
  try {
    for (const og of s.og ? [false, true] : [false]) {
      const samples: Tensor[] = [];
      for (const k of ks) {
        const tau = k < timesteps.length ? timesteps[k]! : -Infinity;
        const schedule = k === 0 && !og ? constant(s.lambda) : stp(s.lambda, tau, og ? s.ogLambda : undefined);
        const r = k === 0 && !og ? first : await runSampling({ ...job, guidance: schedule });
        samples.push(await src.toImageSpace(r.samples));
      }
      const images: Tensor = { dims: [ks.length, ...samples[0]!.dims.slice(1)], data: new Float32Array(ks.length * imgPer) };
      samples.forEach((x, i) => images.data.set(x.data, i * imgPer));
      const f = await descriptor.embed(images);
      const dim = f.dims[1]!;
      const copies = await detector.stats(images, ks.map(() => target));
      const rows: SweepRow[] = ks.map((k, i) => {
        let sim = 0;
        for (let j = 0; j < dim; j++) sim += f.data[i * dim + j]! * fTarget.data[j]!;
        return { k, t: k < timesteps.length ? timesteps[k]! : null, similarity: sim, nearestIsTarget: copies[i]!.nearestIsTarget === true, copy: sim >= s.threshold };
      });
      const label = og ? `s = −${s.ogLambda} (OG) before k` : 's = 0 before k';
      variants.push({ label, rows, transition: transitionOf(rows, s.threshold), images });
      log(`${label}: transition at k = ${variants[variants.length - 1]!.transition ?? 'none'}`);
    }
  } finally {
    await detector.dispose();
  }
  return { settings: s, prompt: info.label, target, timesteps, variants, seconds: (performance.now() - started) / 1000 };
}

function transitionOf(rows: readonly SweepRow[], threshold: number): number | null {
  const i = empiricalTransitionPoint(rows.map((r) => r.similarity), threshold);
  return i === null ? null : rows[i]!.k;
}
