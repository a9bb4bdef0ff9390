/**
 * The Kim et al. study (issue 4, SPEC §3): for each prompt, seed set and guidance scale, sample
 * with the analyses streaming from the step events (memory O(rows·d)), then score every prompt's
 * samples with a copy descriptor (SPEC §3.8) and relate the per-prompt statistics to the score.
 *
 * Two passes per batch of prompts: pass 1 uses each prompt's known target x (memorized captions);
 * pass 2 replays the same seeds — the samplers are deterministic given the seeds — with each
 * seed's own final sample x_0^(n) as x ("target unknown", SPEC §3.6), which is the only way to get
 * that variant without keeping every x_t. The study is planned as units (one prompt at one scale)
 * run by the engine's runner; finished units live in a store, so a killed run resumes without
 * redoing them and a rerun of a finished study makes no model call.
 */
import { z } from 'zod';
import { isMemorizedCondition, type CondRef } from '../denoisers/denoiser.ts';
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
import { encodeNpy, decodeNpy } from '../io/npy.ts';
import type { Blob, BlobReader, Study, StoredUnit, Unit, UnitOutput, UnitStore } from '../engine/study.ts';
import { unitKey } from '../engine/canonical.ts';
import { InProcessRunner, type RunProgress } from '../engine/runner.ts';
import { MemoryStore } from '../engine/memory-store.ts';
import { runSampling, initialNoise } from './sampling.ts';
import type { StudySource } from './source.ts';

/** Settings of a Kim study (defaults in `KIM_DEFAULTS`). */
export interface KimSettings {
  /** Condition indices to study (memorized = {@link isMemorizedCondition}: tied to an image trained on more than once; a once-seen caption is normal, its target statistics are still computed). */
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
  /** Ground truth ({@link isMemorizedCondition}): tied to a training image seen more than once in training. */
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
  /** Seconds summed over the units (stored ones included, as first computed); `cachedBatches`: units reused from the store. */
  readonly timing: { readonly samplingSeconds: number; readonly analysisSeconds: number; readonly scoringSeconds: number; readonly cachedBatches: number };
}

function stripSamples(s: KimGroupStats): KimStats {
  const { finalSamples: _drop, ...rest } = s;
  void _drop;
  return rest;
}

/**
 * One unit of the Kim study: one prompt at one guidance scale, all seeds (rows of units of the
 * same scale share sampler calls). The unit of the first scale also carries the prompt's
 * forward-noised loss (memorized prompts) and, for the two pictured prompts, x̂0(T) at `kScales`;
 * the unit of the largest scale of a fan prompt records its full trajectories.
 */
export interface KimUnit {
  readonly scale: number;
  readonly cond: number;
  /** Forward-noised loss at every `forwardLossEvery`-th level (memorized prompts, first scale only). */
  readonly forward: boolean;
  /** x̂0(T) images at `kScales` for the first seed (the first memorized and the first other prompt). */
  readonly firstStep: boolean;
  /** Record the full trajectories of this prompt (fan chart). */
  readonly fan: boolean;
}

/** The stored result of a {@link KimUnit} (tensors — x̂0(T) images, fan trajectories — are blobs). */
export interface KimUnitResult {
  readonly prompt: KimPromptResult;
  readonly samplingSeconds: number;
  readonly analysisSeconds: number;
  readonly scoringSeconds: number;
}

/** What the Kim study plans and runs over: the source, the descriptors and the source's identity (part of every key). */
export interface KimSource {
  readonly src: StudySource;
  readonly descriptor: Descriptor;
  readonly extras: readonly Descriptor[];
  /** What identifies the model (weights + config); part of every unit key. */
  readonly fingerprint: unknown;
}

/** What {@link kimStudy}'s `reduce` gives: the study without what describes the source and descriptors. */
export type KimReduced = Omit<KimStudy, 'model' | 'dim' | 'imageShape' | 'scoreRecord' | 'extraScoreRecords'>;

