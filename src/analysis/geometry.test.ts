/**
 * Dodson & Gao's geometric suite (SPEC §5.1–5.5) against independent float64 JS references
 * (brute-force softmax, brute-force shell distances, brute-force nearest neighbours), closed forms
 * (the χ_d law of ‖z‖ for shell coverage, E‖σz‖² = σ²d, the σ → 0 and σ → ∞ limits of D*),
 * constructed neighbours for the ratio test and synthetic curves with known crossings.
 * The noise convention under test: z = randnTorch([m, ...shape], seed), y = fround(x + σz).
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  type DenoiseFn,
  ShellCoverageIndex,
  denoiserFn,
  generalizationGap,
  linearityResidual,
  logSigmaGrid,
  memorizationRate,
  posteriorStats,
  regimeMap,
  shellCoverage,
  timestepFromAlphaBars,
} from './geometry.ts';
import type { Denoiser, NoiseLevel } from '../denoisers/denoiser.ts';
import { makeEmpiricalDenoiser } from '../denoisers/empirical.ts';
import { makeGaussianDenoiser } from '../denoisers/gaussian.ts';
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { disposeAll } from '../graph/session.ts';
import { randnTorch } from '../random/torch.ts';
import { alphaBars, betas } from '../schedules/betas.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { mulberry32 } from '../../test/helpers/random.ts';

afterAll(async () => {
  await disposeAll();
});

function uniform(seed: number, n: number, d: number, scale = 1): Tensor {
  const rng = mulberry32(seed);
  return { dims: [n, d], data: Float32Array.from({ length: n * d }, () => scale * (2 * rng() - 1)) };
}

/** y = fround(x + σz) for the documented noise convention. */
function noisy(x: Tensor, seed: number, sigma: number): Float32Array {
  const z = randnTorch(x.dims, seed).data;
  return Float32Array.from(x.data, (v, i) => v + sigma * z[i]!);
}

function sqd(a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, d: number): number {
  let s = 0;
  for (let j = 0; j < d; j++) s += (a[ao + j]! - b[bo + j]!) ** 2;
  return s;
}

function med(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const h = (s.length - 1) / 2;
  return (s[Math.floor(h)]! + s[Math.ceil(h)]!) / 2;
}

describe('logSigmaGrid', () => {
  it('is ascending, log-uniform, with exact endpoints and the EDM defaults', () => {
    const g = logSigmaGrid();
    expect(g).toHaveLength(40);
    expect(g[0]).toBe(0.002);
    expect(g[39]).toBe(80);
    const r = Math.log(80 / 0.002) / 39;
    for (let k = 1; k < g.length; k++) expect(Math.log(g[k]! / g[k - 1]!)).toBeCloseTo(r, 12);
    expect(logSigmaGrid(1, 100, 3)[1]).toBeCloseTo(10, 12);
  });
  it('rejects bad arguments, naming them', () => {
    expect(() => logSigmaGrid(0, 1)).toThrow(/lo must be finite and > 0/);
    expect(() => logSigmaGrid(1, 1)).toThrow(/hi must be finite and > lo/);
    expect(() => logSigmaGrid(1, 2, 1)).toThrow(/n must be an integer ≥ 2/);
  });
});

