/**
 * The randomness of training, all of it a pure function of `(seed, step)` (or `(seed, epoch)`),
 * so a resumed run needs no stored random stream:
 *
 * - **Data order**: epoch `e` visits the training set in the order of a permutation drawn by
 *   Fisher–Yates with mulberry32 keyed by `(seed, e)`; batches are consecutive slices of the
 *   endless concatenation of these permutations (a batch may straddle two epochs). The batch of
 *   step s starts at position `s · batchSize` of that stream ({@link batchIndices}); the streaming
 *   {@link DataOrder} holds `(epoch, position)` as its whole state.
 * - **Per-step generators**: step s draws its noise from torch-compatible generators seeded with
 *   `key = seed · 1_000_003 + s + offset(stream)` ({@link stepSeed}), one stream each for the
 *   Gaussian noise ε (`'noise'`, offset 0), the noise levels (`'level'`, offset 2³⁰) and anything
 *   else a model needs, e.g. condition dropout (`'aux'`, offset 2·2³⁰). torch's CPU generator
 *   seeds its mt19937 with the low 32 bits of the seed, so within one run (one seed) every
 *   `(step, stream)` has its own stream for steps below 2³⁰, and across runs the keys are
 *   distinct for seeds below 1073 and steps below 1_000_003 (2³⁰ / 1_000_003 ≈ 1073); larger
 *   seeds may share a stream with another seed's step, which is harmless but not independent.
 *   Each draw equals its torch counterpart with `g = torch.Generator().manual_seed(key)`.
 * - **Noise levels**: VP ε-prediction draws t uniformly from 0..T−1
 *   (`torch.randint(0, T, (B,), generator=g)`: one mt19937 word per row, `word mod T`);
 *   EDM-style draws `ln σ ~ N(P_mean, P_std²)` (default −1.2, 1.2; `torch.randn([B], generator=g)`)
 *   and maps σ onto the discrete VP schedule (see {@link EdmLevelMapping}).
 * - **Forward process** (SPEC §0): `x_t = √ᾱ_t · x + √(1 − ᾱ_t) · ε`, in float32 as diffusers'
 *   `DDPMScheduler.add_noise`.
 * - **Loss weight** λ(σ) (SPEC §5.6b): 1, or ρ for σ inside a band `[σ_lo, σ_hi]`.
 */
import { mulberry32 } from '../random/mulberry32.ts';
import { Mt19937, TorchGenerator } from '../random/torch.ts';
import { sigmaFromAlphaBar } from '../schedules/betas.ts';
import type { Tensor } from '../tensor/tensor.ts';

const f = Math.fround;

/** The multiplier of the seed in per-step generator keys: `key = seed · STEP_KEY_MULTIPLIER + step + offset`. */
export const STEP_KEY_MULTIPLIER = 1_000_003;

/** Which per-step random stream: ε (`'noise'`), noise levels (`'level'`) or model-specific extras (`'aux'`). */
export type NoiseStream = 'noise' | 'level' | 'aux';

const STREAM_OFFSET: Readonly<Record<NoiseStream, bigint>> = { noise: 0n, level: 1n << 30n, aux: 2n << 30n };

function checkSeedStep(what: string, seed: number, step: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`${what}: seed must be a non-negative safe integer, got ${seed}`);
  if (!Number.isSafeInteger(step) || step < 0) throw new Error(`${what}: step must be a non-negative integer, got ${step}`);
}

/**
 * The generator key of `(seed, step, stream)`: `(seed · 1_000_003 + step + offset) mod 2⁶⁴`,
 * offsets 0, 2³⁰, 2·2³⁰ for `'noise'`, `'level'`, `'aux'` (a bigint; torch's generator uses its
 * low 32 bits).
 */
export function stepSeed(seed: number, step: number, stream: NoiseStream = 'noise'): bigint {
  checkSeedStep('stepSeed', seed, step);
  const off = STREAM_OFFSET[stream];
  if (off === undefined) throw new Error(`stepSeed: unknown stream "${String(stream)}"`);
  return BigInt.asUintN(64, BigInt(seed) * BigInt(STEP_KEY_MULTIPLIER) + BigInt(step) + off);
}

