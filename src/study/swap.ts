/**
 * Dodson & Gao's geometry-informed mitigations measured at the trajectory level (SPEC §5.4, §5.6):
 * unconditional samples from each variant — the memorizing model, a generalizing denoiser
 * (a model trained on more data, or D_lin), the memorizing model with the generalizing one
 * swapped in inside a σ band (§5.6a), the mid-band under-trained model (§5.6b) — scored by the
 * trajectory-level memorization rate (ratio test d1/d2 < 1/3 against the memorizing model's
 * training images) and a Fréchet distance of quality features against held-out images. A band
 * search finds the narrowest band (in steps of the sampler's σ schedule) whose swap brings the
 * rate under a target.
 *
 * Every variant samples the same seeds with the same sampler, so rows differ only by the
 * denoiser. Every variant and tried band is a unit of a study kept in a store: a killed run
 * resumes without resampling them.
 */
import { z } from 'zod';
import type { Study, UnitStore } from '../engine/study.ts';
import { unitKey } from '../engine/canonical.ts';
import { InProcessRunner } from '../engine/runner.ts';
import { MemoryStore } from '../engine/memory-store.ts';
import type { Denoiser } from '../denoisers/denoiser.ts';
import { swapDenoiser, type SwapBand } from '../denoisers/swap.ts';
import { trajectoryMemorization } from '../analysis/geometry.ts';
import { runSampling } from './sampling.ts';
import { samplerTimesteps, type SamplerName } from '../samplers/index.ts';
import type { SchedulerConfig } from '../schedules/config.ts';
import { alphaBars as alphaBarsOf, betas } from '../schedules/betas.ts';
import { sampleIndices, takeRows } from '../data/indices.ts';
import { gaussianStats, frechetDistance, type GaussianStats } from '../metrics/frechet.ts';
import type { FeatureExtractor } from '../metrics/types.ts';
import type { Tensor } from '../tensor/tensor.ts';

/** One denoiser variant of the mitigation table. */
export interface SwapVariant {
  /** Row name (unique; also the cache key). */
  readonly name: string;
  readonly kind: 'memorizing' | 'generalizing' | 'undertrained' | 'swap';
  readonly denoiser: Denoiser;
  /** The swap band (kind `swap`), else absent. */
  readonly band?: SwapBand;
  /** What identifies the denoiser's weights (e.g. the model folder's fingerprint; for a swap, both sides'); part of the row's unit key (default: the denoiser's name). */
  readonly identity?: unknown;
}

/** Sampling and scoring settings shared by every variant. */
export interface SwapStudySettings {
  /** Seeds of the unconditional samples (one sample per seed). */
  readonly seeds: readonly number[];
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly config: SchedulerConfig;
  /** Ratio-test threshold (SPEC §5.4; default 1/3). */
  readonly threshold?: number;
  /** Rows per sampler call (default 64). */
  readonly batchSize?: number;
}

/** What scores the samples: training images and held-out images in image space, quality features. */
export interface SwapScoring {
  /** The memorizing model's training images `[n, ...]` in image space (the ratio test's reference). */
  readonly train: Tensor;
  /** Held-out real images (Fréchet reference). */
  readonly heldOut: Tensor;
  /** Quality features (null: no Fréchet column). */
  readonly quality: FeatureExtractor | null;
  /** Model space → image space (a source's `codec.toImageSpace`, e.g. crop 32×32 → 28×28; default identity). */
  readonly toImageSpace?: (x: Tensor) => Tensor | Promise<Tensor>;
}

/** One row of the mitigation table. */
export interface SwapRow {
  readonly name: string;
  readonly kind: SwapVariant['kind'];
  readonly band: SwapBand | null;
  readonly samples: number;
  /** Trajectory-level memorization rate (fraction with d1/d2 < threshold). */
  readonly rate: number;
  readonly medianRatio: number;
  /** Fraction of samples whose nearest training image is the nearest of the memorizing model's sample of the same seed (same copy target); null for the memorizing row itself. */
  readonly sameNearest: number | null;
  /** Fréchet distance of the quality features to the held-out images (null without features). */
  readonly frechet: number | null;
  /** Fraction of denoiser calls routed to the generalizing side (swap rows), else null. */
  readonly swappedCalls: number | null;
  readonly seconds: number;
}

/** Per-variant sample ratios kept for plots. */
export interface SwapStudyResult {
  readonly rows: SwapRow[];
  /** Fréchet distance of a same-size set of real training images to the held-out images (the floor); null without features. */
  readonly frechetFloor: number | null;
  /** The sampler's σ per step (for band choices). */
  readonly sigmas: number[];
  readonly threshold: number;
}

