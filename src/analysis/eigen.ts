/**
 * Eigenvalues of small symmetric matrices by the cyclic Jacobi method, in float64. Meant for the
 * n×n Gram matrices of the analysis suite (n = number of seeds, ≤ a few hundred); for the large
 * covariance eigendecompositions of the denoisers see `eigh` in `src/denoisers/gaussian.ts`.
 */

/**
 * Eigenvalues of the symmetric `n×n` row-major matrix `a` (only its upper triangle is read; `a`
 * is not modified), sorted descending. Cyclic Jacobi rotations (Golub & Van Loan §8.5) until the
 * off-diagonal mass falls below 1e-30 of the total (or 100 sweeps): absolute accuracy ≈ 1e-15·‖A‖_F.
 */
export function jacobiEigenvalues(a: ArrayLike<number>, n: number): Float64Array {
  if (!Number.isInteger(n) || n < 0) throw new Error(`jacobiEigenvalues: n must be a non-negative integer, got ${n}`);
  if (a.length !== n * n) throw new Error(`jacobiEigenvalues: expected ${n}×${n} = ${n * n} values, got ${a.length}`);
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      m[i * n + j] = a[i * n + j]!;
      m[j * n + i] = a[i * n + j]!;
    }
  }
  let total = 0;
  for (let i = 0; i < n * n; i++) total += m[i]! * m[i]!;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p * n + q]! * m[p * n + q]!;
    if (!(off > 1e-30 * total)) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q]!;
        if (apq === 0) continue;
        const app = m[p * n + p]!;
        const aqq = m[q * n + q]!;
        const theta = (aqq - app) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        // A ← Jᵀ A J on rows/columns p and q
        for (let k = 0; k < n; k++) {
          const akp = m[k * n + p]!;
          const akq = m[k * n + q]!;
          m[k * n + p] = c * akp - s * akq;
          m[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = m[p * n + k]!;
          const aqk = m[q * n + k]!;
          m[p * n + k] = c * apk - s * aqk;
          m[q * n + k] = s * apk + c * aqk;
        }
        m[p * n + q] = 0;
        m[q * n + p] = 0;
      }
    }
  }
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = m[i * n + i]!;
  return out.sort().reverse();
}
