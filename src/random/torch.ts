/**
 * A seeded standard-normal generator that reproduces PyTorch's CPU generator, so that noise
 * drawn here equals `torch.randn(dims, generator=torch.Generator('cpu').manual_seed(seed))`.
 *
 * How torch does it (ATen: `MT19937RNGEngine.h`, `CPUGeneratorImpl.cpp`,
 * `DistributionsHelper.h`, `TransformationHelper.h`, `native/cpu/DistributionTemplates.h`):
 *
 * - The engine is a 32-bit mt19937 seeded by `init_genrand` with the LOW 32 BITS of the 64-bit
 *   seed (so seeds `s` and `s + 2**32` give the same stream; `initial_seed()` still reports the
 *   full 64-bit value). `random()` is one 32-bit word; `random64()` is `(w1 << 32) | w2`.
 * - float uniform in [0, 1): `(random() & (2**24 - 1)) / 2**24`;
 *   double uniform: `(random64() & (2**53 - 1)) / 2**53`.
 * - `randn` of a contiguous float32 tensor with `numel >= 16` (`normal_fill`): fill every element
 *   with a float uniform, then Box–Muller in float on each block of 16 — element `j < 8` pairs
 *   with `j + 8`: `r = sqrt(-2 log(1 - u[j]))`, `θ = 2π u[j + 8]`, `x[j] = r cos θ`,
 *   `x[j + 8] = r sin θ`. When `numel % 16 != 0`, 16 FRESH uniforms overwrite the last 16
 *   elements and that block is transformed again.
 * - `numel < 16`: each element through the scalar double-precision path
 *   (`normal_distribution<double>`): two double uniforms `u1`, `u2`,
 *   `r = sqrt(-2 log1p(-u2))`, `θ = 2π u1`; returns `r cos θ` and caches `r sin θ` in the
 *   generator, which the NEXT scalar draw returns — even one in a later `randn` call. The
 *   vectorised path neither reads nor clears that cache; `manual_seed` clears it.
 *
 * The 16-wide block is computed here with float32 rounding after every step torch performs in
 * float (log, sqrt, θ, cos, sin, products), each function evaluated in double and rounded. Which
 * θ torch uses depends on the kernel build it runs (see `TorchCpuCapability`). torch's AVX2
 * polynomials and libm's logf/sinf/cosf can differ from correctly rounded values in the last bit, so values agree
 * to 1 float ulp (≤ 2.4e-7 on the reference fixture), not bit for bit; the engine, the uniforms
 * and the `numel < 16` path agree exactly.
 */
import type { NormalSource } from './normal.ts';
import { numel, tensor, type Tensor } from '../tensor/tensor.ts';

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UMASK = 0x80000000;
const LMASK = 0x7fffffff;

/** 2^-24, the float uniform's step. */
const TWO_POW_M24 = 1 / 16777216;
/** 2^-53, the double uniform's step. */
const TWO_POW_M53 = 1 / 9007199254740992;
/** 2^32. */
const TWO_POW_32 = 4294967296;
/** 2π in double: the scalar path's `2.0 * pi<double>`, and `2.0f * c10::pi<double>` of the portable `normal_fill_16`. */
const TWO_PI = 2 * Math.PI;
/** `_mm256_set1_ps(2.0f * c10::pi<double>)`: 2π rounded to float, as the AVX2 `normal_fill_16_AVX2` uses it. */
const TWO_PI_F32 = Math.fround(TWO_PI);

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);

/** The mt19937 engine of `at::mt19937` (torch's CPU generator), seeded like `init_genrand`. */
export class Mt19937 {
  private readonly state = new Uint32Array(N);
  private left = 1;
  private next = 0;

  /** Seed with a 32-bit unsigned value, as `at::mt19937(seed)` does with `seed & 0xffffffff`. */
  constructor(seed32: number) {
    if (!Number.isInteger(seed32) || seed32 < 0 || seed32 > 0xffffffff) {
      throw new Error(`Mt19937: seed must be an integer in [0, 2**32 - 1], got ${seed32}`);
    }
    const s = this.state;
    s[0] = seed32 >>> 0;
    for (let j = 1; j < N; j++) {
      const p = s[j - 1]!;
      s[j] = (Math.imul(1812433253, (p ^ (p >>> 30)) >>> 0) + j) >>> 0;
    }
  }

