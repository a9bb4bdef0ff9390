/**
 * SPEC §3.6 decomposition x_t ≈ w0·x + wT·x_T by the normal equations, and the §3.7 deviation sums.
 */
import { describe, expect, it } from 'vitest';
import { deviationSums, solveDecomposition, solveDecompositionFromGram } from './decomposition.ts';
import { mulberry32, normals } from '../../test/helpers/random.ts';

const rng = mulberry32(42);
const d = 64;
const x = Float64Array.from(normals(rng, d));
const xT = Float64Array.from(normals(rng, d));
const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

describe('solveDecomposition', () => {
  it('recovers x_t = a·x + b·x_T exactly (residual ≈ 0)', () => {
    for (const [a, b] of [[0.7, -1.3], [0, 1], [2.5, 0], [-0.01, 0.99]] as const) {
      const xt = x.map((v, i) => a * v + b * xT[i]!);
      const r = solveDecomposition(xt, x, xT);
      expect(r.w0).toBeCloseTo(a, 12);
      expect(r.wT).toBeCloseTo(b, 12);
      expect(r.residual).toBeLessThan(1e-12);
    }
  });

  it('with noise orthogonal to x and x_T: same weights, residual = ‖noise‖', () => {
    // Gram–Schmidt a random vector against span{x, x_T}
    const z = Float64Array.from(normals(rng, d));
    const u1 = x.map((v) => v / Math.sqrt(dot(x, x)));
    const v2 = xT.map((v, i) => v - dot(xT, u1) * u1[i]!);
    const u2 = v2.map((v) => v / Math.sqrt(dot(v2, v2)));
    const c1 = dot(z, u1);
    const c2 = dot(z, u2);
    const noise = z.map((v, i) => 0.5 * (v - c1 * u1[i]! - c2 * u2[i]!));
    const xt = x.map((v, i) => 0.3 * v + 0.8 * xT[i]! + noise[i]!);
    const r = solveDecomposition(xt, x, xT);
    expect(r.w0).toBeCloseTo(0.3, 12);
    expect(r.wT).toBeCloseTo(0.8, 12);
    expect(r.residual).toBeCloseTo(Math.sqrt(dot(noise, noise)), 12);
    expect(r.residual).toBeGreaterThan(1);
    // the Gram form agrees (its residual to ≈ 1e-8·‖x_t‖)
    const g = solveDecompositionFromGram({ xx: dot(x, x), xTxT: dot(xT, xT), xxT: dot(x, xT), xtx: dot(xt, x), xtxT: dot(xt, xT), xtxt: dot(xt, xt) });
    expect(g.w0).toBeCloseTo(r.w0, 12);
    expect(g.wT).toBeCloseTo(r.wT, 12);
    expect(g.residual).toBeCloseTo(r.residual, 8);
  });

  it('accepts float32 inputs and accumulates in float64', () => {
    const xf = Float32Array.from(x);
    const xTf = Float32Array.from(xT);
    const xt = Float32Array.from(xf, (v, i) => 1e-3 * v + xTf[i]!);
    const r = solveDecomposition(xt, xf, xTf);
    expect(r.w0).toBeCloseTo(1e-3, 6);
    expect(r.wT).toBeCloseTo(1, 6);
  });

  it('collinear x and x_T: the least-norm solution; both zero: (0, 0) with residual ‖x_t‖', () => {
    // x_T = 2x, x_t = 3x: w0 + 2·wT = 3, least-norm (3, 6)/5
    const xT2 = x.map((v) => 2 * v);
    const r = solveDecomposition(x.map((v) => 3 * v), x, xT2);
    expect(r.w0).toBeCloseTo(0.6, 12);
    expect(r.wT).toBeCloseTo(1.2, 12);
    expect(r.residual).toBeLessThan(1e-12);
    const zero = new Float64Array(d);
    const z = solveDecomposition(x, zero, zero);
    expect(z).toEqual({ w0: 0, wT: 0, residual: Math.sqrt(dot(x, x)) });
    // only x = 0: all the weight on x_T
    const onlyT = solveDecomposition(xT.map((v) => -2 * v), zero, xT);
    expect(onlyT.w0).toBe(0);
    expect(onlyT.wT).toBeCloseTo(-2, 12);
    expect(() => solveDecomposition(x, x.subarray(1), xT)).toThrow(/differ in length/);
  });
});

describe('deviationSums', () => {
  it('matches the hand formula of SPEC §3.7', () => {
    // √ᾱ = 0, 0.6, 0.8, 1 and √(1−ᾱ) = 1, 0.8, 0.6, 0
    const alphaBar = [0, 0.36, 0.64, 1];
    const w0 = [0.1, 0.7, 0.9, 1.0];
    const wT = [1.0, 0.6, 0.3, 0.0];
    const s = deviationSums(w0, wT, alphaBar);
    expect(s.dX).toBeCloseTo(0.1 + 0.1 + 0.1 + 0, 14);
    expect(s.dNoise).toBeCloseTo(0 + 0.2 + 0.3 + 0, 14);
    expect(s.dTotal).toBeCloseTo(0.8, 14);
  });

  it('is 0 on the forward-process weights and signs over/under-shoots', () => {
    const alphaBar = [0.01, 0.2, 0.5, 0.9];
    const ideal = deviationSums(alphaBar.map(Math.sqrt), alphaBar.map((a) => Math.sqrt(1 - a)), alphaBar);
    expect(ideal.dX).toBeCloseTo(0, 14);
    expect(ideal.dNoise).toBeCloseTo(0, 14);
    // w0 too high, wT too low → both positive (memorization signature)
    const mem = deviationSums(alphaBar.map((a) => Math.sqrt(a) + 0.1), alphaBar.map((a) => Math.sqrt(1 - a) - 0.05), alphaBar);
    expect(mem.dX).toBeCloseTo(0.4, 12);
    expect(mem.dNoise).toBeCloseTo(0.2, 12);
    expect(deviationSums([NaN], [1], [0.5]).dTotal).toBeNaN();
    expect(() => deviationSums([1], [1, 2], [0.5])).toThrow(/differ in length/);
  });
});
