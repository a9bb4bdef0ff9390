import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { alphaBars, betas, sigmaFromAlphaBar } from '../schedules/betas.ts';
import {
  DataOrder,
  batchIndices,
  epochPermutation,
  lossWeight,
  noiseBatch,
  randintFrom,
  sampleNoiseLevels,
  sigmaToTimestep,
  stepEngine,
  stepGenerator,
  stepSeed,
  uniformFrom,
} from './noise.ts';

interface NoiseFixture {
  shape: number[];
  x: number[];
  cases: { seed: number; step: number; tVp: number[]; edmZ: number[]; tNearest: number[]; tInterp: number[]; eps: number[]; xt: number[] }[];
}
const fixture = (JSON.parse(readFileSync(new URL('../../test/fixtures/train_adamw.json', import.meta.url), 'utf8')) as { noise: NoiseFixture }).noise;
const AB = alphaBars(betas('scaled_linear', { betaStart: 0.00085, betaEnd: 0.012 }));

describe('per-step generators against torch', () => {
  for (const c of fixture.cases) {
    it(`seed ${c.seed}, step ${c.step}: timesteps, EDM levels, ε and x_t`, () => {
      const B = fixture.shape[0]!;
      const vp = sampleNoiseLevels(B, AB, { kind: 'vp' }, c.seed, c.step);
      expect([...vp.t]).toEqual(c.tVp);
      expect([...vp.alphaBar]).toEqual(c.tVp.map((t) => AB[t]));
      const z = stepGenerator(c.seed, c.step, 'level').randn([B]);
      expect([...z]).toEqual(c.edmZ.map(Math.fround));
      const near = sampleNoiseLevels(B, AB, { kind: 'edm' }, c.seed, c.step);
      expect([...near.t]).toEqual(c.tNearest);
      const interp = sampleNoiseLevels(B, AB, { kind: 'edm', mapping: 'interpolate' }, c.seed, c.step);
      interp.t.forEach((t, i) => expect(Math.abs(t - c.tInterp[i]!)).toBeLessThan(1e-4));
      const x = { dims: fixture.shape, data: Float32Array.from(fixture.x) };
      const nb = noiseBatch(x, { seed: c.seed, step: c.step, alphaBar: AB });
      // numel >= 16: TorchGenerator agrees with torch to 1 float ulp (see src/random/torch.ts)
      nb.eps.data.forEach((v, i) => expect(Math.abs(v - c.eps[i]!)).toBeLessThan(1e-6));
      nb.xt.data.forEach((v, i) => expect(Math.abs(v - c.xt[i]!)).toBeLessThan(1e-6));
      expect([...nb.t]).toEqual(c.tVp);
      nb.sqrtAlphaBar.forEach((sa, b) => expect(sa).toBe(Math.fround(Math.sqrt(AB[c.tVp[b]!]!))));
    });
  }

  it('keys: seed·1_000_003 + step + stream offset; streams differ', () => {
    expect(stepSeed(7, 123)).toBe(7n * 1_000_003n + 123n);
    expect(stepSeed(7, 123, 'level')).toBe(7n * 1_000_003n + 123n + (1n << 30n));
    expect(stepSeed(7, 123, 'aux')).toBe(7n * 1_000_003n + 123n + (2n << 30n));
    const a = stepGenerator(3, 5, 'noise').randn([4]);
    const b = stepGenerator(3, 5, 'aux').randn([4]);
    expect(a).not.toEqual(b);
    expect(stepGenerator(3, 5).randn([20])).toEqual(stepGenerator(3, 5).randn([20]));
    expect(() => stepSeed(-1, 0)).toThrow(/seed/);
    expect(() => stepSeed(0, 1.5)).toThrow(/step/);
    const u = uniformFrom(stepEngine(1, 2, 'aux'), 1000);
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    const r = randintFrom(stepEngine(1, 2, 'aux'), 10, 1000);
    expect(new Set(r).size).toBe(10);
  });
});

