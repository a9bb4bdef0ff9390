/**
 * The real dataset shipped with memscope: a fixed subset of Fashion-MNIST (Zalando, MIT
 * licence) under `data/fashion-mnist/` — the first 12,000 images of the official training
 * set as memscope's `train` split and the first 2,000 of the official test set as its `test`
 * split, as gzipped IDX files described by `manifest.json` (rebuilt by
 * `scripts/build-data.ts`). Loading checks each file's sha256 against the manifest.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import type { Tensor } from '../tensor/tensor.ts';
import { parseIdx } from './idx.ts';
import { dataDir } from './paths.ts';
import { bytesToSigned } from './pixels.ts';

/** The 10 official Fashion-MNIST class names; label `i` is `FASHION_MNIST_CLASS_NAMES[i]`. */
export const FASHION_MNIST_CLASS_NAMES: readonly string[] = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
]);

/** Side length of a Fashion-MNIST image (28 × 28, one channel). */
export const FASHION_MNIST_SIZE = 28;

/** memscope's splits of the shipped subset: `train` (12,000 images) and `test` (2,000). */
export type FashionMnistSplit = 'train' | 'test';

/** Options of {@link loadFashionMnist}. */
export interface FashionMnistOptions {
  /** Which split: `train` (first 12,000 official training images) or `test` (first 2,000 official test images). */
  readonly split: FashionMnistSplit;
  /** Keep only the first `limit` images (an integer in 0..split size). Default: all. */
  readonly limit?: number;
  /** Directory holding `manifest.json` and the IDX files. Default: the package's `data/fashion-mnist/`. */
  readonly dir?: string;
}

/** Where a loaded split came from (provenance, for reports). */
export interface FashionMnistSource {
  /** `'Fashion-MNIST'`. */
  readonly dataset: string;
  /** Upstream home page (Zalando Research on GitHub). */
  readonly url: string;
  /** Licence of the data (`'MIT (Expat)'`); full text in `data/fashion-mnist/LICENSE`. */
  readonly license: string;
  /** Copyright line to cite. */
  readonly copyright: string;
  /** The memscope split loaded. */
  readonly split: FashionMnistSplit;
  /** The official file the split was cut from and the half-open range `[start, end)` taken. */
  readonly officialImages: string;
  readonly officialLabels: string;
  readonly officialRange: readonly [start: number, end: number];
  /** Absolute directory read, and the files' names and verified sha256s there. */
  readonly dir: string;
  readonly imagesFile: string;
  readonly labelsFile: string;
  readonly imagesSha256: string;
  readonly labelsSha256: string;
}

/** A loaded split of the shipped Fashion-MNIST subset. */
export interface FashionMnist {
  /** `[n, 1, 28, 28]`, values `x / 127.5 − 1` ∈ [−1, 1] for bytes `x`. */
  readonly images: Tensor;
  /** `n` labels in 0..9 (index into `classNames`). */
  readonly labels: Uint8Array;
  /** The 10 official class names ({@link FASHION_MNIST_CLASS_NAMES}). */
  readonly classNames: readonly string[];
  readonly source: FashionMnistSource;
}

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase hex sha256');
const baseName = z.string().regex(/^[A-Za-z0-9._-]+$/, 'a plain file name (no directories)');
const fileEntry = z.object({ file: baseName, bytes: z.number().int().nonnegative(), sha256: sha256Hex, rawSha256: sha256Hex });
const splitEntry = z.object({
  count: z.number().int().nonnegative(),
  from: z.object({ images: z.string(), labels: z.string(), start: z.number().int().nonnegative(), end: z.number().int().nonnegative() }),
  images: fileEntry,
  labels: fileEntry,
  classCounts: z.array(z.number().int().nonnegative()).length(10),
});

/** zod schema of `data/fashion-mnist/manifest.json` (written by `scripts/build-data.ts`). */
export const fashionMnistManifestSchema = z.object({
  format: z.literal('memscope.dataset.v1'),
  name: z.string(),
  description: z.string(),
  source: z.object({
    dataset: z.string(),
    url: z.string(),
    license: z.string(),
    copyright: z.string(),
    debianPackage: z.string(),
    files: z.record(z.string(), z.object({ bytes: z.number().int().nonnegative(), sha256: sha256Hex })),
  }),
  imageShape: z.tuple([z.literal(FASHION_MNIST_SIZE), z.literal(FASHION_MNIST_SIZE)]),
  classNames: z.array(z.string()).length(10),
  splits: z.object({ train: splitEntry, test: splitEntry }),
});

/** The parsed `manifest.json` of the shipped subset. */
export type FashionMnistManifest = z.infer<typeof fashionMnistManifestSchema>;

/** The default data directory: `<package root>/data/fashion-mnist` (found from this module's URL, not the cwd). */
export function defaultFashionMnistDir(): string {
  return join(dataDir(), 'fashion-mnist');
}

