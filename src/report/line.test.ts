import { describe, it, expect } from 'vitest';
import { lineChart, lineRows, logTicks, placeMarkerLabels, type Series } from './line.ts';
import { renderSvg } from './vega.ts';
import { marks, runLengths, subpaths } from '../../test/helpers/vega-svg.ts';

const x = [0, 1, 2, 3, 4, 5];
const mean = [1, 2, 3, 2.5, 2, 1.5];
const band = { lo: mean.map((v) => v - 0.5), hi: mean.map((v) => v + 0.5) };

describe('lineChart', () => {
  it('renders escaped text (no markup from data survives) and no NaN', async () => {
    const svg = await renderSvg(
      lineChart({
        title: '<script>alert("t")</script>',
        xLabel: 'x & <b>',
        yLabel: "y's",
        series: [{ label: '<img src=x onerror=alert(1)>', x, y: mean }],
        markers: [{ x: 2, label: '<m>' }],
      }),
    );
    expect(svg).not.toMatch(/<script|<img|<b>|<m>/);
    expect(svg).toContain('&lt;script&gt;alert(');
    expect(svg).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(svg).not.toMatch(/NaN|Infinity/);
    expect(runLengths(svg, 'line mark')).toEqual([[6]]);
    expect(marks(svg, 'area mark')).toHaveLength(0);
    expect(marks(svg, 'rule mark')).toHaveLength(1);
  });

  it('draws a band behind the line in the series colour, hi above the line above lo, symmetric here', async () => {
    const svg = await renderSvg(lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ label: 'm', x, y: mean, color: '#123456', band }] }));
    const area = marks(svg, 'area mark');
    expect(area).toHaveLength(1);
    expect(area[0]!.attrs['fill']).toBe('#123456');
    expect(Number(area[0]!.attrs['opacity'])).toBeCloseTo(0.2, 6);
    const [poly] = subpaths(area[0]!.attrs['d']!);
    expect(poly).toHaveLength(2 * x.length);
    const [line] = subpaths(marks(svg, 'line mark')[0]!.attrs['d']!);
    expect(line).toHaveLength(x.length);
    for (let i = 0; i < x.length; i++) {
      // Vega's area: the y (lo) edge left to right, then the y2 (hi) edge back
      const low = poly![i]!;
      const up = poly![2 * x.length - 1 - i]!;
      expect(low[0]).toBeCloseTo(line![i]![0], 6);
      expect(up[0]).toBeCloseTo(line![i]![0], 6);
      expect(up[1]).toBeLessThan(line![i]![1]); // SVG y grows downwards
      expect(low[1]).toBeGreaterThan(line![i]![1]);
      expect(line![i]![1] - up[1]).toBeCloseTo(low[1] - line![i]![1], 1);
    }
    expect(svg.indexOf('area mark')).toBeLessThan(svg.indexOf('line mark'));
  });

  it('counts band values in the y range: the band stays inside the plot', async () => {
    const wide = { lo: mean.map((v) => v - 10), hi: mean.map((v) => v + 10) };
    const svg = await renderSvg(lineChart({ title: 't', xLabel: 'x', yLabel: 'y', height: 320, series: [{ label: 'm', x, y: mean, band: wide }] }));
    const plotH = 320 - 80;
    for (const [, py] of subpaths(marks(svg, 'area mark')[0]!.attrs['d']!)[0]!) {
      expect(py).toBeGreaterThanOrEqual(-0.05);
      expect(py).toBeLessThanOrEqual(plotH + 0.05);
    }
  });

  it('breaks lines and bands at non-finite points, never bridging them', async () => {
    const y = [1, NaN, 3, 2, Infinity, 1];
    const lo = [0.5, 1, 2.5, NaN, 1, 0.5];
    const hi = [1.5, 2, 3.5, 2.5, 2, 1.5];
    const series: Series[] = [
      { label: 'a', x, y, band: { lo, hi } },
      { label: 'b', x: [0, NaN, 2, 3], y: [1, 1, 1, 2], band: { lo: [0, 0], hi: [2, 2] } },
    ];
    const o = { title: 't', xLabel: 'x', yLabel: 'y', series, markers: [{ x: NaN, label: 'bad' }] };
    const rows = lineRows(o);
    expect(rows.filter((r) => r.k === 0).map((r) => r.y)).toEqual([1, null, 3, 2, null, 1]);
    expect(rows.filter((r) => r.k === 1).map((r) => [r.x, r.y])).toEqual([[0, 1], [0, null], [2, 1], [3, 2]]);
    const svg = await renderSvg(lineChart(o));
    expect(svg).not.toMatch(/NaN|Infinity/);
    // series a: runs {0}, {2,3}, {5}; series b: {0}, {2,3} (x[1] not finite)
    expect(runLengths(svg, 'line mark')).toEqual([[1, 2, 1], [1, 2]]);
    // band a: runs {0,1,2}, {4,5}; band b: {0} only (x[1] NaN, lo/hi[2] missing)
    expect(runLengths(svg, 'area mark')).toEqual([[6, 4], [2]]);
    expect(marks(svg, 'rule mark')).toHaveLength(0); // the NaN marker is dropped
  });

  it('on a log axis puts a non-positive band floor at the bottom and drops non-positive values', async () => {
    const o = {
      title: 't', xLabel: 'x', yLabel: 'y', logY: true, reverseX: true,
      series: [{ label: 'm', x: [1, 2, 3], y: [1, 10, 100], band: { lo: [-1, 5, 50], hi: [2, 20, 200] } }, { label: 'z', x: [1, 2], y: [0, 3] }],
    };
    const rows = lineRows(o);
    expect(rows[0]!.lo).toBe(1); // the smallest positive value drawn
    expect(rows.find((r) => r.k === 1 && r.i === 0)!.y).toBeNull();
    const svg = await renderSvg(lineChart(o));
    const [poly] = subpaths(marks(svg, 'area mark')[0]!.attrs['d']!);
    const plotH = 320 - 80;
    // reversed x: x = 1 is drawn at the right edge (290 px), and its band floor (lo ≤ 0) at the bottom
    const atX1 = poly!.filter(([px]) => Math.abs(px - 290) < 0.01).map(([, py]) => py);
    expect(atX1).toHaveLength(2);
    expect(Math.max(...atX1)).toBeCloseTo(plotH, 1);
    // log scale: 10 sits halfway between 1 and 100 along the line
    const [line] = subpaths(marks(svg, 'line mark')[0]!.attrs['d']!);
    const byX = [...line!].sort((a, b) => b[0] - a[0]); // x = 1, 2, 3
    expect(byX[1]![1]).toBeCloseTo((byX[0]![1] + byX[2]![1]) / 2, 3);
    expect(svg).toContain('>y (log)</text>');
  });

  it('keeps each series colour, its dash and its width', async () => {
    const svg = await renderSvg(
      lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ label: 'p', x, y: mean, color: '#ff0000', dashed: true, width: 3 }, { label: 'q', x, y: mean.map((v) => v + 1) }] }),
    );
    const [p, q] = marks(svg, 'line mark');
    expect([p!.attrs['stroke'], p!.attrs['stroke-width'], p!.attrs['stroke-dasharray']]).toEqual(['#ff0000', '3', '4,3']);
    expect([q!.attrs['stroke'], q!.attrs['stroke-width']]).toEqual(['#d62728', '1.5']); // tab10[1]
  });

  it('keeps marker labels inside the plot: right of the rule, left of it near the right edge, close ones on separate rows', async () => {
    const t = Array.from({ length: 50 }, (_, i) => 980 - 20 * i);
    const svg = await renderSvg(
      lineChart({
        title: 't',
        xLabel: 'timestep t',
        yLabel: 'd_t',
        reverseX: true,
        series: [{ label: 's', x: t, y: t.map((v) => 1 + v / 100) }],
        markers: [
          { x: 620, label: 'class switch' },
          { x: 240, label: 'caption switch' },
          { x: 200, label: 'third' },
        ],
      }),
    );
    const texts = marks(svg, 'text mark');
    const at = (label: string) => texts.find((m) => m.attrs['aria-label']!.endsWith(`label: ${label}`))!.attrs;
    const xy = (a: Record<string, string>) => a['transform']!.match(/translate\(([\d.]+),([\d.]+)\)/)!.slice(1).map(Number) as [number, number];
    // reversed axis: t = 620 lies at (980 − 620)/980 = 37 % of the width → label to its right; 240 and 200 at 76 % / 80 % → to their left
    expect(at('class switch')['text-anchor']).toBe('start');
    expect(at('caption switch')['text-anchor']).toBe('end');
    expect(at('third')['text-anchor']).toBe('end');
    // in the 290 px plot, 'class switch' spans ≈ [107, 189] px and 'caption switch' (left of t = 240) ≈ [124, 219]: they
    // would overlap, so the second goes a text row (14 px) lower; 'third' (≈ [195, 231]) fits on the first row
    expect(xy(at('caption switch'))[1] - xy(at('class switch'))[1]).toBe(14);
    expect(xy(at('third'))[1]).toBe(xy(at('class switch'))[1]);
  });

  it('stacks overlapping labels row by row up to a row cap, then shares the last row', () => {
    const rows = [{ x: 0 }, { x: 100 }];
    const m = [10, 11, 12, 13, 14].map((x) => ({ x, label: 'a long marker label' }));
    expect(placeMarkerLabels(m, rows, false, 290).map((p) => p.dy)).toEqual([2, 16, 30, 44, 58]);
    expect(placeMarkerLabels(m, rows, false, 290, 3).map((p) => p.dy)).toEqual([2, 16, 30, 30, 30]);
    // far apart: one row; the right-hand one right-aligned
    expect(placeMarkerLabels([{ x: 5, label: 'a' }, { x: 95, label: 'b' }], rows, false, 290).map((p) => [p.align, p.dy])).toEqual([['left', 2], ['right', 2]]);
  });

  it('ticks a log axis at 1, 2, 5 × 10^k over the data (and bands), only at 10^k beyond six decades', () => {
    expect(logTicks([{ y: 0.3 }, { y: 40, lo: 30, hi: 70 }])).toEqual([0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500]);
    expect(logTicks([{ y: 2e-4 }, { y: 5e3 }])).toEqual([1e-4, 1e-3, 1e-2, 0.1, 1, 10, 100, 1e3, 1e4]);
    expect(logTicks([{ y: null }, { y: -1 }])).toEqual([]);
  });
});
