import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadImageFolder, readCaptionsCsv } from './folder.ts';
import { mulberry32 } from '../random/mulberry32.ts';

const tmp = mkdtempSync(join(tmpdir(), 'memscope-folder-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function randomBytes(n: number, seed: number): Uint8Array {
  const r = mulberry32(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

/** HWC bytes → CHW floats, the layout loadImageFolder must produce. */
function chw(px: Uint8Array, h: number, w: number, c: number): number[] {
  const out: number[] = [];
  for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) out.push(px[p * c + ch]! / 127.5 - 1);
  return out.map((v) => Math.fround(v));
}

async function writePng(path: string, px: Uint8Array, w: number, h: number, c: 1 | 3 | 4): Promise<void> {
  let s = sharp(Buffer.from(px), { raw: { width: w, height: h, channels: c } });
  if (c === 1) s = s.toColourspace('b-w');
  await s.png().toFile(path);
}

const rgb: Record<string, Uint8Array> = {};
let rgbDir: string;

beforeAll(async () => {
  rgbDir = join(tmp, 'rgb');
  mkdirSync(rgbDir);
  // written out of order, with one upper-case extension and a non-image that must be ignored
  for (const [name, seed] of [['b.png', 2], ['a.png', 1], ['c.PNG', 3]] as const) {
    rgb[name] = randomBytes(8 * 8 * 3, seed);
    await writePng(join(rgbDir, name), rgb[name]!, 8, 8, 3);
  }
  writeFileSync(join(rgbDir, 'notes.txt'), 'not an image');
  mkdirSync(join(rgbDir, 'sub.png')); // a folder named like an image is not an image
});

describe('loadImageFolder', () => {
  it('reads PNGs sorted by name, exactly, as [n, 3, H, W] in [-1, 1]', async () => {
    const ds = await loadImageFolder({ dir: rgbDir, size: 8, color: 'rgb' });
    expect(ds.files).toEqual(['a.png', 'b.png', 'c.PNG']);
    expect(ds.captions).toBeNull();
    expect(ds.labels).toBeNull();
    expect(ds.images.dims).toEqual([3, 3, 8, 8]);
    ds.files.forEach((f, i) => {
      expect(Array.from(ds.images.data.subarray(i * 192, (i + 1) * 192))).toEqual(chw(rgb[f]!, 8, 8, 3));
    });
    const ds2 = await loadImageFolder({ dir: rgbDir, size: [8, 8], limit: 2 });
    expect(ds2.files).toEqual(['a.png', 'b.png']);
    expect(ds2.images.dims).toEqual([2, 3, 8, 8]);
  });

  it('grayscale PNG round-trips exactly; read as RGB it is replicated', async () => {
    const dir = join(tmp, 'gray');
    mkdirSync(dir);
    const px = randomBytes(6 * 5, 9); // w = 6, h = 5
    await writePng(join(dir, 'g.png'), px, 6, 5, 1);
    const g = await loadImageFolder({ dir, size: [5, 6], color: 'gray' });
    expect(g.images.dims).toEqual([1, 1, 5, 6]);
    expect(Array.from(g.images.data)).toEqual(chw(px, 5, 6, 1));
    const c = await loadImageFolder({ dir, size: [5, 6], color: 'rgb' });
    expect(c.images.dims).toEqual([1, 3, 5, 6]);
    const plane = chw(px, 5, 6, 1);
    expect(Array.from(c.images.data)).toEqual([...plane, ...plane, ...plane]);
  });

  it('centre-crops to the target aspect ratio (then resizes)', async () => {
    const dir = join(tmp, 'crop');
    mkdirSync(dir);
    const w = 30;
    const h = 10;
    const px = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px[y * w + x] = x < 10 ? 0 : x < 20 ? 10 * y + (x - 10) : 255;
    await writePng(join(dir, 'wide.png'), px, w, h, 1);
    // square 10×10 from 30×10: the middle 10 columns, no resampling
    const sq = await loadImageFolder({ dir, size: 10, color: 'gray' });
    const want: number[] = [];
    for (let y = 0; y < h; y++) for (let x = 10; x < 20; x++) want.push(px[y * w + x]!);
    expect(Array.from(sq.images.data, (v) => Math.round((v + 1) * 127.5))).toEqual(want);
    // [4, 30] from 30×10: the middle 4 rows (3..6)
    const band = await loadImageFolder({ dir, size: [4, 30], color: 'gray' });
    expect(Array.from(band.images.data, (v) => Math.round((v + 1) * 127.5))).toEqual(Array.from(px.subarray(3 * w, 7 * w)));
    // downscale: 60×20 uniform grey → 5×5 stays that grey
    await sharp({ create: { width: 60, height: 20, channels: 3, background: { r: 90, g: 90, b: 90 } } }).png().toFile(join(dir, 'z.png'));
    const small = await loadImageFolder({ dir, size: 5, color: 'rgb', captions: csv('crop.csv', 'file,caption\nz.png,grey\n') });
    expect(small.images.dims).toEqual([1, 3, 5, 5]);
    for (const v of small.images.data) expect(Math.abs(Math.round((v + 1) * 127.5) - 90)).toBeLessThanOrEqual(1);
  });

  it('reads JPEG (lossy: close to the original) and flattens alpha onto black', async () => {
    const dir = join(tmp, 'jpeg');
    mkdirSync(dir);
    const px = new Uint8Array(16 * 16 * 3);
    for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) for (let c = 0; c < 3; c++) px[(y * 16 + x) * 3 + c] = 8 * x + 4 * y + 20 * c;
    await sharp(Buffer.from(px), { raw: { width: 16, height: 16, channels: 3 } }).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toFile(join(dir, 'p.jpg'));
    const rgba = new Uint8Array(4 * 4 * 4).fill(200);
    for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255; // opaque
    rgba[3] = 0; // pixel 0 fully transparent
    await writePng(join(dir, 'q.png'), rgba, 4, 4, 4);
    const ds = await loadImageFolder({ dir, size: 16, color: 'rgb', captions: csv('j.csv', 'file,caption\np.jpg,gradient\n') });
    const want = chw(px, 16, 16, 3);
    let maxErr = 0;
    ds.images.data.forEach((v, i) => (maxErr = Math.max(maxErr, Math.abs(v - want[i]!) * 127.5)));
    expect(maxErr).toBeLessThanOrEqual(4);
    const a = await loadImageFolder({ dir, size: 4, color: 'gray', captions: csv('q.csv', 'file,caption\nq.png,alpha\n') });
    const bytes = Array.from(a.images.data, (v) => Math.round((v + 1) * 127.5));
    expect(bytes[0]).toBe(0);
    expect(bytes[1]).toBe(200);
  });

  it('uses CSV order, captions and optional labels', async () => {
    const path = csv('ok.csv', '\ufefffile,caption,label,extra\nc.PNG,"a caption, with comma",shirt,x\na.png,second,,y\n\n');
    const ds = await loadImageFolder({ dir: rgbDir, size: 8, captions: path });
    expect(ds.files).toEqual(['c.PNG', 'a.png']);
    expect(ds.captions).toEqual(['a caption, with comma', 'second']);
    expect(ds.labels).toEqual(['shirt', '']);
    expect(Array.from(ds.images.data.subarray(0, 192))).toEqual(chw(rgb['c.PNG']!, 8, 8, 3));
    const noLabel = await loadImageFolder({ dir: rgbDir, size: 8, captions: csv('nl.csv', 'caption,file\nhi,b.png\n') });
    expect(noLabel.labels).toBeNull();
    expect(noLabel.captions).toEqual(['hi']);
    expect(readCaptionsCsv(path)[1]).toEqual({ file: 'a.png', caption: 'second', label: '', line: 3 });
  });

  it('errors name the argument at fault', async () => {
    await expect(loadImageFolder({ dir: join(tmp, 'nope'), size: 8 })).rejects.toThrow(/loadImageFolder: dir ".*nope" does not exist/);
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    writeFileSync(join(empty, 'readme.txt'), 'x');
    await expect(loadImageFolder({ dir: empty, size: 8 })).rejects.toThrow(/dir ".*empty" contains no images/);
    await expect(loadImageFolder({ dir: rgbDir, size: 0 })).rejects.toThrow(/size must be a positive integer/);
    await expect(loadImageFolder({ dir: rgbDir, size: 8, color: 'cmyk' as 'rgb' })).rejects.toThrow(/color must be 'gray' or 'rgb'/);
    await expect(loadImageFolder({ dir: rgbDir, size: 8, limit: -1 })).rejects.toThrow(/limit must be a non-negative integer/);
    await expect(loadImageFolder({ dir: rgbDir, size: 8, captions: join(tmp, 'none.csv') })).rejects.toThrow(/captions CSV ".*none\.csv" does not exist/);
    await expect(loadImageFolder({ dir: rgbDir, size: 8, captions: csv('nocap.csv', 'file,text\na.png,x\n') })).rejects.toThrow(
      /captions CSV ".*nocap\.csv" is missing required column "caption" \(header: "file", "text"/,
    );
    await expect(loadImageFolder({ dir: rgbDir, size: 8, captions: csv('nofile.csv', 'name,caption\na.png,x\n') })).rejects.toThrow(
      /missing required column "file"/,
    );
    await expect(loadImageFolder({ dir: rgbDir, size: 8, captions: csv('blank.csv', '') })).rejects.toThrow(/is empty \(a header row/);
    await expect(loadImageFolder({ dir: rgbDir, size: 8, captions: csv('hdr.csv', 'file,caption\n') })).rejects.toThrow(/has a header but no rows/);
    await expect(loadImageFolder({ dir: rgbDir, size: 8, captions: csv('ghost.csv', 'file,caption\na.png,x\nghost.png,y\n') })).rejects.toThrow(
      /captions CSV ".*ghost\.csv" line 3 names file "ghost\.png", which does not exist in dir/,
    );
    await expect(loadImageFolder({ dir: rgbDir, size: 8, captions: csv('ragged.csv', 'file,caption\na.png,x,extra\n') })).rejects.toThrow(
      /captions CSV ".*ragged\.csv" is not valid CSV/,
    );
    const bad = join(tmp, 'bad');
    mkdirSync(bad);
    await writePng(join(bad, 'a.png'), randomBytes(12, 1), 2, 2, 3);
    writeFileSync(join(bad, 'broken.png'), 'this is not a png');
    await expect(loadImageFolder({ dir: bad, size: 2 })).rejects.toThrow(/cannot read image "broken\.png"/);
  });
});

function csv(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}
