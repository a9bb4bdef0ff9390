/**
 * AdamW, gradient-norm clipping and the warmup learning-rate schedule, reproducing PyTorch:
 * `torch.optim.AdamW` (the single-tensor loop, `foreach=False`, torch's CPU default),
 * `torch.nn.utils.clip_grad_norm_` and diffusers' `get_constant_schedule_with_warmup`
 * driven by `LambdaLR`. Checked against torch 1.13 in `optim.test.ts`
 * (fixture from `scripts/reference/train_adamw.py`).
 *
 * Every tensor operation torch performs in float32 is rounded to float32 here too, in torch's
 * operation order, including the fused multiply-adds of torch's AVX2 CPU kernels (`add_` with
 * `alpha` and `addcmul_` become one FMA each) and the 8-lane float32 accumulation of its `norm`
 * kernel. On the reference fixture (torch 1.13, AVX2 build) parameters, moments, norms and
 * learning rates agree bit for bit; other torch builds (portable kernels, other compilers) may
 * round differently in the last bit (≤ 1 ulp per step). The arithmetic is a deterministic
 * function of its inputs, which is what the trainer's bit-exact resume relies on.
 */
import { fmaF32 } from '../schedules/betas.ts';
import type { ParamSpec } from '../models/params.ts';

const f = Math.fround;

/**
 * `fmaf(a, b, c)` for float32 a, b, c: a·b is exact in double, so `fl32(a·b + c)` rounded once
 * is right unless the double sum lands exactly on a midpoint between two float32 values (then
 * `o = 2s − r` is the other neighbour and is a float32); only that rare case takes the exact
 * {@link fmaF32}. Same results as `fmaF32`, several times faster in the AdamW loop.
 */
function fma32(a: number, b: number, c: number): number {
  const s = a * b + c;
  const r = f(s);
  if (r !== s) {
    const o = r + 2 * (s - r);
    if (f(o) === o) return fmaF32(a, b, c);
  }
  return r;
}

/** Options of {@link AdamW}; defaults are `torch.optim.AdamW`'s. */
export interface AdamWOptions {
  /** Base learning rate (default 1e-3). */
  readonly lr?: number;
  /** (β1, β2), the moment decay rates (default (0.9, 0.999)). */
  readonly betas?: readonly [number, number];
  /** ε added to √v̂ (default 1e-8). */
  readonly eps?: number;
  /** Decoupled weight decay λ (default 0.01); parameters with `noDecay` use 0. */
  readonly weightDecay?: number;
}

/** {@link AdamWOptions} with every default filled in. */
export interface ResolvedAdamWOptions {
  /** Base learning rate. */
  readonly lr: number;
  /** (β1, β2). */
  readonly betas: readonly [number, number];
  /** ε. */
  readonly eps: number;
  /** Decoupled weight decay λ. */
  readonly weightDecay: number;
}

/** One parameter's optimizer state: its step count and first/second moment estimates. */
export interface AdamWParamState {
  /** Number of updates this parameter received (torch's per-parameter `state['step']`). */
  step: number;
  /** First moment `exp_avg`. */
  readonly m: Float32Array;
  /** Second moment `exp_avg_sq`. */
  readonly v: Float32Array;
}

/** The whole optimizer state, by parameter name; parameters never updated have no entry (as in torch). */
export interface AdamWState {
  readonly params: ReadonlyMap<string, AdamWParamState>;
}

/** Per-call options of {@link AdamW.step}. */
export interface AdamWStepOptions {
  /** Learning rate for this step (default: the base `lr`), e.g. from {@link warmupLr}. */
  readonly lr?: number;
  /**
   * Factor applied to every gradient first, `g ← fl32(g · gradScale)`, exactly as the in-place
   * multiply of `clip_grad_norm_` (default 1: no scaling). Use {@link clipCoefficient}.
   */
  readonly gradScale?: number;
}

/** Fill in `torch.optim.AdamW`'s defaults and validate the options. */
export function resolveAdamWOptions(o: AdamWOptions = {}): ResolvedAdamWOptions {
  const r: ResolvedAdamWOptions = {
    lr: o.lr ?? 1e-3,
    betas: [o.betas?.[0] ?? 0.9, o.betas?.[1] ?? 0.999],
    eps: o.eps ?? 1e-8,
    weightDecay: o.weightDecay ?? 0.01,
  };
  if (!(r.lr >= 0) || !Number.isFinite(r.lr)) throw new Error(`AdamW: lr must be a finite number >= 0, got ${r.lr}`);
  for (const b of r.betas) if (!(b >= 0 && b < 1)) throw new Error(`AdamW: betas must be in [0, 1), got [${r.betas.join(', ')}]`);
  if (!(r.eps >= 0) || !Number.isFinite(r.eps)) throw new Error(`AdamW: eps must be a finite number >= 0, got ${r.eps}`);
  if (!(r.weightDecay >= 0) || !Number.isFinite(r.weightDecay)) throw new Error(`AdamW: weightDecay must be a finite number >= 0, got ${r.weightDecay}`);
  return r;
}

