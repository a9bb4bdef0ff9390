/**
 * Inference grids: which training timesteps (and noise levels) each sampler visits, exactly as
 * the `set_timesteps` of diffusers' `DDIMScheduler`, `DPMSolverMultistepScheduler` and
 * `EulerDiscreteScheduler` computes them (numpy float64 arithmetic, `.round()` half-to-even).
 *
 * With T = 1000 and 50 steps (SPEC §0):
 * - DDIM `leading`: `arange(n)·(T//n)` reversed, + `steps_offset` → 980, …, 0 (981, …, 1 with
 *   offset 1); `linspace`: `linspace(0, T−1, n).round()` → 999, 979, 958, 938, …, 20, 0;
 *   `trailing`: `round(arange(T, 0, −T/n)) − 1` → 999, 979, …, 19.
 * - DPM-Solver: its own grid of n + 1 points with the last dropped: `linspace` → 999, 979, 959, …,
 *   40, 20; `leading` uses `T//(n+1)` → 950, 931, …, 19 (951, …, 20 with offset 1); `trailing` as DDIM.
 * - Euler: like DDIM but float32 (`linspace` → 999.0, 978.6122, …, 0.0), with σ interpolated
 *   linearly in t from the float32 σ table and a final σ = 0.
 *
 * `steps_offset` only shifts `leading` grids. The grid functions return what diffusers returns,
 * quirks included (`leading` + offset 1 with n = T reaches t = T; `trailing` yields n + 1 points
 * ending at t = −1 for 62 step counts ≤ 1000, e.g. 61 and 103, because `np.arange` with a float
 * step overshoots); the `*Plan` functions used by the samplers reject such grids with a clear error.
 */
import { alphaBars, betas, sigmasF32 } from './betas.ts';
import {
  resolveDdimConfig,
  resolveDpmSolverConfig,
  resolveEulerConfig,
  resolvePndmConfig,
  type PndmConfig,
  type DdimConfig,
  type DpmSolverConfig,
  type EulerConfig,
  type ResolvedCommon,
  type SchedulerConfig,
  type SchedulerConfigInput,
} from './config.ts';

const f32 = Math.fround;

type AnyConfig = SchedulerConfigInput | SchedulerConfig;

// ---------------------------------------------------------------------------------------------
// numpy 1.24 primitives

/** numpy's `round` (`rint`): to the nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** `np.linspace(start, stop, num)` in float64 (`i·step + start`, the last point set to `stop`). */
export function npLinspace(start: number, stop: number, num: number): Float64Array {
  const y = new Float64Array(num);
  const div = num - 1;
  const delta = stop - start;
  const step = div > 0 ? delta / div : NaN;
  for (let i = 0; i < num; i++) {
    if (div > 0) y[i] = step === 0 ? (i / div) * delta + start : i * step + start;
    else y[i] = i * delta + start;
  }
  if (num > 1) y[num - 1] = stop;
  return y;
}

/**
 * `np.arange(start, stop, step)` with a float step, as numpy fills it: length
 * `ceil((stop − start)/step)`, values `start`, `start + step`, then `start + i·((start + step) − start)`.
 */
export function npArange(start: number, stop: number, step: number): Float64Array {
  const len = Math.max(0, Math.ceil((stop - start) / step));
  const out = new Float64Array(len);
  if (len > 0) out[0] = start;
  if (len > 1) out[1] = start + step;
  const delta = out.length > 1 ? out[1]! - start : 0;
  for (let i = 2; i < len; i++) out[i] = start + i * delta;
  return out;
}

/** `np.interp(x, arange(fp.length), fp)` (numpy's formula `slope·(x − x_j) + f_j`; clamps outside). */
export function npInterpIndex(x: number, fp: ArrayLike<number>): number {
  const n = fp.length;
  if (Number.isNaN(x)) return NaN;
  if (x <= 0) return fp[0]!;
  if (x >= n - 1) return fp[n - 1]!;
  const j = Math.floor(x);
  if (x === j) return fp[j]!;
  const slope = fp[j + 1]! - fp[j]!;
  return slope * (x - j) + fp[j]!;
}

// ---------------------------------------------------------------------------------------------
// schedules

/** ᾱ_t (float32 values) of a resolved config. */
export function configAlphaBars(c: ResolvedCommon): Float64Array {
  return alphaBars(
    betas(c.betaSchedule, {
      numTrainTimesteps: c.numTrainTimesteps,
      betaStart: c.betaStart,
      betaEnd: c.betaEnd,
      trainedBetas: c.trainedBetas,
    }),
  );
}

