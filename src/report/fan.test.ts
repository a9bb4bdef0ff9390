import { describe, it, expect } from 'vitest';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { trajectoryFan } from './fan.ts';
import { projectPaths, type PcaMethod } from '../analysis/pca.ts';
import { renderSvg } from './vega.ts';
import { marks, subpaths } from '../../test/helpers/vega-svg.ts';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

/** Two orthonormal vectors in R^d (Gram–Schmidt of random ones). */
function plane(d: number, r: () => number): [Float64Array, Float64Array] {
  const e1 = Float64Array.from({ length: d }, r);
  const e2 = Float64Array.from({ length: d }, r);
  const dot = (a: Float64Array, b: Float64Array): number => a.reduce((s, v, i) => s + v * b[i]!, 0);
  const n1 = Math.sqrt(dot(e1, e1));
  e1.forEach((v, i) => (e1[i] = v / n1));
  const p = dot(e1, e2);
  e2.forEach((v, i) => (e2[i] = v - p * e1[i]!));
  const n2 = Math.sqrt(dot(e2, e2));
  e2.forEach((v, i) => (e2[i] = v / n2));
  return [e1, e2];
}

/** Paths on a 2-D plane of R^d (spiralling in, as sampling trajectories do): data and 2-D truth. */
function planarPaths(paths: number, steps: number, d: number, seed: number): { data: Float32Array; truth: [number, number][] } {
  const r = lcg(seed);
  const [e1, e2] = plane(d, r);
  const offset = Float64Array.from({ length: d }, () => 5 * r());
  const data = new Float32Array(paths * steps * d);
  const truth: [number, number][] = [];
  for (let p = 0; p < paths; p++) {
    const a0 = r() * Math.PI;
    for (let s = 0; s < steps; s++) {
      const rad = 3 * (1 - s / steps) + 0.5;
      const a = a0 + s * 0.3;
      const u = 2 * rad * Math.cos(a) + 0.3 * p;
      const v = rad * Math.sin(a);
      truth.push([u, v]);
      for (let j = 0; j < d; j++) data[(p * steps + s) * d + j] = offset[j]! + u * e1[j]! + v * e2[j]!;
    }
  }
  return { data, truth };
}

function maxDistanceError(a: readonly (readonly [number, number])[], b: readonly (readonly [number, number])[]): { err: number; scale: number } {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    for (let j = i + 1; j < a.length; j++) {
      const da = Math.hypot(a[i]![0] - a[j]![0], a[i]![1] - a[j]![1]);
      const db = Math.hypot(b[i]![0] - b[j]![0], b[i]![1] - b[j]![1]);
      err = Math.max(err, Math.abs(da - db));
      scale = Math.max(scale, db);
    }
  }
  return { err, scale };
}

const METHODS: PcaMethod[] = ['auto', 'covariance', 'gram', 'implicit'];

describe('projectPaths', () => {
  for (const [paths, steps] of [[6, 20], [3, 10]] as const) {
    const N = paths * steps;
    for (const method of METHODS) {
      it(`reproduces points on a 2-D plane in d=50 up to rotation/sign (N=${N} ${N > 50 ? '>' : '<'} d, ${method})`, () => {
        const { data, truth } = planarPaths(paths, steps, 50, 11);
        const got = projectPaths(data, paths, steps, 50, { method });
        expect(got.points).toHaveLength(paths);
        expect(got.points.every((p) => p.length === steps)).toBe(true);
        const { err, scale } = maxDistanceError(got.points.flat(), truth);
        expect(err / scale).toBeLessThan(1e-5); // float32 input
        expect(got.explained[0] + got.explained[1]).toBeCloseTo(1, 9);
        expect(got.explained[0]).toBeGreaterThanOrEqual(got.explained[1]);
        // centred scores, uncorrelated components
        const flat = got.points.flat();
        const m1 = flat.reduce((s, p) => s + p[0], 0) / N;
        const m2 = flat.reduce((s, p) => s + p[1], 0) / N;
        expect(Math.abs(m1) / scale).toBeLessThan(1e-9);
        expect(Math.abs(m2) / scale).toBeLessThan(1e-9);
        expect(Math.abs(flat.reduce((s, p) => s + p[0] * p[1], 0)) / (N * scale * scale)).toBeLessThan(1e-7);
      });
    }
  }

  it('matches a full eigen-decomposition (ml-matrix) on generic data, for every method', () => {
    const r = lcg(5);
    const paths = 5, steps = 12, d = 30, N = paths * steps;
    // anisotropic cloud: column j scaled by 1/(1+j)
    const data = Float32Array.from({ length: N * d }, (_, i) => r() / (1 + (i % d) * 0.3));
    const X = new Matrix(N, d);
    const mean = new Float64Array(d);
    for (let i = 0; i < N; i++) for (let j = 0; j < d; j++) mean[j]! += data[i * d + j]! / N;
    for (let i = 0; i < N; i++) for (let j = 0; j < d; j++) X.set(i, j, data[i * d + j]! - mean[j]!);
    const C = X.transpose().mmul(X);
    const evd = new EigenvalueDecomposition(C, { assumeSymmetric: true });
    const order = evd.realEigenvalues.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]);
    const total = evd.realEigenvalues.reduce((s, v) => s + v, 0);
    const refScores = [0, 1].map((k) => {
      const v = evd.eigenvectorMatrix.getColumn(order[k]![1]);
      return X.mmul(Matrix.columnVector(v)).getColumn(0);
    });
    for (const method of METHODS) {
      const got = projectPaths(data, paths, steps, d, { method });
      expect(got.explained[0]).toBeCloseTo(order[0]![0] / total, 8);
      expect(got.explained[1]).toBeCloseTo(order[1]![0] / total, 8);
      const flat = got.points.flat();
      for (const k of [0, 1]) {
        const sign = Math.sign(flat.reduce((s, p, i) => s + p[k]! * refScores[k]![i]!, 0));
        for (let i = 0; i < N; i++) expect(flat[i]![k]!).toBeCloseTo(sign * refScores[k]![i]!, 5);
        // sign convention: the largest-magnitude score is positive
        const big = flat.map((p) => p[k]!).reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a), 0);
        expect(big).toBeGreaterThan(0);
      }
    }
  });

  it('is deterministic and handles degenerate input', () => {
    const { data } = planarPaths(4, 9, 20, 2);
    expect(projectPaths(data, 4, 9, 20, { method: 'implicit' })).toEqual(projectPaths(data, 4, 9, 20, { method: 'implicit' }));
    // all points equal
    const same = projectPaths(new Float32Array(3 * 4 * 5).fill(2), 3, 4, 5);
    expect(same.explained).toEqual([0, 0]);
    expect(same.points.flat().every(([a, b]) => a === 0 && b === 0)).toBe(true);
    // collinear: PC2 explains nothing
    const line = Float32Array.from({ length: 2 * 5 * 3 }, (_, i) => Math.floor(i / 3) * (1 + (i % 3)));
    const l = projectPaths(line, 2, 5, 3);
    expect(l.explained[0]).toBeCloseTo(1, 9);
    expect(l.explained[1]).toBeCloseTo(0, 9);
    // d = 1
    const one = projectPaths(Float32Array.from([1, 2, 3, 4]), 2, 2, 1);
    expect(one.explained).toEqual([1, 0]);
    expect(one.points.flat().map((p) => p[0])).toEqual([1.5, 0.5, -0.5, -1.5]); // tie: the first largest-magnitude score is made positive
    expect(projectPaths(new Float32Array(0), 0, 5, 3)).toEqual({ points: [], explained: [0, 0] });
  });

  it('validates its input', () => {
    expect(() => projectPaths(new Float32Array(10), 2, 2, 2)).toThrow(/expected 2·2·2 = 8/);
    expect(() => projectPaths(Float32Array.from([0, NaN]), 1, 2, 1)).toThrow(/non-finite value at path 0, step 1/);
    expect(() => projectPaths(new Float32Array(0), -1, 0, 0)).toThrow(/paths/);
  });
});

