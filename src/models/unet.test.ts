/**
 * The miniature conditional U-Net: op set and static shapes (the autodiff contract), output
 * shapes for every conditioning, determinism, parameter count, input-mode ≡ initializer-mode,
 * the diffusers-signature export through `loadOnnxDenoiser` with text-encoder conditions, and
 * forward speed at batch 64 (2 threads, logged).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../graph/builder.ts';
import { type Feed, createSession, disposeAll } from '../graph/session.ts';
import { loadOnnxDenoiser } from '../denoisers/onnx.ts';
import { WordTokenizer } from '../text/word-tokenizer.ts';
import { countParams, initParams, paramFnFor } from './init.ts';
import type { BatchDim } from './layers.ts';
import { buildTextEncoder } from './text-encoder.ts';
import { type UnetConfigInput, UnetConfigSchema, buildDiffusersUnet, unetStats } from './unet.ts';
import { AUTODIFF_OPS, auditGraph, maxAbsDiff, seededArray } from './reference.test-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'memscope-unet-'));
afterAll(async () => {
  await disposeAll();
  rmSync(dir, { recursive: true, force: true });
});

/** A small config for the fast tests. */
const SMALL: UnetConfigInput = { channels: [8, 16], attentionLevels: [false, true], groups: 4, heads: 2, timeEmbedDim: 32, contextDim: 12, contextLength: 5, sampleSize: 8 };

function feedsFor(cfgIn: UnetConfigInput, B: number, seed = 1): Record<string, Feed> {
  const cfg = UnetConfigSchema.parse(cfgIn);
  const S = cfg.sampleSize;
  const f: Record<string, Feed> = {
    sample: { dims: [B, cfg.inChannels, S, S], data: seededArray(B * cfg.inChannels * S * S, seed, -2, 2) },
    timestep: { dims: [B], data: Float32Array.from({ length: B }, (_, i) => (i * 397 + 13) % 1000) },
  };
  if (cfg.conditioning === 'text') f['encoder_hidden_states'] = { dims: [B, cfg.contextLength, cfg.contextDim], data: seededArray(B * cfg.contextLength * cfg.contextDim, seed + 1) };
  if (cfg.conditioning === 'class') f['class_labels'] = { type: 'int64', dims: [B], data: Array.from({ length: B }, (_, i) => i % (cfg.numClasses + 1)) };
  return f;
}

function buildBytes(cfg: UnetConfigInput, batch: BatchDim, seed = 0): { bytes: Uint8Array; b: GraphBuilder; params: number } {
  const b = new GraphBuilder({ name: 'unet' });
  const reg = paramFnFor(b, 'initializer', { seed });
  buildDiffusersUnet(b, cfg, reg.param, batch);
  return { bytes: b.toBytes(), b, params: countParams(reg.specs) };
}

describe('UnetConfigSchema', () => {
  it('fills defaults and rejects inconsistent configs', () => {
    const c = UnetConfigSchema.parse({});
    expect(c.channels).toEqual([32, 64, 64]);
    expect(c.attentionLevels).toEqual([false, true, true]);
    expect([c.layersPerLevel, c.groups, c.contextDim, c.heads, c.timeEmbedDim, c.inChannels, c.sampleSize, c.numClasses]).toEqual([1, 8, 64, 4, 128, 1, 32, 10]);
    expect(c.conditioning).toBe('text');
    expect(() => UnetConfigSchema.parse({ attentionLevels: [true] })).toThrow(/attentionLevels/);
    expect(() => UnetConfigSchema.parse({ channels: [32, 60, 64] })).toThrow(/groups/);
    expect(() => UnetConfigSchema.parse({ sampleSize: 30 })).toThrow(/sampleSize/);
    expect(() => UnetConfigSchema.parse({ bogus: 1 })).toThrow();
  });
});

