/**
 * The schedulers Stable Diffusion users run besides DDIM / DPM-Solver++ / Euler (issue 19 §3):
 * PNDM's PLMS (`skip_prk_steps`, SD 1.x's own config), Euler ancestral and UniPC (bh2, order 2), against trajectories
 * computed independently from diffusers' formulas in torch float32 (scripts/reference/schedulers_sd.py,
 * the same analytic model as the other samplers' fixture); Euler ancestral's per-step noise comes
 * from memscope's torch-identical generators seeded as the reference's.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { tensor } from '../tensor/tensor.ts';
import { stableDiffusionConfig, type SchedulerConfigInput } from '../schedules/config.ts';
import { pndmTimesteps } from '../schedules/timesteps.ts';
import { TorchGenerator } from '../random/torch.ts';
import { sample, samplePndm, sampleEulerAncestral, sampleUniPc, samplerTimesteps } from './index.ts';
import { analytic, relErr } from './reference.test-helpers.ts';
import type { StepEvent } from './types.ts';

interface Case {
  sampler: 'pndm' | 'euler-ancestral' | 'unipc';
  orders?: number[];
  name: string;
  config: SchedulerConfigInput;
  steps: number;
  seeds: number[];
  dims: number[];
  noise: number[];
  initNoiseSigma: number;
  t: number[];
  alphaBar: number[];
  alphaBarPrev: number[];
  xt: number[][];
  xHat0: number[][];
  xPrev: number[][];
  x0: number[];
  maxRelVsFloat64: number;
}

const fx = JSON.parse(readFileSync(new URL('../../test/fixtures/schedulers_sd.json', import.meta.url), 'utf8')) as { cases: Case[] };

const TOL = 2e-5;

describe('PNDM (PLMS), Euler ancestral and UniPC match diffusers (fixture from scripts/reference/schedulers_sd.py)', () => {
  let worst = 0;
  for (const c of fx.cases) {
    it(`${c.sampler} ${c.name}, ${c.steps} steps`, async () => {
      // the pipeline's generators: one per row, the first draw of each is the initial noise
      const generators = c.seeds.map((s) => new TorchGenerator(s));
      const rowDims = c.dims.slice(1);
      const noise = tensor(c.dims, c.seeds.flatMap((_, b) => Array.from(generators[b]!.randn([1, ...rowDims]))));
      expect(Array.from(noise.data)).toEqual(c.noise.map((v) => Math.fround(v)));
      const events: StepEvent[] = [];
      const x0 = await sample(c.sampler, analytic, noise, c.config, { steps: c.steps, generators, onStep: (e) => void events.push(e) });
      expect(events).toHaveLength(c.t.length);
      events.forEach((e, i) => {
        expect(e.t).toBe(Math.fround(c.t[i]!));
        expect(Math.abs(e.alphaBar / c.alphaBar[i]! - 1)).toBeLessThan(1e-6);
        expect(Math.abs(e.alphaBarPrev - c.alphaBarPrev[i]!)).toBeLessThan(1e-6);
        for (const [k, want] of [['xt', c.xt[i]!], ['xHat0', c.xHat0[i]!], ['xPrev', c.xPrev[i]!]] as const) {
          const err = relErr(e[k].data, want);
          worst = Math.max(worst, err);
          expect(err, `${k} at call ${i}`).toBeLessThanOrEqual(TOL);
        }
      });
      worst = Math.max(worst, relErr(x0.data, c.x0));
      expect(relErr(x0.data, c.x0)).toBeLessThanOrEqual(TOL);
      // the float32 reference itself is within round-off of its float64 re-run
      expect(c.maxRelVsFloat64).toBeLessThan(1e-5);
    });
  }
  it('(summary) worst relative error over all cases', () => {
    console.log(`pndm / euler-ancestral / unipc vs diffusers reference: worst max|Δ|/max|ref| = ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(TOL);
  });
});

describe('UniPC options', () => {
  const sd = stableDiffusionConfig();
  const noise = tensor([1, 2], [0.3, -0.2]);
  it('uses the DPM-Solver grid, ignoring a DPM config\'s own solver keys', () => {
    expect(samplerTimesteps('unipc', { ...sd, solver_type: 'midpoint', algorithm_type: 'dpmsolver++' }, 10)).toEqual(samplerTimesteps('dpmpp2m', sd, 10));
  });
  it('refuses what it does not implement, naming the key', async () => {
    await expect(sampleUniPc(analytic, noise, { ...sd, solver_order: 3 }, { steps: 5 })).rejects.toThrow(/solver_order = 3 is not supported by the unipc sampler/);
    await expect(sampleUniPc(analytic, noise, { ...sd, solver_type: 'bh1' }, { steps: 5 })).rejects.toThrow(/solver_type = "bh1"/);
    await expect(sampleUniPc(analytic, noise, { ...sd, predict_x0: false }, { steps: 5 })).rejects.toThrow(/predict_x0 = false/);
    await expect(sampleUniPc(analytic, noise, { ...sd, disable_corrector: [0] }, { steps: 5 })).rejects.toThrow(/disable_corrector/);
    await expect(sampleUniPc(analytic, noise, { ...sd, lower_order_final: false }, { steps: 5 })).rejects.toThrow(/lower_order_final = false .* diffusers returns NaN/);
  });
});

describe('PNDM grid and refusals', () => {
  const sd = stableDiffusionConfig();
  it('SD 1.x, 50 steps: 51 calls, the second timestep twice (981, 961, 961, 941, …, 21, 1)', () => {
    const ts = pndmTimesteps(sd, 50);
    expect(ts).toHaveLength(51);
    expect(ts.slice(0, 4)).toEqual([981, 961, 961, 941]);
    expect(ts.slice(-2)).toEqual([21, 1]);
  });
  it('refuses the PRK warm-up (skip_prk_steps false, the class default) and v-prediction, naming the key', async () => {
    const noise = tensor([1, 2], [0.3, -0.2]);
    await expect(samplePndm(analytic, noise, { ...sd, skip_prk_steps: false }, { steps: 5 })).rejects.toThrow(/skip_prk_steps = false is not supported by the pndm sampler/);
    await expect(samplePndm(analytic, noise, { num_train_timesteps: 1000 }, { steps: 5 })).rejects.toThrow(/skip_prk_steps/);
    await expect(samplePndm(analytic, noise, { ...sd, prediction_type: 'v_prediction' }, { steps: 5 })).rejects.toThrow(/prediction_type = "v_prediction" is not supported by the pndm sampler/);
  });
  it('Euler ancestral needs one generator per row', async () => {
    const noise = tensor([2, 2], [0.3, -0.2, 0.1, 0.5]);
    await expect(sampleEulerAncestral(analytic, noise, sd, { steps: 5 })).rejects.toThrow(/euler-ancestral: needs opts.generators/);
    await expect(sampleEulerAncestral(analytic, noise, sd, { steps: 5, generators: [new TorchGenerator(0)] })).rejects.toThrow(/one generator per batch row: got 1 generators for batch size 2/);
  });
});
