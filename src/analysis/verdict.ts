/**
 * Honest verdicts: every "holds" / "does not hold" memscope prints comes from a confidence
 * interval with its n, never from a point estimate, and below a stated minimum n it reads
 * "inconclusive (n = …)". An unmeasured statistic reads "not measured", never "does not hold".
 *
 * Intervals (all two-sided, default level 0.95):
 * - proportions (rates, TPR, FPR): the Wilson score interval (Wilson 1927; Newcombe 1998);
 * - Pearson's r: the Fisher-z interval tanh(atanh r ± z/√(n − 3));
 * - ROC AUC: the Hanley–McNeil (1982) normal interval A ± z·SE with
 *   SE² = [A(1−A) + (P−1)(Q1−A²) + (N−1)(Q2−A²)] / (P·N), Q1 = A/(2−A), Q2 = 2A²/(1+A)
 *   (it collapses to a point at A = 0 or 1, which is why AUC also has a minimum n per class);
 * - a mean across prompts: Student's t interval; a paired or two-group difference of means: the
 *   paired t / Welch t interval;
 * - a quantile threshold calibrated on held-out data: no interval, but a minimum n (a q-quantile
 *   of fewer than 1/(1 − q) values is the sample maximum or an interpolation below it).
 *
 * Minimum n (the {@link MIN_N} table) per quantity: see its TSDoc. A verdict "holds" only when the
 * whole interval lies on the claim's side; "does not hold" only when the whole interval lies on
 * the other side; otherwise "inconclusive".
 */

/** A two-sided confidence interval. */
export interface Interval {
  readonly lo: number;
  readonly hi: number;
  /** Coverage, e.g. 0.95. */
  readonly level: number;
  /** How it was computed (e.g. "Wilson score", "Fisher z"). */
  readonly method: string;
}

/** The four verdict words. */
export type VerdictWord = 'holds' | 'does not hold' | 'inconclusive' | 'not measured';

/** Which values make a claim true: above a bound, below one, or inside [lo, hi]. */
export type ClaimSide = { readonly above: number } | { readonly below: number } | { readonly within: readonly [number, number] };

/** A judged claim: the claim, the paper's value, memscope's value with its interval and n. */
export interface Verdict {
  readonly claim: string;
  /** What the paper reports (free text), or null. */
  readonly paper: string | null;
  /** memscope's point estimate (NaN when not measured). */
  readonly value: number;
  /** Its interval (null when not measured or when the quantity has none). */
  readonly interval: Interval | null;
  /** The n the interval rests on (prompts, negatives, samples …), and what it counts. */
  readonly n: number;
  readonly nLabel: string;
  /** The minimum n below which the verdict is "inconclusive". */
  readonly minN: number;
  readonly verdict: VerdictWord;
  /** One line: the verdict word and why (e.g. "inconclusive (n = 4 prompts < 10)"). */
  readonly text: string;
}

/**
 * Minimum n per quantity, below which a verdict is "inconclusive" whatever the interval says.
 * - `correlation` 10 prompts: Fisher z needs n > 3 at all, and with n < 10 the 95 % interval of
 *   r = 0.7 reaches below 0 (tanh(atanh 0.7 − 1.96/√6) ≈ 0.02);
 * - `promptMean` 10 prompts for a mean (or a difference of means) across prompts;
 * - `proportion` 10 trials for a rate (a Wilson interval from fewer is wider than ±0.25 at p = ½);
 * - `aucPerClass` 10 positives and 10 negatives (Hanley–McNeil is a large-sample interval);
 * - `bootstrapPrompts` 10 prompts for a prompt-cluster percentile bootstrap;
 * - TPR at FPR f: ⌈1/f⌉ negatives ({@link minNegativesForFpr}), so at least one negative can fall
 *   above the threshold (1 % → 100);
 * - a threshold at quantile q: ⌈1/(1 − q)⌉ held-out images ({@link minCalibrationImages}; 0.99 → 100).
 */
