/**
 * Webster (2023), "A Reproducible Extraction of Training Images from Diffusion Models": the
 * one-step white-box score ("denoising confidence"). Their attack samples ONE step of k-diffusion's
 * Heun from σ_max to 0 with CFG and scores mean((z₀ − x₀)²) between the initial noise z₀ = σ·x_T and
 * the one-step result x₀ = z₀ − σ·ε̂ (the last Heun step to σ = 0 is an Euler step to the
 * denoised image), i.e.
 *
 *     score = σ² · mean(ε̂²),   ε̂ = ε_u + λ (ε_c − ε_u),   σ = √((1 − ᾱ)/ᾱ) at the first timestep,
 *
 * averaged here over the seeds (their code: one score per caption and seed). Memorized prompts
 * give a confident, large guided prediction: higher = more likely memorized. memscope takes it at
 * the detection run's first timestep (Webster: σ_max, t = T − 1; the same for most samplers).
 */
import type { CondRef, Denoiser, NoiseLevel } from '../denoisers/denoiser.ts';
import { concatBatch, type Tensor } from '../tensor/tensor.ts';

/**
 * Webster's one-step score of condition `cond` on the seeds' x_T `[N, ...]` at `level`, guidance
 * scale `lambda`: the mean over the N seeds of σ²·mean(ε̂²) (see the module note). One batched
 * denoiser call of 2N rows (uncond, cond).
 */
export async function websterOneStepScore(d: Pick<Denoiser, 'predict'>, cond: number, xT: Tensor, level: NoiseLevel, lambda: number): Promise<number> {
  const N = xT.dims[0]!;
  const rows: CondRef[] = [...new Array<CondRef>(N).fill(null), ...new Array<CondRef>(N).fill(cond)];
  const eps = await d.predict(concatBatch([xT, xT]), level, rows);
  const per = eps.data.length / (2 * N);
  const sigma2 = (1 - level.alphaBar) / level.alphaBar;
  let total = 0;
  for (let n = 0; n < N; n++) {
    let ss = 0;
    const u = n * per;
    const c = (N + n) * per;
    for (let k = 0; k < per; k++) {
      const eu = eps.data[u + k]!;
      const g = eu + lambda * (eps.data[c + k]! - eu);
      ss += g * g;
    }
    total += (sigma2 * ss) / per;
  }
  return total / N;
}
