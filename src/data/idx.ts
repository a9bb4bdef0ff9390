/**
 * Reader and writer for the IDX format of (Fashion-)MNIST
 * (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS"), plain or gzip-compressed.
 *
 * An IDX file is a 4-byte magic number — two zero bytes, a type code, the number of
 * dimensions — then one big-endian uint32 per dimension, then the elements in row-major
 * order, big-endian. The classic magic numbers are 2051 (`0x00000803`: uint8, 3 dims, images)
 * and 2049 (`0x00000801`: uint8, 1 dim, labels).
 */
import { readFileSync } from 'node:fs';
import { gunzipSync, gzipSync, constants as zc } from 'node:zlib';

/** Element types of IDX, by their type code (third byte of the magic number). */
export type IdxDataType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

/** The typed array that holds elements of each {@link IdxDataType} (native byte order). */
export type IdxTypedArray = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

/** A decoded IDX array: its element type, its shape and its elements (row-major). */
export interface IdxArray {
  readonly type: IdxDataType;
  readonly dims: readonly number[];
  readonly data: IdxTypedArray;
}

/** What {@link parseIdx} should insist on; a mismatch throws an error naming the file. */
export interface IdxExpectations {
  /** Name used in error messages (a file path, usually). Default `'IDX data'`. */
  readonly name?: string;
  /** Required element type. */
  readonly type?: IdxDataType;
  /** Required shape; `null` entries accept any size. Its length fixes the rank. */
  readonly dims?: readonly (number | null)[];
}

const TYPE_BY_CODE: ReadonlyMap<number, IdxDataType> = new Map([
  [0x08, 'uint8'],
  [0x09, 'int8'],
  [0x0b, 'int16'],
  [0x0c, 'int32'],
  [0x0d, 'float32'],
  [0x0e, 'float64'],
]);

const CODE_BY_TYPE: Readonly<Record<IdxDataType, number>> = {
  uint8: 0x08,
  int8: 0x09,
  int16: 0x0b,
  int32: 0x0c,
  float32: 0x0d,
  float64: 0x0e,
};

const BYTES: Readonly<Record<IdxDataType, number>> = { uint8: 1, int8: 1, int16: 2, int32: 4, float32: 4, float64: 8 };

/** IDX magic number of uint8 images `[n, rows, cols]` (2051). */
export const IDX_MAGIC_IMAGES = 0x00000803;
/** IDX magic number of uint8 labels `[n]` (2049). */
export const IDX_MAGIC_LABELS = 0x00000801;

/** True when `buf` starts with the gzip magic bytes `1f 8b`. */
export function isGzip(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

function hex32(n: number): string {
  return '0x' + (n >>> 0).toString(16).padStart(8, '0');
}

/**
 * Decode IDX bytes (gunzipping first when they start with the gzip magic). Checks the magic
 * number (two zero bytes, a known type code, rank ≥ 1), that the payload has exactly the
 * size the header announces, and any `expect`ations; every failure throws an `Error` that
 * names `expect.name`. Multi-byte elements are converted to native byte order.
 */
export function parseIdx(bytes: Uint8Array, expect: IdxExpectations = {}): IdxArray {
  const name = expect.name ?? 'IDX data';
  let buf = bytes;
  if (isGzip(buf)) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      throw new Error(`${name}: gzip data is corrupt or truncated (${(e as Error).message})`);
    }
  }
  if (buf.length < 4) throw new Error(`${name}: too short for an IDX file (${buf.length} bytes)`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getUint32(0, false);
  const type = TYPE_BY_CODE.get(buf[2]!);
  const rank = buf[3]!;
  if (buf[0] !== 0 || buf[1] !== 0 || type === undefined || rank === 0) {
    throw new Error(
      `${name}: bad IDX magic number ${hex32(magic)} (expected 0x0000TTNN: two zero bytes, a type code ` +
        `08/09/0b/0c/0d/0e and a rank ≥ 1; e.g. ${hex32(IDX_MAGIC_IMAGES)} for images, ${hex32(IDX_MAGIC_LABELS)} for labels)`,
    );
  }
  const headerLen = 4 + 4 * rank;
  if (buf.length < headerLen) throw new Error(`${name}: IDX header announces ${rank} dims but the file ends after ${buf.length} bytes`);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  if (expect.type !== undefined && expect.type !== type) {
    throw new Error(`${name}: expected IDX element type ${expect.type}, found ${type} (magic ${hex32(magic)})`);
  }
  if (expect.dims !== undefined) {
    const want = expect.dims;
    if (want.length !== rank || want.some((d, i) => d !== null && d !== dims[i])) {
      const fmt = want.map((d) => (d === null ? '*' : String(d))).join(', ');
      throw new Error(`${name}: expected IDX shape [${fmt}], found [${dims.join(', ')}] (magic ${hex32(magic)})`);
    }
  }
  let count = 1;
  for (const d of dims) count *= d;
  const size = BYTES[type];
  const expected = headerLen + count * size;
  if (buf.length !== expected) {
    throw new Error(
      `${name}: IDX header says shape [${dims.join(', ')}] of ${type} (${expected} bytes in all) but the data has ${buf.length} bytes` +
        (buf.length < expected ? ' (truncated?)' : ' (trailing bytes)'),
    );
  }
  const body = buf.subarray(headerLen);
  let data: IdxTypedArray;
  switch (type) {
    case 'uint8':
      data = Uint8Array.from(body);
      break;
    case 'int8':
      data = new Int8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
      break;
    default: {
      const bv = new DataView(body.buffer, body.byteOffset, body.byteLength);
      if (type === 'int16') {
        const a = new Int16Array(count);
        for (let i = 0; i < count; i++) a[i] = bv.getInt16(2 * i, false);
        data = a;
      } else if (type === 'int32') {
        const a = new Int32Array(count);
        for (let i = 0; i < count; i++) a[i] = bv.getInt32(4 * i, false);
        data = a;
      } else if (type === 'float32') {
        const a = new Float32Array(count);
        for (let i = 0; i < count; i++) a[i] = bv.getFloat32(4 * i, false);
        data = a;
      } else {
        const a = new Float64Array(count);
        for (let i = 0; i < count; i++) a[i] = bv.getFloat64(8 * i, false);
        data = a;
      }
    }
  }
  return { type, dims, data };
}

