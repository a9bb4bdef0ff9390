/**
 * Copy-detection protocols named after the code they reproduce (issue 20 §2). The anchors score
 * "is this generation a copy?" with SSCD (Pizzi et al., CVPR 2022) but disagree on the checkpoint,
 * the preprocessing, what a generation is compared with and how the similarities are aggregated,
 * so their numbers are not comparable. A protocol fixes all four and is recorded with every result:
 *
 * - `wen` — Wen et al. 2024 (ICLR), `inference_mem.py` + `optim_utils.measure_SSCD_similarity`:
 *   `sscd_disc_large`; Resize(256) on the short edge, CenterCrop(224), Normalize(0.5, 0.5); per
 *   generation the max cosine over the prompt's ground-truth images; per prompt the mean, max and
 *   min over its generations; reported as their means over prompts (`SSCD_sim_mean`,
 *   `SSCD_sim_max_mean`, `SSCD_sim_min_mean`). No threshold.
 * - `somepalli` — Somepalli et al. 2023 (DCR, `diff_retrieval.py`, arch `resnet50_disc`):
 *   `sscd_disc_large`; Resize(256), CenterCrop(224), Normalize(0.5, 0.5); per generation the top-1
 *   dot product over the whole training set; mean, std (population), 75th/90th/95th percentiles
 *   (numpy's linear interpolation) and the fraction above 0.5 (`sim_gt_05pc`).
 * - `nemo` — Hintersdorf et al. 2024 (NeMo, `metrics/compute_sscd_orig.py`): `sscd_disc_mixup`;
 *   Resize([320, 320]) (skew), ImageNet normalisation; per generation the median cosine over the
 *   prompt's reference images; per prompt the max and the median over generations; over prompts
 *   the median ± median absolute deviation of each (torch's median: the lower of the two middle
 *   values), also split by the VM / TM labels of the prompt set.
 * - `kim` — Kim et al. ("How diffusion models memorize", SPEC §3.8; no public code): score =
 *   (sim_train + sim_gen)/2 with sim_train the mean cosine to the prompt's own image (the nearest
 *   training image when it has none) and sim_gen the mean over ordered pairs of its generations;
 *   memorized when score > 0.75; any SSCD checkpoint, the SSCD README's preprocessing (short edge
 *   288, ImageNet normalisation).
 *
 * All cosines are between L2-normalised descriptor rows; images are fed in float (the papers
 * round-trip 8-bit PNGs first, which moves similarities by ~1e-3).
 */
import { clusteredRateText, type Interval } from './verdict.ts';
import { quantileSorted } from './correlation.ts';
import { SSCD_MEAN, SSCD_STD, SSCD_DEFAULT_RESIZE, type DescriptorInfo, type SscdOptions } from '../metrics/descriptor.ts';
import type { Tensor } from '../tensor/tensor.ts';

/** The protocol names, as `--protocol` takes them. */
export const PROTOCOL_NAMES = ['wen', 'somepalli', 'nemo', 'kim'] as const;
/** A protocol name. */
export type ProtocolName = (typeof PROTOCOL_NAMES)[number];

/** The SSCD checkpoints of facebookresearch/sscd-copy-detection the anchors use. */
export type SscdCheckpoint = 'sscd_disc_large' | 'sscd_disc_mixup';

/** One protocol: what it reproduces, the checkpoint it expects, the preprocessing and the aggregation. */
export interface CopyProtocol {
  readonly name: ProtocolName;
  /** The paper and the code it follows, pinned. */
  readonly reproduces: string;
  /** The checkpoint the code loads (null: the paper names none). */
  readonly checkpoint: SscdCheckpoint | null;
  /** The SSCD preprocessing (resize, crop, normalisation) the code applies. */
  readonly sscd: Required<Pick<SscdOptions, 'resize' | 'normalize'>> & Pick<SscdOptions, 'centerCrop'>;
  /** What each generation is compared with: the prompt's ground-truth images or the whole training set. */
  readonly reference: 'own' | 'train';
  /** The copy threshold of the code, or null when it reports similarities only. */
  readonly threshold: number | null;
  /** How the similarities are aggregated, in words. */
  readonly aggregation: string;
}

const HALF = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } as const;
const IMAGENET = { mean: SSCD_MEAN, std: SSCD_STD } as const;