/**
 * AdamW as `torch.optim.AdamW(params, lr, betas, eps, weight_decay, amsgrad=False)`, updating
 * named Float32Array parameters in place. For each parameter with a gradient g, with t its own
 * step count after incrementing:
 *
 *     p ← p · (1 − lr·λ)                      (decoupled decay; λ = 0 for noDecay params)
 *     m ← β1·m + (1 − β1)·g
 *     v ← β2·v + (1 − β2)·g²
 *     p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
 *
 * each line in float32 in torch's operation order (the `m` and `v` lines as one FMA each, as
 * torch's AVX2 kernels compute them). A parameter with no entry in `grads` is
 * skipped entirely (torch's `grad is None`): its step count, moments and value do not change.
 */
export class AdamW {
  /** The options in use (defaults filled in). */
  readonly options: ResolvedAdamWOptions;
  private readonly decayOf = new Map<string, number>();
  private readonly sizes = new Map<string, number>();
  private readonly state = new Map<string, AdamWParamState>();

  /**
   * An optimizer for the parameters `specs` (names, shapes; `noDecay` params are excluded from
   * weight decay, like a torch param group with `weight_decay=0`).
   */
  constructor(specs: readonly Pick<ParamSpec, 'name' | 'dims' | 'noDecay'>[], options: AdamWOptions = {}) {
    this.options = resolveAdamWOptions(options);
    for (const s of specs) {
      if (this.sizes.has(s.name)) throw new Error(`AdamW: parameter "${s.name}" is declared twice`);
      this.sizes.set(s.name, s.dims.reduce((a, b) => a * b, 1));
      this.decayOf.set(s.name, s.noDecay === true ? 0 : this.options.weightDecay);
    }
  }

  /** Names of the parameters, in declaration order. */
  get paramNames(): string[] {
    return [...this.sizes.keys()];
  }

  /**
   * One optimizer step: update `params` in place from `grads` (see the class note).
   * Throws on unknown gradient names and on length mismatches.
   */
  step(params: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>, opts: AdamWStepOptions = {}): void {
    const lr = opts.lr ?? this.options.lr;
    const scale = opts.gradScale ?? 1;
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`AdamW.step: lr must be a finite number >= 0, got ${lr}`);
    for (const name of grads.keys()) {
      if (!this.sizes.has(name)) throw new Error(`AdamW.step: gradient for unknown parameter "${name}"`);
    }
    const [beta1, beta2] = this.options.betas;
    const b1 = f(beta1);
    const b2 = f(beta2);
    const omb1 = f(1 - beta1);
    const omb2 = f(1 - beta2);
    const eps = f(this.options.eps);
    const gs = f(scale);
    for (const [name, size] of this.sizes) {
      const g = grads.get(name);
      if (g === undefined) continue;
      const p = params.get(name);
      if (p === undefined) throw new Error(`AdamW.step: parameter "${name}" is missing from params`);
      if (p.length !== size || g.length !== size) {
        throw new Error(`AdamW.step: "${name}" has ${size} elements but the value has ${p.length} and the gradient ${g.length}`);
      }
      let st = this.state.get(name);
      if (st === undefined) {
        st = { step: 0, m: new Float32Array(size), v: new Float32Array(size) };
        this.state.set(name, st);
      }
      st.step += 1;
      const t = st.step;
      const decay = f(1 - lr * this.decayOf.get(name)!);
      const bc1 = 1 - beta1 ** t;
      const bc2Sqrt = f(Math.sqrt(1 - beta2 ** t));
      const negStep = f(-(lr / bc1));
      adamwKernel(p, g, st.m, st.v, scale === 1 ? null : gs, decay, b1, omb1, b2, omb2, bc2Sqrt, eps, negStep);
    }
  }

  /** A deep copy of the state (for checkpoints). */
  getState(): AdamWState {
    const params = new Map<string, AdamWParamState>();
    for (const [name, s] of this.state) params.set(name, { step: s.step, m: s.m.slice(), v: s.v.slice() });
    return { params };
  }

  /** Replace the state with a deep copy of `state` (validated against the declared parameters). */
  setState(state: AdamWState): void {
    const next = new Map<string, AdamWParamState>();
    for (const [name, s] of state.params) {
      const size = this.sizes.get(name);
      if (size === undefined) throw new Error(`AdamW.setState: state for unknown parameter "${name}"`);
      if (s.m.length !== size || s.v.length !== size) {
        throw new Error(`AdamW.setState: "${name}" has ${size} elements but the state has m: ${s.m.length}, v: ${s.v.length}`);
      }
      if (!Number.isSafeInteger(s.step) || s.step < 0) throw new Error(`AdamW.setState: "${name}" step must be a non-negative integer, got ${s.step}`);
      next.set(name, { step: s.step, m: s.m.slice(), v: s.v.slice() });
    }
    this.state.clear();
    for (const [k, s] of next) this.state.set(k, s);
  }
}

