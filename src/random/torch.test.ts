import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Mt19937, TorchGenerator, normalSourceForSeed, randnTorch, type TorchCpuCapability } from './torch.ts';

/** Reference draws written by scripts/reference/torch_randn.py (torch CPU, float32). */
interface FullCase {
  seed: string;
  shape: number[];
  values: number[];
}
interface SummaryCase {
  seed: string;
  shape: number[];
  head: number[];
  tail: number[];
  sum: number;
  sumSq: number;
}
type Case = FullCase | SummaryCase;
interface Sequence {
  seed: string;
  shapes: number[][];
  values: number[][];
}
interface Fixture {
  torch: string;
  cpuCapability: string;
  cases: Case[];
  sequences: Sequence[];
  aliases: { seed: string; sameStreamAs: string; same: boolean; initialSeed: string }[];
  raw: { seed: string; low31: number[] }[];
  defaultCapability: { cpuCapability: string; cases: Case[]; sequences: Sequence[] };
}

const fixture = JSON.parse(
  readFileSync(new URL('../../test/fixtures/torch_randn.json', import.meta.url), 'utf8'),
) as Fixture;

/** Per-element tolerance against torch (its float log/sin/cos may differ in the last bits). */
const TOL = 1e-6;

function maxAbsDiff(got: Float32Array, ref: readonly number[], offset = 0): number {
  let m = 0;
  for (let i = 0; i < ref.length; i++) m = Math.max(m, Math.abs(got[offset + i]! - Math.fround(ref[i]!)));
  return m;
}

function label(c: { seed: string; shape: number[] }): string {
  return `seed ${c.seed}, shape [${c.shape.join(', ')}]`;
}

function checkCase(c: Case, cap: TorchCpuCapability): void {
  const got = new TorchGenerator(BigInt(c.seed), { cpuCapability: cap }).randn(c.shape);
  const n = c.shape.reduce((a, b) => a * b, 1);
  expect(got.length).toBe(n);
  if ('values' in c) {
    expect(maxAbsDiff(got, c.values), label(c)).toBeLessThanOrEqual(TOL);
  } else {
    expect(maxAbsDiff(got, c.head), `${label(c)} head`).toBeLessThanOrEqual(TOL);
    expect(maxAbsDiff(got, c.tail, n - c.tail.length), `${label(c)} tail`).toBeLessThanOrEqual(TOL);
    let s = 0;
    let q = 0;
    let qBound = 0;
    for (const v of got) {
      s += v;
      q += v * v;
      qBound += TOL * (2 * Math.abs(v) + TOL); // |a² − b²| ≤ |a − b|·(2|a| + |a − b|)
    }
    // Bounds implied by every element being within TOL (in practice far closer: ~1e-5).
    expect(Math.abs(s - c.sum), `${label(c)} sum`).toBeLessThanOrEqual(n * TOL);
    expect(Math.abs(q - c.sumSq), `${label(c)} sum of squares`).toBeLessThanOrEqual(qBound);
  }
}

function checkSequence(sq: Sequence, cap: TorchCpuCapability): void {
  const g = new TorchGenerator(BigInt(sq.seed), { cpuCapability: cap });
  sq.shapes.forEach((shape, k) => {
    const got = g.randn(shape);
    expect(got.length).toBe(sq.values[k]!.length);
    expect(maxAbsDiff(got, sq.values[k]!), `seed ${sq.seed}, call ${k} [${shape.join(', ')}]`).toBeLessThanOrEqual(TOL);
  });
}

