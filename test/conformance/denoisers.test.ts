/**
 * Denoiser conformance (SPEC §2, §6): one suite, run on every backend of `backends.ts` — the
 * contract of `Denoiser.predict` (dims, finiteness, determinism, batch and condition-mixing
 * consistency, exact recovery of single-point data, clear errors for bad input).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CondRef, Denoiser } from '../../src/denoisers/denoiser.ts';
import { tensor, type Tensor } from '../../src/tensor/tensor.ts';
import {
  ALPHA_BARS,
  BACKEND_NAMES,
  type Backend,
  D,
  SHAPE,
  cacheFiles,
  disposeBackends,
  getBackend,
  getOnnxTruth,
  level,
  maxAbsDiff,
  noisyBatch,
  relDiff,
} from './backends.ts';

/** Training timesteps the suite evaluates at (σ from ≈ 14.6 down to ≈ 0.04). */
const LEVELS = [999, 600, 250, 100, 50, 1] as const;

afterAll(async () => {
  await disposeBackends();
});

function rows(t: Tensor, idx: readonly number[]): Tensor {
  const out = new Float32Array(idx.length * D);
  idx.forEach((r, i) => out.set(t.data.subarray(r * D, (r + 1) * D), i * D));
  return tensor([idx.length, ...SHAPE], out);
}

function x0From(xt: Tensor, eps: Tensor, alphaBar: number): Float64Array {
  const sa = Math.sqrt(alphaBar);
  const sb = Math.sqrt(1 - alphaBar);
  return Float64Array.from(xt.data, (v, i) => (v - sb * eps.data[i]!) / sa);
}

