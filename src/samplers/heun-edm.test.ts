import { describe, it, expect } from 'vitest';
import { edmSigmas, guidedHeunModel, sampleHeunEdm, type HeunModel } from './heun-edm.ts';
import type { StepEvent } from './types.ts';

/** Deterministic pseudo-normal noise (Box–Muller on a fixed LCG) for test inputs. */
function noiseOf(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = (): number => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

describe('edmSigmas', () => {
  it('runs from σ_max to σ_min with σ^{1/ρ} evenly spaced, then 0', () => {
    const s = edmSigmas(18);
    expect(s).toHaveLength(19);
    expect(s[0]).toBeCloseTo(80, 10);
    expect(s[17]).toBeCloseTo(0.002, 14);
    expect(s[18]).toBe(0);
    const r = Array.from(s.subarray(0, 18), (v) => v ** (1 / 7));
    const step = (0.002 ** (1 / 7) - 80 ** (1 / 7)) / 17;
    for (let i = 1; i < 18; i++) expect(r[i]! - r[i - 1]!).toBeCloseTo(step, 12);
  });
  it('rejects bad arguments', () => {
    expect(() => edmSigmas(0)).toThrow(/steps/);
    expect(() => edmSigmas(4, 1, 0.5)).toThrow(/sigmaMin < sigmaMax/);
    expect(() => edmSigmas(4, 0.002, 80, 0)).toThrow(/rho/);
  });
});

describe('sampleHeunEdm', () => {
  it('uses 2N − 1 evaluations (35 for 18 steps), the last step Euler', async () => {
    const calls: [number, number][] = [];
    const model: HeunModel = async (x, sigma, info) => {
      calls.push([sigma, info.evaluation]);
      return { denoised: { dims: x.dims, data: new Float32Array(x.data.length) } };
    };
    await sampleHeunEdm(model, { dims: [1, 4], data: noiseOf(4, 1) });
    expect(calls).toHaveLength(35);
    expect(calls.filter((c) => c[1] === 1)).toHaveLength(17);
    expect(calls.every((c) => c[0] > 0)).toBe(true);
  });

  it('one training point: D(x; σ) = x0 ⇒ the path is x0 + σ_i·(x_T − x0)/σ_max and the sample is x0 exactly', async () => {
    const n = 16;
    const x0 = Float32Array.from({ length: n }, (_, j) => Math.sin(j) * 0.8);
    const z = noiseOf(2 * n, 7);
    const model: HeunModel = async (x) => ({ denoised: { dims: x.dims, data: Float32Array.from({ length: x.data.length }, (_, j) => x0[j % n]!) } });
    const events: StepEvent[] = [];
    const sig = edmSigmas(18);
    const out = await sampleHeunEdm(model, { dims: [2, n], data: z }, { onStep: (e) => void events.push(e) });
    for (let j = 0; j < 2 * n; j++) expect(out.data[j]).toBe(x0[j % n]);
    expect(events).toHaveLength(18);
    for (const e of events) {
      const s = sig[e.step + 1]!;
      const k = 1 / Math.sqrt(1 + s * s);
      // x_T = σ_max·z; the ODE dx/dσ = (x − x0)/σ is solved exactly by every Euler and Heun step here
      for (let j = 0; j < 2 * n; j++) expect(e.xPrev.data[j]).toBeCloseTo((x0[j % n]! + (s * (80 * z[j]! - x0[j % n]!)) / 80) * k, 5);
      expect(e.alphaBar).toBeCloseTo(1 / (1 + sig[e.step]! ** 2), 12);
      expect(e.t).toBe(sig[e.step]);
    }
  });

  // Gaussian data N(μ, s²): D(x; σ) = μ + s²/(s² + σ²)·(x − μ). The ODE dx/dσ = (x − D)/σ = (x − μ)·σ/(σ² + s²)
  // has the exact solution x(σ) = μ + (x_T − μ)·√(σ² + s²)/√(σ_max² + s²).
  const mu = 0.3;
  const s = 0.5;
  const gaussian: HeunModel = async (x, sigma) => {
    const k = (s * s) / (s * s + sigma * sigma);
    return { denoised: { dims: x.dims, data: Float32Array.from(x.data, (v) => mu + k * (v - mu)) } };
  };
  /** Heun's amplification of y = x − μ computed another way: y' = a(σ)·y with a = σ/(σ² + s²), one factor per step. */
  function heunFactor(N: number): number {
    const sg = edmSigmas(N);
    const a = (v: number): number => v / (v * v + s * s);
    let g = 1;
    for (let i = 0; i < N; i++) {
      const h = sg[i + 1]! - sg[i]!;
      g *= sg[i + 1]! > 0 ? 1 + (h / 2) * (a(sg[i]!) + a(sg[i + 1]!) * (1 + h * a(sg[i]!))) : 1 + h * a(sg[i]!);
    }
    return g;
  }

  it('Gaussian data: matches the step-by-step amplification factor, and the closed-form ODE solution within the discretization error, which shrinks ≈ 4× when the steps double', async () => {
    const n = 64;
    const z = noiseOf(n, 3);
    const exact = s / Math.sqrt(80 * 80 + s * s); // x(0) − μ = (x_T − μ)·exact, x_T − μ = 80·z − μ·0 … (x_T = 80·z)
    const errs: number[] = [];
    for (const N of [18, 36, 72]) {
      const out = await sampleHeunEdm(gaussian, { dims: [1, n], data: z }, { steps: N });
      const g = heunFactor(N);
      let err = 0;
      for (let j = 0; j < n; j++) {
        const xT = 80 * z[j]!;
        expect(out.data[j]).toBeCloseTo(mu + (xT - mu) * g, 5); // the same numbers computed another way
        err = Math.max(err, Math.abs(out.data[j]! - (mu + (xT - mu) * exact)));
      }
      errs.push(err);
    }
    // The discretization error at 18 steps, estimated from the sampler alone by Richardson extrapolation
    // (Heun is 2nd order: e_N ≈ (x_N − x_2N)·4/3), must match the error against the exact solution; it is
    // a real error (the contraction factor is ≈ 5.5 % off at 18 steps on this problem), bounded by 10 %.
    const out18 = await sampleHeunEdm(gaussian, { dims: [1, n], data: z }, { steps: 18 });
    const out36 = await sampleHeunEdm(gaussian, { dims: [1, n], data: z }, { steps: 36 });
    let rich = 0;
    for (let j = 0; j < n; j++) rich = Math.max(rich, (Math.abs(out18.data[j]! - out36.data[j]!) * 4) / 3);
    expect(errs[0]! / rich).toBeGreaterThan(0.8);
    expect(errs[0]! / rich).toBeLessThan(1.25);
    const rel18 = Math.abs(heunFactor(18) / exact - 1);
    expect(rel18).toBeLessThan(0.1);
    expect(rel18).toBeGreaterThan(1e-3);
    const ratio1 = errs[0]! / errs[1]!;
    const ratio2 = errs[1]! / errs[2]!;
    expect(ratio1).toBeGreaterThan(3);
    expect(ratio1).toBeLessThan(5);
    expect(ratio2).toBeGreaterThan(3.5);
    expect(ratio2).toBeLessThan(4.5);
  });

  it('guidance: D = D_u + s·(D_c − D_u), d_t = ‖D_c − D_u‖²/σ² per row, and the sample is the guided point', async () => {
    const n = 8;
    const xc = Float32Array.from({ length: n }, (_, j) => 0.5 - j / n);
    const xu = new Float32Array(n).fill(-0.2);
    const den = {
      denoise: async (x: { dims: readonly number[]; data: Float32Array }, sigma: ArrayLike<number>, cond: readonly (number | null)[]) => {
        expect(sigma.length).toBe(cond.length);
        const out = new Float32Array(x.data.length);
        cond.forEach((c, r) => out.set(c === null ? xu : xc, r * n));
        return { dims: [...x.dims], data: out };
      },
    };
    const events: StepEvent[] = [];
    const out = await sampleHeunEdm(guidedHeunModel(den, [0, null], 3), { dims: [2, n], data: noiseOf(2 * n, 5) }, { steps: 6, onStep: (e) => void events.push(e) });
    for (let j = 0; j < n; j++) {
      expect(out.data[j]).toBeCloseTo(xu[j]! + 3 * (xc[j]! - xu[j]!), 5);
      expect(out.data[n + j]).toBeCloseTo(xu[j]!, 5);
    }
    const sig = edmSigmas(6);
    let dd = 0;
    for (let j = 0; j < n; j++) dd += (xc[j]! - xu[j]!) ** 2;
    for (const e of events) {
      expect(Math.abs(e.d![0]! / (dd / sig[e.step]! ** 2) - 1)).toBeLessThan(1e-4); // float32 ε branches
      expect(e.d![1]).toBeCloseTo(0, 6);
      expect(Array.from(e.s!)).toEqual([3, 3]);
    }
  });

  it('rejects a non-finite denoiser output and bad steps', async () => {
    const bad: HeunModel = async (x) => ({ denoised: { dims: x.dims, data: new Float32Array(x.data.length).fill(NaN) } });
    await expect(sampleHeunEdm(bad, { dims: [1, 2], data: new Float32Array(2) })).rejects.toThrow(/non-finite/);
    await expect(sampleHeunEdm(bad, { dims: [1, 2], data: new Float32Array(2) }, { steps: 0 })).rejects.toThrow(/steps/);
  });
});
