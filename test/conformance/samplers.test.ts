/**
 * Sampler conformance (SPEC §1): every backend of `backends.ts` × every sampler of
 * `src/samplers/index.ts` (through `sample(name, …)`: ddim, dpmpp2m, euler, heun-edm, plus DDIM η = 0.5
 * with TorchGenerator sources), 8 steps, batch 2, on the Stable Diffusion 1.x config
 * (`clip_sample: false`). Checks the step events, the x̂0 identity, the continuity of the
 * trajectory, reproducibility, guidance at s = 1 / s = 0 against the unguided model, and that
 * observers see distinct, never-reused tensors and cannot disturb the run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CondRef, Denoiser } from '../../src/denoisers/denoiser.ts';
import { cfg, unguided } from '../../src/guidance/cfg.ts';
import { constant } from '../../src/guidance/schedules.ts';
import { TorchGenerator, randnTorch } from '../../src/random/torch.ts';
import { SAMPLER_NAMES, sample, type AnySamplerOptions, type SamplerName } from '../../src/samplers/index.ts';
import type { EpsModel, StepEvent } from '../../src/samplers/types.ts';
import type { Tensor } from '../../src/tensor/tensor.ts';
import { BACKEND_NAMES, type Backend, type BackendName, D, SD_CONFIG, SHAPE, disposeBackends, getBackend, maxAbs, maxAbsDiff, relDiff } from './backends.ts';

const STEPS = 8;
const B = 2;
const NOISE_SEED = 1234;
const GEN_SEEDS = [101, 202] as const;

interface Variant {
  readonly id: string;
  readonly sampler: SamplerName;
  readonly eta?: number;
}
const VARIANTS: readonly Variant[] = [...SAMPLER_NAMES.map((s) => ({ id: s, sampler: s })), { id: 'ddim η=0.5', sampler: 'ddim', eta: 0.5 }];

const CASES: [string, BackendName, Variant][] = BACKEND_NAMES.flatMap((n) => VARIANTS.map((v): [string, BackendName, Variant] => [`${n} × ${v.id}`, n, v]));

afterAll(async () => {
  await disposeBackends();
});

// ---------------------------------------------------------------------------------------------
// helpers

function cloneT(t: Tensor): Tensor {
  return { dims: [...t.dims], data: t.data.slice() };
}

function cloneEvent(e: StepEvent): StepEvent {
  return {
    ...e,
    xt: cloneT(e.xt),
    eps: cloneT(e.eps),
    xHat0: cloneT(e.xHat0),
    xPrev: cloneT(e.xPrev),
    epsU: e.epsU === null ? null : cloneT(e.epsU),
    epsC: e.epsC === null ? null : cloneT(e.epsC),
    s: e.s === null ? null : e.s.slice(),
    d: e.d === null ? null : e.d.slice(),
  };
}

/** Bit-for-bit equality of two float arrays (NaN payloads and signed zeros included). */
function sameBits(a: Float32Array | Float64Array, b: Float32Array | Float64Array): boolean {
  if (a.length !== b.length || a.constructor !== b.constructor) return false;
  const ua = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const ub = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}

function expectSameEvent(a: StepEvent, b: StepEvent, where: string): void {
  expect([a.step, a.numSteps, a.t, a.alphaBar, a.alphaBarPrev], where).toEqual([b.step, b.numSteps, b.t, b.alphaBar, b.alphaBarPrev]);
  for (const k of ['xt', 'eps', 'xHat0', 'xPrev'] as const) {
    expect(a[k].dims, `${where} ${k} dims`).toEqual(b[k].dims);
    expect(sameBits(a[k].data, b[k].data), `${where} ${k} bits`).toBe(true);
  }
  for (const k of ['epsU', 'epsC'] as const) {
    const x = a[k];
    const y = b[k];
    expect(x === null, `${where} ${k} null`).toBe(y === null);
    if (x !== null && y !== null) expect(sameBits(x.data, y.data), `${where} ${k} bits`).toBe(true);
  }
  for (const k of ['s', 'd'] as const) {
    const x = a[k];
    const y = b[k];
    expect(x === null, `${where} ${k} null`).toBe(y === null);
    if (x !== null && y !== null) expect(sameBits(x, y), `${where} ${k} bits`).toBe(true);
  }
}