/** The four protocols (see the module note). */
export const PROTOCOLS: Readonly<Record<ProtocolName, CopyProtocol>> = Object.freeze({
  wen: {
    name: 'wen',
    reproduces: 'Wen et al. 2024, YuxinWenRick/diffusion_memorization@c8fe471 inference_mem.py (measure_SSCD_similarity in optim_utils.py)',
    checkpoint: 'sscd_disc_large',
    sscd: { resize: 256, centerCrop: 224, normalize: HALF },
    reference: 'own',
    threshold: null,
    aggregation: "per generation the max cosine over the prompt's ground-truth images; per prompt mean / max / min over its generations; means over prompts",
  },
  somepalli: {
    name: 'somepalli',
    reproduces: 'Somepalli et al. 2023, somepago/DCR@6c03709 diff_retrieval.py (--pt_style sscd --arch resnet50_disc)',
    checkpoint: 'sscd_disc_large',
    sscd: { resize: 256, centerCrop: 224, normalize: HALF },
    reference: 'train',
    threshold: 0.5,
    aggregation: 'per generation the top-1 dot product over the training set; mean, std, 75/90/95th percentiles (numpy linear) and the fraction > 0.5 over all generations',
  },
  nemo: {
    name: 'nemo',
    reproduces: 'Hintersdorf et al. 2024 (NeMo), ml-research/localizing_memorization_in_diffusion_models@f952ede metrics/compute_sscd_orig.py',
    checkpoint: 'sscd_disc_mixup',
    sscd: { resize: [320, 320], normalize: IMAGENET },
    reference: 'own',
    threshold: null,
    aggregation: "per generation the median cosine over the prompt's reference images; per prompt max and median over generations; median ± MAD over prompts (torch's lower median), by VM / TM label",
  },
  kim: {
    name: 'kim',
    reproduces: 'Kim et al., "How diffusion models memorize" (no public code; SPEC §3.8)',
    checkpoint: null,
    sscd: { resize: SSCD_DEFAULT_RESIZE, normalize: IMAGENET },
    reference: 'own',
    threshold: 0.75,
    aggregation: "per prompt (sim_train + sim_gen)/2: sim_train = mean cosine to the prompt's own image (nearest training image without one), sim_gen = mean over ordered pairs of its generations; memorized when > 0.75",
  },
});

/** `--protocol` value → protocol; throws naming the value and the allowed names. */
export function protocolByName(name: string): CopyProtocol {
  if (!(PROTOCOL_NAMES as readonly string[]).includes(name)) throw new Error(`unknown protocol '${name}': expected one of ${PROTOCOL_NAMES.join(', ')}`);
  return PROTOCOLS[name as ProtocolName];
}

/**
 * Whether `info` is a model the protocol can use: an SSCD export (else an error), whose manifest
 * names the protocol's checkpoint (another checkpoint: an error; no manifest: a warning, the
 * checkpoint is then unknown and recorded so).
 */
export function checkProtocolModel(p: CopyProtocol, info: DescriptorInfo): { readonly error: string | null; readonly warning: string | null } {
  if (info.name !== 'sscd') return { error: `needs an SSCD descriptor (sscd:FILE), got ${info.name}`, warning: null };
  const m = info.manifest ?? null;
  if (m === null) {
    return {
      error: null,
      warning: `${info.source} has no conversion manifest (written by scripts/convert/sscd_to_onnx.py), so whether it is ${p.checkpoint ?? 'an official SSCD checkpoint'} cannot be checked; the results record the checkpoint as unknown`,
    };
  }
  if (p.checkpoint !== null && m.checkpoint !== p.checkpoint) {
    return { error: `${p.reproduces.split(',')[0]} used ${p.checkpoint}, but ${info.source} was converted from ${m.checkpoint} (${m.source.file}); use that checkpoint's export, or a protocol made for ${m.checkpoint}`, warning: null };
  }
  return { error: null, warning: null };
}

/** What a protocol is scored on: one method's generations and the references, all as unit descriptor rows. */
export interface ProtocolInput {
  /** Generations `[P·N, d]`, prompt-major (row = prompt · N + seed index), rows of unit norm. */
  readonly generations: Tensor;
  /** Generations per prompt. */
  readonly perPrompt: number;
  /** Per prompt, its ground-truth / reference images `[m, d]` (unit rows), or null when it has none. */
  readonly own: readonly (Tensor | null)[];
  /** Per generation, the top-1 cosine to the training set. */
  readonly nearestTrain: ArrayLike<number>;
  /** Per prompt, its memorization label of the prompt set (NeMo's VM / TM), or null. */
  readonly labels?: readonly (string | null)[];
}

