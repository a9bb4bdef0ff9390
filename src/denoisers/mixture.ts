/**
 * The Gaussian-mixture denoiser (SPEC §2.2): components k with weight π_k, mean μ_k and
 * covariance Σ_k = V_k diag(λ_k) V_kᵀ. With y = x_t/√ᾱ and σ² = (1−ᾱ)/ᾱ,
 *
 *   log r_k(y) = log π_k − ½ Σ_j z_kj²/(λ_kj+σ²) − ½ Σ_j log(λ_kj+σ²) + const,  z_k = V_kᵀ(y−μ_k),
 *   r = softmax(log r)   (log-sum-exp),
 *   D(y;σ) = Σ_k r_k(y) · (μ_k + V_k diag(λ_k/(λ_k+σ²)) z_k).
 *
 * Conditions: each component may be exposed as a condition (class k → component k alone, by an
 * additive −∞ mask on the other log-weights); `null` is the full mixture. One onnxruntime call
 * evaluates a whole mixed batch (batched MatMuls over the K components).
 */
import { type CondRef, type ConditionInfo, type Denoiser, type NoiseLevel, type Space, checkConds } from './denoiser.ts';
import { type Tensor, assertFinite, numel } from '../tensor/tensor.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { type Session, createSession } from '../graph/session.ts';
import { type GaussianComponent, epsFromDenoiser, gaussianComponents } from './gaussian.ts';

/** One mixture component: a fitted Gaussian and its weight π_k (> 0; normalised over components). */
export interface MixtureComponent extends GaussianComponent {
  readonly weight: number;
}

/** Options of {@link makeMixtureDenoiser}. */
export interface MixtureOptions {
  /** Name for reports (default `'gmm'`). */
  readonly name?: string;
  /** Data space (default `'pixel'`). */
  readonly space?: Space;
  /** Per-sample shape (default `[d]`). */
  readonly shape?: readonly number[];
  /**
   * Conditions: entry i selects component `conditions[i].component` alone (default: none, only
   * the full mixture for `null`).
   */
  readonly conditions?: readonly (ConditionInfo & { readonly component: number })[];
  /** onnxruntime intra-op threads (default: `MEMSCOPE_THREADS` or 2). */
  readonly threads?: number;
}

/** Result of {@link MixtureDenoiser.posterior}. */
export interface MixturePosterior {
  /** D(y;σ) `[B, ...shape]`. */
  readonly denoised: Tensor;
  /** Responsibilities r_k(y) `[B·K]` row-major (after the condition masks). */
  readonly responsibilities: Float32Array;
}

/**
 * The exact Gaussian-mixture denoiser (SPEC §2.2). Implements {@link Denoiser}. Create with
 * {@link makeMixtureDenoiser}.
 */
export class MixtureDenoiser implements Denoiser {
  readonly name: string;
  readonly space: Space;
  /** A closed form at every noise level: σ-samplers (`heun-edm`) may evaluate it at any σ > 0. */
  readonly sigmaRange: readonly [number, number] = [0, Infinity];
  readonly shape: readonly number[];
  readonly conditions: readonly ConditionInfo[];
  /** Number of components K. */
  readonly K: number;
  readonly d: number;
  private readonly comp: readonly MixtureComponent[];
  private readonly condComp: readonly number[];
  private readonly logPi: Float64Array;
  private session: Promise<Session> | null = null;

  /** Use {@link makeMixtureDenoiser}. */
  constructor(components: readonly MixtureComponent[], private readonly opts: MixtureOptions = {}) {
    if (components.length === 0) throw new Error('mixture: need at least one component');
    const d = components[0]!.d;
    for (const [k, c] of components.entries()) {
      if (c.d !== d) throw new Error(`mixture: component ${k} has d = ${c.d}, component 0 has ${d}`);
      if (!(c.weight > 0)) throw new Error(`mixture: component ${k} weight must be > 0, got ${c.weight}`);
    }
    this.comp = components;
    this.K = components.length;
    this.d = d;
    this.name = opts.name ?? 'gmm';
    this.space = opts.space ?? 'pixel';
    this.shape = opts.shape ?? [d];
    if (numel(this.shape) !== d) throw new Error(`${this.name}: shape [${this.shape.join(', ')}] does not have d = ${d} elements`);
    const total = components.reduce((s, c) => s + c.weight, 0);
    this.logPi = Float64Array.from(components, (c) => Math.log(c.weight / total));
    const conds = opts.conditions ?? [];
    this.conditions = conds.map(({ component: _c, ...info }) => info);
    this.condComp = conds.map((c, i) => {
      if (!Number.isInteger(c.component) || c.component < 0 || c.component >= this.K) throw new Error(`${this.name}: condition ${i} (${c.id}) selects component ${c.component}, outside [0, ${this.K})`);
      return c.component;
    });
  }

