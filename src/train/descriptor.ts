/**
 * memscope's own copy-detection descriptor: SSCD's recipe (Pizzi et al., "A Self-Supervised
 * Descriptor for Image Copy Detection", CVPR 2022) in miniature, for 28×28 grey images. A small
 * CNN maps an image to a D-dimensional L2-normalised embedding and is trained contrastively on
 * the embedded Fashion-MNIST train split: every image gives two strongly augmented views and the
 * NT-Xent / InfoNCE loss (SimCLR, Chen et al. 2020, eq. 1; SSCD §3.1) pulls the two views
 * together and pushes all other images of the batch away:
 *
 *     ℓ_i = −log( exp(z_i·z_p(i)/τ) / Σ_{k≠i} exp(z_i·z_k/τ) ),   loss = mean_i ℓ_i   (2B views)
 *
 * with τ = 0.1 by default. SSCD's entropy (KoLeo) regulariser and its mixup augmentations are
 * left out. The augmentations ({@link augmentViews}) are batched typed-array code driven by the
 * per-step mt19937 stream of `src/train/noise.ts` (`stepEngine(seed, step, 'aux')`), so a batch
 * is a pure function of `(seed, step)` and training resumes exactly.
 *
 * Shipped in `models/descriptor/` (descriptor.json + weights.safetensors); the network and the
 * folder reader are in `src/models/descriptor.ts`, loaded as a `Descriptor` by `learnedDescriptor`
 * (`src/metrics/descriptor.ts`).
 */
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { cpus } from 'node:os';
import { GraphBuilder } from '../graph/builder.ts';
import { createSession, defaultThreads, type Feed } from '../graph/session.ts';
import { gradientGraph } from '../graph/autodiff.ts';
import type { ParamSpec } from '../models/params.ts';
import { paramFnFor, initParams, countParams } from '../models/init.ts';
import { train, type TrainBatch } from './trainer.ts';
import { batchIndices, stepEngine } from './noise.ts';
import { Mt19937 } from '../random/torch.ts';
import { writeSafetensors } from '../io/safetensors.ts';
import { writeJsonAtomic } from '../io/atomic.ts';
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { DESCRIPTOR_FORMAT, DESCRIPTOR_SIZE, DEFAULT_DESCRIPTOR_ARCHITECTURE, buildDescriptorNet, descriptorInferenceGraph, type DescriptorArchitecture, L2_EPS, LEARNED_PREPROCESSING } from '../models/descriptor.ts';
import type { Tensor } from '../tensor/tensor.ts';

// ---------------------------------------------------------------------------------------------
// augmentations

/**
 * Augmentation distribution of one view (all ranges inclusive-exclusive uniforms). Applied in
 * this order: geometric (random resized crop + rotation + translation + horizontal flip, one
 * bilinear resampling, outside pixels −1 = black background); then, each with its probability,
 * contrast/brightness jitter, Gaussian blur, additive Gaussian noise, random erasing; values are
 * clipped to [−1, 1] after each photometric step.
 */
export interface AugmentConfig {
  /** Area fraction of the random resized crop. */
  readonly cropArea: readonly [number, number];
  /** Aspect ratio (w/h) of the crop, drawn log-uniformly. */
  readonly cropRatio: readonly [number, number];
  /** Extra translation of the crop centre, ±pixels (uniform). */
  readonly translate: number;
  /** Rotation, ±degrees (uniform). */
  readonly rotateDeg: number;
  /** Probability of a horizontal flip. */
  readonly hflip: number;
  /** Probability of contrast/brightness jitter. */
  readonly jitterProb: number;
  /** Contrast factor range (about the image mean). */
  readonly contrast: readonly [number, number];
  /** Brightness shift, ±(in [−1, 1] units). */
  readonly brightness: number;
  /** Probability of a Gaussian blur (5 taps, separable). */
  readonly blurProb: number;
  /** Blur σ range in pixels. */
  readonly blurSigma: readonly [number, number];
  /** Probability of additive Gaussian noise. */
  readonly noiseProb: number;
  /** Noise standard deviation range (in [−1, 1] units). */
  readonly noiseStd: readonly [number, number];
  /** Probability of random erasing (one rectangle filled with a uniform value in [−1, 1]). */
  readonly eraseProb: number;
  /** Erased area fraction range. */
  readonly eraseArea: readonly [number, number];
}

