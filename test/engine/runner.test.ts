import { describe, it, expect } from 'vitest';
import { z } from 'zod';
import { canonicalJson, unitKey, sha256Hex } from '../../src/engine/canonical.ts';
import { InProcessRunner, batchUnits } from '../../src/engine/runner.ts';
import { MemoryStore } from '../../src/engine/memory-store.ts';
import type { Study, Unit } from '../../src/engine/study.ts';
import { TorchGenerator } from '../../src/random/torch.ts';

/** A toy study: per seed, the sum of torch.randn(8) with that seed (checked against TorchGenerator directly). */
function toyStudy(calls: number[][]): Study<{ seeds: number[] }, { seed: number }, { sum: number }, number, null> {
  return {
    id: 'toy',
    schema: z.object({ seeds: z.array(z.number().int()).default([0, 1, 2]) }),
    plan: (spec) => spec.seeds.map((seed): Unit<{ seed: number }> => ({ key: unitKey('toy', { seed }), spec: { seed }, batch: 'all' })),
    async run(units) {
      calls.push(units.map((u) => u.spec.seed));
      return units.map((u) => {
        const x = new TorchGenerator(u.spec.seed).randn([8]);
        return { result: { sum: x.reduce((a, b) => a + b, 0) }, blobs: [{ name: 'x.bin', bytes: new Uint8Array(x.buffer.slice(0)) }] };
      });
    },
    reduce: (rs) => rs.reduce((a, r) => a + r.result.sum, 0),
  };
}

describe('canonical JSON and unit keys', () => {
  it('sorts keys at every depth and ignores undefined properties', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 0, y: -0 }], c: 'x' }, u: undefined })).toBe('{"a":{"c":"x","d":[1,{"y":0,"z":0}]},"b":1}');
    expect(unitKey('s', { a: 1, b: 2 })).toBe(unitKey('s', { b: 2, a: 1 }));
    expect(unitKey('s', { a: 1 })).not.toBe(unitKey('t', { a: 1 }));
  });
  it('refuses values JSON cannot carry', () => {
    expect(() => canonicalJson({ a: [1, NaN] })).toThrow(/\$\.a\[1\] is NaN/);
    expect(() => canonicalJson({ a: Infinity })).toThrow(/\$\.a is Infinity/);
  });
  it('hashes like sha256sum', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

describe('InProcessRunner', () => {
  it('batches by group, commits every unit, and reruns nothing that is stored', async () => {
    const calls: number[][] = [];
    const st = toyStudy(calls);
    const spec = st.schema.parse({ seeds: [3, 1, 4, 1.0 + 4, 9] });
    const units = await st.plan(spec, null);
    const store = new MemoryStore();
    const a = await new InProcessRunner().run(st, units, null, store, { maxBatch: 2 });
    expect(calls).toEqual([[3, 1], [4, 5], [9]]);
    expect(a.computed).toBe(5);
    const expected = [3, 1, 4, 5, 9].map((s) => new TorchGenerator(s).randn([8]).reduce((x, y) => x + y, 0));
    expect(a.units.map((u) => u.result.sum)).toEqual(expected);
    const b = await new InProcessRunner().run(st, units, null, store);
    expect(calls.length).toBe(3);
    expect(b).toMatchObject({ computed: 0, reused: 5 });
    const blob = await store.readBlob(b.units[2]!, 'x.bin');
    expect(Array.from(new Float32Array(blob.buffer, blob.byteOffset, 8))).toEqual(Array.from(new TorchGenerator(4).randn([8])));
  });
  it('gives the same results however units are batched', async () => {
    const st = toyStudy([]);
    const units = await st.plan(st.schema.parse({ seeds: [0, 1, 2, 3, 4, 5, 6] }), null);
    const one = await new InProcessRunner().run(st, units, null, new MemoryStore(), { maxBatch: 1 });
    const all = await new InProcessRunner().run(st, units, null, new MemoryStore());
    expect(one.units.map((u) => [u.key, u.result, u.blobs])).toEqual(all.units.map((u) => [u.key, u.result, u.blobs]));
  });
  it('refuses a plan with duplicate keys', async () => {
    const st = toyStudy([]);
    const units = await st.plan({ seeds: [1, 1] }, null);
    await expect(new InProcessRunner().run(st, units, null, new MemoryStore())).rejects.toThrow(/share the key/);
  });
  it('groups by batch value in order of first appearance', () => {
    const u = (key: string, batch?: string): Unit<null> => ({ key, spec: null, ...(batch === undefined ? {} : { batch }) });
    const g = batchUnits([u('a', 'x'), u('b', 'y'), u('c', 'x'), u('d'), u('e', 'x')], 2).map((b) => b.map((x) => x.key).join(''));
    expect(g).toEqual(['ac', 'b', 'd', 'e']);
  });
});
