/**
 * The Kim et al. study (issue 4, SPEC §3): for each prompt, seed set and guidance scale, sample
 * with the analyses streaming from the step events (memory O(rows·d)), then score every prompt's
 * samples with a copy descriptor (SPEC §3.8) and relate the per-prompt statistics to the score.
 *
 * Two passes per batch of prompts: pass 1 uses each prompt's known target x (memorized captions);
 * pass 2 replays the same seeds — the samplers are deterministic given the seeds — with each
 * seed's own final sample x_0^(n) as x ("target unknown", SPEC §3.6), which is the only way to get
 * that variant without keeping every x_t. Finished batches are cached in a work folder so a killed
 * run resumes without redoing them.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CondRef } from '../denoisers/denoiser.ts';
import { parseGuidance } from '../guidance/spec.ts';
import type { SamplerName } from '../samplers/index.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import type { StepObserver } from '../record/recorders.ts';
import { type Tensor, numel } from '../tensor/tensor.ts';
import { KimAccumulator, forwardNoisedLoss, type KimGroupStats, type StepSeries } from '../analysis/kim.ts';
import { bootstrapCorrelation, type CorrelationCI } from '../analysis/correlation.ts';
import { MIN_N, allOf, fisherZInterval, judge, meanInterval, notMeasured, pairedDifferenceInterval, welchDifferenceInterval, wilsonInterval, type ClaimSide, type Interval, type MeanEstimate, type Verdict } from '../analysis/verdict.ts';
import type { Descriptor } from '../metrics/descriptor.ts';
import { memorizationScore, scoreRecord, type MemorizationScore, type ScoreRecord } from '../metrics/score.ts';
import { writeJsonAtomic } from '../io/atomic.ts';
import { runSampling, initialNoise } from './sampling.ts';
import type { StudySource } from './source.ts';

/** Settings of a Kim study (defaults in `KIM_DEFAULTS`). */
export interface KimSettings {
  /** Condition indices to study (memorized = conditions with targets). */
  readonly prompts: readonly number[];
  readonly seeds: readonly number[];
  /** Guidance scales s (Kim et al.: 1.0 and 7.5). */
  readonly scales: readonly number[];
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly config: SchedulerConfig;
  /** Memorization-score threshold (SPEC §3.8: 0.75). */
  readonly threshold: number;
  /** Run the replay pass for the target-unknown variant (default true). */
  readonly unknownTarget: boolean;
  /** Scales at which k(T) and x̂0(T) are reported (the x̂0(T) ≈ s·x figure). */
  readonly kScales: readonly number[];
  /** Prompts per kind drawn as trajectory fans (default 2). */
  readonly fanPrompts: number;
  /** Prompts per sampler call (default 8). */
  readonly promptsPerBatch: number;
  /** Seed of the bootstrap intervals. */
  readonly bootstrapSeed: number;
  /** Inference step at which diversity is correlated with the score (SPEC §3.4: after 10 of 50 steps). */
  readonly traceStep: number;
  /** The forward-noised (training) loss of memorized prompts is evaluated at every k-th inference step's level (default 5; 0 = off). */
  readonly forwardLossEvery: number;
}

/** Defaults of the settings that have one. */
export const KIM_DEFAULTS = {
  scales: [1, 7.5],
  sampler: 'ddim' as SamplerName,
  steps: 50,
  threshold: 0.75,
  unknownTarget: true,
  kScales: [0, 0.5, 1, 2, 4, 7.5, 10],
  fanPrompts: 2,
  promptsPerBatch: 8,
  bootstrapSeed: 0,
  traceStep: 10,
  forwardLossEvery: 5,
} as const;

/** Per-prompt statistics without the sample buffer. */
export type KimStats = Omit<KimGroupStats, 'finalSamples'>;

/** One prompt at one guidance scale. */
export interface KimPromptResult {
  readonly cond: number;
  readonly id: string;
  readonly label: string;
  /** Ground truth: the condition is tied to a training image (a memorized caption). */
  readonly memorized: boolean;
  readonly target: number | null;
  readonly scale: number;
  /** Statistics with x = the known target (memorized prompts), else null. */
  readonly known: KimStats | null;
  /** Statistics with x = each seed's own final sample (target unknown), when the replay ran. */
  readonly unknown: KimStats | null;
  readonly score: MemorizationScore;
  /** Scores of the same samples under the extra descriptors, by descriptor name. */
  readonly extraScores: Readonly<Record<string, MemorizationScore>>;
  /** The forward-noised loss (SPEC §3.1: x_t from the forward process of x through the conditional model, s = 1: the literal training loss) at `steps` (memorized prompts; the same for every scale). */
  readonly forward: { readonly steps: number[]; readonly lossX0: StepSeries; readonly lossEps: StepSeries } | null;
  /** Up to 4 final samples in image space, flattened `[k, ...imageShape]` (for the report). */
  readonly preview: number[];
}

