/**
 * The memorization score of SPEC §3.8 (Kim et al., "How diffusion models memorize"; the
 * copy-detection score of Somepalli et al. / Wen et al. with SSCD as f): for N samples
 * `gen_n` of one prompt with target x and a copy descriptor f (unit-norm rows),
 *
 *     sim_train = mean_n cos(f(gen_n), f(x))
 *     sim_gen   = mean_{n≠m} cos(f(gen_n), f(gen_m))      (ordered pairs, N(N−1) of them)
 *     score     = (sim_train + sim_gen) / 2,   memorized ⇔ score > threshold (default 0.75)
 *
 * Several targets (`[k, ...]`): per sample the best target, `max_k cos(f(gen_n), f(x_k))`. Target
 * unknown: x is each sample's nearest training image in descriptor space (highest cosine among
 * `trainEmbeddings`). N = 1: sim_gen is undefined (NaN) and score = sim_train. Cosines are
 * computed in float64 from the embeddings (each row renormalised, so a descriptor whose rows
 * are only approximately unit still gives cosines).
 */
import type { Tensor } from '../tensor/tensor.ts';
import type { Descriptor, DescriptorInfo } from './descriptor.ts';

/** SPEC §3.8 default threshold: memorized when score > 0.75. */
export const DEFAULT_MEMORIZATION_THRESHOLD = 0.75;

/** The aggregation, as recorded with every score (exact text). */
export const SCORE_AGGREGATION =
  'sim_train = mean_n cos(f(gen_n), f(x)); sim_gen = mean over ordered pairs n≠m of cos(f(gen_n), f(gen_m)) (N(N-1) pairs); ' +
  'score = (sim_train + sim_gen)/2; memorized = score > threshold. ' +
  'With k > 1 targets: max over targets per sample before the mean. Target unknown: x = each sample\'s nearest training image in descriptor space (highest cosine). ' +
  'N = 1: sim_gen = NaN and score = sim_train.';

/** Options of {@link memorizationScore} and {@link scoreRecord}. */
export interface ScoreOptions {
  /** Memorized when score > threshold (default 0.75, SPEC §3.8). */
  readonly threshold?: number;
}

/** The memorization score of one prompt's N samples (SPEC §3.8). */
export interface MemorizationScore {
  /** mean_n cos(f(gen_n), f(x)) (see {@link SCORE_AGGREGATION} for several / unknown targets). */
  readonly simTrain: number;
  /** mean over ordered pairs n≠m of cos(f(gen_n), f(gen_m)); NaN when N = 1. */
  readonly simGen: number;
  /** (simTrain + simGen)/2, or simTrain when N = 1. */
  readonly score: number;
  /** score > threshold. */
  readonly memorized: boolean;
  /** Whether a target was given (false: sim_train used the nearest training image). */
  readonly targetKnown: boolean;
  /** Per sample, the index of its nearest training embedding (only when the target is unknown). */
  readonly nearestTrain?: number[];
}

/** How a score was computed: descriptor, aggregation text and threshold. */
export interface ScoreRecord {
  readonly descriptor: DescriptorInfo;
  readonly aggregation: string;
  readonly threshold: number;
}

function resolveThreshold(opts: ScoreOptions): number {
  const t = opts.threshold ?? DEFAULT_MEMORIZATION_THRESHOLD;
  if (!Number.isFinite(t)) throw new Error(`memorization score: threshold must be a finite number, got ${t}`);
  return t;
}

/** Rows of `t` `[n, d]` normalised in float64 (zero rows stay zero). */
function unitRows(t: Tensor, what: string): { n: number; d: number; rows: Float64Array } {
  if (t.dims.length !== 2) throw new Error(`memorization score: ${what} must be [n, dim], got [${t.dims.join(', ')}]`);
  const [n, d] = t.dims as [number, number];
  const rows = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let k = 0; k < d; k++) ss += t.data[i * d + k]! * t.data[i * d + k]!;
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let k = 0; k < d; k++) rows[i * d + k] = t.data[i * d + k]! * inv;
  }
  return { n, d, rows };
}

