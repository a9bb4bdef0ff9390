/**
 * Every denoiser backend of SPEC §2/§6, built once per test process on small seeded synthetic
 * data (shape [1, 4, 4], d = 16), for the conformance suites `denoisers.test.ts` and
 * `samplers.test.ts`. Randomness comes from a tiny seeded PRNG (mulberry32 + Box–Muller), never
 * `Math.random`. `MEMSCOPE_CACHE` points at a temp dir before anything is built, so the
 * eigendecomposition cache of the Gaussian / mixture / analytic backends never writes into the repo.
 *
 * Backends:
 *  - `empirical`        — n = 50, two condition subsets (20 / 30 images) + one single-image caption;
 *                          default options (small subsets exact in JS, null rows through onnxruntime);
 *  - `empirical-graph`  — the same data with `exactBelow: 0`: every row through the masked onnxruntime graph;
 *  - `gaussian`         — linear Gaussian denoiser fitted to 50 correlated points (no conditions);
 *  - `mixture`          — 3-component Gaussian mixture fitted by label, one condition per component;
 *  - `analytic`         — the analytic testbed: 10 classes × 20 images, 3 memorized captions;
 *  - `onnx`             — a GraphBuilder model loaded from a temp .onnx through `loadOnnxDenoiser`: the
 *                          exact ε of N(μ_c, v_c·I) per class label (ᾱ from the timestep through a baked
 *                          ᾱ table and Gather), label 0 = unconditional, one class with v = 0 (a point).
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CondRef, Denoiser } from '../../src/denoisers/denoiser.ts';
import { makeEmpiricalDenoiser, type EmpiricalCondition } from '../../src/denoisers/empirical.ts';
import { makeGaussianDenoiser } from '../../src/denoisers/gaussian.ts';
import { makeMixtureDenoiser, type MixtureComponent } from '../../src/denoisers/mixture.ts';
import { makeAnalyticTestbed } from '../../src/denoisers/analytic.ts';
import { loadOnnxDenoiser } from '../../src/denoisers/onnx.ts';
import { GraphBuilder } from '../../src/graph/builder.ts';
import { resolveDdimConfig, stableDiffusionConfig } from '../../src/schedules/config.ts';
import { configAlphaBars } from '../../src/schedules/timesteps.ts';
import { tensor, type Tensor } from '../../src/tensor/tensor.ts';

// ---------------------------------------------------------------------------------------------
// temp dirs (the cache dir must be set before any backend is built)

/** Temp dir for the eigendecomposition cache (`MEMSCOPE_CACHE`). */
export const CACHE_DIR = mkdtempSync(join(tmpdir(), 'memscope-conf-cache-'));
process.env['MEMSCOPE_CACHE'] = CACHE_DIR;
/** Temp dir for the ONNX model file. */
const MODEL_DIR = mkdtempSync(join(tmpdir(), 'memscope-conf-onnx-'));

/** The eigendecomposition cache files written so far (proves `MEMSCOPE_CACHE` was honoured). */
export function cacheFiles(): string[] {
  return readdirSync(CACHE_DIR).filter((f) => f.startsWith('eigh-'));
}

// ---------------------------------------------------------------------------------------------
// seeded randomness

/** mulberry32: a tiny seeded 32-bit PRNG, uniform in [0, 1). */
export class Rng {
  private a: number;
  private spare: number | null = null;
  constructor(seed: number) {
    this.a = seed >>> 0;
  }
  uniform(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Standard normal (Box–Muller). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const u1 = 1 - this.uniform();
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }
  normals(n: number, scale = 1): Float32Array {
    return Float32Array.from({ length: n }, () => scale * this.normal());
  }
  uniforms(n: number, lo = -1, hi = 1): Float32Array {
    return Float32Array.from({ length: n }, () => lo + (hi - lo) * this.uniform());
  }
}

// ---------------------------------------------------------------------------------------------
// shared constants

/** Per-sample shape of every backend. */
export const SHAPE: readonly number[] = [1, 4, 4];
/** d = numel(SHAPE). */
export const D = 16;

/** The Stable Diffusion 1.x config (clip_sample false) every suite samples with. */
export const SD_CONFIG = stableDiffusionConfig();
/** ᾱ_t for t = 0..999 of {@link SD_CONFIG} (the same table the ONNX model bakes in). */
export const ALPHA_BARS: Float64Array = configAlphaBars(resolveDdimConfig(SD_CONFIG));

/** A noise level on the training grid: integer t and its ᾱ. */
export function level(t: number): { t: number; alphaBar: number } {
  return { t, alphaBar: ALPHA_BARS[t]! };
}

