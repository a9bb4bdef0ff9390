/**
 * Eigen-decompositions of small symmetric matrices by the cyclic Jacobi method, in float64. Meant
 * for the n×n Gram matrices of the analysis suite and the Rayleigh–Ritz steps of the report's PCA
 * (n ≤ a few hundred); for the large covariance eigendecompositions of the denoisers see `eigh` in
 * `src/linalg/eigh.ts`.
 */

/** Eigenvalues (descending) and, when asked for, the matching unit eigenvectors as the columns of a row-major n×n matrix. */
export interface JacobiResult {
  readonly values: Float64Array;
  readonly vectors: Float64Array | null;
}

/**
 * Symmetric eigen-decomposition of the `n×n` row-major matrix `a` (only its upper triangle is read;
 * `a` is not modified), eigenvalues sorted descending. Cyclic Jacobi rotations (Golub & Van Loan
 * §8.5) until the off-diagonal mass falls below 1e-30 of the total (or 100 sweeps): absolute
 * accuracy ≈ 1e-15·‖A‖_F. Eigenvectors are accumulated only when `vectors` is true (default false).
 */
export function jacobiEigh(a: ArrayLike<number>, n: number, opts: { vectors?: boolean } = {}): JacobiResult {
  if (!Number.isInteger(n) || n < 0) throw new Error(`jacobiEigh: n must be a non-negative integer, got ${n}`);
  if (a.length !== n * n) throw new Error(`jacobiEigh: expected ${n}×${n} = ${n * n} values, got ${a.length}`);
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      m[i * n + j] = a[i * n + j]!;
      m[j * n + i] = a[i * n + j]!;
    }
  }
  const V = opts.vectors === true ? new Float64Array(n * n) : null;
  if (V) for (let i = 0; i < n; i++) V[i * n + i] = 1;
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
        // A ← Jᵀ A J on rows/columns p and q (and V ← V J)
        rotateColumns(m, n, p, q, c, s);
        for (let k = 0; k < n; k++) {
          const apk = m[p * n + k]!;
          const aqk = m[q * n + k]!;
          m[p * n + k] = c * apk - s * aqk;
          m[q * n + k] = s * apk + c * aqk;
        }
        m[p * n + q] = 0;
        m[q * n + p] = 0;
        if (V) rotateColumns(V, n, p, q, c, s);
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => m[y * n + y]! - m[x * n + x]!);
  const values = Float64Array.from(order, (i) => m[i * n + i]!);
  if (!V) return { values, vectors: null };
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    for (let k = 0; k < n; k++) vectors[k * n + dst] = V[k * n + src]!;
  });
  return { values, vectors };
}

function rotateColumns(m: Float64Array, n: number, p: number, q: number, c: number, s: number): void {
  for (let k = 0; k < n; k++) {
    const akp = m[k * n + p]!;
    const akq = m[k * n + q]!;
    m[k * n + p] = c * akp - s * akq;
    m[k * n + q] = s * akp + c * akq;
  }
}

/** Eigenvalues of the symmetric `n×n` row-major matrix `a`, sorted descending (see {@link jacobiEigh}). */
export function jacobiEigenvalues(a: ArrayLike<number>, n: number): Float64Array {
  return jacobiEigh(a, n).values;
}