/** The σ = √((1−ᾱ_t)/ᾱ_t) of each step of `sampler` with `steps` steps on the schedule `config` (SPEC §0). */
export function samplerSigmas(sampler: SamplerName, config: SchedulerConfig, steps: number): number[] {
  const ab = alphaBarsOf(betas(config.beta_schedule, { numTrainTimesteps: config.num_train_timesteps, betaStart: config.beta_start, betaEnd: config.beta_end, trainedBetas: config.trained_betas }));
  return samplerTimesteps(sampler, config, steps).map((t) => {
    const lo = Math.floor(t);
    const f = t - lo;
    const a = f === 0 ? ab[lo]! : ab[lo]! * (1 - f) + ab[Math.min(lo + 1, ab.length - 1)]! * f;
    return Math.sqrt((1 - a) / a);
  });
}

/** The stored result of one variant (a unit of the swap study). */
interface Scored {
  readonly row: SwapRow;
  readonly nearest: number[];
}

/** A unit of the swap study: one variant, by name (its denoiser is looked up in the source). */
interface SwapUnit {
  readonly name: string;
}

/** What the swap study runs over: the variants, the scoring and the Fréchet reference. */
interface SwapSource {
  readonly variants: ReadonlyMap<string, SwapVariant>;
  readonly s: SwapStudySettings;
  readonly sc: SwapScoring;
  readonly ref: { stats: GaussianStats | null };
  readonly log: (m: string) => void;
}

/** Everything a variant's row depends on: the key of its unit. */
function variantKey(v: SwapVariant, s: SwapStudySettings, sc: SwapScoring): string {
  return unitKey('swap', { name: v.name, kind: v.kind, denoiser: v.identity ?? v.denoiser.name, band: v.band ?? null, seeds: s.seeds, sampler: s.sampler, steps: s.steps, threshold: s.threshold ?? 1 / 3, config: s.config, train: sc.train.dims, heldOut: sc.heldOut.dims, quality: sc.quality?.name ?? null });
}

/** The swap table as a study: one unit per variant, reduced in order (issue 15). */
const swapStudy: Study<null, SwapUnit, Scored, Scored[], SwapSource> = {
  id: 'swap',
  schema: z.null(),
  plan: (_spec, src) => [...src.variants.values()].map((v) => ({ key: variantKey(v, src.s, src.sc), spec: { name: v.name } })),
  run: async (units, ctx) => [{ result: await scoreVariant(ctx.source.variants.get(units[0]!.spec.name)!, ctx.source) }],
  reduce: (stored) => stored.map((u) => u.result),
};

/** Score one variant's samples. */
async function scoreVariant(v: SwapVariant, src: SwapSource): Promise<Scored> {
  const { s, sc, ref, log } = src;
  const swap = v.kind === 'swap' && 'counts' in v.denoiser ? (v.denoiser as ReturnType<typeof swapDenoiser>) : null;
  swap?.resetCounts();
  const res = await runSampling({ denoiser: v.denoiser, conds: [null], seeds: s.seeds, sampler: s.sampler, steps: s.steps, config: s.config, batchSize: s.batchSize ?? 64 });
  const images = await (sc.toImageSpace ?? ((x: Tensor) => x))(res.samples);
  const mem = await trajectoryMemorization(images, sc.train, { threshold: s.threshold ?? 1 / 3 });
  let frechet: number | null = null;
  if (sc.quality && ref.stats) {
    const f = await sc.quality.features(images);
    frechet = frechetDistance(gaussianStats(f.data, f.dims[0]!, f.dims[1]!), ref.stats);
  }
  const c = swap?.counts;
  const row: SwapRow = {
    name: v.name,
    kind: v.kind,
    band: v.band ?? null,
    samples: mem.count,
    rate: mem.rate,
    medianRatio: mem.medianRatio,
    sameNearest: null,
    frechet,
    swappedCalls: c ? c.generalizing.calls / Math.max(1, c.generalizing.calls + c.memorizing.calls) : null,
    seconds: res.seconds,
  };
  log(`${v.name}: memorization rate ${(100 * row.rate).toFixed(1)} %, median d1/d2 ${row.medianRatio.toFixed(3)}${frechet === null ? '' : `, Fréchet ${frechet.toFixed(1)}`} (${row.seconds.toFixed(1)} s)`);
  return { row, nearest: Array.from(mem.nearest) };
}

const referenceCache = new WeakMap<SwapScoring, Map<string, Promise<{ stats: GaussianStats | null; floor: number | null }>>>();

