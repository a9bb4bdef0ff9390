/**
 * The `sample` study (issue 15 §1): conditions × seeds through a guided sampler. One unit per
 * (condition, seed) row, keyed by the model fingerprint, the condition, the seed, the sampler, the
 * steps, η, the scheduler config, the guidance schedule, what is recorded and the result-format
 * version. Units of one kind share a `batch` value, so the runner puts their rows into one sampler
 * call, exactly as `runSampling` chunks rows (`batch-size` rows per call, default all).
 *
 * A unit's result holds its per-step series (t, ᾱ_t, s, d_t) and switch step; its blobs hold x_0
 * (`x0.npy`), x_T (`noise.npy`), the decoded image of a latent model (`image.npy`) and every
 * recorded per-step tensor (`<quantity>.npy`, `[steps(+1), ...shape]`).
 */
import { z } from 'zod';
import { join } from 'node:path';
import type { Study, Unit, UnitOutput, StoredUnit, BlobReader } from '../engine/study.ts';
import { canonicalJson, sha256Hex, unitKey } from '../engine/canonical.ts';
import type { CondRef, ConditionInfo, Denoiser } from '../denoisers/denoiser.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { numel } from '../tensor/tensor.ts';
import { parseGuidance } from '../guidance/spec.ts';
import { parseSeeds } from '../random/seeds.ts';
import { SAMPLER_NAMES, type SamplerName } from '../samplers/index.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import { TENSOR_QUANTITIES, type TensorQuantity } from '../record/recorders.ts';
import { checkSamplerFor, runSampling, type SamplingResult } from './sampling.ts';
import { decodeNpy, encodeNpy, writeNpy } from '../io/npy.ts';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.ts';
import { gridPng } from '../report/png.ts';
import { writeFigure } from '../report/figure.ts';
import { lineChart } from '../report/line.ts';
import { page, imgTag, table, escapeHtml } from '../report/html.ts';

/**
 * The spec of a sample study: the `memscope sample` flags (same names), validated and with their
 * defaults. `record` is the final list of per-step tensors (`--trajectory` adds `xt`).
 */
export const SampleSpecSchema = z.object({
  model: z.string().min(1).default('testbed'),
  prompts: z.string().optional(),
  captions: z.number().int().min(1).max(1000).optional(),
  cond: z.string().optional(),
  uncond: z.string().optional(),
  'prediction-type': z.enum(['epsilon', 'v_prediction', 'sample']).optional(),
  shape: z.array(z.number().int().positive()).optional(),
  'scheduler-config': z.string().optional(),
  sampler: z.enum(SAMPLER_NAMES as unknown as [SamplerName, ...SamplerName[]]).default('ddim'),
  steps: z.number().int().min(1).max(1000).default(50),
  eta: z.number().min(0).max(1).optional(),
  guidance: z.string().default('constant:7.5'),
  seeds: z.string().default('0-3'),
  'batch-size': z.number().int().positive().optional(),
  record: z.array(z.enum(TENSOR_QUANTITIES as unknown as [TensorQuantity, ...TensorQuantity[]])).default([]),
  prompt: z.string().optional(),
  'prompt-set': z.string().optional(),
  'image-root': z.string().optional(),
  'prompt-limit': z.number().int().positive().optional(),
  'image-size': z.number().int().positive().optional(),
  provider: z.enum(['cpu', 'cuda']).optional(),
  'negative-prompt': z.string().optional(),
  'unet-batch': z.number().int().positive().optional(),
  'vae-batch': z.number().int().positive().optional(),
});

/** A resolved sample spec. */
export type SampleSpec = z.infer<typeof SampleSpecSchema>;

/** What the sample study samples from (loaded by the CLI or a library caller). */
export interface SampleSource {
  readonly denoiser: Denoiser;
  /** Conditions to sample, in order (each with every seed). */
  readonly conds: readonly CondRef[];
  readonly config: SchedulerConfig;
  /** Latents → images (Stable Diffusion exports), or null. */
  readonly decode: ((x: Tensor) => Promise<Tensor>) | null;
  /** What the model is, for config.json. */
  readonly modelInfo: Record<string, unknown>;
  /**
   * Hash of the weights and configuration of the model and of everything loaded with it that
   * changes ε̂ (condition arrays, negative prompt, image size, provider): see `store/fingerprint.ts`.
   */
  readonly fingerprint: string;
}