export const MIN_N = {
  correlation: 10,
  promptMean: 10,
  proportion: 10,
  aucPerClass: 10,
  bootstrapPrompts: 10,
} as const;

/** Negatives needed before a TPR at FPR `fpr` means anything: ⌈1/fpr⌉ (1 % → 100). */
export function minNegativesForFpr(fpr: number): number {
  if (!(fpr > 0 && fpr < 1)) throw new Error(`minNegativesForFpr: fpr must be in (0, 1), got ${fpr}`);
  return Math.ceil(1 / fpr - 1e-9);
}

/** Held-out values needed to calibrate a threshold at quantile q: ⌈1/(1 − q)⌉ (0.99 → 100, 0.95 → 20). */
export function minCalibrationImages(q: number): number {
  if (!(q > 0 && q < 1)) throw new Error(`minCalibrationImages: q must be in (0, 1), got ${q}`);
  return Math.ceil(1 / (1 - q) - 1e-9);
}

// ---------------------------------------------------------------------------------------------
// distributions

/**
 * Quantile of the standard normal distribution (Wichura 1988, algorithm AS 241 PPND16; relative
 * error about 1e-16). `p` in (0, 1).
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`normalQuantile: p must be in (0, 1), got ${p}`);
  const q = p - 0.5;
  if (Math.abs(q) <= 0.425) {
    const r = 0.180625 - q * q;
    return (
      (q *
        (((((((r * 2509.0809287301226727 + 33430.575583588128105) * r + 67265.770927008700853) * r + 45921.953931549871457) * r + 13731.693765509461125) * r + 1971.5909503065514427) * r + 133.14166789178437745) * r +
          3.387132872796366608)) /
      (((((((r * 5226.495278852545925 + 28729.085735721942674) * r + 39307.89580009271061) * r + 21213.794301586595867) * r + 5394.1960214247511077) * r + 687.1870074920579083) * r + 42.313330701600911252) * r + 1)
    );
  }
  let r = q < 0 ? p : 1 - p;
  r = Math.sqrt(-Math.log(r));
  let v: number;
  if (r <= 5) {
    r -= 1.6;
    v =
      (((((((r * 7.7454501427834140764e-4 + 0.0227238449892691845833) * r + 0.24178072517745061177) * r + 1.27045825245236838258) * r + 3.64784832476320460504) * r + 5.7694972214606914055) * r + 4.6303378461565452959) * r +
        1.42343711074968357734) /
      (((((((r * 1.05075007164441684324e-9 + 5.475938084995344946e-4) * r + 0.0151986665636164571966) * r + 0.14810397642748007459) * r + 0.68976733498510000455) * r + 1.6763848301838038494) * r + 2.05319162663775882187) * r + 1);
  } else {
    r -= 5;
    v =
      (((((((r * 2.01033439929228813265e-7 + 2.71155556874348757815e-5) * r + 0.0012426609473880784386) * r + 0.026532189526576123093) * r + 0.29656057182850489123) * r + 1.7848265399172913358) * r + 5.4637849111641143699) * r +
        6.6579046435011037772) /
      (((((((r * 2.04426310338993978564e-15 + 1.4215117583164458887e-7) * r + 1.8463183175100546818e-5) * r + 7.868691311456132591e-4) * r + 0.0148753612908506148525) * r + 0.13692988092273580531) * r + 0.59983220655588793769) * r + 1);
  }
  return q < 0 ? -v : v;
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error about 1e-15). */
function logGamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const xx = x - 1;
  let a = c[0]!;
  const t = xx + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (xx + i);
  return 0.5 * Math.log(2 * Math.PI) + (xx + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaCf(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/** Regularized incomplete beta I_x(a, b). */
function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betaCf(a, b, x)) / a : 1 - (front * betaCf(b, a, 1 - x)) / b;
}

