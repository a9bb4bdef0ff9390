import { describe, it, expect, afterAll } from 'vitest';
import { edmCoefficients, EdmPreconditioningSchema, isEdmModel } from '../models/edm.ts';
import { EDM_P_MEAN, EDM_P_STD, edmLossWeight, edmNoiseBatch } from './edm-noise.ts';
import { buildInferenceGraphs, buildTrainingGraph, DiffusionModelConfigSchema } from '../models/diffusion-model.ts';
import { initParams } from '../models/init.ts';
import { createSession, type Session } from '../graph/session.ts';
import { GraphBuilder } from '../graph/builder.ts';
import { paramFnFor } from '../models/init.ts';
import { buildDiffusersUnet } from '../models/unet.ts';
import { prefixed } from '../models/diffusion-model.ts';
import { trainingSigmas, trainingAlphaBars } from '../models/model-dir.ts';

describe('EDM coefficients (Karras et al. 2022, Table 1)', () => {
  it('match hand-computed values at σ = σ_data = 0.5 and σ = 1', () => {
    // σ = 0.5: σ² + σ_d² = 0.5 → c_skip 0.5, c_out 0.25/√0.5, c_in √2, c_noise ln(0.5)/4
    const a = edmCoefficients(0.5);
    expect(a.cSkip).toBeCloseTo(0.5, 14);
    expect(a.cOut).toBeCloseTo(0.3535533905932738, 14);
    expect(a.cIn).toBeCloseTo(1.4142135623730951, 14);
    expect(a.cNoise).toBeCloseTo(-0.17328679513998632, 14);
    // σ = 1: σ² + σ_d² = 1.25 → c_skip 0.2, c_out 0.5/√1.25, c_in 1/√1.25, c_noise 0
    const b = edmCoefficients(1);
    expect(b.cSkip).toBeCloseTo(0.2, 14);
    expect(b.cOut).toBeCloseTo(0.4472135954999579, 14);
    expect(b.cIn).toBeCloseTo(0.8944271909999159, 14);
    expect(b.cNoise).toBe(0);
    expect(edmLossWeight(1)).toBeCloseTo(5, 12); // (1 + 0.25)/(0.5)²
  });
  it('have the limits of the design: D → x as σ → 0, D → F·σ_d … unit-variance input, λ·c_out² = 1', () => {
    const lo = edmCoefficients(0.002);
    expect(lo.cSkip).toBeCloseTo(1, 4);
    expect(lo.cOut).toBeCloseTo(0.002, 5);
    const hi = edmCoefficients(80);
    expect(hi.cSkip).toBeLessThan(1e-4);
    expect(hi.cOut).toBeCloseTo(0.5, 4);
    for (const s of [0.002, 0.03, 0.5, 2, 14.6, 80]) {
      const c = edmCoefficients(s);
      expect(c.cIn ** 2 * (0.25 + s * s)).toBeCloseTo(1, 12); // Var(c_in·(x0 + σn)) = 1 for Var(x0) = σ_d²
      expect(edmLossWeight(s) * c.cOut ** 2).toBeCloseTo(1, 10);
    }
    expect(() => edmCoefficients(0)).toThrow(/sigma/);
  });
});

describe('edmNoiseBatch', () => {
  const precond = EdmPreconditioningSchema.parse({ kind: 'edm' });
  it('draws ln σ ~ N(−1.2, 1.2²) clamped to [0.002, 80], deterministic in (seed, step)', () => {
    const x0 = { dims: [4096, 1], data: new Float32Array(4096) };
    const a = edmNoiseBatch(x0, { seed: 3, step: 5, precond });
    const ls = Array.from(a.sigma, Math.log);
    const mean = ls.reduce((p, q) => p + q, 0) / ls.length;
    const sd = Math.sqrt(ls.reduce((p, q) => p + (q - mean) ** 2, 0) / (ls.length - 1));
    expect(Math.abs(mean - EDM_P_MEAN)).toBeLessThan((4 * EDM_P_STD) / 64); // 4 standard errors
    expect(Math.abs(sd - EDM_P_STD)).toBeLessThan(0.06);
    expect(Math.min(...a.sigma)).toBeGreaterThanOrEqual(0.002);
    expect(Math.max(...a.sigma)).toBeLessThanOrEqual(80);
    const c = edmCoefficients(a.sigma[7]!);
    expect(a.cSkip[7]).toBeCloseTo(c.cSkip, 6);
    expect(a.noiseLabel[7]).toBeCloseTo(250 * c.cNoise, 3);
    const again = edmNoiseBatch(x0, { seed: 3, step: 5, precond });
    expect(Array.from(again.sigma)).toEqual(Array.from(a.sigma));
    expect(Array.from(edmNoiseBatch(x0, { seed: 3, step: 6, precond }).sigma)).not.toEqual(Array.from(a.sigma));
    expect(Array.from(edmNoiseBatch(x0, { seed: 3, step: 5, precond, band: { sigmaLo: 0.1, sigmaHi: 1, rho: 0.25 } }).weight).filter((w) => w === 0.25).length).toBe(a.sigma.filter((s) => s >= 0.1 && s <= 1).length);
  });
});

