/**
 * Rebuild memscope's shipped Fashion-MNIST subset (`data/fashion-mnist/`) from Debian's
 * `dataset-fashion-mnist` package, deterministically.
 *
 *   node --import tsx scripts/build-data.ts [--source DIR] [--out DIR] [--check]
 *
 * --source DIR  directory with the four official `*-idx?-ubyte.gz` files
 *               (default /usr/share/datasets/fashion-mnist, where the Debian package puts them)
 * --out DIR     where to write (default: <repo>/data/fashion-mnist, found from this script's URL)
 * --check       rebuild in memory and compare with what is in --out; write nothing; exit 1 on
 *               a content difference
 *
 * Cut: memscope `train` = official training images/labels [0, 12000); memscope `test` =
 * official test (t10k) images/labels [0, 2000). Output: gzipped IDX (level 9, mtime 0, OS
 * byte 3 — see `gzipDeterministic`), `manifest.json`, `README.md`, `LICENSE`.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { FASHION_MNIST_CLASS_NAMES, FASHION_MNIST_SIZE, type FashionMnistManifest, fashionMnistManifestSchema } from '../src/data/fashion-mnist.ts';
import { encodeIdx, gzipDeterministic, parseIdx } from '../src/data/idx.ts';
import { classCounts } from '../src/data/indices.ts';

const DEFAULT_SOURCE = '/usr/share/datasets/fashion-mnist';
const DEFAULT_OUT = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'data', 'fashion-mnist');

const SPLITS = [
  { split: 'train', images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz', count: 12000 },
  { split: 'test', images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz', count: 2000 },
] as const;

const UPSTREAM_URL = 'https://github.com/zalandoresearch/fashion-mnist';
const COPYRIGHT = 'Copyright (c) 2017 Zalando SE, https://tech.zalando.com';

const LICENSE_TEXT = `The files in this directory are a subset of Fashion-MNIST
(${UPSTREAM_URL}), by Zalando Research,
taken from the Debian package dataset-fashion-mnist. Only the selection of images
and the re-compression are memscope's; the images and labels are Zalando's.

The MIT License (Expat)

${COPYRIGHT}

Permission is hereby granted, free of charge, to any person obtaining a
copy of this software and associated documentation files (the "Software"),
to deal in the Software without restriction, including without limitation
the rights to use, copy, modify, merge, publish, distribute, sublicense,
and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included
in all copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS
OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY
CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT,
TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE
SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
`;

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function fail(msg: string): never {
  process.stderr.write(`build-data: ${msg}\n`);
  process.exit(1);
}

function readSource(dir: string, file: string): Buffer {
  const path = join(dir, file);
  if (!existsSync(path)) {
    fail(
      `missing ${path}.\n` +
        `The official Fashion-MNIST files come from Debian's dataset-fashion-mnist package. Either\n` +
        `  sudo apt-get install dataset-fashion-mnist          (files land in ${DEFAULT_SOURCE})\n` +
        `or, without installing:\n` +
        `  apt-get download dataset-fashion-mnist && dpkg -x dataset-fashion-mnist_*.deb pkg\n` +
        `  node --import tsx scripts/build-data.ts --source pkg${DEFAULT_SOURCE}`,
    );
  }
  return readFileSync(path);
}

interface Built {
  readonly files: Map<string, Buffer>;
  readonly manifest: FashionMnistManifest;
}

function build(sourceDir: string): Built {
  const files = new Map<string, Buffer>();
  const sourceFiles: Record<string, { bytes: number; sha256: string }> = {};
  const splits = {} as FashionMnistManifest['splits'];
  const S = FASHION_MNIST_SIZE;
  for (const s of SPLITS) {
    const imgSrc = readSource(sourceDir, s.images);
    const lblSrc = readSource(sourceDir, s.labels);
    sourceFiles[s.images] = { bytes: imgSrc.length, sha256: sha256(imgSrc) };
    sourceFiles[s.labels] = { bytes: lblSrc.length, sha256: sha256(lblSrc) };
    const img = parseIdx(imgSrc, { name: join(sourceDir, s.images), type: 'uint8', dims: [null, S, S] });
    const lbl = parseIdx(lblSrc, { name: join(sourceDir, s.labels), type: 'uint8', dims: [img.dims[0]!] });
    if (img.dims[0]! < s.count) fail(`${s.images} has only ${img.dims[0]} images, need ${s.count}`);

    const px = (img.data as Uint8Array).subarray(0, s.count * S * S);
    const lb = (lbl.data as Uint8Array).subarray(0, s.count);
    const rawImg = encodeIdx({ type: 'uint8', dims: [s.count, S, S], data: px });
    const rawLbl = encodeIdx({ type: 'uint8', dims: [s.count], data: lb });
    const gzImg = gzipDeterministic(rawImg);
    const gzLbl = gzipDeterministic(rawLbl);
    const imgName = `${s.split}-images-idx3-ubyte.gz`;
    const lblName = `${s.split}-labels-idx1-ubyte.gz`;
    files.set(imgName, gzImg);
    files.set(lblName, gzLbl);
    splits[s.split] = {
      count: s.count,
      from: { images: s.images, labels: s.labels, start: 0, end: s.count },
      images: { file: imgName, bytes: gzImg.length, sha256: sha256(gzImg), rawSha256: sha256(rawImg) },
      labels: { file: lblName, bytes: gzLbl.length, sha256: sha256(gzLbl), rawSha256: sha256(rawLbl) },
      classCounts: classCounts(lb, 10),
    };
  }
  const manifest: FashionMnistManifest = {
    format: 'memscope.dataset.v1',
    name: 'fashion-mnist-subset',
    description:
      'Fixed subset of Fashion-MNIST: train = first 12000 official training images, test = first 2000 official test images; 28x28 uint8, gzipped IDX.',
    source: {
      dataset: 'Fashion-MNIST',
      url: UPSTREAM_URL,
      license: 'MIT (Expat)',
      copyright: COPYRIGHT,
      debianPackage: 'dataset-fashion-mnist',
      files: sourceFiles,
    },
    imageShape: [S, S],
    classNames: [...FASHION_MNIST_CLASS_NAMES],
    splits,
  };
  fashionMnistManifestSchema.parse(manifest); // the loader must accept what we write
  files.set('manifest.json', Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
  files.set('README.md', Buffer.from(readme(manifest)));
  files.set('LICENSE', Buffer.from(LICENSE_TEXT));
  return { files, manifest };
}

function readme(m: FashionMnistManifest): string {
  const rows: string[] = [];
  for (const s of ['train', 'test'] as const) {
    const e = m.splits[s];
    for (const f of [e.images, e.labels]) rows.push(`| \`${f.file}\` | ${s} | ${f.bytes} | \`${f.sha256}\` |`);
  }
  const raw: string[] = [];
  for (const s of ['train', 'test'] as const) {
    const e = m.splits[s];
    for (const f of [e.images, e.labels]) raw.push(`| \`${f.file}\` | \`${f.rawSha256}\` |`);
  }
  const src = Object.entries(m.source.files).map(([f, v]) => `| \`${f}\` | ${v.bytes} | \`${v.sha256}\` |`);
  const classes = FASHION_MNIST_CLASS_NAMES.map(
    (c, i) => `| ${i} | ${c} | ${m.splits.train.classCounts[i]} | ${m.splits.test.classCounts[i]} |`,
  );
  return `# Fashion-MNIST subset (shipped with memscope)

A fixed, small subset of [Fashion-MNIST](${m.source.url}) (Zalando Research; MIT licence,
see [LICENSE](LICENSE)): 28×28 grayscale images of clothing in 10 classes.

## How it was cut

The source is Debian's \`${m.source.debianPackage}\` package (the official files, unchanged, in
\`/usr/share/datasets/fashion-mnist/\`).

| memscope split | images | taken from (official file, range) |
|---|---|---|
| \`train\` | ${m.splits.train.count} | \`${m.splits.train.from.images}\` / \`${m.splits.train.from.labels}\`, indices [${m.splits.train.from.start}, ${m.splits.train.from.end}) |
| \`test\` | ${m.splits.test.count} | \`${m.splits.test.from.images}\` / \`${m.splits.test.from.labels}\`, indices [${m.splits.test.from.start}, ${m.splits.test.from.end}) |

The splits are disjoint by construction (one comes from the official training set, the other
from the official test set). Pixels and labels are copied byte for byte; the files are IDX
(magic 2051 for images \`[n, 28, 28]\` uint8, 2049 for labels \`[n]\` uint8), gzipped with fixed
settings (level 9, mtime 0, OS byte 3) so a rebuild with the same Node/zlib gives the same bytes.

Rebuild (or check) with:

\`\`\`sh
node --import tsx scripts/build-data.ts [--source DIR] [--check]
\`\`\`

Load with \`loadFashionMnist({ split: 'train' | 'test', limit? })\` from \`src/data/\`, which
checks the sha256s below (from \`manifest.json\`) and maps a pixel byte x to x/127.5 − 1.

## Files

| file | split | bytes | sha256 |
|---|---|---|---|
${rows.join('\n')}

sha256 of the uncompressed IDX content (identical whatever zlib build compressed it):

| file | sha256 (gunzipped) |
|---|---|
${raw.join('\n')}

Official source files used:

| file | bytes | sha256 |
|---|---|---|
${src.join('\n')}

## Classes

| label | name | train count | test count |
|---|---|---|---|
${classes.join('\n')}
| | total | ${m.splits.train.count} | ${m.splits.test.count} |
`;
}

function main(): void {
  const { values } = parseArgs({
    options: { source: { type: 'string' }, out: { type: 'string' }, check: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write('usage: node --import tsx scripts/build-data.ts [--source DIR] [--out DIR] [--check]\n');
    return;
  }
  const sourceDir = resolve(values.source ?? DEFAULT_SOURCE);
  const outDir = resolve(values.out ?? DEFAULT_OUT);
  if (!existsSync(sourceDir)) {
    fail(
      `source directory ${sourceDir} does not exist.\n` +
        `Install the official files with  sudo apt-get install dataset-fashion-mnist\n` +
        `or  apt-get download dataset-fashion-mnist && dpkg -x dataset-fashion-mnist_*.deb pkg  and pass --source pkg${DEFAULT_SOURCE}`,
    );
  }
  const { files, manifest } = build(sourceDir);

  if (values.check) {
    let contentDiffers = false;
    let bytesDiffer = false;
    for (const s of ['train', 'test'] as const) {
      for (const f of [manifest.splits[s].images, manifest.splits[s].labels]) {
        const path = join(outDir, f.file);
        if (!existsSync(path)) {
          process.stdout.write(`MISSING  ${path}\n`);
          contentDiffers = true;
          continue;
        }
        const have = readFileSync(path);
        let rawHave = '';
        try {
          rawHave = sha256(gunzipOrSelf(have));
        } catch {
          // corrupt gzip: reported as a content difference below
        }
        if (rawHave !== f.rawSha256) {
          process.stdout.write(`CONTENT DIFFERS  ${path}\n`);
          contentDiffers = true;
        } else if (sha256(have) !== f.sha256) {
          process.stdout.write(`same content, different gzip bytes (another zlib build?)  ${path}\n`);
          bytesDiffer = true;
        } else {
          process.stdout.write(`ok  ${path}\n`);
        }
      }
    }
    for (const name of ['manifest.json', 'README.md', 'LICENSE']) {
      const path = join(outDir, name);
      const same = existsSync(path) && readFileSync(path).equals(files.get(name)!);
      if (!same) {
        process.stdout.write(`${bytesDiffer ? 'differs (follows the gzip bytes)' : 'DIFFERS'}  ${path}\n`);
        if (!bytesDiffer) contentDiffers = true;
      } else process.stdout.write(`ok  ${path}\n`);
    }
    if (contentDiffers) fail(`${outDir} does not match a fresh build from ${sourceDir}`);
    return;
  }

  mkdirSync(outDir, { recursive: true });
  for (const [name, bytes] of files) writeFileSync(join(outDir, name), bytes);
  let total = 0;
  for (const [name, bytes] of files) {
    total += bytes.length;
    process.stdout.write(`${name.padEnd(28)} ${String(bytes.length).padStart(8)}  ${sha256(bytes)}\n`);
  }
  process.stdout.write(`total ${total} bytes in ${outDir}\n`);
  for (const s of ['train', 'test'] as const) {
    const c = manifest.splits[s].classCounts;
    process.stdout.write(`${s} class counts: ${FASHION_MNIST_CLASS_NAMES.map((n, i) => `${n} ${c[i]}`).join(', ')}\n`);
  }
}

function gunzipOrSelf(b: Buffer): Buffer {
  return b[0] === 0x1f && b[1] === 0x8b ? gunzipSync(b) : b;
}

main();
