/** What the sampler reference tests share with the Python fixtures (scripts/reference/schedulers*.py). */
import type { EpsModel } from './types.ts';

/** The analytic model of scripts/reference/schedulers.py: ε = float32(tanh(0.3x + 0.001t)·0.9 + 0.1x). */
export const analytic: EpsModel = async (xt, info) => {
  const o = new Float32Array(xt.data.length);
  for (let i = 0; i < o.length; i++) {
    const x = xt.data[i]!;
    o[i] = Math.tanh(0.3 * x + 0.001 * info.t) * 0.9 + 0.1 * x;
  }
  return { eps: { dims: [...xt.dims], data: o } };
};

/** max|a − b| / max|b| (relative to the tensor's scale). */
export function relErr(a: ArrayLike<number>, b: readonly number[]): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den === 0 ? num : num / den;
}
