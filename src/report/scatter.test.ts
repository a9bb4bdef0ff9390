import { describe, it, expect } from 'vitest';
import { scatterChart, leastSquares } from './scatter.ts';
import { xmlProblems } from './xmlcheck.ts';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

/** Attribute `name` of the first element matching `tagRe`. */
function attr(svg: string, tagRe: RegExp, name: string): number {
  const tag = tagRe.exec(svg)![0];
  return Number(new RegExp(`\\b${name}="([^"]*)"`).exec(tag)![1]);
}

/** The pixel → data maps of a chart, from the plot box's data-*-domain attributes. */
function inverse(svg: string): { dx: (p: number) => number; dy: (p: number) => number; box: [number, number, number, number] } {
  const tag = /<rect class="plot"[^>]*>/.exec(svg)![0];
  const num = (n: string): number => Number(new RegExp(`\\b${n}="([^"]*)"`).exec(tag)![1]);
  const [x0, x1] = /data-x-domain="([^"]*)"/.exec(tag)![1]!.split(' ').map(Number) as [number, number];
  const [y0, y1] = /data-y-domain="([^"]*)"/.exec(tag)![1]!.split(' ').map(Number) as [number, number];
  const l = num('x'), t = num('y'), w = num('width'), h = num('height');
  return { dx: (p) => x0 + ((p - l) / w) * (x1 - x0), dy: (p) => y0 + (1 - (p - t) / h) * (y1 - y0), box: [l, t, w, h] };
}

const r = lcg(3);
const gA = { label: 'memorized <script>alert(1)</script>', x: Array.from({ length: 40 }, () => r() * 3), y: [] as number[] };
gA.y = gA.x.map((v) => 2 * v + 0.5 + 0.3 * r());
const gB = { label: 'novel', x: Array.from({ length: 30 }, () => 1 + r()), y: [] as number[], color: '#00aa00' };
gB.y = gB.x.map((v) => 1.5 * v - 1 + 0.4 * r());

describe('scatterChart', () => {
  it('is well-formed with escaped labels, a legend and an annotation', () => {
    const svg = scatterChart({ title: 'T <&>', xLabel: 'x̂0 norm', yLabel: 'y', groups: [gA, gB], annotation: 'Pearson r = 0.93 [0.88, 0.96] <i>' });
    expect(xmlProblems(svg)).toEqual([]);
    expect(svg).not.toContain('<script>');
    expect(svg).not.toContain('<i>');
    expect(svg).toContain('memorized &lt;script&gt;');
    expect(svg).toContain('Pearson r = 0.93 [0.88, 0.96] &lt;i&gt;');
    expect(svg).toContain('T &lt;&amp;&gt;');
    expect(svg).not.toMatch(/NaN|Infinity/);
    expect((svg.match(/<circle cx/g) ?? []).length).toBe(40 + 30 + 2); // dots + 2 legend dots
    expect(svg).toContain('fill="#00aa00"');
    expect(svg).not.toContain('class="fit"');
  });

  it('draws the least-squares line of all points (checked against the normal equations)', () => {
    const svg = scatterChart({ title: 't', xLabel: 'x', yLabel: 'y', groups: [gA, gB], fitLine: true });
    expect(xmlProblems(svg)).toEqual([]);
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
    const fitTag = /<line class="fit"[^>]*>/;
    expect(attr(svg, fitTag, 'data-slope')).toBeCloseTo(b, 10);
    expect(attr(svg, fitTag, 'data-intercept')).toBeCloseTo(a, 10);
    // the drawn segment lies on y = a + b·x (to pixel rounding) and inside the plot box
    const inv = inverse(svg);
    const [l, t, w, h] = inv.box;
    for (const [xn, yn] of [['x1', 'y1'], ['x2', 'y2']] as const) {
      const px = attr(svg, fitTag, xn);
      const py = attr(svg, fitTag, yn);
      expect(px).toBeGreaterThanOrEqual(l - 0.05);
      expect(px).toBeLessThanOrEqual(l + w + 0.05);
      expect(py).toBeGreaterThanOrEqual(t - 0.05);
      expect(py).toBeLessThanOrEqual(t + h + 0.05);
      const pxPerY = h / (inv.dy(t) - inv.dy(t + h));
      expect(Math.abs(inv.dy(py) - (a + b * inv.dx(px))) * pxPerY).toBeLessThan(0.2);
    }
    expect(leastSquares(xs, ys)!.n).toBe(n);
  });

  it('skips non-finite pairs everywhere and omits the fit when it is undefined', () => {
    const svg = scatterChart({ title: 't', xLabel: 'x', yLabel: 'y', groups: [{ label: 'g', x: [1, NaN, 1, Infinity], y: [2, 3, 4, 5] }], fitLine: true });
    expect(xmlProblems(svg)).toEqual([]);
    expect(svg).not.toMatch(/NaN|Infinity/);
    expect(svg).not.toContain('class="fit"'); // all finite x equal
    expect(leastSquares([1, 2, NaN], [1, 2, 7])).toEqual({ slope: 1, intercept: 0, n: 2 });
    expect(leastSquares([1], [1])).toBeNull();
    const empty = scatterChart({ title: 't', xLabel: 'x', yLabel: 'y', groups: [] });
    expect(xmlProblems(empty)).toEqual([]);
  });

  it('draws a labelled reference line clipped to the plot box', () => {
    const svg = scatterChart({ title: 't', xLabel: 'x', yLabel: 'y', groups: [gA], diagonal: { slope: 7.5, intercept: 0, label: 'x̂0(T) = s·x <s>' } });
    expect(xmlProblems(svg)).toEqual([]);
    expect(svg).toContain('x̂0(T) = s·x &lt;s&gt;');
    const tag = /<line class="diagonal"[^>]*>/;
    const inv = inverse(svg);
    const [l, t, w, h] = inv.box;
    const ends = [['x1', 'y1'], ['x2', 'y2']].map(([xn, yn]) => [attr(svg, tag, xn!), attr(svg, tag, yn!)] as const);
    for (const [px, py] of ends) {
      expect(px).toBeGreaterThanOrEqual(l - 0.05);
      expect(px).toBeLessThanOrEqual(l + w + 0.05);
      expect(py).toBeGreaterThanOrEqual(t - 0.05);
      expect(py).toBeLessThanOrEqual(t + h + 0.05);
      expect(inv.dy(py)).toBeCloseTo(7.5 * inv.dx(px), 1);
    }
    // a steep line through the data: it must leave through the top and bottom edges
    expect(Math.min(ends[0]![1], ends[1]![1])).toBeCloseTo(t, 0);
    expect(Math.max(ends[0]![1], ends[1]![1])).toBeCloseTo(t + h, 0);
    // a line missing the plot entirely is not drawn but still in the legend
    const miss = scatterChart({ title: 't', xLabel: 'x', yLabel: 'y', groups: [gA], diagonal: { slope: 0, intercept: 1e6, label: 'far' } });
    expect(miss).not.toContain('class="diagonal"');
    expect(miss).toContain('>far</text>');
  });
});
