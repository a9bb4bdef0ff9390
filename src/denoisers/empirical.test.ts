/**
 * The empirical optimal denoiser (SPEC §2.1, §5.1) against an independent float64 JS reference:
 * the direct softmax over −‖y−x_i‖²/(2σ²) without the GEMM expansion.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { type EmpiricalCondition, type EmpiricalPath, makeEmpiricalDenoiser } from './empirical.ts';
import type { CondRef } from './denoiser.ts';
import { disposeAll } from '../graph/session.ts';
import { mulberry32, normals } from '../../test/helpers/random.ts';

/** Reference D*(y;σ), weights, over `subset` in float64, directly from distances. */
function reference(X: Float32Array, d: number, subset: readonly number[], y: ArrayLike<number>, sigma: number) {
  const dist = subset.map((i) => {
    let s = 0;
    for (let j = 0; j < d; j++) s += (y[j]! - X[i * d + j]!) ** 2;
    return s;
  });
  const m = Math.min(...dist);
  const e = dist.map((v) => Math.exp(-(v - m) / (2 * sigma * sigma)));
  const Z = e.reduce((a, b) => a + b, 0);
  const w = e.map((v) => v / Z);
  const D = new Float64Array(d);
  subset.forEach((i, k) => {
    for (let j = 0; j < d; j++) D[j]! += w[k]! * X[i * d + j]!;
  });
  return { D, w, maxw: Math.max(...w), neff: 1 / w.reduce((a, b) => a + b * b, 0) };
}

const n = 60;
const shape = [3, 2, 2];
const d = 12;
const rng = mulberry32(42);
const X = new Float32Array(n * d);
for (let i = 0; i < X.length; i++) X[i] = rng() * 2 - 1;
// a duplicated image (memorization testbeds duplicate images): rows 7 and 8 are identical
X.set(X.subarray(7 * d, 8 * d), 8 * d);
const classOf = (i: number): number => i % 3;
const conditions: EmpiricalCondition[] = [0, 1, 2].map((k) => ({
  id: `class:${k}`,
  kind: 'class',
  label: `class ${k}`,
  indices: Array.from({ length: n }, (_, i) => i).filter((i) => classOf(i) === k),
}));
conditions.push({ id: 'caption:0', kind: 'caption', label: 'one image', targets: [5], indices: [5] });
const subsetOf = (c: CondRef): number[] => (c === null ? Array.from({ length: n }, (_, i) => i) : conditions[c]!.indices.slice());
const cond: CondRef[] = [null, 0, 1, 2, 3, null];
const B = cond.length;

afterAll(async () => {
  await disposeAll();
});

