/**
 * The safetensors file format (Hugging Face): float32 tensors are read and written whole
 * ({@link decodeSafetensors}); headers of any dtype are read without the data
 * ({@link readSafetensorsIndex}, for loaders that point onnxruntime into the file).
 *
 * Layout: `u64 N` (little-endian) · `N` bytes of UTF-8 JSON header · data bytes. The header maps
 * each tensor name to `{ "dtype": "F32", "shape": [...], "data_offsets": [begin, end] }`, with
 * offsets in bytes relative to the start of the data section; an optional `"__metadata__"` entry
 * is a string → string map. Tensors are stored row-major, little-endian, and together cover the
 * data section exactly (no holes, no overlaps), as the reference implementation requires. The
 * writer pads the header with trailing spaces (0x20) so that `8 + N` is a multiple of 8, orders
 * tensors by name (as the reference serializer does when all dtypes are equal), and writes the
 * metadata first.
 *
 * The reader accepts files from any conforming writer (padded or not, any tensor order) and
 * rejects malformed files with an error that names the file and the problem: truncated files,
 * headers that are not a JSON object, unknown or non-F32 dtypes, bad shapes, offsets that do not
 * match the shape or leave holes or overlaps, non-string metadata.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { writeFileAtomic } from './atomic.ts';
import { numel, type Tensor } from '../tensor/tensor.ts';

/** The contents of a safetensors file: tensors by name and the `__metadata__` string map. */
export interface SafetensorsContents {
  /** Tensors in data-offset order (the order of the file's data section). */
  readonly tensors: Map<string, Tensor>;
  /** The `__metadata__` map (empty when the file has none). */
  readonly metadata: Record<string, string>;
}

/** The reference implementation's limit on the header size (100 MB). */
export const SAFETENSORS_MAX_HEADER = 100_000_000;

const METADATA_KEY = '__metadata__';
/** dtypes the format defines; only F32 is supported here, the others get a specific error. */
const KNOWN_DTYPES = new Set(['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64']);
const LITTLE_ENDIAN = endianness() === 'LE';

function fail(source: string, msg: string): never {
  throw new Error(`safetensors ${source}: ${msg}`);
}

function isDims(x: unknown): x is number[] {
  return Array.isArray(x) && x.every((d) => Number.isSafeInteger(d) && (d as number) >= 0);
}

/**
 * Serialise float32 tensors (and optional string metadata) to safetensors bytes. Accepts a map
 * or record of name → {@link Tensor}; names must be non-empty and not `__metadata__`. The header
 * is padded with spaces to make the data section start at an 8-byte boundary.
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>,
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array {
  const entries: [string, Tensor][] = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  const metaKeys = Object.keys(metadata);
  if (metaKeys.length > 0) {
    const meta: Record<string, string> = {};
    for (const k of metaKeys) {
      const v = metadata[k];
      if (typeof v !== 'string') throw new Error(`encodeSafetensors: metadata "${k}" must be a string, got ${typeof v}`);
      meta[k] = v;
    }
    header[METADATA_KEY] = meta;
  }
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '' || name === METADATA_KEY) throw new Error(`encodeSafetensors: invalid tensor name "${name}"`);
    if (!isDims(t.dims)) throw new Error(`encodeSafetensors: "${name}" has invalid dims [${t.dims.join(', ')}]`);
    if (!(t.data instanceof Float32Array)) throw new Error(`encodeSafetensors: "${name}" data must be a Float32Array`);
    if (t.data.length !== numel(t.dims)) {
      throw new Error(`encodeSafetensors: "${name}" has dims [${t.dims.join(', ')}] (${numel(t.dims)} elements) but ${t.data.length} values`);
    }
    const bytes = t.data.length * 4;
    header[name] = { dtype: 'F32', shape: [...t.dims], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  const out = new Uint8Array(8 + padded + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let pos = 8 + padded;
  for (const [, t] of entries) {
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    } else {
      for (let i = 0; i < t.data.length; i++) view.setFloat32(pos + 4 * i, t.data[i]!, true);
    }
    pos += t.data.byteLength;
  }
  return out;
}

/** Bytes per element of each safetensors dtype. */
const DTYPE_BYTES: Readonly<Record<string, number>> = { BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8 };

/** One tensor's entry in a safetensors header, with its absolute byte range in the file. */
export interface SafetensorsEntry {
  /** Tensor name (the state-dict key). */
  readonly name: string;
  /** safetensors dtype (`F32`, `F16`, `BF16`, …). */
  readonly dtype: string;
  /** Shape. */
  readonly dims: readonly number[];
  /** Absolute byte offset of the tensor's data in the file (8 + header length + its begin offset). */
  readonly offset: number;
  /** Data bytes. */
  readonly length: number;
}

