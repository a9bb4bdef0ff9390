import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors } from './safetensors.ts';

/** Assemble a safetensors file by hand: u64 LE header length, header text, raw data bytes. */
function assemble(header: string, data: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function f32Bytes(values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 4);
  const v = new DataView(b.buffer);
  values.forEach((x, i) => v.setFloat32(4 * i, x, true));
  return b;
}

describe('safetensors', () => {
  it('reads a hand-assembled file (unpadded header, tensors out of name order)', () => {
    // "b" is stored first in the data section although "a" comes first in the header
    const header = '{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    const bytes = assemble(header, f32Bytes([10, 20, 1, 2, 3, 4]));
    const st = decodeSafetensors(bytes);
    expect(st.metadata).toEqual({ format: 'pt' });
    expect([...st.tensors.keys()]).toEqual(['b', 'a']);
    expect(st.tensors.get('a')).toEqual({ dims: [2, 2], data: Float32Array.from([1, 2, 3, 4]) });
    expect(st.tensors.get('b')).toEqual({ dims: [2], data: Float32Array.from([10, 20]) });
  });

  it('writes exactly the reference layout: metadata first, names sorted, header padded with spaces to 8 bytes', () => {
    const bytes = encodeSafetensors(
      new Map([
        ['z', { dims: [1], data: Float32Array.from([-1.5]) }],
        ['a', { dims: [3], data: Float32Array.from([1, 2, 3]) }],
        ['e', { dims: [0, 4], data: new Float32Array(0) }],
      ]),
      { step: '12' },
    );
    const json = '{"__metadata__":{"step":"12"},"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"e":{"dtype":"F32","shape":[0,4],"data_offsets":[12,12]},"z":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}';
    const padded = json + ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
    expect(bytes).toEqual(assemble(padded, f32Bytes([1, 2, 3, -1.5])));
    expect((8 + padded.length) % 8).toBe(0);
  });

  it('round-trips through a file, bit for bit (NaN payloads, -0, subnormals)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memscope-st-'));
    try {
      const special = new Float32Array([NaN, -0, 1e-45, -Infinity, 3.4028234663852886e38, Math.PI]);
      const u = new Uint32Array(special.buffer);
      u[0] = 0x7fc00123; // a NaN with a payload
      const tensors = { 'layer.0/weight': { dims: [2, 3], data: special }, bias: { dims: [], data: Float32Array.from([7]) } };
      const path = join(dir, 'x.safetensors');
      await writeSafetensors(path, tensors, { note: 'ünïcode ✓' });
      const back = await readSafetensors(path);
      expect(back.metadata).toEqual({ note: 'ünïcode ✓' });
      expect(back.tensors.get('bias')).toEqual({ dims: [], data: Float32Array.from([7]) });
      const w = back.tensors.get('layer.0/weight')!;
      expect(w.dims).toEqual([2, 3]);
      expect(new Uint32Array(w.data.buffer)).toEqual(u);
      const raw = await readFile(path);
      expect(raw.readBigUint64LE(0) % 8n).toBe(0n);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects malformed files with clear errors', async () => {
    const ok = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    const d8 = f32Bytes([1, 2]);
    const bad = (header: string, data = d8) => () => decodeSafetensors(assemble(header, data), 'f.safetensors');
    expect(() => decodeSafetensors(new Uint8Array(5), 'f.safetensors')).toThrow(/safetensors f.safetensors: file is 5 bytes/);
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 1000n, true);
    expect(() => decodeSafetensors(huge)).toThrow(/runs past the end/);
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    expect(() => decodeSafetensors(huge)).toThrow(/exceeds/);
    expect(bad('[1,2]')).toThrow(/must start with "\{"/);
    expect(bad('{"a":')).toThrow(/not valid JSON/);
    expect(bad(ok.replace('F32', 'F16'))).toThrow(/dtype F16 is not supported/);
    expect(bad(ok.replace('F32', 'X9'))).toThrow(/unknown dtype "X9"/);
    expect(bad(ok.replace('[2]', '[-2]'))).toThrow(/shape must be/);
    expect(bad(ok.replace('[2]', '[3]'))).toThrow(/needs 12 bytes/);
    expect(bad(ok.replace('[0,8]', '[8,0]'))).toThrow(/end before they begin/);
    expect(bad(ok, f32Bytes([1, 2, 3]))).toThrow(/4 trailing bytes/);
    expect(bad(ok, f32Bytes([1]))).toThrow(/truncated/);
    expect(bad('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}')).toThrow(/hole at bytes \[0, 4\)/);
    expect(bad('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}')).toThrow(/overlap/);
    expect(bad('{"__metadata__":{"k":1},' + ok.slice(1))).toThrow(/__metadata__ "k" must be a string/);
    expect(bad('{"a":[1]}')).toThrow(/entry is not an object/);
    expect(() => encodeSafetensors({ a: { dims: [3], data: new Float32Array(2) } })).toThrow(/3 elements/);
    expect(() => encodeSafetensors({ __metadata__: { dims: [0], data: new Float32Array(0) } })).toThrow(/invalid tensor name/);
    const dir = await mkdtemp(join(tmpdir(), 'memscope-st-'));
    try {
      await writeFile(join(dir, 'bad.safetensors'), new Uint8Array(3));
      await expect(readSafetensors(join(dir, 'bad.safetensors'))).rejects.toThrow(/bad\.safetensors: file is 3 bytes/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