/** One unit: a condition and a seed, with the settings `run` needs. */
export interface SampleUnit {
  readonly cond: CondRef;
  /** The condition's id and label (null: unconditional). */
  readonly condition: { readonly id: string; readonly label: string } | null;
  readonly seed: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly eta?: number;
  /** The guidance spec (`none` for unguided). */
  readonly guidance: string;
  readonly schedulerConfig: SchedulerConfig;
  readonly record: readonly TensorQuantity[];
}

/** One unit's result: its per-step series. */
export interface SampleUnitResult {
  readonly t: number[];
  readonly alphaBar: number[];
  /** s per step (null when unguided). */
  readonly s: number[] | null;
  /** d_t = ‖ε_c − ε_u‖² per step (null when unguided). */
  readonly d: number[] | null;
  /** The step where a switching schedule switched (null: never, or no switch). */
  readonly switchStep: number | null;
}

/** The sample study's summary: today's `SamplingResult` rebuilt from the stored units, plus what the report shows. */
export interface SampleSummary {
  readonly result: SamplingResult;
  /** Decoded images of a latent model, or null. */
  readonly images: Tensor | null;
  /** Per condition (in order): id and label (null: unconditional). */
  readonly conditions: readonly ({ id: string; label: string } | null)[];
  readonly seeds: readonly number[];
  /** The resolved settings written as config.json. */
  readonly resolved: Record<string, unknown>;
}

function conditionOf(d: Denoiser, c: CondRef): { id: string; label: string } | null {
  if (c === null) return null;
  const info: ConditionInfo | undefined = d.conditions[c];
  if (info === undefined) throw new Error(`condition ${c} is out of range (${d.name} has ${d.conditions.length})`);
  return { id: info.id, label: info.label };
}

/** The guidance label of a spec string (`none` stays `none`). */
function guidanceLabel(g: string): string {
  return g === 'none' ? 'none' : parseGuidance(g).label;
}

/** The settings shared by every unit of a spec (the part of the identity that is not condition or seed). */
function kindOf(spec: SampleSpec, source: SampleSource): Record<string, unknown> {
  return {
    model: source.fingerprint,
    sampler: spec.sampler,
    steps: spec.steps,
    eta: spec.eta ?? 0,
    scheduler: source.config,
    guidance: guidanceLabel(spec.guidance),
    record: [...spec.record],
    decoded: source.decode !== null,
  };
}

function npyBlob(name: string, dims: readonly number[], data: Float32Array): { name: string; bytes: Uint8Array } {
  const b = encodeNpy({ dims: [...dims], data });
  return { name, bytes: new Uint8Array(b.buffer, b.byteOffset, b.byteLength) };
}

function readNpyBytes(bytes: Uint8Array, name: string): Tensor {
  return decodeNpy(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), name);
}