describe('graph contract with the differentiator', () => {
  for (const conditioning of ['text', 'class', 'none'] as const) {
    it(`U-Net (${conditioning}) uses only supported ops and static Reshape targets`, () => {
      for (const batch of [4, 'dynamic'] as BatchDim[]) {
        const b = new GraphBuilder();
        const reg = paramFnFor(b, 'input');
        buildDiffusersUnet(b, { conditioning }, reg.param, batch);
        const a = auditGraph(b.toModel());
        expect([...a.opTypes].filter((o) => !AUTODIFF_OPS.has(o))).toEqual([]);
        expect(a.violations).toEqual([]);
        const paramNames = new Set(reg.specs.map((s) => s.name));
        for (const r of a.reshapes) {
          // norm affine parameters [C] -> [C, 1, 1]; everything else is batch-first
          if (paramNames.has(r.input)) expect(r.target.every((d) => Number.isInteger(d) && d > 0)).toBe(true);
          else {
            expect(r.target[0]).toBe(batch === 'dynamic' ? -1 : 4);
            expect(r.target.slice(1).every((d) => Number.isInteger(d) && d > 0)).toBe(true);
          }
        }
      }
    });
  }
  it('text encoder uses only supported ops and static Reshape targets', () => {
    const b = new GraphBuilder();
    const reg = paramFnFor(b, 'input');
    buildTextEncoder(b, { vocabSize: 50, layers: 2 }, b.input('ids', 'int64', [6, 16]), reg.param, 6);
    const a = auditGraph(b.toModel());
    expect([...a.opTypes].filter((o) => !AUTODIFF_OPS.has(o))).toEqual([]);
    expect(a.violations).toEqual([]);
    for (const r of a.reshapes) expect(r.target[0]).toBe(6);
  });
});

