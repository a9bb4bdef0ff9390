/**
 * The exact empirical optimal denoiser (SPEC §2.1) over a training set `X = {x_i}` `[n, ...shape]`,
 * with optional per-condition subsets (a condition = a list of training indices; the null
 * condition = all images):
 *
 *   y = x_t/√ᾱ_t,  σ = σ_t = √((1−ᾱ_t)/ᾱ_t),
 *   w_i(y,σ) = softmax_i(−‖y − x_i‖²/(2σ²)),  D*(y;σ) = Σ_i w_i x_i,
 *   ε* = (x_t − √ᾱ_t·D*)/√(1−ᾱ_t).
 *
 * The heavy work is one onnxruntime graph per batch: the distances through a GEMM
 * (‖y−x_i‖² = ‖y‖² − 2⟨y,x_i⟩ + ‖x_i‖², on mean-centred data), an additive mask input (0 / −∞)
 * selecting each row's subset, a stable softmax (onnxruntime subtracts the row maximum:
 * log-sum-exp), then the weights times X (a second GEMM).
 *
 * Precision. The expansion loses digits when σ is small: the logit error is about
 * `c·u·(‖y'‖·max‖x'_i‖ + max‖x'_i‖²/2)/σ²` (u the unit round-off, c = 16 covers the measured
 * worst case with a 5× margin). Three paths keep it below `maxLogitError` (default 1e-4):
 *  - **f32**: float32 GEMMs — used when the float32 bound is below the tolerance (large σ);
 *  - **f64**: float64 distance GEMM and logits (the weights·X GEMM stays float32) — medium σ;
 *  - **exact**: the float64 GEMM only ranks candidates (TopK), then the exact distances of the
 *    candidates are recomputed in float64 in JS and the softmax taken over them, doubling the
 *    candidate count until the rest provably weighs < e⁻⁴⁰ — tiny σ, and σ = 0 (nearest image).
 * Subsets with at most `exactBelow` images (e.g. a caption tied to one image) are always
 * computed exactly in JS, without onnxruntime.
 */
import { type CondRef, type ConditionInfo, type Denoiser, type NoiseLevel, type Space, checkConds } from './denoiser.ts';
import { type Tensor, assertFinite, numel } from '../tensor/tensor.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { type Session, createSession } from '../graph/session.ts';

/** A condition of the empirical denoiser: its description plus the training indices it selects. */
export interface EmpiricalCondition extends ConditionInfo {
  /** Training-set indices of this condition's subset (non-empty, each in [0, n)). */
  readonly indices: readonly number[];
}

/** Options of {@link makeEmpiricalDenoiser}. */
export interface EmpiricalOptions {
  /** Name for reports (default `'empirical'`). */
  readonly name?: string;
  /** Data space (default `'pixel'`). */
  readonly space?: Space;
  /** Conditions (default: none, only the null condition = all images). */
  readonly conditions?: readonly EmpiricalCondition[];
  /**
   * Largest tolerated error of the logits −‖y−x_i‖²/(2σ²) (an error δ changes a weight by a
   * factor within e^{±2δ}); decides between the f32, f64 and exact paths. Default 1e-4.
   */
  readonly maxLogitError?: number;
  /** Subsets of at most this many images are computed exactly in JS (default 64). */
  readonly exactBelow?: number;
  /** onnxruntime intra-op threads (default: `MEMSCOPE_THREADS` or 2). */
  readonly threads?: number;
  /** Largest batch per onnxruntime call; bigger batches are split (default 256). */
  readonly maxBatch?: number;
  /** Force one path (for tests and benchmarks); default `'auto'`. */
  readonly path?: EmpiricalPath;
}

/** Which computation {@link EmpiricalDenoiser} uses (see the module comment). */
export type EmpiricalPath = 'auto' | 'f32' | 'f64' | 'exact';

