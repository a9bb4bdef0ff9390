/**
 * Fréchet distance between Gaussians fitted to feature sets (the "FID" of Heusel et al., 2017,
 * "GANs trained by a two time-scale update rule converge to a local Nash equilibrium", eq. 6;
 * SPEC §4.5 uses it as the image-quality column with the backend's own feature extractor, e.g.
 * the `features` output of `Classifier`):
 *
 *     FD(a, b) = ‖μa − μb‖² + tr(Σa + Σb − 2 (Σa^{1/2} Σb Σa^{1/2})^{1/2})
 *
 * computed exactly in float64 through two symmetric eigendecompositions (no iterative matrix
 * square root, no complex round-off as in scipy's `sqrtm(Σa Σb)`):
 *
 * 1. Σa = V diag(λ) Vᵀ; keep the r eigenvalues λ_i above the round-off level d·ε·max λ (smaller
 *    or negative ones are round-off of exact zeros of a PSD matrix) and form F = V_r diag(√λ_r)
 *    (d×r), so that Σa = F Fᵀ and Σa^{1/2} = V diag(√λ⁺) Vᵀ.
 * 2. M' = Fᵀ Σb F (r×r, symmetric PSD). Σa^{1/2} Σb Σa^{1/2} = V (M' ⊕ 0) Vᵀ is orthogonally
 *    similar to M' padded with zeros, so tr (Σa^{1/2} Σb Σa^{1/2})^{1/2} = Σ_i √max(μ_i, 0) over
 *    the eigenvalues μ_i of M' (those under the round-off level r·ε·max μ count as 0).
 *
 * Why this equals the usual tr sqrtm(Σa Σb): for any X, Y the products XY and YX have the same
 * non-zero eigenvalues (with multiplicity). With X = F, Y = Fᵀ Σb: XY = F Fᵀ Σb = Σa Σb and
 * YX = Fᵀ Σb F = M'. M' is symmetric PSD, so Σa Σb (although not symmetric) is diagonalisable
 * with the same non-negative eigenvalues μ_i (plus zeros), its principal square root has
 * eigenvalues √μ_i, and the trace of that root is Σ √μ_i.
 *
 * The eigendecompositions use ml-matrix's symmetric `EigenvalueDecomposition` (Householder
 * tridiagonalisation + implicit QL; `src/linalg/sym-eig.ts`): the project's faster `eigh` lives in
 * `src/linalg/eigh.ts`, whose module imports the graph layer (onnxruntime-node) for its thread
 * count, and the Jacobi solver of `src/linalg/jacobi.ts` returns eigenvalues only and is slower at
 * d = 256.
 */
import { symEig } from '../linalg/sym-eig.ts';

/** Mean and covariance of a feature set (float64). */
export interface GaussianStats {
  /** μ, length d. */
  readonly mean: Float64Array;
  /** Σ, d×d row-major, unbiased (divided by n − 1). */
  readonly cov: Float64Array;
}

/**
 * Mean and unbiased covariance (divisor n − 1, as numpy's `np.cov(x, rowvar=False)` used by FID
 * implementations) of `n` feature rows of dimension `d` stored row-major in `features`,
 * accumulated in float64 around the mean. Needs n ≥ 2.
 */
export function gaussianStats(features: Float32Array | Float64Array, n: number, d: number): GaussianStats {
  if (!Number.isInteger(n) || n < 2) throw new Error(`gaussianStats: n must be an integer ≥ 2 (covariance needs two rows), got ${n}`);
  if (!Number.isInteger(d) || d < 1) throw new Error(`gaussianStats: d must be a positive integer, got ${d}`);
  if (features.length !== n * d) throw new Error(`gaussianStats: features must hold n·d = ${n}·${d} = ${n * d} values, got ${features.length}`);
  const mean = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) mean[j]! += features[r * d + j]!;
  for (let j = 0; j < d; j++) mean[j]! /= n;
  const cov = new Float64Array(d * d);
  const c = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    const off = r * d;
    for (let j = 0; j < d; j++) c[j] = features[off + j]! - mean[j]!;
    for (let i = 0; i < d; i++) {
      const ci = c[i]!;
      if (ci === 0) continue;
      const row = i * d;
      for (let j = i; j < d; j++) cov[row + j]! += ci * c[j]!;
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      const v = cov[i * d + j]! / (n - 1);
      cov[i * d + j] = v;
      cov[j * d + i] = v;
    }
  }
  for (let j = 0; j < d; j++) if (!Number.isFinite(mean[j]!)) throw new Error(`gaussianStats: features contain a non-finite value (column ${j})`);
  return { mean, cov };
}