describe('EDM model graphs: training loss, D(x; σ) and the ε graph agree', () => {
  const cfg = DiffusionModelConfigSchema.parse({ unet: { channels: [8, 8], attentionLevels: [false, true], conditioning: 'none', timeEmbedDim: 32 }, preconditioning: { kind: 'edm' } });
  const B = 6;
  const g = buildTrainingGraph(cfg, B);
  const init = initParams(g.specs, 11);
  const sessions: Session[] = [];
  afterAll(async () => {
    for (const s of sessions) await s.release();
  });
  const rand = (n: number, seed: number): Float32Array => {
    let s = seed;
    return Float32Array.from({ length: n }, () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1);
  };

  it('the F-target training loss equals λ(σ)·‖D(x; σ) − x0‖² of the inference denoiser', async () => {
    const x0 = { dims: [B, 1, 32, 32], data: rand(B * 1024, 5) };
    const e = edmNoiseBatch(x0, { seed: 1, step: 0, precond: cfg.preconditioning! });
    const train = await createSession(g.bytes);
    sessions.push(train);
    const col = (v: Float32Array) => ({ dims: [B, 1, 1, 1], data: v });
    const feeds: Record<string, { dims: number[]; data: Float32Array }> = {
      x0,
      noise: e.noise as { dims: number[]; data: Float32Array },
      sigma: col(e.sigma4),
      c_skip: col(e.cSkip),
      c_out: col(e.cOut),
      c_in: col(e.cIn),
      noise_label: { dims: [B], data: e.noiseLabel },
      weight: { dims: [B], data: Float32Array.from(e.weight) },
    };
    for (const p of g.specs) feeds[p.name] = { dims: [...p.dims], data: init.values.get(p.name)! };
    const loss = (await train.run(feeds, ['loss']))['loss']!.data[0]!;
    const graphs = buildInferenceGraphs(cfg, init.values, { vpSigmas: trainingSigmas() });
    expect(graphs.edmDenoiser).not.toBeNull();
    const den = await createSession(graphs.edmDenoiser!);
    sessions.push(den);
    const x = Float32Array.from(x0.data, (v, i) => v + e.sigma4[Math.floor(i / 1024)]! * e.noise.data[i]!);
    const D = (await den.run({ x: { dims: [B, 1, 32, 32], data: x }, sigma: { dims: [B], data: e.sigma4 } }))['denoised']!.data;
    let ref = 0;
    for (let b = 0; b < B; b++) {
      let m = 0;
      for (let i = b * 1024; i < (b + 1) * 1024; i++) m += (D[i]! - x0.data[i]!) ** 2;
      ref += edmLossWeight(e.sigma4[b]!) * (m / 1024);
    }
    ref /= B;
    expect(Math.abs(loss / ref - 1)).toBeLessThan(2e-3);
  });

  it('the ε graph returns (x − D(x; σ_t))/σ_t with x = x_vp·√(1 + σ_t²), σ_t from the VP table (interpolated between timesteps)', async () => {
    const sig = trainingSigmas();
    const graphs = buildInferenceGraphs(cfg, init.values, { vpSigmas: sig });
    const eps = await createSession(graphs.unet);
    const den = await createSession(graphs.edmDenoiser!);
    sessions.push(eps, den);
    const ts = [0, 10, 499, 500.25, 998.5, 999];
    const xvp = rand(ts.length * 1024, 9);
    const out = (await eps.run({ sample: { dims: [ts.length, 1, 32, 32], data: xvp }, timestep: { dims: [ts.length], data: Float32Array.from(ts) } }))['out_sample']!.data;
    const sOf = (t: number): number => {
      const lo = Math.floor(t);
      const hi = Math.min(lo + 1, 999);
      return sig[lo]! + (t - lo) * (sig[hi]! - sig[lo]!);
    };
    const sg = Float32Array.from(ts, sOf);
    const x = Float32Array.from(xvp, (v, i) => v * Math.sqrt(1 + sg[Math.floor(i / 1024)]! ** 2));
    const D = (await den.run({ x: { dims: [ts.length, 1, 32, 32], data: x }, sigma: { dims: [ts.length], data: sg } }))['denoised']!.data;
    for (let b = 0; b < ts.length; b++) {
      let num = 0;
      let den2 = 0;
      for (let i = b * 1024; i < (b + 1) * 1024; i++) {
        const ref = (x[i]! - D[i]!) / sg[b]!;
        num += (out[i]! - ref) ** 2;
        den2 += ref * ref;
      }
      expect(Math.sqrt(num / den2)).toBeLessThan(b === 0 ? 2e-3 : 2e-4); // σ_0 ≈ 0.03: float32 x − D loses digits
    }
    // σ table: σ_t = √((1 − ᾱ_t)/ᾱ_t)
    const ab = trainingAlphaBars();
    expect(sig[500]).toBeCloseTo(Math.sqrt((1 - ab[500]!) / ab[500]!), 12);
  });

  it('an EDM model needs the σ table; an ε model (no preconditioning, every older model.json) builds the same U-Net bytes as before', () => {
    expect(() => buildInferenceGraphs(cfg, init.values)).toThrow(/vpSigmas/);
    expect(isEdmModel(cfg)).toBe(true);
    const old = DiffusionModelConfigSchema.parse({ unet: { channels: [8, 8], attentionLevels: [false, true], conditioning: 'none', timeEmbedDim: 32 } });
    expect('preconditioning' in old).toBe(false);
    expect(isEdmModel(old)).toBe(false);
    const vals = initParams(buildTrainingGraph(old, 2).specs, 3).values;
    const graphs = buildInferenceGraphs(old, vals);
    expect(graphs.edmDenoiser).toBeNull();
    const ub = new GraphBuilder({ name: 'memscope_unet' });
    buildDiffusersUnet(ub, old.unet, prefixed(paramFnFor(ub, 'initializer', vals).param, 'unet.'), 'dynamic', { exposeCrossAttention: false });
    expect(Buffer.from(graphs.unet).equals(Buffer.from(ub.toBytes()))).toBe(true);
  });
});
