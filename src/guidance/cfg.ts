/**
 * Classifier-free guidance as a combinator over any denoiser (SPEC §0, §1):
 * ε̂ = ε_u + s·(ε_c − ε_u) with ε_u = ε_θ(x_t, t, e_∅), ε_c = ε_θ(x_t, t, e), evaluated in one
 * batched call `[x_t; x_t]` with conditions `[e; e_∅]`. The scale s comes per trajectory from a
 * `GuidanceSchedule` fed with that trajectory's history of d_t = ‖ε_c − ε_u‖².
 */
import type { Denoiser, CondRef, NoiseLevel } from '../denoisers/denoiser.ts';
import { checkConds } from '../denoisers/denoiser.ts';
import type { EpsModel, ModelOutput, StepInfo } from '../samplers/types.ts';
import { type Tensor, batchSize, rowSize, concatBatch, sliceBatch, assertFinite } from '../tensor/tensor.ts';
import type { GuidanceSchedule } from './schedules.ts';

/** A guided model for one sampling run, with the per-trajectory record of where schedules switched. */
export interface GuidedModel {
  /** The model to hand to a sampler. It keeps the d_t history of each batch row: use it for one run. */
  readonly model: EpsModel;
  /** Per batch row: the first step that used the schedule's final scale λ after a different one (the transition point), or null. */
  switchSteps(): (number | null)[];
}

/** Options of `cfg`. */
export interface CfgOptions {
  /** The null condition e_∅ (default `null`, the denoiser's unconditional branch). */
  readonly uncond?: CondRef;
}

/**
 * Wrap `denoiser` with classifier-free guidance under `schedule` for a batch whose row b is
 * conditioned on `cond[b]` (Ho & Salimans 2022; schedules of Jain et al. 2025 Algorithm 1).
 */
export function cfg(denoiser: Denoiser, schedule: GuidanceSchedule, cond: readonly CondRef[], opts: CfgOptions = {}): GuidedModel {
  const uncond = opts.uncond ?? null;
  const histories: number[][] = cond.map(() => []);
  const switched: (number | null)[] = cond.map(() => null);
  const prevScale: (number | null)[] = cond.map(() => null);
  const model: EpsModel = async (xt: Tensor, info: StepInfo): Promise<ModelOutput> => {
    const b = batchSize(xt);
    checkConds(denoiser, cond, b, 'cfg cond');
    const both = await denoiser.predict(concatBatch([xt, xt]), levelOf(info), [...cond, ...cond.map(() => uncond)]);
    if (both.dims[0] !== 2 * b) throw new Error(`${denoiser.name}: returned batch ${both.dims[0]}, expected ${2 * b}`);
    assertFinite(`${denoiser.name} output at step ${info.step} (t=${info.t})`, both);
    const epsC = sliceBatch(both, 0, b);
    const epsU = sliceBatch(both, b, 2 * b);
    const r = rowSize(xt);
    const d = new Float64Array(b);
    const s = new Float64Array(b);
    const eps = new Float32Array(b * r);
    for (let k = 0; k < b; k++) {
      const off = k * r;
      let acc = 0;
      for (let i = 0; i < r; i++) {
        const g = epsC.data[off + i]! - epsU.data[off + i]!;
        acc += g * g;
      }
      d[k] = acc;
      if (info.evaluation === 1) {
        // a second-order correction within the step: the step's scale, no new history entry
        const sk = prevScale[k] ?? 1;
        s[k] = sk;
        for (let i = 0; i < r; i++) eps[off + i] = epsU.data[off + i]! + sk * (epsC.data[off + i]! - epsU.data[off + i]!);
        continue;
      }
      const hist = histories[k]!;
      hist.push(acc);
      const sk = schedule.scale({ step: info.step, numSteps: info.numSteps, t: info.t, numTrainTimesteps: info.numTrainTimesteps, dHistory: hist });
      s[k] = sk;
      if (schedule.switchesTo !== undefined && switched[k] === null && sk === schedule.switchesTo && prevScale[k] !== null && prevScale[k] !== sk) {
        switched[k] = info.step;
      }
      prevScale[k] = sk;
      for (let i = 0; i < r; i++) eps[off + i] = epsU.data[off + i]! + sk * (epsC.data[off + i]! - epsU.data[off + i]!);
    }
    return { eps: { dims: [...xt.dims], data: eps }, epsU: { dims: [...xt.dims], data: epsU.data.slice() }, epsC: { dims: [...xt.dims], data: epsC.data.slice() }, s, d };
  };
  return { model, switchSteps: () => [...switched] };
}

/** The denoiser's noise level for a sampler's call: t and ᾱ, and σ when a σ-sampler set it. */
function levelOf(info: StepInfo): NoiseLevel {
  return info.sigma === undefined ? { t: info.t, alphaBar: info.alphaBar } : { t: info.t, alphaBar: info.alphaBar, sigma: info.sigma };
}

/** A plain conditional (or unconditional) model without guidance: ε̂ = ε_θ(x_t, t, e). */
export function unguided(denoiser: Denoiser, cond: readonly CondRef[]): EpsModel {
  return async (xt, info) => {
    checkConds(denoiser, cond, batchSize(xt), 'cond');
    const eps = await denoiser.predict(xt, levelOf(info), cond);
    assertFinite(`${denoiser.name} output at step ${info.step} (t=${info.t})`, eps);
    return { eps };
  };
}