/** CDF of Student's t distribution with `df` > 0 degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0)) throw new Error(`studentTCdf: df must be > 0, got ${df}`);
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** Quantile of Student's t distribution (bisection on {@link studentTCdf} to 1e-12). */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`studentTQuantile: p must be in (0, 1), got ${p}`);
  if (!(df > 0)) throw new Error(`studentTQuantile: df must be > 0, got ${df}`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  let lo = 0;
  let hi = 1;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * Math.max(1, hi); i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

const zOf = (level: number): number => {
  if (!(level > 0 && level < 1)) throw new Error(`level must be in (0, 1), got ${level}`);
  return normalQuantile((1 + level) / 2);
};

// ---------------------------------------------------------------------------------------------
// intervals

/** Wilson score interval of a rate p̂ from n trials (n may be an effective, non-integer n). */
function wilsonRate(p: number, n: number, level: number, method: string): Interval {
  if (!(n > 0)) return { lo: NaN, hi: NaN, level, method };
  const z = zOf(level);
  const z2 = z * z;
  const den = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / den;
  const half = (z / den) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { lo: p === 0 ? 0 : Math.max(0, centre - half), hi: p === 1 ? 1 : Math.min(1, centre + half), level, method };
}

/**
 * Wilson score interval of a proportion k/n (Wilson 1927): centre (p̂ + z²/2n)/(1 + z²/n),
 * half-width z/(1 + z²/n)·√(p̂(1−p̂)/n + z²/4n²). NaN bounds when n = 0.
 */
export function wilsonInterval(k: number, n: number, level = 0.95): Interval {
  if (!(Number.isInteger(k) && Number.isInteger(n) && k >= 0 && k <= n)) throw new Error(`wilsonInterval: need integers 0 ≤ k ≤ n, got k = ${k}, n = ${n}`);
  return wilsonRate(n ? k / n : NaN, n, level, 'Wilson score');
}

/** A rate over clusters (prompts × seeds) with its interval, effective n and design effect. */
export interface ClusteredRate {
  readonly value: number;
  readonly interval: Interval;
  /** Trials (all samples). */
  readonly n: number;
  /** Clusters (prompts). */
  readonly clusters: number;
  /** Kish design effect 1 + (m − 1)·ρ (ρ the ANOVA intra-cluster correlation, clipped to [0, 1]). */
  readonly designEffect: number;
  /** n / design effect, between the clusters and n. */
  readonly effectiveN: number;
}

/**
 * A proportion from equal-size clusters (the seeds of one prompt are not independent): Wilson's
 * interval at the effective n = n / deff, deff = 1 + (m − 1)·ρ with the one-way ANOVA estimate of
 * the intra-cluster correlation ρ = (MSB − MSW)/(MSB + (m − 1)·MSW) clipped to [0, 1]
 * (Kish 1965). ρ = 0 gives Wilson over all samples; ρ = 1 (each prompt all copies or none)
 * gives Wilson over the prompts. `hits[i]` is the number of successes in cluster i of size `m`.
 */
export function clusteredRateInterval(hits: readonly number[], m: number, level = 0.95): ClusteredRate {
  const P = hits.length;
  const n = P * m;
  const method = 'Wilson score, cluster-adjusted n';
  if (P === 0 || !(m >= 1)) return { value: NaN, interval: { lo: NaN, hi: NaN, level, method }, n, clusters: P, designEffect: NaN, effectiveN: 0 };
  const p = hits.reduce((a, b) => a + b, 0) / n;
  let rho = 0;
  if (P > 1 && m > 1) {
    const msb = (m * hits.reduce((a, k) => a + (k / m - p) ** 2, 0)) / (P - 1);
    const msw = hits.reduce((a, k) => a + m * (k / m) * (1 - k / m), 0) / (P * (m - 1));
    const den = msb + (m - 1) * msw;
    rho = den > 0 ? Math.max(0, Math.min(1, (msb - msw) / den)) : 0;
  } else if (P === 1 && m > 1) {
    rho = 1; // one prompt: nothing tells its seeds apart from the prompt, so it counts once
  }
  const designEffect = 1 + (m - 1) * rho;
  const effectiveN = n / designEffect;
  return { value: p, interval: wilsonRate(p, effectiveN, level, method), n, clusters: P, designEffect, effectiveN };
}

/** {@link clusteredRateInterval} with its printed form. */
export interface ClusteredRateText extends ClusteredRate {
  /** `"v % [lo, hi] (n UNIT of P prompts)"`, with `": inconclusive (…)"` appended when it is. */
  readonly text: string;
}

/**
 * A cluster-adjusted rate as memscope prints it: value and interval in percent with n and the
 * prompt count; "inconclusive" below {@link MIN_N}.proportion prompts, or for the caller's
 * `inconclusiveBecause` (e.g. an under-calibrated threshold), which takes precedence.
 */
export function clusteredRateText(hits: readonly number[], m: number, unit: string, inconclusiveBecause: string | null = null): ClusteredRateText {
  const c = clusteredRateInterval(hits, m);
  const pc = (v: number): string => (100 * v).toFixed(1);
  const why = inconclusiveBecause ?? (c.clusters < MIN_N.proportion ? `prompts = ${c.clusters} < ${MIN_N.proportion}` : null);
  return { ...c, text: `${pc(c.value)} % [${pc(c.interval.lo)}, ${pc(c.interval.hi)}] (${c.n} ${unit} of ${c.clusters} prompts)${why === null ? '' : `: inconclusive (${why})`}` };
}

/** Fisher-z interval of Pearson's r from n pairs: tanh(atanh r ± z/√(n − 3)); NaN bounds when n ≤ 3 or r is not finite. */
export function fisherZInterval(r: number, n: number, level = 0.95): Interval {
  if (!(n > 3) || !Number.isFinite(r)) return { lo: NaN, hi: NaN, level, method: 'Fisher z' };
  const z = zOf(level);
  const c = Math.atanh(Math.max(-1 + 1e-15, Math.min(1 - 1e-15, r)));
  const se = 1 / Math.sqrt(n - 3);
  return { lo: Math.tanh(c - z * se), hi: Math.tanh(c + z * se), level, method: 'Fisher z' };
}

/** The Hanley–McNeil (1982) standard error of an AUC `auc` from `nPos` positives and `nNeg` negatives. */
export function hanleyMcNeilSe(auc: number, nPos: number, nNeg: number): number {
  const q1 = auc / (2 - auc);
  const q2 = (2 * auc * auc) / (1 + auc);
  const v = (auc * (1 - auc) + (nPos - 1) * (q1 - auc * auc) + (nNeg - 1) * (q2 - auc * auc)) / (nPos * nNeg);
  return Math.sqrt(Math.max(0, v));
}

/** Hanley–McNeil normal interval of an AUC: A ± z·SE, clipped to [0, 1]. */
export function aucInterval(auc: number, nPos: number, nNeg: number, level = 0.95): Interval {
  if (!Number.isFinite(auc) || nPos < 1 || nNeg < 1) return { lo: NaN, hi: NaN, level, method: 'Hanley–McNeil' };
  const h = zOf(level) * hanleyMcNeilSe(auc, nPos, nNeg);
  return { lo: Math.max(0, auc - h), hi: Math.min(1, auc + h), level, method: 'Hanley–McNeil' };
}

/** Finite values of `v` as a plain array. */
function finite(v: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < v.length; i++) if (Number.isFinite(v[i]!)) out.push(v[i]!);
  return out;
}