  /** The components (as given). */
  get components(): readonly MixtureComponent[] {
    return this.comp;
  }

  private graph(): Promise<Session> {
    this.session ??= (async () => {
      const { K, d } = this;
      const b = new GraphBuilder({ name: 'gmm' });
      const y = b.input('y', 'float32', ['B', d]);
      const mask = b.input('mask', 'float32', ['B', K]);
      const a = b.input('a', 'float32', [K, 1, d]); // 1/(λ+σ²)
      const c = b.input('c', 'float32', [K, 1, d]); // λ/(λ+σ²)
      const bias = b.input('bias', 'float32', [K, 1]); // log π − ½ Σ log(λ+σ²)
      const mu = new Float32Array(K * d);
      const V = new Float32Array(K * d * d); // [K, d(j), d(k)] = V_k
      const Vt = new Float32Array(K * d * d); // [K, d(k), d(j)] = V_kᵀ
      this.comp.forEach((cp, k) => {
        for (let j = 0; j < d; j++) mu[k * d + j] = cp.mean[j]!;
        const off = k * d * d;
        for (let r = 0; r < d; r++) {
          for (let j = 0; j < d; j++) {
            const v = cp.vectorsT[r * d + j]!;
            Vt[off + r * d + j] = v;
            V[off + j * d + r] = v;
          }
        }
      });
      const muI = b.initializer('mu', mu, [K, 1, d]);
      const yk = b.op('Sub', [b.op('Unsqueeze', [y, b.constI64([0])]), muI]); // [K,B,d]
      const z = b.op('MatMul', [yk, b.initializer('V', V, [K, d, d])]); // [K,B,d]
      const maha = b.op('ReduceSum', [b.op('Mul', [b.op('Mul', [z, z]), a]), b.constI64([2])], { keepdims: 0 }); // [K,B]
      const logr = b.op('Add', [b.op('Mul', [maha, b.constF32(-0.5)]), bias]); // [K,B]
      const r = b.op('Softmax', [b.op('Add', [b.op('Transpose', [logr], { perm: [1, 0] }), mask])], { axis: -1 }); // [B,K]
      const Dk = b.op('Add', [b.op('MatMul', [b.op('Mul', [z, c]), b.initializer('Vt', Vt, [K, d, d])]), muI]); // [K,B,d]
      const rk = b.op('Unsqueeze', [b.op('Transpose', [r], { perm: [1, 0] }), b.constI64([2])]); // [K,B,1]
      const D = b.op('ReduceSum', [b.op('Mul', [Dk, rk]), b.constI64([0])], { keepdims: 0 }); // [B,d]
      b.output(D, 'float32', ['B', d], 'D');
      b.output(r, 'float32', ['B', K], 'r');
      return createSession(b.toBytes(), this.opts.threads === undefined ? {} : { threads: this.opts.threads });
    })();
    return this.session;
  }

  /** D(y;σ) and the responsibilities for a batch `y` `[B, ...shape]` (VE scale), one onnxruntime call. */
  async posterior(y: Tensor, sigma: number, cond: readonly CondRef[]): Promise<MixturePosterior> {
    const { K, d } = this;
    if (y.dims.length !== this.shape.length + 1 || y.dims.slice(1).some((v, i) => v !== this.shape[i])) {
      throw new Error(`${this.name}: y must be [B, ${this.shape.join(', ')}], got [${y.dims.join(', ')}]`);
    }
    if (!(sigma > 0) || !Number.isFinite(sigma)) throw new Error(`${this.name}: σ must be finite and > 0, got ${sigma}`);
    const B = y.dims[0]!;
    checkConds(this, cond, B);
    const s2 = sigma * sigma;
    const a = new Float32Array(K * d);
    const c = new Float32Array(K * d);
    const bias = new Float32Array(K);
    this.comp.forEach((cp, k) => {
      let logdet = 0;
      for (let j = 0; j < d; j++) {
        const v = cp.values[j]! + s2;
        a[k * d + j] = 1 / v;
        c[k * d + j] = cp.values[j]! / v;
        logdet += Math.log(v);
      }
      bias[k] = this.logPi[k]! - 0.5 * logdet;
    });
    // the bias only matters up to a constant: centre it so float32 keeps its digits
    const bmax = Math.max(...bias);
    for (let k = 0; k < K; k++) bias[k]! -= bmax;
    const mask = new Float32Array(B * K);
    cond.forEach((cr, r) => {
      if (cr === null) return;
      const keep = this.condComp[cr]!;
      for (let k = 0; k < K; k++) if (k !== keep) mask[r * K + k] = -Infinity;
    });
    const s = await this.graph();
    const out = await s.run(
      { y: { dims: [B, d], data: y.data }, mask: { dims: [B, K], data: mask }, a: { dims: [K, 1, d], data: a }, c: { dims: [K, 1, d], data: c }, bias: { dims: [K, 1], data: bias } },
      ['D', 'r'],
    );
    const D = out['D']!;
    assertFinite(`${this.name}: denoised estimate`, D);
    return { denoised: { dims: [...y.dims], data: D.data }, responsibilities: out['r']!.data };
  }

