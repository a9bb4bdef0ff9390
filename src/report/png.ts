/** PNG image grids of samples (sharp encodes), for reports and `memscope sample`. */
import sharp from 'sharp';
import type { Tensor } from '../tensor/tensor.ts';

/** Options of `gridPng`. */
export interface GridOptions {
  /** Images per row (default: ceil(√n)). */
  readonly cols?: number;
  /** Integer upscaling factor (default 2). */
  readonly zoom?: number;
  /** Padding in pixels between tiles (default 2). */
  readonly pad?: number;
  /** Value range mapped to [0, 255] (default [−1, 1]); values outside are clamped. */
  readonly range?: readonly [number, number];
}

/**
 * Tile a batch of images `[n, C, H, W]` (C = 1 or 3, values in `range`) into one PNG.
 * Returns the PNG bytes.
 */
export async function gridPng(images: Tensor, opts: GridOptions = {}): Promise<Buffer> {
  if (images.dims.length !== 4) throw new Error(`gridPng: expected [n, C, H, W], got [${images.dims.join(', ')}]`);
  const [n, c, h, w] = images.dims as [number, number, number, number];
  if (c !== 1 && c !== 3) throw new Error(`gridPng: expected 1 or 3 channels, got ${c}`);
  const cols = Math.max(1, opts.cols ?? Math.ceil(Math.sqrt(n)));
  const rows = Math.max(1, Math.ceil(n / cols));
  const zoom = opts.zoom ?? 2;
  const pad = opts.pad ?? 2;
  const [lo, hi] = opts.range ?? [-1, 1];
  const W = cols * (w * zoom + pad) + pad;
  const H = rows * (h * zoom + pad) + pad;
  const out = Buffer.alloc(W * H * c, 255);
  for (let k = 0; k < n; k++) {
    const ox = pad + (k % cols) * (w * zoom + pad);
    const oy = pad + Math.floor(k / cols) * (h * zoom + pad);
    for (let y = 0; y < h * zoom; y++) {
      for (let x = 0; x < w * zoom; x++) {
        const sy = Math.floor(y / zoom);
        const sx = Math.floor(x / zoom);
        for (let ch = 0; ch < c; ch++) {
          const v = images.data[((k * c + ch) * h + sy) * w + sx]!;
          const u = Math.round(((v - lo) / (hi - lo)) * 255);
          out[((oy + y) * W + ox + x) * c + ch] = u < 0 ? 0 : u > 255 ? 255 : u;
        }
      }
    }
  }
  return sharp(out, { raw: { width: W, height: H, channels: c } }).png().toBuffer();
}