function noise(): Tensor {
  return randnTorch([B, ...SHAPE], NOISE_SEED);
}

/** Model calls (= step events) of `STEPS` steps: PNDM's PLMS visits its second timestep twice. */
function callsOf(v: Variant): number {
  return STEPS + (v.sampler === 'pndm' ? 1 : 0);
}

function samplerOptions(v: Variant, onStep?: (e: StepEvent) => void | Promise<void>, genSeeds: readonly number[] = GEN_SEEDS): AnySamplerOptions {
  return {
    steps: STEPS,
    ...(v.eta === undefined ? {} : { eta: v.eta }),
    // the samplers that draw noise at every step: DDIM η > 0 and Euler ancestral
    ...(v.eta === undefined && v.sampler !== 'euler-ancestral' ? {} : { generators: genSeeds.map((s) => new TorchGenerator(s)) }),
    ...(onStep === undefined ? {} : { onStep }),
  };
}

interface Run {
  readonly final: Tensor;
  readonly events: StepEvent[];
}

/** Run `v` on `model`; `record` = 'refs' keeps the event objects as given, 'copies' deep-copies them at emission. */
async function run(v: Variant, model: EpsModel, record: 'refs' | 'copies', x: Tensor = noise(), genSeeds: readonly number[] = GEN_SEEDS): Promise<Run> {
  const events: StepEvent[] = [];
  const final = await sample(v.sampler, model, x, SD_CONFIG, samplerOptions(v, (e) => void events.push(record === 'refs' ? e : cloneEvent(e)), genSeeds));
  return { final, events };
}

/** ‖a_b − b_b‖² per row of `[B, d]` data. */
function rowSq(a: Float32Array, b: Float32Array, rows: number): number[] {
  const r = a.length / rows;
  return Array.from({ length: rows }, (_, k) => {
    let s = 0;
    for (let i = k * r; i < (k + 1) * r; i++) s += (a[i]! - b[i]!) ** 2;
    return s;
  });
}

// ---------------------------------------------------------------------------------------------

describe('sample(name, …)', () => {
  it('rejects an unknown sampler name synchronously, naming the valid ones', () => {
    const m: EpsModel = async (xt) => ({ eps: cloneT(xt) });
    expect(() => sample('lms', m, noise(), SD_CONFIG, { steps: 2 })).toThrow(/unknown sampler "lms"; expected one of ddim, dpmpp2m, euler, euler-ancestral, pndm, unipc, heun-edm/);
  });
});