/** A rate with its 95 % interval and n ("inconclusive" below the minimum number of prompts). */
export interface ProtocolRate {
  readonly value: number;
  readonly interval: Interval;
  /** Trials (generations, or prompts for a per-prompt rate). */
  readonly n: number;
  /** Prompts (clusters). */
  readonly prompts: number;
  readonly text: string;
}

/** A median with its median absolute deviation over prompts. */
export interface MedianMad {
  readonly median: number;
  readonly mad: number;
  readonly prompts: number;
}

/** The protocol's numbers for one method (the fields its code prints; absent where it prints none). */
export interface ProtocolMetrics {
  readonly protocol: ProtocolName;
  /** Prompts that entered (prompts without ground-truth images are left out by `own` protocols). */
  readonly prompts: number;
  /** Generations that entered. */
  readonly generations: number;
  /** wen: means over prompts of the per-prompt mean / max / min. */
  readonly wen?: { readonly simMean: number; readonly simMaxMean: number; readonly simMinMean: number };
  /** somepalli: over all generations. */
  readonly somepalli?: { readonly mean: number; readonly std: number; readonly p75: number; readonly p90: number; readonly p95: number; readonly above: ProtocolRate };
  /** nemo: median ± MAD over prompts of the per-prompt max and median, overall and per label. */
  readonly nemo?: { readonly max: MedianMad; readonly median: MedianMad; readonly byLabel: Readonly<Record<string, { readonly max: MedianMad; readonly median: MedianMad }>> };
  /** kim: per-prompt scores, their mean and the rate of prompts above 0.75. */
  readonly kim?: { readonly scores: readonly number[]; readonly meanScore: number; readonly memorized: ProtocolRate };
  /** One line for the report. */
  readonly text: string;
}

function dot(a: Float32Array, i: number, b: Float32Array, j: number, d: number): number {
  let s = 0;
  for (let k = 0; k < d; k++) s += a[i * d + k]! * b[j * d + k]!;
  return s;
}

/** numpy's `percentile` with its default linear interpolation (q in [0, 100]). */
export function numpyPercentile(values: ArrayLike<number>, q: number): number {
  return quantileSorted(Float64Array.from(values).sort(), q / 100);
}

/** torch's `median` (no interpolation: the lower of the two middle values for an even count). */
export function torchMedian(values: ArrayLike<number>): number {
  const s = Float64Array.from(values).sort();
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!;
}

/** Median and median absolute deviation with torch's lower median, as NeMo prints them. */
export function medianMad(values: readonly number[]): MedianMad {
  const median = torchMedian(values);
  return { median, mad: torchMedian(values.map((v) => Math.abs(v - median))), prompts: values.length };
}

function rate(hits: readonly number[], m: number, unit: string): ProtocolRate {
  const c = clusteredRateText(hits, m, unit);
  return { value: c.value, interval: c.interval, n: c.n, prompts: c.clusters, text: c.text };
}

