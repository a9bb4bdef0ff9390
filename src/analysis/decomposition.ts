/**
 * Kim et al.'s decomposition of a trajectory into its target and its initial noise (SPEC §3.6):
 * `min_{w0,wT} ‖x_t − w0·x − wT·x_T‖²`, solved by the 2×2 normal equations in float64, and the
 * deviation sums of SPEC §3.7 that compare E[w0(t)] with √ᾱ_t and E[wT(t)] with √(1−ᾱ_t).
 */

/** The least-squares weights of x_t ≈ w0·x + wT·x_T and the residual norm ‖x_t − w0·x − wT·x_T‖. */
export interface Decomposition {
  readonly w0: number;
  readonly wT: number;
  readonly residual: number;
}

/**
 * The inner products the 2×2 normal equations need (all in float64):
 * `xx = ‖x‖²`, `xTxT = ‖x_T‖²`, `xxT = ⟨x, x_T⟩`, `xtx = ⟨x_t, x⟩`, `xtxT = ⟨x_t, x_T⟩`, `xtxt = ‖x_t‖²`.
 */
export interface DecompositionGram {
  readonly xx: number;
  readonly xTxT: number;
  readonly xxT: number;
  readonly xtx: number;
  readonly xtxT: number;
  readonly xtxt: number;
}

/** Relative threshold on det/(‖x‖²‖x_T‖²) = 1 − cos²(x, x_T) below which x and x_T count as collinear. */
const COLLINEAR = 1e-12;

/**
 * Solve SPEC §3.6's normal equations from inner products:
 * `[‖x‖² ⟨x,x_T⟩; ⟨x,x_T⟩ ‖x_T‖²]·[w0; wT] = [⟨x_t,x⟩; ⟨x_t,x_T⟩]`, and the residual
 * `‖r‖ = √max(0, ‖x_t‖² − w0⟨x_t,x⟩ − wT⟨x_t,x_T⟩)` (exact at the optimum, clamped at 0).
 *
 * Degenerate case: when x and x_T are collinear (1 − cos²(x, x_T) ≤ 1e-12) or one of them is 0,
 * the minimizers form a line and the least-norm one is returned,
 * `(w0, wT) = (⟨x_t,x⟩, ⟨x_t,x_T⟩)/(‖x‖² + ‖x_T‖²)`; both zero gives (0, 0) and ‖r‖ = ‖x_t‖.
 * The residual from Gram terms carries an absolute error of about √(1e-16·‖x_t‖²) = 1e-8·‖x_t‖.
 */
export function solveDecompositionFromGram(g: DecompositionGram): Decomposition {
  const { xx, xTxT, xxT, xtx, xtxT, xtxt } = g;
  const det = xx * xTxT - xxT * xxT;
  let w0: number;
  let wT: number;
  if (det > COLLINEAR * xx * xTxT && det > 0) {
    w0 = (xTxT * xtx - xxT * xtxT) / det;
    wT = (xx * xtxT - xxT * xtx) / det;
  } else {
    const s = xx + xTxT;
    w0 = s > 0 ? xtx / s : 0;
    wT = s > 0 ? xtxT / s : 0;
  }
  const r2 = xtxt - w0 * xtx - wT * xtxT;
  return { w0, wT, residual: Math.sqrt(Math.max(0, r2)) };
}

/**
 * Kim et al.'s decomposition of one state (SPEC §3.6): the (w0, wT) minimizing
 * `‖x_t − w0·x − wT·x_T‖²` by the 2×2 normal equations with float64 accumulation, and the residual
 * norm computed directly as ‖x_t − w0·x − wT·x_T‖ (a second pass, so it is accurate even when tiny).
 * Collinear x and x_T give the least-norm solution (see {@link solveDecompositionFromGram}).
 */
export function solveDecomposition(xt: ArrayLike<number>, x: ArrayLike<number>, xT: ArrayLike<number>): Decomposition {
  const d = xt.length;
  if (x.length !== d || xT.length !== d) throw new Error(`solveDecomposition: x_t, x and x_T differ in length (${d}, ${x.length}, ${xT.length})`);
  let xx = 0;
  let xTxT = 0;
  let xxT = 0;
  let xtx = 0;
  let xtxT = 0;
  let xtxt = 0;
  for (let i = 0; i < d; i++) {
    const a = x[i]!;
    const b = xT[i]!;
    const c = xt[i]!;
    xx += a * a;
    xTxT += b * b;
    xxT += a * b;
    xtx += c * a;
    xtxT += c * b;
    xtxt += c * c;
  }
  const { w0, wT } = solveDecompositionFromGram({ xx, xTxT, xxT, xtx, xtxT, xtxt });
  let r2 = 0;
  for (let i = 0; i < d; i++) {
    const r = xt[i]! - w0 * x[i]! - wT * xT[i]!;
    r2 += r * r;
  }
  return { w0, wT, residual: Math.sqrt(r2) };
}

/** The deviation sums of SPEC §3.7. */
export interface DeviationSums {
  /** D_x = Σ_t (E[w0(t)] − √ᾱ_t): overestimation of x. */
  readonly dX: number;
  /** D_noise = Σ_t (√(1−ᾱ_t) − E[wT(t)]): early suppression of x_T. */
  readonly dNoise: number;
  /** D_total = D_x + D_noise. */
  readonly dTotal: number;
}

/**
 * Kim et al.'s deviation sums over the inference steps (SPEC §3.7):
 * `D_x = Σ_t (E[w0(t)] − √ᾱ_t)`, `D_noise = Σ_t (√(1−ᾱ_t) − E[wT(t)])`, `D_total = D_x + D_noise`,
 * where `w0Mean[i]`, `wTMean[i]` are the means over seeds at step i and `alphaBar[i]` is ᾱ of
 * the x_t decomposed at that step. A NaN entry makes the sums NaN.
 */
export function deviationSums(w0Mean: ArrayLike<number>, wTMean: ArrayLike<number>, alphaBar: ArrayLike<number>): DeviationSums {
  const n = alphaBar.length;
  if (w0Mean.length !== n || wTMean.length !== n) {
    throw new Error(`deviationSums: w0Mean, wTMean and alphaBar differ in length (${w0Mean.length}, ${wTMean.length}, ${n})`);
  }
  let dX = 0;
  let dNoise = 0;
  for (let i = 0; i < n; i++) {
    const a = alphaBar[i]!;
    dX += w0Mean[i]! - Math.sqrt(a);
    dNoise += Math.sqrt(1 - a) - wTMean[i]!;
  }
  return { dX, dNoise, dTotal: dX + dNoise };
}
