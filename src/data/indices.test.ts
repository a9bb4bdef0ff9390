import { describe, expect, it } from 'vitest';
import { tensor } from '../tensor/tensor.ts';
import { classCounts, classIndices, sampleIndices, takeRows } from './indices.ts';
import { mulberry32 } from '../random/mulberry32.ts';
import { bytesToSigned, signedToBytes } from './pixels.ts';

describe('index helpers', () => {
  it('classIndices / classCounts', () => {
    const labels = Uint8Array.of(2, 0, 2, 1, 0, 2);
    expect(classIndices(labels)).toEqual([[1, 4], [3], [0, 2, 5]]);
    expect(classIndices(labels, 4)).toEqual([[1, 4], [3], [0, 2, 5], []]);
    expect(classCounts(labels, 4)).toEqual([2, 1, 3, 0]);
    expect(() => classIndices(labels, 2)).toThrow(/element 0 is 2, outside 0\.\.1/);
    expect(() => classIndices([0, -1])).toThrow(/element 1 is -1/);
    expect(() => classIndices([0.5])).toThrow(/not a non-negative integer/);
  });

  it('sampleIndices is seeded, distinct and uniform-ish', () => {
    const a = sampleIndices(100, 10, 42);
    expect(a).toEqual(sampleIndices(100, 10, 42));
    expect(a).not.toEqual(sampleIndices(100, 10, 43));
    expect(new Set(a).size).toBe(10);
    for (const i of a) expect(i >= 0 && i < 100).toBe(true);
    expect([...sampleIndices(5, 5, 1)].sort()).toEqual([0, 1, 2, 3, 4]);
    const pool = [10, 20, 30, 40];
    const b = sampleIndices(pool, 2, 7);
    expect(b.every((x) => pool.includes(x))).toBe(true);
    expect(pool).toEqual([10, 20, 30, 40]); // not mutated
    expect(sampleIndices(3, 0, 1)).toEqual([]);
    expect(() => sampleIndices(3, 4, 1)).toThrow(/k = 4 exceeds the 3 available/);
    expect(() => sampleIndices(3, 1, 0.5)).toThrow(/seed: must be an integer/);
    // each index picked about equally often
    const hits = new Array(10).fill(0);
    for (let s = 0; s < 2000; s++) for (const i of sampleIndices(10, 3, s)) hits[i]++;
    for (const h of hits) expect(Math.abs(h - 600)).toBeLessThan(100);
  });

  it('mulberry32 gives fixed values in [0, 1)', () => {
    const r = mulberry32(1);
    const xs = [r(), r(), r()];
    const r2 = mulberry32(1);
    expect([r2(), r2(), r2()]).toEqual(xs);
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true);
  });

  it('takeRows gathers batch rows', () => {
    const t = tensor([3, 2], [0, 1, 10, 11, 20, 21]);
    const s = takeRows(t, [2, 0, 2]);
    expect(s.dims).toEqual([3, 2]);
    expect(Array.from(s.data)).toEqual([20, 21, 0, 1, 20, 21]);
    expect(() => takeRows(t, [3])).toThrow(/index 3 \(position 0\) is outside 0\.\.2/);
  });

  it('bytes ↔ [-1, 1] round-trips every byte', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const f = bytesToSigned(all);
    expect(f[0]).toBe(-1);
    expect(f[255]).toBe(1);
    expect(Array.from(signedToBytes(f))).toEqual(Array.from(all));
    expect(Array.from(signedToBytes([-3, 3, Number.NaN]))).toEqual([0, 255, 0]);
  });
});
