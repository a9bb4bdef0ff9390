/**
 * Principal components of pooled trajectory points, for the trajectory fans of the reports
 * (`src/report/fan.ts`): block subspace iteration in float64 on the scatter matrix, the Gram
 * matrix or implicitly, with Rayleigh–Ritz steps by the Jacobi solver of `src/linalg/jacobi.ts`.
 */
import { Mt19937 } from '../random/torch.ts';
import { jacobiEigh } from '../linalg/jacobi.ts';

/** How `projectPaths` finds the top principal components. */
export type PcaMethod = 'auto' | 'covariance' | 'gram' | 'implicit';

/** Options of `projectPaths`. */
export interface ProjectOptions {
  /**
   * `'covariance'`: form the d×d scatter matrix; `'gram'`: form the N×N Gram matrix (N = paths·steps);
   * `'implicit'`: form neither, apply XᵀX (or XXᵀ) as products with the centred data. Every method
   * runs block subspace iteration (6 vectors, float64, Rayleigh–Ritz). `'auto'` (default) forms the
   * smaller of the two matrices when that costs at most ~2e8 multiply-adds, else goes implicit.
   */
  readonly method?: PcaMethod;
  /** Stop when both Ritz residuals ‖Av − θv‖ ≤ tol·θ₁ (default 1e-10). */
  readonly tol?: number;
  /** Iteration cap (default 1000); the best estimate so far is returned when it is reached. */
  readonly maxIter?: number;
}

/**
 * Project every step of every path onto the first two principal components of all pooled points
 * (centred on their mean). `trajectories` is `[paths, steps, d]` row-major; values must be finite.
 * Returns `points[path][step] = [pc1, pc2]` and `explained` = the variance fractions of PC1 and PC2
 * (`[0, 0]` when all points coincide). Each component's sign is chosen so that its (first) largest-magnitude
 * score is positive. Never forms a d×d matrix unless d ≤ N (see `ProjectOptions.method`).
 */
export function projectPaths(
  trajectories: Float32Array,
  paths: number,
  steps: number,
  d: number,
  opts: ProjectOptions = {},
): { points: [number, number][][]; explained: [number, number] } {
  for (const [k, v] of [['paths', paths], ['steps', steps], ['d', d]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`projectPaths: ${k} must be a non-negative integer, got ${v}`);
  }
  const N = paths * steps;
  if (trajectories.length !== N * d) {
    throw new Error(`projectPaths: expected ${paths}·${steps}·${d} = ${N * d} values, got ${trajectories.length}`);
  }
  // centred data in float64
  const mean = new Float64Array(d);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < d; j++) {
      const v = trajectories[i * d + j]!;
      if (!Number.isFinite(v)) throw new Error(`projectPaths: non-finite value at path ${Math.floor(i / steps)}, step ${i % steps}, dim ${j}`);
      mean[j]! += v;
    }
  }
  if (N > 0) for (let j = 0; j < d; j++) mean[j]! /= N;
  const X = new Float64Array(N * d);
  let total = 0;
  for (let i = 0; i < N * d; i++) {
    const v = trajectories[i]! - mean[i % d]!;
    X[i] = v;
    total += v * v;
  }
  const scores = [new Float64Array(N), new Float64Array(N)] as const;
  const explained: [number, number] = [0, 0];
  if (N > 0 && d > 0 && total > 0) {
    const pcs = topComponents(X, N, d, opts);
    pcs.forEach((pc, k) => {
      scores[k]!.set(pc.scores);
      explained[k] = pc.value / total;
    });
    for (const s of scores) {
      let big = 0;
      for (const v of s) if (Math.abs(v) > Math.abs(big)) big = v;
      if (big < 0) for (let i = 0; i < N; i++) s[i] = -s[i]!;
    }
  }
  const points: [number, number][][] = [];
  for (let p = 0; p < paths; p++) {
    const row: [number, number][] = [];
    for (let s = 0; s < steps; s++) row.push([scores[0][p * steps + s]! + 0, scores[1][p * steps + s]! + 0]);
    points.push(row);
  }
  return { points, explained };
}

