/** Dependency-free SVG line charts for reports (every label escaped). */
import { escapeHtml, fmt } from './html.ts';

/** One line of a chart. */
export interface Series {
  readonly label: string;
  readonly x: readonly number[];
  readonly y: readonly number[];
  readonly color?: string;
  readonly dashed?: boolean;
  /** Line width (default 1.5). */
  readonly width?: number;
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

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** Render a line chart as a standalone SVG string. */
export function lineChart(o: ChartOptions): string {
  const W = o.width ?? 520;
  const H = o.height ?? 320;
  const m = { l: 64, r: 150, t: 28, b: 44 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const ty = (v: number): number => (o.logY ? Math.log10(v) : v);
  const xs: number[] = [];
  const ys: number[] = [];
  for (const s of o.series) {
    s.x.forEach((x, i) => {
      const y = s.y[i]!;
      if (Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0)) {
        xs.push(x);
        ys.push(ty(y));
      }
    });
  }
  for (const mk of o.markers ?? []) xs.push(mk.x);
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
    const yl = o.logY ? fmt(10 ** yv) : fmt(yv);
    parts.push(`<line x1="${m.l - 4}" x2="${m.l}" y1="${py(yv)}" y2="${py(yv)}" stroke="#999"/><text x="${m.l - 6}" y="${py(yv) + 4}" text-anchor="end">${escapeHtml(yl)}</text>`);
    parts.push(`<line x1="${px(xv)}" x2="${px(xv)}" y1="${m.t + ph}" y2="${m.t + ph + 4}" stroke="#999"/><text x="${px(xv)}" y="${m.t + ph + 16}" text-anchor="middle">${escapeHtml(fmt(xv))}</text>`);
  }
  parts.push(`<text x="${m.l + pw / 2}" y="${H - 8}" text-anchor="middle">${escapeHtml(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(o.yLabel + (o.logY ? ' (log)' : ''))}</text>`);
  o.series.forEach((s, k) => {
    const color = s.color ?? PALETTE[k % PALETTE.length]!;
    const pts: string[] = [];
    s.x.forEach((x, i) => {
      const y = s.y[i]!;
      if (Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0)) pts.push(`${px(x).toFixed(1)},${py(ty(y)).toFixed(1)}`);
    });
    if (pts.length) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="${s.width ?? 1.5}"${s.dashed ? ' stroke-dasharray="4 3"' : ''} points="${pts.join(' ')}"/>`);
    const ly = m.t + 10 + k * 14;
    if (k < 16) parts.push(`<line x1="${m.l + pw + 8}" x2="${m.l + pw + 24}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/><text x="${m.l + pw + 28}" y="${ly + 4}">${escapeHtml(s.label.slice(0, 22))}</text>`);
  });
  for (const mk of o.markers ?? []) {
    const x = px(mk.x);
    parts.push(`<line x1="${x}" x2="${x}" y1="${m.t}" y2="${m.t + ph}" stroke="${mk.color ?? '#444'}" stroke-dasharray="2 2"/><text x="${x + 3}" y="${m.t + 12}" fill="${mk.color ?? '#444'}">${escapeHtml(mk.label)}</text>`);
  }
  parts.push('</svg>');
  return parts.join('\n');
}
