/**
 * The CFG-start sweep of Jain et al. (SPEC §4.3, their Fig. 2/4): for one prompt and seed, one
 * sample per start step k — guidance s = 0 before step k and λ from k on (the static-transition
 * schedule `stp:λ@t_k`), optionally with opposite guidance −λ_og before k — and each sample's copy
 * similarity to the prompt's training image. The empirical transition point is the first k whose
 * output is no longer a copy (similarity below the threshold).
 *
 * Written as an engine {@link Study}: one unit per sample (variant, start step k) — that sampler
 * run's image-space sample, keyed by the model fingerprint, condition, seed, sampler, steps,
 * scheduler config and guidance schedule; `reduce` stacks the samples in step order and
 * {@link scoreSweep} scores them with the descriptor and the copy detector (not stored: a change of
 * descriptor or threshold re-scores without sampling).
 */
import { z } from 'zod';
import { SAMPLER_NAMES, samplerTimesteps, type SamplerName } from '../samplers/index.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import type { Study, Unit, StoredUnit, UnitStore } from '../engine/study.ts';
import { unitKey } from '../engine/canonical.ts';
import { InProcessRunner } from '../engine/runner.ts';
import { MemoryStore } from '../engine/memory-store.ts';
import { decodeNpy, encodeNpy } from '../io/npy.ts';
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

/** The spec of a sweep study (defaults here). */
export const SweepSpecSchema = z.object({
  cond: z.number().int().nonnegative(),
  seed: z.number().int().nonnegative(),
  lambda: z.number().finite().default(7.5),
  og: z.boolean().default(false),
  /** λ_og of the OG variant (default λ). */
  ogLambda: z.number().finite().optional(),
  sampler: z.enum(SAMPLER_NAMES as unknown as [SamplerName, ...SamplerName[]]).default('ddim'),
  steps: z.number().int().min(1).max(1000).default(50),
  every: z.number().int().min(1).default(1),
  threshold: z.number().finite().default(0.75),
});
/** A resolved sweep spec. */
export type SweepSpec = z.infer<typeof SweepSpecSchema>;

/** What the sweep study plans over: the model source and its scheduler config. */
export interface SweepSource {
  readonly src: StudySource;
  readonly config: SchedulerConfig;
  /** What identifies the model's weights (see `study/fingerprint.ts`); part of every unit key (default: the source's spec). */
  readonly fingerprint?: unknown;
}

/** One unit: the sample of one start step k of one variant. */
export interface SweepUnit {
  /** 0: s = 0 before k; 1: s = −λ_og (OG) before k. */
  readonly variant: 0 | 1;
  readonly k: number;
  /** The guidance of the run: constant λ (k = 0 without OG), else stp(λ, t_k, λ_og?) (`tau` null: never guided). */
  readonly guidance: { readonly kind: 'constant'; readonly s: number } | { readonly kind: 'stp'; readonly lambda: number; readonly tau: number | null; readonly ogLambda: number | null };
  readonly cond: number;
  readonly condId: string;
  readonly seed: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly config: SchedulerConfig;
}

/** The result of one unit: the run's timesteps (the image-space sample is the blob `sample.npy`). */
export interface SweepUnitResult {
  readonly t: number[];
}

/** The samples of a sweep in step order, per variant (what {@link scoreSweep} scores). */
export interface SweepSamples {
  readonly spec: SweepSpec;
  readonly timesteps: number[];
  readonly ks: number[];
  /** Per variant, the samples in image space in the order of `ks`. */
  readonly variants: Tensor[];
}

function startSteps(steps: number, every: number): number[] {
  return [...new Set([...Array.from({ length: Math.ceil(steps / every) }, (_, i) => i * every), steps])];
}

