/**
 * The denoiser swap (SPEC §5.6a): inside [σ_lo, σ_hi] the generalizing denoiser's ε exactly,
 * outside the memorizing one's, with routing counts; invalid bands, shapes, spaces and unmapped
 * conditions rejected with errors that name the argument.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { CondRef, Denoiser, NoiseLevel } from './denoiser.ts';
import { makeEmpiricalDenoiser } from './empirical.ts';
import { makeGaussianDenoiser } from './gaussian.ts';
import { swapDenoiser } from './swap.ts';
import { disposeAll } from '../graph/session.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { mulberry32, normals } from '../../test/helpers/random.ts';

afterAll(async () => {
  await disposeAll();
});

const abOf = (sigma: number): number => 1 / (1 + sigma * sigma);

/** A denoiser returning the constant `value`, recording the conditions it was called with. */
function constant(name: string, value: number, shape: readonly number[] = [4], ids: readonly string[] = []): Denoiser & { calls: CondRef[][]; disposed: number } {
  const calls: CondRef[][] = [];
  const self = {
    name,
    space: 'pixel' as const,
    shape,
    conditions: ids.map((id) => ({ id, kind: 'class' as const, label: id })),
    calls,
    disposed: 0,
    predict: async (xt: Tensor, _level: NoiseLevel, cond: readonly CondRef[]): Promise<Tensor> => {
      calls.push([...cond]);
      return { dims: [...xt.dims], data: new Float32Array(xt.data.length).fill(value) };
    },
    dispose: async (): Promise<void> => {
      self.disposed++;
    },
  };
  return self;
}