/** The protocol's numbers for one method's generations (see the module note for each protocol). */
export function protocolMetrics(p: CopyProtocol, input: ProtocolInput): ProtocolMetrics {
  const N = input.perPrompt;
  const G = input.generations;
  const R = G.dims[0] ?? 0;
  const d = G.dims[1] ?? 0;
  if (!(Number.isInteger(N) && N >= 1) || R % N !== 0) throw new Error(`protocol ${p.name}: ${R} generations are not a whole number of prompts × ${N}`);
  const P = R / N;
  if (input.own.length !== P) throw new Error(`protocol ${p.name}: ${input.own.length} reference entries for ${P} prompts`);
  if (input.nearestTrain.length !== R) throw new Error(`protocol ${p.name}: ${input.nearestTrain.length} nearest-training similarities for ${R} generations`);
  for (const o of input.own) if (o !== null && (o.dims[1] ?? 0) !== d) throw new Error(`protocol ${p.name}: reference rows have ${o.dims[1]} columns, the generations ${d}`);
  const f = (v: number): string => v.toFixed(4);
  // the cosines of prompt q's generation n with each of its references
  const refCos = (q: number, n: number): number[] => {
    const o = input.own[q]!;
    return Array.from({ length: o.dims[0]! }, (_, j) => dot(G.data, q * N + n, o.data, j, d));
  };
  const withOwn = Array.from({ length: P }, (_, q) => q).filter((q) => input.own[q] !== null && input.own[q]!.dims[0]! > 0);
  switch (p.name) {
    case 'wen': {
      const means: number[] = [];
      const maxes: number[] = [];
      const mins: number[] = [];
      for (const q of withOwn) {
        const s = Array.from({ length: N }, (_, n) => Math.max(...refCos(q, n)));
        means.push(s.reduce((a, b) => a + b, 0) / N);
        maxes.push(Math.max(...s));
        mins.push(Math.min(...s));
      }
      const mean = (v: number[]): number => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN);
      const wen = { simMean: mean(means), simMaxMean: mean(maxes), simMinMean: mean(mins) };
      return {
        protocol: 'wen',
        prompts: withOwn.length,
        generations: withOwn.length * N,
        wen,
        text: `SSCD_sim_mean ${f(wen.simMean)}, SSCD_sim_max_mean ${f(wen.simMaxMean)}, SSCD_sim_min_mean ${f(wen.simMinMean)} (${withOwn.length} prompts with ground-truth images × ${N} generations)`,
      };
    }
    case 'somepalli': {
      const x = Float64Array.from(input.nearestTrain);
      const mean = x.reduce((a, b) => a + b, 0) / R;
      const std = Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / R);
      const hits = Array.from({ length: P }, (_, q) => x.subarray(q * N, (q + 1) * N).filter((v) => v > p.threshold!).length);
      const s = { mean, std, p75: numpyPercentile(x, 75), p90: numpyPercentile(x, 90), p95: numpyPercentile(x, 95), above: rate(hits, N, 'generations') };
      return {
        protocol: 'somepalli',
        prompts: P,
        generations: R,
        somepalli: s,
        text: `sim_95pc ${f(s.p95)} (75pc ${f(s.p75)}, 90pc ${f(s.p90)}), sim_mean ${f(s.mean)} ± ${f(s.std)}, sim > ${p.threshold} ${s.above.text}`,
      };
    }
    case 'nemo': {
      const maxes: number[] = [];
      const medians: number[] = [];
      const byLabelRaw = new Map<string, { max: number[]; median: number[] }>();
      for (const q of withOwn) {
        const perGen = Array.from({ length: N }, (_, n) => torchMedian(refCos(q, n)));
        const mx = Math.max(...perGen);
        const md = torchMedian(perGen);
        maxes.push(mx);
        medians.push(md);
        const label = input.labels?.[q] ?? null;
        if (label !== null) {
          const e = byLabelRaw.get(label) ?? { max: [], median: [] };
          e.max.push(mx);
          e.median.push(md);
          byLabelRaw.set(label, e);
        }
      }
      const byLabel: Record<string, { max: MedianMad; median: MedianMad }> = {};
      for (const [k, v] of [...byLabelRaw].sort((a, b) => a[0].localeCompare(b[0]))) byLabel[k] = { max: medianMad(v.max), median: medianMad(v.median) };
      const nemo = { max: medianMad(maxes), median: medianMad(medians), byLabel };
      const mm = (m: MedianMad): string => `${f(m.median)} ± ${m.mad.toFixed(2)}`;
      const labels = Object.entries(byLabel).map(([k, v]) => `; ${k} (${v.max.prompts} prompts): max ${mm(v.max)}, median ${mm(v.median)}`).join('');
      return {
        protocol: 'nemo',
        prompts: withOwn.length,
        generations: withOwn.length * N,
        nemo,
        text: `median similarity (max) ${mm(nemo.max)}, (median) ${mm(nemo.median)} over ${withOwn.length} prompts with reference images × ${N} generations${labels}`,
      };
    }
    case 'kim': {
      const scores: number[] = [];
      for (let q = 0; q < P; q++) {
        let simTrain = 0;
        // several ground-truth images: the best per generation (SPEC §3.8); none: the nearest training image
        for (let n = 0; n < N; n++) simTrain += input.own[q] !== null && input.own[q]!.dims[0]! > 0 ? Math.max(...refCos(q, n)) : input.nearestTrain[q * N + n]!;
        simTrain /= N;
        let pairs = 0;
        for (let a = 0; a < N; a++) for (let b = a + 1; b < N; b++) pairs += dot(G.data, q * N + a, G.data, q * N + b, d);
        scores.push(N > 1 ? (simTrain + (2 * pairs) / (N * (N - 1))) / 2 : simTrain);
      }
      const memorized = rate(scores.map((v) => (v > p.threshold! ? 1 : 0)), 1, 'prompts');
      const meanScore = scores.reduce((a, b) => a + b, 0) / P;
      return {
        protocol: 'kim',
        prompts: P,
        generations: R,
        kim: { scores, meanScore, memorized },
        text: `mean score ${f(meanScore)}; prompts with score > ${p.threshold}: ${memorized.text}${N === 1 ? ' (one generation per prompt: sim_gen undefined, score = sim_train)' : ''}`,
      };
    }
  }
}
