/**
 * `runGeometry` (Dodson & Gao, SPEC §5) on a tiny Fashion-MNIST set: every curve equals the
 * library function called directly on freshly built denoisers with the same inputs, the regime
 * labels follow the curves and thresholds, and `memscope geometry` writes its results and rejects
 * bad flags with exit code 2 naming the flag.
 */
import { runCli } from '../helpers/cli.ts';
import { describe, it, expect, vi, afterEach } from 'vitest';
import { mkdtempSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadFashionMnist } from '../../src/data/fashion-mnist.ts';
import { makeEmpiricalDenoiser } from '../../src/denoisers/empirical.ts';
import { makeGaussianDenoiser } from '../../src/denoisers/gaussian.ts';
import type { CondRef } from '../../src/denoisers/denoiser.ts';
import { type DenoiseFn, generalizationGap, linearityResidual, logSigmaGrid, memorizationRate, posteriorStats, regimeMap, shellCoverage } from '../../src/analysis/geometry.ts';
import { runGeometry, paddedDenoiseFn } from '../../src/study/geometry.ts';
import { pad28to32 } from '../../src/models/model-dir.ts';
import { samplerSigmas } from '../../src/study/swap.ts';
import { parseSchedulerConfig } from '../../src/schedules/config.ts';
import { main } from '../../src/cli/main.ts';
import { useTempCache } from '../helpers/cache.ts';

/** An --out no refusal may create (a fresh path under the OS temp folder). */
const REFUSAL_OUT = join(tmpdir(), `memscope-geometry-refusal-${process.pid}`);

useTempCache('memscope-geometry-');

const train = loadFashionMnist({ split: 'train', limit: 60 }).images;
const test = loadFashionMnist({ split: 'test', limit: 20 }).images;
const sigmas = logSigmaGrid(0.01, 40, 8);

describe('runGeometry', () => {
  it('reproduces every library curve and labels regimes from them', async () => {
    const s = { train, test, sigmas, seed: 5, kappa: 2.5, coverageMin: 0.4, concentrationMin: 0.6, ratio: 0.3, batch: 16 };
    const r = await runGeometry(s);
    expect(r.sigma).toEqual(sigmas);
    expect([r.n, r.m, r.d]).toEqual([60, 20, 784]);

    // independent recomputation with fresh denoisers
    const den = await makeEmpiricalDenoiser(train);
    const lin = await makeGaussianDenoiser(train);
    const D: DenoiseFn = (y, sigma) => den.denoise(y, sigma, new Array<CondRef>(y.dims[0]!).fill(null));
    const L: DenoiseFn = (y, sigma) => lin.denoise(y, sigma);
    const sweep = { sigmas, seed: 5 };
    const pTrain = await posteriorStats(den, train, { ...sweep, sourceIndex: Array.from({ length: 60 }, (_, i) => i) });
    const pTest = await posteriorStats(den, test, sweep);
    const cov = await shellCoverage(train, test, { ...sweep, kappa: 2.5 });
    const res = await linearityResidual(D, L, test, sweep);
    const mem = await memorizationRate(D, test, train, { ...sweep, threshold: 0.3 });
    const gap = await generalizationGap(D, train, test, sweep);
    const linMem = await memorizationRate(L, test, train, { ...sweep, threshold: 0.3 });
    await den.dispose();
    await lin.dispose();

    const close = (a: readonly number[], b: readonly number[], digits = 10): void => {
      expect(a).toHaveLength(b.length);
      a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, digits));
    };
    close(r.posteriorTrain.mSigma, pTrain.mSigma);
    close(r.posteriorTrain.effectiveCount, pTrain.effectiveCount);
    close(r.posteriorTrain.sourceRecovery!, pTrain.sourceRecovery!);
    close(r.posteriorTest.mSigma, pTest.mSigma);
    close(r.posteriorTest.effectiveCountMedian, pTest.effectiveCountMedian);
    expect(r.posteriorTest.sourceRecovery).toBeNull();
    close(r.coverage.coverage, cov.coverage);
    expect(r.coverage.kappa).toBe(2.5);
    close(r.linearity.residual, res.residual, 6);
    close(r.linearity.residualMedian, res.residualMedian, 6);
    close(r.memorization.rate, mem.rate);
    close(r.memorization.medianRatio, mem.medianRatio, 6);
    expect(r.memorization.threshold).toBe(0.3);
    close(r.gap.trainMse, gap.trainMse, 8);
    close(r.gap.testMse, gap.testMse, 8);
    close(r.gap.gap, gap.gap, 8);
    // D_lin's curves come first among the models; at small σ it returns ≈ y, never a training copy
    expect(r.models[0]!.name).toBe('D_lin');
    close(r.models[0]!.memorization.rate, linMem.rate);
    expect(r.models[0]!.memorization.rate[0]).toBe(0);

    // regimes: the library map of the run's own curves, and each label follows the rule
    const rm = regimeMap(sigmas, cov.coverage, pTest.mSigma, { coverageMin: 0.4, concentrationMin: 0.6 });
    expect(r.regimes.labels).toEqual(rm.labels);
    expect(r.regimes.boundaries).toEqual(rm.boundaries);
    r.regimes.labels.forEach((l, i) => {
      const c = r.coverage.coverage[i]!;
      const m = r.posteriorTest.mSigma[i]!;
      expect(l).toBe(c < 0.4 ? 'small' : m < 0.6 ? 'large' : 'medium');
    });
    for (const k of ['small', 'medium', 'large'] as const) {
      const idx = r.regimes.labels.flatMap((l, i) => (l === k ? [i] : []));
      expect(r.regimes[k]).toEqual(idx.length ? [sigmas[idx[0]!], sigmas[idx[idx.length - 1]!]] : null);
    }
    // the grid reaches both ends: uncovered at σ = 0.01, diffuse at σ = 40
    expect(r.regimes.labels[0]).toBe('small');
    expect(r.regimes.labels[7]).toBe('large');
    // D* on its own training images at tiny σ returns the image (recovered source, zero train MSE)
    expect(r.posteriorTrain.sourceRecovery![0]).toBe(1);
    expect(r.gap.trainMse[0]).toBeLessThan(1e-10);
  }, 60_000);
});

