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
import { runGeometry } from '../../src/study/geometry.ts';
import { main } from '../../src/cli/main.ts';
import { useTempCache } from '../helpers/cache.ts';

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

  it.each([
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
  });
});
