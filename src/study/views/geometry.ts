/** The report section of a geometry study (Dodson & Gao: concentration, coverage, regimes, per-σ memorization, gap, linearity). */
import type { GeometryResult } from '../geometry.ts';
import type { SwapStudyResult, BandSearch } from '../swap.ts';
import type { SwapBand } from '../../denoisers/swap.ts';
import { rateText } from '../../analysis/verdict.ts';
import { lineChart, type Series } from '../../report/line.ts';
import { fmt, table } from '../../report/html.ts';
import type { Section } from '../../report/section.ts';

const REGIME_COLOR = { small: '#7f7f7f', medium: '#d62728', large: '#1f77b4' } as const;

/** Vertical dashed lines at the regime boundaries (x in log10 σ), spanning [lo, hi] in y. */
function boundarySeries(r: GeometryResult, lo: number, hi: number): Series[] {
  const b = r.regimes.boundaries;
  const out: Series[] = [];
  if (b.coverage !== null) out.push({ label: `C_σ edge σ=${b.coverage.toPrecision(3)}`, x: [Math.log10(b.coverage), Math.log10(b.coverage)], y: [lo, hi], color: REGIME_COLOR.small, dashed: true, width: 1 });
  if (b.concentration !== null) out.push({ label: `m_σ edge σ=${b.concentration.toPrecision(3)}`, x: [Math.log10(b.concentration), Math.log10(b.concentration)], y: [lo, hi], color: REGIME_COLOR.large, dashed: true, width: 1 });
  return out;
}

/** Shaded regime bands (small grey, medium red, large blue) spanning [lo, hi] in y, x in log10 σ from grid midpoints. */
function regimeBands(r: GeometryResult, lo: number, hi: number): Series[] {
  const x = r.sigma.map((v) => Math.log10(v));
  const edge = (i: number): number => (i <= 0 ? x[0]! : i >= x.length ? x[x.length - 1]! : (x[i - 1]! + x[i]!) / 2);
  const out: Series[] = [];
  let start = 0;
  const labels = r.regimes.labels;
  for (let i = 1; i <= labels.length; i++) {
    if (i < labels.length && labels[i] === labels[start]) continue;
    const k = labels[start]!;
    const a = edge(start);
    const b = edge(i);
    out.push({ label: k === 'medium' ? 'danger zone' : `${k} σ`, x: [a, b], y: [lo, lo], color: REGIME_COLOR[k], width: 0, band: { lo: [lo, lo], hi: [hi, hi] } });
    start = i;
  }
  return out;
}

const MODEL_COLORS = ['#d62728', '#2ca02c', '#1f77b4', '#9467bd', '#8c564b', '#e377c2'];

function argmax(v: readonly number[]): number {
  return v.reduce((k, x, i, a) => (x > a[k]! ? i : k), 0);
}

/** A regime's σ span as text. */
export function fmtSpan(s: readonly [number, number] | null): string {
  return s === null ? 'none' : `σ ∈ [${fmt(s[0])}, ${fmt(s[1])}]`;
}

/**
 * The section of a geometry result: `intro` (trusted HTML) and the regimes above the four figures
 * (x: log10 σ); the trained models' peaks, `extra` (trusted HTML, e.g. the swap tables) and the
 * per-σ table below.
 */