/** A mean with its interval and n. */
export interface MeanEstimate {
  readonly value: number;
  readonly interval: Interval;
  readonly n: number;
}

/** Student's t interval of the mean of the finite values of `v` (NaN bounds when fewer than 2). */
export function meanInterval(v: ArrayLike<number>, level = 0.95): MeanEstimate {
  const x = finite(v);
  const n = x.length;
  const m = n ? x.reduce((a, b) => a + b, 0) / n : NaN;
  if (n < 2) return { value: m, interval: { lo: NaN, hi: NaN, level, method: 'Student t' }, n };
  const sd = Math.sqrt(x.reduce((a, b) => a + (b - m) ** 2, 0) / (n - 1));
  const h = studentTQuantile((1 + level) / 2, n - 1) * (sd / Math.sqrt(n));
  return { value: m, interval: { lo: m - h, hi: m + h, level, method: 'Student t' }, n };
}

/** Paired t interval of mean(a − b) over the pairs where both are finite. */
export function pairedDifferenceInterval(a: ArrayLike<number>, b: ArrayLike<number>, level = 0.95): MeanEstimate {
  if (a.length !== b.length) throw new Error(`pairedDifferenceInterval: a and b differ in length (${a.length} vs ${b.length})`);
  const d: number[] = [];
  for (let i = 0; i < a.length; i++) if (Number.isFinite(a[i]!) && Number.isFinite(b[i]!)) d.push(a[i]! - b[i]!);
  const r = meanInterval(d, level);
  return { ...r, interval: { ...r.interval, method: 'paired t' } };
}

