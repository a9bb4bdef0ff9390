/**
 * Ren et al. 2024 on the shipped duplication model: the scaled-attention U-Net against the plain
 * one and AttentionUnet, the multiplicative logit scale checked exactly (scale 0 ⇒ uniform
 * attention), the mitigation's masking and its conditional-rows-only rule, the entropy against an
 * independent computation, and the entropy of memorized captions vs class prompts (reported).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadTrainedModel, type TrainedModel } from '../../src/denoisers/trained.ts';
import {
  attentionEntropy,
  attentionProfile,
  MASKED_LOGIT,
  renAdjustment,
  renMitigatedDenoiser,
  scaledAttentionUnet,
  type RenDenoiser,
  type ScaledAttentionUnet,
} from '../../src/mitigate/ren-attention.ts';
import { initialNoise } from '../../src/study/sampling.ts';
import { alphaBars, betas } from '../../src/schedules/betas.ts';
import { concatBatch, type Tensor } from '../../src/tensor/tensor.ts';

const maxAbs = (a: Tensor, b: Tensor): number => a.data.reduce((m, v, i) => Math.max(m, Math.abs(v - b.data[i]!)), 0);
const AB = alphaBars(betas('scaled_linear'));
const level = (t: number): { t: number; alphaBar: number } => ({ t, alphaBar: AB[t]! });

describe('Ren et al. cross-attention detection and mitigation', () => {
  let m: TrainedModel;
  let scaled: ScaledAttentionUnet;
  let ren: RenDenoiser;
  const N = 4;
  const xT = initialNoise([1, 32, 32], [0, 1, 2, 3]);
  const x2 = concatBatch([xT, xT]);
  beforeAll(async () => {
    m = await loadTrainedModel('models/duplication', { exposeCrossAttention: true });
    scaled = await scaledAttentionUnet(m);
    ren = await renMitigatedDenoiser(m);
  }, 60_000);
  afterAll(async () => {
    await ren.dispose?.();
    await scaled.dispose();
    await m.attention?.dispose();
    await m.denoiser.dispose?.();
  });

  it('builds the rule of their code: start-token logit × 1.25, tokens after <end> masked', () => {
    const toks = ['<start>', 'an', 'image', '<end>', '<pad>', '<pad>'];
    const r = renAdjustment(toks);
    expect(Array.from(r.scale)).toEqual([1.25, 1, 1, 1, 1, 1]);
    expect(Array.from(r.bias)).toEqual([0, 0, 0, 0, MASKED_LOGIT, MASKED_LOGIT]);
    expect(Array.from(renAdjustment(toks, { maskEnd: true, startScale: 2 }).bias)).toEqual([0, 0, 0, MASKED_LOGIT, MASKED_LOGIT, MASKED_LOGIT]);
    expect(Array.from(renAdjustment(toks, { maskPadding: false }).bias)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('zero strength (C = 1, no mask) equals the plain denoiser; the scaled U-Net with a bias equals AttentionUnet', async () => {
    const off = await renMitigatedDenoiser(m, { startScale: 1, maskPadding: false });
    const cond = [3, 12, 40, 59, null, null, null, null];
    const plain = await m.denoiser.predict(x2, level(999), cond);
    expect(maxAbs(await off.predict(x2, level(999), cond), plain)).toBeLessThan(1e-5);
    await off.dispose?.();
    const bias = Float32Array.from({ length: 8 * 16 }, (_, i) => ((i * 7) % 5) - 2);
    const a = await m.attention!.run(x2, level(500), cond, { bias });
    const b = await scaled.run(x2, level(500), cond, { bias });
    expect(maxAbs(a.eps, b.eps)).toBeLessThan(1e-5);
    for (const l of m.attention!.layers) expect(maxAbs(a.probs.get(l)!, b.probs.get(l)!)).toBeLessThan(1e-6);
  });

  it('multiplies the logits: scale 0 gives uniform attention over the unmasked tokens in every layer', async () => {
    const L = 16;
    const scale = new Float32Array(2 * L); // row 0 and row 1: all logits × 0
    const bias = new Float32Array(2 * L);
    bias.fill(MASKED_LOGIT, L + 5); // row 1: only tokens 0..4 remain
    const out = await scaled.run({ dims: [2, 1, 32, 32], data: xT.data.subarray(0, 2048) }, level(700), [12, 12], { scale, bias });
    for (const p of out.probs.values()) {
      const q = p.dims[1]!;
      for (let r = 0; r < q; r += 13) {
        for (let i = 0; i < L; i++) expect(p.data[r * L + i]!).toBeCloseTo(1 / 16, 6);
        for (let i = 0; i < L; i++) expect(p.data[(q + r) * L + i]!).toBeCloseTo(i < 5 ? 1 / 5 : 0, 6);
      }
    }
  });

  it('mitigates the conditional rows only, and gives the masked tokens no attention', async () => {
    const cond = [12, 12, 3, 40, null, null, null, null];
    const plain = await m.denoiser.predict(x2, level(999), cond);
    const mit = await ren.predict(x2, level(999), cond);
    const half = 4 * 1024;
    const condDiff = Math.max(...Array.from({ length: half }, (_, i) => Math.abs(mit.data[i]! - plain.data[i]!)));
    const uncondDiff = Math.max(...Array.from({ length: half }, (_, i) => Math.abs(mit.data[half + i]! - plain.data[half + i]!)));
    expect(condDiff).toBeGreaterThan(1e-3);
    expect(uncondDiff).toBeLessThan(1e-5);
    const out = await ren.attention.run(x2, level(999), cond, ren.adjustment(cond));
    const end = ren.attention.tokens(3).indexOf('<end>');
    for (const p of out.probs.values()) {
      const q = p.dims[1]!;
      for (let r = 0; r < q; r += 7) for (let i = end + 1; i < 16; i++) expect(p.data[(2 * q + r) * 16 + i]).toBe(0);
    }
  });

  it('computes the entropy of the pixel-, head- and layer-averaged token attention as an independent computation does', async () => {
    const lv = level(999);
    const out = await m.attention!.run(xT, lv, [12, 12, 12, 12]);
    const layers = m.attention!.layers;
    const perSeed: number[] = [];
    for (let b = 0; b < N; b++) {
      const abar = new Array<number>(16).fill(0);
      for (const l of layers) {
        const p = out.probs.get(l)!;
        const q = p.dims[1]!;
        for (let i = 0; i < 16; i++) {
          let s = 0;
          for (let r = 0; r < q; r++) s += p.data[(b * q + r) * 16 + i]!;
          abar[i]! += s / q / layers.length;
        }
      }
      perSeed.push(-abar.reduce((a, v) => a + v * Math.log(v), 0));
    }
    const expected = perSeed.reduce((a, v) => a + v, 0) / N;
    expect(await attentionEntropy(m, 12, xT, lv)).toBeCloseTo(expected, 10);
    const prof = await attentionProfile(m, 12, xT, lv, { layers: [layers[1]!] });
    expect(prof.layers).toEqual([layers[1]]);
    expect(prof.entropies.length).toBe(N);
    for (const d of prof.distributions) expect(d.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 5);
    // the same entropy through the scaled U-Net with no adjustment
    expect(await attentionEntropy(scaled, 12, xT, lv)).toBeCloseTo(expected, 5);
    await expect(attentionProfile(m, 12, xT, lv, { layers: ['nope'] })).rejects.toThrow(/no cross-attention layer 'nope'/);
  });

  it('reports the entropy of memorized captions vs class prompts (sanity only) and the costs', async () => {
    const classes = m.prompts.flatMap((p, i) => (p.kind === 'class' ? [i] : []));
    const captions = m.prompts.flatMap((p, i) => (p.kind === 'caption' ? [i] : [])).filter((_, j) => j % 5 === 0);
    const lines: string[] = [];
    for (const t of [999, 500, 100]) {
      const mean = async (cs: number[]): Promise<{ e: number; start: number }> => {
        let e = 0;
        let start = 0;
        for (const c of cs) {
          const p = await attentionProfile(m, c, xT, level(t));
          for (const v of p.entropies) expect(v > 0 && v <= Math.log(16) + 1e-9).toBe(true);
          e += p.entropy / cs.length;
          start += p.startMass / cs.length;
        }
        return { e, start };
      };
      const a = await mean(classes);
      const b = await mean(captions);
      lines.push(`t=${t}: E(class, ${classes.length}) = ${a.e.toFixed(4)} (start ${a.start.toFixed(3)}), E(caption, ${captions.length}) = ${b.e.toFixed(4)} (start ${b.start.toFixed(3)}); ln 16 = ${Math.log(16).toFixed(4)}`);
    }
    const time = async (f: () => Promise<unknown>): Promise<number> => {
      await f();
      const t0 = performance.now();
      for (let k = 0; k < 5; k++) await f();
      return (performance.now() - t0) / 5;
    };
    const cond = [12, 12, 12, 12, null, null, null, null];
    const tp = await time(() => m.denoiser.predict(x2, level(999), cond));
    const tr = await time(() => ren.predict(x2, level(999), cond));
    lines.push(`one CFG call (batch 2·${N}): plain ${tp.toFixed(1)} ms, Ren et al. ${tr.toFixed(1)} ms`);
    console.log(`Ren et al. attention entropy on models/duplication (N = ${N} seeds, all ${m.attention!.layers.length} layers):\n  ${lines.join('\n  ')}`);
  });
});