/** A correlation across prompts of one statistic with the memorization score. */
export interface KimCorrelation {
  readonly scale: number;
  readonly statistic: string;
  /** Which prompts: all, or memorized only (the target-known variant). */
  readonly prompts: 'all' | 'memorized';
  readonly pearson: CorrelationCI;
  readonly spearman: CorrelationCI;
}

/** The first-step overestimation per prompt: k(T; s) = kU + s·(kC − kU) (exact, SPEC §3.2). */
export interface FirstStepK {
  readonly cond: number;
  readonly memorized: boolean;
  readonly kU: number;
  readonly kC: number;
  /** k(T) at each of `kScales`. */
  readonly k: number[];
}

/** A trajectory fan: one prompt's seeds projected on the first two PCs of its pooled x_t. */
export interface KimFan {
  readonly cond: number;
  readonly label: string;
  readonly memorized: boolean;
  readonly scale: number;
  /** Per seed: the (x_t) steps as flattened `[steps+1, d]` (x_T … x_0). */
  readonly trajectories: Float32Array;
  readonly paths: number;
  readonly steps: number;
  readonly d: number;
}

/** x̂0(T) images for one prompt and seed at each of `kScales`. */
export interface FirstStepImages {
  readonly cond: number;
  readonly label: string;
  readonly memorized: boolean;
  /** `[kScales.length, ...imageShape]`. */
  readonly images: Tensor;
}

/** Everything the study produced. */
export interface KimStudy {
  readonly settings: KimSettings;
  readonly model: string;
  /** Dimension d of the model's space (elements per sample). */
  readonly dim: number;
  /** Shape of one training image (the space samples are scored in), e.g. `[1, 28, 28]`. */
  readonly imageShape: readonly number[];
  readonly scoreRecord: ScoreRecord;
  /** Records of the extra descriptors' scores. */
  readonly extraScoreRecords: readonly ScoreRecord[];
  readonly results: readonly KimPromptResult[];
  readonly correlations: readonly KimCorrelation[];
  readonly firstStepK: readonly FirstStepK[];
  readonly firstStepImages: readonly FirstStepImages[];
  readonly fans: readonly KimFan[];
  /** Seconds spent in the sampler (model calls included) and in the streaming analyses. */
  readonly timing: { readonly samplingSeconds: number; readonly analysisSeconds: number; readonly scoringSeconds: number; readonly cachedBatches: number };
}

function stripSamples(s: KimGroupStats): KimStats {
  const { finalSamples: _drop, ...rest } = s;
  void _drop;
  return rest;
}

/** A stable short hash of the settings that determine the results (for the resume cache). */
function settingsKey(src: StudySource, s: KimSettings, descriptors: readonly Descriptor[]): string {
  // settings that do not change a cached batch (computed after the batches) stay out of the key
  const { forwardLossEvery: _f, ...batchSettings } = s;
  void _f;
  const key = JSON.stringify({ model: src.spec, denoiser: src.denoiser.name, s: { ...batchSettings, config: s.config }, descriptors: descriptors.map((d) => d.info) });
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}

/**
 * Run the Kim et al. analysis suite (SPEC §3.1–3.8) on `src` with `descriptor` as f. Batches
 * already finished in `workDir` (same settings) are loaded instead of recomputed.
 */