describe('posteriorStats (SPEC §5.1)', () => {
  // 30 points in d = 5; row 8 duplicates row 7
  const n = 30;
  const d = 5;
  const X = uniform(11, n, d);
  X.data.set(X.data.subarray(7 * d, 8 * d), 8 * d);
  const src = [0, 3, 7, 8, 12, 19, 21, 25, 28, 29];
  const x: Tensor = { dims: [src.length, d], data: new Float32Array(src.length * d) };
  src.forEach((s, r) => x.data.set(X.data.subarray(s * d, (s + 1) * d), r * d));
  const sigmas = [0.02, 0.2, 0.6, 3];
  const seed = 5;

  it('matches a float64 brute-force softmax (m_σ, 1/Σw² mean and median, source recovery incl. duplicates)', async () => {
    const den = await makeEmpiricalDenoiser({ dims: [n, d], data: X.data });
    // batch 4: 10 rows in three calls
    const got = await posteriorStats(den, x, { sigmas, seed, sourceIndex: src, batch: 4 });
    expect(got.count).toBe(10);
    sigmas.forEach((sigma, k) => {
      const y = noisy(x, seed, sigma);
      const maxw: number[] = [];
      const neff: number[] = [];
      let hits = 0;
      for (let r = 0; r < src.length; r++) {
        const dist = Array.from({ length: n }, (_, i) => sqd(y, r * d, X.data, i * d, d));
        const m0 = Math.min(...dist);
        const e = dist.map((v) => Math.exp(-(v - m0) / (2 * sigma * sigma)));
        const Z = e.reduce((a, b) => a + b, 0);
        const w = e.map((v) => v / Z);
        maxw.push(Math.max(...w));
        neff.push(1 / w.reduce((a, b) => a + b * b, 0));
        const am = dist.indexOf(m0);
        // recovered when the nearest image equals the source image (duplicates count)
        if (sqd(X.data, am * d, X.data, src[r]! * d, d) === 0) hits++;
      }
      // tolerances: the f32/f64 paths bound the logit error by 1e-4 (weights within e^{±2e-4})
      expect(got.mSigma[k]!, `m_σ at σ=${sigma}`).toBeCloseTo(maxw.reduce((a, b) => a + b, 0) / maxw.length, 3);
      const meanNeff = neff.reduce((a, b) => a + b, 0) / neff.length;
      expect(Math.abs(got.effectiveCount[k]! - meanNeff) / meanNeff, `1/Σw² at σ=${sigma}`).toBeLessThan(1e-3);
      expect(Math.abs(got.effectiveCountMedian[k]! - med(neff)) / med(neff)).toBeLessThan(1e-3);
      expect(got.sourceRecovery![k], `recovery at σ=${sigma}`).toBe(hits / src.length);
    });
    // the curves behave as SPEC §5.1 says: concentrated at small σ, diffuse at large σ
    // σ = 0.02: one-hot except rows 7 and 8, whose weight splits between the duplicates (0.5 each)
    expect(got.mSigma[0]!).toBeCloseTo((8 + 2 * 0.5) / 10, 6);
    expect(got.sourceRecovery![0]).toBe(1); // row 8's arg-max is its duplicate 7: still recovered
    expect(got.mSigma[3]).toBeLessThan(0.2);
    expect(got.effectiveCount[3]).toBeGreaterThan(10);
  });

  it('omits sourceRecovery without sourceIndex and rejects bad inputs', async () => {
    const den = await makeEmpiricalDenoiser({ dims: [n, d], data: X.data });
    const got = await posteriorStats(den, x, { sigmas: [0.5], seed });
    expect(got.sourceRecovery).toBeNull();
    await expect(posteriorStats(den, x, { sigmas: [0.5], seed, sourceIndex: [1, 2] })).rejects.toThrow(/sourceIndex must have one entry per row of x \(10\)/);
    await expect(posteriorStats(den, x, { sigmas: [0], seed })).rejects.toThrow(/sigmas\[0\] must be finite and > 0/);
    await expect(posteriorStats(den, { dims: [2, 4], data: new Float32Array(8) }, { sigmas: [1], seed })).rejects.toThrow(/x must be \[n, 5\]/);
  });
});

/** Brute-force min_i |‖y − x_i‖ − σ√d| in float64. */
function bruteDeviation(y: Float32Array, train: Tensor, d: number, sigma: number): number[] {
  const n = train.dims[0]!;
  const m = y.length / d;
  const r = sigma * Math.sqrt(d);
  return Array.from({ length: m }, (_, q) => {
    let best = Infinity;
    for (let i = 0; i < n; i++) best = Math.min(best, Math.abs(Math.sqrt(sqd(y, q * d, train.data, i * d, d)) - r));
    return best;
  });
}