/** The strong training augmentations (SSCD-like, scaled to 28×28 images). */
export const STRONG_AUGMENT: AugmentConfig = Object.freeze({
  cropArea: [0.5, 1] as const,
  cropRatio: [3 / 4, 4 / 3] as const,
  translate: 2,
  rotateDeg: 15,
  hflip: 0.5,
  jitterProb: 0.8,
  contrast: [0.6, 1.4] as const,
  brightness: 0.3,
  blurProb: 0.3,
  blurSigma: [0.4, 1.2] as const,
  noiseProb: 0.5,
  noiseStd: [0.02, 0.15] as const,
  eraseProb: 0.25,
  eraseArea: [0.02, 0.12] as const,
});

/** Mild augmentations: the near-duplicates a memorizing generator produces (small shifts, slight noise and contrast changes). */
export const MILD_AUGMENT: AugmentConfig = Object.freeze({
  cropArea: [0.9, 1] as const,
  cropRatio: [0.95, 1 / 0.95] as const,
  translate: 1,
  rotateDeg: 3,
  hflip: 0,
  jitterProb: 1,
  contrast: [0.9, 1.1] as const,
  brightness: 0.05,
  blurProb: 0.2,
  blurSigma: [0.3, 0.6] as const,
  noiseProb: 1,
  noiseStd: [0.02, 0.06] as const,
  eraseProb: 0,
  eraseArea: [0.02, 0.05] as const,
});

const u01 = (e: Mt19937): number => (e.nextU32() & 0xffffff) / 16777216;
const uniform = (e: Mt19937, lo: number, hi: number): number => lo + (hi - lo) * u01(e);
/** Standard normal by Box–Muller on two 24-bit uniforms (the second value is discarded). */
const gauss = (e: Mt19937): number => Math.sqrt(-2 * Math.log(1 - u01(e))) * Math.cos(2 * Math.PI * u01(e));
const clip1 = (v: number): number => (v < -1 ? -1 : v > 1 ? 1 : v);

/**
 * One augmented view of each source image: `rows[r]` is the index of the image in `src`
 * (`[n, 784]`, values in [−1, 1]) written to row r of the returned `[rows.length, 784]` array.
 * Randomness comes only from `engine` (never `Math.random`): each image consumes a fixed 17
 * draws for its parameters, then 2·784 for noise (Box–Muller) when noise is applied and 4 for
 * the rectangle when erasing is.
 */
