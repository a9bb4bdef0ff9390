/**
 * A dataset from a folder of images (PNG/JPEG, read with sharp), optionally described by a
 * captions CSV. Every image becomes one row of a `[n, C, H, W]` tensor in [−1, 1].
 *
 * Geometry — centre crop, then resize: each image is first rotated upright by its EXIF
 * orientation, then scaled (Lanczos-3) so that it just covers `height × width` keeping its
 * aspect ratio, and the centred `height × width` window is kept — i.e. the largest centred
 * crop of the target aspect ratio, resized to the target (sharp's `fit: 'cover'`,
 * `position: 'centre'`). An image already at the target size is not resampled, so PNG pixels
 * come back exactly.
 *
 * Colour: an alpha channel is composited onto black; `color: 'gray'` gives one channel
 * (sharp's greyscale: libvips B_W luminance), `'rgb'` three sRGB channels (a greyscale source
 * is replicated). 16-bit sources are reduced to 8 bits. A byte x maps to x / 127.5 − 1.
 *
 * Order: without a CSV, the folder's `.png`, `.jpg`, `.jpeg` files (any case, not recursing
 * into subfolders) sorted by name (code-unit order, locale-independent); with a CSV, its row
 * order (only the files it names are read).
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseCsvTable, type CsvTable } from './csv.ts';
import sharp from 'sharp';
import type { Tensor } from '../tensor/tensor.ts';

/** File extensions (lower case) that {@link loadImageFolder} lists when there is no CSV. */
export const IMAGE_EXTENSIONS: readonly string[] = Object.freeze(['.png', '.jpg', '.jpeg']);

/** Options of {@link loadImageFolder}. */
export interface ImageFolderOptions {
  /** The folder of images. */
  readonly dir: string;
  /** Output size: a side length for square images, or `[height, width]`. Positive integers. */
  readonly size: number | readonly [height: number, width: number];
  /** `'gray'` → 1 channel, `'rgb'` → 3 channels. Default `'rgb'`. */
  readonly color?: 'gray' | 'rgb';
  /**
   * Path of a captions CSV (relative paths resolve against the cwd). It needs a header row
   * with at least the columns `file` (a path relative to `dir`) and `caption`; an optional
   * `label` column is returned as strings. Other columns are ignored.
   */
  readonly captions?: string;
  /** Keep only the first `limit` images (after sorting / in CSV order). Default: all. */
  readonly limit?: number;
  /** How many images sharp decodes at once. Default 8. */
  readonly concurrency?: number;
}

/** The images of a folder, in order, with their names and (from a CSV) captions and labels. */
export interface ImageFolder {
  /** `[n, C, H, W]`, C = 1 (gray) or 3 (rgb), values x / 127.5 − 1 ∈ [−1, 1]. */
  readonly images: Tensor;
  /** File names as given (relative to `dir`), row `i` of `images` is `files[i]`. */
  readonly files: readonly string[];
  /** `captions[i]` for `files[i]`; `null` when no CSV was given. */
  readonly captions: readonly string[] | null;
  /** The CSV's `label` column; `null` when no CSV was given or it has no `label` column. */
  readonly labels: readonly string[] | null;
  /** Absolute path of the folder read. */
  readonly dir: string;
}

/** One data row of a captions CSV. */
export interface CaptionRow {
  readonly file: string;
  readonly caption: string;
  /** Present only when the CSV has a `label` column. */
  readonly label?: string;
  /** 1-based line of the CSV where the row ends (the header is line 1; a row only spans lines when a quoted cell holds a newline). */
  readonly line: number;
}

/**
 * Parse a captions CSV (header row required, columns `file` and `caption` required, `label`
 * optional; a UTF-8 BOM and blank lines are ignored). Errors name the CSV path and, for
 * row-level problems, the line.
 */
