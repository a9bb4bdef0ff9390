/**
 * The linear Gaussian denoiser (SPEC §2.2): fit μ and Σ from data, one symmetric
 * eigendecomposition Σ = V diag(λ) Vᵀ for all σ, and
 *
 *   D_lin(y;σ) = μ + Σ(Σ+σ²I)⁻¹(y−μ) = μ + V diag(λ/(λ+σ²)) Vᵀ(y−μ),
 *   ε = (x_t − √ᾱ·D_lin)/√(1−ᾱ)  with y = x_t/√ᾱ, σ² = (1−ᾱ)/ᾱ.
 *
 * The projections run as onnxruntime MatMuls. Eigendecompositions are slow in JS (a 784×784
 * takes seconds), so `eighCached` (`src/linalg/eigh-cache.ts`) keeps them on disk under
 * `${MEMSCOPE_CACHE ?? '.cache/memscope'}`, keyed by a SHA-256 of the data, written atomically.
 */
import { join } from 'node:path';
import { type CondRef, type ConditionInfo, type Denoiser, type NoiseLevel, type Space, checkConds } from './denoiser.ts';
import { type Tensor, assertFinite, numel } from '../tensor/tensor.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { type Session, createSession, getSession } from '../graph/session.ts';
import { cacheDir, clampValues, eighCachedMany, eighStats, hashData, readEigh } from '../linalg/eigh-cache.ts';

// ---------------------------------------------------------------------------------------------
// fitting

/** A fitted Gaussian: mean, covariance and a data hash. */
export interface GaussianFit {
  readonly d: number;
  readonly mean: Float64Array;
  /** Covariance `[d·d]` row-major (exactly symmetric). */
  readonly cov: Float64Array;
  /** SHA-256 of the data the fit came from (the eigendecomposition cache key). */
  readonly key: string;
}

let covSession: Promise<Session> | null = null;

function covGraph(): Promise<Session> {
  covSession ??= (async () => {
    const b = new GraphBuilder({ name: 'gram' });
    const x = b.input('x', 'float64', ['N', 'D']);
    b.output(b.op('MatMul', [b.op('Transpose', [x], { perm: [1, 0] }), x]), 'float64', ['D', 'D'], 'g');
    return getSession(b.toBytes());
  })();
  return covSession;
}

/**
 * Fit μ and Σ = (1/(n−ddof)) Σ_i (x_i−μ)(x_i−μ)ᵀ of the rows of `X` `[n, ...]` in float64 (the
 * Gram matrix as an onnxruntime float64 MatMul). Default ddof = 0: the covariance of the
 * empirical distribution, whose optimal linear denoiser is D_lin (SPEC §2.2).
 */
export async function fitGaussian(X: Tensor, opts: { ddof?: number } = {}): Promise<GaussianFit> {
  if (X.dims.length < 2) throw new Error(`fitGaussian: expected [n, ...], got [${X.dims.join(', ')}]`);
  assertFinite('fitGaussian: data', X);
  const n = X.dims[0]!;
  const d = numel(X.dims.slice(1));
  const ddof = opts.ddof ?? 0;
  if (n - ddof <= 0) throw new Error(`fitGaussian: need more than ${ddof} rows, got ${n}`);
  const mean = meanOf(X, d);
  const xc = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) xc[i * d + j] = X.data[i * d + j]! - mean[j]!;
  const s = await covGraph();
  const g = (await s.runRaw({ x: { type: 'float64', dims: [n, d], data: xc } }, ['g']))['g']!.data as Float64Array;
  const cov = new Float64Array(d * d);
  const k = 1 / (n - ddof);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      const v = 0.5 * (g[i * d + j]! + g[j * d + i]!) * k;
      cov[i * d + j] = v;
      cov[j * d + i] = v;
    }
  }
  return { d, mean, cov, key: dataKey(X, ddof) };
}

function meanOf(X: Tensor, d: number): Float64Array {
  const n = X.dims[0]!;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += X.data[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j]! /= n;
  return mean;
}

function dataKey(X: Tensor, ddof: number): string {
  return hashData([X.data, `dims=${X.dims.join('x')};ddof=${ddof}`]);
}

/** A Gaussian in its eigenbasis: what the linear and mixture denoisers use. */
export interface GaussianComponent {
  readonly d: number;
  readonly mean: Float64Array;
  /** Eigenvalues of Σ (ascending, clamped at 0). */
  readonly values: Float64Array;
  /** Eigenvectors as rows (Vᵀ row-major), see {@link Eigh}. */
  readonly vectorsT: Float64Array;
}

/**
 * Fit a Gaussian to `X` and eigendecompose its covariance, with the disk cache keyed by the
 * data hash (SPEC §2.2). `cache: false` skips the disk.
 */