/** Read and validate `manifest.json` in `dir` (default {@link defaultFashionMnistDir}). Errors name the path. */
export function readFashionMnistManifest(dir: string = defaultFashionMnistDir()): FashionMnistManifest {
  const path = join(resolve(dir), 'manifest.json');
  if (!existsSync(path)) {
    throw new Error(`loadFashionMnist: dir "${dir}" has no manifest.json (expected ${path}; rebuild with: node --import tsx scripts/build-data.ts)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`loadFashionMnist: manifest "${path}" is not valid JSON (${(e as Error).message})`);
  }
  const parsed = fashionMnistManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new Error(`loadFashionMnist: manifest "${path}" is malformed: ${issues}`);
  }
  const m = parsed.data;
  if (m.classNames.some((c, i) => c !== FASHION_MNIST_CLASS_NAMES[i])) {
    throw new Error(`loadFashionMnist: manifest "${path}" lists class names [${m.classNames.join(', ')}], not the official Fashion-MNIST ones`);
  }
  return m;
}

/** Read `file` in `dir` and check its sha256 against the manifest entry; returns the bytes. */
function readVerified(dir: string, entry: z.infer<typeof fileEntry>, what: string): Buffer {
  const path = join(dir, entry.file);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(
      code === 'ENOENT'
        ? `loadFashionMnist: ${what} file "${path}" is missing (listed in manifest.json)`
        : `loadFashionMnist: cannot read ${what} file "${path}": ${(e as Error).message}`,
    );
  }
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== entry.sha256) {
    throw new Error(
      `loadFashionMnist: ${what} file "${path}" was altered or corrupted: sha256 ${actual} (${bytes.length} bytes) ` +
        `does not match manifest.json's ${entry.sha256} (${entry.bytes} bytes). Restore data/fashion-mnist from git ` +
        `or rebuild it with: node --import tsx scripts/build-data.ts`,
    );
  }
  return bytes;
}

/**
 * Load a split of the shipped Fashion-MNIST subset (synchronous; ~0.1 s for `train`).
 *
 * Verifies both files' sha256 against `manifest.json` before decoding (a clear error if the
 * data was altered), checks the IDX magic numbers and shapes, and converts pixels to
 * `x / 127.5 − 1`. `limit` keeps the first `limit` images of the split.
 *
 * @example
 * const { images, labels, classNames } = loadFashionMnist({ split: 'train', limit: 1000 });
 * // images.dims → [1000, 1, 28, 28]; classNames[labels[0]] → 'Ankle boot'
 */
export function loadFashionMnist(options: FashionMnistOptions): FashionMnist {
  const { split } = options;
  if (split !== 'train' && split !== 'test') {
    throw new Error(`loadFashionMnist: split must be 'train' or 'test', got ${JSON.stringify(split)}`);
  }
  const dir = resolve(options.dir ?? defaultFashionMnistDir());
  const manifest = readFashionMnistManifest(dir);
  const entry = manifest.splits[split];
  const n = entry.count;
  const limit = options.limit ?? n;
  if (!Number.isInteger(limit) || limit < 0 || limit > n) {
    throw new Error(`loadFashionMnist: limit must be an integer in 0..${n} for split '${split}', got ${options.limit}`);
  }

  const imgBytes = readVerified(dir, entry.images, `${split} images`);
  const lblBytes = readVerified(dir, entry.labels, `${split} labels`);
  const S = FASHION_MNIST_SIZE;
  const img = parseIdx(imgBytes, { name: `loadFashionMnist: ${join(dir, entry.images.file)}`, type: 'uint8', dims: [n, S, S] });
  const lbl = parseIdx(lblBytes, { name: `loadFashionMnist: ${join(dir, entry.labels.file)}`, type: 'uint8', dims: [n] });

  const labels = (lbl.data as Uint8Array).slice(0, limit);
  for (let i = 0; i < labels.length; i++) {
    if (labels[i]! > 9) throw new Error(`loadFashionMnist: ${split} label ${i} is ${labels[i]}, outside 0..9`);
  }
  const pixels = (img.data as Uint8Array).subarray(0, limit * S * S);
  const images: Tensor = { dims: [limit, 1, S, S], data: bytesToSigned(pixels) };

  const source: FashionMnistSource = {
    dataset: manifest.source.dataset,
    url: manifest.source.url,
    license: manifest.source.license,
    copyright: manifest.source.copyright,
    split,
    officialImages: entry.from.images,
    officialLabels: entry.from.labels,
    officialRange: [entry.from.start, entry.from.end],
    dir,
    imagesFile: entry.images.file,
    labelsFile: entry.labels.file,
    imagesSha256: entry.images.sha256,
    labelsSha256: entry.labels.sha256,
  };
  return { images, labels, classNames: FASHION_MNIST_CLASS_NAMES, source };
}
