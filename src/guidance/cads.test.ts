import { describe, expect, it } from 'vitest';
import { CADS_DEFAULTS, cadsCondition, cadsGamma } from './cads.ts';

const y = Float32Array.from({ length: 2 * 5 * 4 }, (_, i) => Math.sin(i * 1.7) * 2 + 0.3);

function stats(v: ArrayLike<number>): { mean: number; std: number } {
  const n = v.length;
  const m = Array.from(v).reduce((a, b) => a + b, 0) / n;
  return { mean: m, std: Math.sqrt(Array.from(v).reduce((a, b) => a + (b - m) ** 2, 0) / (n - 1)) };
}

describe('CADS (Sadat et al.; Jain et al.’s settings)', () => {
  it('γ(t): 1 up to τ₁ = 500, linear to 0 at τ₂ = 800, 0 above', () => {
    expect([0, 500, 575, 650, 800, 801, 999].map((t) => cadsGamma(t, 500, 800))).toEqual([1, 1, 0.75, 0.5, 0, 0, 0]);
  });
  it('leaves the conditioning alone for t ≤ τ₁; with s = 0 and ψ = 1 the rescale undoes the √γ shrink (identity) at any t', () => {
    expect(cadsCondition(y, 400)).toBe(y);
    for (const t of [600, 750, 799]) {
      const out = cadsCondition(y, t, { ...CADS_DEFAULTS, s: 0 });
      for (let i = 0; i < y.length; i++) expect(out[i]).toBeCloseTo(y[i]!, 5);
    }
  });
  it('with ψ = 1 the annealed conditioning has the mean and std of the original; with ψ = 0 it is √γ·y + s·√(1−γ)·n', () => {
    const o = { ...CADS_DEFAULTS, s: 0.8 };
    const out = cadsCondition(y, 900, o); // γ = 0: pure noise, rescaled
    const a = stats(y);
    const b = stats(out);
    expect(b.mean).toBeCloseTo(a.mean, 5);
    expect(b.std).toBeCloseTo(a.std, 5);
    // ψ = 0 at γ = 0.5 (t = 650): ŷ itself; recover the noise and check it is standard normal-ish and reproducible
    const raw = cadsCondition(y, 650, { ...o, psi: 0 });
    const n = Array.from(raw, (v, i) => (v - Math.sqrt(0.5) * y[i]!) / (0.8 * Math.sqrt(0.5)));
    expect(Math.abs(stats(n).mean)).toBeLessThan(0.5);
    expect(cadsCondition(y, 650, { ...o, psi: 0 })).toEqual(raw); // same (seed, t): same noise
    expect(cadsCondition(y, 651, { ...o, psi: 0 })).not.toEqual(raw);
  });
});