describe.each(CASES)('sampler conformance: %s', (_label, backendName, v) => {
  let b: Backend;
  let den: Denoiser;
  let conds: CondRef[];
  /** Reference run: events kept as the sampler handed them out (inspected only after the run). */
  let refs: Run;
  /** The same run with every event deep-copied at emission. */
  let copies: Run;

  beforeAll(async () => {
    b = await getBackend(backendName);
    den = b.denoiser;
    conds = [...b.samplerConds];
    refs = await run(v, unguided(den, conds), 'refs');
    copies = await run(v, unguided(den, conds), 'copies');
  });

  it('emits one event per model call in order (`steps`; PNDM steps + 1): t strictly decreasing, ᾱ strictly increasing, ᾱ_prev chaining', () => {
    const ev = copies.events;
    const n = callsOf(v);
    expect(ev.length).toBe(n);
    // PNDM's second call re-does the first interval: it sits at the second timestep and lands there again
    const repeat = (i: number): boolean => v.sampler === 'pndm' && (i === 1 || i === 2);
    ev.forEach((e, i) => {
      expect(e.step).toBe(i);
      expect(e.numSteps).toBe(n);
      expect(e.t).toBeGreaterThanOrEqual(0);
      expect(e.t).toBeLessThanOrEqual(999);
      expect(e.alphaBar).toBeGreaterThan(0);
      expect(e.alphaBar).toBeLessThan(1);
      if (repeat(i) && i === 1) expect(e.alphaBarPrev).toBe(e.alphaBar);
      else expect(e.alphaBarPrev).toBeGreaterThan(e.alphaBar);
      expect(e.alphaBarPrev).toBeLessThanOrEqual(1);
      for (const k of ['xt', 'eps', 'xHat0', 'xPrev'] as const) expect(e[k].dims, `${k} at step ${i}`).toEqual([B, ...SHAPE]);
      // unguided: no guidance fields
      expect([e.epsU, e.epsC, e.s, e.d]).toEqual([null, null, null, null]);
      if (i > 0) {
        const p = ev[i - 1]!;
        // heun-edm walks EDM's σ grid (σ_max = 80): σ above the schedule's top (≈ 14.6) all read as
        // t = 999, so its labels only never increase; its σ strictly decreases
        if (v.sampler === 'heun-edm') {
          expect(e.t, `t at step ${i}`).toBeLessThanOrEqual(p.t);
          // Karras et al. (2022) eq. 5, ρ = 7, σ ∈ [0.002, 80]; ᾱ = 1/(1 + σ²)
          const sigma = (80 ** (1 / 7) + (i / (STEPS - 1)) * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7;
          expect(e.alphaBar, `ᾱ = 1/(1 + σ²) at step ${i}`).toBeCloseTo(1 / (1 + sigma ** 2), 12);
        } else if (repeat(i) && i === 2) {
          expect(e.t, `t at step ${i}`).toBe(p.t);
          expect(e.alphaBar).toBe(p.alphaBar);
        } else expect(e.t, `t at step ${i}`).toBeLessThan(p.t);
        if (!(repeat(i) && i === 2)) expect(e.alphaBar, `ᾱ at step ${i}`).toBeGreaterThan(p.alphaBar);
        expect(p.alphaBarPrev, `ᾱ_prev of step ${i - 1} = ᾱ of step ${i}`).toBe(e.alphaBar);
      }
    });
  });

  it('event.xHat0 = (xt − √(1−ᾱ)·eps)/√ᾱ (1e-4 rel; clip_sample is off)', () => {
    for (const e of copies.events) {
      const sa = Math.sqrt(e.alphaBar);
      const sb = Math.sqrt(1 - e.alphaBar);
      const want = Float64Array.from(e.xt.data, (x, j) => (x - sb * e.eps.data[j]!) / sa);
      expect(relDiff(e.xHat0.data, want), `step ${e.step} (t=${e.t})`).toBeLessThan(1e-4);
    }
  });

  it('the trajectory is continuous: xPrev of step i is xt of step i+1, and the result is the last xPrev (bit for bit)', () => {
    const ev = copies.events;
    for (let i = 0; i + 1 < ev.length; i++) {
      expect(sameBits(ev[i]!.xPrev.data, ev[i + 1]!.xt.data), `xPrev[${i}] vs xt[${i + 1}]`).toBe(true);
    }
    expect(copies.final.dims).toEqual([B, ...SHAPE]);
    expect(sameBits(copies.final.data, ev.at(-1)!.xPrev.data), 'final vs last xPrev').toBe(true);
    // and the first x_t is the initial noise: as is for DDIM / DPM-Solver (init_noise_sigma = 1);
    // Euler (linspace) multiplies by init_noise_sigma = σ_max and feeds sample/√(σ_max²+1) = noise·√(1−ᾱ_0)
    const first = ev[0]!;
    if (v.sampler === 'euler' || v.sampler === 'euler-ancestral' || v.sampler === 'heun-edm') {
      // heun-edm: x_0 = σ_0·noise, seen at VP scale x_0/√(1 + σ_0²) = noise·√(1 − ᾱ_0) as well
      const want = Float64Array.from(noise().data, (z) => z * Math.sqrt(1 - first.alphaBar));
      expect(relDiff(first.xt.data, want)).toBeLessThan(1e-6);
    } else expect(sameBits(first.xt.data, noise().data)).toBe(true);
  });

  it('is reproducible: the same noise (and freshly seeded generators) gives a bit-identical trajectory', () => {
    expect(sameBits(refs.final.data, copies.final.data)).toBe(true);
    expect(refs.events.length).toBe(copies.events.length);
  });

  it('observers see distinct, never-reused tensors: events kept by reference equal the copies taken at emission', () => {
    const ev = refs.events;
    ev.forEach((e, i) => expectSameEvent(e, copies.events[i]!, `step ${i}`));
    // no buffer is shared between steps (a reused buffer would have shown up above as a mismatch)
    for (const k of ['xt', 'eps', 'xHat0', 'xPrev'] as const) {
      const bufs = new Set(ev.map((e) => e[k].data));
      expect(bufs.size, `${k} buffers`).toBe(callsOf(v));
    }
    for (const e of ev) {
      expect(e.xHat0.data).not.toBe(e.xt.data);
      expect(e.xPrev.data).not.toBe(e.xt.data);
      expect(e.xPrev.data).not.toBe(e.xHat0.data);
    }
  });

  it('leaves the caller’s noise tensor untouched and does not sample inside its buffer', async () => {
    const x = noise();
    const keep = x.data.slice();
    const r = await run(v, unguided(den, conds), 'refs', x);
    expect(sameBits(x.data, keep)).toBe(true);
    for (const e of r.events) for (const k of ['xt', 'xPrev'] as const) expect(e[k].data).not.toBe(x.data);
    expect(r.final.data).not.toBe(x.data);
  });

  it('an observer that scribbles into its copies is harmless; async observers are awaited before the next model call', async () => {
    const log: string[] = [];
    const base = unguided(den, conds);
    const model: EpsModel = async (xt, info) => {
      log.push(`model ${info.step}`);
      return base(xt, info);
    };
    const final = await sample(
      v.sampler,
      model,
      noise(),
      SD_CONFIG,
      samplerOptions(v, async (e) => {
        log.push(`observer ${e.step} start`);
        const c = cloneEvent(e);
        for (const k of ['xt', 'eps', 'xHat0', 'xPrev'] as const) c[k].data.fill(NaN);
        await new Promise((r) => setTimeout(r, 1));
        log.push(`observer ${e.step} end`);
      }),
    );
    expect(sameBits(final.data, copies.final.data)).toBe(true);
    // heun-edm evaluates twice per step (Euler step + Heun correction) except the last (σ_N = 0)
    const calls = (i: number): string[] => (v.sampler === 'heun-edm' && i < STEPS - 1 ? [`model ${i}`, `model ${i}`] : [`model ${i}`]);
    expect(log).toEqual(Array.from({ length: callsOf(v) }, (_, i) => [...calls(i), `observer ${i} start`, `observer ${i} end`]).flat());
  });

  it('an observer that throws stops the run with its error', async () => {
    await expect(
      sample(
        v.sampler,
        unguided(den, conds),
        noise(),
        SD_CONFIG,
        samplerOptions(v, (e) => {
          if (e.step === 1) throw new Error('observer refused step 1');
        }),
      ),
    ).rejects.toThrow('observer refused step 1');
  });

  it('cfg with constant(1) follows the unguided conditional trajectory (1e-5), with s = 1 and d = ‖ε_c − ε_u‖²', async () => {
    const g = await run(v, cfg(den, constant(1), conds).model, 'copies');
    g.events.forEach((e, i) => {
      const u = copies.events[i]!;
      expect(e.t).toBe(u.t);
      expect(relDiff(e.xt.data, u.xt.data), `xt at step ${i}`).toBeLessThan(1e-5);
      expect(relDiff(e.eps.data, u.eps.data), `eps at step ${i}`).toBeLessThan(1e-5);
      expect(Array.from(e.s!)).toEqual([1, 1]);
      const epsU = e.epsU!.data;
      const epsC = e.epsC!.data;
      const d = rowSq(epsC, epsU, B);
      e.d!.forEach((dv, r) => expect(Math.abs(dv - d[r]!), `d row ${r} step ${i}`).toBeLessThanOrEqual(1e-6 * Math.max(1, d[r]!)));
      // ε̂ = ε_u + s(ε_c − ε_u) = ε_c at s = 1
      expect(maxAbsDiff(e.eps.data, epsC)).toBeLessThanOrEqual(1e-6 * Math.max(1, maxAbs(epsC)));
    });
    expect(relDiff(g.final.data, copies.final.data)).toBeLessThan(1e-5);
  });

  it('cfg with constant(0) follows the unguided trajectory of the null condition (1e-5)', async () => {
    const g = await run(v, cfg(den, constant(0), conds).model, 'copies');
    const u = await run(v, unguided(den, conds.map(() => null)), 'copies');
    g.events.forEach((e, i) => {
      expect(relDiff(e.xt.data, u.events[i]!.xt.data), `xt at step ${i}`).toBeLessThan(1e-5);
      expect(Array.from(e.s!)).toEqual([0, 0]);
      expect(maxAbsDiff(e.eps.data, e.epsU!.data)).toBe(0);
    });
    expect(relDiff(g.final.data, u.final.data)).toBeLessThan(1e-5);
    // and the condition matters for these backends' conditional rows (where there is one)
    if (conds.some((c) => c !== null)) expect(maxAbsDiff(g.final.data, copies.final.data)).toBeGreaterThan(1e-4);
  });
});

const ETA: Variant = VARIANTS.find((v) => v.eta !== undefined)!;

describe.each(BACKEND_NAMES)('DDIM η = 0.5 with TorchGenerator sources: %s', (backendName) => {
  let den: Denoiser;
  let conds: CondRef[];
  let stoch: Run;
  beforeAll(async () => {
    const b = await getBackend(backendName);
    den = b.denoiser;
    conds = [...b.samplerConds];
    stoch = await run(ETA, unguided(den, conds), 'copies');
  });

  it('DDIM η > 0: row b gets generators[b].randn(row shape) at every step, scaled by σ_t', async () => {
    const eta = ETA.eta!;
    const gens = GEN_SEEDS.map((s) => new TorchGenerator(s));
    for (const e of stoch.events) {
      const aT = e.alphaBar;
      const aP = e.alphaBarPrev;
      const std = eta * Math.sqrt(((1 - aP) / (1 - aT)) * (1 - aT / aP));
      const dirC = Math.sqrt(1 - aP - std * std);
      expect(std).toBeGreaterThan(0);
      for (let r = 0; r < B; r++) {
        const z = gens[r]!.randn(SHAPE);
        let worst = 0;
        for (let j = 0; j < D; j++) {
          const k = r * D + j;
          const det = Math.sqrt(aP) * e.xHat0.data[k]! + dirC * e.eps.data[k]!;
          worst = Math.max(worst, Math.abs(e.xPrev.data[k]! - det - std * z[j]!));
        }
        // float32 round-off is ~1e-7 here; a wrong draw would be off by ~σ_t ≥ 1e-2
        expect(worst, `step ${e.step} row ${r} (σ_t = ${std.toFixed(4)})`).toBeLessThan(1e-5);
      }
    }
  });

  it('DDIM η > 0: the noise changes the result, and only in the row whose generator changed', async () => {
    const det = await run({ id: 'ddim', sampler: 'ddim' }, unguided(den, conds), 'copies');
    expect(maxAbsDiff(det.final.data, stoch.final.data)).toBeGreaterThan(1e-3);
    const other = await run(ETA, unguided(den, conds), 'copies', noise(), [GEN_SEEDS[0], 999]);
    expect(relDiff(other.final.data.subarray(0, D), stoch.final.data.subarray(0, D))).toBeLessThan(1e-5);
    expect(maxAbsDiff(other.final.data.subarray(D), stoch.final.data.subarray(D))).toBeGreaterThan(1e-3);
  });
});
