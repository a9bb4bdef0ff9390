/**
 * Receiver operating characteristic of a detection score (SPEC §4.4–4.5: Wen et al.'s detection
 * is reported as an AUC and a TPR at 1 % FPR). Higher scores mean "positive" (memorized).
 *
 * Conventions follow scikit-learn's `roc_curve(labels, scores, drop_intermediate=False)`: the
 * curve starts at (0, 0) with threshold +∞, and every distinct score value is one threshold step
 * (a sample is predicted positive when score ≥ threshold), so tied scores move FPR and TPR
 * together in one diagonal step. The AUC is the trapezoid area under that curve, which equals the
 * Mann–Whitney statistic P(score⁺ > score⁻) + ½·P(score⁺ = score⁻).
 */

/** A label: `true`/`1` positive, `false`/`0` negative. */
export type BinaryLabel = boolean | 0 | 1;

/** A ROC curve: parallel arrays, one entry per operating point, FPR and TPR non-decreasing. */
export interface RocCurve {
  /** False positive rate FP/N at each threshold. */
  readonly fpr: number[];
  /** True positive rate TP/P at each threshold. */
  readonly tpr: number[];
  /** The thresholds, decreasing: +∞ first, then each distinct score (positive ⇔ score ≥ threshold). */
  readonly thresholds: number[];
}

/** Cumulative counts at each distinct threshold (internal). */
interface Steps {
  readonly tp: number[];
  readonly fp: number[];
  readonly thresholds: number[];
  readonly P: number;
  readonly N: number;
}

function toBool(l: unknown, i: number): boolean {
  if (l === true || l === 1) return true;
  if (l === false || l === 0) return false;
  throw new Error(`labels: entry ${i} is ${String(l)}; expected true/false or 1/0`);
}

/** Validate, sort by score descending and count TP/FP after each group of tied scores. */
function steps(scores: ArrayLike<number>, labels: ArrayLike<BinaryLabel>, fn: string): Steps {
  if (scores.length !== labels.length) {
    throw new Error(`${fn}: scores and labels must have the same length, got scores ${scores.length} and labels ${labels.length}`);
  }
  const n = scores.length;
  const pos = new Uint8Array(n);
  let P = 0;
  for (let i = 0; i < n; i++) {
    const s = scores[i]!;
    if (Number.isNaN(s)) throw new Error(`${fn}: scores[${i}] is NaN`);
    if (toBool(labels[i], i)) {
      pos[i] = 1;
      P++;
    }
  }
  const N = n - P;
  if (P === 0) throw new Error(`${fn}: labels has no positive (true/1) entry; ROC needs both classes`);
  if (N === 0) throw new Error(`${fn}: labels has no negative (false/0) entry; ROC needs both classes`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  const tp = [0];
  const fp = [0];
  const thresholds = [Infinity];
  let cTp = 0;
  let cFp = 0;
  for (let k = 0; k < n; ) {
    const s = scores[order[k]!]!;
    while (k < n && scores[order[k]!]! === s) {
      if (pos[order[k]!]) cTp++;
      else cFp++;
      k++;
    }
    tp.push(cTp);
    fp.push(cFp);
    thresholds.push(s);
  }
  return { tp, fp, thresholds, P, N };
}

/**
 * The ROC curve of `scores` against `labels` (higher score = positive), as scikit-learn's
 * `roc_curve(labels, scores, drop_intermediate=False)`: a first point (0, 0) at threshold +∞,
 * then one point per distinct score, ties forming a single step. Throws when the lengths differ,
 * a score is NaN, a label is not boolean/0/1, or either class is empty.
 */
export function rocCurve(scores: ArrayLike<number>, labels: ArrayLike<BinaryLabel>): RocCurve {
  const st = steps(scores, labels, 'rocCurve');
  return {
    fpr: st.fp.map((f) => f / st.N),
    tpr: st.tp.map((t) => t / st.P),
    thresholds: st.thresholds,
  };
}

/**
 * ROC AUC, the detection AUC of Wen et al. (ICLR 2024, Table 1; SPEC §4.4).
 * Trapezoid area under {@link rocCurve}'s points — exactly the Mann–Whitney U statistic divided
 * by P·N: the fraction of (positive, negative) pairs where the positive scores higher, ties
 * counting ½. Computed from integer counts (no float drift). 1 = perfect separation, 0 =
 * perfectly reversed, 0.5 = chance.
 */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<BinaryLabel>): number {
  const st = steps(scores, labels, 'rocAuc');
  // Σ ΔFP·(TP_prev + TP_new)/2 — each term is a (half-)integer count of pairs.
  let twiceU = 0;
  for (let k = 1; k < st.tp.length; k++) twiceU += (st.fp[k]! - st.fp[k - 1]!) * (st.tp[k]! + st.tp[k - 1]!);
  return twiceU / (2 * st.P * st.N);
}

/** Options of {@link tprAtFpr}. */
export interface TprAtFprOptions {
  /**
   * Whether an operating point with FPR exactly equal to the target counts (default true: FPR ≤
   * target). Set false for the strict `tpr[np.where(fpr < target)[0][-1]]` used in Wen et al.'s
   * and Tree-Ring's evaluation code; the two differ only when N·target is an integer that a
   * threshold hits exactly.
   */
  readonly inclusive?: boolean;
}

/**
 * TPR at a fixed FPR (default 1 %, the "TPR@1%FPR" of Wen et al., ICLR 2024, Table 1): the
 * largest TPR among the operating points of {@link rocCurve} whose FPR is ≤ `fpr` (or < `fpr` with
 * `inclusive: false`). No interpolation between points; the (0, 0) point always qualifies, so
 * the result is 0 when no threshold reaches a positive without exceeding the FPR budget.
 */
export function tprAtFpr(scores: ArrayLike<number>, labels: ArrayLike<BinaryLabel>, fpr = 0.01, opts: TprAtFprOptions = {}): number {
  if (!(fpr >= 0 && fpr <= 1)) throw new Error(`tprAtFpr: fpr must be in [0, 1], got ${fpr}`);
  const inclusive = opts.inclusive ?? true;
  const st = steps(scores, labels, 'tprAtFpr');
  let best = 0;
  for (let k = 0; k < st.tp.length; k++) {
    const f = st.fp[k]! / st.N;
    if (inclusive ? f <= fpr : f < fpr) best = Math.max(best, st.tp[k]! / st.P);
  }
  return best;
}