/** Reference statistics of the held-out images and the same-size floor of real training images (computed once per scoring object, sample count and seed: the band search calls it per trial). */
function reference(sc: SwapScoring, n: number, seed: number): Promise<{ stats: GaussianStats | null; floor: number | null }> {
  let m = referenceCache.get(sc);
  if (!m) referenceCache.set(sc, (m = new Map()));
  const key = `${n}|${seed}`;
  let p = m.get(key);
  if (!p) {
    p = computeReference(sc, n, seed);
    p.catch(() => m.delete(key));
    m.set(key, p);
  }
  return p;
}

async function computeReference(sc: SwapScoring, n: number, seed: number): Promise<{ stats: GaussianStats | null; floor: number | null }> {
  if (!sc.quality) return { stats: null, floor: null };
  const ref = await sc.quality.features(sc.heldOut);
  const stats = gaussianStats(ref.data, ref.dims[0]!, ref.dims[1]!);
  const k = Math.min(n, sc.train.dims[0]!);
  const real = await sc.quality.features(takeRows(sc.train, sampleIndices(sc.train.dims[0]!, k, seed)));
  return { stats, floor: frechetDistance(gaussianStats(real.data, k, real.dims[1]!), stats) };
}

/** Options of {@link runSwapStudy} and {@link searchSwapBand}. */
export interface SwapRunOptions {
  /** Where finished rows are kept (default: in memory); rows already there are reused, not resampled. */
  readonly store?: UnitStore;
  readonly log?: (m: string) => void;
  /** Told the unit keys of every table this call plans, and how many of them it computed and reused. */
  readonly onUnits?: (keys: readonly string[], computed: number, reused: number) => void;
}

/**
 * Sample every variant on the same seeds and score it (SPEC §5.6): trajectory-level memorization
 * rate, median d1/d2, the fraction of samples sharing the memorizing model's nearest training
 * image (the first `memorizing` variant is the reference), Fréchet distance and the fraction of
 * calls a swap routed to its generalizing side. Rows are units of a study: those already in
 * `opts.store` are reused.
 */
export async function runSwapStudy(variants: readonly SwapVariant[], s: SwapStudySettings, sc: SwapScoring, opts: SwapRunOptions = {}): Promise<SwapStudyResult> {
  if (variants.length === 0) throw new Error('runSwapStudy: variants is empty');
  const names = new Set<string>();
  for (const v of variants) {
    if (names.has(v.name)) throw new Error(`runSwapStudy: duplicate variant name '${v.name}'`);
    names.add(v.name);
  }
  if (s.seeds.length < 2) throw new Error(`runSwapStudy: seeds: need at least 2 seeds, got ${s.seeds.length}`);
  const log = opts.log ?? (() => {});
  const ref = await reference(sc, s.seeds.length, 1);
  const src: SwapSource = { variants: new Map(variants.map((v) => [v.name, v])), s, sc, ref, log };
  const store = opts.store ?? new MemoryStore();
  const units = await swapStudy.plan(null, src);
  const outcome = await new InProcessRunner().run(swapStudy, units, src, store);
  opts.onUnits?.(units.map((u) => u.key), outcome.computed, outcome.reused);
  const scored = await swapStudy.reduce(outcome.units, store, null);
  if (outcome.reused > 0) log(`${outcome.reused} of ${units.length} rows from the store`);
  const base = variants.findIndex((v) => v.kind === 'memorizing');
  const rows = scored.map((x, i) => {
    if (base < 0 || i === base) return x.row;
    const b = scored[base]!.nearest;
    return { ...x.row, sameNearest: x.nearest.filter((k, r) => k === b[r]).length / b.length };
  });
  return { rows, frechetFloor: ref.floor, sigmas: samplerSigmas(s.sampler, s.config, s.steps), threshold: s.threshold ?? 1 / 3 };
}

/** One tried band of {@link searchSwapBand}. */
export interface BandTrial {
  readonly band: SwapBand;
  /** Sampler steps inside the band. */
  readonly stepsInBand: number;
  readonly rate: number;
  readonly frechet: number | null;
}

/** Result of {@link searchSwapBand}. */
export interface BandSearch {
  /** The narrowest band reaching the target (lowest rate among equally narrow ones), or null when none does or the model alone already does (`baseRate ≤ target`, no band tried). */
  readonly best: BandTrial | null;
  readonly target: number;
  /** The memorizing model's own rate (no swap). */
  readonly baseRate: number;
  readonly trials: BandTrial[];
  /** Candidate band edges (σ). */
  readonly edges: number[];
}

