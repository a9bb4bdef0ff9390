/**
 * Parameter registration and seeded initialisation for the model builders: {@link paramFnFor}
 * gives a {@link ParamFn} that declares each parameter as a graph input (training graphs) or an
 * initializer (inference/export graphs) and records the specs; {@link initParams} draws initial
 * values for a list of specs from a seed.
 *
 * Each parameter is drawn from its own generator, seeded from `(seed, parameter name)`, so its
 * initial value depends only on the seed, its name, its shape and its init rule — not on the
 * order of declaration or on which other parameters exist. Uniform draws use torch's float
 * uniform (24 bits of an mt19937 word, `from + (to − from)·u`); normal draws use
 * {@link TorchGenerator.randn} times the standard deviation.
 */
import type { GraphBuilder } from '../graph/builder.ts';
import { Mt19937, TorchGenerator } from '../random/torch.ts';
import type { ParamFn, ParamInit, ParamSpec, ParamValues } from './params.ts';

/** The 32-bit seed of parameter `name` under the global `seed` (FNV-1a of the name mixed with the seed). */
export function paramSeed(seed: number, name: string): number {
  if (!Number.isSafeInteger(seed)) throw new Error(`initParams: seed must be a safe integer, got ${seed}`);
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // mix in both halves of the seed (splitmix-style finaliser)
  let x = (h ^ (seed >>> 0) ^ Math.imul(Math.floor(seed / 4294967296) >>> 0, 0x9e3779b1)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

function numelOf(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`parameter dims must be non-negative integers, got [${dims.join(', ')}]`);
    n *= d;
  }
  return n;
}

/** Draw the initial value of one parameter (see the module note on seeding). */
export function initParam(spec: ParamSpec, seed: number): Float32Array {
  const n = numelOf(spec.dims);
  const init: ParamInit = spec.init;
  switch (init.kind) {
    case 'zeros':
      return new Float32Array(n);
    case 'ones':
      return new Float32Array(n).fill(1);
    case 'normal': {
      const z = new TorchGenerator(paramSeed(seed, spec.name)).randn([n]);
      for (let i = 0; i < n; i++) z[i] = z[i]! * init.std;
      return z;
    }
    case 'uniform': {
      const eng = new Mt19937(paramSeed(seed, spec.name));
      const lo = -init.bound;
      const span = 2 * init.bound;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = lo + span * ((eng.nextU32() & 0xffffff) / 16777216);
      return out;
    }
  }
}

/** Initial values for `specs` drawn from `seed` (deterministic; see the module note). */
export function initParams(specs: readonly ParamSpec[], seed: number): ParamValues {
  const values = new Map<string, Float32Array>();
  for (const s of specs) {
    if (values.has(s.name)) throw new Error(`initParams: parameter '${s.name}' is declared twice`);
    values.set(s.name, initParam(s, seed));
  }
  return { specs: [...specs], values };
}

/** Total number of scalar parameters in `specs`. */
export function countParams(specs: readonly ParamSpec[]): number {
  let n = 0;
  for (const s of specs) n += numelOf(s.dims);
  return n;
}

/** What {@link paramFnFor} returns. */
export interface ParamRegistry {
  /** The `ParamFn` to hand to the model builders. */
  readonly param: ParamFn;
  /** Every parameter declared so far, in declaration order. */
  readonly specs: ParamSpec[];
  /** In `'initializer'` mode, the value stored for each parameter; empty in `'input'` mode. */
  readonly values: Map<string, Float32Array>;
}

/**
 * A {@link ParamFn} for builder `b`. Mode `'input'`: each parameter becomes a float32 graph input
 * of its shape named like the parameter (feed the values every run). Mode `'initializer'`: each
 * becomes an initializer holding `values.get(name)` when a map is given (it must hold every
 * parameter, with the right size), else the value {@link initParam} draws from `values.seed`
 * (default seed 0) — equal to `initParams(specs, seed)` afterwards. Declaring a name twice throws.
 */
export function paramFnFor(
  b: GraphBuilder,
  mode: 'input' | 'initializer',
  values?: ReadonlyMap<string, Float32Array> | { readonly seed: number },
): ParamRegistry {
  const specs: ParamSpec[] = [];
  const stored = new Map<string, Float32Array>();
  const seen = new Set<string>();
  const param: ParamFn = (name, dims, init, opts) => {
    if (seen.has(name)) throw new Error(`parameter '${name}' is declared twice`);
    seen.add(name);
    const spec: ParamSpec = opts?.noDecay === true ? { name, dims: [...dims], init, noDecay: true } : { name, dims: [...dims], init };
    specs.push(spec);
    if (mode === 'input') return b.input(name, 'float32', dims);
    let v: Float32Array;
    if (values instanceof Map) {
      const got = values.get(name);
      if (got === undefined) throw new Error(`paramFnFor: no value for parameter '${name}' [${dims.join(', ')}]`);
      if (got.length !== numelOf(dims)) throw new Error(`paramFnFor: parameter '${name}' has ${got.length} values but shape [${dims.join(', ')}]`);
      v = got;
    } else {
      v = initParam(spec, (values as { readonly seed: number } | undefined)?.seed ?? 0);
    }
    stored.set(name, v);
    return b.initializer(name, v, dims);
  };
  return { param, specs, values: stored };
}
