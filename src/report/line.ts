/** Line charts as Vega-Lite specs: series with optional bands, vertical markers, log/reversed axes. */
import { VEGA_LITE_SCHEMA, type FigureSpec } from './spec.ts';
import { finiteOrNull, paletteColor } from './palette.ts';

/** One line of a chart. */
export interface Series {
  readonly label: string;
  readonly x: readonly number[];
  readonly y: readonly number[];
  readonly color?: string;
  readonly dashed?: boolean;
  /** Line width (default 1.5). */
  readonly width?: number;
  /**
   * A shaded band behind the line (e.g. mean ± std over seeds), `lo[i]`..`hi[i]` at `x[i]`, in the
   * series colour. Points where x, lo or hi is not finite are gaps. On a log axis a non-positive
   * `lo` is drawn at the bottom of the plot and a non-positive `hi` is a gap. Band values count
   * towards the y range. Default: no band.
   */
  readonly band?: { readonly lo: readonly number[]; readonly hi: readonly number[] };
}

/** A vertical marker (e.g. a transition point). */
export interface Marker {
  readonly x: number;
  readonly label: string;
  readonly color?: string;
}

/** Options of `lineChart`. */
export interface ChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  readonly markers?: readonly Marker[];
  /** Logarithmic y axis (non-positive values are gaps). Default false. */
  readonly logY?: boolean;
  /** Reverse the x axis (e.g. timesteps from T down to 0). Default false. */
  readonly reverseX?: boolean;
  /** Figure width in pixels, legend included (default 520). */
  readonly width?: number;
  /** Figure height in pixels, title and axis labels included (default 320). */
  readonly height?: number;
}

/** Fill opacity of a series band. */
export const BAND_OPACITY = 0.2;

/**
 * One point of a line chart's data: series index `k`, point index `i`, its label, x, y (null: a gap),
 * band edges. A point whose x is not finite keeps its neighbour's x with y, lo and hi null, so that
 * it still breaks the line (Vega drops rows whose x is null before drawing the path).
 */
export interface LineRow {
  readonly k: number;
  readonly i: number;
  readonly series: string;
  readonly x: number | null;
  readonly y: number | null;
  readonly lo: number | null;
  readonly hi: number | null;
  readonly dash: 'solid' | 'dashed';
  readonly w: number;
}

/**
 * The data rows of a line chart: one per point of every series, non-finite (and on a log axis
 * non-positive) values as `null`, so that Vega-Lite breaks the line there instead of bridging it.
 */
export function lineRows(o: ChartOptions): LineRow[] {
  const logY = o.logY ?? false;
  const ok = (v: number | undefined): number | null => {
    const f = finiteOrNull(v);
    return f === null || (logY && f <= 0) ? null : f;
  };
  // on a log axis a non-positive band floor sits at the bottom of the plot: the smallest positive value drawn
  let floor = Infinity;
  if (logY) {
    for (const s of o.series) {
      for (const arr of [s.y, s.band?.hi ?? [], s.band?.lo ?? []]) for (const v of arr) if (Number.isFinite(v) && v > 0 && v < floor) floor = v;
    }
  }
  const rows: LineRow[] = [];
  o.series.forEach((s, k) => {
    let lastX = s.x.find((v) => Number.isFinite(v)) ?? 0;
    s.x.forEach((xv, i) => {
      const x = finiteOrNull(xv);
      if (x === null) {
        rows.push({ k, i, series: s.label, x: lastX, y: null, lo: null, hi: null, dash: s.dashed ? 'dashed' : 'solid', w: s.width ?? 1.5 });
        return;
      }
      lastX = x;
      let lo: number | null = null;
      let hi: number | null = null;
      if (s.band) {
        const l = finiteOrNull(s.band.lo[i]);
        const h = ok(s.band.hi[i]);
        if (l !== null && h !== null) {
          hi = h;
          lo = logY && l <= 0 ? floor : l;
        }
      }
      rows.push({ k, i, series: s.label, x, y: ok(s.y[i]), lo, hi, dash: s.dashed ? 'dashed' : 'solid', w: s.width ?? 1.5 });
    });
  });
  return rows;
}

/** Tick values 1, 2, 5 × 10^k spanning the positive y (and band) values; only 10^k beyond six decades. */
export function logTicks(rows: readonly { y: number | null; lo?: number | null; hi?: number | null }[]): number[] {
  const v = rows.flatMap((r) => [r.y, r.lo ?? null, r.hi ?? null]).filter((u): u is number => u !== null && Number.isFinite(u) && u > 0);
  if (v.length === 0) return [];
  const lo = Math.floor(Math.log10(Math.min(...v)));
  const hi = Math.ceil(Math.log10(Math.max(...v)));
  const mult = hi - lo > 6 ? [1] : [1, 2, 5];
  const out: number[] = [];
  for (let k = lo; k <= hi; k++) for (const m of mult) out.push(Number((m * 10 ** k).toPrecision(12)));
  return out;
}

/** Approximate width of one label character: Vega's 11 px sans-serif text mark averages ≈ 0.6 em. */
const LABEL_CHAR_PX = 6.6;

/**
 * Marker label placement: a label sits right of its rule, or left of it in the right 45 % of the
 * plot (so it is not cut at the edge); a label whose extent (≈ 6.6 px a character, 3 px clear of
 * the rule) would overlap one already placed goes to the next text row down (14 px), at most
 * `maxRows` rows (the last one then takes the rest). `plotWidth` is the plot's width in pixels.
 * Non-finite markers are dropped.
 */