/** The elementwise AdamW update of one parameter (see {@link AdamW}); all constants float32. */
function adamwKernel(
  p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, gs: number | null,
  decay: number, b1: number, omb1: number, b2: number, omb2: number, bc2Sqrt: number, eps: number, negStep: number,
): void {
  const n = p.length;
  for (let i = 0; i < n; i++) {
    const gi = gs === null ? g[i]! : f(g[i]! * gs);
    const pi = f(p[i]! * decay);
    const mi = fma32(gi, omb1, f(m[i]! * b1));
    const vi = fma32(f(omb2 * gi), gi, f(v[i]! * b2));
    const denom = f(f(f(Math.sqrt(vi)) / bc2Sqrt) + eps);
    m[i] = mi;
    v[i] = vi;
    p[i] = f(pi + f(f(negStep * mi) / denom));
  }
}

/**
 * The global L2 norm of the gradients, `‖(‖g_1‖, …, ‖g_k‖)‖₂`, as `clip_grad_norm_` computes it:
 * `torch.norm(torch.stack([torch.norm(g) for g in grads]))`, each norm with torch's float32 CPU
 * kernel (see `normF32`).
 */
export function gradNorm(grads: Iterable<Float32Array>): number {
  const norms: number[] = [];
  for (const g of grads) norms.push(normF32(g));
  return normF32(norms);
}

/**
 * `torch.norm(x, 2)` of a contiguous float32 vector as torch's CPU kernel computes it
 * (`norm_kernel_tensor_iterator_impl`, vectorised last-dimension path): 8 float32 lanes
 * accumulate `acc ← fma(x, x, acc)` over the 8-aligned body, the lanes are summed in order, the
 * tail is added element by element, then `sqrt`, all in float32.
 */
function normF32(x: ArrayLike<number>): number {
  const n = x.length;
  const body = n - (n % 8);
  const lanes = [0, 0, 0, 0, 0, 0, 0, 0];
  for (let d = 0; d < body; d += 8) {
    for (let j = 0; j < 8; j++) {
      const v = x[d + j]!;
      lanes[j] = fma32(v, v, lanes[j]!);
    }
  }
  let acc = lanes[0]!;
  for (let j = 1; j < 8; j++) acc = f(acc + lanes[j]!);
  for (let d = body; d < n; d++) {
    const v = x[d]!;
    acc = fma32(v, v, acc);
  }
  return f(Math.sqrt(acc));
}

/**
 * The coefficient `clip_grad_norm_(grads, maxNorm)` multiplies every gradient by, and the total
 * norm it returns: `coef = min(1, maxNorm / (totalNorm + 1e-6))` (in float32, as torch:
 * `fl(fl(1 / fl(totalNorm + 1e-6)) · maxNorm)`), so
 * gradients are scaled only when `totalNorm + 1e-6 > maxNorm`. Does not modify `grads`; pass
 * `scale` to {@link AdamW.step} as `gradScale`, or use {@link clipGradNorm}.
 */
export function clipCoefficient(grads: Iterable<Float32Array>, maxNorm: number): { totalNorm: number; scale: number } {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const totalNorm = gradNorm(grads);
  // torch: `max_norm / (total_norm + 1e-6)` on a tensor is `reciprocal(t) * max_norm`
  const coef = f(f(1 / f(totalNorm + f(1e-6))) * f(maxNorm));
  return { totalNorm, scale: coef < 1 ? coef : 1 };
}

/**
 * `torch.nn.utils.clip_grad_norm_(grads, maxNorm)`: scales every gradient in place by
 * `min(1, maxNorm / (totalNorm + 1e-6))` and returns the total norm before clipping.
 */
export function clipGradNorm(grads: Iterable<Float32Array>, maxNorm: number): number {
  const list = [...grads];
  const { totalNorm, scale } = clipCoefficient(list, maxNorm);
  if (scale !== 1) {
    const s = f(scale);
    for (const g of list) for (let i = 0; i < g.length; i++) g[i] = f(g[i]! * s);
  }
  return totalNorm;
}

/**
 * Constant learning rate with linear warmup, as diffusers' `get_constant_schedule_with_warmup`
 * under `LambdaLR`: the update made at 0-based step `step` uses
 *
 *     lr = baseLr · step / warmupSteps   for step < warmupSteps,   baseLr afterwards,
 *
 * so the very first update (step 0) of a warmup uses lr 0. `warmupSteps = 0` (default) is a
 * constant learning rate.
 */
export function warmupLr(baseLr: number, step: number, warmupSteps = 0): number {
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) throw new Error(`warmupLr: warmupSteps must be a non-negative integer, got ${warmupSteps}`);
  if (!Number.isInteger(step) || step < 0) throw new Error(`warmupLr: step must be a non-negative integer, got ${step}`);
  return step < warmupSteps ? baseLr * (step / Math.max(1, warmupSteps)) : baseLr;
}
