/** Shared pieces of the dependency-free SVG charts: palette, plot frame, axes, legend, gap-aware polylines. */
import { escapeHtml, fmt } from './html.ts';

/** The default series colours (matplotlib's tab10), cycled by index. */
export const PALETTE: readonly string[] = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** The colour of series `k`: `PALETTE[k mod 10]`. */
export function paletteColor(k: number): string {
  return PALETTE[((k % PALETTE.length) + PALETTE.length) % PALETTE.length]!;
}

/** Margins around the plot area in pixels. */
export interface Margins {
  readonly l: number;
  readonly r: number;
  readonly t: number;
  readonly b: number;
}

/** A plot frame: the SVG size, the plot rectangle and the data → pixel maps. */
export interface Frame {
  readonly W: number;
  readonly H: number;
  readonly m: Margins;
  /** Plot-area width and height in pixels. */
  readonly pw: number;
  readonly ph: number;
  /** Data domain shown: x in `[x0, x1]`, y in `[y0, y1]`. */
  readonly x0: number;
  readonly x1: number;
  readonly y0: number;
  readonly y1: number;
  /** Data x → pixel x. */
  px(x: number): number;
  /** Data y → pixel y (SVG y grows downwards). */
  py(y: number): number;
}

/**
 * Min and max of the finite values, widened by `pad` (fraction of the span, default 0.05) on both
 * sides; `[lo - 1, hi + 1]` when all values are equal, `[0, 1]` when none is finite.
 */
export function extent(values: Iterable<number>, pad = 0.05): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo > hi) return [0, 1];
  if (lo === hi) return [lo - 1, hi + 1];
  const p = (hi - lo) * pad;
  return [lo - p, hi + p];
}

/** Build a frame for an SVG of `W × H` with margins `m` showing `[x0, x1] × [y0, y1]`. */
export function makeFrame(W: number, H: number, m: Margins, x: readonly [number, number], y: readonly [number, number]): Frame {
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const [x0, x1] = x;
  const [y0, y1] = y;
  return {
    W, H, m, pw, ph, x0, x1, y0, y1,
    px: (v: number): number => m.l + ((v - x0) / (x1 - x0)) * pw,
    py: (v: number): number => m.t + (1 - (v - y0) / (y1 - y0)) * ph,
  };
}

/** Format a pixel coordinate (one decimal). */
export function c1(v: number): string {
  return v.toFixed(1);
}

/**
 * The opening `<svg>` tag (white background) plus title, plot box, 5 ticks per axis and axis labels.
 * The plot box carries `data-x-domain` / `data-y-domain` so tests and tools can invert the pixel map.
 * Close the document with `'</svg>'`.
 */
export function frameSvg(f: Frame, title: string, xLabel: string, yLabel: string): string[] {
  const { W, H, m, pw, ph } = f;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${m.l}" y="16" font-size="13" font-weight="bold">${escapeHtml(title)}</text>`);
  parts.push(`<rect class="plot" x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999" data-x-domain="${f.x0} ${f.x1}" data-y-domain="${f.y0} ${f.y1}"/>`);
  for (let i = 0; i <= 4; i++) {
    const yv = f.y0 + ((f.y1 - f.y0) * i) / 4;
    const xv = f.x0 + ((f.x1 - f.x0) * i) / 4;
    const yp = c1(f.py(yv));
    const xp = c1(f.px(xv));
    parts.push(`<line x1="${m.l - 4}" x2="${m.l}" y1="${yp}" y2="${yp}" stroke="#999"/><text x="${m.l - 6}" y="${c1(f.py(yv) + 4)}" text-anchor="end">${escapeHtml(fmt(yv))}</text>`);
    parts.push(`<line x1="${xp}" x2="${xp}" y1="${m.t + ph}" y2="${m.t + ph + 4}" stroke="#999"/><text x="${xp}" y="${m.t + ph + 16}" text-anchor="middle">${escapeHtml(fmt(xv))}</text>`);
  }
  parts.push(`<text x="${c1(m.l + pw / 2)}" y="${H - 8}" text-anchor="middle">${escapeHtml(xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${c1(m.t + ph / 2)}) rotate(-90)" text-anchor="middle">${escapeHtml(yLabel)}</text>`);
  return parts;
}

/** One legend entry: a label and its colour, drawn as a line (`'line'`) or a dot (`'dot'`). */
export interface LegendEntry {
  readonly label: string;
  readonly color: string;
  readonly mark: 'line' | 'dot';
  readonly dashed?: boolean;
}

/** A legend at the right of the plot area (at most `max` entries, default 16; labels cut to 22 characters). */
export function legendSvg(f: Frame, entries: readonly LegendEntry[], max = 16): string[] {
  const parts: string[] = [];
  const x = f.m.l + f.pw + 8;
  entries.slice(0, max).forEach((e, k) => {
    const ly = f.m.t + 10 + k * 14;
    const mark =
      e.mark === 'dot'
        ? `<circle cx="${x + 8}" cy="${ly}" r="3.5" fill="${escapeHtml(e.color)}"/>`
        : `<line x1="${x}" x2="${x + 16}" y1="${ly}" y2="${ly}" stroke="${escapeHtml(e.color)}" stroke-width="2"${e.dashed ? ' stroke-dasharray="4 3"' : ''}/>`;
    parts.push(`${mark}<text x="${x + 20}" y="${ly + 4}">${escapeHtml(e.label.slice(0, 22))}</text>`);
  });
  if (entries.length > max) parts.push(`<text x="${x}" y="${f.m.t + 10 + max * 14 + 4}" fill="#666">+${entries.length - max} more</text>`);
  return parts;
}

/**
 * Split a sequence of pixel points into runs of consecutive finite points (a non-finite coordinate
 * ends a run: the gap is not bridged). Each run is returned as an SVG `points` string ("x,y x,y …").
 */
export function finiteRuns(points: Iterable<readonly [number, number]>): string[] {
  const runs: string[] = [];
  let cur: string[] = [];
  for (const [x, y] of points) {
    if (Number.isFinite(x) && Number.isFinite(y)) {
      cur.push(`${c1(x)},${c1(y)}`);
    } else if (cur.length) {
      runs.push(cur.join(' '));
      cur = [];
    }
  }
  if (cur.length) runs.push(cur.join(' '));
  return runs;
}

/**
 * Clip the line `y = intercept + slope·x` to the rectangle `[x0, x1] × [y0, y1]`; returns the two
 * end points in data coordinates, or `null` when the line misses the rectangle.
 */
export function clipLine(slope: number, intercept: number, x0: number, x1: number, y0: number, y1: number): [[number, number], [number, number]] | null {
  if (!Number.isFinite(slope) || !Number.isFinite(intercept)) return null;
  let a = x0;
  let b = x1;
  if (slope !== 0) {
    // x where the line crosses y0 and y1
    const xa = (y0 - intercept) / slope;
    const xb = (y1 - intercept) / slope;
    a = Math.max(a, Math.min(xa, xb));
    b = Math.min(b, Math.max(xa, xb));
  } else if (intercept < y0 || intercept > y1) {
    return null;
  }
  if (!(a < b)) return null;
  return [
    [a, intercept + slope * a],
    [b, intercept + slope * b],
  ];
}