/** Everything a unit's result depends on besides its own fields. */
function unitIdentity(source: KimSource, s: KimSettings, u: KimUnit): unknown {
  return {
    model: source.fingerprint,
    denoiser: source.src.denoiser.name,
    condition: source.src.denoiser.conditions[u.cond],
    descriptors: [source.descriptor, ...source.extras].map((x) => x.info),
    seeds: s.seeds,
    sampler: s.sampler,
    steps: s.steps,
    config: s.config,
    threshold: s.threshold,
    unknownTarget: s.unknownTarget,
    ...u,
    ...(u.forward ? { forwardLossEvery: s.forwardLossEvery } : {}),
    ...(u.firstStep ? { kScales: s.kScales } : {}),
  };
}

/** Split the settings into units: scales outermost, prompts in the given order (as the report lists them). */
export function planKim(s: KimSettings, source: KimSource): Unit<KimUnit>[] {
  const d = source.src.denoiser;
  if (s.prompts.length === 0) throw new Error('--prompts: need at least one prompt');
  if (s.seeds.length < 2) throw new Error(`--seeds: the diversity and alignment analyses need at least 2 seeds, got ${s.seeds.length}`);
  for (const p of s.prompts) if (!Number.isInteger(p) || p < 0 || p >= d.conditions.length) throw new Error(`--prompts: condition index ${p} is out of range (0..${d.conditions.length - 1})`);
  const memorized = (c: number): boolean => isMemorizedCondition(d.conditions[c]!);
  const pictured = new Set([s.prompts.find(memorized), s.prompts.find((c) => !memorized(c))].filter((c): c is number => c !== undefined));
  const maxScale = Math.max(...s.scales);
  const fans = s.fanPrompts <= 0 ? new Set<number>() : new Set([...s.prompts.filter(memorized).slice(0, s.fanPrompts), ...s.prompts.filter((c) => !memorized(c)).slice(0, s.fanPrompts)]);
  const units: Unit<KimUnit>[] = [];
  s.scales.forEach((scale, si) => {
    for (const cond of s.prompts) {
      const u: KimUnit = {
        scale,
        cond,
        forward: si === 0 && s.forwardLossEvery > 0 && memorized(cond),
        firstStep: si === 0 && pictured.has(cond),
        fan: scale === maxScale && s.scales.indexOf(maxScale) === si && fans.has(cond),
      };
      units.push({ key: unitKey('kim', unitIdentity(source, s, u)), spec: u, batch: `scale:${scale}` });
    }
  });
  return units;
}