describe.each(BACKEND_NAMES)('denoiser conformance: %s', (name) => {
  let b: Backend;
  let den: Denoiser;
  beforeAll(async () => {
    b = await getBackend(name);
    den = b.denoiser;
  });

  it('declares its per-sample shape, a space, and its conditions (unique ids)', () => {
    expect(den.shape).toEqual(SHAPE);
    expect(['pixel', 'latent']).toContain(den.space);
    expect(den.name.length).toBeGreaterThan(0);
    expect(den.conditions.length).toBe(b.numConditions);
    expect(new Set(den.conditions.map((c) => c.id)).size).toBe(den.conditions.length);
    for (const c of den.conditions) expect(['class', 'caption', 'text', 'embedding']).toContain(c.kind);
  });

  it('returns a new tensor with the dims of x_t and leaves x_t untouched', async () => {
    for (const t of LEVELS) {
      const xt = noisyBatch(b, 3, ALPHA_BARS[t]!, t);
      const before = xt.data.slice();
      const eps = await den.predict(xt, level(t), [b.conds[0] ?? null, b.conds[b.conds.length - 1] ?? null, null]);
      expect(eps.dims).toEqual([3, ...SHAPE]);
      expect(eps.data).toBeInstanceOf(Float32Array);
      expect(eps.data.length).toBe(3 * D);
      expect(eps.data).not.toBe(xt.data);
      expect(maxAbsDiff(xt.data, before)).toBe(0);
    }
  });

  it('an empty batch gives an empty result of dims [0, ...shape]', async () => {
    const eps = await den.predict(tensor([0, ...SHAPE]), level(500), []);
    expect(eps.dims).toEqual([0, ...SHAPE]);
    expect(eps.data.length).toBe(0);
  });

  it('outputs are finite at every level and for every condition', async () => {
    for (const t of LEVELS) {
      const xt = noisyBatch(b, 2 * b.conds.length, ALPHA_BARS[t]!, 100 + t, true);
      const cond = Array.from({ length: 2 * b.conds.length }, (_, r) => b.conds[r % b.conds.length] ?? null);
      const eps = await den.predict(xt, level(t), cond);
      const bad = eps.data.findIndex((v) => !Number.isFinite(v));
      expect(bad, `t=${t}: first non-finite index`).toBe(-1);
    }
  });

  it('is deterministic: the same call twice gives identical bits, and a later call does not overwrite an earlier result', async () => {
    for (const t of [999, 100, 1]) {
      const lv = level(t);
      const cond = Array.from({ length: 4 }, (_, r) => b.conds[r % b.conds.length] ?? null);
      const xt = noisyBatch(b, 4, lv.alphaBar, 7 + t);
      const a = await den.predict(xt, lv, cond);
      const keep = a.data.slice();
      const a2 = await den.predict(xt, lv, cond);
      expect(maxAbsDiff(a2.data, keep)).toBe(0);
      const other = await den.predict(noisyBatch(b, 4, lv.alphaBar, 99 + t), lv, cond);
      expect(other.data).not.toBe(a.data);
      expect(maxAbsDiff(a.data, keep), 'first result changed by later calls').toBe(0);
    }
  });

  it('batch consistency: predicting rows one at a time equals predicting them in one batch (1e-5 rel)', async () => {
    for (const t of LEVELS) {
      const lv = level(t);
      for (const c of b.conds) {
        // the last row is an outlier (×3, ×15 at t = 100): the empirical denoiser picks its
        // f32/f64/exact path from the largest row of a chunk, so the batch may take another path
        const xt = noisyBatch(b, 5, lv.alphaBar, 200 + t, true);
        if (t === 100) for (let j = 4 * D; j < 5 * D; j++) xt.data[j]! *= 5;
        const all = await den.predict(xt, lv, new Array<CondRef>(5).fill(c));
        for (let r = 0; r < 5; r++) {
          const one = await den.predict(rows(xt, [r]), lv, [c]);
          expect(relDiff(all.data.subarray(r * D, (r + 1) * D), one.data), `t=${t} cond=${c} row ${r}`).toBeLessThan(1e-5);
        }
      }
    }
  });

  it('condition mixing: a batch mixing conditions equals the per-condition batches (1e-5 rel)', async () => {
    const k = b.conds.length;
    const n = 3 * k;
    // a deterministic shuffle of the conditions over the rows
    const cond = Array.from({ length: n }, (_, r) => b.conds[(r * 5 + 1) % k] ?? null);
    for (const t of LEVELS) {
      const lv = level(t);
      const xt = noisyBatch(b, n, lv.alphaBar, 300 + t);
      const mixed = await den.predict(xt, lv, cond);
      for (const c of b.conds) {
        const idx = cond.flatMap((cc, r) => (cc === c ? [r] : []));
        expect(idx.length).toBeGreaterThan(0);
        const alone = await den.predict(rows(xt, idx), lv, idx.map(() => c));
        idx.forEach((r, i) => {
          expect(relDiff(mixed.data.subarray(r * D, (r + 1) * D), alone.data.subarray(i * D, (i + 1) * D)), `t=${t} cond=${c} row ${r}`).toBeLessThan(1e-5);
        });
      }
      // and the conditions matter: at high noise, different conditions give different ε for one x_t
      // (at low noise two subsets can share the nearest image)
      if (k > 1 && t >= 600) {
        const same = noisyBatch(b, 1, lv.alphaBar, 400 + t);
        const rep = tensor([k, ...SHAPE], Float32Array.from({ length: k * D }, (_, i) => same.data[i % D]!));
        const e = await den.predict(rep, lv, b.conds);
        expect(maxAbsDiff(e.data.subarray(0, D), e.data.subarray(D, 2 * D)), `t=${t}: null vs ${b.conds[1]}`).toBeGreaterThan(1e-4);
      }
    }
  });

  it('x̂0 = (x_t − √(1−ᾱ)·ε)/√ᾱ recovers the training point when the data of a condition is one point', async () => {
    expect(b.singlePoints.length).toBeGreaterThan(0);
    for (const sp of b.singlePoints) {
      for (const t of [999, 500, 100, 10, 1]) {
        const lv = level(t);
        const xt = noisyBatch(b, 3, lv.alphaBar, 500 + t, true);
        const eps = await sp.denoiser.predict(xt, lv, [sp.cond, sp.cond, sp.cond]);
        const x0 = x0From(xt, eps, lv.alphaBar);
        for (let r = 0; r < 3; r++) {
          expect(maxAbsDiff(x0.subarray(r * D, (r + 1) * D), sp.x), `${sp.label} t=${t} row ${r}`).toBeLessThan(2e-5);
        }
      }
    }
  });

  it('a NaN or ±Infinity in x_t throws an error naming the non-finite value', async () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const xt = noisyBatch(b, 3, ALPHA_BARS[500]!, 600);
      xt.data[D + 5] = bad;
      await expect(den.predict(xt, level(500), [null, null, null]), `value ${bad}`).rejects.toThrow(/non-finite/);
    }
  });

  it('a wrongly shaped x_t throws an error naming the expected shape', async () => {
    for (const dims of [[2, 16], [2, 4, 4, 1], [2, 1, 4, 5], [1, 4, 4], [2, 1, 1, 4, 4]]) {
      const xt = tensor(dims, new Float32Array(dims.reduce((p, q) => p * q, 1)));
      await expect(den.predict(xt, level(500), [null, null]), `dims [${dims.join(', ')}]`).rejects.toThrow(/\[B, 1, 4, 4\]/);
    }
  });

  it('a condition list of the wrong length throws', async () => {
    const xt = noisyBatch(b, 2, ALPHA_BARS[500]!, 700);
    await expect(den.predict(xt, level(500), [null])).rejects.toThrow(/expected 2 condition entries/);
    await expect(den.predict(xt, level(500), [null, null, null])).rejects.toThrow(/expected 2 condition entries/);
  });

  it('an invalid condition index throws (out of range, negative, fractional)', async () => {
    const xt = noisyBatch(b, 2, ALPHA_BARS[500]!, 800);
    for (const c of [den.conditions.length, den.conditions.length + 7, -1, 0.5]) {
      await expect(den.predict(xt, level(500), [null, c]), `cond ${c}`).rejects.toThrow(/out of range/);
    }
  });

  it('noise level: ᾱ ∉ (0, 1) throws where ε is computed from ᾱ; the ONNX model reads t only', async () => {
    const xt = noisyBatch(b, 2, ALPHA_BARS[500]!, 900);
    if (b.usesAlphaBar) {
      for (const a of [0, 1, -0.5, 1.5, NaN]) {
        await expect(den.predict(xt, { t: 500, alphaBar: a }, [null, null]), `ᾱ = ${a}`).rejects.toThrow(/ᾱ must be in \(0, 1\)/);
      }
    } else {
      // an ε-predicting network gets the timestep, not ᾱ: the ᾱ of the level must not matter
      const ref = await den.predict(xt, level(500), [null, null]);
      const other = await den.predict(xt, { t: 500, alphaBar: 0.123 }, [null, null]);
      expect(maxAbsDiff(ref.data, other.data)).toBe(0);
      // but the timestep does
      const t2 = await den.predict(xt, level(100), [null, null]);
      expect(maxAbsDiff(ref.data, t2.data)).toBeGreaterThan(1e-3);
    }
  });
});

