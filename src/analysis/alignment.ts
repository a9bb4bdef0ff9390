/**
 * Update alignment across seeds (Kim et al., SPEC §3.5): PCA of the per-seed updates
 * Δx_t^(n) = x_{t_prev}^(n) − x_t^(n) at one step, reported as the explained-variance ratio of the
 * first principal component. With n seeds ≪ d dimensions the nonzero covariance spectrum equals
 * that of the n×n Gram matrix of the centred rows, so nothing d×d is ever formed.
 */
import { jacobiEigenvalues } from '../linalg/jacobi.ts';

/**
 * The centred Gram matrix `G_ij = ⟨a_i − ā, a_j − ā⟩` (float64, `n×n` row-major) of `n` rows of
 * length `d` in `rows` (row-major `[n·d]`), ā the mean row. Centring is explicit (each element
 * minus the float64 mean, before any product), so G stays accurate when the rows are nearly
 * identical. `work` (optional, ≥ n·d values) holds the centred rows; pass one to avoid allocating.
 */
export function centredGram(rows: ArrayLike<number>, n: number, d: number, work?: Float64Array): Float64Array {
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(d) || d < 0) throw new Error(`centredGram: n and d must be non-negative integers, got n=${n}, d=${d}`);
  if (rows.length !== n * d) throw new Error(`centredGram: expected n·d = ${n * d} values, got ${rows.length}`);
  if (work !== undefined && work.length < n * d) throw new Error(`centredGram: work needs ≥ ${n * d} values, has ${work.length}`);
  const c = work ?? new Float64Array(n * d);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const off = i * d;
    for (let k = 0; k < d; k++) mean[k] = mean[k]! + rows[off + k]!;
  }
  for (let k = 0; k < d; k++) mean[k] = mean[k]! / n;
  for (let i = 0; i < n; i++) {
    const off = i * d;
    for (let k = 0; k < d; k++) c[off + k] = rows[off + k]! - mean[k]!;
  }
  return gramOfRows(c, n, d);
}

/** `G = C·Cᵀ` of the `n` rows of length `d` in `c` (float64), upper triangle mirrored. */
function gramOfRows(c: Float64Array, n: number, d: number): Float64Array {
  const g = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const oi = i * d;
    let j = i;
    // four columns at a time: each c_i element is loaded once per block
    for (; j + 3 < n; j += 4) {
      const o0 = j * d;
      const o1 = o0 + d;
      const o2 = o1 + d;
      const o3 = o2 + d;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let k = 0; k < d; k++) {
        const v = c[oi + k]!;
        s0 += v * c[o0 + k]!;
        s1 += v * c[o1 + k]!;
        s2 += v * c[o2 + k]!;
        s3 += v * c[o3 + k]!;
      }
      g[i * n + j] = g[j * n + i] = s0;
      g[i * n + j + 1] = g[(j + 1) * n + i] = s1;
      g[i * n + j + 2] = g[(j + 2) * n + i] = s2;
      g[i * n + j + 3] = g[(j + 3) * n + i] = s3;
    }
    for (; j < n; j++) {
      const oj = j * d;
      let s = 0;
      for (let k = 0; k < d; k++) s += c[oi + k]! * c[oj + k]!;
      g[i * n + j] = g[j * n + i] = s;
    }
  }
  return g;
}

/**
 * PC1 explained-variance ratio from a centred Gram matrix (see {@link centredGram}):
 * λ_max(G)/trace(G), 1 when trace(G) = 0 (no variance: perfectly aligned).
 */
export function pc1RatioFromGram(gram: Float64Array, n: number): number {
  let total = 0;
  for (let i = 0; i < n; i++) total += gram[i * n + i]!;
  if (!(total > 0)) return 1;
  const lambda = jacobiEigenvalues(gram, n);
  return Math.min(1, Math.max(0, lambda[0]! / total));
}

/**
 * Explained-variance ratio of the first principal component of `n` row vectors of length `d`
 * (`rows` row-major `[n·d]`, centred across rows): λ_1 / Σ_k λ_k of their sample covariance
 * (Kim et al. SPEC §3.5, applied to the updates Δx of one step across seeds). Computed from the
 * n×n centred Gram matrix ({@link centredGram}) and its Jacobi eigenvalues, in float64; costs
 * O(n²·d + n³), fine for n up to a few hundred.
 *
 * Conventions: when the total variance is 0 (all rows identical, including n = 1) the updates are
 * perfectly aligned and the ratio is 1. The value lies in [1/min(n−1, d), 1] otherwise.
 * `work` (optional, ≥ n·d float64 values) is scratch space, to avoid an allocation per call.
 */
export function pc1Ratio(rows: Float32Array, n: number, d: number, work?: Float64Array): number {
  if (n === 0) throw new Error('pc1Ratio: need at least one row');
  return pc1RatioFromGram(centredGram(rows, n, d, work), n);
}
