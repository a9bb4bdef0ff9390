import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { numel, tensor, type Tensor } from '../tensor/tensor.ts';
import { stableDiffusionConfig, type SchedulerConfigInput } from '../schedules/config.ts';
import { ddimTimesteps } from '../schedules/timesteps.ts';
import { SAMPLERS, SAMPLER_NAMES, sample, sampleDdim, sampleDpmpp2m, sampleEuler, type SamplerName } from './index.ts';
import { analytic, relErr } from './reference.test-helpers.ts';
import type { EpsModel, ModelOutput, StepEvent, StepInfo } from './types.ts';
import type { NormalSource } from '../random/normal.ts';

interface Case {
  sampler: SamplerName;
  name: string;
  config: SchedulerConfigInput;
  steps: number;
  options: { eta?: number; useClippedModelOutput?: boolean };
  dims: number[];
  noise: number[];
  stepNoise?: number[][];
  initNoiseSigma: number;
  orders?: number[];
  t: number[];
  alphaBar: number[];
  alphaBarPrev: number[];
  xt: number[][];
  xHat0: number[][];
  xPrev: number[][];
  x0: number[];
  maxRelVsFloat64: number | null;
}

const fx = JSON.parse(readFileSync(new URL('../../test/fixtures/schedulers_trajectories.json', import.meta.url), 'utf8')) as { cases: Case[] };

/** Replays stored standard-normal draws (what torch.Generator gave diffusers), row by row. */
class Replay implements NormalSource {
  private off = 0;
  constructor(private readonly values: readonly number[]) {}
  randn(dims: readonly number[]): Float32Array {
    const n = numel(dims);
    const out = Float32Array.from(this.values.slice(this.off, this.off + n));
    if (out.length !== n) throw new Error('replay exhausted');
    this.off += n;
    return out;
  }
}

async function run(c: Case): Promise<{ x0: Tensor; events: StepEvent[] }> {
  const events: StepEvent[] = [];
  const noise = tensor(c.dims, c.noise);
  const opts = {
    steps: c.steps,
    onStep: (e: StepEvent) => {
      events.push(e);
    },
    ...(c.options.eta !== undefined ? { eta: c.options.eta } : {}),
    ...(c.options.useClippedModelOutput !== undefined ? { useClippedModelOutput: c.options.useClippedModelOutput } : {}),
    ...(c.stepNoise ? { generators: c.stepNoise.map((v) => new Replay(v)) } : {}),
  };
  const x0 = await sample(c.sampler, analytic, noise, c.config, opts);
  return { x0, events };
}

const TOL = 2e-5;

