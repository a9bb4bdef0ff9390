import { describe, it, expect } from 'vitest';
import { lineChart, type Series } from './svg.ts';
import { xmlProblems } from './xmlcheck.ts';

/** The `points` attribute of every element with the given tag (and class, when given). */
function pointsOf(svg: string, tag: string, cls?: string): number[][][] {
  const re = new RegExp(`<${tag}\\b[^>]*>`, 'g');
  return [...svg.matchAll(re)]
    .map((m) => m[0])
    .filter((t) => cls === undefined || t.includes(`class="${cls}"`))
    .map((t) => /points="([^"]*)"/.exec(t)![1]!.split(' ').map((p) => p.split(',').map(Number)));
}

const x = [0, 1, 2, 3, 4, 5];
const mean = [1, 2, 3, 2.5, 2, 1.5];
const band = { lo: mean.map((v) => v - 0.5), hi: mean.map((v) => v + 0.5) };

describe('lineChart', () => {
  it('is well-formed, escapes labels and keeps the plain API', () => {
    const svg = lineChart({
      title: '<script>alert("t")</script>',
      xLabel: 'x & <b>',
      yLabel: "y's",
      series: [{ label: '<script>s</script>', x, y: mean }],
      markers: [{ x: 2, label: '<m>' }],
    });
    expect(xmlProblems(svg)).toEqual([]);
    expect(svg).not.toContain('<script>');
    expect(svg).toContain('&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;');
    expect(svg).toContain('&lt;script&gt;s&lt;/script&gt;');
    expect(svg).not.toContain('NaN');
    expect(pointsOf(svg, 'polyline')).toHaveLength(1);
    expect(pointsOf(svg, 'polygon')).toHaveLength(0);
  });

  it('draws a band as one polygon of 2·n points (upper edge, then lower edge back) in the series colour, behind the line', () => {
    const svg = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ label: 'm', x, y: mean, color: '#123456', band }] });
    expect(xmlProblems(svg)).toEqual([]);
    const polys = pointsOf(svg, 'polygon', 'band');
    expect(polys).toHaveLength(1);
    const poly = polys[0]!;
    expect(poly).toHaveLength(2 * x.length);
    const line = pointsOf(svg, 'polyline')[0]!;
    for (let i = 0; i < x.length; i++) {
      const up = poly[i]!;
      const down = poly[2 * x.length - 1 - i]!;
      expect(up[0]).toBeCloseTo(line[i]![0]!, 6);
      expect(down[0]).toBeCloseTo(line[i]![0]!, 6);
      // SVG y grows downwards: hi above the line above lo, symmetric here (±0.5)
      expect(up[1]!).toBeLessThan(line[i]![1]!);
      expect(down[1]!).toBeGreaterThan(line[i]![1]!);
      expect(line[i]![1]! - up[1]!).toBeCloseTo(down[1]! - line[i]![1]!, 0);
    }
    const tag = /<polygon[^>]*>/.exec(svg)![0];
    expect(tag).toContain('fill="#123456"');
    expect(tag).toMatch(/fill-opacity="0\.\d+"/);
    expect(svg.indexOf('<polygon')).toBeLessThan(svg.indexOf('<polyline'));
  });

  it('counts band values in the y range (the band stays inside the plot)', () => {
    const svg = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ label: 'm', x, y: mean, band: { lo: mean.map((v) => v - 10), hi: mean.map((v) => v + 10) } }] });
    const [, top, , height] = /<rect x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"/.exec(svg)!.slice(1).map(Number) as [number, number, number, number];
    for (const [, py] of pointsOf(svg, 'polygon')[0]! as [number, number][]) {
      expect(py).toBeGreaterThanOrEqual(top - 0.05);
      expect(py).toBeLessThanOrEqual(top + height + 0.05);
    }
  });

  it('splits lines and bands at non-finite points and never writes NaN', () => {
    const y = [1, NaN, 3, 2, Infinity, 1];
    const lo = [0.5, 1, 2.5, NaN, 1, 0.5];
    const hi = [1.5, 2, 3.5, 2.5, 2, 1.5];
    const series: Series[] = [
      { label: 'a', x, y, band: { lo, hi } },
      { label: 'b', x: [0, NaN, 2], y: [1, 1, 1], band: { lo: [0, 0], hi: [2, 2] } },
    ];
    const svg = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series, markers: [{ x: NaN, label: 'bad' }] });
    expect(xmlProblems(svg)).toEqual([]);
    expect(svg).not.toMatch(/NaN|Infinity/);
    // series a: runs {0}, {2,3}, {5}; series b: {0}, {2}
    expect(pointsOf(svg, 'polyline').map((p) => p.length)).toEqual([1, 2, 1, 1, 1]);
    // band a: runs {0,1,2}, {4,5}; band b: {0} (x[1] NaN, lo/hi[2] missing)
    expect(pointsOf(svg, 'polygon', 'band').map((p) => p.length)).toEqual([6, 4, 2]);
  });

  it('on a log axis draws a non-positive band floor at the bottom of the plot', () => {
    const svg = lineChart({
      title: 't', xLabel: 'x', yLabel: 'y', logY: true, reverseX: true,
      series: [{ label: 'm', x: [1, 2, 3], y: [1, 10, 100], band: { lo: [-1, 5, 50], hi: [2, 20, 200] } }],
    });
    expect(xmlProblems(svg)).toEqual([]);
    expect(svg).not.toContain('NaN');
    const [, top, , height] = /<rect x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"/.exec(svg)!.slice(1).map(Number) as [number, number, number, number];
    const poly = pointsOf(svg, 'polygon', 'band')[0]!;
    expect(poly).toHaveLength(6);
    expect(poly[5]![1]).toBeCloseTo(top + height, 1); // lo[0] ≤ 0: clamped to the bottom
    expect(poly[4]![1]).toBeLessThan(top + height);
  });
});
