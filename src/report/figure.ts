/** Figures on disk: a Vega-Lite spec with its SVG and PNG renderings (sharp's librsvg), labelled image strips. */
import { join } from 'node:path';
import sharp from 'sharp';
import type { Tensor } from '../tensor/tensor.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { escapeHtml } from './html.ts';
import { renderSvg, type FigureSpec } from './vega.ts';

/** Options of `svgToPng`. */
export interface SvgToPngOptions {
  /** Rendering density in DPI (default 72: one PNG pixel per SVG user unit; 144 doubles both sides). */
  readonly density?: number;
}

/** Rasterize a standalone SVG string to PNG bytes (sharp's bundled librsvg; text uses the system's fonts). */
export async function svgToPng(svg: string, opts: SvgToPngOptions = {}): Promise<Buffer> {
  return sharp(Buffer.from(svg, 'utf8'), { density: opts.density ?? 72 }).png().toBuffer();
}

/** Options of `writeFigure`. */
export interface WriteFigureOptions {
  /** PNG rendering density in DPI (default 144, i.e. the PNG is twice the SVG's size, for sharp text). */
  readonly density?: number;
}

/** The files `writeFigure` wrote. */
export interface FigurePaths {
  /** The Vega-Lite spec with its data (what the dashboard draws interactively). */
  readonly spec: string;
  readonly svg: string;
  readonly png: string;
  /** The SVG text itself (for inlining into a page). */
  readonly markup: string;
}

/**
 * Write `dir/NAME.vl.json` (the spec), `dir/NAME.svg` (rendered headless by Vega) and `dir/NAME.png`
 * (the SVG rasterised, 2× by default), each atomically, creating `dir`; returns the three paths and the SVG text.
 * `name` must be a plain file name stem (no path separators, not `.` or `..`).
 */
export async function writeFigure(dir: string, name: string, spec: FigureSpec, opts: WriteFigureOptions = {}): Promise<FigurePaths> {
  if (!name || name === '.' || name === '..' || /[/\\\0]/.test(name)) throw new Error(`writeFigure: invalid figure name ${JSON.stringify(name)}`);
  const svg = await renderSvg(spec);
  const png = await svgToPng(svg, { density: opts.density ?? 144 });
  const paths = { spec: join(dir, `${name}.vl.json`), svg: join(dir, `${name}.svg`), png: join(dir, `${name}.png`), markup: svg };
  await writeFileAtomic(paths.spec, JSON.stringify(spec, null, 1) + '\n');
  await writeFileAtomic(paths.svg, svg);
  await writeFileAtomic(paths.png, png);
  return paths;
}

/** Options of `labelledStrip`. */
export interface StripOptions {
  /** Integer nearest-neighbour upscaling factor (default 4). */
  readonly scale?: number;
  /** A title line above the row (default none). */
  readonly title?: string;
  /** Padding in pixels around and between tiles (default 4). */
  readonly pad?: number;
  /** Value range mapped to [0, 255] (default [−1, 1]); values outside are clamped. */
  readonly range?: readonly [number, number];
  /** Label font size in pixels (default 12; shrunk for a label too wide for its tile, down to 7). */
  readonly fontSize?: number;
}

/** Height in pixels of the title line of `labelledStrip` when a title is given. */
export const STRIP_TITLE_HEIGHT = 20;

/**
 * A PNG row of images `[n, C, H, W]` (C = 1 or 3) with a text label under each, on white, RGB.
 * Layout (pixels, with s = scale, p = pad, f = fontSize): width = n·(W·s) + (n + 1)·p;
 * height = [STRIP_TITLE_HEIGHT if title] + p + H·s + (f + 8). Labels are rendered by an SVG overlay
 * composited by sharp (system fonts). `labels.length` must equal n.
 */
export async function labelledStrip(images: Tensor, labels: readonly string[], opts: StripOptions = {}): Promise<Buffer> {
  if (images.dims.length !== 4) throw new Error(`labelledStrip: expected [n, C, H, W], got [${images.dims.join(', ')}]`);
  const [n, c, h, w] = images.dims as [number, number, number, number];
  if (c !== 1 && c !== 3) throw new Error(`labelledStrip: expected 1 or 3 channels, got ${c}`);
  if (n < 1 || h < 1 || w < 1) throw new Error(`labelledStrip: empty batch or image [${images.dims.join(', ')}]`);
  if (labels.length !== n) throw new Error(`labelledStrip: ${n} images but ${labels.length} labels`);
  const scale = opts.scale ?? 4;
  if (!Number.isInteger(scale) || scale < 1) throw new Error(`labelledStrip: scale must be a positive integer, got ${scale}`);
  const pad = opts.pad ?? 4;
  const fontSize = opts.fontSize ?? 12;
  const [lo, hi] = opts.range ?? [-1, 1];
  const tw = w * scale;
  const th = h * scale;
  const titleH = opts.title !== undefined ? STRIP_TITLE_HEIGHT : 0;
  const labelH = fontSize + 8;
  const Wd = n * tw + (n + 1) * pad;
  const Hd = titleH + pad + th + labelH;
  const out = Buffer.alloc(Wd * Hd * 3, 255);
  for (let k = 0; k < n; k++) {
    const ox = pad + k * (tw + pad);
    const oy = titleH + pad;
    for (let y = 0; y < th; y++) {
      const sy = Math.floor(y / scale);
      for (let x = 0; x < tw; x++) {
        const sx = Math.floor(x / scale);
        for (let ch = 0; ch < 3; ch++) {
          const v = images.data[((k * c + (c === 1 ? 0 : ch)) * h + sy) * w + sx]!;
          const u = Math.round(((v - lo) / (hi - lo)) * 255);
          out[((oy + y) * Wd + ox + x) * 3 + ch] = Number.isNaN(u) ? 0 : u < 0 ? 0 : u > 255 ? 255 : u;
        }
      }
    }
  }
  const texts: string[] = [];
  if (opts.title !== undefined) {
    texts.push(`<text x="${pad}" y="${STRIP_TITLE_HEIGHT - 5}" font-size="13" font-weight="bold">${escapeHtml(opts.title)}</text>`);
  }
  labels.forEach((label, k) => {
    const cx = pad + k * (tw + pad) + tw / 2;
    // ~0.6 em per character in sans-serif: shrink the font when the label would spill into its neighbours
    const est = 0.6 * fontSize * [...label].length;
    const fs = est > tw + pad ? Math.max(7, Math.floor((fontSize * (tw + pad)) / est)) : fontSize;
    texts.push(`<text x="${cx}" y="${titleH + pad + th + 4 + fs}" font-size="${fs}" text-anchor="middle">${escapeHtml(label)}</text>`);
  });
  const overlay = `<svg xmlns="http://www.w3.org/2000/svg" width="${Wd}" height="${Hd}" viewBox="0 0 ${Wd} ${Hd}" font-family="sans-serif" fill="#111">${texts.join('')}</svg>`;
  // composite gives RGBA; drop the (opaque) alpha in a second pass so that the strip is plain RGB
  const composed = await sharp(out, { raw: { width: Wd, height: Hd, channels: 3 } })
    .composite([{ input: Buffer.from(overlay, 'utf8'), top: 0, left: 0 }])
    .raw()
    .toBuffer({ resolveWithObject: true });
  const { width, height, channels } = composed.info;
  return sharp(composed.data, { raw: { width, height, channels } }).removeAlpha().png().toBuffer();
}