/** The top (at most 2) eigenpairs of XᵀX for centred `X` (N×d): eigenvalue and the N scores X·v. */
function topComponents(X: Float64Array, N: number, d: number, opts: ProjectOptions): { value: number; scores: Float64Array }[] {
  const method = opts.method ?? 'auto';
  const dSpace = method === 'covariance' || ((method === 'auto' || method === 'implicit') && d <= N);
  const m = dSpace ? d : N;
  let explicit = method === 'covariance' || method === 'gram';
  if (method === 'auto') explicit = (N * d * m) / 2 <= 2e8;
  let apply: (v: Float64Array, out: Float64Array) => void;
  if (explicit) {
    const M = dSpace ? scatterMatrix(X, N, d) : gramMatrix(X, N, d);
    apply = (v, out) => {
      for (let i = 0; i < m; i++) {
        let s = 0;
        const o = i * m;
        for (let j = 0; j < m; j++) s += M[o + j]! * v[j]!;
        out[i] = s;
      }
    };
  } else {
    const t = new Float64Array(dSpace ? N : d);
    apply = dSpace
      ? (v, out) => {
          mulX(X, N, d, v, t);
          mulXt(X, N, d, t, out);
        }
      : (v, out) => {
          mulXt(X, N, d, v, t);
          mulX(X, N, d, t, out);
        };
  }
  const { values, vectors } = subspaceIteration(apply, m, Math.min(m, 6), Math.min(m, 2), opts.tol ?? 1e-10, opts.maxIter ?? 1000);
  return values.map((value, k) => {
    const vec = vectors[k]!;
    let scores: Float64Array;
    if (dSpace) {
      scores = new Float64Array(N);
      mulX(X, N, d, vec, scores);
    } else {
      const sigma = Math.sqrt(Math.max(value, 0));
      scores = vec.map((u) => u * sigma);
    }
    return { value: Math.max(value, 0), scores };
  });
}

/** out (N) = X (N×d) · v (d). */
function mulX(X: Float64Array, N: number, d: number, v: Float64Array, out: Float64Array): void {
  for (let i = 0; i < N; i++) {
    let s = 0;
    const o = i * d;
    for (let j = 0; j < d; j++) s += X[o + j]! * v[j]!;
    out[i] = s;
  }
}

/** out (d) = Xᵀ (d×N) · u (N). */
function mulXt(X: Float64Array, N: number, d: number, u: Float64Array, out: Float64Array): void {
  out.fill(0);
  for (let i = 0; i < N; i++) {
    const a = u[i]!;
    if (a === 0) continue;
    const o = i * d;
    for (let j = 0; j < d; j++) out[j]! += a * X[o + j]!;
  }
}

/** XᵀX (d×d, dense symmetric). */
function scatterMatrix(X: Float64Array, N: number, d: number): Float64Array {
  const C = new Float64Array(d * d);
  for (let i = 0; i < N; i++) {
    const o = i * d;
    for (let j = 0; j < d; j++) {
      const a = X[o + j]!;
      if (a === 0) continue;
      const r = j * d;
      for (let l = j; l < d; l++) C[r + l]! += a * X[o + l]!;
    }
  }
  for (let j = 0; j < d; j++) for (let l = 0; l < j; l++) C[j * d + l] = C[l * d + j]!;
  return C;
}

/** XXᵀ (N×N, dense symmetric). */
function gramMatrix(X: Float64Array, N: number, d: number): Float64Array {
  const G = new Float64Array(N * N);
  for (let i = 0; i < N; i++) {
    for (let k = i; k < N; k++) {
      let s = 0;
      const a = i * d;
      const b = k * d;
      for (let j = 0; j < d; j++) s += X[a + j]! * X[b + j]!;
      G[i * N + k] = s;
      G[k * N + i] = s;
    }
  }
  return G;
}

/**
 * Top `want` eigenpairs of a symmetric positive semi-definite operator on R^m by block subspace
 * iteration with `b` vectors and Rayleigh–Ritz; deterministic start (mt19937, fixed seed).
 */