// ---------------------------------------------------------------------------------------------
// backend descriptors

/** A training point that one (backend, condition) reduces to: x̂0 must recover it exactly. */
export interface SinglePoint {
  readonly label: string;
  readonly denoiser: Denoiser;
  readonly cond: CondRef;
  readonly x: Float32Array;
}

/** One backend as the suites see it. */
export interface Backend {
  readonly name: string;
  readonly denoiser: Denoiser;
  /** Number of conditions it must expose. */
  readonly numConditions: number;
  /** Every condition reference worth testing (null first). */
  readonly conds: readonly CondRef[];
  /** The two conditions of the B = 2 sampler runs. */
  readonly samplerConds: readonly [CondRef, CondRef];
  /** Cases where the data of a condition is one point (x̂0 must equal it at every t). */
  readonly singlePoints: readonly SinglePoint[];
  /** Whether the backend computes from `level.alphaBar` (and must reject ᾱ ∉ (0, 1)); the ONNX model reads `t`. */
  readonly usesAlphaBar: boolean;
  /** Typical clean data rows `[m·d]` (to build realistic x_t). */
  readonly data: Float32Array;
}

/** The backend names, in a fixed order (usable in `describe.each` at collection time). */
export const BACKEND_NAMES = ['empirical', 'empirical-graph', 'gaussian', 'mixture', 'analytic', 'onnx'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

// ---------------------------------------------------------------------------------------------
// builders

function rowOf(X: Float32Array, i: number): Float32Array {
  return X.slice(i * D, (i + 1) * D);
}

async function buildEmpirical(graph: boolean): Promise<Backend> {
  const rng = new Rng(11);
  const n = 50;
  const X = rng.uniforms(n * D);
  const conditions: EmpiricalCondition[] = [
    { id: 'class:0', kind: 'class', label: 'first twenty', indices: Array.from({ length: 20 }, (_, i) => i) },
    { id: 'class:1', kind: 'class', label: 'last thirty', indices: Array.from({ length: 30 }, (_, i) => 20 + i) },
    { id: 'caption:0', kind: 'caption', label: 'memorized image 7', indices: [7], targets: [7] },
  ];
  const den = await makeEmpiricalDenoiser(tensor([n, ...SHAPE], X), graph ? { name: 'empirical-graph', conditions, exactBelow: 0 } : { conditions });
  return {
    name: graph ? 'empirical-graph' : 'empirical',
    denoiser: den,
    numConditions: 3,
    conds: [null, 0, 1, 2],
    samplerConds: [0, 1],
    singlePoints: [{ label: 'caption:0 (image 7)', denoiser: den, cond: 2, x: rowOf(X, 7) }],
    usesAlphaBar: true,
    data: X,
  };
}

async function buildGaussian(): Promise<Backend> {
  const rng = new Rng(22);
  const n = 50;
  const A = rng.normals(D * D, 0.3);
  const m = rng.uniforms(D, -0.5, 0.5);
  const X = new Float32Array(n * D);
  for (let i = 0; i < n; i++) {
    const z = rng.normals(D);
    for (let j = 0; j < D; j++) {
      let s = m[j]!;
      for (let k = 0; k < D; k++) s += A[j * D + k]! * z[k]!;
      X[i * D + j] = s;
    }
  }
  const den = await makeGaussianDenoiser(tensor([n, ...SHAPE], X));
  // one training point: Σ = 0, so D_lin = μ = the point at every σ
  const p = rng.uniforms(D);
  const point = await makeGaussianDenoiser(tensor([1, ...SHAPE], p), { name: 'gaussian-1pt' });
  return {
    name: 'gaussian',
    denoiser: den,
    numConditions: 0,
    conds: [null],
    samplerConds: [null, null],
    singlePoints: [{ label: 'a Gaussian fitted to one point', denoiser: point, cond: null, x: p }],
    usesAlphaBar: true,
    data: X,
  };
}

async function buildMixture(): Promise<Backend> {
  const rng = new Rng(33);
  const K = 3;
  const per = 20;
  const means = Array.from({ length: K }, () => rng.uniforms(D, -1, 1));
  const X = new Float32Array(K * per * D);
  const labels: number[] = [];
  for (let k = 0; k < K; k++) {
    for (let i = 0; i < per; i++) {
      const r = k * per + i;
      const z = rng.normals(D, 0.3);
      for (let j = 0; j < D; j++) X[r * D + j] = means[k]![j]! + z[j]!;
      labels.push(k);
    }
  }
  const conditions = Array.from({ length: K }, (_, k) => ({ id: `class:${k}`, kind: 'class' as const, label: `cluster ${k}`, component: k }));
  const den = await makeMixtureDenoiser({ X: tensor([K * per, ...SHAPE], X), labels, K }, { conditions });
  // the fitted components plus a zero-covariance component at one point, selected by a condition
  const p = rng.uniforms(D);
  const eye = new Float64Array(D * D);
  for (let j = 0; j < D; j++) eye[j * D + j] = 1;
  const pointComp: MixtureComponent = { d: D, mean: Float64Array.from(p), values: new Float64Array(D), vectorsT: eye, weight: 0.2 };
  const withPoint = await makeMixtureDenoiser([...den.components, pointComp], {
    name: 'gmm+point',
    shape: SHAPE,
    conditions: [...conditions, { id: 'caption:0', kind: 'caption', label: 'a point', component: K }],
  });
  return {
    name: 'mixture',
    denoiser: den,
    numConditions: K,
    conds: [null, 0, 1, 2],
    samplerConds: [0, 2],
    singlePoints: [{ label: 'zero-covariance component (components-array factory)', denoiser: withPoint, cond: K, x: p }],
    usesAlphaBar: true,
    data: X,
  };
}

async function buildAnalytic(): Promise<Backend> {
  const rng = new Rng(44);
  const classes = 10;
  const per = 20;
  const n = classes * per;
  const means = Array.from({ length: classes }, () => rng.uniforms(D, -0.8, 0.8));
  const X = new Float32Array(n * D);
  const labels: number[] = [];
  for (let k = 0; k < classes; k++) {
    for (let i = 0; i < per; i++) {
      const r = k * per + i;
      const z = rng.normals(D, 0.25);
      for (let j = 0; j < D; j++) X[r * D + j] = means[k]![j]! + z[j]!;
      labels.push(k);
    }
  }
  const captionImages = [3, 57, 140];
  const den = await makeAnalyticTestbed({
    images: tensor([n, ...SHAPE], X),
    labels,
    classNames: Array.from({ length: classes }, (_, k) => `thing${k}`),
    captions: captionImages.map((index) => ({ text: `memorized caption of image ${index}`, index })),
  });
  return {
    name: 'analytic',
    denoiser: den,
    numConditions: classes + captionImages.length,
    conds: [null, 0, 4, 9, 10, 11, 12],
    samplerConds: [3, 11],
    singlePoints: captionImages.map((img, j) => ({ label: `caption:${j} (image ${img})`, denoiser: den, cond: classes + j, x: rowOf(X, img) })),
    usesAlphaBar: true,
    data: X,
  };
}

/** Means and variances of the ONNX model's Gaussians, by class label (label 0 = unconditional). */
export interface OnnxTruth {
  readonly means: Float32Array; // [4·d]
  readonly vars: Float32Array; // [4]
}

/**
 * Write the ONNX model: inputs `sample` float32 [B,1,4,4], `timestep` float32 [B],
 * `class_labels` int64 [B]; output the exact ε of N(μ_ℓ, v_ℓ·I) at ᾱ = table[round(t)]:
 * y = x/√ᾱ, σ² = (1−ᾱ)/ᾱ, D = μ + v/(v+σ²)(y−μ), ε = (x − √ᾱ·D)/√(1−ᾱ).
 */
function writeOnnxModel(truth: OnnxTruth): string {
  const L = truth.vars.length;
  const b = new GraphBuilder({ name: 'gaussian_eps' });
  const sample = b.input('sample', 'float32', ['B', ...SHAPE]);
  const ts = b.input('timestep', 'float32', ['B']);
  const lab = b.input('class_labels', 'int64', ['B']);
  const table = b.initializer('abar_table', Float32Array.from(ALPHA_BARS), [ALPHA_BARS.length]);
  const tIdx = b.op('Cast', [b.op('Min', [b.op('Max', [b.op('Round', [ts]), b.constF32(0)]), b.constF32(ALPHA_BARS.length - 1)])], { to: 7 });
  const col = b.constI64([-1, 1, 1, 1]);
  const a = b.op('Reshape', [b.op('Gather', [table, tIdx], { axis: 0 }), col]);
  const mu = b.op('Gather', [b.initializer('means', truth.means, [L, ...SHAPE]), lab], { axis: 0 });
  const v = b.op('Reshape', [b.op('Gather', [b.initializer('vars', truth.vars, [L]), lab], { axis: 0 }), col]);
  const one = b.constF32(1);
  const oneMinusA = b.op('Sub', [one, a]);
  const sa = b.op('Sqrt', [a]);
  const sb = b.op('Sqrt', [oneMinusA]);
  const y = b.op('Div', [sample, sa]);
  const s2 = b.op('Div', [oneMinusA, a]);
  const shrink = b.op('Div', [v, b.op('Add', [v, s2])]);
  const Dn = b.op('Add', [mu, b.op('Mul', [shrink, b.op('Sub', [y, mu])])]);
  const eps = b.op('Div', [b.op('Sub', [sample, b.op('Mul', [sa, Dn])]), sb]);
  b.output(eps, 'float32', ['B', ...SHAPE], 'out_sample');
  const path = join(MODEL_DIR, 'gaussian_eps.onnx');
  writeFileSync(path, b.toBytes());
  return path;
}

let onnxTruth: OnnxTruth | null = null;
/** The Gaussians baked into the ONNX model (after {@link getBackend}('onnx')). */
export function getOnnxTruth(): OnnxTruth {
  if (onnxTruth === null) throw new Error('onnx backend not built yet');
  return onnxTruth;
}

async function buildOnnx(): Promise<Backend> {
  const rng = new Rng(55);
  // labels 0..3: 0 = the unconditional Gaussian (the default uncond row is label 0); label 3 has v = 0
  const means = rng.uniforms(4 * D, -0.8, 0.8);
  const vars = Float32Array.of(0.6, 0.3, 0.9, 0);
  onnxTruth = { means, vars };
  const path = writeOnnxModel(onnxTruth);
  const den = await loadOnnxDenoiser({ path, name: 'onnx-gaussian', conditions: tensor([3], [1, 2, 3]), labels: ['label 1', 'label 2', 'label 3 (a point)'] });
  const data = new Float32Array(4 * D);
  for (let i = 0; i < 4; i++) {
    const z = rng.normals(D);
    for (let j = 0; j < D; j++) data[i * D + j] = means[i * D + j]! + Math.sqrt(vars[i]!) * z[j]!;
  }
  return {
    name: 'onnx',
    denoiser: den,
    numConditions: 3,
    conds: [null, 0, 1, 2],
    samplerConds: [0, 1],
    singlePoints: [{ label: 'class label 3 (v = 0)', denoiser: den, cond: 2, x: means.slice(3 * D, 4 * D) }],
    usesAlphaBar: false,
    data,
  };
}

const BUILDERS: Record<BackendName, () => Promise<Backend>> = {
  empirical: () => buildEmpirical(false),
  'empirical-graph': () => buildEmpirical(true),
  gaussian: buildGaussian,
  mixture: buildMixture,
  analytic: buildAnalytic,
  onnx: buildOnnx,
};

const built = new Map<BackendName, Promise<Backend>>();

/** The backend `name`, built on first use (memoized per test process). */
export function getBackend(name: BackendName): Promise<Backend> {
  let p = built.get(name);
  if (p === undefined) {
    p = BUILDERS[name]();
    built.set(name, p);
  }
  return p;
}

/** Dispose every built backend and remove the temp dirs. */
export async function disposeBackends(): Promise<void> {
  const seen = new Set<Denoiser>();
  for (const p of built.values()) {
    const b = await p;
    for (const d of [b.denoiser, ...b.singlePoints.map((s) => s.denoiser)]) {
      if (seen.has(d)) continue;
      seen.add(d);
      await d.dispose?.();
    }
  }
  built.clear();
  rmSync(CACHE_DIR, { recursive: true, force: true });
  rmSync(MODEL_DIR, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// tensor helpers for the suites

/** Noisy inputs at `level`: x_t = √ᾱ·x + √(1−ᾱ)·ε for data rows cycled from `b.data`, one row scaled by 3 when `outlier`. */
export function noisyBatch(b: Backend, rows: number, alphaBar: number, seed: number, outlier = false): Tensor {
  const rng = new Rng(seed);
  const m = b.data.length / D;
  const out = new Float32Array(rows * D);
  const sa = Math.sqrt(alphaBar);
  const sb = Math.sqrt(1 - alphaBar);
  for (let r = 0; r < rows; r++) {
    const src = (r * 7 + seed) % m;
    for (let j = 0; j < D; j++) out[r * D + j] = sa * b.data[src * D + j]! + sb * rng.normal();
    if (outlier && r === rows - 1) for (let j = 0; j < D; j++) out[r * D + j]! *= 3;
  }
  return tensor([rows, ...SHAPE], out);
}

/** max |a_i − b_i|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** max |a_i|. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** max|a − b| / max(1, max|b|): a difference relative to the scale of the reference (at least 1). */
export function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return maxAbsDiff(a, b) / Math.max(1, maxAbs(b));
}