describe('empirical denoiser (SPEC §2.1)', async () => {
  const den = await makeEmpiricalDenoiser({ dims: [n, ...shape], data: X }, { conditions, exactBelow: 4 });
  const forced = Object.fromEntries(
    await Promise.all((['f32', 'f64', 'exact'] as const).map(async (p) => [p, await makeEmpiricalDenoiser({ dims: [n, ...shape], data: X }, { conditions, exactBelow: 4, path: p })])),
  ) as Record<Exclude<EmpiricalPath, 'auto'>, Awaited<ReturnType<typeof makeEmpiricalDenoiser>>>;

  it('declares its conditions without the index lists', () => {
    expect(den.conditions.map((c) => c.id)).toEqual(['class:0', 'class:1', 'class:2', 'caption:0']);
    expect(den.conditions[3]!.targets).toEqual([5]);
    expect('indices' in den.conditions[0]!).toBe(false);
    expect(den.shape).toEqual(shape);
  });

  // tolerance on D (|D − D_ref|, data in [−1, 1]): float64 paths 2e-6 (the float32 output), f32 path 1e-4
  const tol: Record<string, number> = { auto: 2e-6, f64: 2e-6, exact: 2e-6, f32: 1e-4 };
  for (const sigma of [0.15, 0.5, 1, 3]) {
    it(`ε and D match the float64 reference at σ = ${sigma} for every path (mixed batch)`, async () => {
      const alphaBar = 1 / (1 + sigma * sigma);
      const x0 = new Float32Array(B * d);
      // y near training images so that the posterior is neither one-hot nor flat
      cond.forEach((c, r) => {
        const s = subsetOf(c);
        const i = s[r % s.length]!;
        for (let j = 0; j < d; j++) x0[r * d + j] = X[i * d + j]! + 0.3 * sigma * (rng() - 0.5);
      });
      const z = normals(rng, B * d);
      const xt = new Float32Array(B * d);
      for (let i = 0; i < xt.length; i++) xt[i] = Math.sqrt(alphaBar) * x0[i]! + Math.sqrt(1 - alphaBar) * z[i]!;
      for (const [name, dn] of [['auto', den], ...Object.entries(forced)] as const) {
        const eps = await dn.predict({ dims: [B, ...shape], data: xt }, { t: 500, alphaBar }, cond);
        let errEps = 0;
        let errD = 0;
        for (let r = 0; r < B; r++) {
          const y = Array.from(xt.subarray(r * d, (r + 1) * d), (v) => v / Math.sqrt(alphaBar));
          const ref = reference(X, d, subsetOf(cond[r]!), y, sigma);
          for (let j = 0; j < d; j++) {
            const e = (xt[r * d + j]! - Math.sqrt(alphaBar) * ref.D[j]!) / Math.sqrt(1 - alphaBar);
            errEps = Math.max(errEps, Math.abs(eps.data[r * d + j]! - e));
            // D recovered from ε
            const Dm = (xt[r * d + j]! - Math.sqrt(1 - alphaBar) * eps.data[r * d + j]!) / Math.sqrt(alphaBar);
            errD = Math.max(errD, Math.abs(Dm - ref.D[j]!));
          }
        }
        expect(errD, `${name} D at σ=${sigma}`).toBeLessThan(tol[name]! * 2);
        expect(errEps, `${name} ε at σ=${sigma}`).toBeLessThan((tol[name]! * 2) / sigma + 1e-6);
      }
    });
  }

  it('auto picks f32 at large σ, f64 at medium σ and the exact path at tiny σ', async () => {
    const y = { dims: [1, ...shape], data: X.slice(0, d) };
    expect((await den.posterior(y, 100, [null])).path).toBe('f32');
    expect((await den.posterior(y, 0.05, [null])).path).toBe('f64');
    expect((await den.posterior(y, 1e-6, [null])).path).toBe('exact');
    expect((await den.posterior(y, 0, [null])).path).toBe('exact');
  });

  it('σ → 0 returns the nearest training image of the subset exactly', async () => {
    const y = new Float32Array(B * d);
    const nearestRef: number[] = [];
    cond.forEach((c, r) => {
      const s = subsetOf(c);
      const i = s[(3 * r + 1) % s.length]!;
      for (let j = 0; j < d; j++) y[r * d + j] = X[i * d + j]! + 0.01 * (rng() - 0.5);
      let best = -1;
      let bd = Infinity;
      for (const k of s) {
        let q = 0;
        for (let j = 0; j < d; j++) q += (y[r * d + j]! - X[k * d + j]!) ** 2;
        if (q < bd) [bd, best] = [q, k];
      }
      nearestRef.push(best);
    });
    for (const sigma of [0, 1e-7, 1e-4]) {
      for (const dn of [den, forced.f64]) {
        const p = await dn.posterior({ dims: [B, ...shape], data: y }, sigma, cond);
        for (let r = 0; r < B; r++) {
          expect(Array.from(p.denoised.data.subarray(r * d, (r + 1) * d))).toEqual(Array.from(X.subarray(nearestRef[r]! * d, (nearestRef[r]! + 1) * d)));
          expect(p.maxWeight[r]).toBeCloseTo(1, 12);
        }
      }
    }
  });

  it('σ → 0 between duplicated images splits the weight and returns the image', async () => {
    const y = { dims: [1, ...shape], data: Float32Array.from(X.subarray(7 * d, 8 * d), (v) => v + 1e-3) };
    const p = await den.posterior(y, 0, [null]);
    expect(Array.from(p.denoised.data)).toEqual(Array.from(X.subarray(7 * d, 8 * d)));
    expect(p.maxWeight[0]).toBeCloseTo(0.5, 12);
    expect(p.effectiveCount[0]).toBeCloseTo(2, 12);
  });

  it('σ → ∞ returns the mean of the subset', async () => {
    const y = { dims: [B, ...shape], data: normals(rng, B * d) };
    const p = await den.posterior(y, 1e6, cond);
    for (let r = 0; r < B; r++) {
      const s = subsetOf(cond[r]!);
      for (let j = 0; j < d; j++) {
        const m = s.reduce((a, i) => a + X[i * d + j]!, 0) / s.length;
        expect(Math.abs(p.denoised.data[r * d + j]! - m)).toBeLessThan(1e-6);
      }
      expect(p.effectiveCount[r]).toBeCloseTo(s.length, 3);
    }
  });

  it('posterior weights, max weight, effective count and argmax match the reference (SPEC §5.1)', async () => {
    for (const sigma of [0.3, 2, 1e-5]) {
      const y = new Float32Array(B * d);
      for (let i = 0; i < y.length; i++) y[i] = X[(i % d) + 11 * d]! + 0.2 * (rng() - 0.5);
      const p = await den.posterior({ dims: [B, ...shape], data: y }, sigma, cond, { weights: true });
      for (let r = 0; r < B; r++) {
        const s = subsetOf(cond[r]!);
        const ref = reference(X, d, s, y.subarray(r * d, (r + 1) * d), sigma);
        expect(Math.abs(p.maxWeight[r]! - ref.maxw)).toBeLessThan(1e-5);
        expect(Math.abs(p.effectiveCount[r]! - ref.neff) / ref.neff).toBeLessThan(1e-5);
        const W = p.weights!.subarray(r * n, (r + 1) * n);
        let sum = 0;
        for (let i = 0; i < n; i++) {
          const k = s.indexOf(i);
          expect(Math.abs(W[i]! - (k < 0 ? 0 : ref.w[k]!))).toBeLessThan(1e-5);
          sum += W[i]!;
        }
        expect(sum).toBeCloseTo(1, 5);
        const am = s[ref.w.indexOf(ref.maxw)]!;
        expect(ref.w[s.indexOf(p.argmax[r]!)]).toBeCloseTo(ref.w[s.indexOf(am)]!, 12);
      }
    }
  });

  it('nearest(k) gives the exact two nearest images and distances', async () => {
    const y = normals(rng, B * d);
    const cs = cond.map((c) => (c === 3 ? null : c));
    await expect(den.nearest({ dims: [B, ...shape], data: y }, cond, 2)).rejects.toThrow(/subset has only 1 images/);
    const r = await den.nearest({ dims: [B, ...shape], data: y }, cs, 2);
    for (let q = 0; q < B; q++) {
      const s = subsetOf(cs[q]!);
      const ds = s
        .map((i) => {
          let v = 0;
          for (let j = 0; j < d; j++) v += (y[q * d + j]! - X[i * d + j]!) ** 2;
          return { i, v };
        })
        .sort((a, b) => a.v - b.v || a.i - b.i);
      expect([r.indices[2 * q], r.indices[2 * q + 1]]).toEqual([ds[0]!.i, ds[1]!.i]);
      expect(r.sqDist[2 * q]).toBeCloseTo(ds[0]!.v, 12);
    }
  });

  it('rejects bad conditions, shapes, ᾱ and non-finite input with clear errors', async () => {
    const xt = { dims: [1, ...shape], data: new Float32Array(d) };
    await expect(den.predict(xt, { t: 1, alphaBar: 0.5 }, [9])).rejects.toThrow(/condition index 9 is out of range/);
    await expect(den.predict({ dims: [1, 12], data: new Float32Array(d) }, { t: 1, alphaBar: 0.5 }, [null])).rejects.toThrow(/x_t must be \[B, 3, 2, 2\]/);
    await expect(den.predict(xt, { t: 1, alphaBar: 1 }, [null])).rejects.toThrow(/ᾱ must be in \(0, 1\)/);
    const bad = new Float32Array(d);
    bad[3] = NaN;
    await expect(den.predict({ dims: [1, ...shape], data: bad }, { t: 1, alphaBar: 0.5 }, [null])).rejects.toThrow(/non-finite value NaN at flat index 3/);
    await expect(makeEmpiricalDenoiser({ dims: [n, ...shape], data: X }, { conditions: [{ id: 'x', kind: 'class', label: 'x', indices: [n] }] })).rejects.toThrow(/index 60 outside/);
  });
});