/** A fresh torch-compatible generator for `(seed, step, stream)`: `torch.Generator().manual_seed(stepSeed(...))`. */
export function stepGenerator(seed: number, step: number, stream: NoiseStream = 'noise'): TorchGenerator {
  return new TorchGenerator(stepSeed(seed, step, stream));
}

/** The raw mt19937 engine behind {@link stepGenerator} (for integer and uniform draws). */
export function stepEngine(seed: number, step: number, stream: NoiseStream = 'noise'): Mt19937 {
  return new Mt19937(Number(stepSeed(seed, step, stream) & 0xffffffffn));
}

/**
 * `count` integers uniform in `[0, high)`, as `torch.randint(0, high, (count,), generator=g)`
 * (high < 2³²): one 32-bit word per draw, reduced modulo `high`.
 */
export function randintFrom(engine: Mt19937, high: number, count: number): Uint32Array {
  if (!Number.isInteger(high) || high < 1 || high > 0xffffffff) throw new Error(`randint: high must be an integer in [1, 2**32 - 1], got ${high}`);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = engine.nextU32() % high;
  return out;
}

/**
 * `count` uniforms in [0, 1), as `torch.rand((count,), generator=g)` (float32: the low 24 bits
 * of one word each, times 2⁻²⁴). For condition dropout: drop row i when `u[i] < p`.
 */
export function uniformFrom(engine: Mt19937, count: number): Float64Array {
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = (engine.nextU32() & 0xffffff) / 16777216;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Data order

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The mulberry32 seed of epoch `epoch` under `seed` (murmur3 finaliser mixing of seed and epoch). */
function epochKey(seed: number, epoch: number): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 4294967296) >>> 0;
  return fmix32(lo ^ fmix32((hi + 0x9e3779b9) ^ fmix32(epoch + 0x7f4a7c15)));
}

/**
 * The visiting order of epoch `epoch`: a permutation of `0..n−1` drawn by Fisher–Yates
 * (`for i = n−1..1: j = ⌊u·(i+1)⌋, swap(i, j)`) with mulberry32 keyed by `(seed, epoch)`.
 */
export function epochPermutation(n: number, seed: number, epoch: number): Uint32Array {
  if (!Number.isSafeInteger(n) || n < 1 || n > 0xffffffff) throw new Error(`epochPermutation: n must be a positive integer, got ${n}`);
  checkSeedStep('epochPermutation', seed, 0);
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new Error(`epochPermutation: epoch must be a non-negative integer, got ${epoch}`);
  const rnd = mulberry32(epochKey(seed, epoch));
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/** Where a {@link DataOrder} stands: `position` items into the permutation of `epoch`. */
export interface DataOrderState {
  readonly epoch: number;
  readonly position: number;
}

/**
 * A seeded, resumable stream of training-set indices: the permutations of epochs 0, 1, 2, …
 * (see {@link epochPermutation}) concatenated. Its state is `(epoch, position)`; restoring it
 * continues the stream exactly.
 */
export class DataOrder {
  /** Training-set size. */
  readonly n: number;
  /** Seed of the epoch permutations. */
  readonly seed: number;
  private epoch: number;
  private position: number;
  private perm: Uint32Array | null = null;
  private permEpoch = -1;

  /** A stream over `0..n−1` under `seed`, starting at `state` (default epoch 0, position 0). */
  constructor(n: number, seed: number, state: DataOrderState = { epoch: 0, position: 0 }) {
    epochPermutation(1, seed, 0); // validates seed
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`DataOrder: n must be a positive integer, got ${n}`);
    this.n = n;
    this.seed = seed;
    this.epoch = 0;
    this.position = 0;
    this.restore(state);
  }

  /** The next `k` indices (crossing into the next epoch when this one runs out). */
  next(k: number): number[] {
    if (!Number.isSafeInteger(k) || k < 0) throw new Error(`DataOrder.next: k must be a non-negative integer, got ${k}`);
    const out: number[] = [];
    while (out.length < k) {
      if (this.permEpoch !== this.epoch) {
        this.perm = epochPermutation(this.n, this.seed, this.epoch);
        this.permEpoch = this.epoch;
      }
      const take = Math.min(k - out.length, this.n - this.position);
      for (let i = 0; i < take; i++) out.push(this.perm![this.position + i]!);
      this.position += take;
      if (this.position === this.n) {
        this.epoch += 1;
        this.position = 0;
      }
    }
    return out;
  }

  /** The current `(epoch, position)`. */
  state(): DataOrderState {
    return { epoch: this.epoch, position: this.position };
  }

  /** Jump to `(epoch, position)` (position in `0..n−1`). */
  restore(state: DataOrderState): void {
    const { epoch, position } = state;
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new Error(`DataOrder: epoch must be a non-negative integer, got ${epoch}`);
    if (!Number.isSafeInteger(position) || position < 0 || position >= this.n) {
      throw new Error(`DataOrder: position must be an integer in 0..${this.n - 1}, got ${position}`);
    }
    this.epoch = epoch;
    this.position = position;
  }

  /** The state after `items` items from the start: `(⌊items / n⌋, items mod n)`. */
  static stateAt(n: number, items: number): DataOrderState {
    if (!Number.isSafeInteger(items) || items < 0) throw new Error(`DataOrder.stateAt: items must be a non-negative integer, got ${items}`);
    return { epoch: Math.floor(items / n), position: items % n };
  }
}