describe('swapDenoiser (SPEC §5.6a)', () => {
  it('matches the generalizing denoiser exactly inside the band and the memorizing one outside (real denoisers)', async () => {
    const rng = mulberry32(3);
    const n = 40;
    const d = 6;
    const X: Tensor = { dims: [n, d], data: Float32Array.from({ length: n * d }, () => 2 * rng() - 1) };
    const emp = await makeEmpiricalDenoiser(X);
    const lin = await makeGaussianDenoiser(X, { cache: false });
    const sw = swapDenoiser(emp, lin, { sigmaLo: 0.2, sigmaHi: 2 }, { disposeInner: false });
    expect(sw.shape).toEqual([d]);
    const B = 5;
    const xt: Tensor = { dims: [B, d], data: normals(rng, B * d) };
    const cond = new Array<CondRef>(B).fill(null);
    for (const [sigma, inside] of [[0.05, false], [0.7, true], [1.5, true], [9, false]] as const) {
      const level = { t: 0, alphaBar: abOf(sigma) };
      const got = await sw.predict(xt, level, cond);
      const want = await (inside ? lin : emp).predict(xt, level, cond);
      const other = await (inside ? emp : lin).predict(xt, level, cond);
      expect(Array.from(got.data), `σ=${sigma}`).toEqual(Array.from(want.data));
      // the two denoisers really differ here, so the check above can fail
      expect(Math.max(...Array.from(got.data, (v, i) => Math.abs(v - other.data[i]!))), `σ=${sigma}`).toBeGreaterThan(1e-5);
    }
    expect(sw.counts).toEqual({ memorizing: { calls: 2, rows: 2 * B }, generalizing: { calls: 2, rows: 2 * B } });
  });

  it('routes by σ = √((1−ᾱ)/ᾱ), inclusive at both edges, and counts calls and rows', async () => {
    const mem = constant('mem', 1);
    const gen = constant('gen', 2);
    const sw = swapDenoiser(mem, gen, { sigmaLo: 0.5, sigmaHi: 4 });
    expect(sw.inBand(0.5)).toBe(true);
    expect(sw.inBand(4)).toBe(true);
    expect(sw.inBand(0.4999999)).toBe(false);
    expect(sw.inBand(4.0000001)).toBe(false);
    const xt: Tensor = { dims: [3, 4], data: new Float32Array(12) };
    const c = [null, null, null];
    const value = async (sigma: number): Promise<number> => (await sw.predict(xt, { t: 0, alphaBar: abOf(sigma) }, c)).data[0]!;
    expect(await value(0.1)).toBe(1);
    expect(await value(0.6)).toBe(2);
    expect(await value(3.9)).toBe(2);
    expect(await value(50)).toBe(1);
    // ᾱ = 1 (σ = 0) is outside any band with σ_lo > 0
    expect((await sw.predict(xt, { t: 0, alphaBar: 1 }, c)).data[0]).toBe(1);
    expect(sw.counts).toEqual({ memorizing: { calls: 3, rows: 9 }, generalizing: { calls: 2, rows: 6 } });
    sw.resetCounts();
    expect(sw.counts).toEqual({ memorizing: { calls: 0, rows: 0 }, generalizing: { calls: 0, rows: 0 } });
    // an open-ended band
    const up = swapDenoiser(mem, gen, { sigmaLo: 1, sigmaHi: Infinity });
    expect((await up.predict(xt, { t: 0, alphaBar: abOf(1e4) }, c)).data[0]).toBe(2);
    await expect(sw.predict(xt, { t: 0, alphaBar: 0 }, c)).rejects.toThrow(/ᾱ must be in \(0, 1\]/);
  });

  it('rejects an invalid band, naming the field and what was expected', () => {
    const a = constant('a', 1);
    const b = constant('b', 2);
    expect(() => swapDenoiser(a, b, { sigmaLo: 3, sigmaHi: 1 })).toThrow(/band\.sigmaHi must be a number > band\.sigmaLo = 3.*got 1/);
    expect(() => swapDenoiser(a, b, { sigmaLo: 1, sigmaHi: 1 })).toThrow(/band\.sigmaHi must be a number > band\.sigmaLo/);
    expect(() => swapDenoiser(a, b, { sigmaLo: -1, sigmaHi: 1 })).toThrow(/band\.sigmaLo must be a finite number ≥ 0, got -1/);
    expect(() => swapDenoiser(a, b, { sigmaLo: NaN, sigmaHi: 1 })).toThrow(/band\.sigmaLo/);
    expect(() => swapDenoiser(a, b, { sigmaLo: 0, sigmaHi: NaN })).toThrow(/band\.sigmaHi/);
    expect(() => swapDenoiser(a, b, null as never)).toThrow(/band must be \{ sigmaLo, sigmaHi \}/);
  });

  it('rejects denoisers of different shapes or spaces', () => {
    const a = constant('a', 1, [1, 28, 28]);
    expect(() => swapDenoiser(a, constant('b', 2, [1, 32, 32]), { sigmaLo: 0, sigmaHi: 1 })).toThrow(/generalizing denoiser 'b' has shape \[1, 32, 32\], expected .*'a''s shape \[1, 28, 28\]/);
    const lat = { ...constant('c', 2, [1, 28, 28]), space: 'latent' as const };
    expect(() => swapDenoiser(a, lat, { sigmaLo: 0, sigmaHi: 1 })).toThrow(/latent space, expected .*pixel space/);
  });

  it('maps conditions by id, or by mapCond, and names an unmapped one', async () => {
    const mem = constant('mem', 1, [4], ['class:0', 'class:1', 'caption:7']);
    const gen = constant('gen', 2, [4], ['class:1', 'class:0']);
    const sw = swapDenoiser(mem, gen, { sigmaLo: 0, sigmaHi: 10 });
    expect(sw.conditions.map((c) => c.id)).toEqual(['class:0', 'class:1', 'caption:7']);
    const xt: Tensor = { dims: [3, 4], data: new Float32Array(12) };
    await sw.predict(xt, { t: 0, alphaBar: abOf(1) }, [0, 1, null]);
    expect(gen.calls[0]).toEqual([1, 0, null]);
    await expect(sw.predict(xt, { t: 0, alphaBar: abOf(1) }, [2, 0, null])).rejects.toThrow(/condition 2 \('caption:7'\) of 'mem' has no counterpart in the generalizing denoiser 'gen'/);
    // outside the band the memorizing denoiser gets the conditions unchanged
    await sw.predict(xt, { t: 0, alphaBar: abOf(20) }, [2, 0, null]);
    expect(mem.calls[0]).toEqual([2, 0, null]);
    const uncond = swapDenoiser(mem, constant('lin', 3), { sigmaLo: 0, sigmaHi: 10 }, { mapCond: () => null });
    expect((await uncond.predict(xt, { t: 0, alphaBar: abOf(1) }, [2, 0, null])).data[0]).toBe(3);
    await expect(sw.predict(xt, { t: 0, alphaBar: abOf(1) }, [5, 0, null])).rejects.toThrow(/condition index 5 is out of range/);
  });

  it('disposes both inner denoisers once (unless disposeInner is false)', async () => {
    const a = constant('a', 1);
    const b = constant('b', 2);
    await swapDenoiser(a, b, { sigmaLo: 0, sigmaHi: 1 }).dispose!();
    expect([a.disposed, b.disposed]).toEqual([1, 1]);
    await swapDenoiser(a, a, { sigmaLo: 0, sigmaHi: 1 }).dispose!();
    expect(a.disposed).toBe(2);
    expect(swapDenoiser(a, b, { sigmaLo: 0, sigmaHi: 1 }, { disposeInner: false }).dispose).toBeUndefined();
    expect(swapDenoiser(a, b, { sigmaLo: 0.1, sigmaHi: Infinity }).name).toBe('swap(a|b@[0.1,∞])');
  });
});