describe('noise levels', () => {
  it('sigmaToTimestep: nearest in ln σ, interpolation between neighbours, clamping', () => {
    const ls = [Math.log(1), Math.log(2), Math.log(4)];
    expect(sigmaToTimestep(1, ls)).toBe(0);
    expect(sigmaToTimestep(1.4, ls)).toBe(0);
    expect(sigmaToTimestep(1.5, ls)).toBe(1);
    expect(sigmaToTimestep(Math.SQRT2, ls, 'interpolate')).toBeCloseTo(0.5, 12);
    expect(sigmaToTimestep(2 * Math.SQRT2, ls, 'interpolate')).toBeCloseTo(1.5, 12);
    expect(sigmaToTimestep(0.1, ls, 'interpolate')).toBe(0);
    expect(sigmaToTimestep(100, ls)).toBe(2);
    expect(() => sigmaToTimestep(0, ls)).toThrow(/sigma/);
  });

  it('VP timesteps are uniform over 0..T−1; EDM ln σ has the requested mean and std', () => {
    const counts = new Float64Array(10);
    const ab10 = alphaBars(betas('linear', { numTrainTimesteps: 10 }));
    for (let s = 0; s < 200; s++) for (const t of sampleNoiseLevels(50, ab10, { kind: 'vp' }, 1, s).t) counts[t]! += 1;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(120);
    // quartiles of ln σ (robust to the clamping at σ_0 ≈ 0.029 and σ_999 ≈ 14.6): μ ± 0.6745·σ
    const logs: number[] = [];
    for (let s = 0; s < 100; s++) for (const sg of sampleNoiseLevels(100, AB, { kind: 'edm', mapping: 'interpolate' }, 2, s).sigma) logs.push(Math.log(sg));
    logs.sort((a, b) => a - b);
    const q = (p: number) => logs[Math.floor(p * logs.length)]!;
    expect(Math.abs(q(0.5) + 1.2)).toBeLessThan(0.05);
    expect(Math.abs(q(0.25) - (-1.2 - 0.6745 * 1.2))).toBeLessThan(0.05);
    expect(Math.abs(q(0.75) - (-1.2 + 0.6745 * 1.2))).toBeLessThan(0.05);
    const near = sampleNoiseLevels(100, AB, { kind: 'edm' }, 2, 0);
    near.t.forEach((t, i) => {
      expect(Number.isInteger(t)).toBe(true);
      expect(near.alphaBar[i]).toBe(AB[t]);
      expect(near.sigma[i]).toBe(sigmaFromAlphaBar(AB[t]!));
    });
  });

  it('lossWeight: 1 outside the band, ρ inside (bounds inclusive); noiseBatch carries it', () => {
    const band = { sigmaLo: 0.5, sigmaHi: 2, rho: 0.25 };
    expect(lossWeight(3)).toBe(1);
    expect([0.4, 0.5, 1, 2, 2.1].map((s) => lossWeight(s, band))).toEqual([1, 0.25, 0.25, 0.25, 1]);
    expect(() => lossWeight(1, { sigmaLo: 2, sigmaHi: 1, rho: 0.5 })).toThrow(/sigmaLo/);
    expect(() => lossWeight(1, { sigmaLo: 0, sigmaHi: 1, rho: 2 })).toThrow(/rho/);
    const x = { dims: [64, 2], data: new Float32Array(128) };
    const nb = noiseBatch(x, { seed: 0, step: 3, alphaBar: AB, band, sampling: { kind: 'edm' } });
    nb.weight.forEach((w, i) => expect(w).toBe(lossWeight(nb.sigma[i]!, band)));
    expect(nb.weight.some((w) => w === 0.25)).toBe(true);
    expect(nb.weight.some((w) => w === 1)).toBe(true);
  });
});

describe('data order', () => {
  it('epochPermutation is a seeded permutation, different per epoch and seed', () => {
    const p = epochPermutation(100, 5, 0);
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(epochPermutation(100, 5, 0)).toEqual(p);
    expect(epochPermutation(100, 5, 1)).not.toEqual(p);
    expect(epochPermutation(100, 6, 0)).not.toEqual(p);
    expect(epochPermutation(1, 0, 0)).toEqual(Uint32Array.from([0]));
  });

  it('DataOrder streams epochs back to back and resumes from (epoch, position)', () => {
    const n = 7;
    const d = new DataOrder(n, 3);
    const all = d.next(3 * n + 2);
    expect(all.slice(0, n)).toEqual([...epochPermutation(n, 3, 0)]);
    expect(all.slice(n, 2 * n)).toEqual([...epochPermutation(n, 3, 1)]);
    expect(d.state()).toEqual({ epoch: 3, position: 2 });
    const a = new DataOrder(n, 3);
    a.next(10);
    const st = a.state();
    expect(st).toEqual({ epoch: 1, position: 3 });
    const b = new DataOrder(n, 3, st);
    expect(b.next(12)).toEqual(a.next(12));
    expect(DataOrder.stateAt(n, 10)).toEqual(st);
    expect(() => new DataOrder(n, 3, { epoch: 0, position: 7 })).toThrow(/position/);
  });

  it('batchIndices(step) equals the stream sliced at step·batchSize', () => {
    const d = new DataOrder(10, 1);
    for (let s = 0; s < 8; s++) expect(batchIndices(10, 1, 4, s)).toEqual(d.next(4));
  });
});