describe('empirical denoiser against the numpy float64 reference (scripts/reference/denoiser_empirical.py)', () => {
  it('D, max weight and effective count match to 2e-6 / 1e-5 relative', async () => {
    const fx = JSON.parse(readFileSync(new URL('../../test/fixtures/denoiser_empirical.json', import.meta.url), 'utf8')) as {
      n: number;
      d: number;
      X: number[][];
      Y: number[][];
      subset: number[];
      conds: (number | null)[];
      cases: { sigma: number; D: number[][]; maxWeight: number[]; effectiveCount: number[] }[];
    };
    const den = await makeEmpiricalDenoiser(
      { dims: [fx.n, fx.d], data: Float32Array.from(fx.X.flat()) },
      { conditions: [{ id: 'even', kind: 'class', label: 'even', indices: fx.subset }], exactBelow: 0 },
    );
    const y = { dims: [fx.Y.length, fx.d], data: Float32Array.from(fx.Y.flat()) };
    for (const c of fx.cases) {
      const p = await den.posterior(y, c.sigma, fx.conds);
      c.D.forEach((row, b) => row.forEach((v, j) => expect(Math.abs(p.denoised.data[b * fx.d + j]! - v), `σ=${c.sigma}`).toBeLessThan(2e-6)));
      c.maxWeight.forEach((v, b) => expect(Math.abs(p.maxWeight[b]! - v)).toBeLessThan(1e-5));
      c.effectiveCount.forEach((v, b) => expect(Math.abs(p.effectiveCount[b]! - v) / v).toBeLessThan(1e-5));
    }
    await den.dispose();
  });
});