export async function gaussianComponent(X: Tensor, opts: { ddof?: number; cache?: boolean } = {}): Promise<GaussianComponent> {
  return (await gaussianComponents([X], opts))[0]!;
}

/**
 * Fit several Gaussians (one per data tensor) and eigendecompose their covariances, cached on
 * disk and computed in parallel worker threads when not cached (SPEC §2.2). All tensors must have
 * the same row size d.
 */
export async function gaussianComponents(Xs: readonly Tensor[], opts: { ddof?: number; cache?: boolean; workers?: number } = {}): Promise<GaussianComponent[]> {
  if (Xs.length === 0) return [];
  const ddof = opts.ddof ?? 0;
  const useCache = opts.cache ?? true;
  const d = numel(Xs[0]!.dims.slice(1));
  if (Xs.some((X) => numel(X.dims.slice(1)) !== d)) throw new Error('gaussianComponents: all data must have the same row size');
  const dir = cacheDir();
  // the cache key is the data hash, so a hit needs only the mean, not the covariance
  const keys = Xs.map((X) => `${dataKey(X, ddof)}-d${d}`);
  const out: (GaussianComponent | null)[] = Xs.map((X, k) => {
    const e = useCache ? readEigh(join(dir, `eigh-${keys[k]}.bin`), d) : null;
    if (e === null) return null;
    eighStats.hits++;
    return { d, mean: meanOf(X, d), values: clampValues(e).values, vectorsT: e.vectorsT };
  });
  const miss = out.flatMap((c, k) => (c === null ? [k] : []));
  if (miss.length > 0) {
    const fits: GaussianFit[] = [];
    for (const k of miss) fits.push(await fitGaussian(Xs[k]!, { ddof }));
    const es = await eighCachedMany(
      fits.map((f, i) => ({ A: f.cov, key: keys[miss[i]!]! })),
      d,
      { cache: useCache, ...(opts.workers === undefined ? {} : { workers: opts.workers }) },
    );
    miss.forEach((k, i) => (out[k] = { d, mean: fits[i]!.mean, values: es[i]!.values, vectorsT: es[i]!.vectorsT }));
  }
  return out as GaussianComponent[];
}