export async function runKimStudy(
  src: StudySource,
  s: KimSettings,
  descriptor: Descriptor,
  opts: { workDir?: string; log?: (m: string) => void; /** More descriptors scored on the same samples (reported beside the primary score). */ extraDescriptors?: readonly Descriptor[] } = {},
): Promise<KimStudy> {
  const extras = opts.extraDescriptors ?? [];
  const log = opts.log ?? (() => {});
  const d = src.denoiser;
  if (s.prompts.length === 0) throw new Error('--prompts: need at least one prompt');
  if (s.seeds.length < 2) throw new Error(`--seeds: the diversity and alignment analyses need at least 2 seeds, got ${s.seeds.length}`);
  for (const p of s.prompts) if (!Number.isInteger(p) || p < 0 || p >= d.conditions.length) throw new Error(`--prompts: condition index ${p} is out of range (0..${d.conditions.length - 1})`);
  const N = s.seeds.length;
  const per = numel(d.shape);
  const work = opts.workDir ? join(opts.workDir, settingsKey(src, s, [descriptor, ...extras])) : null;
  if (work) await mkdir(work, { recursive: true });

  const targetOf = (c: number): number | null => d.conditions[c]!.targets?.[0] ?? null;
  const imageShape = src.trainImages.dims.slice(1);
  const imgPer = numel(imageShape);
  const trainEmb = await descriptor.embed(src.trainImages);
  const extraEmb = await Promise.all(extras.map((x) => x.embed(src.trainImages)));
  const results: KimPromptResult[] = [];
  let samplingSeconds = 0;
  let analysisSeconds = 0;
  let scoringSeconds = 0;
  let cachedBatches = 0;
  const P = Math.max(1, s.promptsPerBatch);

  for (const scale of s.scales) {
    const schedule = parseGuidance(`constant:${scale}`);
    for (let b0 = 0; b0 < s.prompts.length; b0 += P) {
      const batch = s.prompts.slice(b0, b0 + P);
      const file = work ? join(work, `s${scale}-b${b0}.json`) : null;
      if (file && (await stat(file).then(() => true, () => false))) {
        results.push(...(JSON.parse(await readFile(file, 'utf8')) as KimPromptResult[]));
        cachedBatches++;
        continue;
      }
      const groups = batch.map((_, i) => ({ rows: Array.from({ length: N }, (_, n) => i * N + n) }));
      const run = async (targets: (Float32Array | null)[]): Promise<KimGroupStats[]> => {
        const acc = new KimAccumulator({ groups, targets });
        let ms = 0;
        const timed: StepObserver = async (e) => {
          const t0 = performance.now();
          await acc.observe(e);
          ms += performance.now() - t0;
        };
        const r = await runSampling({ denoiser: d, conds: batch, seeds: s.seeds, sampler: s.sampler, steps: s.steps, config: s.config, guidance: schedule, observers: [timed] });
        analysisSeconds += ms / 1000;
        samplingSeconds += r.seconds - ms / 1000;
        return acc.result();
      };
      const knownTargets = batch.flatMap((c) => {
        const t = targetOf(c);
        const x = t === null ? null : src.toModelSpace(t).data;
        return Array.from({ length: N }, () => x);
      });
      const pass1 = await run(knownTargets);
      const pass2 = s.unknownTarget ? await run(pass1.flatMap((g) => Array.from({ length: N }, (_, n) => g.finalSamples.slice(n * per, (n + 1) * per)))) : null;
      const t0 = performance.now();
      const out: KimPromptResult[] = [];
      for (let i = 0; i < batch.length; i++) {
        const c = batch[i]!;
        const info = d.conditions[c]!;
        const target = targetOf(c);
        const gen = await src.toImageSpace({ dims: [N, ...d.shape], data: pass1[i]!.finalSamples });
        const tgt = target === null ? null : { dims: [1, ...imageShape], data: src.trainImages.data.slice(target * imgPer, (target + 1) * imgPer) };
        const score = await memorizationScore(descriptor, gen, tgt, { threshold: s.threshold, trainEmbeddings: trainEmb });
        const extraScores: Record<string, MemorizationScore> = {};
        for (let k = 0; k < extras.length; k++) extraScores[extras[k]!.info.name] = await memorizationScore(extras[k]!, gen, tgt, { threshold: s.threshold, trainEmbeddings: extraEmb[k]! });
        out.push({
          cond: c,
          id: info.id,
          label: info.label,
          memorized: target !== null,
          target,
          scale,
          known: target === null ? null : stripSamples(pass1[i]!),
          unknown: pass2 ? stripSamples(pass2[i]!) : null,
          score,
          extraScores,
          forward: null,
          preview: Array.from(gen.data.subarray(0, Math.min(4, N) * imgPer)),
        });
      }
      scoringSeconds += (performance.now() - t0) / 1000;
      if (file) await writeJsonAtomic(file, out);
      results.push(...out);
      log(`s=${scale}: prompts ${b0 + 1}–${b0 + batch.length} of ${s.prompts.length} done`);
    }
  }

  if (s.forwardLossEvery > 0) {
    // the literal training loss uses the conditional model (s = 1) whatever the sampling scale:
    // computed once per memorized prompt on the inference levels, attached to every scale's result
    const t0 = performance.now();
    const done = new Map<number, KimPromptResult['forward']>();
    for (let i = 0; i < results.length; i++) {
      const r = results[i]!;
      if (!r.known || r.target === null) continue;
      let fwd = done.get(r.cond);
      if (fwd === undefined) {
        const steps = r.known.t.map((_, k) => k).filter((k) => k % s.forwardLossEvery === 0);
        const levels = steps.map((k) => ({ t: r.known!.t[k]!, alphaBar: r.known!.alphaBar[k]! }));
        const f = await forwardNoisedLoss(d, { cond: r.cond, x: src.toModelSpace(r.target).data, levels, seeds: s.seeds, guidanceScale: 1 });
        fwd = { steps, lossX0: f.lossX0, lossEps: f.lossEps };
        done.set(r.cond, fwd);
      }
      results[i] = { ...r, forward: fwd };
    }
    samplingSeconds += (performance.now() - t0) / 1000;
  }
  const correlations = kimCorrelations(results, s);
  const firstStepK = firstStepKs(results, s);
  const firstStepImages = await firstStepPictures(src, s, results);
  const fans = await trajectoryFans(src, s, results);
  if (work) await rm(work, { recursive: true, force: true });
  await descriptor.dispose?.();
  for (const x of extras) await x.dispose?.();
  return {
    settings: s,
    model: src.description,
    dim: per,
    imageShape,
    scoreRecord: scoreRecord(descriptor, { threshold: s.threshold }),
    extraScoreRecords: extras.map((x) => scoreRecord(x, { threshold: s.threshold })),
    results,
    correlations,
    firstStepK,
    firstStepImages,
    fans,
    timing: { samplingSeconds, analysisSeconds, scoringSeconds, cachedBatches },
  };
}

