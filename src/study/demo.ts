/**
 * The demo study (`memscope demo`, `npm start`): on a trained model or the analytic testbed of the embedded data,
 * sample memorized captions and generalizing class prompts under plain CFG, DTP and OG+DTP
 * (Jain et al.), and measure which samples copy their training image.
 *
 * On the study engine ({@link demoStudy}) its units are the sample study's units — one per
 * (schedule, condition, seed), keyed exactly as `memscope sample` keys them — so `memscope sample`
 * and `memscope demo` share samples, and a rerun samples nothing. The units of one schedule share
 * a batch value: the runner puts all of a schedule's rows into one sampler call, as
 * {@link runDemo} (the direct path, no store) does.
 */
import { z } from 'zod';
import type { CondRef, Denoiser } from '../denoisers/denoiser.ts';
import type { Study, StoredUnit, Unit } from '../engine/study.ts';
import { parseGuidance } from '../guidance/spec.ts';
import { runSampling, type SamplingResult } from './sampling.ts';
import { parseConditions } from './conditions.ts';
import type { Tensor } from '../tensor/tensor.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import { SAMPLER_NAMES, type SamplerName } from '../samplers/index.ts';
import { CopyDetector, type CopyStat } from '../metrics/copy.ts';
import { sampleStudy, SampleSpecSchema, type SampleSource, type SampleSpec, type SampleUnit, type SampleUnitResult } from './sample-study.ts';
import type { StudySource } from './source.ts';

/** Settings of the direct demo ({@link runDemo}); the CLI's defaults are {@link DemoSpecSchema}'s. */
export interface DemoSettings {
  readonly memorized: string;
  readonly generalizing: string;
  readonly seeds: readonly number[];
  readonly guidance: readonly string[];
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly config: SchedulerConfig;
}

/** Per schedule and condition kind: the copy figures. */
export interface DemoSummaryRow {
  readonly guidance: string;
  readonly kind: 'memorized caption' | 'class prompt';
  readonly samples: number;
  /** Fraction whose nearest training image is the caption's own image (captions only). */
  readonly nearestIsTarget: number | null;
  /** Fraction passing the ratio test d1/d2 < 1/3 (SPEC §5.4). */
  readonly ratioCopy: number;
  /** Mean mean-centred pixel cosine to the nearest training image. */
  readonly similarity: number;
  /** Median switch step over samples that switched (switching schedules only). */
  readonly medianSwitchStep: number | null;
  /** Fraction of samples whose schedule never switched. */
  readonly neverSwitched: number | null;
}

/** One schedule's run and its copy statistics. */
export interface DemoRun {
  readonly guidance: string;
  readonly result: SamplingResult;
  readonly copies: readonly CopyStat[];
}

/** Everything the demo produced. */
export interface DemoOutcome {
  readonly conds: readonly CondRef[];
  readonly runs: readonly DemoRun[];
  readonly summary: readonly DemoSummaryRow[];
}