/** D_lin(y;σ) in float64 JS (SPEC §2.2), for tests and single vectors. */
export function linearDenoise(c: GaussianComponent, y: Float64Array | Float32Array, sigma: number): Float64Array {
  const { d, mean, values, vectorsT } = c;
  const yc = new Float64Array(d);
  for (let j = 0; j < d; j++) yc[j] = y[j]! - mean[j]!;
  const out = Float64Array.from(mean);
  const s2 = sigma * sigma;
  for (let k = 0; k < d; k++) {
    const lam = values[k]!;
    if (lam === 0) continue;
    const row = k * d;
    let z = 0;
    for (let j = 0; j < d; j++) z += vectorsT[row + j]! * yc[j]!;
    z *= lam / (lam + s2);
    for (let j = 0; j < d; j++) out[j]! += z * vectorsT[row + j]!;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// the denoiser

/** Options of {@link makeGaussianDenoiser}. */
export interface GaussianDenoiserOptions {
  /** Name for reports (default `'gaussian'`). */
  readonly name?: string;
  /** Data space (default `'pixel'`). */
  readonly space?: Space;
  /** Per-sample shape (default `[d]`, or the data's trailing dims when built from a tensor). */
  readonly shape?: readonly number[];
  /** onnxruntime intra-op threads (default: `MEMSCOPE_THREADS` or 2). */
  readonly threads?: number;
  /** Use the disk cache for the eigendecomposition (default true). */
  readonly cache?: boolean;
}

/**
 * The linear Gaussian denoiser D_lin (SPEC §2.2) as a {@link Denoiser} with no conditions (every
 * row is unconditional; a `cond` entry must be `null`).
 */
export class GaussianDenoiser implements Denoiser {
  readonly name: string;
  readonly space: Space;
  /** A closed form at every noise level: σ-samplers (`heun-edm`) may evaluate it at any σ > 0. */
  readonly sigmaRange: readonly [number, number] = [0, Infinity];
  readonly shape: readonly number[];
  readonly conditions: readonly ConditionInfo[] = [];
  private session: Promise<Session> | null = null;

  constructor(
    /** The fitted component. */
    readonly component: GaussianComponent,
    private readonly opts: GaussianDenoiserOptions = {},
  ) {
    this.name = opts.name ?? 'gaussian';
    this.space = opts.space ?? 'pixel';
    this.shape = opts.shape ?? [component.d];
    if (numel(this.shape) !== component.d) throw new Error(`${this.name}: shape [${this.shape.join(', ')}] does not have d = ${component.d} elements`);
  }

  private graph(): Promise<Session> {
    this.session ??= (async () => {
      const { d, mean, vectorsT } = this.component;
      const b = new GraphBuilder({ name: 'gaussian' });
      const y = b.input('y', 'float32', ['B', d]);
      const c = b.input('c', 'float32', [d]);
      const mu = b.initializer('mu', Float32Array.from(mean), [d]);
      const Vt = Float32Array.from(vectorsT); // [d(k), d(j)] = Vᵀ
      const V = new Float32Array(d * d);
      for (let k = 0; k < d; k++) for (let j = 0; j < d; j++) V[j * d + k] = Vt[k * d + j]!;
      const z = b.op('MatMul', [b.op('Sub', [y, mu]), b.initializer('V', V, [d, d])]);
      const D = b.op('Add', [b.op('MatMul', [b.op('Mul', [z, c]), b.initializer('Vt', Vt, [d, d])]), mu]);
      b.output(D, 'float32', ['B', d], 'D');
      return createSession(b.toBytes(), this.opts.threads === undefined ? {} : { threads: this.opts.threads });
    })();
    return this.session;
  }

  /** D_lin(y;σ) for a batch `y` `[B, ...shape]` (VE scale), via two onnxruntime MatMuls. */
  async denoise(y: Tensor, sigma: number): Promise<Tensor> {
    const d = this.component.d;
    if (y.data.length % d !== 0 || y.dims.length === 0) throw new Error(`${this.name}: y must be [B, ${this.shape.join(', ')}], got [${y.dims.join(', ')}]`);
    if (!(sigma >= 0) || !Number.isFinite(sigma)) throw new Error(`${this.name}: σ must be finite and ≥ 0, got ${sigma}`);
    const B = y.data.length / d;
    const s2 = sigma * sigma;
    const c = Float32Array.from(this.component.values, (l) => (l + s2 > 0 ? l / (l + s2) : 0));
    const s = await this.graph();
    const out = await s.run({ y: { dims: [B, d], data: y.data }, c: { dims: [d], data: c } }, ['D']);
    return { dims: [...y.dims], data: out['D']!.data };
  }

  /** ε = (x_t − √ᾱ·D_lin(x_t/√ᾱ; σ))/√(1−ᾱ) (SPEC §2.2 with §0). Requires 0 < ᾱ < 1. */
  async predict(xt: Tensor, level: NoiseLevel, cond: readonly CondRef[]): Promise<Tensor> {
    const B = xt.dims[0] ?? 0;
    if (xt.dims.length !== this.shape.length + 1 || xt.dims.slice(1).some((v, i) => v !== this.shape[i])) {
      throw new Error(`${this.name}: x_t must be [B, ${this.shape.join(', ')}], got [${xt.dims.join(', ')}]`);
    }
    checkConds(this, cond, B);
    assertFinite(`${this.name}: x_t`, xt);
    return epsFromDenoiser(xt, level, this.name, (y, sigma) => this.denoise(y, sigma));
  }

  /** Release the onnxruntime session. */
  async dispose(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (s !== null) await (await s).release();
  }
}

/**
 * Shared ε wrapper: y = x_t/√ᾱ, σ = √((1−ᾱ)/ᾱ), D = denoise(y, σ), ε = (x_t − √ᾱ D)/√(1−ᾱ)
 * in float64 per element. Throws unless 0 < ᾱ < 1 and D is finite.
 */
export async function epsFromDenoiser(xt: Tensor, level: NoiseLevel, name: string, denoise: (y: Tensor, sigma: number) => Promise<Tensor>): Promise<Tensor> {
  const a = level.alphaBar;
  if (!(a > 0 && a < 1)) throw new Error(`${name}: ᾱ must be in (0, 1), got ${a}`);
  const sa = Math.sqrt(a);
  const sb = Math.sqrt(1 - a);
  const y = new Float32Array(xt.data.length);
  for (let i = 0; i < y.length; i++) y[i] = xt.data[i]! / sa;
  const D = await denoise({ dims: xt.dims, data: y }, Math.sqrt((1 - a) / a));
  assertFinite(`${name}: denoised estimate`, D);
  const eps = new Float32Array(y.length);
  for (let i = 0; i < eps.length; i++) eps[i] = (xt.data[i]! - sa * D.data[i]!) / sb;
  return { dims: [...xt.dims], data: eps };
}

/**
 * Build the linear Gaussian denoiser (SPEC §2.2) from training images `X` `[n, ...shape]`
 * (fit + cached eigendecomposition) or from a fitted {@link GaussianComponent}.
 */
export async function makeGaussianDenoiser(data: Tensor | GaussianComponent, opts: GaussianDenoiserOptions = {}): Promise<GaussianDenoiser> {
  if ('dims' in data) {
    const comp = await gaussianComponent(data, opts.cache === undefined ? {} : { cache: opts.cache });
    return new GaussianDenoiser(comp, { shape: data.dims.slice(1), ...opts });
  }
  return new GaussianDenoiser(data, opts);
}