export function placeMarkerLabels(
  markers: readonly Marker[],
  rows: readonly { x: number | null }[],
  reverseX: boolean,
  plotWidth: number,
  maxRows = Infinity,
): { x: number; label: string; color: string; align: 'left' | 'right'; dx: number; dy: number }[] {
  const ok = markers.filter((m) => Number.isFinite(m.x));
  const xs = [...rows.map((r) => r.x), ...ok.map((m) => m.x)].filter((v): v is number => v !== null && Number.isFinite(v));
  const min = Math.min(...xs);
  const span = Math.max(...xs) - min || 1;
  const px = (x: number): number => plotWidth * (reverseX ? 1 - (x - min) / span : (x - min) / span);
  const placed: { lo: number; hi: number; row: number }[] = [];
  return ok.map((m) => {
    const p = px(m.x);
    const right = p > 0.55 * plotWidth;
    const w = 3 + LABEL_CHAR_PX * m.label.length;
    const [lo, hi] = right ? [p - w, p] : [p, p + w];
    let row = 0;
    while (row < maxRows - 1 && placed.some((q) => q.row === row && lo < q.hi + 4 && q.lo < hi + 4)) row++;
    placed.push({ lo, hi, row });
    return { x: m.x, label: m.label, color: m.color ?? '#444', align: right ? 'right' : 'left', dx: right ? -3 : 3, dy: 2 + 14 * row };
  });
}

/**
 * A line chart as a Vega-Lite spec (default 520 × 320 px): bands first (translucent areas), then the
 * lines, then dashed vertical markers with their labels. Non-finite points are gaps — a line is
 * broken there, never bridged. Interactive where rendered live: tooltips, zoom/pan on the scales,
 * click a legend entry to highlight its series.
 */
export function lineChart(o: ChartOptions): FigureSpec {
  const rows = lineRows(o);
  const labels: string[] = [];
  const colors: string[] = [];
  o.series.forEach((s, k) => {
    if (labels.includes(s.label)) return;
    labels.push(s.label);
    colors.push(s.color ?? paletteColor(k));
  });
  const x = {
    field: 'x',
    type: 'quantitative',
    title: o.xLabel,
    scale: { zero: false, nice: false, ...(o.reverseX ? { reverse: true } : {}) },
  } as const;
  const yScale = o.logY ? { type: 'log' as const } : { zero: false };
  // a log axis gets ticks and grid lines at 1, 2, 5 × 10^k only (Vega's default adds every integer multiple, unlabelled)
  const yAxis = o.logY ? { axis: { values: logTicks(rows) } } : {};
  const yTitle = o.yLabel + (o.logY ? ' (log)' : '');
  const color = { field: 'series', type: 'nominal', title: null, scale: { domain: labels, range: colors }, legend: { labelLimit: 160, symbolType: 'stroke', symbolOpacity: 1, symbolStrokeWidth: 2 } } as const;
  const layers: object[] = [];
  if (o.series.some((s) => s.band)) {
    layers.push({
      mark: { type: 'area', opacity: BAND_OPACITY, invalid: 'break-paths-filter-domains' },
      encoding: { x, y: { field: 'lo', type: 'quantitative', scale: yScale, title: yTitle, ...yAxis }, y2: { field: 'hi' }, color, detail: { field: 'k' } },
    });
  }
  layers.push({
    params: [
      { name: 'zoom', select: 'interval', bind: 'scales' },
      { name: 'pick', select: { type: 'point', fields: ['series'] }, bind: 'legend' },
    ],
    mark: { type: 'line', invalid: 'break-paths-filter-domains', clip: true },
    encoding: {
      x,
      y: { field: 'y', type: 'quantitative', scale: yScale, title: yTitle, ...yAxis },
      color,
      detail: { field: 'k' },
      order: { field: 'i', type: 'quantitative' },
      strokeDash: { field: 'dash', type: 'nominal', scale: { domain: ['solid', 'dashed'], range: [[1, 0], [4, 3]] }, legend: null },
      strokeWidth: { field: 'w', type: 'quantitative', scale: null, legend: null },
      opacity: { condition: { param: 'pick', value: 1 }, value: 0.15 },
      tooltip: [
        { field: 'series', type: 'nominal', title: 'series' },
        { field: 'x', type: 'quantitative', title: o.xLabel, format: '.4~g' },
        { field: 'y', type: 'quantitative', title: o.yLabel, format: '.4~g' },
      ],
    },
  });
  // labels use at most the top third of the plot
  const markers = placeMarkerLabels(o.markers ?? [], rows, o.reverseX === true, (o.width ?? 520) - 230, Math.max(1, Math.floor(((o.height ?? 320) - 80) / 3 / 14)));
  if (markers.length) {
    const mx = { field: 'x', type: 'quantitative' };
    const mc = { field: 'color', type: 'nominal', scale: null, legend: null };
    layers.push({ data: { values: markers }, mark: { type: 'rule', strokeDash: [2, 2] }, encoding: { x: mx, stroke: mc, tooltip: { field: 'label', type: 'nominal' } } });
    layers.push({
      data: { values: markers },
      mark: { type: 'text', align: { expr: 'datum.align' }, baseline: 'top', dx: { expr: 'datum.dx' }, dy: { expr: 'datum.dy' }, y: 0 },
      encoding: { x: mx, fill: mc, text: { field: 'label', type: 'nominal' } },
    });
  }
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: { text: o.title, anchor: 'start' },
    width: (o.width ?? 520) - 230,
    height: (o.height ?? 320) - 80,
    data: { values: rows },
    layer: layers,
    config: { font: 'sans-serif', view: { stroke: '#999' } },
  } as FigureSpec;
}
