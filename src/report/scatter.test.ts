import { describe, it, expect } from 'vitest';
import { scatterChart, leastSquares } from './scatter.ts';
import { renderSvg, type FigureSpec } from './vega.ts';
import { marks, subpaths } from '../../test/helpers/vega-svg.ts';
import { mulberry32 } from '../../test/helpers/random.ts';

const rng = mulberry32(3);
const r = (): number => rng() * 2 - 1;
const gA = { label: 'memorized <script>alert(1)</script>', x: Array.from({ length: 40 }, () => r() * 3), y: [] as number[] };
gA.y = gA.x.map((v) => 2 * v + 0.5 + 0.3 * r());
const gB = { label: 'novel', x: Array.from({ length: 30 }, () => 1 + r()), y: [] as number[], color: '#00aa00' };
gB.y = gB.x.map((v) => 1.5 * v - 1 + 0.4 * r());

/** The data → pixel frame of a scatter spec: plot size and the explicit domains of its first layer. */
function frame(spec: FigureSpec): { w: number; h: number; dx: (p: number) => number; dy: (p: number) => number } {
  const s = spec as unknown as { width: number; height: number; layer: { encoding: { x: { scale: { domain: [number, number] } }; y: { scale: { domain: [number, number] } } } }[] };
  const [x0, x1] = s.layer[0]!.encoding.x.scale.domain;
  const [y0, y1] = s.layer[0]!.encoding.y.scale.domain;
  return { w: s.width, h: s.height, dx: (p) => x0 + (p / s.width) * (x1 - x0), dy: (p) => y0 + (1 - p / s.height) * (y1 - y0) };
}

/** The endpoints (pixels) of the reference/fit line drawn in colour `stroke`. */
function lineOf(svg: string, stroke: string): [number, number][] {
  const m = marks(svg, 'line mark').find((l) => l.attrs['stroke'] === stroke);
  return m ? subpaths(m.attrs['d']!).flat() : [];
}

describe('scatterChart', () => {
  it('renders escaped labels, one dot per finite pair in its group colour, and the annotation', async () => {
    const svg = await renderSvg(scatterChart({ title: 'T <&>', xLabel: 'x̂0 norm', yLabel: 'y', groups: [gA, gB], annotation: 'Pearson r = 0.93 [0.88, 0.96] <i>' }));
    expect(svg).not.toMatch(/<script|<i>/);
    expect(svg).toContain('memorized &lt;script&gt;');
    expect(svg).toContain('Pearson r = 0.93 [0.88, 0.96] &lt;i&gt;');
    expect(svg).toContain('T &lt;&amp;&gt;');
    expect(svg).not.toMatch(/NaN|Infinity/);
    const dots = marks(svg, 'circle');
    expect(dots).toHaveLength(70);
    expect(dots.filter((d) => d.attrs['fill'] === '#00aa00')).toHaveLength(30);
    expect(marks(svg, 'line mark')).toHaveLength(0);
  });

  it('draws the least-squares line of all points (checked against the normal equations)', async () => {
    const spec = scatterChart({ title: 't', xLabel: 'x', yLabel: 'y', groups: [gA, gB], fitLine: true });
    // independent: solve [n Σx; Σx Σx²] [a; b] = [Σy; Σxy] by Cramer's rule on raw sums
    const xs = [...gA.x, ...gB.x];
    const ys = [...gA.y, ...gB.y];
    const n = xs.length;
    const sx = xs.reduce((s, v) => s + v, 0);
    const sy = ys.reduce((s, v) => s + v, 0);
    const sxx = xs.reduce((s, v) => s + v * v, 0);
    const sxy = xs.reduce((s, v, i) => s + v * ys[i]!, 0);
    const det = n * sxx - sx * sx;
    const a = (sy * sxx - sx * sxy) / det;
    const b = (n * sxy - sx * sy) / det;
    const fit = leastSquares(xs, ys)!;
    expect(fit.slope).toBeCloseTo(b, 10);
    expect(fit.intercept).toBeCloseTo(a, 10);
    expect(fit.n).toBe(n);
    const svg = await renderSvg(spec);
    const ends = lineOf(svg, '#000');
    expect(ends).toHaveLength(2);
    const f = frame(spec);
    for (const [px, py] of ends) {
      expect(px).toBeGreaterThanOrEqual(-0.05);
      expect(px).toBeLessThanOrEqual(f.w + 0.05);
      expect(py).toBeGreaterThanOrEqual(-0.05);
      expect(py).toBeLessThanOrEqual(f.h + 0.05);
      const pxPerY = f.h / (f.dy(0) - f.dy(f.h));
      expect(Math.abs(f.dy(py) - (a + b * f.dx(px))) * pxPerY).toBeLessThan(0.01);
    }
  });

  it('skips non-finite pairs everywhere and omits the fit when it is undefined', async () => {
    const svg = await renderSvg(scatterChart({ title: 't', xLabel: 'x', yLabel: 'y', groups: [{ label: 'g', x: [1, NaN, 1, Infinity], y: [2, 3, 4, 5] }], fitLine: true }));
    expect(svg).not.toMatch(/NaN|Infinity/);
    expect(marks(svg, 'circle')).toHaveLength(2);
    expect(lineOf(svg, '#000')).toHaveLength(0); // all finite x equal: no fit
    expect(leastSquares([1, 2, NaN], [1, 2, 7])).toEqual({ slope: 1, intercept: 0, n: 2 });
    expect(leastSquares([1], [1])).toBeNull();
    const empty = await renderSvg(scatterChart({ title: 't', xLabel: 'x', yLabel: 'y', groups: [] }));
    expect(empty).toContain('<svg');
  });

  it('draws a labelled reference line clipped to the plot box', async () => {
    const spec = scatterChart({ title: 't', xLabel: 'x', yLabel: 'y', groups: [gA], diagonal: { slope: 7.5, intercept: 0, label: 'x̂0(T) = s·x <s>' } });
    const svg = await renderSvg(spec);
    expect(svg).toContain('x̂0(T) = s·x &lt;s&gt;');
    const f = frame(spec);
    const ends = lineOf(svg, '#555');
    expect(ends).toHaveLength(2);
    for (const [px, py] of ends) {
      expect(px).toBeGreaterThanOrEqual(-0.05);
      expect(px).toBeLessThanOrEqual(f.w + 0.05);
      expect(f.dy(py)).toBeCloseTo(7.5 * f.dx(px), 1);
    }
    // a steep line through the data leaves through the top and bottom edges
    expect(Math.min(ends[0]![1], ends[1]![1])).toBeCloseTo(0, 1);
    expect(Math.max(ends[0]![1], ends[1]![1])).toBeCloseTo(f.h, 1);
    // a line missing the plot entirely is not drawn but still in the legend
    const miss = await renderSvg(scatterChart({ title: 't', xLabel: 'x', yLabel: 'y', groups: [gA], diagonal: { slope: 0, intercept: 1e6, label: 'far' } }));
    expect(lineOf(miss, '#555')).toHaveLength(0);
    expect(miss).toContain('>far</text>');
  });
});