describe('trajectoryFan', () => {
  it('draws one line per path in point order with start/end marks, group colours, escaped legend', async () => {
    const { data } = planarPaths(4, 15, 10, 4);
    const { points, explained } = projectPaths(data, 4, 15, 10);
    const groups = ['memorized', 'memorized', '<script>n', '<script>n'];
    const svg = await renderSvg(
      trajectoryFan({
        title: `PCA (PC1 ${(explained[0] * 100).toFixed(1)} %)`,
        paths: points.map((p, i) => ({ group: groups[i]!, points: p })),
        groupColors: { memorized: '#ff0000' },
      }),
    );
    expect(svg).not.toMatch(/NaN|Infinity/);
    expect(svg).not.toContain('<script');
    expect(svg).toContain('>&lt;script&gt;n</text>');
    const lines = marks(svg, 'line mark');
    expect(lines).toHaveLength(4);
    for (const l of lines) expect(subpaths(l.attrs['d']!).map((p) => p.length)).toEqual([15]);
    expect(lines.filter((l) => l.attrs['stroke'] === '#ff0000')).toHaveLength(2);
    expect(lines.filter((l) => l.attrs['stroke'] === '#d62728')).toHaveLength(2); // palette[1] for the 2nd group
    const starts = marks(svg, 'point');
    const ends = marks(svg, 'circle');
    expect([starts.length, ends.length]).toEqual([4, 4]);
    // the start circle sits on the first point of its path, the end dot on the last (drawn in point order)
    const first = subpaths(lines[0]!.attrs['d']!)[0]!;
    const at = (m: { attrs: Record<string, string> }): [number, number] => {
      const t = /translate\(([^,]+),([^)]+)\)/.exec(m.attrs['transform']!)!;
      return [Number(t[1]), Number(t[2])];
    };
    expect(at(starts[0]!)[0]).toBeCloseTo(first[0]![0], 2);
    expect(at(starts[0]!)[1]).toBeCloseTo(first[0]![1], 2);
    expect(at(ends[0]!)[0]).toBeCloseTo(first[14]![0], 2);
    expect(svg).toContain('>PC1</text>');
    expect(svg).toContain('>PC2</text>');
  });

  it('breaks paths at non-finite points and supports equal aspect', async () => {
    const spec = trajectoryFan({
      title: 't',
      xLabel: 'a',
      yLabel: 'b',
      equalAspect: true,
      paths: [{ group: 'g', points: [[0, 0], [1, 1], [NaN, 2], [2, 0], [3, 1]] }, { group: 'h', points: [] }],
    });
    const svg = await renderSvg(spec);
    expect(svg).not.toMatch(/NaN|Infinity/);
    expect(marks(svg, 'line mark').map((l) => subpaths(l.attrs['d']!).map((p) => p.length))).toEqual([[2, 2]]);
    expect(marks(svg, 'point')).toHaveLength(1);
    const s = spec as unknown as { width: number; height: number; layer: { encoding: { x: { scale: { domain: [number, number] } }; y: { scale: { domain: [number, number] } } } }[] };
    const [x0, x1] = s.layer[0]!.encoding.x.scale.domain;
    const [y0, y1] = s.layer[0]!.encoding.y.scale.domain;
    expect((x1 - x0) / s.width).toBeCloseTo((y1 - y0) / s.height, 12);
  });
});