describe('paddedDenoiseFn', () => {
  it('D* of the 32×32 padded images, run through the padding, equals D* of the 28×28 images (constant border: same weights)', async () => {
    const tr = loadFashionMnist({ split: 'train', limit: 30 });
    const idx = Array.from({ length: 30 }, (_, i) => i);
    const d28 = await makeEmpiricalDenoiser(tr.images);
    const d32 = await makeEmpiricalDenoiser(pad28to32(tr.images, idx));
    const D28: DenoiseFn = (y, sigma) => d28.denoise(y, sigma, new Array<CondRef>(y.dims[0]!).fill(null));
    const D32 = paddedDenoiseFn((y, sigma) => d32.denoise(y, sigma, new Array<CondRef>(y.dims[0]!).fill(null)), { seed: 3 });
    const y = { dims: [4, 1, 28, 28], data: Float32Array.from(test.data.subarray(0, 4 * 784), (v, i) => v + 0.7 * Math.sin(i)) };
    for (const sigma of [0.05, 0.7, 5]) {
      const a = await D28(y, sigma);
      const b = await D32(y, sigma);
      expect(b.dims).toEqual([4, 1, 28, 28]);
      let err = 0;
      for (let i = 0; i < a.data.length; i++) err = Math.max(err, Math.abs(a.data[i]! - b.data[i]!));
      expect(err).toBeLessThan(2e-4);
    }
    // the identity model returns its input: crop ∘ pad = id
    const id = await paddedDenoiseFn(async (x) => x)(y, 1);
    expect(Array.from(id.data)).toEqual(Array.from(y.data));
    await d28.dispose();
    await d32.dispose();
  });

  it('adds each model\'s per-σ memorization rate and gap, equal to the library calls on σ ≤ sigmaMax', async () => {
    const den = await makeEmpiricalDenoiser(train);
    const D: DenoiseFn = (y, sigma) => den.denoise(y, sigma, new Array<CondRef>(y.dims[0]!).fill(null));
    // a shrunk D*: (D* + y)/2 (not a copy at small σ), used as a "model"
    const half: DenoiseFn = async (y, sigma) => {
      const a = await D(y, sigma);
      return { dims: a.dims, data: a.data.map((v, i) => (v + y.data[i]!) / 2) };
    };
    const r = await runGeometry({ train, test, sigmas, seed: 2, models: [{ name: 'half', denoise: half, sigmaMax: 10 }], linearCurves: false });
    const ms = sigmas.filter((x) => x <= 10);
    expect(r.models[0]!.sigma).toEqual(ms);
    const mem = await memorizationRate(half, test, train, { sigmas: ms, seed: 2 });
    const gap = await generalizationGap(half, { dims: [20, 1, 28, 28], data: train.data.subarray(0, 20 * 784) }, test, { sigmas: ms, seed: 2 });
    expect(r.models[0]!.memorization.rate).toEqual(mem.rate);
    r.models[0]!.gap.testMse.forEach((v, i) => expect(v).toBeCloseTo(gap.testMse[i]!, 8));
    r.models[0]!.gap.trainMse.forEach((v, i) => expect(v).toBeCloseTo(gap.trainMse[i]!, 8));
    await den.dispose();
  }, 60_000);
});

