/**
 * One sampling job: conditions × seeds through a guided sampler, with the per-step guidance
 * record and optional trajectory capture. The library half of `memscope sample` and the demo.
 */
import type { Denoiser, CondRef } from '../denoisers/denoiser.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { numel } from '../tensor/tensor.ts';
import { cfg, unguided } from '../guidance/cfg.ts';
import type { GuidanceSchedule } from '../guidance/schedules.ts';
import { GuidanceRecorder, TrajectoryRecorder, observeAll, type StepObserver, type TensorQuantity } from '../record/recorders.ts';
import { TorchGenerator } from '../random/torch.ts';
import { sample, type SamplerName } from '../samplers/index.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import { InputError } from '../io/errors.ts';

/** What to sample. */
export interface SamplingJob {
  readonly denoiser: Denoiser;
  /** Conditions to sample (each with every seed); `null` samples the unconditional model. */
  readonly conds: readonly CondRef[];
  readonly seeds: readonly number[];
  readonly sampler: SamplerName;
  readonly steps: number;
  /** DDIM η (default 0). */
  readonly eta?: number;
  readonly config: SchedulerConfig;
  /** Guidance schedule; when absent the model is sampled without guidance (s ≡ 1, no ε_u). */
  readonly guidance?: GuidanceSchedule;
  /** Tensor quantities to keep for every step (default none). */
  readonly record?: readonly TensorQuantity[];
  /** Extra observers (e.g. streaming analyses). */
  readonly observers?: readonly StepObserver[];
  /** Rows per sampler call (default: all rows in one batch). */
  readonly batchSize?: number;
  /** Explicit rows to sample (replaces conds × seeds; used by the sample study for a batch of units). */
  readonly rows?: readonly { readonly cond: CondRef; readonly seed: number }[];
}

/** What a sampling job produced; row r = conds[⌊r/N⌋] with seeds[r mod N]. */
export interface SamplingResult {
  /** x_0 for every row `[R, ...shape]`. */
  readonly samples: Tensor;
  /** The initial noise x_T (unscaled N(0, I)) of every row. */
  readonly noise: Tensor;
  readonly rows: readonly { readonly cond: CondRef; readonly seed: number }[];
  /** t per step. */
  readonly t: readonly number[];
  readonly alphaBar: readonly number[];
  /** s[step][row] and d[step][row] (empty rows when unguided). */
  readonly s: readonly (readonly number[])[];
  readonly d: readonly (readonly number[])[];
  /** Per row: the step where a switching schedule switched to λ (null: never, or no switch). */
  readonly switchSteps: readonly (number | null)[];
  /** Recorded tensors per quantity, `[steps(+1 for xt), R, ...shape]`. */
  readonly recorded: ReadonlyMap<TensorQuantity, Tensor>;
  /** Wall seconds spent sampling. */
  readonly seconds: number;
}

/** x_T for each seed: `torch.randn(shape, generator=torch.Generator().manual_seed(seed))`, stacked. */
export function initialNoise(shape: readonly number[], seeds: readonly number[]): Tensor {
  return seededNoise(shape, seeds).noise;
}

/**
 * x_T of each seed with the generator that drew it (ancestral samplers keep drawing from it):
 * `torch.Generator().manual_seed(seed)`, one `randn(shape)` per seed, stacked `[n, ...shape]`.
 */
export function seededNoise(shape: readonly number[], seeds: readonly number[]): { generators: TorchGenerator[]; noise: Tensor } {
  const per = numel(shape);
  const generators = seeds.map((seed) => new TorchGenerator(seed));
  const data = new Float32Array(seeds.length * per);
  generators.forEach((g, i) => data.set(g.randn(shape), i * per));
  return { generators, noise: { dims: [seeds.length, ...shape], data } };
}

/** EDM's σ range, which `heun-edm` (defaults σ ∈ [0.002, 80]) evaluates the denoiser over. */
const HEUN_EDM_SIGMAS: readonly [number, number] = [0.002, 80];

/**
 * Throw an {@link InputError} unless `denoiser` can run under `sampler`: `heun-edm` evaluates at
 * EDM's σ ∈ [0.002, 80], so it needs a denoiser defined there (`Denoiser.sigmaRange`: an
 * EDM-trained model, the closed-form testbeds); the grid samplers take every denoiser.
 */
