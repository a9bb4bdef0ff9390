/**
 * The sample study on the store: results do not depend on how units are batched or on the thread
 * count, a rerun of a finished study makes no model call, and the rebuilt results equal runSampling's.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultTestbed } from '../../src/study/testbed.ts';
import { parseConditions } from '../../src/study/conditions.ts';
import { stableDiffusionConfig } from '../../src/schedules/config.ts';
import { InProcessRunner } from '../../src/engine/runner.ts';
import { MemoryStore } from '../../src/engine/memory-store.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { sampleStudy, SampleSpecSchema, type SampleSource } from '../../src/study/sample-study.ts';
import { runSampling } from '../../src/study/sampling.ts';
import { parseGuidance } from '../../src/guidance/spec.ts';
import type { Denoiser } from '../../src/denoisers/denoiser.ts';

let base: Denoiser;
let calls = 0;
const counting = (d: Denoiser): Denoiser => ({ ...d, name: d.name, space: d.space, shape: d.shape, conditions: d.conditions, predict: (x, l, c) => (calls++, d.predict(x, l, c)) });

async function source(): Promise<SampleSource> {
  const denoiser = counting(base);
  return { denoiser, conds: parseConditions('caption:0,class:1,uncond', denoiser), config: stableDiffusionConfig(), decode: null, modelInfo: {}, fingerprint: 'testbed-test' };
}
const spec = SampleSpecSchema.parse({ seeds: '0-2', steps: 8, guidance: 'og+dtp:7.5', record: ['xt'] });

async function runWith(maxBatch: number | undefined) {
  const src = await source();
  const units = await sampleStudy.plan(spec, src);
  const store = new MemoryStore();
  const out = await new InProcessRunner().run(sampleStudy, units, src, store, maxBatch === undefined ? {} : { maxBatch });
  const blobs = await Promise.all(out.units.map(async (u) => Object.fromEntries(await Promise.all(Object.keys(u.blobs).map(async (n) => [n, Buffer.from(await store.readBlob(u, n)).toString('hex')])))));
  return { keys: out.units.map((u) => u.key), results: out.units.map((u) => JSON.stringify(u.result)), blobs, units: out.units, store };
}

beforeAll(async () => {
  base = (await defaultTestbed()).denoiser;
});

describe('sample study', () => {
  it('gives identical bytes for 1, 2, 4 and all rows per model call, and for 1 and 3 threads', async () => {
    const all = await runWith(undefined);
    for (const mb of [1, 2, 4]) {
      const r = await runWith(mb);
      expect(r.keys).toEqual(all.keys);
      expect(r.results).toEqual(all.results);
      expect(r.blobs).toEqual(all.blobs);
    }
    const prev = process.env['MEMSCOPE_THREADS'];
    try {
      for (const threads of ['1', '3']) {
        process.env['MEMSCOPE_THREADS'] = threads;
        base = (await defaultTestbed()).denoiser; // sessions made with this thread count
        const r = await runWith(2);
        expect(r.results).toEqual(all.results);
        expect(r.blobs).toEqual(all.blobs);
      }
    } finally {
      if (prev === undefined) delete process.env['MEMSCOPE_THREADS'];
      else process.env['MEMSCOPE_THREADS'] = prev;
      base = (await defaultTestbed()).denoiser;
    }
  });

  it('rebuilds exactly what runSampling gives, and a rerun on the SQLite store makes no model call', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'memscope-ss-')), 'store');
    const src = await source();
    const units = await sampleStudy.plan(spec, src);
    const store = await SqliteStore.open(dir);
    calls = 0;
    const a = await new InProcessRunner().run(sampleStudy, units, src, store);
    expect(calls).toBe(8); // one call per step (cond and uncond rows together)
    const summary = await sampleStudy.reduce(a.units, store, spec);
    const direct = await runSampling({ denoiser: base, conds: src.conds, seeds: [0, 1, 2], sampler: 'ddim', steps: 8, config: stableDiffusionConfig(), guidance: parseGuidance('og+dtp:7.5'), record: ['xt'] });
    expect(Array.from(summary.result.samples.data)).toEqual(Array.from(direct.samples.data));
    expect(Array.from(summary.result.recorded.get('xt')!.data)).toEqual(Array.from(direct.recorded.get('xt')!.data));
    expect(summary.result.recorded.get('xt')!.dims).toEqual(direct.recorded.get('xt')!.dims);
    expect(summary.result.d).toEqual(direct.d);
    expect(summary.result.s).toEqual(direct.s);
    expect(summary.result.switchSteps).toEqual(direct.switchSteps);
    calls = 0;
    const b = await new InProcessRunner().run(sampleStudy, units, src, store);
    expect(calls).toBe(0);
    expect(b).toMatchObject({ computed: 0, reused: 9 });
    store.close();
  });
});
