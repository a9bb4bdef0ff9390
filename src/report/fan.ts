/**
 * Trajectory fans as Vega-Lite specs: sampling trajectories (one per seed) projected onto their
 * first two principal components (`projectPaths`, `src/analysis/pca.ts`), one colour per group.
 */
import { VEGA_LITE_SCHEMA, type FigureSpec } from './spec.ts';
import { finiteOrNull, paletteColor } from './palette.ts';
import { paddedExtent } from './scatter.ts';

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
  /** Figure width in pixels, legend included (default 520). */
  readonly width?: number;
  /** Figure height in pixels, title and axis labels included (default 400). */
  readonly height?: number;
  /** Same data units per pixel on both axes, so that distances are not distorted (default false). */
  readonly equalAspect?: boolean;
}

/** Plot-area size of a fan of figure size `W × H`. */
function plotSize(W: number, H: number): [number, number] {
  return [W - 230, H - 90];
}

/**
 * A trajectory fan as a Vega-Lite spec (default 520 × 400 px): one line per path in point order,
 * broken at non-finite points, its first finite point an open circle and its last a filled dot.
 */
export function trajectoryFan(o: FanOptions): FigureSpec {
  const W = o.width ?? 520;
  const H = o.height ?? 400;
  const [pw, ph] = plotSize(W, H);
  const groups: string[] = [];
  for (const p of o.paths) if (!groups.includes(p.group)) groups.push(p.group);
  const colors = groups.map((g, k) => o.groupColors?.[g] ?? paletteColor(k));
  const rows: { path: number; i: number; group: string; x: number | null; y: number | null }[] = [];
  const ends: { path: number; group: string; end: 'start' | 'end'; x: number; y: number }[] = [];
  const xs: number[] = [];
  const ys: number[] = [];
  o.paths.forEach((p, path) => {
    const finite: [number, number][] = [];
    p.points.forEach(([x, y], i) => {
      const ok = Number.isFinite(x) && Number.isFinite(y);
      // a non-finite point keeps a finite x (Vega drops rows with a null x) and breaks the line by its null y
      rows.push({ path, i, group: p.group, x: ok ? x : (finiteOrNull(x) ?? finite[finite.length - 1]?.[0] ?? 0), y: ok ? y : null });
      if (ok) {
        finite.push([x, y]);
        xs.push(x);
        ys.push(y);
      }
    });
    const first = finite[0];
    const last = finite[finite.length - 1];
    if (first) ends.push({ path, group: p.group, end: 'start', x: first[0], y: first[1] });
    if (last && finite.length > 1) ends.push({ path, group: p.group, end: 'end', x: last[0], y: last[1] });
  });
  let xr = paddedExtent(xs);
  let yr = paddedExtent(ys);
  if (o.equalAspect ?? false) {
    const s = Math.max((xr[1] - xr[0]) / pw, (yr[1] - yr[0]) / ph);
    const cx = (xr[0] + xr[1]) / 2;
    const cy = (yr[0] + yr[1]) / 2;
    xr = [cx - (s * pw) / 2, cx + (s * pw) / 2];
    yr = [cy - (s * ph) / 2, cy + (s * ph) / 2];
  }
  const x = { field: 'x', type: 'quantitative', title: o.xLabel ?? 'PC1', scale: { domain: xr, nice: false, zero: false } } as const;
  const y = { field: 'y', type: 'quantitative', title: o.yLabel ?? 'PC2', scale: { domain: yr, nice: false, zero: false } } as const;
  const color = { field: 'group', type: 'nominal', title: null, scale: { domain: groups, range: colors }, legend: { labelLimit: 160, symbolType: 'stroke', symbolOpacity: 1 } } as const;
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: { text: o.title, anchor: 'start', subtitle: '○ start of a trajectory, ● its end' },
    width: pw,
    height: ph,
    layer: [
      {
        data: { values: rows },
        params: [
          { name: 'zoom', select: 'interval', bind: 'scales' },
          { name: 'pick', select: { type: 'point', fields: ['group'] }, bind: 'legend' },
        ],
        mark: { type: 'line', strokeWidth: 1.2, invalid: 'break-paths-filter-domains', clip: true },
        encoding: {
          x,
          y,
          color,
          detail: { field: 'path' },
          order: { field: 'i', type: 'quantitative' },
          opacity: { condition: { param: 'pick', value: 0.75 }, value: 0.1 },
          tooltip: [{ field: 'group', type: 'nominal' }, { field: 'path', type: 'quantitative', title: 'path' }, { field: 'i', type: 'quantitative', title: 'point' }],
        },
      },
      {
        data: { values: ends.filter((e) => e.end === 'start') },
        mark: { type: 'point', shape: 'circle', filled: false, fill: 'white', size: 30, strokeWidth: 1.2, clip: true },
        encoding: { x, y, color },
      },
      {
        data: { values: ends.filter((e) => e.end === 'end') },
        mark: { type: 'circle', size: 40, opacity: 1, clip: true },
        encoding: { x, y, color },
      },
    ],
    config: { font: 'sans-serif', view: { stroke: '#999' } },
  } as FigureSpec;
}
