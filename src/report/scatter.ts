/** Dependency-free SVG scatter plots (groups, least-squares fit, reference line, annotation). */
import { escapeHtml } from './html.ts';
import { c1, clipLine, extent, frameSvg, legendSvg, makeFrame, paletteColor, type LegendEntry } from './axes.ts';

/** One group of points of a scatter plot (`x[i]`, `y[i]`; pairs with a non-finite value are skipped). */
export interface ScatterGroup {
  readonly label: string;
  readonly x: readonly number[];
  readonly y: readonly number[];
  /** Fill colour (default: the palette colour of the group's index). */
  readonly color?: string;
}

/** A reference line `y = slope·x + intercept` (e.g. x̂0(T) = s·x), drawn dashed and labelled. */
export interface ReferenceLine {
  readonly slope: number;
  readonly intercept: number;
  readonly label: string;
}

/** Options of `scatterChart`. */
export interface ScatterOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly groups: readonly ScatterGroup[];
  /** Text shown in the top-left corner of the plot (e.g. "Pearson r = 0.93 [0.88, 0.96]"). Default none. */
  readonly annotation?: string;
  /** Draw the least-squares line over all finite points of all groups (needs ≥ 2 distinct x). Default false. */
  readonly fitLine?: boolean;
  /** A reference line, clipped to the plot area (it does not widen the axes). Default none. */
  readonly diagonal?: ReferenceLine;
  /** SVG width in pixels (default 520). */
  readonly width?: number;
  /** SVG height in pixels (default 360). */
  readonly height?: number;
  /** Dot radius in pixels (default 3). */
  readonly radius?: number;
}

/** Least-squares fit `y = intercept + slope·x` of the finite pairs; `null` with < 2 pairs or all x equal. */
export function leastSquares(x: readonly number[], y: readonly number[]): { slope: number; intercept: number; n: number } | null {
  let n = 0;
  let sx = 0;
  let sy = 0;
  const len = Math.min(x.length, y.length);
  for (let i = 0; i < len; i++) {
    const a = x[i]!;
    const b = y[i]!;
    if (!Number.isFinite(a) || !Number.isFinite(b)) continue;
    n++;
    sx += a;
    sy += b;
  }
  if (n < 2) return null;
  const mx = sx / n;
  const my = sy / n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < len; i++) {
    const a = x[i]!;
    const b = y[i]!;
    if (!Number.isFinite(a) || !Number.isFinite(b)) continue;
    sxx += (a - mx) * (a - mx);
    sxy += (a - mx) * (b - my);
  }
  if (!(sxx > 0)) return null;
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx, n };
}

/**
 * Render a scatter plot as a standalone SVG string: one colour per group with a legend, an optional
 * least-squares line (`class="fit"`, with `data-slope`/`data-intercept`), an optional dashed reference
 * line (`class="diagonal"`) and an optional corner annotation. Default size 520 × 360.
 */
export function scatterChart(o: ScatterOptions): string {
  const W = o.width ?? 520;
  const H = o.height ?? 360;
  const r = o.radius ?? 3;
  const allX: number[] = [];
  const allY: number[] = [];
  for (const g of o.groups) {
    const len = Math.min(g.x.length, g.y.length);
    for (let i = 0; i < len; i++) {
      const a = g.x[i]!;
      const b = g.y[i]!;
      if (Number.isFinite(a) && Number.isFinite(b)) {
        allX.push(a);
        allY.push(b);
      }
    }
  }
  const f = makeFrame(W, H, { l: 76, r: 150, t: 28, b: 44 }, extent(allX), extent(allY));
  const parts = frameSvg(f, o.title, o.xLabel, o.yLabel);
  const line = (cls: string, p: [[number, number], [number, number]], color: string, extra: string): string =>
    `<line class="${cls}" x1="${c1(f.px(p[0][0]))}" y1="${c1(f.py(p[0][1]))}" x2="${c1(f.px(p[1][0]))}" y2="${c1(f.py(p[1][1]))}" stroke="${color}"${extra}/>`;
  const legend: LegendEntry[] = [];
  if (o.diagonal) {
    const d = o.diagonal;
    const seg = clipLine(d.slope, d.intercept, f.x0, f.x1, f.y0, f.y1);
    if (seg) {
      parts.push(line('diagonal', seg, '#555', ' stroke-width="1" stroke-dasharray="5 4"'));
    }
    legend.push({ label: d.label, color: '#555', mark: 'line', dashed: true });
  }
  o.groups.forEach((g, k) => {
    const color = escapeHtml(g.color ?? paletteColor(k));
    const dots: string[] = [];
    const len = Math.min(g.x.length, g.y.length);
    for (let i = 0; i < len; i++) {
      const a = g.x[i]!;
      const b = g.y[i]!;
      if (Number.isFinite(a) && Number.isFinite(b)) dots.push(`<circle cx="${c1(f.px(a))}" cy="${c1(f.py(b))}" r="${r}"/>`);
    }
    parts.push(`<g class="group" fill="${color}" fill-opacity="0.75">${dots.join('')}</g>`);
    legend.push({ label: g.label, color, mark: 'dot' });
  });
  if (o.fitLine) {
    const fit = leastSquares(allX, allY);
    if (fit) {
      const seg = clipLine(fit.slope, fit.intercept, f.x0, f.x1, f.y0, f.y1);
      if (seg) parts.push(line('fit', seg, '#000', ` stroke-width="1.5" data-slope="${fit.slope}" data-intercept="${fit.intercept}"`));
      legend.push({ label: 'least-squares fit', color: '#000', mark: 'line' });
    }
  }
  parts.push(...legendSvg(f, legend));
  if (o.annotation !== undefined) {
    // a translucent white box behind the text (width estimated at 6.5 px per character)
    const w = Math.min(f.pw - 4, 8 + 6.5 * [...o.annotation].length);
    parts.push(`<rect x="${f.m.l + 2}" y="${f.m.t + 2}" width="${c1(w)}" height="17" fill="white" fill-opacity="0.8"/>`);
    parts.push(`<text class="annotation" x="${f.m.l + 6}" y="${f.m.t + 14}" fill="#222">${escapeHtml(o.annotation)}</text>`);
  }
  parts.push('</svg>');
  return parts.join('\n');
}