describe('buildUnet', () => {
  for (const conditioning of ['text', 'class', 'none'] as const) {
    it(`runs with conditioning '${conditioning}': shapes, finite, deterministic, seed-dependent`, async () => {
      const cfg = { ...SMALL, conditioning, inChannels: 2 };
      const s1 = await createSession(buildBytes(cfg, 'dynamic', 3).bytes, { threads: 1 });
      const s2 = await createSession(buildBytes(cfg, 3, 3).bytes, { threads: 1 });
      const s3 = await createSession(buildBytes(cfg, 'dynamic', 4).bytes, { threads: 1 });
      const f = feedsFor(cfg, 3);
      const o1 = (await s1.run(f))['out_sample']!;
      const o2 = (await s2.run(f))['out_sample']!;
      const o3 = (await s3.run(f))['out_sample']!;
      expect(o1.dims).toEqual([3, 2, 8, 8]);
      expect(o1.data.every(Number.isFinite)).toBe(true);
      expect(maxAbsDiff(o1.data, o2.data)).toBeLessThan(1e-6); // fixed-batch graph = dynamic graph
      expect(maxAbsDiff(o1.data, o3.data)).toBeGreaterThan(1e-3);
      // the output depends on the timestep and on the condition
      const ft = { ...f, timestep: { dims: [3], data: Float32Array.from([5, 6, 7]) } };
      expect(maxAbsDiff(o1.data, (await s1.run(ft))['out_sample']!.data)).toBeGreaterThan(1e-4);
      if (conditioning === 'text') {
        const fc = { ...f, encoder_hidden_states: { dims: [3, 5, 12], data: seededArray(3 * 5 * 12, 99) } };
        expect(maxAbsDiff(o1.data, (await s1.run(fc))['out_sample']!.data)).toBeGreaterThan(1e-4);
      }
      if (conditioning === 'class') {
        const fc: Record<string, Feed> = { ...f, class_labels: { type: 'int64', dims: [3], data: [10, 10, 10] } };
        expect(maxAbsDiff(o1.data, (await s1.run(fc))['out_sample']!.data)).toBeGreaterThan(1e-4);
      }
      await Promise.all([s1.release(), s2.release(), s3.release()]);
    });
  }

  it('the same bytes for the same seed; input-mode graph fed the values = initializer-mode graph', async () => {
    expect(buildBytes(SMALL, 2, 5).bytes).toEqual(buildBytes(SMALL, 2, 5).bytes);
    const bi = new GraphBuilder();
    const regI = paramFnFor(bi, 'input');
    buildDiffusersUnet(bi, SMALL, regI.param, 2);
    const vals = initParams(regI.specs, 5);
    const si = await createSession(bi.toBytes(), { threads: 1 });
    const sv = await createSession(buildBytes(SMALL, 2, 5).bytes, { threads: 1 });
    const f = feedsFor(SMALL, 2);
    const fi: Record<string, Feed> = { ...f };
    for (const s of regI.specs) fi[s.name] = { dims: s.dims, data: vals.values.get(s.name)! };
    const a = (await si.run(fi))['out_sample']!.data;
    const b = (await sv.run(f))['out_sample']!.data;
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-6);
    expect(countParams(regI.specs)).toBe(unetStats(SMALL).params);
    await Promise.all([si.release(), sv.release()]);
  });

  it('default config: parameter count and FLOPs (logged), diffusers export loads through loadOnnxDenoiser', async () => {
    const stats = unetStats();
    console.log(`default U-Net: ${stats.params} parameters, ${(stats.forwardMacsPerImage / 1e9).toFixed(4)} GMAC = ${(stats.forwardFlopsPerImage / 1e9).toFixed(4)} GFLOP per 32×32 image`);
    expect(stats.params).toBeGreaterThan(0.5e6);
    expect(stats.params).toBeLessThan(2e6);
    expect(stats.forwardMacsPerImage).toBeGreaterThan(0.25e9);
    expect(stats.forwardMacsPerImage).toBeLessThan(0.5e9);

    // text conditions from the text encoder (null condition = the empty prompt)
    const tok = WordTokenizer.fromTexts(['a photo of a cat', 'a drawing of a dog']);
    const tb = new GraphBuilder();
    const treg = paramFnFor(tb, 'initializer', { seed: 2 });
    tb.output(buildTextEncoder(tb, { vocabSize: tok.vocabSize }, tb.input('ids', 'int64', ['B', 16]), treg.param, 'dynamic'), 'float32', ['B', 16, 64], 'emb');
    const ts = await createSession(tb.toBytes(), { threads: 2 });
    const emb = (await ts.run({ ids: tok.encodeBatch(['a photo of a cat', 'a drawing of a dog', '']) }))['emb']!;
    await ts.release();
    expect(emb.dims).toEqual([3, 16, 64]);
    const conds = { dims: [2, 16, 64], data: emb.data.slice(0, 2 * 16 * 64) };
    const uncond = { dims: [16, 64], data: emb.data.slice(2 * 16 * 64) };

    const { bytes, params } = buildBytes({}, 'dynamic', 0);
    expect(params).toBe(stats.params);
    const path = join(dir, 'unet.onnx');
    writeFileSync(path, bytes);
    const den = await loadOnnxDenoiser({ path, conditions: conds, uncond, threads: 2 });
    expect(den.shape).toEqual([1, 32, 32]);
    expect(den.condInput).toBe('encoder_hidden_states');
    expect(den.timestep).toEqual({ type: 'float32', layout: 'batch' });
    expect(den.conditions.length).toBe(2);
    const B = 3;
    const xt = { dims: [B, 1, 32, 32], data: seededArray(B * 1024, 21, -2, 2) };
    const eps = await den.predict(xt, { t: 500, alphaBar: 0.3 }, [0, 1, null]);
    expect(eps.dims).toEqual([B, 1, 32, 32]);
    // equals a direct run with the same feeds
    const s = await createSession(bytes, { threads: 2 });
    const ehs = new Float32Array(B * 16 * 64);
    ehs.set(conds.data);
    ehs.set(uncond.data, 2 * 16 * 64);
    const direct = (await s.run({ sample: xt, timestep: { dims: [B], data: Float32Array.from([500, 500, 500]) }, encoder_hidden_states: { dims: [B, 16, 64], data: ehs } }))['out_sample']!;
    expect(maxAbsDiff(eps.data, direct.data)).toBeLessThan(1e-6);
    // the conditions matter
    const rows = (i: number): Float32Array => eps.data.subarray(i * 1024, (i + 1) * 1024);
    expect(maxAbsDiff(rows(0), rows(2))).toBeGreaterThan(1e-5);
    await den.dispose();

    // forward speed, batch 64, 2 threads
    const N = 64;
    const feeds: Record<string, Feed> = {
      sample: { dims: [N, 1, 32, 32], data: seededArray(N * 1024, 3) },
      timestep: { dims: [N], data: Float32Array.from({ length: N }, (_, i) => i * 15) },
      encoder_hidden_states: { dims: [N, 16, 64], data: seededArray(N * 16 * 64, 4) },
    };
    await s.run(feeds); // warm-up
    const reps = 3;
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) await s.run(feeds);
    const sec = (performance.now() - t0) / 1000 / reps;
    console.log(`default U-Net forward, batch ${N}, 2 threads: ${(sec * 1000).toFixed(0)} ms/batch, ${((N * stats.forwardFlopsPerImage) / sec / 1e9).toFixed(1)} GFLOP/s (2 FLOP/MAC), ${(N / sec).toFixed(0)} images/s`);
    await s.release();
  });
});
