/**
 * Conversions between the ε, x0 and v parameterisations (SPEC §0), in one place.
 * x̂0 = (x_t − √(1−ᾱ)·ε̂)/√ᾱ;  ε = (x_t − √ᾱ·x0)/√(1−ᾱ);  v = √ᾱ·ε − √(1−ᾱ)·x0 ⇒ ε = √ᾱ·v + √(1−ᾱ)·x_t.
 */
import type { Tensor } from '../tensor/tensor.ts';
import { axpby } from '../tensor/ops.ts';

/** Which quantity a model outputs (diffusers `prediction_type`). */
export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';

/** Clean estimate x̂0(t) = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t (SPEC §0). */
export function epsToX0(xt: Tensor, eps: Tensor, alphaBar: number): Tensor {
  const a = Math.sqrt(alphaBar);
  return axpby(1 / a, xt, -Math.sqrt(1 - alphaBar) / a, eps);
}

/** ε = (x_t − √ᾱ_t·x0)/√(1−ᾱ_t). */
export function x0ToEps(xt: Tensor, x0: Tensor, alphaBar: number): Tensor {
  const b = Math.sqrt(1 - alphaBar);
  return axpby(1 / b, xt, -Math.sqrt(alphaBar) / b, x0);
}

/** ε = √ᾱ_t·v + √(1−ᾱ_t)·x_t (v-prediction, Salimans & Ho 2022). */
export function vToEps(xt: Tensor, v: Tensor, alphaBar: number): Tensor {
  return axpby(Math.sqrt(alphaBar), v, Math.sqrt(1 - alphaBar), xt);
}

/** Convert a model output of the given prediction type to ε. */
export function toEps(type: PredictionType, xt: Tensor, out: Tensor, alphaBar: number): Tensor {
  switch (type) {
    case 'epsilon':
      return out;
    case 'v_prediction':
      return vToEps(xt, out, alphaBar);
    case 'sample':
      return x0ToEps(xt, out, alphaBar);
  }
}