/** The statistic of a prompt used for the cross-prompt correlations. */
export function promptStatistic(r: KimPromptResult, name: string, variant: 'known' | 'unknown', traceStep: number): number {
  const st = variant === 'known' ? r.known : r.unknown;
  const any = r.known ?? r.unknown;
  switch (name) {
    case 'D_x':
      return st?.deviation.dX ?? NaN;
    case 'D_noise':
      return st?.deviation.dNoise ?? NaN;
    case 'D_total':
      return st?.deviation.dTotal ?? NaN;
    case 'trace':
      return any?.trace[traceStep] ?? NaN;
    case 'pc1':
      return any ? mean(any.pc1.slice(0, traceStep)) : NaN;
    default:
      throw new Error(`unknown statistic ${name}`);
  }
}

function mean(v: readonly number[]): number {
  const f = v.filter(Number.isFinite);
  return f.length ? f.reduce((a, b) => a + b, 0) / f.length : NaN;
}

/** Pearson and Spearman (95 % bootstrap intervals) of each statistic with the score, per scale (SPEC §3.4, §3.7). */
export function kimCorrelations(results: readonly KimPromptResult[], s: Pick<KimSettings, 'scales' | 'bootstrapSeed' | 'traceStep'>): KimCorrelation[] {
  const out: KimCorrelation[] = [];
  for (const scale of s.scales) {
    const rs = results.filter((r) => r.scale === scale);
    const add = (statistic: string, prompts: 'all' | 'memorized', variant: 'known' | 'unknown'): void => {
      const sel = prompts === 'all' ? rs : rs.filter((r) => r.memorized);
      const x = sel.map((r) => promptStatistic(r, statistic, variant, s.traceStep));
      const y = sel.map((r) => r.score.score);
      if (x.filter(Number.isFinite).length < 3) return;
      const label = statistic.startsWith('D_') ? `${statistic} (${variant === 'known' ? 'x = target' : 'x = own sample'})` : statistic === 'trace' ? `trace Cov[x_t] at step ${s.traceStep}` : `PC1 ratio, mean of steps 0–${s.traceStep - 1}`;
      out.push({
        scale,
        statistic: label,
        prompts,
        pearson: bootstrapCorrelation(x, y, 'pearson', { seed: s.bootstrapSeed }),
        spearman: bootstrapCorrelation(x, y, 'spearman', { seed: s.bootstrapSeed }),
      });
    };
    for (const st of ['D_x', 'D_noise', 'D_total']) add(st, 'all', 'unknown');
    for (const st of ['D_x', 'D_noise', 'D_total']) add(st, 'memorized', 'known');
    add('trace', 'all', 'unknown');
    add('pc1', 'all', 'unknown');
  }
  return out;
}

/** k(T; s) for every prompt from its first-step branches (memorized: x = target; normal: x = own sample). */
function firstStepKs(results: readonly KimPromptResult[], s: KimSettings): FirstStepK[] {
  const first = results.filter((r) => r.scale === s.scales[0]);
  return first.map((r) => {
    const st = r.known ?? r.unknown;
    const kU = st?.kU.mean[0] ?? NaN;
    const kC = st?.kC.mean[0] ?? NaN;
    return { cond: r.cond, memorized: r.memorized, kU, kC, k: s.kScales.map((sc) => kU + sc * (kC - kU)) };
  });
}