function checkSteps(n: number, T: number, who: string): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${who}: steps must be a positive integer, got ${n}`);
  if (n > T) throw new Error(`${who}: steps = ${n} cannot exceed num_train_timesteps = ${T}`);
}

function leading(T: number, n: number, offset: number): number[] {
  const ratio = Math.floor(T / n);
  const out: number[] = [];
  for (let i = n - 1; i >= 0; i--) out.push(i * ratio + offset);
  return out;
}

function trailing(start: number, T: number, n: number): number[] {
  return Array.from(npArange(start, 0, -(T / n)), (v) => roundHalfEven(v) - 1);
}

// ---------------------------------------------------------------------------------------------
// DDIM

function ddimGrid(c: DdimConfig, n: number): number[] {
  const T = c.numTrainTimesteps;
  switch (c.timestepSpacing) {
    case 'linspace':
      return Array.from(npLinspace(0, T - 1, n), roundHalfEven).reverse();
    case 'leading':
      return leading(T, n, c.stepsOffset);
    case 'trailing':
      return trailing(T, T, n);
  }
}

/**
 * `DDIMScheduler.set_timesteps(n).timesteps` for a config (DDIM defaults for absent keys).
 * Integers; may contain out-of-range values where diffusers' does (see the module note).
 */
export function ddimTimesteps(config: AnyConfig, n: number): number[] {
  const c = resolveDdimConfig(config);
  checkSteps(n, c.numTrainTimesteps, 'ddimTimesteps');
  return ddimGrid(c, n);
}

/** What the DDIM sampler needs per step. */
export interface DdimPlan {
  readonly config: DdimConfig;
  readonly timesteps: readonly number[];
  /** t − T//n for every spacing (diffusers' `prev_timestep`; negative = the final ᾱ). */
  readonly prevTimesteps: readonly number[];
  /** ᾱ_t (float32 values). */
  readonly alphaBar: readonly number[];
  /** ᾱ_{t_prev} (float32 values): `alphas_cumprod[prev]`, or 1 / ᾱ_0 (`set_alpha_to_one`) when prev < 0. */
  readonly alphaBarPrev: readonly number[];
}

/**
 * The DDIM grid with ᾱ_t and ᾱ_prev per step. `prev = t − T//n` for EVERY spacing, as diffusers'
 * `DDIMScheduler.step` computes it (so `linspace`/`trailing` grids step to a ᾱ_prev that is not
 * the next grid point's ᾱ: a diffusers quirk kept on purpose). Throws on grids diffusers cannot run
 * (t ≥ T or t < 0, which diffusers would index out of range or wrap to ᾱ_{T−1}).
 */
export function ddimPlan(config: AnyConfig, n: number): DdimPlan {
  const c = resolveDdimConfig(config);
  const T = c.numTrainTimesteps;
  checkSteps(n, T, 'ddim');
  const ts = ddimGrid(c, n);
  if (ts.length !== n) {
    throw new Error(
      `ddim: ${c.timestepSpacing} spacing with steps = ${n} gives ${ts.length} timesteps in diffusers (np.arange overshoot, last t = ${ts[ts.length - 1]}); choose another step count`,
    );
  }
  const bad = ts.find((t) => t < 0 || t >= T);
  if (bad !== undefined) {
    throw new Error(
      `ddim: ${c.timestepSpacing} spacing with steps_offset = ${c.stepsOffset} and steps = ${n} reaches t = ${bad}, outside 0…${T - 1} (diffusers would fail); use fewer steps or steps_offset 0`,
    );
  }
  const ab = configAlphaBars(c);
  const final = c.setAlphaToOne ? 1 : ab[0]!;
  const ratio = Math.floor(T / n);
  const prev = ts.map((t) => t - ratio);
  return {
    config: c,
    timesteps: ts,
    prevTimesteps: prev,
    alphaBar: ts.map((t) => ab[t]!),
    alphaBarPrev: prev.map((p) => (p >= 0 ? ab[p]! : final)),
  };
}

// ---------------------------------------------------------------------------------------------
// DPM-Solver

/** λ clipping of diffusers: the grid ends at `T − searchsorted(flip(λ_t), lambda_min_clipped)`. */
function dpmLastTimestep(c: DpmSolverConfig, ab: Float64Array): number {
  const T = c.numTrainTimesteps;
  if (c.lambdaMinClipped === -Infinity) return T;
  const v = f32(c.lambdaMinClipped);
  let below = 0;
  for (let t = 0; t < T; t++) {
    const a = f32(Math.sqrt(ab[t]!));
    const s = f32(Math.sqrt(f32(1 - ab[t]!)));
    const lam = f32(f32(Math.log(a)) - f32(Math.log(s)));
    if (lam < v) below++;
  }
  return T - below;
}

function dpmGrid(c: DpmSolverConfig, n: number, ab: Float64Array): number[] {
  const T = c.numTrainTimesteps;
  const last = dpmLastTimestep(c, ab);
  switch (c.timestepSpacing) {
    case 'linspace':
      return Array.from(npLinspace(0, last - 1, n + 1), roundHalfEven).reverse().slice(0, n);
    case 'leading': {
      const ratio = Math.floor(last / (n + 1));
      const out: number[] = [];
      for (let i = n; i >= 1; i--) out.push(i * ratio + c.stepsOffset);
      return out;
    }
    case 'trailing':
      return trailing(last, T, n);
  }
}

/** σ at the grid points plus the final σ (0, or σ(0) for `final_sigmas_type: sigma_min`), float32. */
function gridSigmas(ts: readonly number[], sig: Float64Array, finalType: 'zero' | 'sigma_min'): number[] {
  const out = ts.map((t) => f32(npInterpIndex(t, sig)));
  out.push(finalType === 'sigma_min' ? sig[0]! : 0);
  return out;
}

/** `DPMSolverMultistepScheduler.set_timesteps(n).timesteps` (DPM defaults for absent keys). */
export function dpmSolverTimesteps(config: AnyConfig, n: number): number[] {
  const c = resolveDpmSolverConfig(config);
  checkSteps(n, c.numTrainTimesteps, 'dpmSolverTimesteps');
  return dpmGrid(c, n, configAlphaBars(c));
}

/** `DPMSolverMultistepScheduler.sigmas` after `set_timesteps(n)`: one σ per timestep plus the final σ (float32 values). */
export function dpmSolverSigmas(config: AnyConfig, n: number): number[] {
  return dpmSolverPlanUnchecked(resolveDpmSolverConfig(config), n).sigmas as number[];
}

/** What the DPM-Solver sampler needs. */
export interface DpmSolverPlan {
  readonly config: DpmSolverConfig;
  readonly timesteps: readonly number[];
  /** n + 1 float32 σ values; the last is 0 or σ_min. */
  readonly sigmas: readonly number[];
}

function dpmSolverPlanUnchecked(c: DpmSolverConfig, n: number): DpmSolverPlan {
  checkSteps(n, c.numTrainTimesteps, 'dpmpp2m');
  const ab = configAlphaBars(c);
  const ts = dpmGrid(c, n, ab);
  return { config: c, timesteps: ts, sigmas: gridSigmas(ts, sigmasF32(ab), c.finalSigmasType) };
}

/**
 * The DPM-Solver grid and σ table for `n` steps. Throws where diffusers cannot run the grid: more
 * or fewer than n points (trailing overshoot), or a repeated timestep (n = T with `linspace` or
 * `leading`: diffusers then divides by h = 0 and returns NaN, or starts at the wrong index).
 */
export function dpmSolverPlan(config: AnyConfig, n: number): DpmSolverPlan {
  const c = resolveDpmSolverConfig(config);
  const p = dpmSolverPlanUnchecked(c, n);
  const ts = p.timesteps;
  if (ts.length !== n) {
    throw new Error(
      `dpmpp2m: ${c.timestepSpacing} spacing with steps = ${n} gives ${ts.length} timesteps in diffusers (np.arange overshoot, last t = ${ts[ts.length - 1]}); choose another step count`,
    );
  }
  for (let i = 1; i < ts.length; i++) {
    if (ts[i] === ts[i - 1]) {
      throw new Error(
        `dpmpp2m: ${c.timestepSpacing} spacing with steps = ${n} repeats t = ${ts[i]} (diffusers' DPM-Solver divides by a zero step there); use fewer steps`,
      );
    }
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Euler

function eulerGrid(c: EulerConfig, n: number): number[] {
  const T = c.numTrainTimesteps;
  switch (c.timestepSpacing) {
    case 'linspace':
      return Array.from(npLinspace(0, T - 1, n), f32).reverse();
    case 'leading':
      return leading(T, n, 0).map((t) => f32(f32(t) + c.stepsOffset));
    case 'trailing':
      return trailing(T, T, n).map(f32);
  }
}

/** What the Euler sampler needs. */
export interface EulerPlan {
  readonly config: EulerConfig;
  /** Float32 timesteps (fractional for `linspace`), passed to the model as they are. */
  readonly timesteps: readonly number[];
  /** n + 1 float32 σ values, linearly interpolated in t from the σ table; the last is 0 or σ_min. */
  readonly sigmas: readonly number[];
  /**
   * `init_noise_sigma`: max σ for `linspace`/`trailing`, √(max σ² + 1) for `leading` (float32),
   * computed after `set_timesteps` as the pipeline reads it.
   */
  readonly initNoiseSigma: number;
}

function eulerPlanUnchecked(c: EulerConfig, n: number): EulerPlan {
  checkSteps(n, c.numTrainTimesteps, 'euler');
  const ts = eulerGrid(c, n);
  const sigmas = gridSigmas(ts, sigmasF32(configAlphaBars(c)), c.finalSigmasType);
  let max = -Infinity;
  for (const s of sigmas) if (s > max) max = s;
  const init = c.timestepSpacing === 'leading' ? f32(Math.sqrt(f32(f32(max * max) + 1))) : max;
  return { config: c, timesteps: ts, sigmas, initNoiseSigma: init };
}

/** `EulerDiscreteScheduler.set_timesteps(n).timesteps` (float32 values; Euler defaults for absent keys). */
export function eulerTimesteps(config: AnyConfig, n: number): number[] {
  return eulerPlanUnchecked(resolveEulerConfig(config), n).timesteps as number[];
}

/** `EulerDiscreteScheduler.sigmas` after `set_timesteps(n)`: σ per timestep plus the final σ (float32 values). */
export function eulerSigmas(config: AnyConfig, n: number): number[] {
  return eulerPlanUnchecked(resolveEulerConfig(config), n).sigmas as number[];
}

/** `EulerDiscreteScheduler.init_noise_sigma` after `set_timesteps(n)` (float32 value). */
export function eulerInitNoiseSigma(config: AnyConfig, n: number): number {
  return eulerPlanUnchecked(resolveEulerConfig(config), n).initNoiseSigma;
}

/** The Euler grid, σ table and `init_noise_sigma` for `n` steps; throws when diffusers' grid does not have n points. */
export function eulerPlan(config: AnyConfig, n: number): EulerPlan {
  const c = resolveEulerConfig(config);
  const p = eulerPlanUnchecked(c, n);
  if (p.timesteps.length !== n) {
    throw new Error(
      `euler: ${c.timestepSpacing} spacing with steps = ${n} gives ${p.timesteps.length} timesteps in diffusers (np.arange overshoot, last t = ${p.timesteps[p.timesteps.length - 1]}); choose another step count`,
    );
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// PNDM (PLMS)

/** What the PNDM (PLMS) sampler needs. */
export interface PndmPlan {
  readonly config: PndmConfig;
  /**
   * `PNDMScheduler.timesteps` with `skip_prk_steps`: the n grid points, descending, with the second
   * one repeated (n + 1 model calls): e.g. 981, 961, 961, 941, …, 1 for SD's 50 steps.
   */
  readonly timesteps: readonly number[];
  /** T // n: every step goes from t to t − T//n (the repeated step re-does the first one). */
  readonly stepRatio: number;
  /** ᾱ over the training timesteps (float32 values). */
  readonly alphaBars: Float64Array;
  /** ᾱ_prev when t − T//n < 0: 1 (`set_alpha_to_one`) or ᾱ_0. */
  readonly finalAlphaBar: number;
}

/**
 * The PNDM grid (`PNDMScheduler.set_timesteps` with `skip_prk_steps`): `_timesteps` ascending by the
 * spacing (`leading`: i·(T//n) + steps_offset; `linspace`: round(linspace(0, T−1, n)); `trailing`:
 * round(arange(T, 0, −T/n)) reversed − 1), then `[_ts[:-1], _ts[-2:-1], _ts[-1:]]` reversed.
 */
export function pndmPlan(config: AnyConfig, n: number): PndmPlan {
  const c = resolvePndmConfig(config);
  const T = c.numTrainTimesteps;
  checkSteps(n, T, 'pndm');
  let asc: number[];
  switch (c.timestepSpacing) {
    case 'linspace':
      asc = Array.from(npLinspace(0, T - 1, n), roundHalfEven);
      break;
    case 'leading': {
      const r = Math.floor(T / n);
      asc = Array.from({ length: n }, (_, i) => i * r + c.stepsOffset);
      break;
    }
    case 'trailing':
      asc = Array.from(npArange(T, 0, -(T / n)), roundHalfEven).reverse().map((t) => t - 1);
      break;
  }
  if (asc.length !== n) throw new Error(`pndm: ${c.timestepSpacing} spacing with steps = ${n} gives ${asc.length} timesteps in diffusers; choose another step count`);
  const bad = asc.find((t) => t < 0 || t >= T);
  if (bad !== undefined) throw new Error(`pndm: ${c.timestepSpacing} spacing with steps_offset = ${c.stepsOffset} and steps = ${n} reaches t = ${bad}, outside 0…${T - 1} (diffusers would fail); use fewer steps or steps_offset 0`);
  const plms = [...asc.slice(0, -1), ...asc.slice(-2, -1), ...asc.slice(-1)].reverse();
  const ab = configAlphaBars(c);
  return { config: c, timesteps: plms, stepRatio: Math.floor(T / n), alphaBars: ab, finalAlphaBar: c.setAlphaToOne ? 1 : ab[0]! };
}

/** `PNDMScheduler.set_timesteps(n).timesteps` (PLMS, `skip_prk_steps`; PNDM defaults for absent keys): n + 1 values. */
export function pndmTimesteps(config: AnyConfig, n: number): number[] {
  return [...pndmPlan(config, n).timesteps];
}