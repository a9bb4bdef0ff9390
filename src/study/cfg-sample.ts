/**
 * The CFG sampling unit that `evaluate` and `detect` share (issue 15 §2: "a `detect` whose CFG
 * samples equal `evaluate`'s reuses them"): one prompt sampled with every seed under constant
 * classifier-free guidance λ, recording what both need — the samples in image space (evaluate's
 * `cfg` row, blob `samples.npy` `[N, ...image shape]`, seed order) and, per step and seed,
 * d_t = ‖ε_c − ε_u‖² with t and ᾱ (detect's Wen et al. scores and the first step of Ren et al.'s
 * entropy), which CFG computes anyway.
 *
 * Both studies plan these units with the same key (model fingerprint, condition id and text,
 * seeds, λ, sampler, steps, scheduler config, the initial-noise convention and what is recorded),
 * so whichever command runs first samples and the other reuses. The samples do not depend on how
 * units are batched: every row's x_T is `torch.randn` from its own seed's generator, and the
 * CPU denoisers give each row the same bytes whatever the batch (checked on the testbed, the
 * trained models and the tiny Stable Diffusion export); rows per sampler call are speed only.
 */
import { constant } from '../guidance/schedules.ts';
import type { SamplerName } from '../samplers/index.ts';
import type { StepEvent } from '../samplers/types.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import type { Unit, UnitOutput } from '../engine/study.ts';
import { unitKey } from '../engine/canonical.ts';
import { encodeNpy } from '../io/npy.ts';
import { numel } from '../tensor/tensor.ts';
import { runSampling } from './sampling.ts';
import type { StudySource } from './source.ts';

/** Study id of the shared unit (part of its key, whichever command plans it). */
export const CFG_SAMPLE_STUDY = 'cfg-sample';

/** The initial-noise convention of the shared unit (part of its key). */
export const CFG_SAMPLE_NOISE = 'x_T of row (prompt, seed) = torch.randn(shape, generator=torch.Generator().manual_seed(seed)); rows prompt-major, seed-minor';

/** What the shared unit records (part of its key). */
export const CFG_SAMPLE_RECORDS = { samples: 'image space', d: 'per step and seed: ||eps_c - eps_u||^2', t: true, alphaBar: true };

/** One shared CFG sampling unit: one prompt, every seed, constant λ. */
export interface CfgSampleUnit {
  readonly kind: 'cfg-sample';
  readonly cond: number;
  readonly condId: string;
  readonly seeds: readonly number[];
  readonly lambda: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly config: SchedulerConfig;
}

/** What the shared unit stores besides its `samples.npy` blob. */
export interface CfgSampleResult {
  /** t and ᾱ per step. */
  readonly t: number[];
  readonly alphaBar: number[];
  /** d[step][seed] = ‖ε_c − ε_u‖² of this prompt's rows (seed order). */
  readonly d: number[][];
  /** This unit's share of its batch's sampling seconds (decoding to image space excluded). */
  readonly samplingSeconds: number;
  /** Webster's one-step score per seed, σ₀²·mean(ε̂²) of the guided prediction at the first step (`analysis/webster.ts`); absent in units stored before it was recorded. */
  readonly webster?: number[];
}

/** Settings that determine a set of shared units. */
export interface CfgSampleSettings {
  readonly prompts: readonly number[];
  readonly seeds: readonly number[];
  readonly lambda: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly config: SchedulerConfig;
}

/** Whether a planned spec is a shared CFG sampling unit. */
export function isCfgSampleUnit(spec: unknown): spec is CfgSampleUnit {
  return typeof spec === 'object' && spec !== null && (spec as { kind?: unknown }).kind === 'cfg-sample';
}