/**
 * The training-set indices of the batch of 0-based `step`: items `step·batchSize …
 * (step+1)·batchSize − 1` of the {@link DataOrder} stream. A pure function of its arguments.
 */
export function batchIndices(n: number, seed: number, batchSize: number, step: number): number[] {
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new Error(`batchIndices: batchSize must be a positive integer, got ${batchSize}`);
  if (!Number.isSafeInteger(step) || step < 0) throw new Error(`batchIndices: step must be a non-negative integer, got ${step}`);
  return new DataOrder(n, seed, DataOrder.stateAt(n, step * batchSize)).next(batchSize);
}

// ---------------------------------------------------------------------------------------------
// Noise levels

/**
 * How an EDM-style σ becomes a VP timestep (σ_t = √((1 − ᾱ_t)/ᾱ_t) increases with t):
 * - `'nearest'` (default): the integer t whose ln σ_t is nearest to ln σ; the row is then noised
 *   at that timestep's σ_t and ᾱ_t, so the model's t input and the noise agree exactly;
 * - `'interpolate'`: a fractional t by linear interpolation of ln σ between the two neighbouring
 *   timesteps (k-diffusion's `sigma_to_t`), σ kept as drawn and ᾱ = 1/(1 + σ²).
 * Both clamp σ to [σ_0, σ_{T−1}] first (t to [0, T − 1]).
 */
export type EdmLevelMapping = 'nearest' | 'interpolate';

/** How noise levels are drawn. */
export type NoiseLevelSampling =
  /** VP ε-prediction: t uniform in 0..T−1. */
  | { readonly kind: 'vp' }
  /** EDM-style: ln σ ~ N(pMean, pStd²) (defaults −1.2, 1.2), mapped onto the schedule. */
  | { readonly kind: 'edm'; readonly pMean?: number; readonly pStd?: number; readonly mapping?: EdmLevelMapping };

/** The noise level of each batch row. */
export interface NoiseLevels {
  /** Timestep per row: an integer, or fractional for EDM `'interpolate'`. */
  readonly t: Float64Array;
  /** ᾱ per row (the schedule's float32 value at integer t). */
  readonly alphaBar: Float64Array;
  /** σ = √((1 − ᾱ)/ᾱ) per row. */
  readonly sigma: Float64Array;
}

/** The VP timestep of `sigma` on a schedule's increasing ln σ table (see {@link EdmLevelMapping}). */
export function sigmaToTimestep(sigma: number, logSigmas: ArrayLike<number>, mapping: EdmLevelMapping = 'nearest'): number {
  const T = logSigmas.length;
  if (T === 0) throw new Error('sigmaToTimestep: empty schedule');
  if (!(sigma > 0)) throw new Error(`sigmaToTimestep: sigma must be > 0, got ${sigma}`);
  const ls = Math.log(sigma);
  if (ls <= logSigmas[0]!) return 0;
  if (ls >= logSigmas[T - 1]!) return T - 1;
  // largest lo with logSigmas[lo] <= ls (the table is increasing)
  let lo = 0;
  let hi = T - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (logSigmas[mid]! <= ls) lo = mid;
    else hi = mid;
  }
  const a = logSigmas[lo]!;
  const b = logSigmas[hi]!;
  if (mapping === 'interpolate') return b === a ? lo : lo + (ls - a) / (b - a);
  if (mapping !== 'nearest') throw new Error(`sigmaToTimestep: mapping must be 'nearest' or 'interpolate', got ${String(mapping)}`);
  return ls - a <= b - ls ? lo : hi;
}

