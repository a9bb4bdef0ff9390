import { describe, it, expect } from 'vitest';
import { cfg, unguided } from './cfg.ts';
import { constant, dtp } from './schedules.ts';
import type { Denoiser, CondRef, NoiseLevel } from '../denoisers/denoiser.ts';
import type { Tensor } from '../tensor/tensor.ts';

/** ε_θ(x, t, e) = k_e · x with k_∅ = 0.5 and k_c = 1 + c: a closed form for every quantity. */
function toy(calls: { n: number; batches: number[] }): Denoiser {
  return {
    name: 'toy',
    space: 'pixel',
    shape: [2],
    conditions: [{ id: 'class:0', kind: 'class', label: 'a' }, { id: 'class:1', kind: 'class', label: 'b' }],
    async predict(xt: Tensor, _l: NoiseLevel, cond: readonly CondRef[]) {
      calls.n++;
      calls.batches.push(xt.dims[0]!);
      const out = new Float32Array(xt.data.length);
      for (let b = 0; b < cond.length; b++) {
        const k = cond[b] === null ? 0.5 : 1 + cond[b]!;
        out[2 * b] = k * xt.data[2 * b]!;
        out[2 * b + 1] = k * xt.data[2 * b + 1]!;
      }
      return { dims: [...xt.dims], data: out };
    },
  };
}

const info = (step: number) => ({ step, numSteps: 3, t: 999 - step, alphaBar: 0.5, numTrainTimesteps: 1000 });

describe('cfg combinator', () => {
  it('ε̂ = ε_u + s(ε_c − ε_u) and d_t = ‖ε_c − ε_u‖², both branches in one batched call', async () => {
    const calls = { n: 0, batches: [] as number[] };
    const g = cfg(toy(calls), constant(7.5), [0, 1]);
    const x: Tensor = { dims: [2, 2], data: Float32Array.from([1, 2, 3, -1]) };
    const out = await g.model(x, info(0));
    expect(calls).toEqual({ n: 1, batches: [4] });
    // row 0: k_c = 1, k_u = .5 → ε̂ = (.5 + 7.5·.5)·x = 4.25 x; d = .25·‖x‖² = 1.25
    // row 1: k_c = 2 → ε̂ = (.5 + 7.5·1.5)·x = 11.75 x; d = 2.25·10 = 22.5
    expect(Array.from(out.eps.data)).toEqual([4.25, 8.5, 35.25, -11.75]);
    expect(Array.from(out.d!)).toEqual([1.25, 22.5]);
    expect(Array.from(out.s!)).toEqual([7.5, 7.5]);
    expect(Array.from(out.epsU!.data)).toEqual([0.5, 1, 1.5, -0.5]);
    expect(Array.from(out.epsC!.data)).toEqual([1, 2, 6, -2]);
  });

  it('a scale of 0 gives the unconditional prediction exactly', async () => {
    const g = cfg(toy({ n: 0, batches: [] }), constant(0), [1]);
    const out = await g.model({ dims: [1, 2], data: Float32Array.from([2, 4]) }, info(0));
    expect(Array.from(out.eps.data)).toEqual([1, 2]);
  });

  it('keeps a separate d_t history per row and reports each row’s switch step', async () => {
    // Row magnitudes follow ‖x‖², so feeding chosen inputs gives chosen d sequences.
    const g = cfg(toy({ n: 0, batches: [] }), dtp(7.5), [0, 0]);
    const seqA = [5, 4, 3, 6]; // local min at index 2 → switch at 3
    const seqB = [5, 4, 6, 7]; // local min at index 1 → switch at 2
    const scales: number[][] = [];
    for (let i = 0; i < 4; i++) {
      // d = 0.25 · x², x = (√(4d), 0)
      const x: Tensor = { dims: [2, 2], data: Float32Array.from([Math.sqrt(4 * seqA[i]!), 0, Math.sqrt(4 * seqB[i]!), 0]) };
      const out = await g.model(x, info(i));
      expect(out.d![0]).toBeCloseTo(seqA[i]!, 5);
      scales.push(Array.from(out.s!));
    }
    expect(scales).toEqual([[0, 0], [0, 0], [0, 7.5], [7.5, 7.5]]);
    expect(g.switchSteps()).toEqual([3, 2]);
  });

  it('a model returning NaN gives an error naming the model, step and t', async () => {
    const bad: Denoiser = { ...toy({ n: 0, batches: [] }), name: 'broken', predict: async (x) => ({ dims: [...x.dims], data: new Float32Array(x.data.length).fill(NaN) }) };
    await expect(cfg(bad, constant(7.5), [0]).model({ dims: [1, 2], data: new Float32Array(2) }, info(4))).rejects.toThrow(/broken output at step 4 \(t=995\)/);
    await expect(unguided(bad, [0])({ dims: [1, 2], data: new Float32Array(2) }, info(1))).rejects.toThrow(/broken output at step 1/);
  });

  it('rejects a condition index the denoiser does not have', async () => {
    await expect(cfg(toy({ n: 0, batches: [] }), constant(1), [5]).model({ dims: [1, 2], data: new Float32Array(2) }, info(0))).rejects.toThrow(/condition index 5 is out of range/);
  });
});