  /** The next 32-bit word (torch's `CPUGeneratorImpl::random()`), as an unsigned number. */
  nextU32(): number {
    if (--this.left === 0) this.twist();
    let y = this.state[this.next++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  private twist(): void {
    const s = this.state;
    this.left = N;
    this.next = 0;
    let k = 0;
    for (; k < N - M; k++) s[k] = s[k + M]! ^ mix(s[k]!, s[k + 1]!);
    for (; k < N - 1; k++) s[k] = s[k + M - N]! ^ mix(s[k]!, s[k + 1]!);
    s[N - 1] = s[M - 1]! ^ mix(s[N - 1]!, s[0]!);
  }
}

function mix(u: number, v: number): number {
  return ((((u & UMASK) | (v & LMASK)) >>> 1) ^ (v & 1 ? MATRIX_A : 0)) >>> 0;
}

/** Normalise a seed as torch's `manual_seed` accepts it ([-2**63, 2**64 - 1]) to its uint64 value. */
function seedToU64(seed: number | bigint): bigint {
  let b: bigint;
  if (typeof seed === 'bigint') {
    b = seed;
  } else {
    if (!Number.isSafeInteger(seed)) {
      throw new Error(
        `TorchGenerator: seed must be a safe integer (|seed| <= 2**53 - 1) or a bigint, got ${seed}; pass larger seeds as bigint`,
      );
    }
    b = BigInt(seed);
  }
  if (b < I64_MIN || b > U64_MAX) {
    throw new Error(`TorchGenerator: seed must be in [-2**63, 2**64 - 1] as torch's manual_seed requires, got ${b}`);
  }
  return BigInt.asUintN(64, b);
}

/**
 * Which build of torch's float `normal_fill_16` to reproduce for `numel >= 16`. torch compiles its
 * CPU kernels once per capability and picks one at run time (`ATEN_CPU_CAPABILITY`):
 * - `'avx2'` (the default here; x86-64 CPUs running torch's AVX2 kernels): `normal_fill_16_AVX2`,
 *   whose θ is `fl(fl(2π)·u)` in float;
 * - `'default'` (`ATEN_CPU_CAPABILITY=default`, "NO AVX"; builds without AVX2 kernels such as
 *   ARM): the portable `normal_fill_16`, whose θ is `fl(2π·u)` with 2π in double.
 * torch's AVX512 kernels follow one or the other depending on the torch version (the source
 * tests `CPU_CAPABILITY_AVX2`, older releases `__AVX2__`); check against your torch if it matters.
 * The two differ by up to ~2e-6 in the tails; the engine and the `numel < 16` path are the same.
 */
export type TorchCpuCapability = 'avx2' | 'default';

/** Options of `TorchGenerator`. */
export interface TorchGeneratorOptions {
  /** Which torch CPU kernel build to follow for `numel >= 16` (default `'avx2'`). */
  readonly cpuCapability?: TorchCpuCapability;
}

/** Reproduces `torch.Generator('cpu').manual_seed(seed)` and `torch.randn(dims, generator=g)` (float32, CPU). */
export class TorchGenerator implements NormalSource {
  /** The seed as torch's `g.initial_seed()` reports it (a uint64; negative seeds wrap). */
  readonly initialSeed: bigint;
  /** The kernel build followed for `numel >= 16` (see `TorchCpuCapability`). */
  readonly cpuCapability: TorchCpuCapability;
  private readonly engine: Mt19937;
  private readonly twoPi: number;
  /** torch's `next_double_normal_sample_`: the cached `r sin θ` of the scalar path. */
  private nextDoubleNormal: number | null = null;

  /** Seed like `torch.Generator('cpu').manual_seed(seed)`; seeds in [-2**63, 2**64 - 1], larger than 2**53 as bigint. */
  constructor(seed: number | bigint, options: TorchGeneratorOptions = {}) {
    const cap = options.cpuCapability ?? 'avx2';
    if (cap !== 'avx2' && cap !== 'default') {
      throw new Error(`TorchGenerator: cpuCapability must be 'avx2' or 'default', got ${String(cap)}`);
    }
    this.cpuCapability = cap;
    this.twoPi = cap === 'avx2' ? TWO_PI_F32 : TWO_PI;
    this.initialSeed = seedToU64(seed);
    this.engine = new Mt19937(Number(this.initialSeed & 0xffffffffn));
  }

  /** Next `numel(dims)` draws, equal to `torch.randn(dims, generator=g)` (float32, CPU) on this generator's stream. */
  randn(dims: readonly number[]): Float32Array {
    for (const d of dims) {
      if (!Number.isSafeInteger(d) || d < 0) throw new Error(`TorchGenerator.randn: dims must be non-negative integers, got [${dims.join(', ')}]`);
    }
    const n = numel(dims);
    const out = new Float32Array(n);
    if (n >= 16) {
      this.normalFill(out);
    } else {
      for (let i = 0; i < n; i++) out[i] = this.normalDouble();
    }
    return out;
  }

  /** Float uniform in [0, 1) (`uniform_real_distribution<float>`): 24 low bits of one word. */
  private uniformFloat(): number {
    return (this.engine.nextU32() & 0xffffff) * TWO_POW_M24;
  }

  /** Double uniform in [0, 1) (`uniform_real_distribution<double>`): 53 low bits of `random64()`. */
  private uniformDouble(): number {
    const hi = this.engine.nextU32();
    const lo = this.engine.nextU32();
    return ((hi & 0x1fffff) * TWO_POW_32 + lo) * TWO_POW_M53;
  }

  /** One draw of `normal_distribution<double>(0, 1)` with torch's cache of the second value. */
  private normalDouble(): number {
    const cached = this.nextDoubleNormal;
    if (cached !== null) {
      this.nextDoubleNormal = null;
      return cached;
    }
    const u1 = this.uniformDouble();
    const u2 = this.uniformDouble();
    const r = Math.sqrt(-2 * Math.log1p(-u2));
    const theta = TWO_PI * u1;
    this.nextDoubleNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** torch's `normal_fill` (float, mean 0, std 1) for `data.length >= 16`. */
  private normalFill(data: Float32Array): void {
    const size = data.length;
    for (let i = 0; i < size; i++) data[i] = this.uniformFloat();
    for (let i = 0; i + 16 <= size; i += 16) normalFill16(data, i, this.twoPi);
    if (size % 16 !== 0) {
      const off = size - 16;
      for (let i = 0; i < 16; i++) data[off + i] = this.uniformFloat();
      normalFill16(data, off, this.twoPi);
    }
  }
}

/**
 * Box–Muller on the 16 uniforms at `data[off..off+16)`, in float32 as torch's `normal_fill_16`
 * (`twoPi` = `TWO_PI`) or `normal_fill_16_AVX2` (`twoPi` = `TWO_PI_F32`: θ = fl(fl(2π)·u)).
 */
function normalFill16(data: Float32Array, off: number, twoPi: number): void {
  const f = Math.fround;
  for (let j = 0; j < 8; j++) {
    const u1 = f(1 - data[off + j]!); // [0, 1) -> (0, 1] for log; exact in float
    const u2 = data[off + j + 8]!;
    const radius = f(Math.sqrt(f(-2 * f(Math.log(u1)))));
    const theta = f(twoPi * u2);
    data[off + j] = radius * f(Math.cos(theta));
    data[off + j + 8] = radius * f(Math.sin(theta));
  }
}

/** `torch.randn(dims, generator=torch.Generator('cpu').manual_seed(seed))` as a tensor (a fresh generator each call). */
export function randnTorch(dims: readonly number[], seed: number | bigint, options: TorchGeneratorOptions = {}): Tensor {
  return tensor(dims, new TorchGenerator(seed, options).randn(dims));
}

/** A `NormalSource` whose stream is torch's CPU generator after `manual_seed(seed)` (one per diffusers-style generator). */
export function normalSourceForSeed(seed: number | bigint, options: TorchGeneratorOptions = {}): NormalSource {
  return new TorchGenerator(seed, options);
}
