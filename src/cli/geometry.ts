/** `memscope geometry`: Dodson & Gao's noise regimes on the exact empirical denoiser (SPEC §5.1–5.5). */
import { z } from 'zod';
import { join } from 'node:path';
import { parseFlags, validate as validateFlags, positiveInt, finiteNumber, UsageError, asUsage } from './args.ts';
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { logSigmaGrid } from '../analysis/geometry.ts';
import { runGeometry, type GeometryResult } from '../study/geometry.ts';
import { withResultsDir } from '../io/results.ts';
import { writeJsonAtomic, writeFileAtomic } from '../io/atomic.ts';
import { lineChart, type Series } from '../report/svg.ts';
import { writeFigure } from '../report/figure.ts';
import { page, table, fmt, escapeHtml } from '../report/html.ts';

/** Help text of `memscope geometry` (SPEC §5). */
export const GEOMETRY_HELP = `memscope geometry — Dodson & Gao's three noise regimes on the exact empirical denoiser (SPEC §5)

Usage: memscope geometry [flags]
  --train N              training images: the first N of the embedded Fashion-MNIST train split (default 1000, the edm-small size)
  --test M               test images: the first M of the embedded test split (default 200)
  --sigmas N             number of log-spaced noise levels (default 40, at least 2)
  --sigma-min X          smallest σ (default 0.002)     --sigma-max X  largest σ (default 80)
  --seed N               seed of every noise draw (default 0)
  --kappa X              shell half-thickness in units of σ/√2 (default 3)
  --coverage-min X       small regime where C_σ < X (default 0.5)
  --concentration-min X  large regime where the test m_σ < X (default 0.5)
  --ratio X              memorized when ‖x̂ − NN1‖/‖x̂ − NN2‖ < X (default 1/3)
  --out DIR              (default runs/geometry)

On the exact empirical denoiser D* over the training images: posterior concentration m_σ and the
effective number of contributors for noisy train and test inputs, the Gaussian-shell coverage C_σ of
noisy test inputs, the regime map (small: C_σ < coverage-min; else large: m_σ < concentration-min;
else medium, the danger zone), the linearity residual ‖D* − D_lin‖/‖D*‖ (D_lin = Gaussian denoiser
of the same images), the per-σ memorization rate of test images and the train vs test MSE. Writes
settings.json, geometry.json, concentration|memorization|gap|linearity .svg/.png and report.html,
and prints the regime boundaries.
`;

const nonNegInt = (name: string) =>
  z
    .string()
    .regex(/^\s*\d+\s*$/, { message: `expected a non-negative integer (${name})` })
    .transform(Number)
    .refine((v) => Number.isSafeInteger(v), { message: `expected a safe integer (${name})` });
const unit = (name: string) => finiteNumber(name).refine((v) => v >= 0 && v <= 1, { message: `expected a number in [0, 1] (${name})` });
const positive = (name: string) => finiteNumber(name).refine((v) => v > 0, { message: `expected a number > 0 (${name})` });

const Schema = z.object({
  train: positiveInt('train', 12000).refine((v) => v >= 2, { message: 'expected at least 2 training images (train)' }).default(1000),
  test: positiveInt('test', 2000).default(200),
  sigmas: positiveInt('sigmas', 1000).refine((v) => v >= 2, { message: 'expected an integer ≥ 2 (sigmas)' }).default(40),
  'sigma-min': positive('sigma-min').default(0.002),
  'sigma-max': positive('sigma-max').default(80),
  seed: nonNegInt('seed').default(0),
  kappa: finiteNumber('kappa').refine((v) => v >= 0, { message: 'expected a number ≥ 0 (kappa)' }).default(3),
  'coverage-min': unit('coverage-min').default(0.5),
  'concentration-min': unit('concentration-min').default(0.5),
  ratio: positive('ratio').default(1 / 3),
  out: z.string().default('runs/geometry'),
});
const FLAGS = Object.fromEntries(Object.keys(Schema.shape).map((k) => [k, { type: 'string' as const }]));

const REGIME_COLOR = { small: '#7f7f7f', medium: '#d62728', large: '#1f77b4' } as const;

/** A JSON-friendly copy of the result (typed arrays as plain arrays). */
function toJson(r: GeometryResult): unknown {
  return { ...r, memorization: { ...r.memorization, ratio: r.memorization.ratio.map((a) => Array.from(a)), nearest: r.memorization.nearest.map((a) => Array.from(a)) } };
}

