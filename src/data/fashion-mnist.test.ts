import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FASHION_MNIST_CLASS_NAMES,
  type FashionMnist,
  defaultFashionMnistDir,
  loadFashionMnist,
  readFashionMnistManifest,
} from './fashion-mnist.ts';
import { classCounts } from './indices.ts';
import { packageRoot } from './paths.ts';

const DEBIAN = '/usr/share/datasets/fashion-mnist';
const HAVE_DEBIAN = existsSync(join(DEBIAN, 'train-images-idx3-ubyte.gz'));
const NO_DEBIAN =
  `Debian's dataset-fashion-mnist is not installed (${DEBIAN} absent): skipping the byte comparison with the official files. ` +
  'Install it with: apt-get install -y dataset-fashion-mnist';

/** Independent IDX read: gunzip, check the magic by hand, return the payload after the header. */
function debianPayload(file: string, magic: number, headerLen: number): Buffer {
  const raw = gunzipSync(readFileSync(join(DEBIAN, file)));
  expect(raw.readUInt32BE(0)).toBe(magic);
  return raw.subarray(headerLen);
}

function bytesOf(ds: FashionMnist, i: number): number[] {
  return Array.from(ds.images.data.subarray(i * 784, (i + 1) * 784), (v) => Math.round((v + 1) * 127.5));
}

let train: FashionMnist;
let test: FashionMnist;
beforeAll(() => {
  train = loadFashionMnist({ split: 'train' });
  test = loadFashionMnist({ split: 'test' });
});