/**
 * Draw the noise levels of a batch of `batch` rows at `(seed, step)` from the `'level'` stream:
 * VP: `t = torch.randint(0, T, (B,), generator=g)`; EDM: `ln σ = pMean + pStd · torch.randn([B],
 * generator=g)` mapped by {@link sigmaToTimestep}. `alphaBar` is the schedule's ᾱ_0 … ᾱ_{T−1}
 * (e.g. `alphaBars(betas(...))`), decreasing.
 */
export function sampleNoiseLevels(batch: number, alphaBar: ArrayLike<number>, sampling: NoiseLevelSampling, seed: number, step: number): NoiseLevels {
  if (!Number.isSafeInteger(batch) || batch < 0) throw new Error(`sampleNoiseLevels: batch must be a non-negative integer, got ${batch}`);
  const T = alphaBar.length;
  if (T < 1) throw new Error('sampleNoiseLevels: empty ᾱ schedule');
  const t = new Float64Array(batch);
  const ab = new Float64Array(batch);
  const sg = new Float64Array(batch);
  if (sampling.kind === 'vp') {
    const ts = randintFrom(stepEngine(seed, step, 'level'), T, batch);
    for (let i = 0; i < batch; i++) {
      t[i] = ts[i]!;
      ab[i] = alphaBar[ts[i]!]!;
      sg[i] = sigmaFromAlphaBar(ab[i]!);
    }
    return { t, alphaBar: ab, sigma: sg };
  }
  if (sampling.kind !== 'edm') throw new Error(`sampleNoiseLevels: unknown sampling kind "${String((sampling as { kind: unknown }).kind)}"`);
  const pMean = sampling.pMean ?? -1.2;
  const pStd = sampling.pStd ?? 1.2;
  const mapping = sampling.mapping ?? 'nearest';
  if (!Number.isFinite(pMean) || !(pStd >= 0)) throw new Error(`sampleNoiseLevels: need finite pMean and pStd >= 0, got ${pMean}, ${pStd}`);
  const logSigmas = new Float64Array(T);
  for (let i = 0; i < T; i++) {
    logSigmas[i] = Math.log(sigmaFromAlphaBar(alphaBar[i]!));
    if (i > 0 && !(logSigmas[i]! > logSigmas[i - 1]!)) throw new Error(`sampleNoiseLevels: ᾱ must be strictly decreasing (at t = ${i})`);
  }
  const z = stepGenerator(seed, step, 'level').randn([batch]);
  const sMin = Math.exp(logSigmas[0]!);
  const sMax = Math.exp(logSigmas[T - 1]!);
  for (let i = 0; i < batch; i++) {
    const sigma = Math.exp(pMean + pStd * z[i]!);
    const ti = sigmaToTimestep(sigma, logSigmas, mapping);
    t[i] = ti;
    if (mapping === 'nearest') {
      ab[i] = alphaBar[ti]!;
      sg[i] = sigmaFromAlphaBar(ab[i]!);
    } else {
      const s = Math.min(sMax, Math.max(sMin, sigma));
      sg[i] = s;
      ab[i] = 1 / (1 + s * s);
    }
  }
  return { t, alphaBar: ab, sigma: sg };
}

// ---------------------------------------------------------------------------------------------
// Loss weights and the forward process

/** Under-train a band of noise levels (SPEC §5.6b): λ(σ) = ρ for σ_lo ≤ σ ≤ σ_hi. */
export interface LossBand {
  readonly sigmaLo: number;
  readonly sigmaHi: number;
  /** The weight inside the band, 0 ≤ ρ < 1 (the brief's "ρ < 1"; ρ = 1 is allowed and a no-op). */
  readonly rho: number;
}