function subspaceIteration(
  apply: (v: Float64Array, out: Float64Array) => void,
  m: number,
  b: number,
  want: number,
  tol: number,
  maxIter: number,
): { values: number[]; vectors: Float64Array[] } {
  const rng = new Mt19937(20240607);
  const randomVector = (): Float64Array => {
    const v = new Float64Array(m);
    for (let i = 0; i < m; i++) v[i] = rng.nextU32() / 4294967296 - 0.5;
    return v;
  };
  let V: Float64Array[] = [];
  if (b === m) {
    // the whole space: one Rayleigh–Ritz step is exact
    for (let k = 0; k < m; k++) {
      const e = new Float64Array(m);
      e[k] = 1;
      V.push(e);
    }
  } else {
    V = orthonormalize(Array.from({ length: b }, randomVector), randomVector);
  }
  let best: { values: number[]; vectors: Float64Array[] } = { values: [], vectors: [] };
  for (let it = 0; it < Math.max(1, maxIter); it++) {
    const AV = V.map((v) => {
      const out = new Float64Array(m);
      apply(v, out);
      return out;
    });
    // Rayleigh–Ritz: H = Vᵀ A V, H = Q Θ Qᵀ
    const H = new Float64Array(b * b);
    for (let i = 0; i < b; i++) for (let j = i; j < b; j++) H[i * b + j] = H[j * b + i] = dot(V[i]!, AV[j]!);
    const { values, vectors: Q } = symEig(H, b);
    const combine = (B: Float64Array[], k: number): Float64Array => {
      const out = new Float64Array(m);
      for (let i = 0; i < b; i++) {
        const q = Q[i * b + k]!;
        if (q === 0) continue;
        const src = B[i]!;
        for (let j = 0; j < m; j++) out[j]! += q * src[j]!;
      }
      return out;
    };
    const ritz = Array.from({ length: b }, (_, k) => combine(V, k));
    const ritzA = Array.from({ length: b }, (_, k) => combine(AV, k));
    best = { values: values.slice(0, want), vectors: ritz.slice(0, want) };
    const scale = Math.max(values[0]!, Number.MIN_VALUE);
    let converged = b === m;
    if (!converged) {
      converged = true;
      for (let k = 0; k < want; k++) {
        let r = 0;
        const v = ritz[k]!;
        const av = ritzA[k]!;
        for (let j = 0; j < m; j++) r += (av[j]! - values[k]! * v[j]!) ** 2;
        if (Math.sqrt(r) > tol * scale) converged = false;
      }
    }
    if (converged) break;
    V = orthonormalize(ritzA, randomVector);
  }
  return best;
}

/** Modified Gram–Schmidt with one re-orthogonalisation; (near-)dependent columns are replaced by fresh vectors. */
function orthonormalize(cols: Float64Array[], fresh: () => Float64Array): Float64Array[] {
  const out: Float64Array[] = [];
  for (const c of cols) {
    let v: Float64Array = c.slice();
    const n0 = Math.sqrt(dot(v, v));
    for (let attempt = 0; attempt < 8; attempt++) {
      for (let pass = 0; pass < 2; pass++) {
        for (const q of out) {
          const a = dot(q, v);
          for (let j = 0; j < v.length; j++) v[j]! -= a * q[j]!;
        }
      }
      const n = Math.sqrt(dot(v, v));
      if (n > 1e-10 * Math.max(n0, 1e-300) && n > 0) {
        for (let j = 0; j < v.length; j++) v[j]! /= n;
        break;
      }
      v = fresh();
    }
    out.push(v);
  }
  return out;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Eigen-decomposition of a small dense symmetric n×n matrix (descending values, eigenvectors as columns). */
function symEig(A0: Float64Array, n: number): { values: number[]; vectors: Float64Array } {
  const r = jacobiEigh(A0, n, { vectors: true });
  return { values: Array.from(r.values), vectors: r.vectors! };
}
