/**
 * Correlation coefficients for the across-prompt claims of Kim et al. (SPEC §3.4, §3.7: the
 * diversity and the deviation sums correlate with the memorization score): Pearson's r,
 * Spearman's ρ (average ranks for ties) and a seeded percentile-bootstrap confidence interval.
 * Every sum accumulates in float64 with the two-pass (centred) formula. Pairs where either value
 * is not finite are dropped before anything is computed.
 */
import { mulberry32 } from '../random/mulberry32.ts';

/** A correlation with its bootstrap confidence interval. */
export interface CorrelationCI {
  /** The coefficient on all (finite) pairs. */
  readonly r: number;
  /** Lower end of the percentile interval. */
  readonly lo: number;
  /** Upper end of the percentile interval. */
  readonly hi: number;
  /** Number of finite pairs used. */
  readonly n: number;
  /** Coverage level of [lo, hi] (e.g. 0.95). */
  readonly level: number;
}

/** Options of {@link bootstrapCorrelation}. */
export interface BootstrapOptions {
  /** Seed of the resampling PRNG (`src/random/mulberry32.ts`). */
  readonly seed: number;
  /** Number of bootstrap resamples (default 2000). */
  readonly resamples?: number;
  /** Coverage level in (0, 1) (default 0.95). */
  readonly level?: number;
}

/** Which coefficient: Pearson's r or Spearman's ρ. */
export type CorrelationKind = 'pearson' | 'spearman';

/** The pairs (x_i, y_i) with both values finite, as two Float64Arrays. */
function finitePairs(x: ArrayLike<number>, y: ArrayLike<number>, fn: string): [Float64Array, Float64Array] {
  if (x.length !== y.length) throw new Error(`${fn}: x and y differ in length (${x.length} vs ${y.length})`);
  let n = 0;
  for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i]!) && Number.isFinite(y[i]!)) n++;
  const a = new Float64Array(n);
  const b = new Float64Array(n);
  let k = 0;
  for (let i = 0; i < x.length; i++) {
    if (Number.isFinite(x[i]!) && Number.isFinite(y[i]!)) {
      a[k] = x[i]!;
      b[k] = y[i]!;
      k++;
    }
  }
  return [a, b];
}

/** Pearson on arrays already known to be finite and of equal length (two-pass, float64). */
function pearsonFinite(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  if (n < 2) return NaN;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]!;
    mb += b[i]!;
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i]! - ma;
    const db = b[i]! - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  const den = Math.sqrt(saa * sbb);
  if (!(den > 0)) return NaN;
  // round-off can push |r| a hair above 1
  return Math.max(-1, Math.min(1, sab / den));
}

/** Average ranks (1-based) of finite values; ties share the mean of their ranks. */
function ranksFinite(a: ArrayLike<number>): Float64Array {
  const n = a.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[i]! - a[j]!);
  const out = new Float64Array(n);
  let i = 0;
  while (i < n) {
    let j = i + 1;
    while (j < n && a[order[j]!]! === a[order[i]!]!) j++;
    const rank = (i + 1 + j) / 2; // mean of ranks i+1 … j
    for (let k = i; k < j; k++) out[order[k]!] = rank;
    i = j;
  }
  return out;
}

/**
 * Average ranks (1-based, ties get the mean of the ranks they span, as `scipy.stats.rankdata`'s
 * default `method='average'`). Non-finite entries get rank NaN and are not counted.
 */
export function ranks(x: ArrayLike<number>): Float64Array {
  const idx: number[] = [];
  for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i]!)) idx.push(i);
  const r = ranksFinite(idx.map((i) => x[i]!));
  const out = new Float64Array(x.length).fill(NaN);
  idx.forEach((i, k) => (out[i] = r[k]!));
  return out;
}

/**
 * Pearson's correlation coefficient r (used for SPEC §3.7's "Pearson r up to ≈ 0.9"), two-pass
 * in float64. Pairs with a non-finite value are dropped; NaN when fewer than 2 pairs remain or
 * either variable is constant.
 */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const [a, b] = finitePairs(x, y, 'pearson');
  return pearsonFinite(a, b);
}

/**
 * Spearman's rank correlation ρ (SPEC §3.4 / §3.7 across prompts): Pearson's r of the average
 * ranks (ties averaged, so it equals `scipy.stats.spearmanr`). Pairs with a non-finite value are
 * dropped first; NaN when fewer than 2 pairs remain or either variable is constant.
 */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const [a, b] = finitePairs(x, y, 'spearman');
  return pearsonFinite(ranksFinite(a), ranksFinite(b));
}

/** `q`-quantile of ascending-sorted `s` with linear interpolation (numpy's default `np.quantile`); NaN when empty. */
export function quantileSorted(s: ArrayLike<number>, q: number): number {
  if (s.length === 0) return NaN;
  const h = (s.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo]! + (h - lo) * (s[hi]! - s[lo]!);
}

/**
 * Percentile-bootstrap confidence interval of a correlation (Efron's percentile method): draw
 * `resamples` (default 2000) sets of n pairs with replacement, seeded (mulberry32 of `opts.seed`,
 * never `Math.random`), recompute the coefficient on each (Spearman re-ranks every resample), and
 * report the (1−level)/2 and (1+level)/2 quantiles (default level 0.95, linear interpolation).
 * Pairs with a non-finite value are dropped first; resamples whose coefficient is undefined
 * (e.g. all drawn pairs equal) are left out of the quantiles. With fewer than 3 finite pairs
 * every field but `n` and `level` is NaN.
 */
export function bootstrapCorrelation(x: ArrayLike<number>, y: ArrayLike<number>, kind: CorrelationKind, opts: BootstrapOptions): CorrelationCI {
  const resamples = opts.resamples ?? 2000;
  const level = opts.level ?? 0.95;
  if (kind !== 'pearson' && kind !== 'spearman') throw new Error(`bootstrapCorrelation: kind must be 'pearson' or 'spearman', got '${String(kind)}'`);
  if (!Number.isInteger(resamples) || resamples < 1) throw new Error(`bootstrapCorrelation: resamples must be a positive integer, got ${resamples}`);
  if (!(level > 0 && level < 1)) throw new Error(`bootstrapCorrelation: level must be in (0, 1), got ${level}`);
  const [a, b] = finitePairs(x, y, 'bootstrapCorrelation');
  const n = a.length;
  if (n < 3) return { r: NaN, lo: NaN, hi: NaN, n, level };
  const coef = (p: Float64Array, q: Float64Array): number => (kind === 'pearson' ? pearsonFinite(p, q) : pearsonFinite(ranksFinite(p), ranksFinite(q)));
  const r = coef(a, b);
  const rng = mulberry32(opts.seed);
  const ra = new Float64Array(n);
  const rb = new Float64Array(n);
  const stats: number[] = [];
  for (let k = 0; k < resamples; k++) {
    for (let i = 0; i < n; i++) {
      const j = Math.floor(rng() * n);
      ra[i] = a[j]!;
      rb[i] = b[j]!;
    }
    const v = coef(ra, rb);
    if (Number.isFinite(v)) stats.push(v);
  }
  const sorted = Float64Array.from(stats).sort();
  const tail = (1 - level) / 2;
  return { r, lo: quantileSorted(sorted, tail), hi: quantileSorted(sorted, 1 - tail), n, level };
}
