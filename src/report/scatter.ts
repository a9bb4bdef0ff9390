/** Scatter plots as Vega-Lite specs (groups, least-squares fit, reference line, annotation). */
import { VEGA_LITE_SCHEMA, type FigureSpec } from './spec.ts';
import { paletteColor } from './palette.ts';

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
  /** A line of text under the title (e.g. "Pearson r = 0.93 [0.88, 0.96]"). Default none. */
  readonly annotation?: string;
  /** Draw the least-squares line over all finite points of all groups (needs ≥ 2 distinct x). Default false. */
  readonly fitLine?: boolean;
  /** A reference line, clipped to the plot area (it does not widen the axes). Default none. */
  readonly diagonal?: ReferenceLine;
  /** Figure width in pixels, legend included (default 520). */
  readonly width?: number;
  /** Figure height in pixels, title and axis labels included (default 360). */
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

/** The extent `[lo, hi]` of the values, widened by 5 % on each side (± 1 when all equal; [0, 1] when empty). */
export function paddedExtent(v: readonly number[]): [number, number] {
  if (!v.length) return [0, 1];
  let lo = Infinity;
  let hi = -Infinity;
  for (const a of v) {
    if (a < lo) lo = a;
    if (a > hi) hi = a;
  }
  if (lo === hi) return [lo - 1, hi + 1];
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

/**
 * The segment of `y = slope·x + intercept` inside the box `[x0, x1] × [y0, y1]`, or `null` when the
 * line misses it (Liang–Barsky clipping of the segment between x0 and x1).
 */
export function clipLine(slope: number, intercept: number, x0: number, x1: number, y0: number, y1: number): [[number, number], [number, number]] | null {
  if (!Number.isFinite(slope) || !Number.isFinite(intercept)) return null;
  let a = x0;
  let b = x1;
  if (slope !== 0) {
    const xa = (y0 - intercept) / slope;
    const xb = (y1 - intercept) / slope;
    a = Math.max(a, Math.min(xa, xb));
    b = Math.min(b, Math.max(xa, xb));
  } else if (intercept < y0 || intercept > y1) {
    return null;
  }
  if (!(a < b)) return null;
  return [[a, slope * a + intercept], [b, slope * b + intercept]];
}

/**
 * A scatter plot as a Vega-Lite spec (default 520 × 360 px): one colour per group with a legend, an
 * optional least-squares line (the `fit` layer, over all groups' finite points) and an optional
 * dashed reference line, both clipped to the points' extent so they never widen the axes.
 */
export function scatterChart(o: ScatterOptions): FigureSpec {
  const r = o.radius ?? 3;
  const points: { group: string; x: number; y: number }[] = [];
  const allX: number[] = [];
  const allY: number[] = [];
  const domain: string[] = [];
  const range: string[] = [];
  o.groups.forEach((g, k) => {
    domain.push(g.label);
    range.push(g.color ?? paletteColor(k));
    const len = Math.min(g.x.length, g.y.length);
    for (let i = 0; i < len; i++) {
      const a = g.x[i]!;
      const b = g.y[i]!;
      if (!Number.isFinite(a) || !Number.isFinite(b)) continue;
      points.push({ group: g.label, x: a, y: b });
      allX.push(a);
      allY.push(b);
    }
  });
  const [x0, x1] = paddedExtent(allX);
  const [y0, y1] = paddedExtent(allY);
  const lines: { line: string; x: number; y: number }[] = [];
  const lineLabels: string[] = [];
  const lineColors: string[] = [];
  const lineDash: number[][] = [];
  const addLine = (label: string, color: string, dash: number[], slope: number, intercept: number): void => {
    lineLabels.push(label);
    lineColors.push(color);
    lineDash.push(dash);
    const seg = clipLine(slope, intercept, x0, x1, y0, y1);
    if (seg) for (const [x, y] of seg) lines.push({ line: label, x, y });
  };
  if (o.diagonal) addLine(o.diagonal.label, '#555', [5, 4], o.diagonal.slope, o.diagonal.intercept);
  const fit = o.fitLine ? leastSquares(allX, allY) : null;
  if (fit) addLine(`least-squares fit (slope ${fit.slope.toPrecision(3)})`, '#000', [1, 0], fit.slope, fit.intercept);
  const x = { field: 'x', type: 'quantitative', title: o.xLabel, scale: { domain: [x0, x1], nice: false, zero: false } } as const;
  const y = { field: 'y', type: 'quantitative', title: o.yLabel, scale: { domain: [y0, y1], nice: false, zero: false } } as const;
  const layers: object[] = [
    {
      data: { values: points },
      params: [
        { name: 'zoom', select: 'interval', bind: 'scales' },
        { name: 'pick', select: { type: 'point', fields: ['group'] }, bind: 'legend' },
      ],
      mark: { type: 'circle', size: Math.PI * r * r, clip: true },
      encoding: {
        x,
        y,
        color: { field: 'group', type: 'nominal', title: null, scale: { domain, range }, legend: { labelLimit: 160, symbolOpacity: 1 } },
        opacity: { condition: { param: 'pick', value: 0.75 }, value: 0.1 },
        tooltip: [
          { field: 'group', type: 'nominal' },
          { field: 'x', type: 'quantitative', title: o.xLabel, format: '.4~g' },
          { field: 'y', type: 'quantitative', title: o.yLabel, format: '.4~g' },
        ],
      },
    },
  ];
  if (lineLabels.length) {
    layers.push({
      data: { values: lines },
      mark: { type: 'line', clip: true },
      encoding: {
        x,
        y,
        stroke: { field: 'line', type: 'nominal', title: null, scale: { domain: lineLabels, range: lineColors }, legend: { labelLimit: 160, symbolType: 'stroke' } },
        strokeDash: { field: 'line', type: 'nominal', scale: { domain: lineLabels, range: lineDash }, legend: null },
      },
    });
  }
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: { text: o.title, anchor: 'start', ...(o.annotation !== undefined ? { subtitle: o.annotation } : {}) },
    width: (o.width ?? 520) - 230,
    height: (o.height ?? 360) - 90,
    layer: layers,
    resolve: { scale: { stroke: 'independent', strokeDash: 'independent' } },
    config: { font: 'sans-serif', view: { stroke: '#999' } },
  } as FigureSpec;
}
