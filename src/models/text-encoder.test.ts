/**
 * The small text encoder: schema defaults, output shape, determinism, a float64 reference of the
 * whole forward pass (embedding lookup, position embedding, pre-LN layers, final LayerNorm), and
 * the parameter count.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../graph/builder.ts';
import { createSession, disposeAll } from '../graph/session.ts';
import { WordTokenizer } from '../text/word-tokenizer.ts';
import { countParams, paramFnFor } from './init.ts';
import { TextEncoderConfigSchema, buildTextEncoder, textEncoderStats } from './text-encoder.ts';
import { attentionRef, layerNormRef, linearRef, maxAbsDiff } from './reference.test-helpers.ts';

afterAll(disposeAll);

describe('TextEncoderConfigSchema', () => {
  it('has the documented defaults', () => {
    expect(TextEncoderConfigSchema.parse({ vocabSize: 20 })).toEqual({ vocabSize: 20, maxLength: 16, width: 64, layers: 1, heads: 4, mlpMult: 4 });
    expect(() => TextEncoderConfigSchema.parse({})).toThrow();
    expect(() => TextEncoderConfigSchema.parse({ vocabSize: 20, width: 30 })).toThrow(/heads/);
  });
});

describe('buildTextEncoder', () => {
  const tok = WordTokenizer.fromTexts(['a red circle', 'two blue squares on a grid', 'a cat']);
  const texts = ['a red circle', 'a blue cat on two squares', '', 'unknown words here'];
  const cfg = { vocabSize: tok.vocabSize, maxLength: 8, width: 16, layers: 2, heads: 4 };

  it('matches a float64 reference and is deterministic', async () => {
    const L = cfg.maxLength;
    const W = cfg.width;
    const build = (seed: number): { bytes: Uint8Array; values: Map<string, Float32Array>; n: number } => {
      const b = new GraphBuilder();
      const reg = paramFnFor(b, 'initializer', { seed });
      b.output(buildTextEncoder(b, cfg, b.input('ids', 'int64', ['B', L]), reg.param, 'dynamic'), 'float32', ['B', L, W], 'emb');
      return { bytes: b.toBytes(), values: reg.values, n: countParams(reg.specs) };
    };
    const m = build(9);
    expect(build(9).bytes).toEqual(m.bytes);
    expect(m.n).toBe(textEncoderStats(cfg).params);
    const s = await createSession(m.bytes, { threads: 1 });
    const batch = tok.encodeBatch(texts, L);
    const out = (await s.run({ ids: batch }))['emb']!;
    await s.release();
    expect(out.dims).toEqual([texts.length, L, W]);

    const v = (n: string): Float32Array => m.values.get(n)!;
    const B = texts.length;
    const h = new Float64Array(B * L * W);
    for (let i = 0; i < B * L; i++) {
      const id = Number(batch.data[i]);
      for (let e = 0; e < W; e++) h[i * W + e] = v('token_embedding.weight')[id * W + e]! + v('position_embedding.weight')[(i % L) * W + e]!;
    }
    let x: Float64Array = h;
    for (let l = 0; l < cfg.layers; l++) {
      const p = (n: string): Float32Array => v(`layers.${l}.${n}`);
      const a = layerNormRef(x, B * L, W, p('layer_norm1.weight'), p('layer_norm1.bias'));
      const att = attentionRef(a, a, B, L, L, W, W, W, cfg.heads, {
        wq: p('self_attn.to_q.weight'),
        bq: p('self_attn.to_q.bias'),
        wk: p('self_attn.to_k.weight'),
        bk: p('self_attn.to_k.bias'),
        wv: p('self_attn.to_v.weight'),
        bv: p('self_attn.to_v.bias'),
        wo: p('self_attn.to_out.weight'),
        bo: p('self_attn.to_out.bias'),
      });
      x = x.map((y, i) => y + att[i]!);
      const mm = layerNormRef(x, B * L, W, p('layer_norm2.weight'), p('layer_norm2.bias'));
      const f1 = linearRef(mm, B * L, W, 4 * W, p('mlp.fc1.weight'), p('mlp.fc1.bias')).map((y) => y / (1 + Math.exp(-1.702 * y)));
      const f2 = linearRef(f1, B * L, 4 * W, W, p('mlp.fc2.weight'), p('mlp.fc2.bias'));
      x = x.map((y, i) => y + f2[i]!);
    }
    const ref = layerNormRef(x, B * L, W, v('final_layer_norm.weight'), v('final_layer_norm.bias'));
    expect(maxAbsDiff(out.data, ref)).toBeLessThan(5e-5);
  });

  it('counts parameters and MACs of the defaults', () => {
    const st = textEncoderStats({ vocabSize: 100 });
    // tok 100·64 + pos 16·64 + 2 LN·128 + attn 4·(64·64+64) + mlp 64·256+256 + 256·64+64 + final LN 128
    expect(st.params).toBe(6400 + 1024 + 256 + 4 * 4160 + 16640 + 16448 + 128);
    expect(st.forwardMacsPerPrompt).toBe(16 * 4 * 64 * 64 + 2 * 16 * 16 * 64 + 2 * 16 * 64 * 256);
    expect(st.forwardFlopsPerPrompt).toBe(2 * st.forwardMacsPerPrompt);
  });
});
