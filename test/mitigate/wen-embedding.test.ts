/**
 * Wen et al. 2024 prompt-embedding optimisation on the shipped duplication model: the gradient of
 * the loss graph (memscope's differentiator) against central finite differences of the forward
 * loss, the loss against the plain denoiser, the descent on a memorized caption, determinism, and
 * the denoiser that uses the optimised embedding.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadTrainedModel, type TrainedModel } from '../../src/denoisers/trained.ts';
import { createWenObjective, optimizePromptEmbedding, wenDenoiser, type WenObjective } from '../../src/mitigate/wen-embedding.ts';
import { embedTexts } from '../../src/mitigate/prompt-noise.ts';
import { initialNoise } from '../../src/study/sampling.ts';
import { mulberry32 } from '../../src/random/mulberry32.ts';
import { concatBatch } from '../../src/tensor/tensor.ts';

const T = 999;
const CAPTION = 12; // "studio photo of a green pullover on a wooden table" (memorized)

describe('Wen et al. prompt-embedding optimisation', () => {
  let m: TrainedModel;
  let obj: WenObjective;
  const xT = initialNoise([1, 32, 32], [0, 1]);
  beforeAll(async () => {
    m = await loadTrainedModel('models/duplication');
    obj = await createWenObjective(m, 2);
  }, 60_000);
  afterAll(async () => {
    await obj.dispose();
    await m.denoiser.dispose?.();
  });

  it('computes ‖ε_c − ε_u‖₂ over both seeds jointly, as the plain denoiser gives it', async () => {
    const e = (await embedTexts(m, [m.prompts[CAPTION]!.text])).data;
    const { loss } = await obj.lossAndGradient(e, xT, T);
    const eps = await m.denoiser.predict(concatBatch([xT, xT]), { t: T, alphaBar: 0.0047 }, [CAPTION, CAPTION, null, null]);
    let s = 0;
    for (let i = 0; i < 2048; i++) s += (eps.data[i]! - eps.data[2048 + i]!) ** 2;
    expect(Math.abs(loss - Math.sqrt(s))).toBeLessThan(1e-5 * loss);
    expect(await obj.loss(e, xT, T)).toBe(loss);
  });

  it('has a gradient that matches central finite differences of the loss', async () => {
    // Tolerance: the loss (≈1.6) comes out of a float32 graph, so each evaluation carries a
    // rounding error δ ≈ 3e-7 (measured: the FD error grows like δ/h below h = 3e-3); with
    // h = 0.03 the FD noise is δ/h ≈ 1e-5 and the O(h²) truncation error was measured below 1e-5
    // too. Differences are formed in float64 from the float32 losses; bound: 5e-5 absolute
    // (≈0.6% of the largest component, 8.6e-3) for coordinates and for a random unit direction.
    const e = (await embedTexts(m, [m.prompts[CAPTION]!.text])).data;
    const { grad } = await obj.lossAndGradient(e, xT, T);
    const order = Array.from(grad.keys()).sort((a, b) => Math.abs(grad[b]!) - Math.abs(grad[a]!));
    const rnd = mulberry32(7);
    const coords = [...order.slice(0, 3), Math.floor(rnd() * grad.length), 64 * 5 + 17];
    const h = 0.03;
    for (const i of coords) {
      const ep = e.slice();
      const em = e.slice();
      ep[i] = e[i]! + h;
      em[i] = e[i]! - h;
      const fd = ((await obj.loss(ep, xT, T)) - (await obj.loss(em, xT, T))) / (ep[i]! - em[i]!);
      expect(Math.abs(fd - grad[i]!), `coordinate ${i}: g = ${grad[i]}, fd = ${fd}`).toBeLessThan(5e-5);
    }
    expect(Math.abs(grad[order[0]!]!)).toBeGreaterThan(1e-3); // the checks above are not vacuous
    const v = Float64Array.from(grad, () => rnd() - 0.5);
    const nv = Math.hypot(...v);
    const ep = Float32Array.from(e, (x, i) => x + (h * v[i]!) / nv);
    const em = Float32Array.from(e, (x, i) => x - (h * v[i]!) / nv);
    const gv = grad.reduce((a, g, i) => a + (g * v[i]!) / nv, 0);
    const fd = ((await obj.loss(ep, xT, T)) - (await obj.loss(em, xT, T))) / (2 * h);
    expect(Math.abs(fd - gv), `direction: g·v = ${gv}, fd = ${fd}`).toBeLessThan(5e-5);
  });

  it('lowers the loss of a memorized caption over the iterations, deterministically', async () => {
    const a = await optimizePromptEmbedding(m, CAPTION, xT, T, { objective: obj, lossTarget: null, maxIters: 6 });
    expect(a.iterations).toBe(6);
    expect(a.losses.length).toBe(6);
    expect(a.reachedTarget).toBe(false);
    for (let j = 1; j < a.losses.length; j++) expect(a.losses[j]!).toBeLessThan(a.losses[j - 1]!);
    expect(a.embedding.dims).toEqual([1, 16, 64]);
    const e0 = (await embedTexts(m, [m.prompts[CAPTION]!.text])).data;
    // the start token's gradient is zeroed (their code); only AdamW's decay (1 − lr·0.01)^6 moves it
    for (let i = 0; i < 64; i++) expect(a.embedding.data[i]!).toBeCloseTo(e0[i]! * (1 - 0.05 * 0.01) ** 6, 5); // float32 rounding of 6 products
    const b = await optimizePromptEmbedding(m, CAPTION, xT, T, { objective: obj, lossTarget: null, maxIters: 6 });
    expect(b.losses).toEqual(a.losses);
    expect(Array.from(b.embedding.data)).toEqual(Array.from(a.embedding.data));
    console.log(`Wen et al. on caption ${CAPTION}, N = 2 seeds, t = ${T}: losses ${a.losses.map((l) => l.toFixed(3)).join(' → ')}; ${(a.seconds / a.iterations).toFixed(3)} s/iteration`);
  });

  it('stops before updating once the loss is at or below the target (l_target = 3 by default)', async () => {
    const r = await optimizePromptEmbedding(m, CAPTION, xT, T, { objective: obj });
    // this small pixel model's joint norm is far below SD's scale: l_target = 3 stops at once
    expect(r.losses.length).toBe(1);
    expect(r.iterations).toBe(0);
    expect(r.reachedTarget).toBe(true);
    const e0 = (await embedTexts(m, [m.prompts[CAPTION]!.text])).data;
    expect(Array.from(r.embedding.data)).toEqual(Array.from(e0));
    const half = await optimizePromptEmbedding(m, CAPTION, xT, T, { objective: obj, lossTarget: r.losses[0]! * 0.9 });
    expect(half.reachedTarget).toBe(true);
    expect(half.losses.at(-1)!).toBeLessThanOrEqual(r.losses[0]! * 0.9);
    expect(half.iterations).toBe(half.losses.length - 1);
  });

  it('samples with the optimised embedding for its condition and the original ones elsewhere', async () => {
    const r = await optimizePromptEmbedding(m, CAPTION, xT, T, { objective: obj, lossTarget: null, maxIters: 3 });
    const d = await wenDenoiser(m, new Map([[CAPTION, r.embedding]]));
    expect(d.conditions).toEqual(m.denoiser.conditions);
    const level = { t: T, alphaBar: 0.0047 };
    const both = concatBatch([xT, xT]);
    const eps = await d.predict(both, level, [CAPTION, CAPTION, null, null]);
    let s = 0;
    for (let i = 0; i < 2048; i++) s += (eps.data[i]! - eps.data[2048 + i]!) ** 2;
    expect(Math.abs(Math.sqrt(s) - (await obj.loss(r.embedding.data, xT, T)))).toBeLessThan(1e-5);
    const other = await d.predict(both, level, [40, 3, null, null]);
    const ref = await m.denoiser.predict(both, level, [40, 3, null, null]);
    expect(other.data.reduce((a, v, i) => Math.max(a, Math.abs(v - ref.data[i]!)), 0)).toBeLessThan(1e-6);
    await d.dispose?.();
    await expect(optimizePromptEmbedding(m, CAPTION, initialNoise([1, 32, 32], [0, 1, 2]), T, { objective: obj })).rejects.toThrow(/built for 2 seeds/);
  });
});

describe('Wen et al. on an EDM-preconditioned model (models/graded)', () => {
  // The loss graph rebuilds ε = (x − D(x; σ))/σ around the bare network F_θ (buildEpsNetwork); the
  // reference is the model's own shipped ε graph (unet.onnx, built once at load), sampled through
  // the plain denoiser: two graphs built by different code paths must agree.
  let m: TrainedModel;
  let obj: WenObjective;
  let cap: number;
  const xT = initialNoise([1, 32, 32], [3, 4]);
  beforeAll(async () => {
    m = await loadTrainedModel('models/graded');
    obj = await createWenObjective(m, 2);
    cap = m.prompts.findIndex((p) => p.duplicates === 100);
  }, 60_000);
  afterAll(async () => {
    await obj.dispose();
    await m.denoiser.dispose?.();
  });

  it('computes ‖ε_c − ε_u‖₂ as the model’s ε graph gives it, at the top and at a fractional mid timestep', async () => {
    expect(m.prompts[cap]!.duplicates).toBe(100);
    const e = (await embedTexts(m, [m.prompts[cap]!.text])).data;
    for (const t of [999, 421.5]) {
      const { loss } = await obj.lossAndGradient(e, xT, t);
      const eps = await m.denoiser.predict(concatBatch([xT, xT]), { t, alphaBar: 0.5 }, [cap, cap, null, null]);
      let s = 0;
      for (let i = 0; i < 2048; i++) s += (eps.data[i]! - eps.data[2048 + i]!) ** 2;
      expect(loss).toBeGreaterThan(1e-3);
      expect(Math.abs(loss - Math.sqrt(s)), `t = ${t}`).toBeLessThan(1e-4 * loss);
    }
  });

  it('has a gradient that matches central finite differences of the loss', async () => {
    const e = (await embedTexts(m, [m.prompts[cap]!.text])).data;
    const t = 999;
    const { grad } = await obj.lossAndGradient(e, xT, t);
    const order = Array.from(grad.keys()).sort((a, b) => Math.abs(grad[b]!) - Math.abs(grad[a]!));
    expect(Math.abs(grad[order[0]!]!)).toBeGreaterThan(1e-3);
    const h = 0.03;
    for (const i of order.slice(0, 3)) {
      const ep = e.slice();
      const em = e.slice();
      ep[i] = e[i]! + h;
      em[i] = e[i]! - h;
      const fd = ((await obj.loss(ep, xT, t)) - (await obj.loss(em, xT, t))) / (ep[i]! - em[i]!);
      // relative bound: the σ-scaled ε of EDM makes the loss larger than the ε-model's
      expect(Math.abs(fd - grad[i]!), `coordinate ${i}: g = ${grad[i]}, fd = ${fd}`).toBeLessThan(2e-3 * Math.abs(grad[order[0]!]!) + 5e-5);
    }
  });
});