/** x̂0(T) = x̂0_u + s·(x̂0_c − x̂0_u) for seed 0 of the first memorized and first normal prompt, from one model call. */
async function firstStepPictures(src: StudySource, s: KimSettings, results: readonly KimPromptResult[]): Promise<FirstStepImages[]> {
  const d = src.denoiser;
  const pick = [results.find((r) => r.memorized), results.find((r) => !r.memorized)].filter((r): r is KimPromptResult => r !== undefined);
  const st0 = results[0]?.known ?? results[0]?.unknown;
  if (!st0 || pick.length === 0) return [];
  const level = { t: st0.t[0]!, alphaBar: st0.alphaBar[0]! };
  const xT = initialNoise(d.shape, [s.seeds[0]!]);
  const out: FirstStepImages[] = [];
  const per = numel(d.shape);
  const a = Math.sqrt(level.alphaBar);
  const b = Math.sqrt(1 - level.alphaBar);
  for (const r of pick) {
    const both = await d.predict({ dims: [2, ...d.shape], data: new Float32Array([...xT.data, ...xT.data]) }, level, [r.cond, null] as CondRef[]);
    const data = new Float32Array(s.kScales.length * per);
    s.kScales.forEach((sc, j) => {
      for (let i = 0; i < per; i++) {
        const eU = both.data[per + i]!;
        const eC = both.data[i]!;
        data[j * per + i] = (xT.data[i]! - b * (eU + sc * (eC - eU))) / a;
      }
    });
    out.push({ cond: r.cond, label: r.label, memorized: r.memorized, images: await src.toImageSpace({ dims: [s.kScales.length, ...d.shape], data }) });
  }
  return out;
}

/** Record full trajectories for `fanPrompts` memorized and normal prompts at the largest scale. */
async function trajectoryFans(src: StudySource, s: KimSettings, results: readonly KimPromptResult[]): Promise<KimFan[]> {
  if (s.fanPrompts <= 0) return [];
  const scale = Math.max(...s.scales);
  const rs = results.filter((r) => r.scale === scale);
  const chosen = [...rs.filter((r) => r.memorized).slice(0, s.fanPrompts), ...rs.filter((r) => !r.memorized).slice(0, s.fanPrompts)];
  if (chosen.length === 0) return [];
  const d = src.denoiser;
  const N = s.seeds.length;
  const per = numel(d.shape);
  const r = await runSampling({ denoiser: d, conds: chosen.map((c) => c.cond), seeds: s.seeds, sampler: s.sampler, steps: s.steps, config: s.config, guidance: parseGuidance(`constant:${scale}`), record: ['xt'] });
  const xt = r.recorded.get('xt')!;
  const T1 = xt.dims[0]!;
  const R = xt.dims[1]!;
  return chosen.map((c, i) => {
    const traj = new Float32Array(N * T1 * per);
    for (let n = 0; n < N; n++) for (let t = 0; t < T1; t++) traj.set(xt.data.subarray((t * R + i * N + n) * per, (t * R + i * N + n + 1) * per), (n * T1 + t) * per);
    return { cond: c.cond, label: c.label, memorized: c.memorized, scale, trajectories: traj, paths: N, steps: T1, d: per };
  });
}

/** One claim of SPEC §3 with what was measured and its verdict (from an interval with its n; see `analysis/verdict.ts`). */
export interface KimClaim {
  readonly section: string;
  readonly claim: string;
  /** What the paper (Kim et al.) reports for it. */
  readonly paper: string;
  readonly measured: string;
  /** The judged claim: value, interval, n, minimum n and the verdict word. */
  readonly verdict: Verdict;
}

const f3 = (v: number): string => (Number.isFinite(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3)) : 'n/a');

/** Per-prompt values of the finite picks. */
function values(results: readonly KimPromptResult[], pick: (r: KimPromptResult) => number): number[] {
  return results.map(pick);
}

/** "m [lo, hi], n = k" of a mean estimate. */
const withCi = (m: MeanEstimate): string => `${f3(m.value)} [${f3(m.interval.lo)}, ${f3(m.interval.hi)}], n = ${m.n}`;

/** Judge a mean (or difference of means) across prompts. */
function judgeMean(claim: string, m: MeanEstimate, side: ClaimSide): Verdict {
  return judge({ claim, value: m.value, interval: m.interval, n: m.n, nLabel: 'prompts', minN: MIN_N.promptMean, side });
}

/**
 * Evaluate the claims of SPEC §3 on a study (memorized = ground-truth memorized prompts). Each
 * verdict comes from a 95 % interval across prompts (Student / paired / Welch t for means,
 * Fisher z for Pearson r, Wilson for flag rates) and reads "inconclusive" below
 * {@link MIN_N} prompts (or trials), "not measured" when the statistic is missing.
 */