  /** D(y;σ) (SPEC §2.2) for a batch (VE scale). */
  async denoise(y: Tensor, sigma: number, cond: readonly CondRef[]): Promise<Tensor> {
    return (await this.posterior(y, sigma, cond)).denoised;
  }

  /** ε = (x_t − √ᾱ·D(x_t/√ᾱ; σ))/√(1−ᾱ) for a mixed batch; requires 0 < ᾱ < 1. */
  async predict(xt: Tensor, level: NoiseLevel, cond: readonly CondRef[]): Promise<Tensor> {
    if (xt.dims.length !== this.shape.length + 1) throw new Error(`${this.name}: x_t must be [B, ${this.shape.join(', ')}], got [${xt.dims.join(', ')}]`);
    checkConds(this, cond, xt.dims[0]!);
    assertFinite(`${this.name}: x_t`, xt);
    return epsFromDenoiser(xt, level, this.name, (y, sigma) => this.denoise(y, sigma, cond));
  }

  /** Release the onnxruntime session. */
  async dispose(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (s !== null) await (await s).release();
  }
}

/**
 * Build a Gaussian-mixture denoiser (SPEC §2.2) from fitted components, or from data split by
 * label (`{ X, labels, K }`: component k fitted to the rows with label k, π_k = its frequency,
 * eigendecompositions cached on disk).
 */
export async function makeMixtureDenoiser(
  source: readonly MixtureComponent[] | { readonly X: Tensor; readonly labels: ArrayLike<number>; readonly K: number; readonly cache?: boolean },
  opts: MixtureOptions = {},
): Promise<MixtureDenoiser> {
  if (Array.isArray(source)) return new MixtureDenoiser(source as readonly MixtureComponent[], opts);
  const src = source as { X: Tensor; labels: ArrayLike<number>; K: number; cache?: boolean };
  const comps = await fitMixtureByLabel(src.X, src.labels, src.K, src.cache ?? true);
  return new MixtureDenoiser(comps, { shape: src.X.dims.slice(1), ...opts });
}

/** Fit one Gaussian per label 0..K−1 (π_k = label frequency); each eigendecomposition cached on disk. */
export async function fitMixtureByLabel(X: Tensor, labels: ArrayLike<number>, K: number, cache = true): Promise<MixtureComponent[]> {
  const n = X.dims[0]!;
  const d = numel(X.dims.slice(1));
  if (labels.length !== n) throw new Error(`mixture: ${labels.length} labels for ${n} rows`);
  const subs: Tensor[] = [];
  const counts: number[] = [];
  for (let k = 0; k < K; k++) {
    const idx: number[] = [];
    for (let i = 0; i < n; i++) if (labels[i] === k) idx.push(i);
    if (idx.length < 2) throw new Error(`mixture: label ${k} has ${idx.length} rows; need at least 2 to fit a Gaussian`);
    const sub = new Float32Array(idx.length * d);
    idx.forEach((i, r) => sub.set(X.data.subarray(i * d, (i + 1) * d), r * d));
    subs.push({ dims: [idx.length, d], data: sub });
    counts.push(idx.length);
  }
  // the eigendecompositions (the slow part) run in parallel worker threads and are cached on disk
  const comps = await gaussianComponents(subs, { cache });
  return comps.map((g, k) => ({ ...g, weight: counts[k]! / n }));
}