/** Posterior summaries of SPEC §5.1 for a batch (B rows). */
export interface Posterior {
  /** max_i w_i(y,σ) per row. */
  readonly maxWeight: Float64Array;
  /** Effective number of contributors 1/Σ_i w_i² per row. */
  readonly effectiveCount: Float64Array;
  /** Training index with the largest weight (the nearest image of the row's subset). */
  readonly argmax: Int32Array;
  /** Full weights `[B·n]` row-major (zeros outside a row's subset), when requested. */
  readonly weights?: Float32Array;
  /** D*(y;σ) `[B, ...shape]`. */
  readonly denoised: Tensor;
  /** Which path computed it. */
  readonly path: Exclude<EmpiricalPath, 'auto'>;
}

/** Exact k nearest training images of each row (SPEC §5.4 needs the first two). */
export interface Nearest {
  /** `[B·k]` training indices, nearest first. */
  readonly indices: Int32Array;
  /** `[B·k]` squared distances ‖y − x_i‖², computed exactly in float64. */
  readonly sqDist: Float64Array;
  readonly k: number;
}

const U32 = 2 ** -24;
const U64 = 2 ** -53;
/** Safety factor of the logit-error bound (measured worst case ≈ 3 on centred Fashion-MNIST). */
const ERR_C = 16;
/** Weights below e^-TAIL of the largest are dropped by the exact path. */
const TAIL = 40;

interface F32Graph {
  readonly session: Session;
}

/**
 * The exact empirical optimal denoiser (SPEC §2.1). Implements {@link Denoiser}; also offers
 * {@link EmpiricalDenoiser.denoise}, {@link EmpiricalDenoiser.posterior} and
 * {@link EmpiricalDenoiser.nearest} for the analyses of SPEC §5. Create with
 * {@link makeEmpiricalDenoiser}.
 */
export class EmpiricalDenoiser implements Denoiser {
  readonly name: string;
  readonly space: Space;
  /** A closed form at every noise level: σ-samplers (`heun-edm`) may evaluate it at any σ > 0. */
  readonly sigmaRange: readonly [number, number] = [0, Infinity];
  readonly shape: readonly number[];
  readonly conditions: readonly ConditionInfo[];
  /** Number of training images n. */
  readonly n: number;
  /** Dimension d = numel(shape). */
  readonly d: number;
  /** The training images `[n·d]` (the caller's buffer; not copied). */
  readonly X: Float32Array;

  private readonly subsets: readonly Int32Array[];
  private readonly masks: (Float32Array | null)[];
  private readonly mu: Float64Array;
  private readonly maxNorm: number; // max ‖x_i − μ‖
  private readonly tol: number;
  private readonly exactBelow: number;
  private readonly threads: number | undefined;
  private readonly maxBatch: number;
  private readonly forcePath: EmpiricalPath;
  private s32: Promise<F32Graph> | null = null;
  private s64: Promise<F32Graph> | null = null;
  private readonly zeroMasks = new Map<number, Float32Array>();