describe('backend set-up', () => {
  it('the Gaussian / mixture / analytic eigendecompositions were cached under MEMSCOPE_CACHE (a temp dir)', async () => {
    await getBackend('gaussian');
    await getBackend('analytic');
    expect(process.env['MEMSCOPE_CACHE']).toMatch(/memscope-conf-cache-/);
    expect(cacheFiles().length).toBeGreaterThanOrEqual(2);
  });

  it('the ONNX backend equals its closed form: row i → class label i+1, null → label 0 (1e-5 rel)', async () => {
    const b = await getBackend('onnx');
    const { means, vars } = getOnnxTruth();
    const cond: CondRef[] = [null, 0, 1, 2, 2, null, 1, 0];
    for (const t of LEVELS) {
      const a = ALPHA_BARS[t]!;
      const xt = noisyBatch(b, cond.length, a, 1000 + t);
      const eps = await b.denoiser.predict(xt, level(t), cond);
      const want = new Float64Array(cond.length * D);
      const s2 = (1 - a) / a;
      cond.forEach((c, r) => {
        const l = c === null ? 0 : c + 1;
        for (let j = 0; j < D; j++) {
          const x = xt.data[r * D + j]!;
          const mu = means[l * D + j]!;
          const Dn = mu + (vars[l]! / (vars[l]! + s2)) * (x / Math.sqrt(a) - mu);
          want[r * D + j] = (x - Math.sqrt(a) * Dn) / Math.sqrt(1 - a);
        }
      });
      expect(relDiff(eps.data, want), `t=${t}`).toBeLessThan(1e-5);
    }
  });
});