/** The `sample` study. */
export const sampleStudy: Study<SampleSpec, SampleUnit, SampleUnitResult, SampleSummary, SampleSource> = {
  id: 'sample',
  schema: SampleSpecSchema as unknown as z.ZodType<SampleSpec>,

  plan(spec, source) {
    const seeds = parseSeeds(spec.seeds, '--seeds');
    checkSamplerFor(spec.sampler, source.denoiser);
    const kind = kindOf(spec, source);
    const batch = sha256Hex(canonicalJson(kind));
    const units: Unit<SampleUnit>[] = [];
    for (const cond of source.conds) {
      const condition = conditionOf(source.denoiser, cond);
      for (const seed of seeds) {
        const u: SampleUnit = {
          cond,
          condition,
          seed,
          sampler: spec.sampler,
          steps: spec.steps,
          ...(spec.eta === undefined ? {} : { eta: spec.eta }),
          guidance: spec.guidance,
          schedulerConfig: source.config,
          record: spec.record,
        };
        units.push({ key: unitKey('sample', { ...kind, condition: condition ?? 'uncond', seed }), spec: u, batch });
      }
    }
    return units;
  },

  async run(units, ctx): Promise<UnitOutput<SampleUnitResult>[]> {
    const src = ctx.source;
    const u0 = units[0]!.spec;
    const guidance = u0.guidance === 'none' ? undefined : parseGuidance(u0.guidance);
    const r = await runSampling({
      denoiser: src.denoiser,
      conds: [],
      seeds: [],
      rows: units.map((u) => ({ cond: u.spec.cond, seed: u.spec.seed })),
      sampler: u0.sampler,
      steps: u0.steps,
      config: u0.schedulerConfig,
      record: u0.record,
      ...(guidance ? { guidance } : {}),
      ...(u0.eta === undefined ? {} : { eta: u0.eta }),
    });
    const images = src.decode === null ? null : await src.decode(r.samples);
    const shape = r.samples.dims.slice(1);
    const per = numel(shape);
    const B = units.length;
    return units.map((_, i) => {
      const blobs = [npyBlob('x0.npy', shape, r.samples.data.slice(i * per, (i + 1) * per)), npyBlob('noise.npy', shape, r.noise.data.slice(i * per, (i + 1) * per))];
      if (images !== null) {
        const ish = images.dims.slice(1);
        const ip = numel(ish);
        blobs.push(npyBlob('image.npy', ish, images.data.slice(i * ip, (i + 1) * ip)));
      }
      for (const [q, t] of r.recorded) {
        const steps = t.dims[0]!;
        const tail = t.dims.slice(2);
        const tp = numel(tail);
        const out = new Float32Array(steps * tp);
        for (let st = 0; st < steps; st++) out.set(t.data.subarray((st * B + i) * tp, (st * B + i + 1) * tp), st * tp);
        blobs.push(npyBlob(`${q}.npy`, [steps, ...tail], out));
      }
      const guided = guidance !== undefined;
      return {
        result: {
          t: [...r.t],
          alphaBar: [...r.alphaBar],
          s: guided ? r.s.map((row) => row[i]!) : null,
          d: guided ? r.d.map((row) => row[i]!) : null,
          switchStep: r.switchSteps[i] ?? null,
        },
        blobs,
      };
    });
  },

  async reduce(stored, blobs, spec) {
    return reduceSample(stored, blobs, spec);
  },

  async report(summary, dir) {
    await writeSampleResults(dir, summary);
  },
};

/** Rebuild the sampling result from stored units (plan order: conditions × seeds). */
async function reduceSample(stored: readonly StoredUnit<SampleUnit, SampleUnitResult>[], blobs: BlobReader, spec: SampleSpec): Promise<SampleSummary> {
  if (stored.length === 0) throw new Error('sample: no units to reduce');
  const seeds = parseSeeds(spec.seeds, '--seeds');
  const R = stored.length;
  const stack = async (name: string): Promise<Tensor> => {
    const parts: Tensor[] = [];
    for (const u of stored) parts.push(readNpyBytes(await blobs.readBlob(u as StoredUnit<unknown, unknown>, name), name));
    const dims = parts[0]!.dims;
    const per = numel(dims);
    const data = new Float32Array(R * per);
    parts.forEach((p, i) => data.set(p.data, i * per));
    return { dims: [R, ...dims], data };
  };
  const samples = await stack('x0.npy');
  const noise = await stack('noise.npy');
  const images = stored[0]!.blobs['image.npy'] === undefined ? null : await stack('image.npy');
  const recorded = new Map<TensorQuantity, Tensor>();
  for (const q of spec.record) {
    // [R, steps, ...] → [steps, R, ...]
    const t = await stack(`${q}.npy`);
    const steps = t.dims[1]!;
    const tail = t.dims.slice(2);
    const tp = numel(tail);
    const out = new Float32Array(t.data.length);
    for (let r = 0; r < R; r++) for (let st = 0; st < steps; st++) out.set(t.data.subarray((r * steps + st) * tp, (r * steps + st + 1) * tp), (st * R + r) * tp);
    recorded.set(q, { dims: [steps, R, ...tail], data: out });
  }
  const first = stored[0]!.result;
  const nSteps = first.t.length;
  const s: number[][] = Array.from({ length: nSteps }, () => []);
  const d: number[][] = Array.from({ length: nSteps }, () => []);
  for (const u of stored) {
    if (u.result.s !== null) u.result.s.forEach((v, st) => s[st]!.push(v));
    if (u.result.d !== null) u.result.d.forEach((v, st) => d[st]!.push(v));
  }
  const conditions: ({ id: string; label: string } | null)[] = [];
  for (let i = 0; i < R; i += seeds.length) conditions.push(stored[i]!.spec.condition);
  const result: SamplingResult = {
    samples,
    noise,
    rows: stored.map((u) => ({ cond: u.spec.cond, seed: u.spec.seed })),
    t: first.t,
    alphaBar: first.alphaBar,
    s,
    d,
    switchSteps: stored.map((u) => u.result.switchStep),
    recorded,
    seconds: stored.reduce((a, u) => a + u.seconds, 0),
  };
  return { result, images, conditions, seeds, resolved: {} };
}

