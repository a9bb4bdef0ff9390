/**
 * Resampling weight matrices and the image-preprocessing graph shared by the CLIP
 * (`clip.ts`) and Inception (`inception.ts`) feature extractors (the weights also by the
 * descriptors of `descriptor.ts`).
 *
 * A separable resize from `inN` to `outN` samples along one axis is a matrix `[outN, inN]`; a
 * resize of `[B, C, H, W]` images is then two MatMuls (`R_h · X · R_wᵀ`), and a crop just keeps a
 * block of rows of each matrix. Two conventions are implemented:
 *
 * - PIL's resampling (`Image.resize`, which torchvision's `Resize` and Hugging Face's slow image
 *   processors call on PIL images): `ImagingResample` / `precompute_coeffs` in Pillow's
 *   `libImaging/Resample.c`. Scale `s = in/out`, filter scale `fs = max(s, 1)` (the kernel is
 *   widened when downsampling: antialiasing), output sample i centred at `c = (i + ½)·s`, taps
 *   `j ∈ [trunc(c − support·fs + ½), trunc(c + support·fs + ½))` clipped to the image, weight
 *   `K((j + ½ − c)/fs)`, renormalised to sum 1. Bilinear: triangle `K`, support 1; bicubic: Keys'
 *   cubic with `a = −0.5`, support 2.
 * - PyTorch's `F.interpolate(mode='bilinear', align_corners=False, antialias=False)` with an
 *   output size: source coordinate `src = max((i + ½)·s − ½, 0)`, `i0 = ⌊src⌋`,
 *   `i1 = min(i0 + 1, in − 1)`, weights `1 − λ`, `λ` with `λ = src − i0` (ATen
 *   `area_pixel_compute_source_index`, `UpSampleBilinear2d`). No antialiasing: downsampling
 *   skips pixels.
 *
 * Everything is computed in float (weights in float64, rounded once to float32), without the
 * 8-bit rounding PIL applies to `uint8` images.
 */
import { GraphBuilder } from '../graph/builder.ts';
import { createSession, type Session } from '../graph/session.ts';

/** PIL's resampling filters implemented here. */
export type PilFilter = 'bilinear' | 'bicubic';

/** The `a` of PIL's bicubic filter (Keys' cubic convolution; Pillow `Resample.c`, `#define a -0.5`). */
export const PIL_BICUBIC_A = -0.5;

/**
 * Keys' cubic convolution kernel with parameter `a` (default −0.5, PIL's): `(a+2)|x|³ − (a+3)|x|² + 1`
 * for `|x| < 1`, `a|x|³ − 5a|x|² + 8a|x| − 4a` for `1 ≤ |x| < 2`, else 0 (Pillow `bicubic_filter`).
 */