/** Run a batch of units of one scale: the sampler calls, the streaming analyses, the scores. */
async function runKimUnits(units: readonly Unit<KimUnit>[], source: KimSource, s: KimSettings, embeddings: () => Promise<Tensor[]>): Promise<UnitOutput<KimUnitResult>[]> {
  const { src, descriptor, extras } = source;
  const d = src.denoiser;
  const N = s.seeds.length;
  const per = numel(d.shape);
  const scale = units[0]!.spec.scale;
  const batch = units.map((u) => u.spec.cond);
  const schedule = parseGuidance(`constant:${scale}`);
  const targetOf = (c: number): number | null => d.conditions[c]!.targets?.[0] ?? null;
  const imageShape = src.trainImages.dims.slice(1);
  const imgPer = numel(imageShape);
  let samplingSeconds = 0;
  let analysisSeconds = 0;
  let firstLevel: { t: number; alphaBar: number } | null = null;
  const groups = batch.map((_, i) => ({ rows: Array.from({ length: N }, (_, n) => i * N + n) }));
  const run = async (targets: (Float32Array | null)[]): Promise<KimGroupStats[]> => {
    const acc = new KimAccumulator({ groups, targets });
    let ms = 0;
    const timed: StepObserver = async (e) => {
      firstLevel ??= { t: e.t, alphaBar: e.alphaBar };
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
  // the fan prompts of this batch: their full trajectories in one sampler call, as before the port
  const fanConds = units.filter((u) => u.spec.fan).map((u) => u.spec.cond);
  const f0 = performance.now();
  const fans = fanConds.length ? await fanTrajectories(src, s, fanConds, scale) : new Map<number, Tensor>();
  samplingSeconds += (performance.now() - f0) / 1000;
  const t0 = performance.now();
  const [trainEmb, ...extraEmb] = await embeddings();
  const outs: UnitOutput<KimUnitResult>[] = [];
  for (let i = 0; i < batch.length; i++) {
    const u = units[i]!.spec;
    const c = batch[i]!;
    const info = d.conditions[c]!;
    const target = targetOf(c);
    const gen = await src.toImageSpace({ dims: [N, ...d.shape], data: pass1[i]!.finalSamples });
    const tgt = target === null ? null : { dims: [1, ...imageShape], data: src.trainImages.data.slice(target * imgPer, (target + 1) * imgPer) };
    const score = await memorizationScore(descriptor, gen, tgt, { threshold: s.threshold, trainEmbeddings: trainEmb! });
    const extraScores: Record<string, MemorizationScore> = {};
    for (let k = 0; k < extras.length; k++) extraScores[extras[k]!.info.name] = await memorizationScore(extras[k]!, gen, tgt, { threshold: s.threshold, trainEmbeddings: extraEmb[k]! });
    const known = target === null ? null : stripSamples(pass1[i]!);
    let forward: KimPromptResult['forward'] = null;
    const blobs: Blob[] = [];
    let extraSampling = 0;
    if (u.forward && known !== null && target !== null) {
      // the literal training loss uses the conditional model (s = 1) whatever the sampling scale
      const f0 = performance.now();
      const steps = known.t.map((_, k) => k).filter((k) => k % s.forwardLossEvery === 0);
      const levels = steps.map((k) => ({ t: known.t[k]!, alphaBar: known.alphaBar[k]! }));
      const f = await forwardNoisedLoss(d, { cond: c, x: src.toModelSpace(target).data, levels, seeds: s.seeds, guidanceScale: 1 });
      forward = { steps, lossX0: f.lossX0, lossEps: f.lossEps };
      extraSampling += (performance.now() - f0) / 1000;
    }
    if (u.firstStep && firstLevel !== null) {
      const f0 = performance.now();
      blobs.push({ name: 'first-step.npy', bytes: encodeNpy(await firstStepPicture(src, s, c, firstLevel)) });
      extraSampling += (performance.now() - f0) / 1000;
    }
    if (u.fan) blobs.push({ name: 'fan.npy', bytes: encodeNpy(fans.get(c)!) });
    const prompt: KimPromptResult = {
      cond: c,
      id: info.id,
      label: info.label,
      memorized: isMemorizedCondition(info),
      target,
      scale,
      known,
      unknown: pass2 ? stripSamples(pass2[i]!) : null,
      score,
      extraScores,
      forward,
      preview: Array.from(gen.data.subarray(0, Math.min(4, N) * imgPer)),
    };
    outs.push({ result: { prompt, samplingSeconds: samplingSeconds / batch.length + extraSampling, analysisSeconds: analysisSeconds / batch.length, scoringSeconds: 0 }, blobs });
  }
  const scoring = (performance.now() - t0) / 1000;
  return outs.map((o) => ({ ...o, result: { ...o.result, scoringSeconds: scoring / batch.length } }));
}

/** The Kim et al. suite as a study (issue 15): units per prompt and scale, reduced into a {@link KimStudy}. */
export function kimStudy(s: KimSettings): Study<KimSettings, KimUnit, KimUnitResult, KimReduced, KimSource> {
  let emb: Promise<Tensor[]> | null = null;
  let embFor: KimSource | null = null;
  return {
    id: 'kim',
    schema: z.custom<KimSettings>(),
    plan: (spec, source) => planKim(spec, source),
    run: (units, ctx) => {
      if (embFor !== ctx.source) {
        const { src, descriptor, extras } = ctx.source;
        embFor = ctx.source;
        emb = Promise.all([descriptor, ...extras].map((x) => x.embed(src.trainImages)));
      }
      return runKimUnits(units, ctx.source, s, () => emb!);
    },
    reduce: async (stored, blobs, spec) => reduceKim(stored, blobs, spec),
  };
}

/** Options of {@link runKimStudy}. */
export interface KimRunOptions {
  /** Where finished units are kept (default: in memory, no resume); a rerun against the same store computes only what is missing. */
  readonly store?: UnitStore;
  readonly log?: (m: string) => void;
  /** More descriptors scored on the same samples (reported beside the primary score). */
  readonly extraDescriptors?: readonly Descriptor[];
  /** What identifies the model (default: the source's spec and denoiser name). */
  readonly fingerprint?: unknown;
  /** Progress after each batch (units done of total, ETA). */
  readonly onProgress?: (p: RunProgress) => void;
}

/**
 * Run the Kim et al. analysis suite (SPEC §3.1–3.8) on `src` with `descriptor` as f. Units already
 * in `opts.store` (same model, settings and descriptors) are reused, not recomputed.
 */
export async function runKimStudy(src: StudySource, s: KimSettings, descriptor: Descriptor, opts: KimRunOptions = {}): Promise<KimStudy> {
  const extras = opts.extraDescriptors ?? [];
  const source: KimSource = { src, descriptor, extras, fingerprint: opts.fingerprint ?? { spec: src.spec } };
  const study = kimStudy(s);
  const store = opts.store ?? new MemoryStore();
  const units = planKim(s, source);
  const log = opts.log;
  const outcome = await new InProcessRunner().run(study, units, source, store, {
    maxBatch: Math.max(1, s.promptsPerBatch),
    onProgress: (p) => {
      opts.onProgress?.(p);
      if (log && p.done > p.cached) log(`kim: ${p.done} of ${p.total} prompt × scale units done${p.eta === null ? '' : `, about ${Math.ceil(p.eta)} s left`}`);
    },
  });
  return finishKimStudy(outcome.units, store, source, s, outcome.reused);
}

/** The {@link KimStudy} of a finished run: the reduced units plus what describes the source and descriptors (which are disposed). */
export async function finishKimStudy(stored: readonly StoredUnit<KimUnit, KimUnitResult>[], blobs: BlobReader, source: KimSource, s: KimSettings, reused: number): Promise<KimStudy> {
  const { src, descriptor, extras } = source;
  // the label from the model as it is now, not as a stored unit recorded it (units made before
  // once-seen captions counted as normal are reused unchanged otherwise)
  const result = await reduceKim(stored, blobs, s, (c) => isMemorizedCondition(src.denoiser.conditions[c]!));
  await descriptor.dispose?.();
  for (const x of extras) await x.dispose?.();
  return {
    ...result,
    model: src.description,
    dim: numel(src.denoiser.shape),
    imageShape: src.trainImages.dims.slice(1),
    scoreRecord: scoreRecord(descriptor, { threshold: s.threshold }),
    extraScoreRecords: extras.map((x) => scoreRecord(x, { threshold: s.threshold })),
    timing: { ...result.timing, cachedBatches: reused },
  };
}

/** Combine stored units (plan order) into the study: forward losses copied to every scale, pictures and fans from blobs, correlations. */
async function reduceKim(stored: readonly StoredUnit<KimUnit, KimUnitResult>[], blobs: BlobReader, s: KimSettings, memorizedOf?: (cond: number) => boolean): Promise<KimReduced> {
  const forwardOf = new Map<number, KimPromptResult['forward']>();
  const label = (u: StoredUnit<KimUnit, KimUnitResult>): boolean => memorizedOf?.(u.spec.cond) ?? u.result.prompt.memorized;
  for (const u of stored) if (u.result.prompt.forward !== null && label(u)) forwardOf.set(u.spec.cond, u.result.prompt.forward);
  const results = stored.map((u) => ({ ...u.result.prompt, memorized: label(u), forward: forwardOf.get(u.spec.cond) ?? null }));
  let samplingSeconds = 0;
  let analysisSeconds = 0;
  let scoringSeconds = 0;
  for (const u of stored) {
    samplingSeconds += u.result.samplingSeconds;
    analysisSeconds += u.result.analysisSeconds;
    scoringSeconds += u.result.scoringSeconds;
  }
  const firstStepImages: FirstStepImages[] = [];
  // the first memorized prompt, then the first other one (as the report pictures them)
  const pics = stored.filter((u) => u.spec.firstStep).sort((a, b) => Number(label(b)) - Number(label(a)));
  for (const u of pics) {
    const r = u.result.prompt;
    firstStepImages.push({ cond: r.cond, label: r.label, memorized: label(u), images: decodeNpy(Buffer.from(await blobs.readBlob(u, 'first-step.npy')), 'first-step.npy') });
  }
  const fanUnits = stored.filter((u) => u.spec.fan);
  const fans: KimFan[] = [];
  for (const u of [...fanUnits.filter((x) => label(x)), ...fanUnits.filter((x) => !label(x))]) {
    const t = decodeNpy(Buffer.from(await blobs.readBlob(u, 'fan.npy')), 'fan.npy');
    const [paths, steps, d] = t.dims as [number, number, number];
    const r = u.result.prompt;
    fans.push({ cond: r.cond, label: r.label, memorized: label(u), scale: u.spec.scale, trajectories: t.data, paths, steps, d });
  }
  return {
    settings: s,
    results,
    correlations: kimCorrelations(results, s),
    firstStepK: firstStepKs(results, s),
    firstStepImages,
    fans,
    timing: { samplingSeconds, analysisSeconds, scoringSeconds, cachedBatches: 0 },
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

/** x̂0(T) of prompt `cond` for the first seed at each of `kScales` (exact affine form from one cond + uncond call), in image space. */
async function firstStepPicture(src: StudySource, s: KimSettings, cond: number, level: { t: number; alphaBar: number }): Promise<Tensor> {
  const d = src.denoiser;
  const xT = initialNoise(d.shape, [s.seeds[0]!]);
  const per = numel(d.shape);
  const a = Math.sqrt(level.alphaBar);
  const b = Math.sqrt(1 - level.alphaBar);
  const both = await d.predict({ dims: [2, ...d.shape], data: new Float32Array([...xT.data, ...xT.data]) }, level, [cond, null] as CondRef[]);
  const data = new Float32Array(s.kScales.length * per);
  s.kScales.forEach((sc, j) => {
    for (let i = 0; i < per; i++) {
      const eU = both.data[per + i]!;
      const eC = both.data[i]!;
      data[j * per + i] = (xT.data[i]! - b * (eU + sc * (eC - eU))) / a;
    }
  });
  return src.toImageSpace({ dims: [s.kScales.length, ...d.shape], data });
}

/** Full trajectories of prompts `conds` at `scale` (one sampler call), one path per seed: cond → `[paths, steps + 1, d]` (x_T … x_0). */
async function fanTrajectories(src: StudySource, s: KimSettings, conds: readonly number[], scale: number): Promise<Map<number, Tensor>> {
  const d = src.denoiser;
  const N = s.seeds.length;
  const per = numel(d.shape);
  const r = await runSampling({ denoiser: d, conds, seeds: s.seeds, sampler: s.sampler, steps: s.steps, config: s.config, guidance: parseGuidance(`constant:${scale}`), record: ['xt'] });
  const xt = r.recorded.get('xt')!;
  const T1 = xt.dims[0]!;
  const R = xt.dims[1]!;
  const out = new Map<number, Tensor>();
  conds.forEach((c, i) => {
    const traj = new Float32Array(N * T1 * per);
    for (let n = 0; n < N; n++) for (let t = 0; t < T1; t++) traj.set(xt.data.subarray((t * R + i * N + n) * per, (t * R + i * N + n + 1) * per), (n * T1 + t) * per);
    out.set(c, { dims: [N, T1, per], data: traj });
  });
  return out;
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