/** Regularized lower incomplete gamma P(a, x) by its power series (float64). */
function gammaP(a: number, x: number): number {
  let term = 1 / a;
  let sum = term;
  for (let k = 1; k < 2000; k++) {
    term *= x / (a + k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  let lg = 0; // log Γ(a) for integer a
  for (let k = 2; k < a; k++) lg += Math.log(k);
  return Math.exp(a * Math.log(x) - x - lg + Math.log(sum));
}

describe('shellCoverage (SPEC §5.2)', () => {
  const d = 6;
  const train = uniform(21, 40, d);
  // test: 15 rows near training images (offset 0.05), 10 far away
  const rng = mulberry32(22);
  const test: Tensor = { dims: [25, d], data: new Float32Array(25 * d) };
  for (let r = 0; r < 25; r++) {
    for (let j = 0; j < d; j++) test.data[r * d + j] = r < 15 ? train.data[(2 * r) * d + j]! + 0.05 * (2 * rng() - 1) : 3 + 2 * rng();
  }
  const sigmas = [0.01, 0.05, 0.2, 0.5, 1, 3, 30];

  for (const kappa of [3, 1]) {
    for (const dtype of ['float32', 'float64'] as const) {
      it(`equals a brute-force float64 computation (κ = ${kappa}, ${dtype} graph)`, async () => {
        const got = await shellCoverage(train, test, { sigmas, seed: 9, kappa, dtype, batch: 7 });
        expect(got.kappa).toBe(kappa);
        expect(got.d).toBe(d);
        let partial = 0;
        sigmas.forEach((sigma, k) => {
          const dev = bruteDeviation(noisy(test, 9, sigma), train, d, sigma);
          const tol = (kappa * sigma) / Math.SQRT2;
          const cov = dev.filter((v) => v <= tol).length / dev.length;
          // exact unless a row sits within the float error of the tolerance (then reported as uncertain)
          expect(Math.abs(got.coverage[k]! - cov), `C at σ=${sigma}`).toBeLessThanOrEqual(got.uncertain[k]!);
          // float64 decides every row; float32 may flag a few rows at σ = 0.01 (tolerance 0.02 in d = 6)
          if (dtype === 'float64') expect(got.uncertain[k]).toBe(0);
          else expect(got.uncertain[k]!).toBeLessThanOrEqual(sigma < 0.05 ? 0.1 : 0);
          expect(got.medianDeviation[k]!, `median deviation at σ=${sigma}`).toBeCloseTo(med(dev.map((v) => v / (sigma / Math.SQRT2))), 3);
          if (cov > 0 && cov < 1) partial++;
        });
        expect(partial, 'the data exercises partial coverage').toBeGreaterThan(0);
        // the far rows are uncovered at small σ; at σ = 30 the shells coincide and C ≈ P(|N(0,1)| ≤ κ)
        expect(got.coverage[0]).toBeLessThan(0.7);
        if (kappa === 3) expect(got.coverage[6]).toBe(1);
        else expect(got.coverage[6]!).toBeGreaterThan(0.5);
      });
    }
  }

  it('matches the χ_d law for test points on a single training point (Monte Carlo, 4000 draws, d = 50)', async () => {
    const D = 50;
    const m = 4000;
    const one: Tensor = { dims: [1, D], data: uniform(3, 1, D).data };
    const tests: Tensor = { dims: [m, D], data: new Float32Array(m * D) };
    for (let r = 0; r < m; r++) tests.data.set(one.data, r * D);
    for (const kappa of [3, 1]) {
      // ‖y − x_0‖ = σ‖z‖, ‖z‖ ~ χ_50: P(|χ − √d| ≤ κ/√2) from the regularized incomplete gamma
      const lo = Math.sqrt(D) - kappa / Math.SQRT2;
      const hi = Math.sqrt(D) + kappa / Math.SQRT2;
      const p = gammaP(D / 2, (hi * hi) / 2) - gammaP(D / 2, (lo * lo) / 2);
      const se = Math.sqrt((p * (1 - p)) / m);
      const got = await shellCoverage(one, tests, { sigmas: [0.01, 1, 10], seed: 77, kappa, batch: 1000 });
      for (const c of got.coverage) expect(Math.abs(c - p), `κ=${kappa}: C=${c} vs ${p} (±4·${se.toFixed(4)})`).toBeLessThan(4 * se + 1e-9);
      // scale invariance: the same z gives the same decisions at every σ
      expect(new Set(got.coverage).size).toBe(1);
    }
    expect(gammaP(25, 25)).toBeGreaterThan(0.45); // sanity of the reference (median of χ²_50/2 ≈ 24.7)
  });

  it('a point at distance 10 is uncovered at small σ and covered at large σ (d = 50)', async () => {
    const D = 50;
    const x0: Tensor = { dims: [1, D], data: new Float32Array(D) };
    const far: Tensor = { dims: [64, D], data: new Float32Array(64 * D) };
    for (let r = 0; r < 64; r++) far.data[r * D] = 10;
    const got = await shellCoverage(x0, far, { sigmas: [0.01, 0.1, 100], seed: 1 });
    expect(got.coverage).toEqual([0, 0, 1]);
  });

  it('works on Fashion-MNIST (d = 784) against brute force, and reuses a prebuilt index', async () => {
    const tr = loadFashionMnist({ split: 'train', limit: 300 }).images;
    const te = loadFashionMnist({ split: 'test', limit: 40 }).images;
    const index = await ShellCoverageIndex.create(tr);
    const s = [0.05, 0.2, 0.3, 0.5, 2];
    const got = await shellCoverage(index, te, { sigmas: s, seed: 4, batch: 16 });
    s.forEach((sigma, k) => {
      const dev = bruteDeviation(noisy(te, 4, sigma), tr, 784, sigma);
      const cov = dev.filter((v) => v <= (3 * sigma) / Math.SQRT2).length / dev.length;
      expect(Math.abs(got.coverage[k]! - cov), `σ=${sigma}`).toBeLessThanOrEqual(got.uncertain[k]!);
      expect(got.medianDeviation[k]!).toBeCloseTo(med(dev.map((v) => v / (sigma / Math.SQRT2))), 2);
    });
    expect(got.coverage[0]).toBe(0);
    expect(got.coverage[4]).toBe(1);
    // direct per-row deviations agree with brute force to float32 precision (absolute 1e-3 on ‖·‖ ≈ 10)
    const y = noisy(te, 4, 0.3);
    const dv = await index.deviations({ dims: [40, 1, 28, 28], data: y }, 0.3);
    const ref = bruteDeviation(y, tr, 784, 0.3);
    for (let r = 0; r < 40; r++) expect(Math.abs(dv.deviation[r]! - ref[r]!)).toBeLessThan(Math.max(1e-3, dv.errorBound[r]!));
    await index.dispose();
  });

  it('scales to the 12,000 × 784 training split (16 test rows, brute force on the same rows)', async () => {
    const tr = loadFashionMnist({ split: 'train' }).images;
    const te = loadFashionMnist({ split: 'test', limit: 16 }).images;
    const got = await shellCoverage(tr, te, { sigmas: [0.25], seed: 2 });
    const dev = bruteDeviation(noisy(te, 2, 0.25), tr, 784, 0.25);
    const cov = dev.filter((v) => v <= (3 * 0.25) / Math.SQRT2).length / 16;
    expect(Math.abs(got.coverage[0]! - cov)).toBeLessThanOrEqual(got.uncertain[0]!);
  });

  it('rejects bad arguments', async () => {
    await expect(shellCoverage(train, test, { sigmas: [1], seed: 1, kappa: -1 })).rejects.toThrow(/kappa must be finite and ≥ 0/);
    await expect(shellCoverage(train, { dims: [2, 5], data: new Float32Array(10) }, { sigmas: [1], seed: 1 })).rejects.toThrow(/different image shapes/);
    await expect(shellCoverage(train, test, { sigmas: [], seed: 1 })).rejects.toThrow(/sigmas is empty/);
  });
});

describe('linearityResidual (SPEC §5.3)', async () => {
  const d = 5;
  const train = uniform(31, 40, d);
  const x = uniform(32, 12, d);
  const emp = await makeEmpiricalDenoiser(train);
  const lin = await makeGaussianDenoiser(train, { cache: false });
  const Dstar: DenoiseFn = (y, s) => emp.denoise(y, s, new Array(y.dims[0]).fill(null));
  const Dlin: DenoiseFn = (y, s) => lin.denoise(y, s);

  it('at σ → 0 equals ‖NN(y) − y‖/‖NN(y)‖ (D* → nearest image, D_lin → identity)', async () => {
    const sigma = 1e-3;
    const got = await linearityResidual(Dstar, Dlin, x, { sigmas: [sigma], seed: 3, batch: 5 });
    const y = noisy(x, 3, sigma);
    const ref: number[] = [];
    for (let r = 0; r < 12; r++) {
      const dist = Array.from({ length: 40 }, (_, i) => sqd(y, r * d, train.data, i * d, d));
      const nn = dist.indexOf(Math.min(...dist));
      let nrm = 0;
      for (let j = 0; j < d; j++) nrm += train.data[nn * d + j]! ** 2;
      ref.push(Math.sqrt(dist[nn]! / nrm));
    }
    // D_lin(y) − y = −σ²(Σ+σ²I)⁻¹(y−μ): relative effect ≲ σ²/λ_min ≈ 1e-4 here
    expect(got.residual[0]!).toBeCloseTo(ref.reduce((a, b) => a + b, 0) / ref.length, 3);
    expect(got.residualMedian[0]!).toBeCloseTo(med(ref), 3);
  });

  it('vanishes at large σ like 1/σ² (D* − D_lin is a third-moment term / σ²)', async () => {
    const got = await linearityResidual(Dstar, Dlin, x, { sigmas: [0.3, 30, 300], seed: 3 });
    expect(got.residual[0]).toBeGreaterThan(0.1); // medium σ: far from linear
    expect(got.residual[1]).toBeLessThan(1e-2);
    expect(got.residual[2]).toBeLessThan(1e-4);
    const slope = Math.log(got.residual[1]! / got.residual[2]!) / Math.log(10);
    expect(slope, `decay exponent ${slope}`).toBeGreaterThan(1.7);
    expect(slope).toBeLessThan(2.3);
  });

  it('is exactly 0 when both sides are the same denoiser', async () => {
    const got = await linearityResidual(Dlin, Dlin, x, { sigmas: [0.1, 1], seed: 1 });
    expect(got.residual).toEqual([0, 0]);
  });
});

describe('memorizationRate (SPEC §5.4)', () => {
  // well-separated training images 10·e_i in d = 20
  const n = 20;
  const d = 20;
  const train: Tensor = { dims: [n, d], data: new Float32Array(n * d) };
  for (let i = 0; i < n; i++) train.data[i * d + i] = 10;
  const test = uniform(41, 12, d);
  /** A denoiser returning x_a + t(x_b − x_a) for row r, with (a, b, t) from `pick(r)`. */
  const between =
    (pick: (r: number) => [number, number, number]): DenoiseFn =>
    async (y) => {
      const B = y.dims[0]!;
      const out = new Float32Array(B * d);
      for (let r = 0; r < B; r++) {
        const [a, b, t] = pick(r);
        for (let j = 0; j < d; j++) out[r * d + j] = (1 - t) * train.data[a * d + j]! + t * train.data[b * d + j]!;
      }
      return { dims: [...y.dims], data: out };
    };

  it('an exact copy of a training image is memorized (ratio 0, rate 1) and its index reported', async () => {
    const got = await memorizationRate(between(() => [5, 6, 0]), test, train, { sigmas: [0.1, 1, 10], seed: 1, batch: 5 });
    expect(got.rate).toEqual([1, 1, 1]);
    expect(got.medianRatio).toEqual([0, 0, 0]);
    expect([...got.nearest[1]!]).toEqual(new Array(12).fill(5));
  });

  it('the midpoint of two training images has ratio 1 (rate 0)', async () => {
    const got = await memorizationRate(between(() => [2, 9, 0.5]), test, train, { sigmas: [0.5], seed: 1 });
    expect(got.rate[0]).toBe(0);
    expect(got.medianRatio[0]!).toBeCloseTo(1, 6);
  });

  it('x_a + t(x_b − x_a) has ratio t/(1−t); the threshold is strict and configurable', async () => {
    // rows alternate t = 0.2 (ratio 0.25) and t = 0.3 (ratio 3/7 ≈ 0.4286)
    const dn = between((r) => [1, 4, r % 2 === 0 ? 0.2 : 0.3]);
    const def = await memorizationRate(dn, test, train, { sigmas: [1], seed: 2 });
    expect(def.threshold).toBeCloseTo(1 / 3, 15);
    expect(def.rate[0]).toBe(0.5);
    for (let r = 0; r < 12; r++) expect(def.ratio[0]![r]!).toBeCloseTo(r % 2 === 0 ? 0.25 : 3 / 7, 6);
    expect((await memorizationRate(dn, test, train, { sigmas: [1], seed: 2, threshold: 0.5 })).rate[0]).toBe(1);
    expect((await memorizationRate(dn, test, train, { sigmas: [1], seed: 2, threshold: 0.2 })).rate[0]).toBe(0);
    await expect(memorizationRate(dn, test, train, { sigmas: [1], seed: 2, threshold: 0 })).rejects.toThrow(/threshold must be finite and > 0/);
  });

  it('with the empirical denoiser: test = training images are copied at small σ, not at large σ', async () => {
    const emp = await makeEmpiricalDenoiser(train);
    const dn: DenoiseFn = (y, s) => emp.denoise(y, s, new Array(y.dims[0]).fill(null));
    const copies: Tensor = { dims: [8, d], data: train.data.slice(0, 8 * d) };
    const seen: number[] = [];
    const spy: DenoiseFn = (y, s) => {
      seen.push(s);
      return dn(y, s);
    };
    const got = await memorizationRate(spy, copies, train, { sigmas: [0.1, 1000], seed: 3, batch: 3 });
    expect(seen).toEqual([0.1, 0.1, 0.1, 1000, 1000, 1000]);
    expect(got.rate).toEqual([1, 0]);
    expect([...got.nearest[0]!]).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // D* → the mean at σ → ∞: equidistant from every 10·e_i
    expect(got.medianRatio[1]!).toBeGreaterThan(0.99);
  });
});

describe('generalizationGap (SPEC §5.5)', async () => {
  const d = 10;
  const train = uniform(51, 40, d);
  const test = uniform(52, 200, d);

  it('the identity denoiser gives σ²·mean(z²) exactly and σ² within Monte Carlo', async () => {
    const identity: DenoiseFn = async (y) => y;
    const sigmas = [0.1, 1, 7];
    const got = await generalizationGap(identity, train, test, { sigmas, seed: 6, batch: 64 });
    expect(got.d).toBe(d);
    const zTest = randnTorch(test.dims, 6).data;
    const zTrain = randnTorch(train.dims, 6).data;
    const mz = (z: Float32Array): number => z.reduce((a, b) => a + b * b, 0) / z.length;
    sigmas.forEach((s, k) => {
      expect(got.testMse[k]! / (s * s * mz(zTest))).toBeCloseTo(1, 5);
      expect(got.trainMse[k]! / (s * s * mz(zTrain))).toBeCloseTo(1, 5);
      // 2000 test values: relative SE √(2/2000) ≈ 3.2 %; 4 SE
      expect(Math.abs(got.testMse[k]! / (s * s) - 1)).toBeLessThan(0.13);
      expect(got.gap[k]).toBeCloseTo(got.testMse[k]! - got.trainMse[k]!, 12);
    });
  });

  it('the empirical denoiser at small σ: ~0 training error, test error = distance to the nearest image', async () => {
    const emp = await makeEmpiricalDenoiser(train);
    const dn: DenoiseFn = (y, s) => emp.denoise(y, s, new Array(y.dims[0]).fill(null));
    const sigma = 0.005;
    const got = await generalizationGap(dn, train, test, { sigmas: [sigma], seed: 8 });
    expect(got.trainMse[0]).toBeLessThan(1e-12);
    const y = noisy(test, 8, sigma);
    let s = 0;
    for (let r = 0; r < 200; r++) {
      const dist = Array.from({ length: 40 }, (_, i) => sqd(y, r * d, train.data, i * d, d));
      const nn = dist.indexOf(Math.min(...dist));
      s += sqd(train.data, nn * d, test.data, r * d, d);
    }
    const ref = s / (200 * d);
    expect(ref).toBeGreaterThan(0.05);
    expect(Math.abs(got.testMse[0]! - ref) / ref).toBeLessThan(1e-5);
    expect(got.gap[0]).toBeGreaterThan(0.05);
  });
});

describe('regimeMap (SPEC §5.3)', () => {
  // grid 10^(−2 + k/10), k = 0..40; curves linear in log10 σ around their crossings
  const sigma = logSigmaGrid(0.01, 100, 41);
  const clamp = (v: number): number => Math.min(1, Math.max(0, v));
  const cov = (c0: number): number[] => sigma.map((s) => clamp(0.5 + 0.5 * (Math.log10(s) - Math.log10(c0))));
  const conc = (m0: number): number[] => sigma.map((s) => clamp(0.5 - 0.4 * (Math.log10(s) - Math.log10(m0))));
  const g = (e: number): number => 10 ** e;

  it('finds the known crossings (coverage at 0.13, concentration at 4.2)', () => {
    const r = regimeMap(sigma, cov(0.13), conc(4.2));
    expect(r.small![0]).toBeCloseTo(0.01, 12);
    expect(r.small![1]).toBeCloseTo(g(-0.9), 10);
    expect(r.medium![0]).toBeCloseTo(g(-0.8), 10);
    expect(r.medium![1]).toBeCloseTo(g(0.6), 10);
    expect(r.large![0]).toBeCloseTo(g(0.7), 10);
    expect(r.large![1]).toBeCloseTo(100, 10);
    expect(r.contiguous).toBe(true);
    expect(r.boundaries.coverage!).toBeCloseTo(0.13, 9);
    expect(r.boundaries.concentration!).toBeCloseTo(4.2, 9);
    expect(r.coverageMin).toBe(0.5);
    expect(r.concentrationMin).toBe(0.5);
    expect(r.labels.filter((l) => l === 'medium')).toHaveLength(15);
  });

  it('has no danger zone when concentration is lost before coverage is reached (coverage takes precedence)', () => {
    const r = regimeMap(sigma, cov(5), conc(0.2));
    expect(r.medium).toBeNull();
    expect(r.small![1]).toBeCloseTo(g(0.6), 10); // uncovered points are small even when diffuse
    expect(r.large![0]).toBeCloseTo(g(0.7), 10);
  });

  it('uses the thresholds given, sorts the grid, and flags non-contiguous labels', () => {
    const c = cov(0.13);
    const m = conc(4.2);
    const r = regimeMap(sigma, c, m, { coverageMin: 0.9 });
    // C ≥ 0.9 ⇔ log10 σ ≥ log10 0.13 + 0.8 ⇔ σ ≥ 0.82
    expect(r.medium![0]).toBeCloseTo(g(-0.0), 10);
    expect(r.boundaries.coverage!).toBeCloseTo(0.13 * g(0.8), 9);
    const rev = regimeMap([...sigma].reverse(), [...c].reverse(), [...m].reverse());
    expect(rev.medium).toEqual(regimeMap(sigma, c, m).medium);
    const noisyM = [...m];
    noisyM[30] = 0.9; // a concentrated blip inside the large regime
    const rn = regimeMap(sigma, c, noisyM);
    expect(rn.contiguous).toBe(false);
    expect(rn.medium![1]).toBeCloseTo(sigma[30]!, 10);
    expect(() => regimeMap(sigma, c.slice(1), m)).toThrow(/equal lengths/);
    expect(() => regimeMap(sigma, c, m, { concentrationMin: 2 })).toThrow(/concentrationMin must be in \[0, 1\]/);
  });
});

describe('denoiserFn and timesteps (SPEC §0)', async () => {
  const d = 6;
  const train = uniform(61, 50, d);
  const lin = await makeGaussianDenoiser(train, { cache: false });
  const y: Tensor = { dims: [7, d], data: uniform(62, 7, d, 2).data };

  it('recovers D_lin from the Gaussian denoiser’s ε (|Δ| ≤ 1e-5·(1+σ))', async () => {
    const D = denoiserFn(lin, 'unused');
    for (const sigma of [0.01, 0.5, 3, 40]) {
      const a = await D(y, sigma);
      const b = await lin.denoise(y, sigma);
      let err = 0;
      for (let i = 0; i < a.data.length; i++) err = Math.max(err, Math.abs(a.data[i]! - b.data[i]!));
      expect(err, `σ=${sigma}`).toBeLessThan(1e-5 * (1 + sigma));
    }
    await expect(D(y, 0)).rejects.toThrow(/σ must be finite and > 0/);
    await expect(D({ dims: [1, 5], data: new Float32Array(5) }, 1)).rejects.toThrow(/y must be \[B, 6\]/);
  });

  it('passes x_t = √ᾱ·y, ᾱ = 1/(1+σ²), t from the schedule and the condition', async () => {
    const seen: { level: NoiseLevel; cond: unknown[]; xt: number }[] = [];
    const fake: Denoiser = {
      name: 'fake',
      space: 'pixel',
      shape: [d],
      conditions: [{ id: 'class:0', kind: 'class', label: 'zero' }],
      predict: async (xt, level, cond) => {
        seen.push({ level, cond: [...cond], xt: xt.data[0]! });
        return { dims: [...xt.dims], data: new Float32Array(xt.data.length) };
      },
    };
    const ab = alphaBars(betas('scaled_linear', { betaStart: 0.00085, betaEnd: 0.012 }));
    const s500 = Math.sqrt((1 - ab[500]!) / ab[500]!);
    const out = await denoiserFn(fake, { alphaBars: ab }, { cond: 0 })(y, s500);
    expect(seen[0]!.level.t).toBeCloseTo(500, 6);
    expect(seen[0]!.level.alphaBar).toBeCloseTo(1 / (1 + s500 * s500), 15);
    expect(seen[0]!.cond).toEqual(new Array(7).fill(0));
    expect(seen[0]!.xt).toBeCloseTo(y.data[0]! / Math.sqrt(1 + s500 * s500), 6);
    // ε = 0 ⇒ D = x_t/√ᾱ = y
    expect(out.data[3]!).toBeCloseTo(y.data[3]!, 5);
    // the same schedule from an SD config, and 'unused' ⇒ t = NaN
    await denoiserFn(fake, { config: { beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012 } })(y, s500);
    expect(seen[1]!.level.t).toBeCloseTo(500, 6);
    await denoiserFn(fake, 'unused')(y, 1);
    expect(Number.isNaN(seen[2]!.level.t)).toBe(true);
    expect(seen[2]!.cond).toEqual(new Array(7).fill(null));
    // a model that turns t = NaN into NaN is caught, with a hint
    const nanModel: Denoiser = { ...fake, predict: async (xt, level) => ({ dims: [...xt.dims], data: new Float32Array(xt.data.length).fill(level.t) }) };
    await expect(denoiserFn(nanModel, 'unused')(y, 1)).rejects.toThrow(/non-finite ε̂ \(NaN\) at σ = 1, t = NaN.*needs a timestep source/);
  });

  it('timestepFromAlphaBars inverts the piecewise-linear σ(t), rounds, and clamps', () => {
    const ab = alphaBars(betas('linear'));
    const sig = Array.from(ab, (a) => Math.sqrt((1 - a) / a));
    const interp = timestepFromAlphaBars(ab);
    const near = timestepFromAlphaBars(ab, 'nearest');
    const toAb = (s: number): number => 1 / (1 + s * s);
    // σ at t = 300.25 on the linear interpolation of the σ table
    const s = sig[300]! + 0.25 * (sig[301]! - sig[300]!);
    expect(interp(toAb(s))).toBeCloseTo(300.25, 6);
    expect(near(toAb(s))).toBe(300);
    expect(near(toAb(sig[301]! - 0.1 * (sig[301]! - sig[300]!)))).toBe(301);
    expect(interp(toAb(sig[0]! / 2))).toBe(0);
    expect(interp(toAb(sig[999]! * 2))).toBe(999);
    expect(() => timestepFromAlphaBars([0.9, 0.95])).toThrow(/must decrease strictly/);
  });
});
