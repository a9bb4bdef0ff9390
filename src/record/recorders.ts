/**
 * Observers of `StepEvent`s (SPEC §1: every step exposes step, t, ᾱ_t, x_t, ε_u, ε_c, ε̂, x̂0, s,
 * d_t). Recording is opt-in per quantity: scalars are cheap; full tensors are kept only for the
 * quantities asked for. Observers never mutate the events they see.
 */
import type { StepEvent } from '../samplers/types.ts';
import type { Tensor } from '../tensor/tensor.ts';

/** A step observer. */
export type StepObserver = (e: StepEvent) => void | Promise<void>;

/** Fan one step event out to several observers, in order. */
export function observeAll(...observers: readonly StepObserver[]): StepObserver {
  return async (e) => {
    for (const o of observers) await o(e);
  };
}

/** Per-step scalars of a guided run: t, ᾱ_t, and per batch row s and d_t. */
export class GuidanceRecorder {
  readonly t: number[] = [];
  readonly alphaBar: number[] = [];
  /** s[step][row]. */
  readonly s: number[][] = [];
  /** d[step][row] = ‖ε_c − ε_u‖². */
  readonly d: number[][] = [];

  /** The observer to pass as (part of) `onStep`. */
  readonly observe: StepObserver = (e) => {
    this.t.push(e.t);
    this.alphaBar.push(e.alphaBar);
    this.s.push(e.s ? Array.from(e.s) : []);
    this.d.push(e.d ? Array.from(e.d) : []);
  };

  /** d_t of one batch row over the steps. */
  dOf(row: number): number[] {
    return this.d.map((r) => r[row] ?? NaN);
  }

  /** s of one batch row over the steps. */
  sOf(row: number): number[] {
    return this.s.map((r) => r[row] ?? NaN);
  }
}

/** Tensor quantities a `TrajectoryRecorder` can keep. */
export type TensorQuantity = 'xt' | 'xHat0' | 'eps' | 'epsU' | 'epsC';

/** All tensor quantity names. */
export const TENSOR_QUANTITIES: readonly TensorQuantity[] = ['xt', 'xHat0', 'eps', 'epsU', 'epsC'];

/**
 * Keeps the chosen tensors of every step. For `xt` the final state x_0 is appended after the
 * last step, so `stack('xt')` has numSteps + 1 entries (x_T … x_0).
 */
export class TrajectoryRecorder {
  private readonly kept = new Map<TensorQuantity, Tensor[]>();

  constructor(readonly quantities: readonly TensorQuantity[]) {
    for (const q of quantities) {
      if (!TENSOR_QUANTITIES.includes(q)) throw new Error(`record: unknown quantity "${q}"; expected one of ${TENSOR_QUANTITIES.join(', ')}`);
      this.kept.set(q, []);
    }
  }

  /** The observer to pass as (part of) `onStep`. */
  readonly observe: StepObserver = (e) => {
    for (const [q, list] of this.kept) {
      const v = e[q];
      if (v === null) continue;
      list.push(v);
      if (q === 'xt' && e.step === e.numSteps - 1) list.push(e.xPrev);
    }
  };

  /** The recorded tensors of `q` stacked on a new leading axis: `[steps, B, ...]`. */
  stack(q: TensorQuantity): Tensor {
    const list = this.kept.get(q);
    if (!list) throw new Error(`record: quantity "${q}" was not recorded; recorded: ${[...this.kept.keys()].join(', ') || 'none'}`);
    if (list.length === 0) throw new Error(`record: no "${q}" was recorded (the run emitted none)`);
    const each = list[0]!.data.length;
    const out = new Float32Array(each * list.length);
    list.forEach((t, i) => out.set(t.data, i * each));
    return { dims: [list.length, ...list[0]!.dims], data: out };
  }
}
