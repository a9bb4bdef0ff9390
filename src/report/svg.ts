/** Dependency-free SVG line charts for reports (every label escaped). */
import { escapeHtml, fmt } from './html.ts';
import { PALETTE, finiteRuns } from './axes.ts';

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
   * A shaded band behind the line (e.g. mean ± std over seeds), `lo[i]`..`hi[i]` at `x[i]`: a
   * translucent polygon in the series colour. Points where x, lo or hi is not finite are gaps (the
   * band is split there). On a log axis a non-positive `lo` is drawn at the bottom of the plot and a
   * non-positive `hi` is a gap. Band values count towards the y range. Default: no band.
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
  /** Logarithmic y axis (non-positive values are dropped). Default false. */
  readonly logY?: boolean;
  /** Reverse the x axis (e.g. timesteps from T down to 0). Default false. */
  readonly reverseX?: boolean;
  readonly width?: number;
  readonly height?: number;
}

/** Fill opacity of a series band. */
const BAND_OPACITY = 0.2;

/**
 * Render a line chart as a standalone SVG string (default 520 × 320). Non-finite points (and, with
 * `logY`, non-positive ones) are gaps: the line is broken there, never bridged.
 */
export function lineChart(o: ChartOptions): string {
  const W = o.width ?? 520;
  const H = o.height ?? 320;
  const m = { l: 76, r: 150, t: 28, b: 44 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const logY = o.logY ?? false;
  const ty = (v: number): number => (logY ? Math.log10(v) : v);
  const okY = (y: number | undefined): y is number => y !== undefined && Number.isFinite(y) && (!logY || y > 0);
  const xs: number[] = [];
  const ys: number[] = [];
  for (const s of o.series) {
    s.x.forEach((x, i) => {
      if (!Number.isFinite(x)) return;
      const y = s.y[i];
      if (okY(y)) {
        xs.push(x);
        ys.push(ty(y));
      }
      if (s.band) {
        for (const v of [s.band.lo[i], s.band.hi[i]]) if (okY(v)) ys.push(ty(v));
      }
    });
  }
  for (const mk of o.markers ?? []) if (Number.isFinite(mk.x)) xs.push(mk.x);
  let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  const yPad = (y1 - y0) * 0.05;
  y0 -= yPad;
  y1 += yPad;
  const px = (x: number): number => m.l + (o.reverseX ? (x1 - x) / (x1 - x0) : (x - x0) / (x1 - x0)) * pw;
  const py = (y: number): number => m.t + (1 - (y - y0) / (y1 - y0)) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${m.l}" y="16" font-size="13" font-weight="bold">${escapeHtml(o.title)}</text>`);
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  for (let i = 0; i <= 4; i++) {
    const yv = y0 + ((y1 - y0) * i) / 4;
    const xv = x0 + ((x1 - x0) * i) / 4;
    const yl = logY ? fmt(10 ** yv) : fmt(yv);
    parts.push(`<line x1="${m.l - 4}" x2="${m.l}" y1="${py(yv)}" y2="${py(yv)}" stroke="#999"/><text x="${m.l - 6}" y="${py(yv) + 4}" text-anchor="end">${escapeHtml(yl)}</text>`);
    parts.push(`<line x1="${px(xv)}" x2="${px(xv)}" y1="${m.t + ph}" y2="${m.t + ph + 4}" stroke="#999"/><text x="${px(xv)}" y="${m.t + ph + 16}" text-anchor="middle">${escapeHtml(fmt(xv))}</text>`);
  }
  parts.push(`<text x="${m.l + pw / 2}" y="${H - 8}" text-anchor="middle">${escapeHtml(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(o.yLabel + (logY ? ' (log)' : ''))}</text>`);
  const colorOf = (s: Series, k: number): string => escapeHtml(s.color ?? PALETTE[k % PALETTE.length]!);
  // bands first, so that every line is drawn over every band
  o.series.forEach((s, k) => {
    if (!s.band) return;
    for (const poly of bandPolygons(s.x, s.band.lo, s.band.hi, logY, px, (v) => py(ty(v)), py(y0))) {
      parts.push(`<polygon class="band" fill="${colorOf(s, k)}" fill-opacity="${BAND_OPACITY}" stroke="none" points="${poly}"/>`);
    }
  });
  o.series.forEach((s, k) => {
    const color = colorOf(s, k);
    const pts = s.x.map((x, i): [number, number] => {
      const y = s.y[i];
      return Number.isFinite(x) && okY(y) ? [px(x), py(ty(y))] : [NaN, NaN];
    });
    for (const run of finiteRuns(pts)) {
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="${s.width ?? 1.5}"${s.dashed ? ' stroke-dasharray="4 3"' : ''} points="${run}"/>`);
    }
    const ly = m.t + 10 + k * 14;
    if (k < 16) parts.push(`<line x1="${m.l + pw + 8}" x2="${m.l + pw + 24}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/><text x="${m.l + pw + 28}" y="${ly + 4}">${escapeHtml(s.label.slice(0, 22))}</text>`);
  });
  for (const mk of o.markers ?? []) {
    if (!Number.isFinite(mk.x)) continue;
    const x = px(mk.x);
    const mc = escapeHtml(mk.color ?? '#444');
    parts.push(`<line x1="${x}" x2="${x}" y1="${m.t}" y2="${m.t + ph}" stroke="${mc}" stroke-dasharray="2 2"/><text x="${x + 3}" y="${m.t + 12}" fill="${mc}">${escapeHtml(mk.label)}</text>`);
  }
  parts.push('</svg>');
  return parts.join('\n');
}

/**
 * The band of one series as SVG `points` strings, one polygon per run of consecutive valid points:
 * the upper edge left to right, then the lower edge back (2·k points for a run of k).
 */
function bandPolygons(
  x: readonly number[],
  lo: readonly number[],
  hi: readonly number[],
  logY: boolean,
  px: (x: number) => number,
  py: (y: number) => number,
  bottom: number,
): string[] {
  const out: string[] = [];
  let upper: string[] = [];
  let lower: string[] = [];
  const flush = (): void => {
    if (upper.length) out.push([...upper, ...lower.reverse()].join(' '));
    upper = [];
    lower = [];
  };
  x.forEach((xv, i) => {
    const l = lo[i];
    const h = hi[i];
    if (!Number.isFinite(xv) || l === undefined || h === undefined || !Number.isFinite(l) || !Number.isFinite(h) || (logY && h <= 0)) {
      flush();
      return;
    }
    const X = px(xv).toFixed(1);
    upper.push(`${X},${py(h).toFixed(1)}`);
    lower.push(`${X},${(logY && l <= 0 ? bottom : py(l)).toFixed(1)}`);
  });
  flush();
  return out;
}