export function readCaptionsCsv(path: string): CaptionRow[] {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new Error(`loadImageFolder: captions CSV "${path}" does not exist`);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    throw new Error(`loadImageFolder: cannot read captions CSV "${path}": ${(e as Error).message}`);
  }
  let table: CsvTable;
  try {
    table = parseCsvTable(text);
  } catch (e) {
    throw new Error(`loadImageFolder: captions CSV "${path}" is not valid CSV: ${(e as Error).message}`);
  }
  const { header, records } = table;
  if (header.length === 0) throw new Error(`loadImageFolder: captions CSV "${path}" is empty (a header row with columns file,caption is required)`);
  for (const col of ['file', 'caption']) {
    if (!header.includes(col)) {
      throw new Error(
        `loadImageFolder: captions CSV "${path}" is missing required column "${col}" ` +
          `(header: ${header.map((h) => JSON.stringify(h)).join(', ')}; required: file, caption; optional: label)`,
      );
    }
  }
  const hasLabel = header.includes('label');
  return records.map(({ record, info }) => {
    const file = (record['file'] ?? '').trim();
    const line = info.lines;
    if (file === '') throw new Error(`loadImageFolder: captions CSV "${path}" line ${line}: empty "file" cell`);
    const row: CaptionRow = hasLabel
      ? { file, caption: record['caption'] ?? '', label: record['label'] ?? '', line }
      : { file, caption: record['caption'] ?? '', line };
    return row;
  });
}

function checkSize(size: ImageFolderOptions['size']): [number, number] {
  const hw: [number, number] = typeof size === 'number' ? [size, size] : [size[0], size[1]];
  if (!hw.every((d) => Number.isInteger(d) && d > 0)) {
    throw new Error(`loadImageFolder: size must be a positive integer or [height, width] of positive integers, got ${JSON.stringify(size)}`);
  }
  return hw;
}

async function decode(path: string, name: string, h: number, w: number, gray: boolean): Promise<Uint8Array> {
  let out: { data: Buffer; info: sharp.OutputInfo };
  try {
    let p = sharp(path, { failOn: 'error' })
      .autoOrient()
      .flatten({ background: '#000000' })
      .resize(w, h, { fit: 'cover', position: 'centre', kernel: 'lanczos3' });
    p = gray ? p.grayscale() : p.toColourspace('srgb');
    out = await p.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new Error(`loadImageFolder: cannot read image "${name}" (${path}): ${(e as Error).message}`);
  }
  const { data, info } = out;
  const c = gray ? 1 : 3;
  if (info.width !== w || info.height !== h) {
    throw new Error(`loadImageFolder: image "${name}" decoded to ${info.width}×${info.height}, expected ${w}×${h}`);
  }
  if (info.channels === c) return data;
  if (info.channels === 1 && c === 3) {
    const rgb = new Uint8Array(h * w * 3);
    for (let i = 0; i < h * w; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = data[i]!;
    return rgb;
  }
  throw new Error(`loadImageFolder: image "${name}" decoded to ${info.channels} channels, expected ${c}`);
}

/**
 * Read a folder of PNG/JPEG images (optionally listed and captioned by a CSV) into a
 * `[n, C, H, W]` tensor in [−1, 1]; see the module comment for geometry, colour and order.
 *
 * Errors name the argument at fault: `dir` missing or not a folder, `dir` without images,
 * `captions` CSV missing / malformed / lacking the `file` or `caption` column / naming a
 * file that is not in `dir` (with its line), `size`, `limit`, or an image sharp cannot
 * decode (with its name).
 *
 * @example
 * const ds = await loadImageFolder({ dir: 'my-images', size: 64, color: 'rgb', captions: 'my-images/captions.csv' });
 * // ds.images.dims → [n, 3, 64, 64]; ds.captions[i] describes ds.files[i]
 */
export async function loadImageFolder(options: ImageFolderOptions): Promise<ImageFolder> {
  const dir = resolve(options.dir);
  if (!existsSync(dir)) throw new Error(`loadImageFolder: dir "${options.dir}" does not exist`);
  if (!statSync(dir).isDirectory()) throw new Error(`loadImageFolder: dir "${options.dir}" is not a directory`);
  const [h, w] = checkSize(options.size);
  const color = options.color ?? 'rgb';
  if (color !== 'gray' && color !== 'rgb') throw new Error(`loadImageFolder: color must be 'gray' or 'rgb', got ${JSON.stringify(color)}`);
  const concurrency = options.concurrency ?? 8;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`loadImageFolder: concurrency must be a positive integer, got ${concurrency}`);

  let files: string[];
  let captions: string[] | null = null;
  let labels: string[] | null = null;
  if (options.captions !== undefined) {
    const rows = readCaptionsCsv(options.captions);
    for (const r of rows) {
      const p = join(dir, r.file);
      if (!existsSync(p) || !statSync(p).isFile()) {
        throw new Error(`loadImageFolder: captions CSV "${options.captions}" line ${r.line} names file "${r.file}", which does not exist in dir "${options.dir}"`);
      }
    }
    if (rows.length === 0) throw new Error(`loadImageFolder: captions CSV "${options.captions}" has a header but no rows, so dir "${options.dir}" gives no images`);
    files = rows.map((r) => r.file);
    captions = rows.map((r) => r.caption);
    if (rows.length > 0 && rows[0]!.label !== undefined) labels = rows.map((r) => r.label ?? '');
  } else {
    files = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isFile() && IMAGE_EXTENSIONS.some((x) => e.name.toLowerCase().endsWith(x)))
      .map((e) => e.name)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (files.length === 0) throw new Error(`loadImageFolder: dir "${options.dir}" contains no images (${IMAGE_EXTENSIONS.join(', ')})`);
  }

  const limit = options.limit ?? files.length;
  if (!Number.isInteger(limit) || limit < 0) throw new Error(`loadImageFolder: limit must be a non-negative integer, got ${options.limit}`);
  if (limit < files.length) {
    files = files.slice(0, limit);
    if (captions) captions = captions.slice(0, limit);
    if (labels) labels = labels.slice(0, limit);
  }

  const images = await readImages(files.map((f) => join(dir, f)), files, h, w, color === 'gray', concurrency);
  return { images, files, captions, labels, dir };
}