describe('loadFashionMnist', () => {
  it('returns 12000 train and 2000 test images [n,1,28,28] in [-1, 1]', () => {
    expect(train.images.dims).toEqual([12000, 1, 28, 28]);
    expect(test.images.dims).toEqual([2000, 1, 28, 28]);
    expect(train.images.data.length).toBe(12000 * 784);
    expect(train.labels).toBeInstanceOf(Uint8Array);
    expect(train.labels.length).toBe(12000);
    expect(test.labels.length).toBe(2000);
    for (const ds of [train, test]) {
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of ds.images.data) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      expect(lo).toBe(-1);
      expect(hi).toBe(1);
      // every value is exactly a byte mapped by x/127.5 − 1
      for (let i = 0; i < ds.images.data.length; i += 997) {
        const v = ds.images.data[i]!;
        expect(Math.fround(Math.round((v + 1) * 127.5) / 127.5 - 1)).toBe(v);
      }
      expect(Math.max(...ds.labels)).toBe(9);
    }
  });

  it('has the 10 official class names and the manifest class counts', () => {
    expect(train.classNames).toEqual([
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
    expect(test.classNames).toBe(FASHION_MNIST_CLASS_NAMES);
    const m = readFashionMnistManifest();
    expect(classCounts(train.labels, 10)).toEqual(m.splits.train.classCounts);
    expect(classCounts(test.labels, 10)).toEqual(m.splits.test.classCounts);
    // every class is well represented in both splits
    for (const c of m.splits.train.classCounts) expect(c).toBeGreaterThan(1000);
    for (const c of m.splits.test.classCounts) expect(c).toBeGreaterThan(150);
  });

  it('matches known first labels and pixels (no Debian files needed)', () => {
    // The first official training image is an ankle boot, the first test image too.
    expect(Array.from(train.labels.subarray(0, 10))).toEqual([9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    expect(Array.from(test.labels.subarray(0, 10))).toEqual([9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
    expect(train.source.officialImages).toBe('train-images-idx3-ubyte.gz');
    expect(train.source.officialRange).toEqual([0, 12000]);
    expect(test.source.officialImages).toBe('t10k-images-idx3-ubyte.gz');
    expect(test.source.officialRange).toEqual([0, 2000]);
    expect(train.source.license).toMatch(/MIT/);
  });

  it('equals the official Debian files byte for byte (images 0, 5000, 11999; test 0, 1000, 1999; all labels)', (ctx) => {
    if (!HAVE_DEBIAN) ctx.skip(NO_DEBIAN);
    const trainPx = debianPayload('train-images-idx3-ubyte.gz', 2051, 16);
    const trainLb = debianPayload('train-labels-idx1-ubyte.gz', 2049, 8);
    for (const i of [0, 5000, 11999]) expect(bytesOf(train, i)).toEqual(Array.from(trainPx.subarray(i * 784, (i + 1) * 784)));
    expect(Array.from(train.labels)).toEqual(Array.from(trainLb.subarray(0, 12000)));
    const testPx = debianPayload('t10k-images-idx3-ubyte.gz', 2051, 16);
    const testLb = debianPayload('t10k-labels-idx1-ubyte.gz', 2049, 8);
    for (const i of [0, 1000, 1999]) expect(bytesOf(test, i)).toEqual(Array.from(testPx.subarray(i * 784, (i + 1) * 784)));
    expect(Array.from(test.labels)).toEqual(Array.from(testLb.subarray(0, 2000)));
  });

  it('limit keeps the first images', () => {
    const a = loadFashionMnist({ split: 'train', limit: 7 });
    expect(a.images.dims).toEqual([7, 1, 28, 28]);
    expect(Array.from(a.labels)).toEqual(Array.from(train.labels.subarray(0, 7)));
    expect(Array.from(a.images.data)).toEqual(Array.from(train.images.data.subarray(0, 7 * 784)));
    expect(loadFashionMnist({ split: 'test', limit: 0 }).images.dims).toEqual([0, 1, 28, 28]);
    expect(() => loadFashionMnist({ split: 'test', limit: 2001 })).toThrow(/limit must be an integer in 0\.\.2000/);
    expect(() => loadFashionMnist({ split: 'test', limit: 1.5 })).toThrow(/limit/);
    expect(() => loadFashionMnist({ split: 'val' as 'test' })).toThrow(/split must be 'train' or 'test'/);
  });

  it('finds data/ from the module URL, not the cwd', () => {
    const cwd = process.cwd();
    const elsewhere = mkdtempSync(join(tmpdir(), 'memscope-cwd-'));
    try {
      process.chdir(elsewhere);
      expect(defaultFashionMnistDir()).toBe(join(packageRoot(), 'data', 'fashion-mnist'));
      expect(loadFashionMnist({ split: 'test', limit: 3 }).images.dims).toEqual([3, 1, 28, 28]);
    } finally {
      process.chdir(cwd);
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it('the shipped files match the manifest, compressed and uncompressed', () => {
    const dir = defaultFashionMnistDir();
    const m = readFashionMnistManifest(dir);
    for (const s of ['train', 'test'] as const) {
      for (const f of [m.splits[s].images, m.splits[s].labels]) {
        const gz = readFileSync(join(dir, f.file));
        expect(gz.length).toBe(f.bytes);
        expect(createHash('sha256').update(gz).digest('hex')).toBe(f.sha256);
        expect(createHash('sha256').update(gunzipSync(gz)).digest('hex')).toBe(f.rawSha256);
      }
    }
    expect(readFileSync(join(dir, 'LICENSE'), 'utf8')).toMatch(/Zalando SE/);
    const readme = readFileSync(join(dir, 'README.md'), 'utf8');
    expect(readme).toContain(m.splits.train.images.sha256);
    expect(readme).toContain('Ankle boot');
  });
});

describe('loadFashionMnist tamper detection', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'memscope-fmnist-'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  function copy(name: string): string {
    const dir = join(tmp, name);
    cpSync(defaultFashionMnistDir(), dir, { recursive: true });
    return dir;
  }

  it('a copy loads', () => {
    const dir = copy('ok');
    expect(loadFashionMnist({ split: 'test', dir }).labels.length).toBe(2000);
  });

  it('a flipped byte in the images is reported as altered', () => {
    const dir = copy('img');
    const f = join(dir, 'test-images-idx3-ubyte.gz');
    const b = readFileSync(f);
    b[b.length >> 1] ^= 0x01;
    writeFileSync(f, b);
    expect(() => loadFashionMnist({ split: 'test', dir })).toThrow(/test images file ".*test-images-idx3-ubyte\.gz" was altered or corrupted: sha256/);
    // the other split is untouched and still loads
    expect(loadFashionMnist({ split: 'train', dir, limit: 1 }).labels.length).toBe(1);
  });

  it('a changed label file is reported as altered', () => {
    const dir = copy('lbl');
    const f = join(dir, 'train-labels-idx1-ubyte.gz');
    const b = readFileSync(f);
    b[100] ^= 0x80;
    writeFileSync(f, b);
    expect(() => loadFashionMnist({ split: 'train', dir })).toThrow(/train labels file .* was altered or corrupted/);
  });

  it('a missing file or manifest gives a clear error', () => {
    const dir = copy('missing');
    rmSync(join(dir, 'test-labels-idx1-ubyte.gz'));
    expect(() => loadFashionMnist({ split: 'test', dir })).toThrow(/test labels file ".*" is missing/);
    rmSync(join(dir, 'manifest.json'));
    expect(() => loadFashionMnist({ split: 'test', dir })).toThrow(/has no manifest\.json/);
  });

  it('a malformed manifest is rejected', () => {
    const dir = copy('manifest');
    const path = join(dir, 'manifest.json');
    const m = JSON.parse(readFileSync(path, 'utf8'));
    m.splits.test.images.sha256 = 'nope';
    writeFileSync(path, JSON.stringify(m));
    expect(() => loadFashionMnist({ split: 'test', dir })).toThrow(/manifest .* is malformed: splits\.test\.images\.sha256/);
  });
});