/** Welch's t interval of mean(a) − mean(b) for two independent groups; n = the smaller group. */
export function welchDifferenceInterval(a: ArrayLike<number>, b: ArrayLike<number>, level = 0.95): MeanEstimate {
  const x = finite(a);
  const y = finite(b);
  const n = Math.min(x.length, y.length);
  const mx = x.length ? x.reduce((s, v) => s + v, 0) / x.length : NaN;
  const my = y.length ? y.reduce((s, v) => s + v, 0) / y.length : NaN;
  const value = mx - my;
  if (x.length < 2 || y.length < 2) return { value, interval: { lo: NaN, hi: NaN, level, method: 'Welch t' }, n };
  const vx = x.reduce((s, v) => s + (v - mx) ** 2, 0) / (x.length - 1) / x.length;
  const vy = y.reduce((s, v) => s + (v - my) ** 2, 0) / (y.length - 1) / y.length;
  const se = Math.sqrt(vx + vy);
  const df = se > 0 ? (vx + vy) ** 2 / (vx ** 2 / (x.length - 1) + vy ** 2 / (y.length - 1)) : x.length + y.length - 2;
  const h = studentTQuantile((1 + level) / 2, df) * se;
  return { value, interval: { lo: value - h, hi: value + h, level, method: 'Welch t' }, n };
}

// ---------------------------------------------------------------------------------------------
// verdicts

const g3 = (v: number): string => (Number.isFinite(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(2) : v.toPrecision(3)) : 'n/a');

/** The claim side in words ("> 0.7", "< 0", "in [0.85, 1.15]"). */
export function sideText(side: ClaimSide): string {
  if ('above' in side) return `> ${g3(side.above)}`;
  if ('below' in side) return `< ${g3(side.below)}`;
  return `in [${g3(side.within[0])}, ${g3(side.within[1])}]`;
}

/** Interval in words: "[lo, hi]". */
export function intervalText(iv: Interval | null): string {
  return iv === null ? '' : `[${g3(iv.lo)}, ${g3(iv.hi)}]`;
}

/** What {@link judge} needs. */
export interface JudgeInput {
  readonly claim: string;
  readonly paper?: string | null;
  /** Point estimate (not finite → "not measured"). */
  readonly value: number;
  /** Its interval (bounds not finite → "inconclusive"). */
  readonly interval: Interval | null;
  readonly n: number;
  /** What n counts (default "n"), e.g. "prompts", "n_neg". */
  readonly nLabel?: string;
  readonly minN: number;
  readonly side: ClaimSide;
}

/**
 * Judge a claim from an interval: "not measured" when the value is not finite; "inconclusive
 * (n = …, minimum …)" when n < minN; "holds" only when the whole interval is on the claim's side;
 * "does not hold" only when the whole interval is on the other side; otherwise "inconclusive".
 */