/**
 * The band search of SPEC §5.6a: candidate bands [e_i, e_j] over `edges` (default: `nEdges` = 7
 * log-spaced σ between the sampler's smallest and largest σ, outer edges widened by 1 %), tried in
 * order of increasing log-width (ties: lower σ first); the first width at which some band's swap
 * gives a trajectory-level rate ≤ `target` ends the search (every band of that width is tried and
 * the lowest rate wins). Bands containing no sampler step are skipped. Each trial is one
 * {@link runSwapStudy} row (a unit in `opts.store`).
 */
export async function searchSwapBand(
  memorizing: Denoiser,
  generalizing: Denoiser,
  s: SwapStudySettings,
  sc: SwapScoring,
  opts: SwapRunOptions & { target: number; edges?: readonly number[]; nEdges?: number; /** What identifies the two denoisers' weights (see {@link SwapVariant.identity}). */ identities?: { memorizing: unknown; generalizing: unknown } },
): Promise<BandSearch> {
  const { target } = opts;
  if (!(target >= 0 && target <= 1)) throw new Error(`searchSwapBand: target must be a rate in [0, 1], got ${target}`);
  const log = opts.log ?? (() => {});
  const sig = samplerSigmas(s.sampler, s.config, s.steps);
  const lo = Math.min(...sig) / 1.01;
  const hi = Math.max(...sig) * 1.01;
  const nEdges = opts.nEdges ?? 7;
  if (opts.edges === undefined && !(Number.isInteger(nEdges) && nEdges >= 2)) throw new Error(`searchSwapBand: nEdges must be an integer ≥ 2, got ${nEdges}`);
  const edges = opts.edges ? [...opts.edges].sort((a, b) => a - b) : Array.from({ length: nEdges }, (_, i) => Math.exp(Math.log(lo) + ((Math.log(hi) - Math.log(lo)) * i) / (nEdges - 1)));
  if (edges.length < 2 || edges.some((e) => !(e >= 0 && Number.isFinite(e)))) throw new Error(`searchSwapBand: edges must be ≥ 2 finite σ ≥ 0, got [${edges.join(', ')}]`);
  const cands: { band: SwapBand; width: number; stepsInBand: number }[] = [];
  for (let i = 0; i < edges.length; i++) {
    for (let j = i + 1; j < edges.length; j++) {
      const band = { sigmaLo: edges[i]!, sigmaHi: edges[j]! };
      const stepsInBand = sig.filter((x) => x >= band.sigmaLo && x <= band.sigmaHi).length;
      if (stepsInBand === 0) continue;
      cands.push({ band, width: Math.log(Math.max(band.sigmaHi, 1e-12)) - Math.log(Math.max(band.sigmaLo, 1e-12)), stepsInBand });
    }
  }
  cands.sort((a, b) => a.width - b.width || a.band.sigmaLo - b.band.sigmaLo);
  const pass = { ...(opts.store ? { store: opts.store } : {}), ...(opts.onUnits ? { onUnits: opts.onUnits } : {}), log };
  const base = await runSwapStudy([{ name: 'memorizing', kind: 'memorizing', denoiser: memorizing, ...(opts.identities ? { identity: opts.identities.memorizing } : {}) }], s, sc, pass);
  const baseRate = base.rows[0]!.rate;
  const trials: BandTrial[] = [];
  if (baseRate <= target) {
    log(`the memorizing model alone is already at ${(100 * baseRate).toFixed(1)} % ≤ target ${(100 * target).toFixed(1)} %: no band needed`);
    return { best: null, target, baseRate, trials, edges };
  }
  let best: BandTrial | null = null;
  let widthHit: number | null = null;
  for (const c of cands) {
    if (widthHit !== null && c.width > widthHit * (1 + 1e-9)) break;
    const d = swapDenoiser(memorizing, generalizing, c.band, { disposeInner: false, mapCond: () => null });
    const name = `swap[${c.band.sigmaLo.toPrecision(4)},${c.band.sigmaHi.toPrecision(4)}]`;
    const r = await runSwapStudy([{ name, kind: 'swap', denoiser: d, band: c.band, ...(opts.identities ? { identity: opts.identities } : {}) }], s, sc, pass);
    const t: BandTrial = { band: c.band, stepsInBand: c.stepsInBand, rate: r.rows[0]!.rate, frechet: r.rows[0]!.frechet };
    trials.push(t);
    if (t.rate <= target) {
      widthHit ??= c.width;
      if (best === null || t.rate < best.rate) best = t;
    }
  }
  return { best, target, baseRate, trials, edges };
}