export function kimClaims(study: KimStudy): KimClaim[] {
  const s = study.settings;
  const lo = Math.min(...s.scales);
  const hi = Math.max(...s.scales);
  const at = (sc: number, mem: boolean): KimPromptResult[] => study.results.filter((r) => r.scale === sc && r.memorized === mem);
  const early = Math.min(10, s.steps);
  const avg = (v: readonly number[], a: number, b: number): number => mean(v.slice(a, b));
  const claims: KimClaim[] = [];
  const memHi = at(hi, true);
  const memLo = at(lo, true);
  const norHi = at(hi, false);
  if (memHi.length && memLo.length && hi !== lo) {
    const lossEarly = (r: KimPromptResult): number => avg(r.known!.lossX0.mean, 0, early);
    const lHiV = values(memHi, lossEarly);
    const lLoByCond = new Map(memLo.map((r) => [r.cond, lossEarly(r)]));
    const lLoV = memHi.map((r) => lLoByCond.get(r.cond) ?? NaN);
    const dL = pairedDifferenceInterval(lHiV, lLoV);
    const c31 = `memorized prompts: the x0-space loss in the first ${early} steps is larger with CFG (s=${hi}) than without (s=${lo})`;
    claims.push({ section: '3.1', claim: c31, paper: 'large early loss under CFG, small without (Kim et al. §3.1)', measured: `mean L_x0 = ${f3(mean(lHiV))} (s=${hi}) vs ${f3(mean(lLoV))} (s=${lo}); paired difference ${withCi(dL)}`, verdict: judgeMean(c31, dL, { above: 0 }) });
    const fwd = memHi.filter((r) => r.forward !== null);
    if (fwd.length) {
      const fV = values(fwd, (r) => mean(r.forward!.lossX0.mean.filter((_, j) => r.forward!.steps[j]! < early)));
      const tV = values(fwd, lossEarly);
      const dF = pairedDifferenceInterval(fV, tV);
      const c = `the large early loss under CFG is not overfitting: on the same levels the training (forward-noised, s = 1) loss of memorized prompts is below the trajectory loss under CFG`;
      claims.push({
        section: '3.1',
        claim: c,
        paper: 'training loss of memorized prompts ≪ trajectory loss under CFG (Kim et al. §3.1)',
        measured: `first ${early} steps: training L_x0 = ${f3(mean(fV))} vs trajectory L_x0 = ${f3(mean(tV))} (s=${hi}); paired difference ${withCi(dF)}`,
        verdict: judgeMean(c, dF, { below: 0 }),
      });
    } else {
      claims.push({ section: '3.1', claim: 'the large early loss under CFG is not overfitting (training loss below the trajectory loss)', paper: 'training loss of memorized prompts ≪ trajectory loss under CFG (Kim et al. §3.1)', measured: 'n/a', verdict: notMeasured('training vs trajectory loss', 'the forward-noised loss was not computed (--forward-loss-every 0)') });
    }
    const cosM = meanInterval(values(memHi, (r) => r.known!.cos.mean[r.known!.cos.mean.length - 1]!));
    const c32a = 'memorized prompts end at their training image: cos(x̂0, x) ≈ 1 at the last step';
    claims.push({ section: '3.2', claim: c32a, paper: 'cos ≈ 1', measured: `mean cos at the last step = ${withCi(cosM)} (s=${hi}); judged as > 0.9`, verdict: judgeMean(c32a, cosM, { above: 0.9 }) });
    const kLo = meanInterval(values(memLo, (r) => r.known!.k.mean[r.known!.k.mean.length - 1]!));
    const c32b = `with s = ${lo}, k ≈ 1 (no overestimation) at the end`;
    claims.push({ section: '3.2', claim: c32b, paper: 'k ≈ 1 with s = 1', measured: `mean k at the last step = ${withCi(kLo)}; judged as within 1 ± 0.15`, verdict: judgeMean(c32b, kLo, { within: [0.85, 1.15] }) });
    const kHiE = meanInterval(values(memHi, (r) => avg(r.known!.k.mean, 0, early)));
    const c32c = `with CFG (s = ${hi}) k > 1 in early steps (overestimation)`;
    claims.push({ section: '3.2', claim: c32c, paper: 'k > 1 under CFG', measured: `mean k over the first ${early} steps = ${withCi(kHiE)}`, verdict: judgeMean(c32c, kHiE, { above: 1 }) });
    const kT = meanInterval(values(memHi, (r) => r.known!.firstStep.k));
    const kCT = mean(values(memHi, (r) => r.known!.kC.mean[0]!));
    const kUT = mean(values(memHi, (r) => r.known!.kU.mean[0]!));
    const c32d = `at the first step x̂0(T) ≈ s·x (k(T) ≈ s = ${hi})`;
    claims.push({
      section: '3.2',
      claim: c32d,
      paper: 'x̂0(T) ≈ s·x',
      measured: `k(T) = ${withCi(kT)}; exact split k(T) = k_u + s(k_c − k_u) with k_c = ${f3(kCT)}, k_u = ${f3(kUT)}; judged as within s·(1 ± 0.25)`,
      verdict: judgeMean(c32d, kT, { within: [0.75 * hi, 1.25 * hi] }),
    });
    const fs = (r: KimPromptResult) => r.known!.firstStep;
    const cU = meanInterval(values(memHi, (r) => fs(r).cosEpsUxT));
    const cC = meanInterval(values(memHi, (r) => fs(r).cosEpsCxT));
    const dU = mean(values(memHi, (r) => fs(r).sqDistEpsUxT / study.dim));
    const cUx = meanInterval(values(memHi, (r) => fs(r).cosEpsUMinusXTNegX));
    const cCx = meanInterval(values(memHi, (r) => fs(r).cosEpsCMinusXTNegX));
    const cCxN = mean(values(norHi, (r) => (r.unknown ?? r.known)!.firstStep.cosEpsCMinusXTNegX));
    const c33 = 'first step: cos(ε_u, x_T) ≈ cos(ε_c, x_T) ≈ 1, ‖ε_u − x_T‖² ≈ 0, cos(ε_u − x_T, −x) ≈ 0, cos(ε_c − x_T, −x) high when memorized';
    claims.push({
      section: '3.3',
      claim: c33,
      paper: 'cos ≈ 1, ‖ε_u − x_T‖² ≈ 0, cos(ε_u − x_T, −x) ≈ 0, cos(ε_c − x_T, −x) high',
      measured: `cos(ε_u,x_T) = ${withCi(cU)}, cos(ε_c,x_T) = ${withCi(cC)}, ‖ε_u − x_T‖²/d = ${f3(dU)}, cos(ε_u − x_T, −x) = ${withCi(cUx)}, cos(ε_c − x_T, −x) = ${withCi(cCx)} (normal prompts, x = own sample: ${f3(cCxN)}); judged as > 0.9, > 0.9, within ±0.2, > 0.5`,
      verdict: allOf(c33, [
        judgeMean('cos(ε_u, x_T) > 0.9', cU, { above: 0.9 }),
        judgeMean('cos(ε_c, x_T) > 0.9', cC, { above: 0.9 }),
        judgeMean('|cos(ε_u − x_T, −x)| < 0.2', cUx, { within: [-0.2, 0.2] }),
        judgeMean('cos(ε_c − x_T, −x) > 0.5', cCx, { above: 0.5 }),
      ]),
    });
  }
  const memAll = at(hi, true);
  const norAll = at(hi, false);
  if (memAll.length && norAll.length) {
    const st = s.traceStep;
    const trM = values(memAll, (r) => (r.known ?? r.unknown)!.trace[st]!);
    const trN = values(norAll, (r) => (r.unknown ?? r.known)!.trace[st]!);
    const dTr = welchDifferenceInterval(trM, trN);
    const corr = study.correlations.find((c) => c.scale === hi && c.statistic.startsWith('trace'));
    const c34 = `diversity: trace Cov[x_t] is lower for memorized prompts from early steps, and its correlation with the score reaches |r| > 0.7 after ${st} steps`;
    const trV = judge({ claim: 'trace lower for memorized prompts', value: dTr.value, interval: dTr.interval, n: dTr.n, nLabel: 'prompts per group', minN: MIN_N.promptMean, side: { below: 0 } });
    const rV = corr ? judgeCorrelation('Pearson r < −0.7', corr.pearson.r, corr.pearson.n, { below: -0.7 }) : notMeasured('Pearson r < −0.7', 'fewer than 3 prompts with a finite trace');
    claims.push({
      section: '3.4',
      claim: c34,
      paper: 'Pearson r < −0.7 after 10 of 50 steps',
      measured: `trace at step ${st}: ${f3(mean(trM))} (memorized) vs ${f3(mean(trN))} (normal), Welch difference ${withCi(dTr)}; Pearson r = ${corr ? `${f3(corr.pearson.r)} (Fisher z ${fmtIv(fisherZInterval(corr.pearson.r, corr.pearson.n))}, n = ${corr.pearson.n})` : 'n/a'} (s=${hi})`,
      verdict: allOf(c34, [trV, rV]),
    });
    const pM = values(memAll, (r) => avg((r.known ?? r.unknown)!.pc1, 0, early));
    const pN = values(norAll, (r) => avg((r.unknown ?? r.known)!.pc1, 0, early));
    const pMi = meanInterval(pM);
    const dP = welchDifferenceInterval(pM, pN);
    const c35 = 'update alignment: the first PC of the updates explains nearly all variance early when memorized';
    claims.push({
      section: '3.5',
      claim: c35,
      paper: 'PC1 ratio ≈ 1 early when memorized',
      measured: `mean PC1 ratio over the first ${early} steps: ${withCi(pMi)} (memorized) vs ${f3(mean(pN))} (normal), Welch difference ${withCi(dP)}, s=${hi}; judged as > 0.8 and above normal`,
      verdict: allOf(c35, [judgeMean('PC1 ratio > 0.8 (memorized)', pMi, { above: 0.8 }), judge({ claim: 'memorized above normal', value: dP.value, interval: dP.interval, n: dP.n, nLabel: 'prompts per group', minN: MIN_N.promptMean, side: { above: 0 } })]),
    });
    const dxM = meanInterval(values(memAll, (r) => r.known!.deviation.dX));
    const dnM = meanInterval(values(memAll, (r) => r.known!.deviation.dNoise));
    const c36 = `memorized + CFG: w0 rises faster than √ᾱ_t (D_x > 0) and wT falls faster than √(1−ᾱ_t) (D_noise > 0)`;
    claims.push({ section: '3.6', claim: c36, paper: 'D_x > 0 and D_noise > 0', measured: `mean D_x = ${withCi(dxM)}, D_noise = ${withCi(dnM)} (x = target, s=${hi})`, verdict: allOf(c36, [judgeMean('D_x > 0', dxM, { above: 0 }), judgeMean('D_noise > 0', dnM, { above: 0 })]) });
    for (const name of ['D_x', 'D_noise', 'D_total']) {
      const c = study.correlations.find((k) => k.scale === hi && k.prompts === 'all' && k.statistic.startsWith(`${name} `));
      const claim = `${name} correlates strongly with the memorization score across prompts (Pearson r up to ≈ 0.9)`;
      if (c) {
        claims.push({
          section: '3.7',
          claim,
          paper: 'Pearson r up to ≈ 0.9',
          measured: `Pearson r = ${f3(c.pearson.r)} (Fisher z ${fmtIv(fisherZInterval(c.pearson.r, c.pearson.n))}; bootstrap [${f3(c.pearson.lo)}, ${f3(c.pearson.hi)}]), Spearman ρ = ${f3(c.spearman.r)}, n = ${c.pearson.n} (x = own sample, s=${hi}); judged as r > 0.7`,
          verdict: judgeCorrelation(claim, c.pearson.r, c.pearson.n, { above: 0.7 }),
        });
      } else {
        claims.push({ section: '3.7', claim, paper: 'Pearson r up to ≈ 0.9', measured: 'n/a', verdict: notMeasured(claim, `fewer than 3 prompts with a finite ${name}`) });
      }
    }
    const sep = (name: string, isFlagged: (r: KimPromptResult) => boolean, score: (r: KimPromptResult) => number): KimClaim => {
      const flagged = memAll.filter(isFlagged).length;
      const falsePos = norAll.filter(isFlagged).length;
      const tpr = wilsonInterval(flagged, memAll.length);
      const fpr = wilsonInterval(falsePos, norAll.length);
      const claim = `the memorization score (${name}) separates memorized from normal prompts at threshold ${s.threshold}`;
      return {
        section: '3.8',
        claim,
        paper: 'memorized if score > 0.75 (SSCD)',
        measured: `mean score ${f3(mean(values(memAll, score)))} vs ${f3(mean(values(norAll, score)))}; flagged ${flagged}/${memAll.length} memorized (Wilson ${fmtIv(tpr)}), ${falsePos}/${norAll.length} normal (Wilson ${fmtIv(fpr)}) (s=${hi}); judged as ≥ 80 % flagged and ≤ 20 % false positives`,
        verdict: allOf(claim, [
          judge({ claim: 'flagged memorized > 0.8', value: flagged / memAll.length, interval: tpr, n: memAll.length, nLabel: 'memorized prompts', minN: MIN_N.proportion, side: { above: 0.8 } }),
          judge({ claim: 'flagged normal < 0.2', value: falsePos / norAll.length, interval: fpr, n: norAll.length, nLabel: 'normal prompts', minN: MIN_N.proportion, side: { below: 0.2 } }),
        ]),
      };
    };
    claims.push(sep(study.scoreRecord.descriptor.name, (r) => r.score.memorized, (r) => r.score.score));
    for (const rec of study.extraScoreRecords) {
      const name = rec.descriptor.name;
      claims.push(sep(name, (r) => r.extraScores[name]?.memorized === true, (r) => r.extraScores[name]?.score ?? NaN));
    }
  }
  return claims;
}

const fmtIv = (iv: Interval): string => `[${f3(iv.lo)}, ${f3(iv.hi)}]`;

/** Judge a Pearson r by its Fisher-z interval, with at least {@link MIN_N}.correlation prompts. */
function judgeCorrelation(claim: string, r: number, n: number, side: ClaimSide): Verdict {
  return judge({ claim, value: r, interval: fisherZInterval(r, n), n, nLabel: 'prompts', minN: MIN_N.correlation, side });
}