/** The per-σ loss weight λ(σ): 1 everywhere (default), or ρ inside a {@link LossBand} (bounds inclusive). */
export function lossWeight(sigma: number, band?: LossBand | null): number {
  if (band === undefined || band === null) return 1;
  checkBand(band);
  return sigma >= band.sigmaLo && sigma <= band.sigmaHi ? band.rho : 1;
}

function checkBand(b: LossBand): void {
  if (!(b.sigmaLo >= 0 && b.sigmaHi >= b.sigmaLo)) throw new Error(`lossWeight: band needs 0 <= sigmaLo <= sigmaHi, got [${b.sigmaLo}, ${b.sigmaHi}]`);
  if (!(b.rho >= 0 && b.rho <= 1)) throw new Error(`lossWeight: band rho must be in [0, 1], got ${b.rho}`);
}

/** Options of {@link noiseBatch}. */
export interface NoiseBatchOptions {
  /** Run seed. */
  readonly seed: number;
  /** 0-based training step (keys the generators). */
  readonly step: number;
  /** The schedule's ᾱ_0 … ᾱ_{T−1}. */
  readonly alphaBar: ArrayLike<number>;
  /** How noise levels are drawn (default VP: t uniform). */
  readonly sampling?: NoiseLevelSampling;
  /** Loss-weight band (default none: λ = 1). */
  readonly band?: LossBand | null;
}

/** A noised training batch for ε-prediction. */
export interface NoisedBatch extends NoiseLevels {
  /** The noise ε ~ N(0, I), shaped like x (the regression target of ε-prediction). */
  readonly eps: Tensor;
  /** x_t = √ᾱ·x + √(1 − ᾱ)·ε per row. */
  readonly xt: Tensor;
  /** fl32(√ᾱ) per row, the factor used for x_t (feed as `sqrt_alpha_bar` `[B,1,1,1]` to a training graph that noises x itself). */
  readonly sqrtAlphaBar: Float32Array;
  /** fl32(√(1 − ᾱ)) per row (`sqrt_one_minus_alpha_bar`). */
  readonly sqrtOneMinusAlphaBar: Float32Array;
  /** λ(σ) per row (see {@link lossWeight}). */
  readonly weight: Float64Array;
}

/**
 * Noise a clean batch `x` `[B, ...]` at `(seed, step)`: levels from {@link sampleNoiseLevels}
 * (`'level'` stream), `ε = torch.randn(x.shape, generator=g)` (`'noise'` stream), and
 * `x_t = fl(fl(√ᾱ)·x) + fl(fl(√(1 − ᾱ))·ε)` in float32, as diffusers' `add_noise`.
 */
export function noiseBatch(x: Tensor, opts: NoiseBatchOptions): NoisedBatch {
  if (x.dims.length < 1) throw new Error('noiseBatch: x must have a batch dimension');
  const B = x.dims[0]!;
  const levels = sampleNoiseLevels(B, opts.alphaBar, opts.sampling ?? { kind: 'vp' }, opts.seed, opts.step);
  if (opts.band !== undefined && opts.band !== null) checkBand(opts.band);
  const eps = stepGenerator(opts.seed, opts.step, 'noise').randn(x.dims);
  const xt = new Float32Array(x.data.length);
  const r = B === 0 ? 0 : x.data.length / B;
  const weight = new Float64Array(B);
  const sqrtAlphaBar = new Float32Array(B);
  const sqrtOneMinusAlphaBar = new Float32Array(B);
  for (let b = 0; b < B; b++) {
    const a = f(levels.alphaBar[b]!);
    const sa = f(Math.sqrt(a));
    const s1a = f(Math.sqrt(f(1 - a)));
    sqrtAlphaBar[b] = sa;
    sqrtOneMinusAlphaBar[b] = s1a;
    for (let i = b * r; i < (b + 1) * r; i++) xt[i] = f(f(sa * x.data[i]!) + f(s1a * eps[i]!));
    weight[b] = lossWeight(levels.sigma[b]!, opts.band);
  }
  return { ...levels, eps: { dims: [...x.dims], data: eps }, xt: { dims: [...x.dims], data: xt }, sqrtAlphaBar, sqrtOneMinusAlphaBar, weight };
}