function checkStats(s: GaussianStats, name: string): number {
  const d = s.mean.length;
  if (d === 0) throw new Error(`frechetDistance: ${name}.mean is empty`);
  if (s.cov.length !== d * d) throw new Error(`frechetDistance: ${name}.cov must be ${d}×${d} = ${d * d} values (from ${name}.mean), got ${s.cov.length}`);
  for (let i = 0; i < d; i++) if (!Number.isFinite(s.mean[i]!)) throw new Error(`frechetDistance: ${name}.mean[${i}] is ${s.mean[i]}`);
  for (let i = 0; i < d * d; i++) if (!Number.isFinite(s.cov[i]!)) throw new Error(`frechetDistance: ${name}.cov[${i}] is ${s.cov[i]}`);
  return d;
}

/**
 * Eigenvalues at or below `n · ε · max|λ|` (numpy's `matrix_rank` tolerance) are round-off of an
 * exact zero; they are dropped rather than square-rooted, since √(1e-16·‖Σ‖) ≈ 1e-8·√‖Σ‖ per
 * spurious eigenvalue would otherwise add up when Σ is singular (fewer samples than dimensions).
 */
function rankTolerance(values: readonly number[], n: number): number {
  let max = 0;
  for (const v of values) max = Math.max(max, Math.abs(v));
  return n * Number.EPSILON * max;
}

/**
 * The Fréchet (2-Wasserstein) distance between N(a.mean, a.cov) and N(b.mean, b.cov):
 * ‖μa − μb‖² + tr Σa + tr Σb − 2 tr (Σa^{1/2} Σb Σa^{1/2})^{1/2} (Heusel et al. 2017, eq. 6),
 * exact in float64 through two symmetric eigendecompositions (see the module comment).
 * Eigenvalues under the round-off level count as 0, and a final value below 0 (round-off when
 * a ≈ b) is returned as 0 (the distance is ≥ 0).
 * Symmetric in a and b up to round-off. About 0.2–0.5 s at d = 256.
 */
export function frechetDistance(a: GaussianStats, b: GaussianStats): number {
  const d = checkStats(a, 'a');
  const db = checkStats(b, 'b');
  if (db !== d) throw new Error(`frechetDistance: a and b must have the same dimension, got a ${d} and b ${db}`);
  let meanTerm = 0;
  for (let i = 0; i < d; i++) meanTerm += (a.mean[i]! - b.mean[i]!) ** 2;
  let trA = 0;
  let trB = 0;
  for (let i = 0; i < d; i++) {
    trA += a.cov[i * d + i]!;
    trB += b.cov[i * d + i]!;
  }
  // 1. Σa = F Fᵀ with F = V_r diag(√λ_r) over the positive eigenvalues.
  const ea = symEig(a.cov, d);
  const tolA = rankTolerance(ea.values, d);
  const keep: number[] = [];
  for (let j = 0; j < d; j++) if (ea.values[j]! > tolA) keep.push(j);
  const r = keep.length;
  let trSqrt = 0;
  if (r > 0) {
    const F = new Float64Array(d * r); // row-major d×r
    for (let i = 0; i < d; i++) {
      for (let k = 0; k < r; k++) {
        const j = keep[k]!;
        F[i * r + k] = ea.vectors.get(i, j) * Math.sqrt(ea.values[j]!);
      }
    }
    // 2. G = Σb F (d×r), M' = Fᵀ G (r×r).
    const G = new Float64Array(d * r);
    const Bs = new Float64Array(d * d);
    for (let i = 0; i < d; i++) for (let l = 0; l < d; l++) Bs[i * d + l] = 0.5 * (b.cov[i * d + l]! + b.cov[l * d + i]!);
    for (let i = 0; i < d; i++) {
      const gi = i * r;
      for (let l = 0; l < d; l++) {
        const bil = Bs[i * d + l]!;
        if (bil === 0) continue;
        const fl = l * r;
        for (let k = 0; k < r; k++) G[gi + k]! += bil * F[fl + k]!;
      }
    }
    const M = new Float64Array(r * r);
    for (let l = 0; l < d; l++) {
      const fl = l * r;
      for (let p = 0; p < r; p++) {
        const flp = F[fl + p]!;
        if (flp === 0) continue;
        const mp = p * r;
        for (let q = p; q < r; q++) M[mp + q]! += flp * G[fl + q]!;
      }
    }
    for (let p = 0; p < r; p++) for (let q = p + 1; q < r; q++) M[q * r + p] = M[p * r + q]!;
    const em = symEig(M, r);
    const tolM = rankTolerance(em.values, r);
    for (const mu of em.values) if (mu > tolM) trSqrt += Math.sqrt(mu);
  }
  return Math.max(meanTerm + trA + trB - 2 * trSqrt, 0);
}

/**
 * FD between two feature sets: {@link gaussianStats} of each (unbiased covariance), then
 * {@link frechetDistance}. `fa` holds `na` rows and `fb` holds `nb` rows of dimension `d`.
 */
export function frechetFromFeatures(fa: Float32Array | Float64Array, na: number, fb: Float32Array | Float64Array, nb: number, d: number): number {
  return frechetDistance(gaussianStats(fa, na, d), gaussianStats(fb, nb, d));
}