/** The shared units of `s` (one per prompt, in prompt order), keyed identically by every study that plans them. */
export function planCfgSamples(s: CfgSampleSettings, src: StudySource, fingerprint: unknown): Unit<CfgSampleUnit>[] {
  const d = src.denoiser;
  const shared = { model: fingerprint, seeds: s.seeds, guidance: { kind: 'cfg', lambda: s.lambda }, sampler: s.sampler, steps: s.steps, config: s.config, noise: CFG_SAMPLE_NOISE, records: CFG_SAMPLE_RECORDS };
  const batch = unitKey(`${CFG_SAMPLE_STUDY}-batch`, shared);
  return s.prompts.map((cond) => {
    const info = d.conditions[cond];
    if (info === undefined) throw new Error(`--prompts: condition index ${cond} is out of range (0..${d.conditions.length - 1})`);
    const spec: CfgSampleUnit = { kind: 'cfg-sample', cond, condId: info.id, seeds: [...s.seeds], lambda: s.lambda, sampler: s.sampler, steps: s.steps, config: s.config };
    return { key: unitKey(CFG_SAMPLE_STUDY, { ...shared, condition: { id: info.id, label: info.label } }), spec, batch };
  });
}

/** Options of {@link runCfgSampleBatch}. */
export interface CfgSampleRunOptions {
  /** Rows per sampler call (default all rows of the batch in one call; speed only). */
  readonly batchSize?: number;
  /** Skip decoding to image space and the `samples.npy` blob (a reader that needs only d, t and ᾱ). */
  readonly withoutSamples?: boolean;
  readonly log?: (m: string) => void;
}

/** Sample a batch of shared units (same seeds, λ, sampler, steps, config): one sampler run, rows prompt-major. */
export async function runCfgSampleBatch(units: readonly Unit<CfgSampleUnit>[], src: StudySource, opts: CfgSampleRunOptions = {}): Promise<UnitOutput<CfgSampleResult>[]> {
  const u0 = units[0]!.spec;
  const conds = units.map((u) => u.spec.cond);
  const N = u0.seeds.length;
  const P = conds.length;
  // Webster's one-step score from the first step's guided ε̂ of every row (chunks arrive in row order)
  const webster: number[] = [];
  const firstStep = (e: StepEvent): void => {
    if (e.step !== 0) return;
    const B = e.eps.dims[0]!;
    const per = e.eps.data.length / B;
    const sigma2 = (1 - e.alphaBar) / e.alphaBar;
    for (let b = 0; b < B; b++) {
      let ss = 0;
      for (let k = b * per; k < (b + 1) * per; k++) ss += e.eps.data[k]! * e.eps.data[k]!;
      webster.push((sigma2 * ss) / per);
    }
  };
  const r = await runSampling({ denoiser: src.denoiser, conds, seeds: [...u0.seeds], sampler: u0.sampler, steps: u0.steps, config: u0.config, guidance: constant(u0.lambda), observers: [firstStep], ...(opts.batchSize === undefined ? {} : { batchSize: opts.batchSize }) });
  opts.log?.(`cfg:${u0.lambda}: ${P * N} images, ${(r.seconds / (P * N)).toFixed(3)} s/image`);
  const img = opts.withoutSamples === true ? null : await src.toImageSpace(r.samples);
  const shape = img?.dims.slice(1) ?? [];
  const per = numel(shape);
  return units.map((_, p) => ({
    result: { t: [...r.t], alphaBar: [...r.alphaBar], d: r.d.map((row) => row.slice(p * N, (p + 1) * N)), samplingSeconds: r.seconds / P, webster: webster.slice(p * N, (p + 1) * N) },
    ...(img === null ? {} : { blobs: [{ name: 'samples.npy', bytes: encodeNpy({ dims: [N, ...shape], data: img.data.slice(p * N * per, (p + 1) * N * per) }) }] }),
  }));
}

/** Whether a batch (units of one `batch` value, hence of one kind) is a batch of shared CFG sampling units. */
export function isCfgSampleBatch(units: readonly Unit<unknown>[]): units is readonly Unit<CfgSampleUnit>[] {
  return units.length > 0 && isCfgSampleUnit(units[0]!.spec);
}
