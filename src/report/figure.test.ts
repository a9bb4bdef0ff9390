import { describe, it, expect, afterAll } from 'vitest';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { svgToPng, writeFigure, labelledStrip, STRIP_TITLE_HEIGHT } from './figure.ts';
import { lineChart } from './line.ts';
import { renderSvg } from './vega.ts';
import { scatterChart } from './scatter.ts';
import { trajectoryFan } from './fan.ts';
import { tensor } from '../tensor/tensor.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const spec = lineChart({
  title: 'd_t <script>',
  xLabel: 't',
  yLabel: 'd',
  width: 300,
  height: 200,
  series: [{ label: 'a', x: [0, 1, 2], y: [1, 2, 3], band: { lo: [0.5, 1.5, 2.5], hi: [1.5, 2.5, 3.5] } }],
});
const chart = await renderSvg(spec);
/** The width and height an SVG declares. */
const sizeOf = (svg: string): [number, number] => [Number(/<svg[^>]*\swidth="(\d+)"/.exec(svg)![1]), Number(/<svg[^>]*\sheight="(\d+)"/.exec(svg)![1])];
const [cw, ch] = sizeOf(chart);

/** Raw RGB(A) pixels of a PNG. */
async function pixels(png: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

describe('svgToPng', () => {
  it('renders the SVG at its own size by default and scales with density', async () => {
    const png = await svgToPng(chart);
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', cw, ch]);
    const meta2 = await sharp(await svgToPng(chart, { density: 144 })).metadata();
    expect([meta2.width, meta2.height]).toEqual([2 * cw, 2 * ch]);
    // something was drawn: the white background plus dark strokes/text
    const { data } = await pixels(png);
    let dark = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i]! < 100) dark++;
    expect(dark).toBeGreaterThan(200);
  });

  it('renders every chart kind', async () => {
    const scatter = scatterChart({ title: 's', xLabel: 'x', yLabel: 'y', groups: [{ label: 'g', x: [1, 2, 3], y: [1, 3, 2] }], fitLine: true, annotation: 'r = 0.5', diagonal: { slope: 1, intercept: 0, label: 'y=x' } });
    const fan = trajectoryFan({ title: 'f', paths: [{ group: 'g', points: [[0, 0], [1, 2], [2, 1]] }] });
    for (const svg of [await renderSvg(scatter), await renderSvg(fan)]) {
      const meta = await sharp(await svgToPng(svg)).metadata();
      expect([meta.width, meta.height]).toEqual(sizeOf(svg));
      expect(meta.width).toBeGreaterThan(300);
    }
  });

  it('rejects malformed SVG', async () => {
    await expect(svgToPng('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><g></svg>')).rejects.toThrow();
  });
});

describe('writeFigure', () => {
  it('writes NAME.vl.json, NAME.svg and NAME.png (2× by default) and returns their paths', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memscope-fig-'));
    dirs.push(dir);
    const out = join(dir, 'sub');
    const paths = await writeFigure(out, 'dt_curve', spec);
    expect(paths).toEqual({ spec: join(out, 'dt_curve.vl.json'), svg: join(out, 'dt_curve.svg'), png: join(out, 'dt_curve.png'), markup: chart });
    expect(await readFile(paths.svg, 'utf8')).toBe(chart);
    expect(JSON.parse(await readFile(paths.spec, 'utf8'))).toEqual(JSON.parse(JSON.stringify(spec)));
    const meta = await sharp(await readFile(paths.png)).metadata();
    expect([meta.width, meta.height]).toEqual([2 * cw, 2 * ch]);
    const one = await writeFigure(out, 'dt_1x', spec, { density: 72 });
    expect((await sharp(await readFile(one.png)).metadata()).width).toBe(cw);
    expect((await readdir(out)).sort()).toEqual(['dt_1x.png', 'dt_1x.svg', 'dt_1x.vl.json', 'dt_curve.png', 'dt_curve.svg', 'dt_curve.vl.json']); // no temporaries left
    await expect(writeFigure(out, '../escape', spec)).rejects.toThrow(/invalid figure name/);
    await expect(writeFigure(out, '', spec)).rejects.toThrow(/invalid figure name/);
  });
});

describe('labelledStrip', () => {
  // 4 images 1×8×6: image k has constant value -1 + 2k/3 (black … white)
  const n = 4, H = 8, W = 6;
  const gray = tensor([n, 1, H, W], Float32Array.from({ length: n * H * W }, (_, i) => -1 + (2 * Math.floor(i / (H * W))) / 3));
  const labels = ['s = 0.5', 's = 1', 's = 2', 's = 7.5 <script>'];

  it('has width n·(W·scale) + (n+1)·pad and height p + H·scale + (fontSize + 8), RGB, tiles in place', async () => {
    const png = await labelledStrip(gray, labels, { scale: 4 });
    const { data, width, height, channels } = await pixels(png);
    const scale = 4, pad = 4, fontSize = 12;
    expect(width).toBe(n * (W * scale) + (n + 1) * pad);
    expect(height).toBe(pad + H * scale + fontSize + 8);
    expect(channels).toBe(3);
    for (let k = 0; k < n; k++) {
      // centre of tile k
      const x = pad + k * (W * scale + pad) + (W * scale) / 2;
      const y = pad + (H * scale) / 2;
      const expected = Math.round(((2 * k) / 3 / 2) * 255);
      for (let c = 0; c < 3; c++) expect(data[(y * width + x) * 3 + c]).toBe(expected);
    }
    // the padding between tiles stays white
    expect(data[(10 * width + pad + W * scale + 1) * 3]).toBe(255);
    // label text was drawn under each tile (dark pixels in the label band of every column)
    for (let k = 0; k < n; k++) {
      let dark = 0;
      for (let y = pad + H * scale; y < height; y++) {
        for (let x = pad + k * (W * scale + pad); x < pad + (k + 1) * (W * scale + pad) - pad; x++) if (data[(y * width + x) * 3]! < 128) dark++;
      }
      expect(dark).toBeGreaterThan(5);
    }
  });

  it('supports RGB input, a title, custom pad and scale', async () => {
    const rgb = tensor([2, 3, 5, 7], Float32Array.from({ length: 2 * 3 * 5 * 7 }, (_, i) => (Math.floor(i / 35) % 3 === 0 ? 1 : -1)));
    const png = await labelledStrip(rgb, ['a', 'b'], { scale: 3, title: 'x̂0(T) at s ∈ {0.5, 1} <b>', pad: 2 });
    const { data, width, height } = await pixels(png);
    expect(width).toBe(2 * 7 * 3 + 3 * 2);
    expect(height).toBe(STRIP_TITLE_HEIGHT + 2 + 5 * 3 + 20);
    // tile 0 pixel: red channel 255 (channel 0 = +1), green/blue 0
    const o = ((STRIP_TITLE_HEIGHT + 2 + 4) * width + 2 + 4) * 3;
    expect([data[o], data[o + 1], data[o + 2]]).toEqual([255, 0, 0]);
  });

  it('validates its input', async () => {
    await expect(labelledStrip(gray, ['a'])).rejects.toThrow(/4 images but 1 labels/);
    await expect(labelledStrip(tensor([1, 2, 2, 2]), ['a'])).rejects.toThrow(/1 or 3 channels/);
    await expect(labelledStrip(tensor([2, 2]), ['a', 'b'])).rejects.toThrow(/expected \[n, C, H, W\]/);
    await expect(labelledStrip(gray, labels, { scale: 1.5 })).rejects.toThrow(/scale/);
  });
});
