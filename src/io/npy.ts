/**
 * NumPy `.npy` files (format 1.0/2.0/3.0), for exchanging tensors with PyTorch/NumPy studies.
 * Writes little-endian float32; reads float16/32/64, int8–64 and uint8–64, bool (as float32).
 */
import { readFile } from 'node:fs/promises';
import { type Tensor, numel } from '../tensor/tensor.ts';
import { writeFileAtomic } from './atomic.ts';

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);

/** Encode a tensor as `.npy` bytes (`<f4`, C order). */
export function encodeNpy(t: Tensor): Buffer {
  const shape = t.dims.length === 1 ? `(${t.dims[0]},)` : `(${t.dims.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = MAGIC.length + 2 + 2 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  MAGIC.copy(pre, 0);
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), body]);
}

/** Decode `.npy` bytes into a float32 tensor; `name` is used in error messages. */
export function decodeNpy(buf: Buffer, name = 'npy'): Tensor {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw new Error(`${name}: not a .npy file (bad magic)`);
  const major = buf[6]!;
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.subarray(hstart, hstart + hlen).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeStr = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeStr === undefined) throw new Error(`${name}: malformed .npy header: ${header}`);
  if (fortran === 'True') throw new Error(`${name}: Fortran-ordered arrays are not supported; save with np.ascontiguousarray`);
  const dims = shapeStr.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const n = numel(dims);
  const off = hstart + hlen;
  const raw = buf.subarray(off);
  const end = descr[0];
  if (end === '>') throw new Error(`${name}: big-endian arrays are not supported (dtype ${descr})`);
  const kind = descr.slice(1);
  const sizes: Record<string, number> = { f2: 2, f4: 4, f8: 8, i1: 1, i2: 2, i4: 4, i8: 8, u1: 1, u2: 2, u4: 4, u8: 8, b1: 1 };
  const size = sizes[kind];
  if (size === undefined) throw new Error(`${name}: unsupported dtype ${descr}; expected a float, int, uint or bool array`);
  if (raw.length < n * size) throw new Error(`${name}: truncated: shape (${dims.join(', ')}) of ${descr} needs ${n * size} bytes, file has ${raw.length}`);
  const dv = new DataView(raw.buffer, raw.byteOffset, n * size);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const p = i * size;
    switch (kind) {
      case 'f2': out[i] = halfToFloat(dv.getUint16(p, true)); break;
      case 'f4': out[i] = dv.getFloat32(p, true); break;
      case 'f8': out[i] = dv.getFloat64(p, true); break;
      case 'i1': out[i] = dv.getInt8(p); break;
      case 'i2': out[i] = dv.getInt16(p, true); break;
      case 'i4': out[i] = dv.getInt32(p, true); break;
      case 'i8': out[i] = Number(dv.getBigInt64(p, true)); break;
      case 'u1': case 'b1': out[i] = dv.getUint8(p); break;
      case 'u2': out[i] = dv.getUint16(p, true); break;
      case 'u4': out[i] = dv.getUint32(p, true); break;
      case 'u8': out[i] = Number(dv.getBigUint64(p, true)); break;
    }
  }
  return { dims, data: out };
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** Read a `.npy` file as a float32 tensor; errors name `arg` (e.g. `--cond`). */
export async function readNpy(path: string, arg = path): Promise<Tensor> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new Error(`${arg}: cannot read ${path}: ${(e as Error).message}`);
  }
  return decodeNpy(buf, arg);
}

/** Write a tensor as a float32 `.npy` file atomically. */
export async function writeNpy(path: string, t: Tensor): Promise<void> {
  await writeFileAtomic(path, encodeNpy(t));
}