/** The sweep study. */
export const sweepStudy: Study<SweepSpec, SweepUnit, SweepUnitResult, SweepSamples, SweepSource> = {
  id: 'sweep',
  schema: SweepSpecSchema as unknown as z.ZodType<SweepSpec>,
  plan(spec, source) {
    const d = source.src.denoiser;
    const info = d.conditions[spec.cond];
    if (info === undefined) throw new Error(`--prompt: condition index ${spec.cond} is out of range (0..${d.conditions.length - 1})`);
    if (info.targets?.[0] === undefined) throw new Error(`--prompt: ${info.id} ("${info.label}") has no training image to copy; pick a memorized caption`);
    if (!(Number.isInteger(spec.every) && spec.every >= 1)) throw new Error(`--every: expected a positive integer, got ${spec.every}`);
    const grid = samplerTimesteps(spec.sampler, source.config, spec.steps);
    const ogLambda = spec.ogLambda ?? spec.lambda;
    const units: Unit<SweepUnit>[] = [];
    for (const variant of spec.og ? ([0, 1] as const) : ([0] as const)) {
      for (const k of startSteps(spec.steps, spec.every)) {
        const guidance: SweepUnit['guidance'] = k === 0 && variant === 0 ? { kind: 'constant', s: spec.lambda } : { kind: 'stp', lambda: spec.lambda, tau: k < grid.length ? grid[k]! : null, ogLambda: variant === 1 ? ogLambda : null };
        const u: SweepUnit = { variant, k, guidance, cond: spec.cond, condId: info.id, seed: spec.seed, sampler: spec.sampler, steps: spec.steps, config: source.config };
        units.push({ key: unitKey('sweep', { model: source.fingerprint ?? source.src.spec, denoiser: d.name, condition: info, seed: spec.seed, sampler: spec.sampler, steps: spec.steps, config: source.config, guidance, records: 'image-space sample' }), spec: u });
      }
    }
    return units;
  },
  async run(units, ctx) {
    const out = [];
    const src = ctx.source.src;
    for (const { spec: u } of units) {
      ctx.signal?.throwIfAborted();
      const g = u.guidance;
      const schedule = g.kind === 'constant' ? constant(g.s) : stp(g.lambda, g.tau ?? -Infinity, g.ogLambda ?? undefined);
      const r = await runSampling({ denoiser: src.denoiser, conds: [u.cond], seeds: [u.seed], sampler: u.sampler, steps: u.steps, config: u.config, guidance: schedule });
      if (g.kind === 'stp' && g.tau !== null && r.t[u.k] !== g.tau) throw new Error(`sweep: the sampler's timestep ${u.k} is ${r.t[u.k]}, the planned grid says ${g.tau}`);
      const x = await src.toImageSpace(r.samples);
      out.push({ result: { t: [...r.t] }, blobs: [{ name: 'sample.npy', bytes: encodeNpy(x) }] });
    }
    return out;
  },
  async reduce(results: readonly StoredUnit<SweepUnit, SweepUnitResult>[], blobs, spec) {
    const ks = startSteps(spec.steps, spec.every);
    const nv = spec.og ? 2 : 1;
    if (results.length !== nv * ks.length) throw new Error(`sweep: ${results.length} stored units for ${nv} variant(s) × ${ks.length} start steps`);
    const variants: Tensor[] = [];
    for (let v = 0; v < nv; v++) {
      const samples: Tensor[] = [];
      for (const r of results.slice(v * ks.length, (v + 1) * ks.length)) {
        const b = await blobs.readBlob(r as StoredUnit<unknown, unknown>, 'sample.npy');
        samples.push(decodeNpy(Buffer.from(b.buffer, b.byteOffset, b.byteLength), 'sample.npy'));
      }
      const per = numel(samples[0]!.dims.slice(1));
      const images: Tensor = { dims: [ks.length, ...samples[0]!.dims.slice(1)], data: new Float32Array(ks.length * per) };
      samples.forEach((x, i) => images.data.set(x.data, i * per));
      variants.push(images);
    }
    // the grid of timesteps, from the standard-CFG run (k = 0)
    return { spec, timesteps: [...results[0]!.result.t], ks, variants };
  },
};

/** Score stacked sweep samples: each sample's descriptor cosine to the target, whether its nearest training image is the target, and each variant's transition. */
export async function scoreSweep(src: StudySource, samples: SweepSamples, descriptor: Descriptor, settings: SweepSettings, log: (m: string) => void = () => {}): Promise<{ prompt: string; target: number; variants: SweepVariant[] }> {
  const s = samples.spec;
  const info = src.denoiser.conditions[s.cond]!;
  const target = info.targets![0]!;
  const imgPer = numel(src.trainImages.dims.slice(1));
  const targetImage: Tensor = { dims: [1, ...src.trainImages.dims.slice(1)], data: src.trainImages.data.slice(target * imgPer, (target + 1) * imgPer) };
  const fTarget = await descriptor.embed(targetImage);
  const detector = await CopyDetector.create(src.trainImages);
  const { ks, timesteps } = samples;
  const variants: SweepVariant[] = [];
  try {
    for (const [vi, images] of samples.variants.entries()) {
      const og = vi === 1;
      const f = await descriptor.embed(images);
      const dim = f.dims[1]!;
      const copies = await detector.stats(images, ks.map(() => target));
      const rows: SweepRow[] = ks.map((k, i) => {
        let sim = 0;
        for (let j = 0; j < dim; j++) sim += f.data[i * dim + j]! * fTarget.data[j]!;
        return { k, t: k < timesteps.length ? timesteps[k]! : null, similarity: sim, nearestIsTarget: copies[i]!.nearestIsTarget === true, copy: sim >= settings.threshold };
      });
      const label = og ? `s = −${settings.ogLambda} (OG) before k` : 's = 0 before k';
      variants.push({ label, rows, transition: transitionOf(rows, settings.threshold), images });
      log(`${label}: transition at k = ${variants[variants.length - 1]!.transition ?? 'none'}`);
    }
  } finally {
    await detector.dispose();
  }
  return { prompt: info.label, target, variants };
}

/** The sweep spec of a {@link SweepSettings}. */
export function sweepSpecOf(s: SweepSettings): SweepSpec {
  return SweepSpecSchema.parse({ cond: s.cond, seed: s.seed, lambda: s.lambda, og: s.og, ogLambda: s.ogLambda, sampler: s.sampler, steps: s.steps, every: s.every, threshold: s.threshold });
}

/**
 * Run the CFG-start sweep (one sampler run per start step; every run uses the same seed): the
 * sweep study on `store` (default in memory), then {@link scoreSweep}.
 */
export async function runSweep(src: StudySource, s: SweepSettings, descriptor: Descriptor, log: (m: string) => void = () => {}, store: UnitStore = new MemoryStore()): Promise<SweepResult> {
  if (!(Number.isInteger(s.every) && s.every >= 1)) throw new Error(`--every: expected a positive integer, got ${s.every}`);
  const started = performance.now();
  const spec = sweepSpecOf(s);
  const source: SweepSource = { src, config: s.config };
  const units = await sweepStudy.plan(spec, source);
  const out = await new InProcessRunner().run(sweepStudy, units, source, store);
  const samples = await sweepStudy.reduce(out.units, store, spec);
  const scored = await scoreSweep(src, samples, descriptor, s, log);
  return { settings: s, prompt: scored.prompt, target: scored.target, timesteps: samples.timesteps, variants: scored.variants, seconds: (performance.now() - started) / 1000 };
}

function transitionOf(rows: readonly SweepRow[], threshold: number): number | null {
  const i = empiricalTransitionPoint(rows.map((r) => r.similarity), threshold);
  return i === null ? null : rows[i]!.k;
}