/**
 * Read and decode an IDX file (`.gz` or plain; detected from the content, not the name).
 * Errors name the path: a missing file, a bad magic number, a size mismatch, corrupt gzip.
 */
export function readIdxFile(path: string, expect: Omit<IdxExpectations, 'name'> = {}): IdxArray {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `IDX file "${path}" does not exist` : `cannot read IDX file "${path}": ${(e as Error).message}`);
  }
  return parseIdx(bytes, { ...expect, name: `IDX file "${path}"` });
}

/**
 * Encode an array as (uncompressed) IDX bytes. `data.length` must equal the product of
 * `dims`, and the typed array must match `type` (e.g. `Uint8Array` for `'uint8'`).
 */
export function encodeIdx(arr: IdxArray): Uint8Array {
  const { type, dims, data } = arr;
  if (dims.length < 1 || dims.length > 255) throw new Error(`encodeIdx: rank must be 1..255, got ${dims.length}`);
  let count = 1;
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) throw new Error(`encodeIdx: bad dim ${d} in [${dims.join(', ')}]`);
    count *= d;
  }
  if (data.length !== count) throw new Error(`encodeIdx: shape [${dims.join(', ')}] needs ${count} elements, data has ${data.length}`);
  const size = BYTES[type];
  const headerLen = 4 + 4 * dims.length;
  const out = new Uint8Array(headerLen + count * size);
  const v = new DataView(out.buffer);
  out[2] = CODE_BY_TYPE[type];
  out[3] = dims.length;
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  for (let i = 0; i < count; i++) {
    const x = data[i]!;
    const o = headerLen + i * size;
    switch (type) {
      case 'uint8':
        v.setUint8(o, x);
        break;
      case 'int8':
        v.setInt8(o, x);
        break;
      case 'int16':
        v.setInt16(o, x, false);
        break;
      case 'int32':
        v.setInt32(o, x, false);
        break;
      case 'float32':
        v.setFloat32(o, x, false);
        break;
      case 'float64':
        v.setFloat64(o, x, false);
        break;
    }
  }
  return out;
}

/**
 * Gzip with fixed settings so the output bytes depend only on the input and on the zlib
 * build: level 9, memLevel 8, default strategy, header mtime 0, no file name, OS byte 3
 * (Unix). The same Node/zlib build always gives the same bytes (and sha256).
 */
export function gzipDeterministic(bytes: Uint8Array): Buffer {
  const out = gzipSync(bytes, { level: 9, memLevel: 8, strategy: zc.Z_DEFAULT_STRATEGY, windowBits: 15 });
  // RFC 1952 header: ID1 ID2 CM FLG MTIME(4) XFL OS. Pin MTIME and OS (zlib picks OS per platform).
  out.writeUInt32LE(0, 4);
  out[9] = 3;
  return out;
}
