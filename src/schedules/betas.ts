/**
 * Noise schedules β_t and ᾱ_t = ∏_{i≤t}(1 − β_i) (SPEC §0), computed as diffusers computes them
 * in every scheduler's `__init__` (`scheduling_ddim.py`, `scheduling_dpmsolver_multistep.py`,
 * `scheduling_euler_discrete.py`, `scheduling_pndm.py`):
 *
 * - `linear`: `torch.linspace(beta_start, beta_end, T, dtype=float32)`;
 * - `scaled_linear`: `torch.linspace(√beta_start, √beta_end, T, dtype=float32) ** 2`;
 * - `squaredcos_cap_v2`: `betas_for_alpha_bar(T)` (float64 in Python, `max_beta = 0.999`, then
 *   stored as float32);
 * - `trained_betas`: stored as float32;
 * - `alphas = 1.0 − betas` (float32), `alphas_cumprod = torch.cumprod(alphas)`: torch's CPU
 *   cumprod accumulates in float64 and rounds each output to float32.
 *
 * Every array returned here is a `Float64Array` whose values are exactly the float32 numbers that
 * diffusers holds (each rounded with `Math.fround`), so callers can do their own arithmetic in
 * float64 or emulate float32 without guessing where rounding happened.
 *
 * torch's float32 `linspace` does not compute `start + i·step` naively: its CPU kernel fills
 * vectors of 8 as `base + k·step`, with `base = start + step·i` fused into one FMA in the AVX2
 * build (the default on x86-64). {@link torchLinspaceF32} reproduces the AVX2 build of torch 1.13
 * bit for bit (checked on all 1000 betas of `linear` and `scaled_linear`); torch's portable
 * build differs in the last bit of ~15% of the values, i.e. by ≤ 6e-8 relative.
 */

/** A named β schedule of diffusers (`beta_schedule`). */
export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';

/** The beta schedules memscope supports, in diffusers' spelling. */
export const BETA_SCHEDULES: readonly BetaSchedule[] = ['linear', 'scaled_linear', 'squaredcos_cap_v2'];

/** Options of {@link betas}; the defaults are diffusers' scheduler defaults. */
export interface BetaOptions {
  /** Number of training timesteps T (default 1000). */
  readonly numTrainTimesteps?: number;
  /** β at t = 0 (default 0.0001; Stable Diffusion 0.00085). */
  readonly betaStart?: number;
  /** β at t = T − 1 (default 0.02; Stable Diffusion 0.012). */
  readonly betaEnd?: number;
  /** Explicit betas (`trained_betas`); when given, `schedule`, `betaStart` and `betaEnd` are ignored. */
  readonly trainedBetas?: readonly number[] | null;
}

const f32 = Math.fround;
const F32_BUF = new Float32Array(1);
const U32_BUF = new Uint32Array(F32_BUF.buffer);

/** The float32 neighbour of float32 `x` toward +∞ (`up`) or −∞. */
function nextF32(x: number, up: boolean): number {
  if (x === 0) return up ? 1.401298464324817e-45 : -1.401298464324817e-45;
  F32_BUF[0] = x;
  U32_BUF[0] = U32_BUF[0]! + ((x > 0) === up ? 1 : -1);
  return F32_BUF[0]!;
}

/** `fmaf(a, b, c)`: a·b + c with ONE rounding to float32 (a, b, c float32 values). */
export function fmaF32(a: number, b: number, c: number): number {
  const p = a * b; // exact: 24 + 24 significant bits fit in a double
  const s = p + c;
  const bb = s - p;
  const err = p - (s - bb) + (c - bb); // TwoSum: p + c = s + err exactly
  const r = f32(s);
  if (err === 0 || r === s) return r;
  // s lies strictly between two float32 values; double rounding can only go wrong when s is
  // exactly their midpoint, and then the sign of err decides.
  const other = nextF32(r, s > r);
  if ((r + other) / 2 !== s) return r;
  return err > 0 ? Math.max(r, other) : Math.min(r, other);
}