describe('memscope geometry', () => {
  afterEach(() => vi.restoreAllMocks());

  it('writes its results and prints the regime boundaries', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'memscope-geometry-cli-'));
    const out = join(dir, 'g');
    let stdout = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((x) => ((stdout += String(x)), true));
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const code = await main(['geometry', '--train', '40', '--test', '10', '--sigmas', '5', '--out', out]);
      vi.restoreAllMocks();
      expect(code).toBe(0);
      expect(stdout).toMatch(/small .*\nmedium .*\nlarge .*\nboundaries: coverage σ = /);
      for (const f of ['settings.json', 'geometry.json', 'report.html', 'concentration.svg', 'memorization.png', 'gap.svg', 'linearity.svg']) expect(existsSync(join(out, f))).toBe(true);
      const g = JSON.parse(readFileSync(join(out, 'geometry.json'), 'utf8')) as { sigma: number[]; memorization: { ratio: number[][] } };
      expect(g.sigma).toEqual(logSigmaGrid(0.002, 80, 5));
      expect(Array.isArray(g.memorization.ratio[0])).toBe(true);
      expect(g.memorization.ratio[0]).toHaveLength(10);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('--model adds the trained model\'s curves and the trajectory-level swap / under-training table', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'memscope-geometry-model-'));
    const out = join(dir, 'g');
    try {
      const { code, out: stdout, err } = await runCli(['geometry', '--model', 'models/edm-small', '--compare', 'models/edm-small-undertrained', '--test', '6', '--sigmas', '4', '--seeds', '0-3', '--steps', '6', '--band', '0.5-3', '--out', out]);
      expect(err).not.toMatch(/Error/);
      expect(code).toBe(0);
      expect(stdout).toMatch(/edm-small: peak per-σ memorization rate/);
      const sw = JSON.parse(readFileSync(join(out, 'swap.json'), 'utf8')) as { band: { sigmaLo: number; sigmaHi: number }; study: { rows: { name: string; kind: string; samples: number; rate: number; swappedCalls: number | null }[] } };
      expect(sw.band).toEqual({ sigmaLo: 0.5, sigmaHi: 3 });
      expect(sw.study.rows.map((r) => [r.name, r.kind])).toEqual([
        ['edm-small', 'memorizing'],
        ['edm-small-undertrained', 'undertrained'],
        ['D_lin', 'generalizing'],
        ['swap D_lin in [0.5, 3]', 'swap'],
      ]);
      expect(sw.study.rows.every((r) => r.samples === 4)).toBe(true);
      const sig = samplerSigmas('ddim', parseSchedulerConfig({ beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012, num_train_timesteps: 1000, prediction_type: 'epsilon' }), 6);
      expect(sw.study.rows[3]!.swappedCalls).toBeCloseTo(sig.filter((x) => x >= 0.5 && x <= 3).length / 6, 12);
      const g = JSON.parse(readFileSync(join(out, 'geometry.json'), 'utf8')) as { n: number; models: { name: string; sigma: number[] }[] };
      expect(g.n).toBe(100);
      expect(g.models.map((m) => m.name)).toEqual(['D_lin', 'edm-small', 'edm-small-undertrained']);
      expect(Math.max(...g.models[1]!.sigma)).toBeLessThan(15);
      expect(g.models[0]!.sigma).toHaveLength(4);
      expect(existsSync(`${out}.work`)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it.each([
    [['geometry', '--band', '1-2'], /--band: needs --model/],
    [['geometry', '--model', 'models/edm-small', '--band', '3-1'], /--band: expected 0 ≤ LO < HI/],
    // an --out of their own: the default runs/geometry may exist in a working copy
    [['geometry', '--model', 'models/class', '--out', REFUSAL_OUT], /--model: .*text-conditioned/],
    [['geometry', '--model', 'models/nope', '--out', REFUSAL_OUT], /--model: cannot load/],
    [['geometry', '--model', 'models/edm-small', '--target', '2'], /--target/],
    [['geometry', '--sigmas', '0'], /--sigmas/],
    [['geometry', '--sigmas', '1'], /--sigmas: expected an integer ≥ 2/],
    [['geometry', '--kappa', 'x'], /--kappa: expected a number/],
    [['geometry', '--train', '1'], /--train/],
    [['geometry', '--test', '2001'], /--test/],
    [['geometry', '--coverage-min', '2'], /--coverage-min: expected a number in \[0, 1\]/],
    [['geometry', '--sigma-min', '5', '--sigma-max', '1'], /--sigma-max/],
    [['geometry', '--seed', '-1'], /--seed/],
    [['geometry', '--bogus', '1'], /bogus/],
  ])('%j exits 2 naming the argument', async (argv, re) => {
    const { code, err } = await runCli(argv);
    expect(code).toBe(2);
    expect(err).toMatch(re);
    expect(existsSync(REFUSAL_OUT)).toBe(false);
  });
});