  /** Use {@link makeEmpiricalDenoiser}. */
  constructor(X: Tensor, opts: EmpiricalOptions = {}) {
    if (X.dims.length < 2) throw new Error(`empirical: training set must be [n, ...shape], got [${X.dims.join(', ')}]`);
    assertFinite('empirical: training set', X);
    this.n = X.dims[0]!;
    if (this.n < 1) throw new Error('empirical: training set is empty');
    this.shape = X.dims.slice(1);
    this.d = numel(this.shape);
    this.X = X.data;
    this.name = opts.name ?? 'empirical';
    this.space = opts.space ?? 'pixel';
    this.tol = opts.maxLogitError ?? 1e-4;
    this.exactBelow = opts.exactBelow ?? 64;
    this.threads = opts.threads;
    this.maxBatch = opts.maxBatch ?? 256;
    this.forcePath = opts.path ?? 'auto';
    const conds = opts.conditions ?? [];
    this.conditions = conds.map((c) => {
      const info: { id: string; kind: ConditionInfo['kind']; label: string; targets?: readonly number[] } = { id: c.id, kind: c.kind, label: c.label };
      if (c.targets !== undefined) info.targets = [...c.targets];
      return info;
    });
    this.subsets = conds.map((c, k) => {
      if (c.indices.length === 0) throw new Error(`empirical: condition ${k} (${c.id}) has an empty subset`);
      for (const i of c.indices) {
        if (!Number.isInteger(i) || i < 0 || i >= this.n) throw new Error(`empirical: condition ${k} (${c.id}) has index ${i} outside [0, ${this.n})`);
      }
      return Int32Array.from(c.indices);
    });
    this.masks = conds.map(() => null);
    const { n, d } = this;
    const mu = new Float64Array(d);
    for (let i = 0; i < n; i++) {
      const o = i * d;
      for (let j = 0; j < d; j++) mu[j]! += X.data[o + j]!;
    }
    for (let j = 0; j < d; j++) mu[j]! /= n;
    this.mu = mu;
    let mx = 0;
    for (let i = 0; i < n; i++) {
      const o = i * d;
      let s = 0;
      for (let j = 0; j < d; j++) {
        const v = X.data[o + j]! - mu[j]!;
        s += v * v;
      }
      if (s > mx) mx = s;
    }
    this.maxNorm = Math.sqrt(mx);
  }

  // -------------------------------------------------------------------------------------------
  // graphs