/**
 * `torch.linspace(start, end, steps, dtype=torch.float32)` as torch 1.13's AVX2 CPU kernel
 * computes it (see the module note), returned as float32 values in a Float64Array.
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float64Array {
  if (!Number.isInteger(steps) || steps < 0) throw new Error(`torchLinspaceF32: steps must be a non-negative integer, got ${steps}`);
  const out = new Float64Array(steps);
  if (steps === 0) return out;
  const s = f32(start);
  const e = f32(end);
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const scalarAt = (i: number): number => (i < halfway ? fmaF32(step, i, s) : fmaF32(-step, steps - i - 1, e));
  const V = 8;
  const vecEnd = Math.floor(steps / (2 * V)) * (2 * V);
  let i = 0;
  for (; i < vecEnd; i += V) {
    const base = scalarAt(i);
    for (let k = 0; k < V; k++) out[i + k] = f32(base + f32(k * step));
  }
  for (; i < steps; i++) out[i] = scalarAt(i);
  return out;
}

/** diffusers `betas_for_alpha_bar(T, max_beta=0.999, alpha_transform_type="cosine")` (the `squaredcos_cap_v2` schedule), in float64. */
function cosineBetas(T: number): Float64Array {
  const ab = (t: number): number => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
  const out = new Float64Array(T);
  for (let i = 0; i < T; i++) out[i] = Math.min(1 - ab((i + 1) / T) / ab(i / T), 0.999);
  return out;
}

/**
 * β_0 … β_{T−1} of a named schedule, exactly as the float32 tensor `self.betas` of diffusers'
 * `DDIMScheduler` / `DPMSolverMultistepScheduler` / `EulerDiscreteScheduler` / `PNDMScheduler`.
 * Defaults: T = 1000, β_start = 0.0001, β_end = 0.02 (diffusers' defaults; SD uses
 * `scaled_linear` 0.00085 → 0.012).
 */
export function betas(schedule: BetaSchedule, opts: BetaOptions = {}): Float64Array {
  const T = opts.numTrainTimesteps ?? 1000;
  if (!Number.isInteger(T) || T < 1) throw new Error(`betas: numTrainTimesteps must be a positive integer, got ${T}`);
  let raw: Float64Array;
  if (opts.trainedBetas !== undefined && opts.trainedBetas !== null) {
    if (opts.trainedBetas.length !== T) {
      throw new Error(`betas: trainedBetas has ${opts.trainedBetas.length} values, expected numTrainTimesteps = ${T}`);
    }
    raw = Float64Array.from(opts.trainedBetas);
  } else {
    const b0 = opts.betaStart ?? 0.0001;
    const b1 = opts.betaEnd ?? 0.02;
    switch (schedule) {
      case 'linear':
        raw = torchLinspaceF32(b0, b1, T);
        break;
      case 'scaled_linear': {
        raw = torchLinspaceF32(Math.sqrt(b0), Math.sqrt(b1), T);
        for (let i = 0; i < T; i++) raw[i] = raw[i]! * raw[i]!; // `** 2` is x·x in torch
        break;
      }
      case 'squaredcos_cap_v2':
        raw = cosineBetas(T);
        break;
      default:
        throw new Error(`betas: unknown beta schedule "${String(schedule)}"; expected one of ${BETA_SCHEDULES.join(', ')}`);
    }
  }
  const out = new Float64Array(T);
  for (let i = 0; i < T; i++) {
    const b = f32(raw[i]!);
    if (!(b > 0 && b < 1)) throw new Error(`betas: β_${i} = ${raw[i]} is outside (0, 1)`);
    out[i] = b;
  }
  return out;
}

/**
 * ᾱ_t = ∏_{i≤t}(1 − β_i): diffusers' `alphas_cumprod = torch.cumprod(1.0 − betas)` — `1 − β` in
 * float32, the running product in float64 (torch's CPU cumprod accumulator), each ᾱ_t rounded to
 * float32. Equal bit for bit to diffusers' tensor when `betas` are its float32 betas.
 */
export function alphaBars(b: ArrayLike<number>): Float64Array {
  const out = new Float64Array(b.length);
  let acc = 1;
  for (let i = 0; i < b.length; i++) {
    acc *= f32(1 - f32(b[i]!));
    out[i] = f32(acc);
  }
  return out;
}

/** σ = √((1 − ᾱ)/ᾱ), the variance-exploding noise level of ᾱ (SPEC §0), in float64. */
export function sigmaFromAlphaBar(alphaBar: number): number {
  return Math.sqrt((1 - alphaBar) / alphaBar);
}

/** ᾱ = 1/(1 + σ²), the inverse of {@link sigmaFromAlphaBar}, in float64. */
export function alphaBarFromSigma(sigma: number): number {
  return 1 / (1 + sigma * sigma);
}

/**
 * The float32 σ table diffusers builds for DPM-Solver and Euler:
 * `((1 − alphas_cumprod) / alphas_cumprod) ** 0.5` on float32 tensors (each operation rounded to
 * float32).
 */
export function sigmasF32(alphaBar: ArrayLike<number>): Float64Array {
  const out = new Float64Array(alphaBar.length);
  for (let i = 0; i < alphaBar.length; i++) {
    const a = f32(alphaBar[i]!);
    out[i] = f32(Math.sqrt(f32(f32(1 - a) / a)));
  }
  return out;
}