function dotRows(a: Float64Array, i: number, b: Float64Array, j: number, d: number): number {
  let s = 0;
  for (let k = 0; k < d; k++) s += a[i * d + k]! * b[j * d + k]!;
  return s;
}

/** Per row of `a`, the highest cosine to a row of `b` and its index (first on ties). */
function bestMatch(a: { n: number; d: number; rows: Float64Array }, b: { n: number; rows: Float64Array }): { sim: Float64Array; index: number[] } {
  const sim = new Float64Array(a.n);
  const index: number[] = [];
  for (let i = 0; i < a.n; i++) {
    let best = -Infinity;
    let bj = -1;
    for (let j = 0; j < b.n; j++) {
      const c = dotRows(a.rows, i, b.rows, j, a.d);
      if (c > best) {
        best = c;
        bj = j;
      }
    }
    sim[i] = best;
    index.push(bj);
  }
  return { sim, index };
}

/**
 * The SPEC §3.8 memorization score of `generated` (`[N, ...]`, N ≥ 1) against `target`
 * (`[1, ...]`, or `[k, ...]`: max over targets per sample) or, when `target` is null, against
 * each sample's nearest training image, found among `opts.trainEmbeddings` (`[M, dim]`, e.g.
 * `descriptor.embed(trainImages)`; required then). Default threshold 0.75. See the module note.
 */
export async function memorizationScore(
  descriptor: Descriptor,
  generated: Tensor,
  target: Tensor | null,
  opts: ScoreOptions & { readonly trainEmbeddings?: Tensor } = {},
): Promise<MemorizationScore> {
  const threshold = resolveThreshold(opts);
  const N = generated.dims[0] ?? 0;
  if (generated.dims.length < 2 || N < 1) throw new Error(`memorization score: generated must be [N, ...] with N >= 1, got [${generated.dims.join(', ')}]`);
  if (target !== null) {
    const same = target.dims.length === generated.dims.length && target.dims.slice(1).every((v, i) => v === generated.dims[i + 1]);
    if (!same || (target.dims[0] ?? 0) < 1) throw new Error(`memorization score: target [${target.dims.join(', ')}] must be [k >= 1, ${generated.dims.slice(1).join(', ')}] like the generated samples`);
  }
  const G = unitRows(await descriptor.embed(generated), 'the embedding of the generated samples');
  let match: { sim: Float64Array; index: number[] };
  if (target !== null) {
    const T = unitRows(await descriptor.embed(target), 'the embedding of the target');
    match = bestMatch(G, T);
  } else {
    const te = opts.trainEmbeddings;
    if (te === undefined) throw new Error('memorization score: target is null (unknown), so opts.trainEmbeddings ([M, dim], the descriptor embeddings of the training images) is required');
    const E = unitRows(te, 'opts.trainEmbeddings');
    if (E.d !== G.d) throw new Error(`memorization score: trainEmbeddings have ${E.d} columns, the descriptor gives ${G.d}`);
    if (E.n < 1) throw new Error('memorization score: trainEmbeddings is empty');
    match = bestMatch(G, E);
  }
  let simTrain = 0;
  for (let i = 0; i < N; i++) simTrain += match.sim[i]!;
  simTrain /= N;
  let simGen = Number.NaN;
  if (N > 1) {
    let s = 0;
    for (let i = 0; i < N; i++) for (let j = i + 1; j < N; j++) s += dotRows(G.rows, i, G.rows, j, G.d);
    simGen = (2 * s) / (N * (N - 1));
  }
  const score = N > 1 ? (simTrain + simGen) / 2 : simTrain;
  const base = { simTrain, simGen, score, memorized: score > threshold };
  return target !== null ? { ...base, targetKnown: true } : { ...base, targetKnown: false, nearestTrain: match.index };
}

/** The record to store beside scores: the descriptor's info, {@link SCORE_AGGREGATION} and the threshold (default 0.75). */
export function scoreRecord(descriptor: Descriptor, opts: ScoreOptions = {}): ScoreRecord {
  return { descriptor: descriptor.info, aggregation: SCORE_AGGREGATION, threshold: resolveThreshold(opts) };
}