  private centredT(f64: boolean): { xt: Float32Array | Float64Array; h: Float32Array | Float64Array } {
    const { n, d, X, mu } = this;
    const xt = f64 ? new Float64Array(n * d) : new Float32Array(n * d);
    const h = f64 ? new Float64Array(n) : new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const o = i * d;
      let s = 0;
      for (let j = 0; j < d; j++) {
        const v = X[o + j]! - mu[j]!;
        xt[j * n + i] = v;
        const r = f64 ? v : Math.fround(v);
        s += r * r;
      }
      h[i] = s / 2;
    }
    return { xt, h };
  }

  private graph32(): Promise<F32Graph> {
    this.s32 ??= (async () => {
      const { n, d } = this;
      const b = new GraphBuilder({ name: 'empirical_f32' });
      const y = b.input('y', 'float32', ['B', d]);
      const mask = b.input('mask', 'float32', ['B', n]);
      const scale = b.input('scale', 'float32', [1]);
      const { xt, h } = this.centredT(false);
      const g = b.op('Sub', [b.op('MatMul', [y, b.initializer('XcT', xt, [d, n])]), b.initializer('h', h, [n])]);
      const logits = b.op('Add', [b.op('Mul', [g, scale]), mask]);
      const w = b.op('Softmax', [logits], { axis: -1 });
      b.output(b.op('MatMul', [w, b.initializer('X', this.X, [n, d])]), 'float32', ['B', d], 'D');
      b.output(b.op('ReduceMax', [w], { axes: [1], keepdims: 0 }), 'float32', ['B'], 'maxw');
      b.output(b.op('ReduceSumSquare', [w], { axes: [1], keepdims: 0 }), 'float32', ['B'], 'sumsq');
      b.output(b.op('ArgMax', [logits], { axis: 1, keepdims: 0 }), 'int64', ['B'], 'argmax');
      b.output(w, 'float32', ['B', n], 'W');
      return { session: await createSession(b.toBytes(), this.threads === undefined ? {} : { threads: this.threads }) };
    })();
    return this.s32;
  }

  private graph64(): Promise<F32Graph> {
    this.s64 ??= (async () => {
      const { n, d } = this;
      const b = new GraphBuilder({ name: 'empirical_f64' });
      const y = b.input('y', 'float64', ['B', d]);
      const mask = b.input('mask', 'float32', ['B', n]);
      const scale = b.input('scale', 'float64', [1]);
      const k = b.input('k', 'int64', [1]);
      const { xt, h } = this.centredT(true);
      const g = b.op('Sub', [b.op('MatMul', [y, b.initializer('XcT', xt, [d, n])]), b.initializer('h', h, [n])]);
      const gm = b.op('Add', [g, b.op('Cast', [mask], { to: 11 })]);
      const l64 = b.op('Mul', [gm, scale]);
      const l32 = b.op('Cast', [b.op('Sub', [l64, b.op('ReduceMax', [l64], { axes: [1], keepdims: 1 })])], { to: 1 });
      const w = b.op('Softmax', [l32], { axis: -1 });
      b.output(b.op('MatMul', [w, b.initializer('X', this.X, [n, d])]), 'float32', ['B', d], 'D');
      b.output(b.op('ReduceMax', [w], { axes: [1], keepdims: 0 }), 'float32', ['B'], 'maxw');
      b.output(b.op('ReduceSumSquare', [w], { axes: [1], keepdims: 0 }), 'float32', ['B'], 'sumsq');
      b.output(b.op('ArgMax', [gm], { axis: 1, keepdims: 0 }), 'int64', ['B'], 'argmax');
      b.output(w, 'float32', ['B', n], 'W');
      const [tv, ti] = b.opN('TopK', [gm, k], { axis: -1, largest: 1, sorted: 1 }, { outputs: 2 });
      b.output(tv!, 'float64', ['B', 'K'], 'topv');
      b.output(ti!, 'int64', ['B', 'K'], 'topi');
      b.output(gm, 'float64', ['B', n], 'g');
      return { session: await createSession(b.toBytes(), this.threads === undefined ? {} : { threads: this.threads }) };
    })();
    return this.s64;
  }

  private maskFor(c: CondRef): Float32Array | null {
    if (c === null) return null;
    let m = this.masks[c];
    if (m === null || m === undefined) {
      m = new Float32Array(this.n).fill(-Infinity);
      for (const i of this.subsets[c]!) m[i] = 0;
      this.masks[c] = m;
    }
    return m;
  }

  private buildMask(cond: readonly CondRef[]): Float32Array {
    const { n } = this;
    if (cond.every((c) => c === null)) {
      // all-unconditional batches share one zero mask per batch size (onnxruntime never writes inputs)
      let z = this.zeroMasks.get(cond.length);
      if (z === undefined) {
        z = new Float32Array(cond.length * n);
        this.zeroMasks.set(cond.length, z);
      }
      return z;
    }
    const out = new Float32Array(cond.length * n);
    cond.forEach((c, r) => {
      const m = this.maskFor(c);
      if (m !== null) out.set(m, r * n);
    });
    return out;
  }

  private subsetSize(c: CondRef): number {
    return c === null ? this.n : this.subsets[c]!.length;
  }

  /** The logit-error bound for a float type with unit round-off `u` (see the module comment). */
  /**
   * The path `auto` picks for these centred rows at σ: the logit-error bound
   * ERR_C·u·(max‖y'‖·max‖x'‖ + max‖x'‖²/2)/σ² for u = 2⁻²⁴ (f32) or 2⁻⁵³ (f64) against the tolerance.
   */
  choosePath(yc: Float64Array, rows: number, sigma: number): Exclude<EmpiricalPath, 'auto'> {
    if (!(sigma > 0)) return 'exact'; // σ = 0: the nearest image, only the exact path defines it
    if (this.forcePath !== 'auto') return this.forcePath;
    const { d } = this;
    let maxY = 0;
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let j = r * d, e = j + d; j < e; j++) s += yc[j]! * yc[j]!;
      if (s > maxY) maxY = s;
    }
    const S = (ERR_C * (Math.sqrt(maxY) * this.maxNorm + (this.maxNorm * this.maxNorm) / 2)) / (sigma * sigma);
    if (U32 * S <= this.tol) return 'f32';
    if (U64 * S <= this.tol) return 'f64';
    return 'exact';
  }

  // -------------------------------------------------------------------------------------------
  // core

  /**
   * D*(y;σ) and posterior summaries for rows of `y` (float64, uncentred, `[rows·d]`).
   * Writes D into `D` (float64) and the summaries into `stats`.
   */
  private async core(
    y: Float64Array,
    sigma: number,
    cond: readonly CondRef[],
    wantWeights: boolean,
  ): Promise<{ D: Float64Array; maxw: Float64Array; neff: Float64Array; argmax: Int32Array; W?: Float32Array; path: Exclude<EmpiricalPath, 'auto'> }> {
    const { d, n } = this;
    const B = cond.length;
    if (!(sigma >= 0) || !Number.isFinite(sigma)) throw new Error(`empirical: σ must be finite and ≥ 0, got ${sigma}`);
    const D = new Float64Array(B * d);
    const maxw = new Float64Array(B);
    const neff = new Float64Array(B);
    const argmax = new Int32Array(B);
    const W = wantWeights ? new Float32Array(B * n) : undefined;

    // rows with small subsets: exact in JS
    const big: number[] = [];
    for (let r = 0; r < B; r++) {
      const c = cond[r]!;
      if (c !== null && this.subsetSize(c) <= this.exactBelow) {
        this.exactRow(y, r, this.subsets[c]!, sigma, D, maxw, neff, argmax, W);
      } else big.push(r);
    }
    let usedPath: Exclude<EmpiricalPath, 'auto'> = 'exact';
    for (let s = 0; s < big.length; s += this.maxBatch) {
      const rows = big.slice(s, s + this.maxBatch);
      const m = rows.length;
      const yc = new Float64Array(m * d);
      const mu = this.mu;
      rows.forEach((r, k) => {
        for (let j = 0, o = k * d, q = r * d; j < d; j++) yc[o + j] = y[q + j]! - mu[j]!;
      });
      const rc = rows.map((r) => cond[r]!);
      const path = this.choosePath(yc, m, sigma);
      usedPath = path;
      if (path === 'exact') {
        await this.exactBatch(y, yc, rows, rc, sigma, D, maxw, neff, argmax, W);
        continue;
      }
      const mask = this.buildMask(rc);
      const outs = wantWeights ? ['D', 'maxw', 'sumsq', 'argmax', 'W'] : ['D', 'maxw', 'sumsq', 'argmax'];
      const res =
        path === 'f32'
          ? await (await this.graph32()).session.runRaw({ y: { type: 'float32', dims: [m, d], data: Float32Array.from(yc) }, mask: { type: 'float32', dims: [m, n], data: mask }, scale: { type: 'float32', dims: [1], data: Float32Array.of(1 / (sigma * sigma)) } }, outs)
          : await (await this.graph64()).session.runRaw(
              { y: { type: 'float64', dims: [m, d], data: yc }, mask: { type: 'float32', dims: [m, n], data: mask }, scale: { type: 'float64', dims: [1], data: Float64Array.of(1 / (sigma * sigma)) }, k: { type: 'int64', dims: [1], data: BigInt64Array.of(1n) } },
              outs,
            );
      const Dd = res['D']!.data as Float32Array;
      const mw = res['maxw']!.data as Float32Array;
      const ss = res['sumsq']!.data as Float32Array;
      const am = res['argmax']!.data as BigInt64Array;
      rows.forEach((r, k) => {
        D.set(Dd.subarray(k * d, (k + 1) * d), r * d);
        maxw[r] = mw[k]!;
        neff[r] = 1 / ss[k]!;
        argmax[r] = Number(am[k]!);
      });
      if (W !== undefined) {
        const Wd = res['W']!.data as Float32Array;
        rows.forEach((r, k) => W.set(Wd.subarray(k * n, (k + 1) * n), r * n));
      }
    }
    const out: { D: Float64Array; maxw: Float64Array; neff: Float64Array; argmax: Int32Array; W?: Float32Array; path: Exclude<EmpiricalPath, 'auto'> } = { D, maxw, neff, argmax, path: usedPath };
    if (W !== undefined) out.W = W;
    return out;
  }

  /** Exact softmax over the candidate indices `cand` for row `r` of `y` (float64, in JS). */
  private exactRow(
    y: Float64Array,
    r: number,
    cand: ArrayLike<number>,
    sigma: number,
    D: Float64Array,
    maxw: Float64Array,
    neff: Float64Array,
    argmax: Int32Array,
    W: Float32Array | undefined,
  ): void {
    const { d, X, n } = this;
    const m = cand.length;
    const dist = new Float64Array(m);
    let best = Infinity;
    let bi = -1;
    for (let k = 0; k < m; k++) {
      const o = cand[k]! * d;
      let s = 0;
      for (let j = 0; j < d; j++) {
        const v = y[r * d + j]! - X[o + j]!;
        s += v * v;
      }
      dist[k] = s;
      if (s < best || (s === best && cand[k]! < cand[bi]!)) {
        best = s;
        bi = k;
      }
    }
    const w = new Float64Array(m);
    let Z = 0;
    for (let k = 0; k < m; k++) {
      // σ = 0: the limit of the softmax — equal weights on the nearest (ties), 0 elsewhere
      const v = sigma > 0 ? Math.exp(-(dist[k]! - best) / (2 * sigma * sigma)) : dist[k] === best ? 1 : 0;
      w[k] = v;
      Z += v;
    }
    let mx = 0;
    let sq = 0;
    const row = D.subarray(r * d, (r + 1) * d);
    row.fill(0);
    for (let k = 0; k < m; k++) {
      const wk = w[k]! / Z;
      if (wk === 0) continue;
      if (wk > mx) mx = wk;
      sq += wk * wk;
      const o = cand[k]! * d;
      for (let j = 0; j < d; j++) row[j]! += wk * X[o + j]!;
      if (W !== undefined) W[r * n + cand[k]!] = wk;
    }
    maxw[r] = mx;
    neff[r] = 1 / sq;
    argmax[r] = cand[bi]!;
  }

  /**
   * Candidates for the exact path: the top-k of the float64 scores g_i = ⟨y',x'_i⟩ − ‖x'_i‖²/2
   * (+ mask), doubled until the non-candidates provably contribute < e^-TAIL (or, for σ = 0,
   * cannot be nearer), or k reaches the subset size.
   */
  /**
   * The float64 graph's top-k of the scores g_j over each row's allowed images (its condition's
   * mask), for the rows `todo` of the centred queries `yc` (`[rows, d]`): values and indices, k per row.
   */
  private async topK(yc: Float64Array, todo: readonly number[], cond: readonly CondRef[], k: number): Promise<{ tv: Float64Array; ti: BigInt64Array }> {
    const { d, n } = this;
    const m = todo.length;
    const yy = new Float64Array(m * d);
    todo.forEach((r, i) => yy.set(yc.subarray(r * d, (r + 1) * d), i * d));
    const res = await (await this.graph64()).session.runRaw(
      { y: { type: 'float64', dims: [m, d], data: yy }, mask: { type: 'float32', dims: [m, n], data: this.buildMask(todo.map((r) => cond[r]!)) }, scale: { type: 'float64', dims: [1], data: Float64Array.of(1) }, k: { type: 'int64', dims: [1], data: BigInt64Array.of(BigInt(k)) } },
      ['topv', 'topi'],
    );
    return { tv: res['topv']!.data as Float64Array, ti: res['topi']!.data as BigInt64Array };
  }

  private async candidates(yc: Float64Array, rows: number, cond: readonly CondRef[], sigma: number, k0: number): Promise<Int32Array[]> {
    const { d, n } = this;
    const out: Int32Array[] = new Array(rows);
    let todo = Array.from({ length: rows }, (_, i) => i);
    let k = Math.min(k0, n);
    while (todo.length > 0) {
      const { tv, ti } = await this.topK(yc, todo, cond, k);
      const again: number[] = [];
      todo.forEach((r, i) => {
        const size = this.subsetSize(cond[r]!);
        const kk = Math.min(k, size);
        const idx = new Int32Array(kk);
        for (let q = 0; q < kk; q++) idx[q] = Number(ti[i * k + q]!);
        if (kk >= size) {
          out[r] = idx;
          return;
        }
        // bound: every non-candidate j has g_j ≤ g̃_k + err, i.e. ‖y−x_j‖² ≥ ‖y'‖² − 2(g̃_k + err)
        let yn = 0;
        for (let j = 0; j < d; j++) yn += yc[r * d + j]! ** 2;
        const err = ERR_C * U64 * (Math.sqrt(yn) * this.maxNorm + (this.maxNorm * this.maxNorm) / 2);
        const dLow = yn - 2 * (tv[i * k + kk - 1]! + err);
        const dTop = yn - 2 * (tv[i * k]! - err); // ≥ the true nearest distance
        const ok = sigma > 0 ? (dLow - dTop) / (2 * sigma * sigma) >= TAIL + Math.log(n) : dLow > dTop;
        if (ok) out[r] = idx;
        else again.push(r);
      });
      todo = again;
      k = Math.min(2 * k, n);
    }
    return out;
  }

  private async exactBatch(
    y: Float64Array,
    yc: Float64Array,
    rows: readonly number[],
    rc: readonly CondRef[],
    sigma: number,
    D: Float64Array,
    maxw: Float64Array,
    neff: Float64Array,
    argmax: Int32Array,
    W: Float32Array | undefined,
  ): Promise<void> {
    const cands = await this.candidates(yc, rows.length, rc, sigma, 32);
    rows.forEach((r, i) => this.exactRow(y, r, cands[i]!, sigma, D, maxw, neff, argmax, W));
  }

  // -------------------------------------------------------------------------------------------
  // public API

  private rowsOf(name: string, t: Tensor): number {
    if (t.dims.length !== this.shape.length + 1 || t.dims.slice(1).some((v, i) => v !== this.shape[i])) {
      throw new Error(`${this.name}: ${name} must be [B, ${this.shape.join(', ')}], got [${t.dims.join(', ')}]`);
    }
    assertFinite(`${this.name}: ${name}`, t);
    return t.dims[0]!;
  }

  /**
   * ε*(x_t, t, e) (SPEC §2.1) for a batch: y = x_t/√ᾱ, σ = √((1−ᾱ)/ᾱ), ε* = (x_t − √ᾱ D*)/√(1−ᾱ),
   * computed in float64 from D*. Requires 0 < ᾱ < 1.
   */
  async predict(xt: Tensor, level: NoiseLevel, cond: readonly CondRef[]): Promise<Tensor> {
    const B = this.rowsOf('x_t', xt);
    checkConds(this, cond, B);
    const a = level.alphaBar;
    if (!(a > 0 && a < 1)) throw new Error(`${this.name}: ᾱ must be in (0, 1), got ${a}`);
    const sa = Math.sqrt(a);
    const sb = Math.sqrt(1 - a);
    const y = new Float64Array(xt.data.length);
    for (let i = 0; i < y.length; i++) y[i] = xt.data[i]! / sa;
    const { D } = await this.core(y, Math.sqrt((1 - a) / a), cond, false);
    const eps = new Float32Array(y.length);
    for (let i = 0; i < eps.length; i++) eps[i] = (xt.data[i]! - sa * D[i]!) / sb;
    return { dims: [...xt.dims], data: eps };
  }

  /** D*(y;σ) (SPEC §2.1) for a batch `y` `[B, ...shape]` in the VE scale (y = x_t/√ᾱ); σ ≥ 0 (σ = 0: nearest image). */
  async denoise(y: Tensor, sigma: number, cond: readonly CondRef[]): Promise<Tensor> {
    return (await this.posterior(y, sigma, cond)).denoised;
  }

  /**
   * Posterior weights w_i(y,σ) summaries (SPEC §5.1): max weight, effective number 1/Σw², the
   * arg-max index, D*, and with `weights: true` the full `[B·n]` weights.
   */
  async posterior(y: Tensor, sigma: number, cond: readonly CondRef[], opts: { weights?: boolean } = {}): Promise<Posterior> {
    const B = this.rowsOf('y', y);
    checkConds(this, cond, B);
    const r = await this.core(Float64Array.from(y.data), sigma, cond, opts.weights ?? false);
    const out: { -readonly [K in keyof Posterior]: Posterior[K] } = {
      maxWeight: r.maxw,
      effectiveCount: r.neff,
      argmax: r.argmax,
      denoised: { dims: [...y.dims], data: Float32Array.from(r.D) },
      path: r.path,
    };
    if (r.W !== undefined) out.weights = r.W;
    return out;
  }

  /**
   * The exact `k` nearest training images (within each row's condition subset; default k = 2)
   * and their squared distances, computed in float64 after a float64 GEMM ranking.
   */
  async nearest(y: Tensor, cond: readonly CondRef[] | null = null, k = 2): Promise<Nearest> {
    const B = this.rowsOf('y', y);
    const cs = cond ?? new Array<CondRef>(B).fill(null);
    checkConds(this, cs, B);
    const { d, X } = this;
    for (const c of cs) if (this.subsetSize(c) < k) throw new Error(`${this.name}: nearest(k=${k}) but a subset has only ${this.subsetSize(c)} images`);
    const yc = new Float64Array(B * d);
    for (let r = 0; r < B; r++) for (let j = 0; j < d; j++) yc[r * d + j] = y.data[r * d + j]! - this.mu[j]!;
    const indices = new Int32Array(B * k);
    const sqDist = new Float64Array(B * k);
    let todo = Array.from({ length: B }, (_, i) => i);
    let kk = Math.max(2 * k, 16);
    while (todo.length > 0) {
      const K = Math.min(kk, this.n);
      const { tv, ti } = await this.topK(yc, todo, cs, K);
      const again: number[] = [];
      todo.forEach((r, i) => {
        const size = this.subsetSize(cs[r]!);
        const kc = Math.min(K, size);
        const cand: { i: number; d: number }[] = [];
        for (let q = 0; q < kc; q++) {
          const idx = Number(ti[i * K + q]!);
          let s = 0;
          for (let j = 0; j < d; j++) s += (y.data[r * d + j]! - X[idx * d + j]!) ** 2;
          cand.push({ i: idx, d: s });
        }
        cand.sort((a, b) => a.d - b.d || a.i - b.i);
        let yn = 0;
        for (let j = 0; j < d; j++) yn += yc[r * d + j]! ** 2;
        const err = ERR_C * U64 * (Math.sqrt(yn) * this.maxNorm + (this.maxNorm * this.maxNorm) / 2);
        const dLow = yn - 2 * (tv[i * K + kc - 1]! + err);
        if (kc >= size || cand[k - 1]!.d < dLow) {
          for (let q = 0; q < k; q++) {
            indices[r * k + q] = cand[q]!.i;
            sqDist[r * k + q] = cand[q]!.d;
          }
        } else again.push(r);
      });
      todo = again;
      kk *= 4;
    }
    return { indices, sqDist, k };
  }

  /** Release the onnxruntime sessions (they are re-created on the next call). */
  async dispose(): Promise<void> {
    const all = [this.s32, this.s64];
    this.s32 = null;
    this.s64 = null;
    for (const p of all) if (p !== null) await (await p).session.release();
  }
}

/**
 * Build the exact empirical optimal denoiser (SPEC §2.1) over training images `X` `[n, ...shape]`.
 * Conditions select subsets by index; `null` in a batch means all images. onnxruntime sessions
 * are created on first use.
 */
export async function makeEmpiricalDenoiser(X: Tensor, opts: EmpiricalOptions = {}): Promise<EmpiricalDenoiser> {
  return new EmpiricalDenoiser(X, opts);
}