export function geometrySection(r: GeometryResult, intro: string, extra: readonly string[] = []): Section {
  const x = r.sigma.map((s) => Math.log10(s));
  const xLabel = 'log10 σ';
  const rg = r.regimes;
  const figures = [
    { name: 'concentration', caption: 'concentration and coverage', width: 520, spec: lineChart({
      title: 'm_σ and C_σ (shaded: small / medium / large regimes)',
      width: 640,
      xLabel,
      yLabel: 'm_σ, C_σ',
      series: [
        { label: 'm_σ train', x, y: r.posteriorTrain.mSigma, color: '#ff7f0e' },
        { label: 'm_σ test', x, y: r.posteriorTest.mSigma, color: '#d62728' },
        { label: `C_σ test (κ = ${fmt(r.kappa)})`, x, y: r.coverage.coverage, color: '#2ca02c' },
        ...regimeBands(r, 0, 1),
        ...boundarySeries(r, 0, 1),
      ],
    }) },
    { name: 'memorization', caption: 'memorization rate', width: 520, spec: lineChart({
      title: `Per-σ memorization rate of test images (ratio < ${fmt(r.ratio)})`,
      width: 640,
      xLabel,
      yLabel: 'memorization rate',
      series: [{ label: 'D*', x, y: r.memorization.rate, color: '#7f7f7f', dashed: true }, ...r.models.map((m, i) => ({ label: m.name, x: m.sigma.map((v) => Math.log10(v)), y: m.memorization.rate, color: MODEL_COLORS[i % MODEL_COLORS.length]! })), ...boundarySeries(r, 0, 1)],
    }) },
    { name: 'gap', caption: 'generalization gap', width: 520, spec: lineChart({
      title: 'Generalization gap: per-pixel MSE, train (dashed) vs test',
      width: 640,
      xLabel,
      yLabel: 'MSE per pixel',
      logY: true,
      series: [
        { label: 'D* train', x, y: r.gap.trainMse, color: '#7f7f7f', dashed: true },
        { label: 'D* test', x, y: r.gap.testMse, color: '#7f7f7f' },
        ...r.models.flatMap((m, i) => [
          { label: `${m.name} train`, x: m.sigma.map((v) => Math.log10(v)), y: m.gap.trainMse, color: MODEL_COLORS[i % MODEL_COLORS.length]!, dashed: true },
          { label: `${m.name} test`, x: m.sigma.map((v) => Math.log10(v)), y: m.gap.testMse, color: MODEL_COLORS[i % MODEL_COLORS.length]! },
        ]),
      ],
    }) },
    { name: 'linearity', caption: 'linearity residual', width: 520, spec: lineChart({
      title: 'Linearity residual ‖D* − D_lin‖/‖D*‖ (test inputs)',
      width: 640,
      xLabel,
      yLabel: 'relative residual',
      series: [
        { label: 'mean', x, y: r.linearity.residual, color: '#1f77b4' },
        { label: 'median', x, y: r.linearity.residualMedian, color: '#1f77b4', dashed: true },
      ],
    }) },
  ];
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
  return {
    head: [
      intro,
      '<h2>Regimes</h2>',
      `<p>small: C_σ &lt; ${fmt(rg.coverageMin)}; large: test m_σ &lt; ${fmt(rg.concentrationMin)}; medium otherwise. Boundaries (interpolated): coverage ${b.coverage === null ? 'never crosses' : `σ = ${fmt(b.coverage)}`}, concentration ${b.concentration === null ? 'never crosses' : `σ = ${fmt(b.concentration)}`}.${rg.contiguous ? '' : ' <strong>The labels are not contiguous</strong> (the intervals only span each label).'}</p>`,
      table(['regime', 'grid σ', 'grid points'], regimeRows),
    ].join('\n'),
    figures,
    tail: [
      ...(r.models.length ? ['<h2>Trained models per σ</h2>', table(['model', 'peak per-σ memorization rate', 'at σ', 'largest gap (test − train MSE)', 'at σ'], r.models.map((m) => { const p = argmax(m.memorization.rate); const g = argmax(m.gap.gap); return [m.name, m.memorization.rate[p]!, fmt(m.sigma[p]!), m.gap.gap[g]!, fmt(m.sigma[g]!)]; }))] : []),
      ...extra,
      '<h2>Per σ</h2>',
      table(['σ', 'regime', 'm_σ train', 'm_σ test', 'median 1/Σw² test', 'C_σ', 'memorization rate', 'train MSE', 'test MSE', '‖D* − D_lin‖/‖D*‖'], gridRows),
    ].join('\n'),
  };
}

/** What `memscope geometry` keeps in the store for the swap table of a run (swap.json). */
export interface SwapTable {
  readonly study: SwapStudyResult;
  readonly search: BandSearch | null;
  readonly band: SwapBand | null;
}

/** The trajectory-level swap / under-training table (docs/methods.md §5.6) and the band search, as HTML blocks. */
export function swapHtml(swap: SwapTable): string[] {
  const st = swap.study;
  const rows = st.rows.map((row) => [row.name, row.kind, row.band ? `[${fmt(row.band.sigmaLo)}, ${fmt(row.band.sigmaHi)}]` : '—', row.samples, rateText(row.rate, row.samples), row.medianRatio, row.sameNearest === null ? '—' : `${(100 * row.sameNearest).toFixed(0)} %`, row.frechet === null ? '—' : row.frechet, row.swappedCalls === null ? '—' : `${(100 * row.swappedCalls).toFixed(0)} %`]);
  const out = [
    '<h2>Mitigations at the trajectory level (docs/methods.md §5.6)</h2>',
    `<p>Unconditional samples on the same seeds; memorized when d1/d2 &lt; ${fmt(st.threshold)} against the model's training images. Fréchet distance of classifier features to the held-out images; a same-size set of real training images reaches ${st.frechetFloor === null ? '—' : fmt(st.frechetFloor)}. "same NN" = samples whose nearest training image is that of the memorizing model's sample of the same seed.</p>`,
    table(['variant', 'kind', 'band σ', 'samples', 'memorization rate [95 % Wilson]', 'median d1/d2', 'same NN', 'Fréchet', 'calls swapped'], rows),
  ];
  if (swap.search) {
    const s = swap.search;
    out.push(`<h3>Band search (target rate ≤ ${fmt(s.target)}; model alone ${(100 * s.baseRate).toFixed(1)} %)</h3>`);
    out.push(`<p>${s.baseRate <= s.target ? 'The model alone is already under the target: no band needed.' : s.best ? `Narrowest band: [${fmt(s.best.band.sigmaLo)}, ${fmt(s.best.band.sigmaHi)}] (${s.best.stepsInBand} sampler steps) → ${(100 * s.best.rate).toFixed(1)} %.` : 'No tried band reaches the target.'} Candidate edges: ${s.edges.map((e) => fmt(e)).join(', ')}.</p>`);
    out.push(table(['band σ', 'steps in band', 'memorization rate', 'Fréchet'], s.trials.map((t) => [`[${fmt(t.band.sigmaLo)}, ${fmt(t.band.sigmaHi)}]`, t.stepsInBand, `${(100 * t.rate).toFixed(1)} %`, t.frechet ?? '—'])));
  }
  return out;
}
