/**
 * Exponential moving average (EMA) of model weights, the averaged copy diffusion models are
 * usually sampled from.
 */

const f = Math.fround;

/** Options of {@link Ema}. */
export interface EmaOptions {
  /** Target decay d (default 0.999). */
  readonly decay?: number;
  /**
   * Warm the decay up: update t (0-based) uses `d_t = min(d, (1 + t)/(10 + t))` (default false:
   * `d_t = d` from the first update).
   */
  readonly warmup?: boolean;
}

/** {@link EmaOptions} with defaults filled in. */
export interface ResolvedEmaOptions {
  readonly decay: number;
  readonly warmup: boolean;
}

/** The EMA's serialisable state: how many updates it has absorbed and the averaged weights. */
export interface EmaState {
  /** Number of {@link Ema.update} calls so far. */
  readonly updates: number;
  /** The averaged weights by parameter name. */
  readonly values: ReadonlyMap<string, Float32Array>;
}

/** Fill in the defaults (decay 0.999, no warmup) and validate. */
export function resolveEmaOptions(o: EmaOptions = {}): ResolvedEmaOptions {
  const r = { decay: o.decay ?? 0.999, warmup: o.warmup ?? false };
  if (!(r.decay >= 0 && r.decay <= 1)) throw new Error(`Ema: decay must be in [0, 1], got ${r.decay}`);
  return r;
}

/**
 * The decay of the 0-based update `t`: `d` without warmup, `min(d, (1 + t)/(10 + t))` with it
 * (0.1 at the first update, 0.5 at t = 8, reaching 0.999 at t = 8990).
 */
export function emaDecayAt(t: number, options: EmaOptions = {}): number {
  const { decay, warmup } = resolveEmaOptions(options);
  return warmup ? Math.min(decay, (1 + t) / (10 + t)) : decay;
}

/** `s ← s − omd·(s − p)` elementwise in float32 (a separate function so the loop is optimised on its own). */
function emaKernel(s: Float32Array, p: Float32Array, omd: number): void {
  const n = s.length;
  for (let i = 0; i < n; i++) s[i] = f(s[i]! - f(omd * f(s[i]! - p[i]!)));
}

/**
 * An EMA of named float32 weights, initialised to a copy of the weights it is given. Each
 * {@link Ema.update} with the current weights p applies, elementwise in float32,
 *
 *     ema ← ema − (1 − d_t) · (ema − p)
 *
 * (= d_t·ema + (1 − d_t)·p; the form and rounding of diffusers' `EMAModel.step`), with d_t from
 * {@link emaDecayAt}.
 */
export class Ema {
  /** The options in use (defaults filled in). */
  readonly options: ResolvedEmaOptions;
  private shadow: Map<string, Float32Array>;
  private count = 0;

  /** Start an average at a copy of `params`. */
  constructor(params: ReadonlyMap<string, Float32Array>, options: EmaOptions = {}) {
    this.options = resolveEmaOptions(options);
    this.shadow = new Map([...params].map(([k, v]) => [k, v.slice()]));
  }

  /** Number of updates absorbed so far. */
  get updates(): number {
    return this.count;
  }

  /** The averaged weights (live arrays; copy them before mutating). */
  get values(): ReadonlyMap<string, Float32Array> {
    return this.shadow;
  }

  /** Absorb the current weights (every parameter the EMA tracks must be present). */
  update(params: ReadonlyMap<string, Float32Array>): void {
    const d = emaDecayAt(this.count, this.options);
    const omd = f(1 - d);
    for (const [name, s] of this.shadow) {
      const p = params.get(name);
      if (p === undefined) throw new Error(`Ema.update: parameter "${name}" is missing`);
      if (p.length !== s.length) throw new Error(`Ema.update: "${name}" has ${s.length} elements, the new value ${p.length}`);
      emaKernel(s, p, omd);
    }
    this.count += 1;
  }

  /** A deep copy of the state. */
  getState(): EmaState {
    return { updates: this.count, values: new Map([...this.shadow].map(([k, v]) => [k, v.slice()])) };
  }

  /** Replace the state with a deep copy of `state` (same parameter names and sizes required). */
  setState(state: EmaState): void {
    if (!Number.isSafeInteger(state.updates) || state.updates < 0) throw new Error(`Ema.setState: updates must be a non-negative integer, got ${state.updates}`);
    for (const [name, s] of this.shadow) {
      const v = state.values.get(name);
      if (v === undefined) throw new Error(`Ema.setState: parameter "${name}" is missing from the state`);
      if (v.length !== s.length) throw new Error(`Ema.setState: "${name}" has ${s.length} elements, the state ${v.length}`);
    }
    for (const name of state.values.keys()) {
      if (!this.shadow.has(name)) throw new Error(`Ema.setState: state has unknown parameter "${name}"`);
    }
    this.shadow = new Map([...state.values].map(([k, v]) => [k, v.slice()]));
    this.count = state.updates;
  }
}
