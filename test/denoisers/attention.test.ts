/**
 * The shipped duplication model loaded with its cross-attention exposed (Ren et al. 2024):
 * the exposed graph must be the plain model when the bias is zero, softmax shift invariance must
 * hold for a constant bias, and the probabilities must be distributions over the prompt tokens.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadTrainedModel, type TrainedModel } from '../../src/denoisers/trained.ts';
import { TorchGenerator } from '../../src/random/torch.ts';
import type { Tensor } from '../../src/tensor/tensor.ts';
import { GraphBuilder } from '../../src/graph/builder.ts';
import { buildDiffusersUnet } from '../../src/models/unet.ts';
import { paramFnFor } from '../../src/models/init.ts';

const maxAbs = (a: Tensor, b: Tensor): number => a.data.reduce((m, v, i) => Math.max(m, Math.abs(v - b.data[i]!)), 0);

describe('trained model with cross-attention exposed', () => {
  let m: TrainedModel;
  const B = 3;
  let xt: Tensor;
  const level = { t: 601, alphaBar: 0.2 };
  const cond = [0, 12, null];
  beforeAll(async () => {
    m = await loadTrainedModel('models/duplication', { exposeCrossAttention: true });
    xt = { dims: [B, ...m.denoiser.shape], data: new TorchGenerator(5).randn([B, ...m.denoiser.shape]) };
  }, 60_000);
  afterAll(async () => {
    await m.attention?.dispose();
    await m.denoiser.dispose?.();
  });

  it('lists one layer per cross-attention block (7 for channels 16/32/32 with attention at levels 1, 2 and mid)', () => {
    expect(m.attention).not.toBeNull();
    expect(m.attention!.layers.length).toBe(7);
    expect(m.attention!.contextLength).toBe(16);
  });

  it('equals the plain U-Net when the bias is zero, and when it is a constant (softmax shift invariance)', async () => {
    const plain = await m.denoiser.predict(xt, level, cond);
    const zero = await m.attention!.run(xt, level, cond);
    expect(maxAbs(zero.eps, plain)).toBeLessThan(1e-5);
    const shifted = await m.attention!.run(xt, level, cond, { bias: new Float32Array(B * 16).fill(3.5) });
    expect(maxAbs(shifted.eps, plain)).toBeLessThan(1e-4);
    const other = await m.attention!.run(xt, level, cond, { bias: Float32Array.from({ length: B * 16 }, (_, i) => (i % 16 === 3 ? -5 : 0)) });
    expect(maxAbs(other.eps, plain)).toBeGreaterThan(1e-3);
  });

  it('returns head-averaged probabilities that sum to one over the tokens', async () => {
    const out = await m.attention!.run(xt, level, cond);
    for (const [name, p] of out.probs) {
      expect(p.dims[0]).toBe(B);
      expect(p.dims[2]).toBe(16);
      const rows = p.data.length / 16;
      for (let r = 0; r < rows; r += 7) {
        let s = 0;
        for (let j = 0; j < 16; j++) s += p.data[r * 16 + j]!;
        expect(s, name).toBeCloseTo(1, 5);
      }
    }
  });

  it('puts all attention on the one token left unbiased when the others get a large negative bias', async () => {
    const keep = 2;
    const bias = Float32Array.from({ length: B * 16 }, (_, i) => (i % 16 === keep ? 0 : -60));
    const out = await m.attention!.run(xt, level, cond, { bias });
    for (const p of out.probs.values()) {
      for (let r = 0; r < p.data.length / 16; r += 5) expect(p.data[r * 16 + keep]!).toBeGreaterThan(1 - 1e-6);
    }
  });

  it("names the prompt's tokens, and rejects a bias of the wrong length", async () => {
    const toks = m.attention!.tokens(12);
    expect(toks[0]).toBe('<start>');
    const words = m.prompts[12]!.text.split(/\s+/);
    expect(toks.slice(1, 1 + words.length)).toEqual(words);
    expect(toks[1 + words.length]).toBe('<end>');
    expect(m.attention!.tokens(null).slice(0, 3)).toEqual(['<start>', '<end>', '<pad>']);
    await expect(m.attention!.run(xt, level, cond, { bias: new Float32Array(5) })).rejects.toThrow(/attention bias: expected 3·16 = 48/);
  });

  it('refuses to expose cross-attention of a U-Net without text conditioning', () => {
    const b = new GraphBuilder({ name: 'u' });
    const reg = paramFnFor(b, 'initializer', { seed: 0 });
    expect(() => buildDiffusersUnet(b, { conditioning: 'none', channels: [8, 8], attentionLevels: [false, true], groups: 4 }, reg.param, 'dynamic', { exposeCrossAttention: true })).toThrow(/exposeCrossAttention: needs a text-conditioned U-Net/);
  });
});