export function judge(x: JudgeInput): Verdict {
  const nLabel = x.nLabel ?? 'n';
  const base = { claim: x.claim, paper: x.paper ?? null, value: x.value, interval: x.interval, n: x.n, nLabel, minN: x.minN };
  if (!Number.isFinite(x.value)) return { ...base, verdict: 'not measured', text: 'not measured' };
  if (!(x.n >= x.minN)) return { ...base, verdict: 'inconclusive', text: `inconclusive (${nLabel} = ${x.n} < ${x.minN})` };
  const iv = x.interval;
  if (iv === null || !Number.isFinite(iv.lo) || !Number.isFinite(iv.hi)) return { ...base, verdict: 'inconclusive', text: `inconclusive (no interval, ${nLabel} = ${x.n})` };
  const s = x.side;
  let inside: boolean;
  let outside: boolean;
  if ('above' in s) {
    inside = iv.lo > s.above;
    outside = iv.hi <= s.above;
  } else if ('below' in s) {
    inside = iv.hi < s.below;
    outside = iv.lo >= s.below;
  } else {
    inside = iv.lo >= s.within[0] && iv.hi <= s.within[1];
    outside = iv.hi < s.within[0] || iv.lo > s.within[1];
  }
  const why = `${Math.round(100 * iv.level)} % ${iv.method} ${intervalText(iv)}, ${nLabel} = ${x.n}; claim ${sideText(s)}`;
  if (inside) return { ...base, verdict: 'holds', text: `holds (${why})` };
  if (outside) return { ...base, verdict: 'does not hold', text: `does not hold (${why})` };
  return { ...base, verdict: 'inconclusive', text: `inconclusive (${why})` };
}

/** A verdict for a statistic that could not be measured on this run. */
export function notMeasured(claim: string, why: string, paper: string | null = null): Verdict {
  return { claim, paper, value: NaN, interval: null, n: 0, nLabel: 'n', minN: 0, verdict: 'not measured', text: `not measured (${why})` };
}

/**
 * A conjunction of sub-verdicts ("A and B"): "does not hold" if any part does not hold; else
 * "not measured" if any part is not measured; else "inconclusive" if any part is; else "holds".
 * The text lists the deciding parts.
 */
export function allOf(claim: string, parts: readonly Verdict[], paper: string | null = null): Verdict {
  const pick = (w: VerdictWord): Verdict[] => parts.filter((p) => p.verdict === w);
  const word: VerdictWord = pick('does not hold').length ? 'does not hold' : pick('not measured').length ? 'not measured' : pick('inconclusive').length ? 'inconclusive' : 'holds';
  const deciding = word === 'holds' ? parts : pick(word);
  const n = parts.length ? Math.min(...parts.map((p) => p.n)) : 0;
  const first = deciding[0];
  return {
    claim,
    paper,
    value: first?.value ?? NaN,
    interval: first?.interval ?? null,
    n,
    nLabel: first?.nLabel ?? 'n',
    minN: Math.max(0, ...parts.map((p) => p.minN)),
    verdict: word,
    text: `${word} (${deciding.map((p) => `${p.claim}: ${p.text}`).join('; ')})`,
  };
}

/**
 * A rate k/n as printed: "12.5 % [3.5, 36.0] (n = 16)" with its 95 % Wilson interval, and
 * ": inconclusive (n = 4 < 10)" below {@link MIN_N}.proportion trials. `rate` is rounded to the
 * nearest count k = rate·n.
 */
export function rateText(rate: number, n: number, level = 0.95): string {
  if (!Number.isFinite(rate) || !(n > 0)) return 'not measured';
  const k = Math.max(0, Math.min(n, Math.round(rate * n)));
  const w = wilsonInterval(k, n, level);
  const pc = (v: number): string => (100 * v).toFixed(1);
  return `${pc(k / n)} % [${pc(w.lo)}, ${pc(w.hi)}] (n = ${n})${n < MIN_N.proportion ? `: inconclusive (n = ${n} < ${MIN_N.proportion})` : ''}`;
}