describe('trajectories match diffusers (fixture from scripts/reference/schedulers.py)', () => {
  let worst = 0;
  for (const c of fx.cases) {
    it(`${c.sampler} ${c.name}, ${c.steps} steps${c.options.eta ? `, η=${c.options.eta}` : ''}`, async () => {
      const { x0, events } = await run(c);
      expect(events).toHaveLength(c.steps);
      events.forEach((e, i) => {
        expect(e.step).toBe(i);
        expect(e.numSteps).toBe(c.steps);
        expect(e.t).toBe(Math.fround(c.t[i]!));
        expect(Math.abs(e.alphaBar / c.alphaBar[i]! - 1)).toBeLessThan(1e-12);
        expect(Math.abs(e.alphaBarPrev - c.alphaBarPrev[i]!)).toBeLessThan(1e-12);
        for (const [k, want] of [['xt', c.xt[i]!], ['xHat0', c.xHat0[i]!], ['xPrev', c.xPrev[i]!]] as const) {
          const err = relErr(e[k].data, want);
          worst = Math.max(worst, err);
          expect(err, `${k} at step ${i}`).toBeLessThanOrEqual(TOL);
        }
      });
      const err = relErr(x0.data, c.x0);
      worst = Math.max(worst, err);
      expect(err).toBeLessThanOrEqual(TOL);
    });
  }
  it('(summary) worst relative error over all cases is float32 round-off', () => {
    // printed for the record; the per-case tests above enforce ≤ 2e-5
    console.log(`samplers vs diffusers reference: worst max|Δ|/max|ref| = ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(TOL);
  });
});

/**
 * A single training point x: the exact denoiser is ε*(x_t) = (x_t − √ᾱ x)/√(1−ᾱ), so x̂0 = x at
 * every step, whatever x_t is. Hence:
 * - DDIM (η = 0): x_prev = √ᾱ_prev x + √(1−ᾱ_prev) ε*; at the last step ᾱ_prev = 1 when
 *   `set_alpha_to_one` (the √(1−ᾱ_prev) term vanishes), so x_0 = x̂0 = x for any step count —
 *   PROVIDED the last step's t_prev = t − T//n is negative. diffusers' DDIM uses t − T//n for every
 *   spacing, so some trailing/leading+offset grids end at t_prev = 0 and stop at ᾱ_0 < 1.
 *   With `set_alpha_to_one: false` (SD) the last step lands at √ᾱ_0 x + √(1−ᾱ_0) ε* instead.
 * - DPM-Solver++: its update is x' = (s'/s) x_t + α'(1 − e^{−h}) x̂0 (+ ½… D1 with D1 ∝ x̂0_i − x̂0_{i−1} = 0);
 *   the last step goes to σ = 0 where s' = 0, α' = 1, e^{−h} = 0, so x' = x̂0 = x exactly.
 * - Euler: sample' = x̂0 + (sample − x̂0)·σ'/σ; σ' = 0 at the end gives x̂0 = x.
 * The model uses `info.alphaBar`, so this also checks that the ᾱ the samplers report is the one
 * their update uses.
 */
describe('closed form: one training point is recovered exactly', () => {
  const D = 12;
  const target = Float32Array.from({ length: 2 * D }, (_, i) => Math.sin(1.7 * i + 0.3) * 0.8);
  const noise = tensor([2, D], Float32Array.from({ length: 2 * D }, (_, i) => Math.cos(2.3 * i + 1) * 1.3));
  const exact: EpsModel = async (xt, info) => {
    const a = Math.sqrt(info.alphaBar);
    const b = Math.sqrt(1 - info.alphaBar);
    return { eps: tensor(xt.dims, xt.data.map((v, i) => (v - a * target[i]!) / b)) };
  };
  const maxAbs = (x: Tensor): number => x.data.reduce((m, v, i) => Math.max(m, Math.abs(v - target[i]!)), 0);
  const sd = stableDiffusionConfig();
  const spacings = ['leading', 'linspace', 'trailing'] as const;

  for (const sp of spacings) {
    for (const n of [1, 2, 7, 50, 999]) {
      it(`${sp}, ${n} steps: DPM-Solver++ and Euler land on x; DDIM too when its last step reaches ᾱ_prev = 1`, async () => {
        const cfg = { ...sd, timestep_spacing: sp, set_alpha_to_one: true };
        const steps = sp === 'leading' && n === 999 ? 998 : n; // SD's steps_offset 1 would push 999 steps to t = 999 + 1
        // DDIM: lands on √ᾱ_p x + √(1−ᾱ_p) ε̂ with ᾱ_p its last ᾱ_prev — 1 (so exactly x) unless the
        // last grid point t_last ≥ T//n, where diffusers' t_prev = t_last − T//n is still ≥ 0
        // (trailing with 7 steps: 142 − 142 = 0; leading + offset 1 with 998 steps: 1 − 1 = 0).
        const ev: StepEvent[] = [];
        const xd = await sampleDdim(exact, noise, cfg, { steps, onStep: (e) => void ev.push(e) });
        const last = ev[steps - 1]!;
        const ap = last.alphaBarPrev;
        expect(ap === 1).toBe(last.t - Math.floor(1000 / steps) < 0);
        for (let i = 0; i < xd.data.length; i++) {
          expect(Math.abs(xd.data[i]! - (Math.sqrt(ap) * target[i]! + Math.sqrt(1 - ap) * last.eps.data[i]!))).toBeLessThan(1e-5);
        }
        if (ap === 1) expect(maxAbs(xd)).toBeLessThan(1e-5);
        expect(maxAbs(await sampleDpmpp2m(exact, noise, cfg, { steps }))).toBeLessThan(1e-5);
        expect(maxAbs(await sampleEuler(exact, noise, cfg, { steps }))).toBeLessThan(1e-5);
      });
    }
  }

  it('with set_alpha_to_one: false (SD), DDIM stops at √ᾱ_0 x + √(1−ᾱ_0) ε*', async () => {
    const events: StepEvent[] = [];
    const x0 = await sampleDdim(exact, noise, sd, { steps: 10, onStep: (e) => void events.push(e) });
    const last = events[9]!;
    const a0 = last.alphaBarPrev;
    expect(a0).toBeCloseTo(0.99915, 5);
    for (let i = 0; i < x0.data.length; i++) {
      expect(x0.data[i]).toBeCloseTo(Math.sqrt(a0) * target[i]! + Math.sqrt(1 - a0) * last.eps.data[i]!, 5);
      expect(last.xHat0.data[i]).toBeCloseTo(target[i]!, 5);
    }
    expect(maxAbs(x0)).toBeGreaterThan(1e-3);
  });
});

describe('events and options', () => {
  const noise = tensor([2, 3], [0.1, -0.5, 1.2, 0.3, 2.0, -1.1]);
  const sd = stableDiffusionConfig();
  /** Per-row sources for the samplers that draw noise at every step (euler-ancestral); the others ignore them. */
  const constant = (v: number): NormalSource => ({ randn: (dims) => new Float32Array(numel(dims)).fill(v) });
  const gens = [constant(0.5), constant(-0.5)];
  /** Model calls for 5 steps: PNDM's PLMS visits its second timestep twice. */
  const calls = (name: SamplerName): number => (name === 'pndm' ? 6 : 5);

  it('exactly one event per step; x_t of step i+1 is x_prev of step i; guidance fields pass through', async () => {
    for (const name of SAMPLER_NAMES) {
      const events: StepEvent[] = [];
      const guided: EpsModel = async (xt, info) => {
        const base = (await analytic(xt, info)).eps;
        const out: ModelOutput = { eps: base, epsU: base, epsC: base, s: Float64Array.of(7.5, 7.5), d: Float64Array.of(0, 0) };
        return out;
      };
      let async = 0;
      const x0 = await SAMPLERS[name](guided, noise, sd, {
        steps: 5,
        generators: gens,
        onStep: async (e) => {
          await new Promise((r) => setTimeout(r, 1));
          async++;
          events.push(e);
        },
      });
      const n = calls(name);
      expect(async, name).toBe(n);
      expect(events.map((e) => e.step)).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(events.every((e) => e.numSteps === n)).toBe(true);
      // x_t of call i+1 is x_prev of call i (PNDM's second call too: it starts at x_prev of the first)
      for (let i = 0; i < n - 1; i++) expect(Array.from(events[i + 1]!.xt.data), `${name} ${i}`).toEqual(Array.from(events[i]!.xPrev.data));
      expect(Array.from(events[n - 1]!.xPrev.data)).toEqual(Array.from(x0.data));
      expect(events[0]!.s?.[0]).toBe(7.5);
      expect(events[0]!.epsU).not.toBeNull();
      // SD config: DDIM and PNDM end at ᾱ_0 (set_alpha_to_one false); DPM-Solver and the Euler samplers at σ = 0, ᾱ = 1
      if (name === 'ddim' || name === 'pndm') expect(events[n - 1]!.alphaBarPrev).toBeCloseTo(0.99915, 5);
      else expect(events[n - 1]!.alphaBarPrev).toBe(1);
    }
    const plain: StepEvent[] = [];
    await sampleEuler(analytic, noise, sd, { steps: 3, onStep: (e) => void plain.push(e) });
    expect([plain[0]!.epsU, plain[0]!.epsC, plain[0]!.s, plain[0]!.d]).toEqual([null, null, null, null]);
  });

  it('the model sees the diffusers timestep and a VP-scale x_t with ᾱ consistent with it', async () => {
    const seen: StepInfo[] = [];
    const xs: number[] = [];
    const spy: EpsModel = async (xt, info) => {
      seen.push(info);
      xs.push(xt.data[0]!);
      return analytic(xt, info);
    };
    await sampleEuler(spy, noise, sd, { steps: 50 });
    expect(seen[0]!.t).toBe(999);
    expect(seen[1]!.t).toBeCloseTo(978.6122, 3);
    expect(seen[0]!.numTrainTimesteps).toBe(1000);
    // x_T = σ_max·ε in VE scale, so the model input is σ/√(σ²+1)·ε ≈ 0.9977·ε (linspace init_noise_sigma = σ_max)
    const s0 = Math.sqrt(1 / seen[0]!.alphaBar - 1);
    expect(s0).toBeCloseTo(14.6146, 3);
    expect(xs[0]).toBeCloseTo((0.1 * s0) / Math.sqrt(s0 * s0 + 1), 5);
    seen.length = 0;
    await sampleDdim(spy, noise, sd, { steps: 50 });
    expect(seen.map((i) => i.t)).toEqual(ddimTimesteps(sd, 50));
    expect(seen[0]!.alphaBar).toBeCloseTo(0.0055, 3);
  });

  it('validates steps, noise, model output, η and generators', async () => {
    await expect(sampleDdim(analytic, noise, sd, { steps: 0 })).rejects.toThrow(/ddim: steps must be a positive integer, got 0/);
    await expect(sampleEuler(analytic, noise, sd, { steps: 2.5 })).rejects.toThrow(/euler: steps must be a positive integer/);
    await expect(sampleDpmpp2m(analytic, noise, sd, { steps: 1001 })).rejects.toThrow(/steps = 1001 cannot exceed num_train_timesteps = 1000/);
    await expect(sampleDdim(analytic, tensor([2, 3], [0, 0, NaN, 0, 0, 0]), sd, { steps: 3 })).rejects.toThrow(/ddim: noise: non-finite value NaN/);
    await expect(sampleDdim(analytic, { dims: [], data: new Float32Array(1) }, sd, { steps: 3 })).rejects.toThrow(/batched/);
    const nanAt2: EpsModel = async (xt, info) => (info.step === 2 ? { eps: tensor(xt.dims, xt.data.map(() => Infinity)) } : analytic(xt, info));
    for (const name of SAMPLER_NAMES) {
      await expect(sample(name, nanAt2, noise, sd, { steps: 5, generators: gens })).rejects.toThrow(new RegExp(`${name}: model output at step 2 \\(t = [0-9.]+\\): non-finite value Infinity`));
    }
    const wrongShape: EpsModel = async () => ({ eps: tensor([2, 2]) });
    await expect(sampleEuler(wrongShape, noise, sd, { steps: 3 })).rejects.toThrow(/euler: model output at step 0 \(t = 999\): eps has shape \[2, 2\], expected \[2, 3\]/);
    await expect(sampleDdim(analytic, noise, sd, { steps: 3, eta: 0.5 })).rejects.toThrow(/eta = 0.5 > 0 needs opts.generators \(one normal source per batch row, 2 here\)/);
    await expect(sampleDdim(analytic, noise, sd, { steps: 3, eta: 0.5, generators: [new Replay([])] })).rejects.toThrow(/got 1 generators for batch size 2/);
    await expect(sampleDdim(analytic, noise, sd, { steps: 3, eta: -1 })).rejects.toThrow(/eta must be a finite number ≥ 0/);
    await expect(sample('dpmpp2m', analytic, noise, sd, { steps: 3, eta: 0.3 })).rejects.toThrow(/dpmpp2m: eta = 0.3 is only defined for the ddim sampler/);
    await expect(sampleDdim(analytic, noise, sd, { steps: 1000 })).rejects.toThrow(/reaches t = 1000/);
    await expect(sampleEuler(analytic, noise, { ...sd, use_karras_sigmas: true }, { steps: 3 })).rejects.toThrow(/use_karras_sigmas/);
  });

  it('η > 0 draws one row-shaped normal per row and step from its generator', async () => {
    const calls: number[][] = [];
    const gen = (b: number): NormalSource => ({
      randn: (dims) => {
        calls.push([b, ...dims]);
        return new Float32Array(numel(dims)).fill(b === 0 ? 1 : -1);
      },
    });
    const x4 = await sampleDdim(analytic, tensor([2, 1, 3], noise.data), sd, { steps: 4, eta: 1, generators: [gen(0), gen(1)] });
    expect(calls).toEqual([0, 1, 2, 3].flatMap(() => [[0, 1, 3], [1, 1, 3]]));
    const x4det = await sampleDdim(analytic, tensor([2, 1, 3], noise.data), sd, { steps: 4 });
    expect(Array.from(x4.data)).not.toEqual(Array.from(x4det.data));
  });

  it('sample() rejects unknown names; SAMPLERS has the seven samplers', () => {
    expect(() => sample('heun', analytic, noise, sd, { steps: 3 })).toThrow('unknown sampler "heun"; expected one of ddim, dpmpp2m, euler, euler-ancestral, pndm, unipc, heun-edm');
    expect(Object.keys(SAMPLERS).sort()).toEqual(['ddim', 'dpmpp2m', 'euler', 'euler-ancestral', 'heun-edm', 'pndm', 'unipc']);
  });

  it('does not modify the noise tensor', async () => {
    const before = Array.from(noise.data);
    for (const name of SAMPLER_NAMES) await sample(name, analytic, noise, sd, { steps: 4, generators: gens });
    expect(Array.from(noise.data)).toEqual(before);
  });
});