/** Vertical dashed lines at the regime boundaries (x in log10 σ), spanning [lo, hi] in y. */
function boundarySeries(r: GeometryResult, lo: number, hi: number): Series[] {
  const b = r.regimes.boundaries;
  const out: Series[] = [];
  if (b.coverage !== null) out.push({ label: `C_σ edge σ=${b.coverage.toPrecision(3)}`, x: [Math.log10(b.coverage), Math.log10(b.coverage)], y: [lo, hi], color: REGIME_COLOR.small, dashed: true, width: 1 });
  if (b.concentration !== null) out.push({ label: `m_σ edge σ=${b.concentration.toPrecision(3)}`, x: [Math.log10(b.concentration), Math.log10(b.concentration)], y: [lo, hi], color: REGIME_COLOR.large, dashed: true, width: 1 });
  return out;
}

/** Parse and run `memscope geometry` (SPEC §5). */
export async function geometryCommand(argv: string[]): Promise<void> {
  const o = validateFlags(Schema, parseFlags(argv, FLAGS));
  if (!(o['sigma-max'] > o['sigma-min'])) throw new UsageError(`--sigma-max: expected a number > --sigma-min = ${o['sigma-min']}, got ${o['sigma-max']}`);
  const sigmas = asUsage(() => logSigmaGrid(o['sigma-min'], o['sigma-max'], o.sigmas));
  const trainSet = loadFashionMnist({ split: 'train', limit: o.train });
  const testSet = loadFashionMnist({ split: 'test', limit: o.test });
  const settings = { seed: o.seed, kappa: o.kappa, coverageMin: o['coverage-min'], concentrationMin: o['concentration-min'], ratio: o.ratio };
  const r = await runGeometry({ train: trainSet.images, test: testSet.images, sigmas, ...settings }, (m) => process.stderr.write(`${m}\n`));
  const x = r.sigma.map((s) => Math.log10(s));
  const xLabel = 'log10 σ';
  const rg = r.regimes;
  const fmtSpan = (s: [number, number] | null): string => (s === null ? 'none' : `σ ∈ [${fmt(s[0])}, ${fmt(s[1])}]`);
  await withResultsDir(o.out, async (dir) => {
    await writeJsonAtomic(join(dir, 'settings.json'), {
      command: 'geometry',
      train: { split: 'train', first: o.train, source: trainSet.source },
      test: { split: 'test', first: o.test, source: testSet.source },
      sigmas,
      ...settings,
    });
    await writeJsonAtomic(join(dir, 'geometry.json'), toJson(r));
    await writeFigure(
      dir,
      'concentration',
      lineChart({
        title: 'm_σ and C_σ (dashed: regime boundaries)',
        width: 640,
        xLabel,
        yLabel: 'm_σ, C_σ',
        series: [
          { label: 'm_σ train', x, y: r.posteriorTrain.mSigma, color: '#ff7f0e' },
          { label: 'm_σ test', x, y: r.posteriorTest.mSigma, color: '#d62728' },
          { label: `C_σ test (κ = ${fmt(r.kappa)})`, x, y: r.coverage.coverage, color: '#2ca02c' },
          ...boundarySeries(r, 0, 1),
        ],
      }),
    );
    await writeFigure(dir, 'memorization', lineChart({ title: `Memorization rate of test images under D* (ratio < ${fmt(r.ratio)})`, width: 640, xLabel, yLabel: 'memorization rate', series: [{ label: 'rate', x, y: r.memorization.rate, color: '#d62728' }, ...boundarySeries(r, 0, 1)] }));
    await writeFigure(
      dir,
      'gap',
      lineChart({
        title: 'Generalization gap of D*: per-pixel MSE',
        width: 640,
        xLabel,
        yLabel: 'MSE per pixel',
        logY: true,
        series: [
          { label: 'train', x, y: r.gap.trainMse, color: '#ff7f0e' },
          { label: 'test', x, y: r.gap.testMse, color: '#1f77b4' },
        ],
      }),
    );
    await writeFigure(
      dir,
      'linearity',
      lineChart({
        title: 'Linearity residual ‖D* − D_lin‖/‖D*‖ (test inputs)',
        width: 640,
        xLabel,
        yLabel: 'relative residual',
        series: [
          { label: 'mean', x, y: r.linearity.residual, color: '#1f77b4' },
          { label: 'median', x, y: r.linearity.residualMedian, color: '#1f77b4', dashed: true },
        ],
      }),
    );
    const regimeRows = (['small', 'medium', 'large'] as const).map((k) => [k, fmtSpan(rg[k]), rg.labels.filter((l) => l === k).length]);
    const gridRows = r.sigma.map((s, i) => [
      fmt(s),
      rg.labels[rg.sigma.indexOf(s)] ?? '—',
      r.posteriorTrain.mSigma[i]!,
      r.posteriorTest.mSigma[i]!,
      r.posteriorTest.effectiveCountMedian[i]!,
      r.coverage.coverage[i]!,
      r.memorization.rate[i]!,
      r.gap.trainMse[i]!,
      r.gap.testMse[i]!,
      r.linearity.residual[i]!,
    ]);
    const b = rg.boundaries;
    const body = [
      `<p>Exact empirical denoiser D* over the first ${r.n} Fashion-MNIST training images; ${r.m} test images; ${r.sigma.length} σ from ${fmt(r.sigma[0]!)} to ${fmt(r.sigma[r.sigma.length - 1]!)}; seed ${o.seed}; ${fmt(r.seconds.total)} s. Plots use log10 σ on the x axis.</p>`,
      '<h2>Regimes</h2>',
      `<p>small: C_σ &lt; ${fmt(rg.coverageMin)}; large: test m_σ &lt; ${fmt(rg.concentrationMin)}; medium otherwise. Boundaries (interpolated): coverage ${b.coverage === null ? 'never crosses' : `σ = ${fmt(b.coverage)}`}, concentration ${b.concentration === null ? 'never crosses' : `σ = ${fmt(b.concentration)}`}.${rg.contiguous ? '' : ' <strong>The labels are not contiguous</strong> (the intervals only span each label).'}</p>`,
      table(['regime', 'grid σ', 'grid points'], regimeRows),
      '<div class="grid"><img src="concentration.svg" width="520" alt="concentration and coverage"><img src="memorization.svg" width="520" alt="memorization rate"><img src="gap.svg" width="520" alt="generalization gap"><img src="linearity.svg" width="520" alt="linearity residual"></div>',
      '<h2>Per σ</h2>',
      table(['σ', 'regime', 'm_σ train', 'm_σ test', 'median 1/Σw² test', 'C_σ', 'memorization rate', 'train MSE', 'test MSE', '‖D* − D_lin‖/‖D*‖'], gridRows),
      `<p>${escapeHtml(trainSet.source.dataset)} (${escapeHtml(trainSet.source.license)}), ${escapeHtml(trainSet.source.copyright)}.</p>`,
    ].join('\n');
    await writeFileAtomic(join(dir, 'report.html'), page('memscope geometry', body));
  });
  const b = rg.boundaries;
  process.stdout.write(`small  (C_σ < ${fmt(rg.coverageMin)}): ${fmtSpan(rg.small)}\n`);
  process.stdout.write(`medium (danger zone): ${fmtSpan(rg.medium)}\n`);
  process.stdout.write(`large  (m_σ < ${fmt(rg.concentrationMin)}): ${fmtSpan(rg.large)}\n`);
  process.stdout.write(`boundaries: coverage σ = ${b.coverage === null ? 'none' : fmt(b.coverage)}, concentration σ = ${b.concentration === null ? 'none' : fmt(b.concentration)}${rg.contiguous ? '' : ' (labels not contiguous)'}\n`);
  const peak = r.memorization.rate.reduce((k, v, i, a) => (v > a[k]! ? i : k), 0);
  const gapPeak = r.gap.gap.reduce((k, v, i, a) => (v > a[k]! ? i : k), 0);
  process.stdout.write(`peak memorization rate ${fmt(r.memorization.rate[peak]!)} at σ = ${fmt(r.sigma[peak]!)}; largest gap ${fmt(r.gap.gap[gapPeak]!)} (test ${fmt(r.gap.testMse[gapPeak]!)} vs train ${fmt(r.gap.trainMse[gapPeak]!)} per pixel) at σ = ${fmt(r.sigma[gapPeak]!)}; ${fmt(r.seconds.total)} s\n`);
  process.stdout.write(`${join(o.out, 'report.html')}\n`);
}