describe('Mt19937', () => {
  it('reproduces the raw 32-bit words of torch.Generator after manual_seed (low 31 bits via randint)', () => {
    for (const r of fixture.raw) {
      const mt = new Mt19937(Number(BigInt(r.seed) & 0xffffffffn));
      const got = r.low31.map(() => mt.nextU32() & 0x7fffffff);
      expect(got, `seed ${r.seed}`).toEqual(r.low31);
    }
  });

  it('matches the reference mt19937 (init_genrand(5489)): 10000th output is 4123659995', () => {
    const mt = new Mt19937(5489);
    let y = 0;
    for (let i = 0; i < 10000; i++) y = mt.nextU32();
    expect(y).toBe(4123659995);
  });

  it('rejects seeds outside 32 bits', () => {
    expect(() => new Mt19937(-1)).toThrow(/seed/);
    expect(() => new Mt19937(2 ** 32)).toThrow(/seed/);
    expect(() => new Mt19937(1.5)).toThrow(/seed/);
  });
});

describe(`TorchGenerator vs torch ${fixture.torch} (${fixture.cpuCapability})`, () => {
  it.each(fixture.cases.map((c) => [label(c), c] as const))('randn %s', (_name, c) => {
    checkCase(c, 'avx2');
  });

  it.each(fixture.sequences.map((s) => [s.seed, s.shapes.map((d) => `[${d.join(',')}]`).join(' '), s] as const))(
    'consecutive calls on one generator, seed %s: %s',
    (_seed, _shapes, sq) => {
      checkSequence(sq, 'avx2');
    },
  );

  it('scalar path (numel < 16) matches torch exactly', () => {
    for (const c of fixture.cases) {
      if (!('values' in c) || c.values.length >= 16) continue;
      const got = new TorchGenerator(BigInt(c.seed)).randn(c.shape);
      expect(Array.from(got), label(c)).toEqual(c.values.map((v) => Math.fround(v)));
    }
  });

  it('seeds >= 2**32 (and negative seeds) use only the low 32 bits, as torch does', () => {
    for (const a of fixture.aliases) {
      expect(a.same, `torch: seed ${a.seed} ~ ${a.sameStreamAs}`).toBe(true);
      expect(new TorchGenerator(BigInt(a.seed)).initialSeed.toString()).toBe(a.initialSeed);
      // Same consecutive stream from both seeds (torch checked fresh generators per shape; so do we).
      const g = new TorchGenerator(BigInt(a.seed));
      const h = new TorchGenerator(BigInt(a.sameStreamAs));
      for (const shape of [[3], [17], [1000]]) {
        expect(randnTorch(shape, BigInt(a.seed)).data).toEqual(randnTorch(shape, BigInt(a.sameStreamAs)).data);
        expect(g.randn(shape)).toEqual(h.randn(shape));
      }
    }
    expect(randnTorch([20], 2 ** 32 + 5).data).toEqual(randnTorch([20], 5).data);
  });
});

describe(`TorchGenerator cpuCapability 'default' vs torch (${fixture.defaultCapability.cpuCapability})`, () => {
  it.each(fixture.defaultCapability.cases.map((c) => [label(c), c] as const))('randn %s', (_name, c) => {
    checkCase(c, 'default');
  });

  it('consecutive calls', () => {
    for (const sq of fixture.defaultCapability.sequences) checkSequence(sq, 'default');
  });

  it('differs from the avx2 build only in the last bits, and not at all below 16 elements', () => {
    const a = randnTorch([4096], 0, { cpuCapability: 'avx2' }).data;
    const b = randnTorch([4096], 0, { cpuCapability: 'default' }).data;
    expect(maxAbsDiff(a, Array.from(b))).toBeLessThan(5e-6);
    expect(randnTorch([15], 3, { cpuCapability: 'default' }).data).toEqual(randnTorch([15], 3).data);
  });
});

