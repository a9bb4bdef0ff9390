/**
 * The demo study (`memscope demo`, `npm start`): on a trained model or the analytic testbed of the embedded data,
 * sample memorized captions and generalizing class prompts under plain CFG, DTP and OG+DTP
 * (Jain et al.), and measure which samples copy their training image.
 */
import type { CondRef, Denoiser } from '../denoisers/denoiser.ts';
import { parseGuidance } from '../guidance/spec.ts';
import { runSampling, type SamplingResult } from './sampling.ts';
import { parseConditions } from './conditions.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { crop32to28 } from './validate.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import type { SamplerName } from '../samplers/index.ts';
import { CopyDetector, type CopyStat } from '../metrics/copy.ts';

/** Settings of the demo study (defaults in `DEMO_DEFAULTS`). */
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
  /** The 28×28 training images (`[n, 1, 28, 28]`); 32×32 samples of trained models are cropped to compare. */
  readonly trainImages: Tensor;
  /** What the model is, for the report. */
  readonly description: string;
}

/** Run the demo study on a testbed or a trained model. */
export async function runDemo(src: DemoSource, s: DemoSettings, log: (msg: string) => void = () => {}): Promise<DemoOutcome> {
  const d = src.denoiser;
  const conds = [...parseConditions(s.memorized, d, 'memorized'), ...parseConditions(s.generalizing, d, 'generalizing')];
  const detector = await CopyDetector.create(src.trainImages);
  const runs: DemoRun[] = [];
  const summary: DemoSummaryRow[] = [];
  try {
    for (const g of s.guidance) {
      const schedule = parseGuidance(g);
      const result = await runSampling({ denoiser: d, conds, seeds: s.seeds, sampler: s.sampler, steps: s.steps, config: s.config, guidance: schedule });
      const targets = result.rows.map((r) => (r.cond === null ? null : (d.conditions[r.cond]!.targets?.[0] ?? null)));
      const copies = await detector.stats(d.shape[1] === 32 ? crop32to28(result.samples) : result.samples, targets);
      runs.push({ guidance: schedule.label, result, copies });
      log(`  ${schedule.label.padEnd(14)} ${result.rows.length} samples in ${result.seconds.toFixed(1)} s`);
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
  return { conds, runs, summary };
}