export function checkSamplerFor(sampler: SamplerName, denoiser: Pick<Denoiser, 'name' | 'sigmaRange'>): void {
  if (sampler !== 'heun-edm') return;
  const r = denoiser.sigmaRange;
  const [lo, hi] = HEUN_EDM_SIGMAS;
  if (r === undefined || r[0] > lo || r[1] < hi) {
    const has = r === undefined ? 'is defined on its schedule\'s timesteps only' : `is defined for σ in [${r[0]}, ${r[1]}] only`;
    throw new InputError(`--sampler heun-edm: ${denoiser.name} ${has}; EDM's Heun sampler evaluates it at σ from ${hi} down to ${lo}. Use a model trained with --parameterization edm or a closed-form testbed, or a grid sampler (ddim, dpmpp2m, euler)`);
  }
}

/** Run a sampling job (rows in chunks of `batchSize`), recording guidance scalars and chosen tensors. */
export async function runSampling(job: SamplingJob): Promise<SamplingResult> {
  checkSamplerFor(job.sampler, job.denoiser);
  if (job.rows === undefined) {
    if (job.seeds.length === 0) throw new Error('seeds: need at least one seed');
    if (job.conds.length === 0) throw new Error('conditions: need at least one condition');
  } else if (job.rows.length === 0) throw new Error('rows: need at least one row');
  const rows = job.rows ?? job.conds.flatMap((cond) => job.seeds.map((seed) => ({ cond, seed })));
  const R = rows.length;
  const shape = job.denoiser.shape;
  const per = numel(shape);
  const bs = Math.max(1, Math.min(job.batchSize ?? R, R));
  const samples = new Float32Array(R * per);
  const noiseAll = new Float32Array(R * per);
  const t: number[] = [];
  const alphaBar: number[] = [];
  const s: number[][] = [];
  const d: number[][] = [];
  const switchSteps: (number | null)[] = [];
  const recordedChunks = new Map<TensorQuantity, Tensor[]>();
  const started = performance.now();
  for (let start = 0; start < R; start += bs) {
    const chunk = rows.slice(start, start + bs);
    const { generators, noise } = seededNoise(shape, chunk.map((r) => r.seed));
    noiseAll.set(noise.data, start * per);
    const cond = chunk.map((r) => r.cond);
    const guided = job.guidance ? cfg(job.denoiser, job.guidance, cond) : null;
    const model = guided ? guided.model : unguided(job.denoiser, cond);
    const rec = new GuidanceRecorder();
    const traj = job.record && job.record.length ? new TrajectoryRecorder(job.record) : null;
    const observers: StepObserver[] = [rec.observe];
    if (traj) observers.push(traj.observe);
    for (const o of job.observers ?? []) observers.push(o);
    const x0 = await sample(job.sampler, model, noise, job.config, {
      steps: job.steps,
      onStep: observeAll(...observers),
      generators,
      ...(job.eta === undefined ? {} : { eta: job.eta }),
    });
    samples.set(x0.data, start * per);
    if (start === 0) {
      t.push(...rec.t);
      alphaBar.push(...rec.alphaBar);
      for (let i = 0; i < rec.t.length; i++) {
        s.push([]);
        d.push([]);
      }
    }
    for (let i = 0; i < rec.t.length; i++) {
      s[i]!.push(...rec.s[i]!);
      d[i]!.push(...rec.d[i]!);
    }
    switchSteps.push(...(guided ? guided.switchSteps() : chunk.map(() => null)));
    if (traj) {
      for (const q of job.record!) {
        let list = recordedChunks.get(q);
        if (!list) recordedChunks.set(q, (list = []));
        list.push(traj.stack(q));
      }
    }
  }
  const recorded = new Map<TensorQuantity, Tensor>();
  for (const [q, list] of recordedChunks) recorded.set(q, concatRows(list));
  return {
    samples: { dims: [R, ...shape], data: samples },
    noise: { dims: [R, ...shape], data: noiseAll },
    rows,
    t,
    alphaBar,
    s,
    d,
    switchSteps,
    recorded,
    seconds: (performance.now() - started) / 1000,
  };
}

/** Concatenate `[steps, b_k, ...]` chunks along axis 1. */
function concatRows(list: readonly Tensor[]): Tensor {
  const steps = list[0]!.dims[0]!;
  const tail = list[0]!.dims.slice(2);
  const per = numel(tail);
  const total = list.reduce((a, x) => a + x.dims[1]!, 0);
  const out = new Float32Array(steps * total * per);
  let off = 0;
  for (const x of list) {
    const b = x.dims[1]!;
    for (let st = 0; st < steps; st++) out.set(x.data.subarray(st * b * per, (st + 1) * b * per), (st * total + off) * per);
    off += b;
  }
  return { dims: [steps, total, ...tail], data: out };
}