describe('empirical denoiser at realistic size (smoke)', () => {
  it('12000 × 784: f32 and f64 paths match the float64 reference on 3 rows', async () => {
    const N = 12000;
    const D = 784;
    const r2 = mulberry32(7);
    // structured data: 20 prototypes plus noise, values in [−1, 1] like images
    const protos = Array.from({ length: 20 }, () => Float32Array.from({ length: D }, () => r2() * 2 - 1));
    const Xb = new Float32Array(N * D);
    for (let i = 0; i < N; i++) {
      const p = protos[i % 20]!;
      for (let j = 0; j < D; j++) Xb[i * D + j] = Math.max(-1, Math.min(1, p[j]! + 0.3 * (r2() - 0.5)));
    }
    const den = await makeEmpiricalDenoiser({ dims: [N, 1, 28, 28], data: Xb });
    const rows = 3;
    for (const [sigma, path] of [
      [8, 'f32'],
      [0.6, 'f64'],
    ] as const) {
      const y = new Float32Array(rows * D);
      for (let r = 0; r < rows; r++) for (let j = 0; j < D; j++) y[r * D + j] = Xb[(100 * r + 3) * D + j]! + sigma * (r2() - 0.5);
      const p = await den.posterior({ dims: [rows, 1, 28, 28], data: y }, sigma, [null, null, null]);
      expect(p.path).toBe(path);
      const all = Array.from({ length: N }, (_, i) => i);
      let err = 0;
      for (let r = 0; r < rows; r++) {
        const ref = reference(Xb, D, all, y.subarray(r * D, (r + 1) * D), sigma);
        for (let j = 0; j < D; j++) err = Math.max(err, Math.abs(p.denoised.data[r * D + j]! - ref.D[j]!));
      }
      // both paths: float32 weights·X over 12000 terms ⇒ |ΔD| ≲ u·√n ≈ 7e-6; the f32 path adds its
      // logit error (bound 1e-4 ⇒ ≲ 2e-4·max|x_i − D|, measured ≈ 1e-6)
      expect(err, `σ=${sigma}`).toBeLessThan(path === 'f32' ? 2e-5 : 1e-5);
    }
    await den.dispose();
  });
});
