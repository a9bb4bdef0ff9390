/**
 * The training graph's fused normalisations (one LayerNormalization node whose Mean / InvStdDev the
 * backward pass reuses) against the composed form the inference graphs use: the same loss and
 * parameter gradients, with the structure the fusion promises.
 */
import { describe, it, expect, afterAll } from 'vitest';
import p from 'onnx-proto';
import { buildInferenceGraphs, buildTrainingGraph, DiffusionModelConfigSchema } from './diffusion-model.ts';
import { initParams } from './init.ts';
import { gradientGraph } from '../graph/autodiff.ts';
import { createSession, type Feed, type Session } from '../graph/session.ts';

const cfg = DiffusionModelConfigSchema.parse({
  unet: { channels: [8, 16], attentionLevels: [false, true], conditioning: 'text', contextDim: 16, contextLength: 6, groups: 4, timeEmbedDim: 32 },
  textEncoder: { vocabSize: 12, width: 16, maxLength: 6, layers: 1, heads: 2 },
});
const B = 3;

function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => lo + ((s = (s * 16807) % 2147483647) / 2147483647) * (hi - lo));
}

const opTypes = (bytes: Uint8Array): string[] => (p.onnx.ModelProto.decode(bytes).graph?.node ?? []).map((n) => n.opType ?? '');

describe('training graph: fused normalisation', () => {
  const sessions: Session[] = [];
  afterAll(async () => {
    for (const s of sessions) await s.release();
  });

  it('gives the composed graph’s loss and every parameter gradient; its backward recomputes no statistics', async () => {
    const S = cfg.unet.sampleSize;
    const fused = buildTrainingGraph(cfg, B);
    const composed = buildTrainingGraph(cfg, B, { fusedNormalization: false });
    expect(fused.specs.map((s) => s.name)).toEqual(composed.specs.map((s) => s.name));
    const wrt = fused.specs.map((s) => s.name);
    const params = initParams(fused.specs, 3).values;
    const feeds: Record<string, Feed> = {
      x0: { dims: [B, 1, S, S], data: rand(B * S * S, 5) },
      noise: { dims: [B, 1, S, S], data: rand(B * S * S, 7) },
      timestep: { dims: [B], data: Float32Array.of(10, 400, 900) },
      sqrt_alpha_bar: { dims: [B, 1, 1, 1], data: Float32Array.of(0.99, 0.6, 0.1) },
      sqrt_one_minus_alpha_bar: { dims: [B, 1, 1, 1], data: Float32Array.of(0.14, 0.8, 0.995) },
      weight: { dims: [B], data: Float32Array.of(1, 1, 1) },
      ids: { type: 'int64', dims: [B, 6], data: Float32Array.of(2, 5, 6, 3, 0, 0, 2, 7, 3, 0, 0, 0, 2, 3, 0, 0, 0, 0) },
    };
    for (const s of fused.specs) feeds[s.name] = { dims: s.dims, data: params.get(s.name)! };
    const outs = ['loss', ...wrt.map((n) => `grad/${n}`)];
    const run = async (bytes: Uint8Array, inputShapes: Readonly<Record<string, readonly number[]>>) => {
      const g = gradientGraph(bytes, { loss: 'loss', wrt, inputShapes });
      const s = await createSession(g, { threads: 1 });
      sessions.push(s);
      return { ops: opTypes(g), out: await s.run(feeds, outs) };
    };
    const f = await run(fused.bytes, fused.inputShapes);
    const c = await run(composed.bytes, composed.inputShapes);
    // the structure: every GroupNorm/LayerNorm is one node, and the backward takes its statistics from it
    // (each composed normalisation has exactly one Sqrt)
    const count = (ops: string[], op: string): number => ops.filter((o) => o === op).length;
    expect(count(opTypes(fused.bytes), 'LayerNormalization')).toBe(count(opTypes(composed.bytes), 'Sqrt'));
    expect(count(opTypes(fused.bytes), 'LayerNormalization')).toBeGreaterThan(5);
    expect(opTypes(composed.bytes)).not.toContain('LayerNormalization');
    // inference graphs keep the composed form (their numbers do not move)
    const inference = buildInferenceGraphs(cfg, params);
    expect([...opTypes(inference.unet), ...opTypes(inference.textEncoder!)]).not.toContain('LayerNormalization');
    expect(f.ops.filter((o) => o === 'Sqrt' || o === 'Reciprocal')).toEqual([]);
    expect(c.ops).toContain('Sqrt');
    expect(f.ops.length).toBeLessThan(c.ops.length);
    // the numbers: loss to float rounding, each gradient within 1e-4 of its own scale
    expect(f.out['loss']!.data[0]).toBeCloseTo(c.out['loss']!.data[0]!, 5);
    for (const o of outs.slice(1)) {
      const a = f.out[o]!.data;
      const b = c.out[o]!.data;
      const scale = b.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      if (scale < 1e-7) continue; // analytically zero (the key bias under softmax): rounding noise on both sides
      let d = 0;
      for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
      expect(d / scale, o).toBeLessThan(1e-4);
    }
  });
});