async function readImages(paths: readonly string[], names: readonly string[], h: number, w: number, gray: boolean, concurrency: number): Promise<Tensor> {
  const c = gray ? 1 : 3;
  const plane = h * w;
  const out = new Float32Array(paths.length * c * plane);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < paths.length) {
      const i = next++;
      const px = await decode(paths[i]!, names[i]!, h, w, gray);
      const base = i * c * plane;
      // HWC bytes → CHW floats
      for (let ch = 0; ch < c; ch++) {
        const o = base + ch * plane;
        for (let p = 0; p < plane; p++) out[o + p] = px[p * c + ch]! / 127.5 - 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, paths.length) }, worker));
  return { dims: [paths.length, c, h, w], data: out };
}

/** Options of {@link loadImageFiles}. */
export interface ImageFilesOptions {
  /** Output size: a side length for square images, or `[height, width]`. Positive integers. */
  readonly size: number | readonly [height: number, width: number];
  /** `'gray'` → 1 channel, `'rgb'` → 3 channels. Default `'rgb'`. */
  readonly color?: 'gray' | 'rgb';
  /** How many images sharp decodes at once. Default 8. */
  readonly concurrency?: number;
}

/**
 * Read image files (PNG / JPEG / WebP / anything sharp decodes) into `[n, C, H, W]` in [−1, 1],
 * row i = `paths[i]`, with the same decoding as {@link loadImageFolder}: EXIF orientation applied,
 * alpha flattened on black, resized to cover H×W and centre-cropped (Lanczos-3), 8-bit sRGB.
 * Errors name the file.
 */
export async function loadImageFiles(paths: readonly string[], options: ImageFilesOptions): Promise<Tensor> {
  const [h, w] = checkSize(options.size);
  const color = options.color ?? 'rgb';
  if (color !== 'gray' && color !== 'rgb') throw new Error(`loadImageFiles: color must be 'gray' or 'rgb', got ${JSON.stringify(color)}`);
  const concurrency = options.concurrency ?? 8;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`loadImageFiles: concurrency must be a positive integer, got ${concurrency}`);
  for (const p of paths) if (!existsSync(p) || !statSync(p).isFile()) throw new Error(`loadImageFiles: image "${p}" does not exist`);
  return readImages(paths, paths, h, w, color === 'gray', concurrency);
}