export function keysCubic(x: number, a = PIL_BICUBIC_A): number {
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

function triangle(x: number): number {
  const t = Math.abs(x);
  return t < 1 ? 1 - t : 0;
}

function checkSizes(what: string, inN: number, outN: number): void {
  if (!Number.isInteger(inN) || inN < 1 || !Number.isInteger(outN) || outN < 1) throw new Error(`${what}: sizes must be positive integers, got ${inN} → ${outN}`);
}

/**
 * PIL's resampling weights from `inN` to `outN` samples along one axis with `filter`
 * (`'bilinear'`: triangle, support 1; `'bicubic'`: Keys a = −0.5, support 2), `[outN, inN]`
 * row-major, rows summing to 1 (see the module comment; Pillow `precompute_coeffs`).
 */
export function pilResampleWeights(inN: number, outN: number, filter: PilFilter): Float32Array {
  checkSizes('pilResampleWeights', inN, outN);
  const [kernel, support0] = filter === 'bicubic' ? [(x: number) => keysCubic(x), 2] : [triangle, 1];
  const scale = inN / outN;
  const fs = Math.max(scale, 1);
  const support = support0 * fs;
  const w = new Float32Array(outN * inN);
  const row = new Float64Array(inN);
  for (let i = 0; i < outN; i++) {
    const c = (i + 0.5) * scale;
    const xmin = Math.max(Math.trunc(c - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(c + support + 0.5), inN);
    let tot = 0;
    for (let j = xmin; j < xmax; j++) {
      const v = kernel((j + 0.5 - c) / fs);
      row[j] = v;
      tot += v;
    }
    // `+ 0` turns the −0 of K(±1) = a·0 into +0
    for (let j = xmin; j < xmax; j++) w[i * inN + j] = tot !== 0 ? row[j]! / tot + 0 : 0;
  }
  return w;
}

/**
 * PIL `BICUBIC` resampling weights (`Image.resize(..., Image.BICUBIC)`: Keys a = −0.5, support 2
 * widened by the scale when downsampling, half-pixel centres, taps outside dropped, weights
 * renormalised), `[outN, inN]` row-major. Equals {@link pilResampleWeights}`(inN, outN, 'bicubic')`.
 */
export function pilBicubicWeights(inN: number, outN: number): Float32Array {
  return pilResampleWeights(inN, outN, 'bicubic');
}

/**
 * PIL `BILINEAR` resampling weights (`Image.resize(..., Image.BILINEAR)`, what torchvision's
 * `Resize` does to PIL images: triangle filter, support 1 widened by the scale when downsampling,
 * half-pixel centres, taps outside dropped, weights renormalised), `[outN, inN]` row-major (rows
 * sum to 1). Equals {@link pilResampleWeights}`(inN, outN, 'bilinear')`.
 */
export function pilBilinearWeights(inN: number, outN: number): Float32Array {
  checkSizes('pilBilinearWeights', inN, outN);
  return pilResampleWeights(inN, outN, 'bilinear');
}

/**
 * PyTorch `F.interpolate(mode='bilinear', align_corners=False)` weights (no antialias, the
 * default) from `inN` to `outN` samples along one axis, `[outN, inN]` row-major: two taps per row
 * (see the module comment; ATen `UpSampleBilinear2d` with an explicit output size).
 */
export function torchBilinearWeights(inN: number, outN: number): Float32Array {
  checkSizes('torchBilinearWeights', inN, outN);
  const scale = inN / outN;
  const w = new Float32Array(outN * inN);
  for (let i = 0; i < outN; i++) {
    const src = Math.max((i + 0.5) * scale - 0.5, 0);
    const i0 = Math.floor(src);
    const i1 = i0 < inN - 1 ? i0 + 1 : i0;
    const l1 = src - i0;
    w[i * inN + i0]! += 1 - l1;
    w[i * inN + i1]! += l1;
  }
  return w;
}

/**
 * Output size of a shortest-edge resize to `size` keeping the aspect ratio, `[oh, ow]`: the short
 * edge becomes `size`, the long one `⌊size·long/short⌋` (torchvision `Resize(size)` and
 * transformers `get_resize_output_image_size(default_to_square=False)`, both `int(size * long / short)`).
 */
export function shortestEdgeSize(h: number, w: number, size: number): [oh: number, ow: number] {
  if (![h, w, size].every((v) => Number.isInteger(v) && v > 0)) throw new Error(`shortestEdgeSize: sizes must be positive integers, got ${h}x${w} → ${size}`);
  return h <= w ? [size, Math.trunc((size * w) / h)] : [Math.trunc((size * h) / w), size];
}

/** How a center crop places its window when the margin is odd. */
export type CropRounding = 'hf' | 'torchvision';

function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Offset of a center crop of `crop` samples out of `n`: `'hf'` = `(n − crop) // 2` (transformers
 * `image_transforms.center_crop`); `'torchvision'` = `int(round((n − crop) / 2))` (torchvision
 * `F.center_crop`, Python's round half to even — used by OpenAI CLIP's `CenterCrop`). They differ
 * by one pixel when `n − crop ≡ 3 (mod 4)`. Throws when `crop > n`.
 */
export function centerCropOffset(n: number, crop: number, rounding: CropRounding): number {
  if (crop > n) throw new Error(`centerCropOffset: crop ${crop} is larger than the size ${n}`);
  return rounding === 'hf' ? Math.floor((n - crop) / 2) : roundHalfEven((n - crop) / 2);
}

/** Rows `[start, start + count)` of a row-major `[rows, cols]` matrix. */
export function sliceRows(m: Float32Array, cols: number, start: number, count: number): Float32Array {
  return m.slice(start * cols, (start + count) * cols);
}

/** How {@link preprocessSession} maps `[B, c, h, w]` images in [−1, 1] to model input. */
export interface ImagePreprocessSpec {
  /** Input channels (1: grey, repeated to RGB; 3: RGB). */
  readonly c: 1 | 3;
  /** Input height. */
  readonly h: number;
  /** Input width. */
  readonly w: number;
  /** Height weights `[oh, h]` (resize, then crop = a block of rows). */
  readonly rows: Float32Array;
  /** Output height (rows of `rows`). */
  readonly oh: number;
  /** Width weights `[ow, w]`. */
  readonly cols: Float32Array;
  /** Output width (rows of `cols`). */
  readonly ow: number;
  /** Clamp to [0, 1] after each resize pass (width pass first), as PIL does for 8-bit images. */
  readonly clampPasses: boolean;
  /** Per-channel mean of `(y − mean)/std`, applied to [0, 1] values after resizing (3 values). */
  readonly mean: readonly number[];
  /** Per-channel standard deviation of `(y − mean)/std` (3 values). */
  readonly std: readonly number[];
}

/**
 * A session mapping `x` `[B, c, h, w]` (values in [−1, 1], clipped to it) to `y` `[B, 3, oh, ow]`:
 * `(x + 1)/2`, grey repeated to 3 channels, width pass `· colsᵀ`, height pass `rows ·` (each
 * followed by a clamp to [0, 1] when `clampPasses`), then `(y − mean)/std` per channel.
 */
export async function preprocessSession(p: ImagePreprocessSpec): Promise<Session> {
  const b = new GraphBuilder({ name: 'image_preprocess' });
  b.input('x', 'float32', ['B', p.c, p.h, p.w]);
  const one = b.constF32(1);
  const zero = p.clampPasses ? b.constF32(0) : '';
  let y = b.op('Clip', ['x', b.constF32(-1), one]);
  y = b.op('Mul', [b.op('Add', [y, one]), b.constF32(0.5)]);
  if (p.c === 1) y = b.op('Concat', [y, y, y], { axis: 1 });
  const identity = (m: Float32Array, n: number, k: number): boolean => {
    if (n !== k) return false;
    for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) if (m[i * k + j] !== (i === j ? 1 : 0)) return false;
    return true;
  };
  if (!identity(p.cols, p.ow, p.w)) {
    const t = new Float32Array(p.w * p.ow);
    for (let i = 0; i < p.ow; i++) for (let j = 0; j < p.w; j++) t[j * p.ow + i] = p.cols[i * p.w + j]!;
    y = b.op('MatMul', [y, b.constF32(t, [p.w, p.ow])]);
    if (p.clampPasses) y = b.op('Clip', [y, zero, one]);
  }
  if (!identity(p.rows, p.oh, p.h)) {
    y = b.op('MatMul', [b.constF32(p.rows, [p.oh, p.h]), y]);
    if (p.clampPasses) y = b.op('Clip', [y, zero, one]);
  }
  y = b.op('Div', [b.op('Sub', [y, b.constF32(p.mean, [1, 3, 1, 1])]), b.constF32(p.std, [1, 3, 1, 1])]);
  b.output(y, 'float32', ['B', 3, p.oh, p.ow], 'y');
  return createSession(b.toBytes());
}
