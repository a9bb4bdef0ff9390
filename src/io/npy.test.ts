import { describe, it, expect } from 'vitest';
import { encodeNpy, decodeNpy } from './npy.ts';

/** Hand-assemble a .npy v1.0 file, independently of encodeNpy. */
function npyBytes(descr: string, shape: string, body: Buffer): Buffer {
  let h = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  h += ' '.repeat((64 - ((10 + h.length + 1) % 64)) % 64) + '\n';
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length & 255, h.length >> 8]);
  return Buffer.concat([pre, Buffer.from(h, 'latin1'), body]);
}

describe('npy', () => {
  it('round-trips float32 with a 64-byte aligned header', () => {
    const t = { dims: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-8, -7]) };
    const b = encodeNpy(t);
    expect((10 + b.readUInt16LE(8)) % 64).toBe(0);
    expect(b.subarray(10, 10 + b.readUInt16LE(8)).toString()).toContain("'shape': (2, 3)");
    const r = decodeNpy(b);
    expect(r.dims).toEqual([2, 3]);
    expect(Array.from(r.data)).toEqual(Array.from(t.data));
    expect(decodeNpy(encodeNpy({ dims: [4], data: new Float32Array(4) })).dims).toEqual([4]);
  });
  it('reads float64, int64, uint8 and float16 arrays written as numpy would', () => {
    const f8 = Buffer.alloc(16);
    f8.writeDoubleLE(0.1, 0);
    f8.writeDoubleLE(-3, 8);
    expect(Array.from(decodeNpy(npyBytes('<f8', '(2,)', f8)).data)).toEqual([Math.fround(0.1), -3]);
    const i8 = Buffer.alloc(16);
    i8.writeBigInt64LE(7n, 0);
    i8.writeBigInt64LE(-2n, 8);
    expect(Array.from(decodeNpy(npyBytes('<i8', '(1, 2)', i8)).data)).toEqual([7, -2]);
    expect(Array.from(decodeNpy(npyBytes('|u1', '(3,)', Buffer.from([0, 128, 255]))).data)).toEqual([0, 128, 255]);
    const f2 = Buffer.alloc(4);
    f2.writeUInt16LE(0x3c00, 0); // 1.0
    f2.writeUInt16LE(0xc000, 2); // -2.0
    expect(Array.from(decodeNpy(npyBytes('<f2', '(2,)', f2)).data)).toEqual([1, -2]);
    expect(decodeNpy(npyBytes('<f4', '()', Buffer.alloc(4))).dims).toEqual([]);
  });
  it('gives clear errors for bad files', () => {
    expect(() => decodeNpy(Buffer.from('hello world'), '--cond')).toThrow(/--cond: not a .npy file/);
    expect(() => decodeNpy(npyBytes('<c8', '(1,)', Buffer.alloc(8)), '--cond')).toThrow(/unsupported dtype <c8/);
    expect(() => decodeNpy(npyBytes('<f4', '(4,)', Buffer.alloc(8)), '--cond')).toThrow(/truncated/);
  });
});
