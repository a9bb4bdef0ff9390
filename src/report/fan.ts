/**
 * Trajectory fans: sampling trajectories (one per seed) projected onto their first two principal
 * components (`projectPaths`, `src/analysis/pca.ts`) and drawn as polylines, one colour per group.
 */
import { escapeHtml } from './html.ts';
import { c1, extent, finiteRuns, frameSvg, legendSvg, makeFrame, paletteColor, type LegendEntry } from './axes.ts';

/** One path of a fan: its group (colour, legend) and its 2-D points in order. */
export interface FanPath {
  readonly group: string;
  readonly points: readonly (readonly [number, number])[];
}

/** Options of `trajectoryFan`. */
export interface FanOptions {
  readonly title: string;
  readonly paths: readonly FanPath[];
  /** Colour per group name (default: palette colours in order of first appearance). */
  readonly groupColors?: Record<string, string>;
  /** x-axis label (default "PC1"). */
  readonly xLabel?: string;
  /** y-axis label (default "PC2"). */
  readonly yLabel?: string;
  /** SVG width in pixels (default 520). */
  readonly width?: number;
  /** SVG height in pixels (default 400). */
  readonly height?: number;
  /** Same data units per pixel on both axes, so that distances are not distorted (default false). */
  readonly equalAspect?: boolean;
}

/**
 * Render a trajectory fan as a standalone SVG string: one polyline per path (broken at non-finite
 * points), its first finite point marked by an open circle (`class="start"`) and its last by a filled
 * dot (`class="end"`), colours per group with a legend. Default size 520 × 400.
 */
export function trajectoryFan(o: FanOptions): string {
  const W = o.width ?? 520;
  const H = o.height ?? 400;
  const groups: string[] = [];
  for (const p of o.paths) if (!groups.includes(p.group)) groups.push(p.group);
  const colorOf = new Map(groups.map((g, k) => [g, escapeHtml(o.groupColors?.[g] ?? paletteColor(k))]));
  const xs: number[] = [];
  const ys: number[] = [];
  for (const p of o.paths) {
    for (const [x, y] of p.points) {
      if (Number.isFinite(x) && Number.isFinite(y)) {
        xs.push(x);
        ys.push(y);
      }
    }
  }
  const m = { l: 76, r: 150, t: 28, b: 44 };
  let xr = extent(xs);
  let yr = extent(ys);
  if (o.equalAspect ?? false) {
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    const s = Math.max((xr[1] - xr[0]) / pw, (yr[1] - yr[0]) / ph);
    const cx = (xr[0] + xr[1]) / 2;
    const cy = (yr[0] + yr[1]) / 2;
    xr = [cx - (s * pw) / 2, cx + (s * pw) / 2];
    yr = [cy - (s * ph) / 2, cy + (s * ph) / 2];
  }
  const f = makeFrame(W, H, m, xr, yr);
  const parts = frameSvg(f, o.title, o.xLabel ?? 'PC1', o.yLabel ?? 'PC2');
  for (const p of o.paths) {
    const color = colorOf.get(p.group)!;
    const finite = p.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    const runs = finiteRuns(p.points.map(([x, y]): [number, number] => [f.px(x), f.py(y)]));
    for (const run of runs) {
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.2" stroke-opacity="0.75" points="${run}"/>`);
    }
    const first = finite[0];
    const last = finite[finite.length - 1];
    if (first) parts.push(`<circle class="start" cx="${c1(f.px(first[0]))}" cy="${c1(f.py(first[1]))}" r="3" fill="white" stroke="${color}" stroke-width="1.2"/>`);
    if (last && finite.length > 1) parts.push(`<circle class="end" cx="${c1(f.px(last[0]))}" cy="${c1(f.py(last[1]))}" r="3.5" fill="${color}"/>`);
  }
  const legend: LegendEntry[] = groups.map((g) => ({ label: g, color: colorOf.get(g)!, mark: 'line' }));
  parts.push(...legendSvg(f, legend, 14));
  const ky = f.m.t + 10 + Math.min(groups.length, 15) * 14 + 10;
  const kx = f.m.l + f.pw + 8;
  parts.push(`<circle cx="${kx + 8}" cy="${ky}" r="3" fill="white" stroke="#444" stroke-width="1.2"/><text x="${kx + 20}" y="${ky + 4}">start</text>`);
  parts.push(`<circle cx="${kx + 8}" cy="${ky + 14}" r="3.5" fill="#444"/><text x="${kx + 20}" y="${ky + 18}">end</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}
