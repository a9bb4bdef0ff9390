import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { IDX_MAGIC_IMAGES, IDX_MAGIC_LABELS, encodeIdx, gzipDeterministic, isGzip, parseIdx, readIdxFile } from './idx.ts';

const tmp = mkdtempSync(join(tmpdir(), 'memscope-idx-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('IDX', () => {
  it('round-trips uint8 images with the classic magic number, plain and gzipped', () => {
    const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => (i * 37) & 255);
    const raw = encodeIdx({ type: 'uint8', dims: [2, 3, 4], data });
    expect(new DataView(raw.buffer).getUint32(0, false)).toBe(IDX_MAGIC_IMAGES);
    expect(raw.length).toBe(16 + 24);
    for (const bytes of [raw, gzipSync(raw)]) {
      const a = parseIdx(bytes, { type: 'uint8', dims: [null, 3, 4] });
      expect(a.type).toBe('uint8');
      expect(a.dims).toEqual([2, 3, 4]);
      expect(Array.from(a.data)).toEqual(Array.from(data));
    }
    const labels = encodeIdx({ type: 'uint8', dims: [5], data: Uint8Array.of(0, 1, 2, 3, 9) });
    expect(new DataView(labels.buffer).getUint32(0, false)).toBe(IDX_MAGIC_LABELS);
  });

  it('round-trips multi-byte big-endian types', () => {
    const cases = [
      { type: 'int8', data: Int8Array.of(-128, -1, 0, 127) },
      { type: 'int16', data: Int16Array.of(-32768, -2, 513, 32767) },
      { type: 'int32', data: Int32Array.of(-2147483648, -3, 66051, 2147483647) },
      { type: 'float32', data: Float32Array.of(-1.5, 0, 3.25, 1e-20) },
      { type: 'float64', data: Float64Array.of(-1e300, 0.1, Math.PI, 42) },
    ] as const;
    for (const c of cases) {
      const enc = encodeIdx({ type: c.type, dims: [2, 2], data: c.data });
      const dec = parseIdx(enc);
      expect(dec.type).toBe(c.type);
      expect(dec.dims).toEqual([2, 2]);
      expect(Array.from(dec.data)).toEqual(Array.from(c.data));
    }
    // big-endian on disk
    const enc = encodeIdx({ type: 'int16', dims: [1], data: Int16Array.of(0x0102) });
    expect(Array.from(enc.subarray(8))).toEqual([1, 2]);
  });

  it('rejects bad magic numbers, sizes, gzip and expectations with clear errors', () => {
    const good = encodeIdx({ type: 'uint8', dims: [2, 2], data: Uint8Array.of(1, 2, 3, 4) });
    const badMagic = good.slice();
    badMagic[0] = 0x12;
    expect(() => parseIdx(badMagic, { name: 'x.idx' })).toThrow(/x\.idx: bad IDX magic number 0x12000802/);
    const badType = good.slice();
    badType[2] = 0x07;
    expect(() => parseIdx(badType)).toThrow(/bad IDX magic number/);
    expect(() => parseIdx(good.subarray(0, good.length - 1))).toThrow(/5 bytes in all\) but the data has 4 bytes \(truncated\?\)|truncated/);
    expect(() => parseIdx(Uint8Array.from([...good, 0]))).toThrow(/trailing bytes/);
    expect(() => parseIdx(Uint8Array.of(0, 0))).toThrow(/too short/);
    expect(() => parseIdx(good, { type: 'int32' })).toThrow(/expected IDX element type int32, found uint8/);
    expect(() => parseIdx(good, { dims: [null, 3] })).toThrow(/expected IDX shape \[\*, 3\], found \[2, 2\]/);
    expect(() => parseIdx(good, { dims: [4] })).toThrow(/expected IDX shape \[4\]/);
    const gz = gzipSync(good);
    gz[gz.length - 6] ^= 0xff; // break the CRC
    expect(() => parseIdx(gz, { name: 'y.gz' })).toThrow(/y\.gz: gzip data is corrupt/);
  });

  it('readIdxFile names the path', () => {
    const p = join(tmp, 'l.idx.gz');
    writeFileSync(p, gzipSync(encodeIdx({ type: 'uint8', dims: [3], data: Uint8Array.of(7, 8, 9) })));
    expect(Array.from(readIdxFile(p, { dims: [3] }).data)).toEqual([7, 8, 9]);
    expect(() => readIdxFile(join(tmp, 'none.idx'))).toThrow(/IDX file ".*none\.idx" does not exist/);
    writeFileSync(join(tmp, 'bad.idx'), 'hello world');
    expect(() => readIdxFile(join(tmp, 'bad.idx'))).toThrow(/IDX file ".*bad\.idx": bad IDX magic number/);
  });

  it('encodeIdx checks its input', () => {
    expect(() => encodeIdx({ type: 'uint8', dims: [3], data: Uint8Array.of(1) })).toThrow(/needs 3 elements/);
    expect(() => encodeIdx({ type: 'uint8', dims: [], data: Uint8Array.of() })).toThrow(/rank/);
  });

  it('gzipDeterministic: fixed header, identical bytes run to run, round-trips', () => {
    const data = Uint8Array.from({ length: 5000 }, (_, i) => (i * i) & 255);
    const a = gzipDeterministic(data);
    const b = gzipDeterministic(data);
    expect(a.equals(b)).toBe(true);
    expect(isGzip(a)).toBe(true);
    expect(a.readUInt32LE(4)).toBe(0); // mtime
    expect(a[8]).toBe(2); // XFL: maximum compression
    expect(a[9]).toBe(3); // OS: Unix
    expect(gunzipSync(a).equals(Buffer.from(data))).toBe(true);
    expect(isGzip(data)).toBe(false);
  });
});
