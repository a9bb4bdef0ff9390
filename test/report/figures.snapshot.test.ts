import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lineChart } from '../../src/report/line.ts';
import { scatterChart } from '../../src/report/scatter.ts';
import { trajectoryFan } from '../../src/report/fan.ts';
import { renderSvg, type FigureSpec } from '../../src/report/vega.ts';
import { mulberry32, normals } from '../helpers/random.ts';
import { expectSnapshot, changedName } from '../helpers/snapshot.ts';

const DIR = join(import.meta.dirname, 'snapshots');

/** Seeded figures of every kind, built the way the commands build them (bands, markers, log axes, fits). */
function figures(): Record<string, FigureSpec> {
  const rng = mulberry32(17);
  const z = normals(rng, 400);
  const t = Array.from({ length: 50 }, (_, i) => 999 - 20 * i);
  const curve = (a: number, o: number): number[] => t.map((v, i) => a * Math.exp(-v / 400) + 0.05 * Math.abs(z[o + i]!));
  const mem = curve(3, 0);
  const nor = curve(1, 50);
  const line = lineChart({
    title: 'd_t along denoising <seeded>',
    xLabel: 'timestep t',
    yLabel: 'd_t',
    logY: true,
    reverseX: true,
    series: [
      { label: 'memorized', x: t, y: mem, band: { lo: mem.map((v) => v * 0.8), hi: mem.map((v) => v * 1.25) } },
      { label: 'normal', x: t, y: nor, dashed: true },
      { label: 'gap', x: t, y: t.map((_, i) => (i % 7 === 3 ? NaN : 0.5)) },
    ],
    markers: [{ x: 619, label: 'DTP switch', color: '#d62728' }],
  });
  const xs = Array.from({ length: 30 }, (_, i) => z[100 + i]!);
  const scatter = scatterChart({
    title: 'D_x vs score',
    xLabel: 'D_x',
    yLabel: 'score',
    annotation: 'Pearson r (seeded)',
    fitLine: true,
    diagonal: { slope: 1, intercept: 0, label: 'y = x' },
    groups: [
      { label: 'memorized', x: xs.slice(0, 15), y: xs.slice(0, 15).map((v, i) => 0.8 * v + 0.3 * z[200 + i]!) },
      { label: 'normal', x: xs.slice(15), y: xs.slice(15).map((v, i) => 0.5 * v + 0.3 * z[220 + i]!) },
    ],
  });
  const fan = trajectoryFan({
    title: 'trajectory fan',
    equalAspect: true,
    paths: [0, 1, 2, 3].map((p) => ({
      group: p < 2 ? 'memorized' : 'normal',
      points: Array.from({ length: 10 }, (_, k): [number, number] => [k * (1 + 0.1 * z[300 + p]!), (p - 1.5) * Math.sqrt(k) + 0.1 * z[310 + 10 * p + k]!]),
    })),
  });
  return { line, scatter, fan };
}

describe('figure snapshots', () => {
  for (const [name, spec] of Object.entries(figures())) {
    it(`${name}: the spec and its SVG match the committed snapshots`, async () => {
      expectSnapshot(DIR, `${name}.vl.json`, JSON.stringify(spec, null, 1) + '\n');
      expectSnapshot(DIR, `${name}.svg`, await renderSvg(spec));
    });
  }

  it('a changed figure fails and leaves a -changed file beside the snapshot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'memscope-snap-'));
    try {
      const saved = process.env['UPDATE_SNAPSHOTS'];
      delete process.env['UPDATE_SNAPSHOTS'];
      try {
        expect(() => expectSnapshot(dir, 'a.vl.json', '{}')).toThrow(/missing/);
        expect(readFileSync(join(dir, 'a-changed.vl.json'), 'utf8')).toBe('{}');
        process.env['UPDATE_SNAPSHOTS'] = '1';
        expectSnapshot(dir, 'a.vl.json', '{}');
        delete process.env['UPDATE_SNAPSHOTS'];
        expect(existsSync(join(dir, 'a-changed.vl.json'))).toBe(false);
        expectSnapshot(dir, 'a.vl.json', '{}');
        expect(() => expectSnapshot(dir, 'a.vl.json', '{"x":1}')).toThrow(/changed/);
        expect(readFileSync(join(dir, changedName('a.vl.json')), 'utf8')).toBe('{"x":1}');
        expect(readFileSync(join(dir, 'a.vl.json'), 'utf8')).toBe('{}');
      } finally {
        if (saved === undefined) delete process.env['UPDATE_SNAPSHOTS'];
        else process.env['UPDATE_SNAPSHOTS'] = saved;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
