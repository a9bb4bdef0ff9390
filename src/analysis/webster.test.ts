import { describe, expect, it } from 'vitest';
import type { CondRef, Denoiser, NoiseLevel } from '../denoisers/denoiser.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { websterOneStepScore } from './webster.ts';

describe("Webster's one-step white-box score", () => {
  it('equals σ²·(a + λ(b − a))²·mean(x²) for a denoiser with ε_u = a·x and ε_c = b·x (closed form), averaged over the seeds', async () => {
    const a = 0.3;
    const b = 0.9;
    const d: Pick<Denoiser, 'predict'> = {
      predict: async (xt: Tensor, _level: NoiseLevel, cond: readonly CondRef[]) => {
        const per = xt.data.length / xt.dims[0]!;
        return { dims: xt.dims, data: xt.data.map((v, i) => (cond[Math.floor(i / per)] === null ? a : b) * v) };
      },
    };
    const xT: Tensor = { dims: [2, 3], data: Float32Array.from([1, -2, 0.5, 3, 0, -1]) };
    const level = { t: 999, alphaBar: 0.0047 };
    const lambda = 7.5;
    const sigma2 = (1 - level.alphaBar) / level.alphaBar;
    const g = a + lambda * (b - a);
    const ms = (r: number[]): number => r.reduce((s, v) => s + v * v, 0) / r.length;
    const want = (sigma2 * g * g * (ms([1, -2, 0.5]) + ms([3, 0, -1]))) / 2;
    // ε̂ is float32: relative 1e-6
    expect(Math.abs((await websterOneStepScore(d, 0, xT, level, lambda)) - want) / want).toBeLessThan(1e-6);
  });
});