describe('TorchGenerator behaviour', () => {
  it('is deterministic, and a fresh generator per call in randnTorch', () => {
    expect(randnTorch([2, 3, 5], 11).data).toEqual(randnTorch([2, 3, 5], 11).data);
    expect(randnTorch([2, 3, 5], 11).dims).toEqual([2, 3, 5]);
    const src = normalSourceForSeed(11);
    expect(src.randn([2, 3, 5])).toEqual(randnTorch([2, 3, 5], 11).data);
    expect(src.randn([2, 3, 5])).not.toEqual(randnTorch([2, 3, 5], 11).data);
  });

  it('handles empty and scalar shapes', () => {
    const g = new TorchGenerator(0);
    expect(g.randn([0, 4]).length).toBe(0);
    // An empty draw consumes nothing: the next value is still the stream's first.
    expect(g.randn([])).toEqual(randnTorch([1], 0).data);
  });

  it('the numel < 16 path caches the second Box–Muller value across calls', () => {
    const whole = randnTorch([14], 9).data;
    const g = new TorchGenerator(9);
    const parts = [...g.randn([3]), ...g.randn([5]), ...g.randn([1]), ...g.randn([5])];
    expect(Float32Array.from(parts)).toEqual(whole);
  });

  it('accepts number and bigint seeds alike, and rejects bad seeds and shapes', () => {
    expect(randnTorch([17], 42n).data).toEqual(randnTorch([17], 42).data);
    expect(new TorchGenerator(2n ** 64n - 1n).initialSeed).toBe(2n ** 64n - 1n);
    expect(new TorchGenerator(-1).initialSeed).toBe(2n ** 64n - 1n);
    expect(() => new TorchGenerator(1.5)).toThrow(/safe integer/);
    expect(() => new TorchGenerator(2 ** 60)).toThrow(/bigint/);
    expect(() => new TorchGenerator(Number.NaN)).toThrow(/seed/);
    expect(() => new TorchGenerator(2n ** 64n)).toThrow(/2\*\*64 - 1/);
    expect(() => new TorchGenerator(-(2n ** 63n) - 1n)).toThrow(/-2\*\*63/);
    expect(() => new TorchGenerator(0, { cpuCapability: 'avx512' as TorchCpuCapability })).toThrow(/cpuCapability/);
    const g = new TorchGenerator(0);
    expect(() => g.randn([2, -1])).toThrow(/non-negative integers/);
    expect(() => g.randn([2.5])).toThrow(/non-negative integers/);
  });
});

describe('TorchGenerator statistics (independent of torch)', () => {
  const n = 1_000_000;

  function checkMoments(x: ArrayLike<number>, name: string): void {
    let s = 0;
    let q = 0;
    let within1 = 0;
    let nonFinite = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (!Number.isFinite(v)) nonFinite++;
      s += v;
      q += v * v;
      if (Math.abs(v) < 1) within1++;
    }
    const mean = s / x.length;
    const std = Math.sqrt(q / x.length - mean * mean);
    const k = 4; // standard errors
    expect(Math.abs(mean), `${name} mean`).toBeLessThan(k / Math.sqrt(x.length));
    expect(Math.abs(std - 1), `${name} std`).toBeLessThan(k / Math.sqrt(2 * x.length));
    const p = 0.6826894921370859; // P(|Z| < 1)
    expect(Math.abs(within1 / x.length - p), `${name} P(|x|<1)`).toBeLessThan(k * Math.sqrt((p * (1 - p)) / x.length));
    expect(nonFinite, `${name} non-finite`).toBe(0);
  }

  it('vectorised path: 1e6 draws in one call have mean 0, std 1, P(|x|<1) = 0.6827 within 4 s.e.', () => {
    checkMoments(randnTorch([n], 20240601).data, 'randn([1e6])');
  });

  it('vectorised path with a partial last block (numel % 16 != 0)', () => {
    const g = new TorchGenerator(77);
    const x = new Float32Array(n);
    const m = 1000 + 7;
    for (let off = 0; off < n; off += m) x.set(g.randn([Math.min(m, n - off)]), off);
    checkMoments(x, 'randn([1007]) repeated');
  });

  it('scalar path: 1e6 draws in calls of 7 have mean 0, std 1, P(|x|<1) = 0.6827 within 4 s.e.', () => {
    const g = new TorchGenerator(31337);
    const x = new Float32Array(n);
    for (let off = 0; off < n; off += 7) x.set(g.randn([Math.min(7, n - off)]), off);
    checkMoments(x, 'randn([7]) repeated');
  });
});