function median(v: readonly number[]): number | null {
  if (!v.length) return null;
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function isCaption(d: Denoiser, c: CondRef): boolean {
  return c !== null && d.conditions[c]!.kind === 'caption';
}

/** What the demo samples: a denoiser whose caption conditions name their training images. */
export interface DemoSource {
  readonly denoiser: Denoiser;
  /** The training images in image space (`[n, 1, 28, 28]`), what samples are compared with. */
  readonly trainImages: Tensor;
  /** What the model is, for the report. */
  readonly description: string;
  /** Model-space samples as images (the source's codec: crops a trained model's 32×32 padding). */
  toImageSpace(x: Tensor): Promise<Tensor>;
  /** The rows of `trainImages` the model was trained on (model.json `imagePool`; null = all): copies are tested against these. */
  readonly data?: { readonly imagePool: readonly number[] | null };
}

/** Run the demo study on a testbed or a trained model, sampling directly (no store; {@link demoStudy} is the stored path). */
export async function runDemo(src: DemoSource, s: DemoSettings, log: (msg: string) => void = () => {}): Promise<DemoOutcome> {
  const d = src.denoiser;
  const conds = demoConditions(d, s.memorized, s.generalizing);
  const runs: { guidance: string; result: SamplingResult }[] = [];
  for (const g of s.guidance) {
    const schedule = parseGuidance(g);
    const result = await runSampling({ denoiser: d, conds, seeds: s.seeds, sampler: s.sampler, steps: s.steps, config: s.config, guidance: schedule });
    runs.push({ guidance: schedule.label, result });
    log(`  ${schedule.label.padEnd(14)} ${result.rows.length} samples in ${result.seconds.toFixed(1)} s`);
  }
  return scoreDemo(src, conds, runs);
}

/** How many memorized captions `--memorized auto` takes. */
export const DEMO_AUTO_CAPTIONS = 4;

/**
 * The memorized selection `auto` stands for on `d`: the first {@link DEMO_AUTO_CAPTIONS} captions
 * of the highest duplication count the model records (the `graded` model: 4 of its 100× captions),
 * else `caption:0-3` (the old duplication model, the testbed).
 */
export function autoMemorized(d: Denoiser): CondRef[] {
  const counts = d.conditions.flatMap((c) => (c.kind === 'caption' && c.duplicates !== undefined ? [c.duplicates] : []));
  if (counts.length === 0) return parseConditions(`caption:0-${DEMO_AUTO_CAPTIONS - 1}`, d, 'memorized');
  const top = Math.max(...counts);
  return parseConditions(`dup:${top}`, d, 'memorized').slice(0, DEMO_AUTO_CAPTIONS);
}

/** The demo's conditions: the memorized ones (`memorized` spec; `auto`: {@link autoMemorized}), then the generalizing ones. */
export function demoConditions(d: Denoiser, memorized: string, generalizing: string): CondRef[] {
  const mem = memorized === 'auto' ? autoMemorized(d) : parseConditions(memorized, d, 'memorized');
  return [...mem, ...parseConditions(generalizing, d, 'generalizing')];
}

/**
 * Copy statistics of the demo's samples (one sampling result per schedule, rows = `conds` × seeds):
 * per schedule and condition kind, how many samples copy their training image.
 */
export async function scoreDemo(src: DemoSource, conds: readonly CondRef[], sampled: readonly { guidance: string; result: SamplingResult }[]): Promise<DemoOutcome> {
  const d = src.denoiser;
  const detector = await CopyDetector.create(src.trainImages, src.data?.imagePool ?? null);
  const runs: DemoRun[] = [];
  const summary: DemoSummaryRow[] = [];
  try {
    for (const { guidance, result } of sampled) {
      const schedule = parseGuidance(guidance);
      const targets = result.rows.map((r) => (r.cond === null ? null : (d.conditions[r.cond]!.targets?.[0] ?? null)));
      const copies = await detector.stats(await src.toImageSpace(result.samples), targets);
      runs.push({ guidance: schedule.label, result, copies });
      for (const kind of ['memorized caption', 'class prompt'] as const) {
        const idx = result.rows.map((r, i) => [r, i] as const).filter(([r]) => isCaption(d, r.cond) === (kind === 'memorized caption')).map(([, i]) => i);
        if (!idx.length) continue;
        const frac = (f: (c: CopyStat) => boolean): number => idx.filter((i) => f(copies[i]!)).length / idx.length;
        const sw = idx.map((i) => result.switchSteps[i]!);
        const switching = schedule.switchesTo !== undefined;
        summary.push({
          guidance: schedule.label,
          kind,
          samples: idx.length,
          nearestIsTarget: kind === 'memorized caption' ? frac((c) => c.nearestIsTarget === true) : null,
          ratioCopy: frac((c) => c.ratioCopy),
          similarity: idx.reduce((a, i) => a + copies[i]!.similarity, 0) / idx.length,
          medianSwitchStep: switching ? median(sw.filter((x): x is number => x !== null)) : null,
          neverSwitched: switching ? sw.filter((x) => x === null).length / sw.length : null,
        });
      }
    }
  } finally {
    await detector.dispose();
  }
  return { conds: [...conds], runs, summary };
}

/** The default schedules of the demo: plain CFG, DTP and OG+DTP at λ = 7.5. */
export const DEMO_GUIDANCE = ['constant:7.5', 'dtp:7.5', 'og+dtp:7.5'] as const;

/** The spec of a demo study (`memscope demo`'s flags, resolved; defaults here). */
export const DemoSpecSchema = z.object({
  /** The resolved `--model` (`testbed` or a model directory); not part of any unit key (the fingerprint is). */
  model: z.string().min(1),
  memorized: z.string().default('auto'),
  generalizing: z.string().default('class:0-3'),
  seeds: z.string().default('0-7'),
  /** Guidance schedules, by label (each once). */
  guidance: z.array(z.string().min(1)).min(1).default([...DEMO_GUIDANCE]),
  sampler: z.enum(SAMPLER_NAMES as unknown as [SamplerName, ...SamplerName[]]).default('ddim'),
  steps: z.number().int().min(1).max(1000).default(50),
});
/** A resolved demo spec. */
export type DemoSpec = z.infer<typeof DemoSpecSchema>;

/** What the demo study samples from: the model with its training images, the conditions, the scheduler config and the model's fingerprint. */
export interface DemoStudySource {
  readonly src: DemoSource;
  /** The demo's conditions ({@link demoConditions}), sampled with every seed under every schedule. */
  readonly conds: readonly CondRef[];
  readonly config: SchedulerConfig;
  /** The model fingerprint of `memscope sample` for the same model ({@link demoFingerprint}): the units are shared. */
  readonly fingerprint: string;
}

/** The demo study's summary: one sampling result per schedule, in spec order. */
export interface DemoSamples {
  readonly runs: readonly { readonly guidance: string; readonly result: SamplingResult }[];
}

/** The sample spec of one schedule of a demo spec (the spec `memscope sample` resolves for the same settings). */
export function demoSampleSpec(spec: DemoSpec, guidance: string): SampleSpec {
  return SampleSpecSchema.parse({ model: spec.model, sampler: spec.sampler, steps: spec.steps, guidance, seeds: spec.seeds, record: [] }) as SampleSpec;
}

function sampleSourceOf(s: DemoStudySource): SampleSource {
  return { denoiser: s.src.denoiser, conds: s.conds, config: s.config, decode: null, modelInfo: {}, fingerprint: s.fingerprint };
}

/**
 * The fingerprint `memscope sample` gives the same model (so the demo's units are its units): the
 * testbed's training data (the shipped subset, hashed in its manifest) and caption targets, else
 * the source's fingerprint (`study/fingerprint.ts`; a trained model's folder).
 */
export async function demoFingerprint(src: StudySource): Promise<string> {
  return (await src.fingerprint()) as string;
}

/**
 * The demo as an engine study: every schedule's sample-study units (conditions × seeds), in spec
 * order; `run` is the sample study's; `reduce` rebuilds each schedule's sampling result. The copy
 * statistics ({@link scoreDemo}) are computed from the summary.
 */
export const demoStudy: Study<DemoSpec, SampleUnit, SampleUnitResult, DemoSamples, DemoStudySource> = {
  id: 'demo',
  schema: DemoSpecSchema as unknown as z.ZodType<DemoSpec>,

  async plan(spec, source) {
    const units: Unit<SampleUnit>[] = [];
    const labels = new Set<string>();
    for (const g of spec.guidance) {
      const label = parseGuidance(g).label;
      if (labels.has(label)) throw new Error(`guidance: ${label} is given twice`);
      labels.add(label);
      units.push(...(await sampleStudy.plan(demoSampleSpec(spec, g), sampleSourceOf(source))));
    }
    return units;
  },

  run: (units, ctx) => sampleStudy.run(units, { source: sampleSourceOf(ctx.source), ...(ctx.signal ? { signal: ctx.signal } : {}) }),

  async reduce(stored, blobs, spec) {
    const per = stored.length / spec.guidance.length;
    if (!Number.isInteger(per) || per === 0) throw new Error(`demo: ${stored.length} stored units for ${spec.guidance.length} schedules`);
    const runs: { guidance: string; result: SamplingResult }[] = [];
    for (let g = 0; g < spec.guidance.length; g++) {
      const part = stored.slice(g * per, (g + 1) * per) as StoredUnit<SampleUnit, SampleUnitResult>[];
      const { result } = await sampleStudy.reduce(part, blobs, demoSampleSpec(spec, spec.guidance[g]!));
      runs.push({ guidance: parseGuidance(spec.guidance[g]!).label, result });
    }
    return { runs };
  },
};
