/** The report section of a curves study (Jain et al.: ‖ε_c − ε_u‖ along denoising, static transition points). */
import type { CurvesResult, CurveMode, GroupCurves } from '../curves.ts';
import { lineChart, type Marker, type Series } from '../../report/line.ts';
import { escapeHtml, fmt, table } from '../../report/html.ts';
import type { Section } from '../../report/section.ts';

/** The label of a guidance mode at scale s. */
export function curveModeLabel(m: CurveMode, s: number): string {
  return m === 'zero' ? 's = 0' : m === 'cfg' ? `CFG s = ${s}` : `OG s = ${s}`;
}

/** Figures `d` and `norms` and the transition table of a curves result; `intro` is trusted HTML (default none). */
export function curvesSection(r: CurvesResult, intro = ''): Section {
  const x = r.t.map((_, i) => i);
  const dash = { zero: true, cfg: false, og: true } as const;
  const dSeries: Series[] = [];
  const markers: Marker[] = [];
  for (const m of r.modes) {
    for (const [g, color] of [['memorized', '#d62728'], ['normal', '#1f77b4']] as const) {
      const c: GroupCurves | null = m[g];
      if (!c) continue;
      dSeries.push({
        label: `${g}, ${curveModeLabel(m.mode, m.scale)}`,
        x,
        y: c.diff.mean,
        color: m.mode === 'og' ? (g === 'memorized' ? '#ff7f0e' : '#17becf') : color,
        dashed: dash[m.mode],
        ...(m.mode === 'cfg' ? { band: { lo: c.diff.mean.map((v, i) => v - c.diff.std[i]!), hi: c.diff.mean.map((v, i) => v + c.diff.std[i]!) } } : {}),
      });
      if (m.mode === 'cfg' && c.staticTransition !== null) markers.push({ x: c.staticTransition, label: `${g} STP`, color });
    }
  }
  const cfgMode = r.modes.find((m) => m.mode === 'cfg') ?? r.modes[0]!;
  const nSeries: Series[] = [];
  for (const [g, color] of [['memorized', '#d62728'], ['normal', '#1f77b4']] as const) {
    const c = cfgMode[g];
    if (!c) continue;
    nSeries.push({ label: `‖ε_c‖ ${g}`, x, y: c.epsC.mean, color });
    nSeries.push({ label: `‖ε_u‖ ${g}`, x, y: c.epsU.mean, color, dashed: true });
  }
  const rows = r.modes.flatMap((m) =>
    (['memorized', 'normal'] as const).flatMap((g) => {
      const c = m[g];
      return c ? [[curveModeLabel(m.mode, m.scale), g, c.rows, c.staticTransition ?? 'never', c.staticTransition === null ? '—' : fmt(r.t[c.staticTransition]!), fmt(c.diff.mean[0]!), fmt(c.diff.mean[Math.floor(c.diff.mean.length / 2)]!)]] : [];
    }),
  );
  return {
    head: [intro, table(['mode', 'prompts', 'rows', 'static transition step', 't', '‖ε_c − ε_u‖ at step 0', 'at mid-trajectory'], rows)].filter((s) => s).join('\n'),
    figures: [
      { name: 'd', spec: lineChart({ title: '‖ε_c − ε_u‖ along denoising (mean; ± sd under CFG)', xLabel: 'inference step', yLabel: '‖ε_c − ε_u‖', series: dSeries, markers }), caption: 'guidance magnitude' },
      { name: 'norms', spec: lineChart({ title: `‖ε_c‖ and ‖ε_u‖ under ${curveModeLabel(cfgMode.mode, cfgMode.scale)}`, xLabel: 'inference step', yLabel: 'norm', series: nSeries }), caption: 'noise norms' },
    ],
  };
}

/** The settings line of a curves run. */
export function curvesIntro(description: string, prompts: number, seeds: number, sampler: string, steps: number, seconds: number): string {
  return `<p>${escapeHtml(description)}; ${prompts} prompts × ${seeds} seeds; ${escapeHtml(sampler)} ${steps} steps; ${fmt(seconds)} s.</p>`;
}