/** Write the results folder of `memscope sample` (config.json, samples / noise / recorded .npy, guidance.json, grid.png, d_t.svg, report.html). */
export async function writeSampleResults(dir: string, summary: SampleSummary): Promise<void> {
  const { result: r, images, conditions, seeds, resolved } = summary;
  const condId = (i: number): string => {
    const c = conditions[Math.floor(i / seeds.length)];
    return c === null || c === undefined ? 'uncond' : c.id;
  };
  const condLabel = (i: number): string => {
    const c = conditions[Math.floor(i / seeds.length)];
    return c === null || c === undefined ? 'uncond' : c.label;
  };
  await writeJsonAtomic(join(dir, 'config.json'), resolved);
  if (images !== null) await writeNpy(join(dir, 'images.npy'), images);
  await writeNpy(join(dir, 'samples.npy'), r.samples);
  await writeNpy(join(dir, 'noise.npy'), r.noise);
  for (const [q, t] of r.recorded) await writeNpy(join(dir, q === 'xt' ? 'trajectory.npy' : `${q}.npy`), t);
  await writeJsonAtomic(join(dir, 'guidance.json'), {
    rows: r.rows.map((x, i) => ({ cond: condId(i), seed: x.seed })),
    t: r.t,
    alphaBar: r.alphaBar,
    s: r.s,
    d: r.d,
    switchSteps: r.switchSteps,
    seconds: r.seconds,
  });
  const shown = images ?? r.samples;
  const viewable = shown.dims.length === 4 && (shown.dims[1] === 1 || shown.dims[1] === 3);
  const png = viewable ? await gridPng(shown, { cols: seeds.length, zoom: shown.dims[2]! <= 32 ? 3 : 1 }) : null;
  if (png) await writeFileAtomic(join(dir, 'grid.png'), png);
  const N = seeds.length;
  const series = r.s[0]?.length
    ? conditions.map((c, ci) => ({
        label: c === null ? 'uncond' : c.label,
        x: r.t,
        y: r.t.map((_, st) => {
          let acc = 0;
          for (let n = 0; n < N; n++) acc += r.d[st]![ci * N + n]!;
          return acc / N;
        }),
      }))
    : [];
  const chart = series.length ? (await writeFigure(dir, 'd_t', lineChart({ title: 'd_t = ‖ε_c − ε_u‖² (mean over seeds)', xLabel: 'timestep t', yLabel: 'd_t', series, logY: true, reverseX: true }))).markup : '';
  const rows = r.rows.map((x, i) => [condLabel(i), x.seed, r.switchSteps[i] === null ? '—' : String(r.switchSteps[i])]);
  const body = [
    `<p class="note">Rows: conditions; columns: seeds ${escapeHtml(seeds.join(', '))}. Guidance <code>${escapeHtml(String(resolved['guidance']))}</code>, sampler ${escapeHtml(String(resolved['sampler']))}, ${String(resolved['steps'])} steps, ${r.seconds.toFixed(2)} s.</p>`,
    png ? imgTag(png, 'samples') : '<p>(samples are not images; see samples.npy)</p>',
    chart,
    '<h2>Transition points</h2>',
    table(['condition', 'seed', 'switch step'], rows),
  ].join('\n');
  await writeFileAtomic(join(dir, 'report.html'), page('memscope sample', body));
}