/** A safetensors file's header: its entries by name (data-offset order) and metadata; no tensor data read. */
export interface SafetensorsIndex {
  /** The file (as given). */
  readonly path: string;
  readonly entries: ReadonlyMap<string, SafetensorsEntry>;
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * Validate a safetensors header (the JSON after the 8-byte length) against a file of `fileSize`
 * bytes: known dtypes (only `allowed` when given), shapes, offsets that match the shape and
 * cover the data section without holes or overlaps. Errors name `source` and the problem.
 */
function parseHeader(headerBytes: Uint8Array, fileSize: number, source: string, allowed: ReadonlySet<string> | null): { entries: SafetensorsEntry[]; metadata: Record<string, string> } {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    fail(source, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail(source, `header must start with "{", got ${JSON.stringify(text.slice(0, 16))}`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(source, `header is not valid JSON: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail(source, 'header is not a JSON object');
  const dataStart = 8 + headerBytes.length;
  const dataLen = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const infos: { name: string; dtype: string; dims: number[]; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(source, '__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(source, `__metadata__ "${k}" must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(source, `tensor "${name}": entry is not an object`);
    const e = raw as Record<string, unknown>;
    const dtype = e['dtype'];
    if (typeof dtype !== 'string' || !KNOWN_DTYPES.has(dtype)) fail(source, `tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`);
    if (allowed !== null && !allowed.has(dtype)) fail(source, `tensor "${name}": dtype ${dtype} is not supported (memscope reads ${[...allowed].join(', ')} here)`);
    const dims = e['shape'];
    if (!isDims(dims)) fail(source, `tensor "${name}": shape must be an array of non-negative integers, got ${JSON.stringify(dims)}`);
    const off = e['data_offsets'];
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      fail(source, `tensor "${name}": data_offsets must be two non-negative integers, got ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as [number, number];
    if (end < begin) fail(source, `tensor "${name}": data_offsets [${begin}, ${end}] end before they begin`);
    const want = numel(dims) * DTYPE_BYTES[dtype]!;
    if (end - begin !== want) {
      fail(source, `tensor "${name}": shape [${dims.join(', ')}] needs ${want} bytes of ${dtype} but data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    infos.push({ name, dtype, dims, begin, end });
  }
  infos.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expect = 0;
  for (const info of infos) {
    if (info.begin !== expect) {
      fail(source, info.begin > expect
        ? `tensor "${info.name}": data_offsets leave a hole at bytes [${expect}, ${info.begin})`
        : `tensor "${info.name}": data_offsets [${info.begin}, ${info.end}] overlap the previous tensor (which ends at ${expect})`);
    }
    expect = info.end;
  }
  if (expect !== dataLen) {
    fail(source, expect > dataLen
      ? `tensors need ${expect} data bytes but the file has ${dataLen} after the header (truncated?)`
      : `the file has ${dataLen - expect} trailing bytes after the last tensor`);
  }
  return { entries: infos.map((i) => ({ name: i.name, dtype: i.dtype, dims: i.dims, offset: dataStart + i.begin, length: i.end - i.begin })), metadata };
}

function headerLength(view: DataView, fileSize: number, source: string): number {
  if (fileSize < 8) fail(source, `file is ${fileSize} bytes, shorter than the 8-byte header length`);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(SAFETENSORS_MAX_HEADER)) fail(source, `header length ${n64} exceeds the ${SAFETENSORS_MAX_HEADER}-byte limit (not a safetensors file?)`);
  const n = Number(n64);
  if (8 + n > fileSize) fail(source, `header length ${n} runs past the end of the ${fileSize}-byte file (truncated?)`);
  return n;
}

/**
 * Read only the header of the safetensors file at `path` (any dtype): each tensor's dtype, shape
 * and absolute byte range, validated as {@link decodeSafetensors} validates them. The tensor data
 * is not read — what a loader needs to point an ONNX external-data initializer into the file.
 */
export function readSafetensorsIndex(path: string): SafetensorsIndex {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const head = new Uint8Array(Math.min(8, size));
    readSync(fd, head, 0, head.length, 0);
    if (size < 8) fail(path, `file is ${size} bytes, shorter than the 8-byte header length`);
    const n = headerLength(new DataView(head.buffer), size, path);
    const hb = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const r = readSync(fd, hb, got, n - got, 8 + got);
      if (r === 0) fail(path, 'file ended inside the header');
      got += r;
    }
    const { entries, metadata } = parseHeader(hb, size, path, null);
    return { path, entries: new Map(entries.map((e) => [e.name, e])), metadata };
  } finally {
    closeSync(fd);
  }
}

/**
 * Parse safetensors bytes. Every tensor must be F32; the data is copied into fresh
 * Float32Arrays. `source` (a path, by default `"<bytes>"`) is used in error messages.
 */
export function decodeSafetensors(bytes: Uint8Array, source = '<bytes>'): SafetensorsContents {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = headerLength(view, bytes.length, source);
  const { entries, metadata } = parseHeader(bytes.subarray(8, 8 + n), bytes.length, source, F32_ONLY);
  const tensors = new Map<string, Tensor>();
  for (const info of entries) {
    const count = info.length / 4;
    const data = new Float32Array(count);
    const start = info.offset;
    if (LITTLE_ENDIAN) {
      new Uint8Array(data.buffer).set(bytes.subarray(start, start + count * 4));
    } else {
      for (let i = 0; i < count; i++) data[i] = view.getFloat32(start + 4 * i, true);
    }
    tensors.set(info.name, { dims: info.dims, data });
  }
  return { tensors, metadata };
}

const F32_ONLY: ReadonlySet<string> = new Set(['F32']);

/** Write float32 tensors to a safetensors file atomically (temporary sibling + rename). */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>,
  metadata: Readonly<Record<string, string>> = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** Read a safetensors file of F32 tensors (see {@link decodeSafetensors} for what is rejected). */
export async function readSafetensors(path: string): Promise<SafetensorsContents> {
  return decodeSafetensors(await readFile(path), path);
}