export function augmentViews(src: Float32Array, rows: readonly number[], engine: Mt19937, cfg: AugmentConfig): Float32Array {
  const S = DESCRIPTOR_SIZE;
  const P = S * S;
  const out = new Float32Array(rows.length * P);
  const tmp = new Float32Array(P);
  for (let r = 0; r < rows.length; r++) {
    const img = src.subarray(rows[r]! * P, (rows[r]! + 1) * P);
    const o = out.subarray(r * P, (r + 1) * P);
    // parameters (a fixed number of draws per image)
    const area = uniform(engine, cfg.cropArea[0], cfg.cropArea[1]);
    const ratio = Math.exp(uniform(engine, Math.log(cfg.cropRatio[0]), Math.log(cfg.cropRatio[1])));
    const cw = Math.min(S, S * Math.sqrt(area * ratio));
    const ch = Math.min(S, S * Math.sqrt(area / ratio));
    const cx = uniform(engine, cw / 2, S - cw / 2) + uniform(engine, -cfg.translate, cfg.translate);
    const cy = uniform(engine, ch / 2, S - ch / 2) + uniform(engine, -cfg.translate, cfg.translate);
    const th = (uniform(engine, -cfg.rotateDeg, cfg.rotateDeg) * Math.PI) / 180;
    const flip = u01(engine) < cfg.hflip ? -1 : 1;
    const doJitter = u01(engine) < cfg.jitterProb;
    const contrast = uniform(engine, cfg.contrast[0], cfg.contrast[1]);
    const bright = uniform(engine, -cfg.brightness, cfg.brightness);
    const doBlur = u01(engine) < cfg.blurProb;
    const sigma = uniform(engine, cfg.blurSigma[0], cfg.blurSigma[1]);
    const doNoise = u01(engine) < cfg.noiseProb;
    const noiseStd = uniform(engine, cfg.noiseStd[0], cfg.noiseStd[1]);
    const doErase = u01(engine) < cfg.eraseProb;
    const eraseU = u01(engine);
    // geometric: output pixel centre p ∈ [−½, ½]² → input point c + R(θ)·(flip·p_x·cw, p_y·ch)
    const cs = Math.cos(th);
    const sn = Math.sin(th);
    for (let v = 0; v < S; v++) {
      const py = ((v + 0.5) / S - 0.5) * ch;
      for (let u = 0; u < S; u++) {
        const px = flip * ((u + 0.5) / S - 0.5) * cw;
        const X = cx + cs * px - sn * py - 0.5;
        const Y = cy + sn * px + cs * py - 0.5;
        const x0 = Math.floor(X);
        const y0 = Math.floor(Y);
        const fx = X - x0;
        const fy = Y - y0;
        const at = (yy: number, xx: number): number => (yy >= 0 && yy < S && xx >= 0 && xx < S ? img[yy * S + xx]! : -1);
        o[v * S + u] = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) + fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
      }
    }
    if (doJitter) {
      let m = 0;
      for (let i = 0; i < P; i++) m += o[i]!;
      m /= P;
      for (let i = 0; i < P; i++) o[i] = clip1(contrast * (o[i]! - m) + m + bright);
    }
    if (doBlur) {
      const k = [-2, -1, 0, 1, 2].map((d) => Math.exp(-(d * d) / (2 * sigma * sigma)));
      const ks = k.reduce((a, c) => a + c, 0);
      for (let i = 0; i < 5; i++) k[i] = k[i]! / ks;
      for (let pass = 0; pass < 2; pass++) {
        tmp.set(o);
        for (let y = 0; y < S; y++) {
          for (let x = 0; x < S; x++) {
            let acc = 0;
            for (let d = -2; d <= 2; d++) {
              const yy = pass === 0 ? y : y + d;
              const xx = pass === 0 ? x + d : x;
              acc += k[d + 2]! * (yy >= 0 && yy < S && xx >= 0 && xx < S ? tmp[yy * S + xx]! : -1);
            }
            o[y * S + x] = acc;
          }
        }
      }
    }
    if (doNoise) for (let i = 0; i < P; i++) o[i] = clip1(o[i]! + noiseStd * gauss(engine));
    if (doErase) {
      const ea = uniform(engine, cfg.eraseArea[0], cfg.eraseArea[1]) * P;
      const er = Math.exp(uniform(engine, Math.log(0.3), Math.log(1 / 0.3)));
      const eh = Math.max(1, Math.min(S, Math.round(Math.sqrt(ea * er))));
      const ew = Math.max(1, Math.min(S, Math.round(Math.sqrt(ea / er))));
      const ey = Math.floor(u01(engine) * (S - eh + 1));
      const ex = Math.floor(u01(engine) * (S - ew + 1));
      const val = 2 * eraseU - 1;
      for (let y = ey; y < ey + eh; y++) for (let x = ex; x < ex + ew; x++) o[y * S + x] = val;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// training

/** Options of {@link trainDescriptor}. */
export interface TrainDescriptorOptions {
  /** Optimizer steps (default 1800). */
  readonly steps?: number;
  /** Images per step (default 128; each gives 2 views, so the loss sees 2·batch embeddings). */
  readonly batch?: number;
  /** Seed of initialisation, data order and augmentations (default 0). */
  readonly seed?: number;
  /** AdamW learning rate (default 2e-3, 50 warmup steps, weight decay 1e-4). */
  readonly lr?: number;
  /** NT-Xent temperature τ (default 0.1). */
  readonly temperature?: number;
  /** Embedding dimension (default 64). */
  readonly dim?: number;
  /** Show a progress line on stderr (default false). */
  readonly progress?: boolean;
}

/** Copy-retrieval metrics of a descriptor on a gallery of clean images (see {@link evaluateCopyRetrieval}). */
export interface RetrievalMetrics {
  /** Queries (augmented copies of the first `queries` gallery images). */
  readonly queries: number;
  /** Gallery size (clean images). */
  readonly gallery: number;
  /** Fraction of queries whose nearest gallery image (cosine) is their original. */
  readonly top1: number;
  /** mean_i cos(f(aug x_i), f(x_i)). */
  readonly meanCosCopy: number;
  /** mean_i max_{j≠i} cos(f(aug x_i), f(x_j)): the nearest OTHER gallery image. */
  readonly meanCosNearestOther: number;
  /** Fraction of queries with cos(f(aug x_i), f(x_i)) > 0.75. */
  readonly copyAbove075: number;
  /** Fraction of queries whose nearest other image has cos > 0.75. */
  readonly nearestOtherAbove075: number;
  /** mean_i max_{j≠i} cos(f(x_i), f(x_j)) over the clean query images (nearest distinct image). */
  readonly meanCosNearestOtherClean: number;
}

/** An embedding function `[n, 1, 28, 28]` → `[n, dim]` (unit rows), e.g. `Descriptor.embed`. */
export type EmbedFn = (images: Tensor) => Promise<Tensor>;

/** `a · bᵀ` for row-major `a` `[m, d]` and `b` `[n, d]` (one ONNX MatMul), `[m, n]` row-major. */
async function gram(a: Float32Array, m: number, b: Float32Array, n: number, d: number): Promise<Float32Array> {
  const g = new GraphBuilder({ name: 'gram' });
  g.input('a', 'float32', [m, d]);
  g.input('b', 'float32', [n, d]);
  g.output(g.op('Gemm', ['a', 'b'], { transB: 1 }), 'float32', [m, n], 'g');
  const s = await createSession(g.toBytes());
  try {
    return (await s.run({ a: { dims: [m, d], data: a }, b: { dims: [n, d], data: b } }))['g']!.data;
  } finally {
    await s.release();
  }
}

/**
 * Copy retrieval: augment each of the first `queries` gallery images once (`augmentViews` with
 * `cfg`, engine `Mt19937(seed)`), embed queries and the clean gallery, and for each query find
 * the gallery image of highest cosine. Reports top-1 (nearest is the original), the mean cosine
 * to the original and to the nearest other image, and the fractions above 0.75 (the SPEC §3.8
 * threshold). Rows from `embed` are assumed unit-norm (cosine = dot product).
 */
export async function evaluateCopyRetrieval(embed: EmbedFn, gallery: Tensor, opts: { readonly cfg: AugmentConfig; readonly seed: number; readonly queries?: number }): Promise<RetrievalMetrics> {
  const n = gallery.dims[0]!;
  const q = opts.queries ?? n;
  if (!Number.isInteger(q) || q < 1 || q > n) throw new Error(`evaluateCopyRetrieval: queries must be an integer in 1..${n}, got ${q}`);
  const rows = Array.from({ length: q }, (_, i) => i);
  const aug = augmentViews(gallery.data, rows, new Mt19937(opts.seed >>> 0), opts.cfg);
  const G = await embed(gallery);
  const Q = await embed({ dims: [q, 1, DESCRIPTOR_SIZE, DESCRIPTOR_SIZE], data: aug });
  const d = G.dims[1]!;
  const QG = await gram(Q.data, q, G.data, n, d);
  const GG = await gram(G.data.subarray(0, q * d), q, G.data, n, d);
  let hits = 0;
  let sumCopy = 0;
  let sumOther = 0;
  let sumClean = 0;
  let copyHi = 0;
  let otherHi = 0;
  for (let i = 0; i < q; i++) {
    let best = -Infinity;
    let bestJ = -1;
    let other = -Infinity;
    let clean = -Infinity;
    for (let j = 0; j < n; j++) {
      const c = QG[i * n + j]!;
      if (c > best) {
        best = c;
        bestJ = j;
      }
      if (j !== i) {
        if (c > other) other = c;
        const cc = GG[i * n + j]!;
        if (cc > clean) clean = cc;
      }
    }
    const self = QG[i * n + i]!;
    if (bestJ === i) hits++;
    sumCopy += self;
    sumOther += other;
    sumClean += clean;
    if (self > 0.75) copyHi++;
    if (other > 0.75) otherHi++;
  }
  return {
    queries: q,
    gallery: n,
    top1: hits / q,
    meanCosCopy: sumCopy / q,
    meanCosNearestOther: sumOther / q,
    copyAbove075: copyHi / q,
    nearestOtherAbove075: otherHi / q,
    meanCosNearestOtherClean: sumClean / q,
  };
}

/** Mean-centred pixel cosine embedding (the `pixel` descriptor), for the baseline row of the metrics. */
function pixelEmbed(mean: Float32Array): EmbedFn {
  return async (x: Tensor) => {
    const d = mean.length;
    const n = x.dims[0]!;
    const out = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      let ss = 0;
      for (let k = 0; k < d; k++) ss += (x.data[i * d + k]! - mean[k]!) ** 2;
      const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
      for (let k = 0; k < d; k++) out[i * d + k] = (x.data[i * d + k]! - mean[k]!) * inv;
    }
    return { dims: [n, d], data: out };
  };
}

function trainingGraph(batch: number, arch: DescriptorArchitecture, tau: number): { bytes: Uint8Array; specs: readonly ParamSpec[]; shapes: Record<string, readonly number[]> } {
  const V = 2 * batch;
  const b = new GraphBuilder({ name: 'descriptor_train' });
  const { param, specs } = paramFnFor(b, 'input');
  b.input('x', 'float32', [V, 1, DESCRIPTOR_SIZE, DESCRIPTOR_SIZE]);
  const z = buildDescriptorNet(b, param, 'x', arch);
  // NT-Xent: rows 0..B−1 are view 1, B..2B−1 view 2; the positive of i is i ± B
  const mask = new Float32Array(V * V);
  const pos = new Float32Array(V * V);
  for (let i = 0; i < V; i++) {
    mask[i * V + i] = -1e4;
    pos[i * V + ((i + batch) % V)] = 1;
  }
  const sim = b.op('Mul', [b.op('MatMul', [z, b.op('Transpose', [z], { perm: [1, 0] })]), b.constF32(1 / tau)]);
  const logp = b.op('LogSoftmax', [b.op('Add', [sim, b.constF32(mask, [V, V])])], { axis: 1 });
  const nll = b.op('Neg', [b.op('ReduceSum', [b.op('Mul', [logp, b.constF32(pos, [V, V])]), b.constI64([0, 1])], { keepdims: 0 })]);
  b.output(b.op('Div', [nll, b.constF32(V)]), 'float32', [], 'loss');
  const shapes: Record<string, readonly number[]> = { x: [V, 1, DESCRIPTOR_SIZE, DESCRIPTOR_SIZE] };
  for (const s of specs) shapes[s.name] = s.dims;
  return { bytes: b.toBytes(), specs, shapes };
}

/** What {@link trainDescriptor} measured (also written to `descriptor.json`). */
export interface TrainDescriptorResult {
  /** Retrieval on the 2k test images with the training (strong) augmentations. */
  readonly strong: RetrievalMetrics;
  /** Retrieval with mild (near-duplicate) augmentations. */
  readonly mild: RetrievalMetrics;
  /** The mean-centred pixel cosine on the same queries, for comparison. */
  readonly pixelBaseline: { readonly strong: RetrievalMetrics; readonly mild: RetrievalMetrics };
  /** Training time (all sessions, from the trainer) in seconds. */
  readonly trainSeconds: number;
  /** Augmented views through forward + backward per second of training time. */
  readonly viewsPerSecond: number;
  /** Wall time of the whole call (training, evaluation, writing) in seconds. */
  readonly wallSeconds: number;
  /** Final NT-Xent loss: mean of the last 50 steps. */
  readonly finalLoss: number;
  /** Initial NT-Xent loss: mean of the first 10 steps (ln(2B − 1) ≈ 5.54 at chance for B = 128). */
  readonly initialLoss: number;
}

/** Seeds of the evaluation augmentations (distinct from the training stream). */
export const EVAL_SEEDS = Object.freeze({ strong: 20240, mild: 20241 });

/** Default number of optimizer steps of {@link trainDescriptor}. */
export const DESCRIPTOR_DEFAULT_STEPS = 1800;

/**
 * Train the descriptor on the embedded Fashion-MNIST train split (NT-Xent over two strongly
 * augmented views per image, AdamW, checkpoints in `dir/checkpoints`, resumable), evaluate copy
 * retrieval on the 2k test images, and write `dir/weights.safetensors` and `dir/descriptor.json`.
 * Defaults: 1800 steps, batch 128 images (256 views), seed 0, lr 2e-3 (50 warmup steps, weight
 * decay 1e-4), τ = 0.1, D = 64.
 */
export async function trainDescriptor(dir: string, opts: TrainDescriptorOptions = {}): Promise<TrainDescriptorResult> {
  const wall0 = performance.now();
  const steps = opts.steps ?? DESCRIPTOR_DEFAULT_STEPS;
  const B = opts.batch ?? 128;
  const seed = opts.seed ?? 0;
  const lr = opts.lr ?? 2e-3;
  const tau = opts.temperature ?? 0.1;
  const arch: DescriptorArchitecture = { convs: DEFAULT_DESCRIPTOR_ARCHITECTURE.convs, dim: opts.dim ?? DEFAULT_DESCRIPTOR_ARCHITECTURE.dim };
  const warmupSteps = Math.min(50, steps);
  const weightDecay = 1e-4;
  const ds = loadFashionMnist({ split: 'train' });
  const g = trainingGraph(B, arch, tau);
  const wrt = g.specs.map((s) => s.name);
  const session = await createSession(gradientGraph(g.bytes, { loss: 'loss', wrt, inputShapes: g.shapes }));
  const V = 2 * B;
  const makeBatch = (step: number): TrainBatch => {
    const idx = batchIndices(ds.labels.length, seed, B, step);
    const engine = stepEngine(seed, step, 'aux');
    const x = augmentViews(ds.images.data, [...idx, ...idx], engine, STRONG_AUGMENT);
    return { size: V, inputs: new Map<string, Tensor>([['x', { dims: [V, 1, DESCRIPTOR_SIZE, DESCRIPTOR_SIZE], data: x }]]) };
  };
  await mkdir(dir, { recursive: true });
  const trainingConfig = {
    data: `Fashion-MNIST train split (${ds.labels.length} images, memscope's embedded subset)`,
    loss: `NT-Xent (InfoNCE) over 2 views per image, temperature ${tau}, 2*batch - 1 candidates per view`,
    steps,
    batch: B,
    views: V,
    seed,
    optimizer: { kind: 'AdamW', lr, warmupSteps, weightDecay, betas: [0.9, 0.999], eps: 1e-8 },
    augmentations: STRONG_AUGMENT,
    rng: "stepEngine(seed, step, 'aux') (mt19937), data order batchIndices(n, seed, batch, step)",
  };
  const res = await train({
    params: initParams(g.specs, seed),
    steps,
    makeBatch,
    step: async (batch, params) => {
      const feeds: Record<string, Feed> = { x: batch.inputs.get('x')! };
      for (const s of g.specs) feeds[s.name] = { dims: s.dims, data: params.get(s.name)! };
      const out = await session.run(feeds);
      return { loss: out['loss']!.data[0]!, grads: new Map(wrt.map((n) => [n, out[`grad/${n}`]!.data])) };
    },
    optimizer: { lr, weightDecay, warmupSteps },
    checkpointDir: join(dir, 'checkpoints'),
    checkpointEvery: 250,
    // everything but the step count: a run may be extended by resuming with more steps
    config: { kind: 'descriptor', arch, ...trainingConfig, steps: undefined },
    progress: opts.progress ?? false,
  });
  await session.release();
  const weights = new Map<string, Tensor>([...res.params].map(([k, v]) => [k, { dims: g.specs.find((s) => s.name === k)!.dims, data: v }]));
  await writeSafetensors(join(dir, 'weights.safetensors'), weights, { format: DESCRIPTOR_FORMAT });

  // evaluation on the 2k test images
  const test = loadFashionMnist({ split: 'test' });
  const inf = await createSession(descriptorInferenceGraph(res.params, arch));
  const embed: EmbedFn = async (x) => {
    const n = x.dims[0]!;
    const out = new Float32Array(n * arch.dim);
    for (let s = 0; s < n; s += 500) {
      const e = Math.min(n, s + 500);
      const r = await inf.run({ x: { dims: [e - s, 1, DESCRIPTOR_SIZE, DESCRIPTOR_SIZE], data: x.data.subarray(s * 784, e * 784) } });
      out.set(r['embedding']!.data, s * arch.dim);
    }
    return { dims: [n, arch.dim], data: out };
  };
  const strong = await evaluateCopyRetrieval(embed, test.images, { cfg: STRONG_AUGMENT, seed: EVAL_SEEDS.strong });
  const mild = await evaluateCopyRetrieval(embed, test.images, { cfg: MILD_AUGMENT, seed: EVAL_SEEDS.mild });
  await inf.release();
  const trainMean = new Float32Array(784);
  for (let i = 0; i < ds.labels.length; i++) for (let k = 0; k < 784; k++) trainMean[k] = trainMean[k]! + ds.images.data[i * 784 + k]! / ds.labels.length;
  const pixelBaseline = {
    strong: await evaluateCopyRetrieval(pixelEmbed(trainMean), test.images, { cfg: STRONG_AUGMENT, seed: EVAL_SEEDS.strong }),
    mild: await evaluateCopyRetrieval(pixelEmbed(trainMean), test.images, { cfg: MILD_AUGMENT, seed: EVAL_SEEDS.mild }),
  };
  const h = res.lossHistory;
  const meanOf = (a: number[]): number => a.reduce((s, v) => s + v, 0) / Math.max(1, a.length);
  const trainedSteps = res.step - (res.resumedFrom ?? 0);
  const result: TrainDescriptorResult = {
    strong,
    mild,
    pixelBaseline,
    trainSeconds: res.elapsedSeconds,
    viewsPerSecond: (res.step * V) / res.elapsedSeconds,
    wallSeconds: (performance.now() - wall0) / 1000,
    finalLoss: meanOf(h.slice(-50)),
    initialLoss: meanOf(h.slice(0, 10)),
  };
  await writeJsonAtomic(join(dir, 'descriptor.json'), {
    format: DESCRIPTOR_FORMAT,
    version: 1,
    architecture: {
      convs: arch.convs,
      dim: arch.dim,
      parameters: countParams(g.specs),
      description: `input [B,1,28,28]; ${arch.convs.map((c, i) => `conv${i} 3x3 ${c.cout}ch stride ${c.stride} pad 1 + ReLU`).join('; ')}; flatten; linear 'head' to ${arch.dim}; z / sqrt(sum z^2 + ${L2_EPS})`,
    },
    preprocessing: LEARNED_PREPROCESSING,
    training: { ...trainingConfig, lossInitial: result.initialLoss, lossFinal: result.finalLoss },
    metrics: {
      evaluation:
        'memscope test split (2000 images): each image augmented once (seed in evalSeeds), embedded, and searched among the 2000 clean test embeddings by cosine; ' +
        'top1 = nearest is the original; meanCosCopy = mean cos(f(aug x), f(x)); meanCosNearestOther = mean max over other images j of cos(f(aug x), f(x_j)); ' +
        'meanCosNearestOtherClean = mean max over j != i of cos(f(x_i), f(x_j))',
      evalSeeds: EVAL_SEEDS,
      mildAugmentations: MILD_AUGMENT,
      strong,
      mild,
      pixelBaseline: { description: 'mean-centred pixel cosine (training-set mean image), same queries', ...pixelBaseline },
    },
    timing: {
      trainSeconds: result.trainSeconds,
      stepsThisSession: trainedSteps,
      viewsPerSecond: result.viewsPerSecond,
      imagesPerSecond: result.viewsPerSecond / 2,
      wallSeconds: (performance.now() - wall0) / 1000,
      machine: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}`,
      threads: defaultThreads(),
      note: 'images/s counts source images (2 views each) through forward + backward + AdamW',
    },
  });
  return result;
}
