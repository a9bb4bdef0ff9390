import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { alphaBarFromSigma, alphaBars, betas, fmaF32, sigmaFromAlphaBar, sigmasF32, torchLinspaceF32, type BetaSchedule } from './betas.ts';
import { loadSchedulerConfig } from './config-file.ts';
import {
  parseJsonLenient,
  parseSchedulerConfig,
  resolveDdimConfig,
  resolveDpmSolverConfig,
  resolveEulerConfig,
  stableDiffusionConfig,
  type SchedulerConfigInput,
} from './config.ts';
import {
  ddimPlan,
  ddimTimesteps,
  dpmSolverPlan,
  dpmSolverSigmas,
  dpmSolverTimesteps,
  eulerInitNoiseSigma,
  eulerPlan,
  eulerSigmas,
  eulerTimesteps,
  npArange,
  roundHalfEven,
} from './timesteps.ts';

interface Grid {
  config: SchedulerConfigInput & { timestep_spacing: string; steps_offset: number };
  steps: number;
  timesteps: number[];
  sigmas?: number[];
  initNoiseSigma?: number;
}
interface Fixture {
  meta: Record<string, unknown>;
  sd: Record<string, unknown>;
  schedules: Record<string, { config: SchedulerConfigInput; betas: number[]; alphasCumprod: number[]; sigmas: number[]; probeT: number[]; probeAlphaBar: number[] }>;
  grids: { ddim: Grid[]; dpmpp2m: Grid[]; euler: Grid[] };
}

const fx = JSON.parse(readFileSync(new URL('../../test/fixtures/schedulers.json', import.meta.url), 'utf8')) as Fixture;
const f32 = Math.fround;

/** Indices where `got` differs from the float32 rounding of the fixture's shortest decimals. */
function f32Mismatches(got: ArrayLike<number>, want: readonly number[]): number[] {
  const bad: number[] = [];
  if (got.length !== want.length) return [-1];
  for (let i = 0; i < want.length; i++) if (got[i] !== f32(want[i]!)) bad.push(i);
  return bad;
}

describe('betas and alphaBars (diffusers float32, bit for bit)', () => {
  for (const [name, s] of Object.entries(fx.schedules)) {
    it(`${name}: betas, ᾱ and σ equal torch's float32 tensors`, () => {
      const c = resolveDdimConfig(s.config);
      const b = betas(c.betaSchedule, { betaStart: c.betaStart, betaEnd: c.betaEnd });
      expect(f32Mismatches(b, s.betas)).toEqual([]);
      const ab = alphaBars(b);
      expect(f32Mismatches(ab, s.alphasCumprod)).toEqual([]);
      expect(f32Mismatches(sigmasF32(ab), s.sigmas)).toEqual([]);
      s.probeT.forEach((t, i) => expect(ab[t]).toBe(s.probeAlphaBar[i]));
    });
  }

  it('SPEC §0: scaled_linear is linspace(√0.00085, √0.012, 1000)² and ᾱ is the cumulative product', () => {
    const b = betas('scaled_linear', { betaStart: 0.00085, betaEnd: 0.012 });
    const rel = (a: number, b: number): number => Math.abs(a / b - 1);
    expect(rel(b[0]!, 0.00085)).toBeLessThan(1e-6); // float32 round-off
    expect(rel(b[999]!, 0.012)).toBeLessThan(1e-6);
    expect(rel(b[500]!, (Math.sqrt(0.00085) + (500 / 999) * (Math.sqrt(0.012) - Math.sqrt(0.00085))) ** 2)).toBeLessThan(1e-6);
    const ab = alphaBars(b);
    let p = 1;
    for (let i = 0; i < 1000; i++) p *= 1 - b[i]!;
    expect(ab[999]! / p - 1).toBeLessThan(1e-6);
    expect(ab[999]).toBeCloseTo(0.004660, 5); // SD's ᾱ at t = 999
  });

  it('trained_betas are taken as given (float32) and validated', () => {
    const tb = Array.from({ length: 10 }, (_, i) => 0.001 * (i + 1));
    expect(Array.from(betas('linear', { numTrainTimesteps: 10, trainedBetas: tb }))).toEqual(tb.map(f32));
    expect(() => betas('linear', { numTrainTimesteps: 11, trainedBetas: tb })).toThrow(/trainedBetas has 10 values, expected numTrainTimesteps = 11/);
    expect(() => betas('nope' as BetaSchedule)).toThrow(/unknown beta schedule "nope"; expected one of linear, scaled_linear, squaredcos_cap_v2/);
  });

  it('σ ↔ ᾱ', () => {
    expect(sigmaFromAlphaBar(0.2)).toBeCloseTo(2, 12);
    expect(alphaBarFromSigma(2)).toBeCloseTo(0.2, 12);
  });

  it('fmaF32 rounds once; torchLinspaceF32 pins its endpoints', () => {
    expect(fmaF32(f32(1.1), f32(1.3), f32(0.7))).toBe(f32(f32(1.1) * f32(1.3) + f32(0.7)));
    // a value exactly halfway between two float32s in double, with a tiny error term: one rounding
    const a = 1 + 2 ** -23;
    expect(fmaF32(a, a, -1)).toBe(f32(a * a - 1));
    const l = torchLinspaceF32(0.1, 0.9, 5);
    expect(l[0]).toBe(f32(0.1));
    expect(l[4]).toBe(f32(0.9));
    expect(Array.from(torchLinspaceF32(3, 3, 1))).toEqual([3]);
  });
});

describe('timestep grids (diffusers set_timesteps, exact)', () => {
  it('SPEC §0 checks, 50 steps of the Stable Diffusion config', () => {
    const sd = stableDiffusionConfig();
    // DPM-Solver: linspace (its default; the SD config has no timestep_spacing), 51 points, last dropped
    const dpm = dpmSolverTimesteps(sd, 50);
    expect(dpm.slice(0, 3)).toEqual([999, 979, 959]);
    expect(dpm.slice(-2)).toEqual([40, 20]);
    expect(dpm).toHaveLength(50);
    expect(dpm).toContain(779);
    expect(dpm).toContain(759);
    // DDIM linspace: 999, 979, 958, 938, …, 20, 0
    const ddimLin = ddimTimesteps({ ...sd, timestep_spacing: 'linspace' }, 50);
    expect(ddimLin.slice(0, 4)).toEqual([999, 979, 958, 938]);
    expect(ddimLin.slice(-2)).toEqual([20, 0]);
    // Euler: fractional
    const eu = eulerTimesteps(sd, 50);
    expect(eu[0]).toBe(999);
    expect(eu[1]).toBeCloseTo(978.6122, 3);
    expect(eu[49]).toBe(0);
    // leading with steps_offset = 1 (DDIM's default spacing): 981, 961, …, 1
    const ddim = ddimTimesteps(sd, 50);
    expect(ddim.slice(0, 3)).toEqual([981, 961, 941]);
    expect(ddim[49]).toBe(1);
    expect(eulerTimesteps({ ...sd, timestep_spacing: 'leading' }, 50).slice(0, 2)).toEqual([981, 961]);
    // …but DPM-Solver's own leading grid uses T//(n+1): 951, 932, …, 20
    const dpmLead = dpmSolverTimesteps({ ...sd, timestep_spacing: 'leading' }, 50);
    expect(dpmLead.slice(0, 2)).toEqual([951, 932]);
    expect(dpmLead[49]).toBe(20);
  });

  for (const sampler of ['ddim', 'dpmpp2m', 'euler'] as const) {
    it(`${sampler}: every fixture grid matches`, () => {
      for (const g of fx.grids[sampler]) {
        const label = `${g.config.beta_schedule} ${g.config.timestep_spacing}+${g.config.steps_offset} n=${g.steps}`;
        if (sampler === 'ddim') {
          expect(ddimTimesteps(g.config, g.steps), label).toEqual(g.timesteps);
        } else if (sampler === 'dpmpp2m') {
          expect(dpmSolverTimesteps(g.config, g.steps), label).toEqual(g.timesteps);
          expect(f32Mismatches(dpmSolverSigmas(g.config, g.steps), g.sigmas!), label).toEqual([]);
        } else {
          expect(f32Mismatches(eulerTimesteps(g.config, g.steps), g.timesteps), label).toEqual([]);
          expect(f32Mismatches(eulerSigmas(g.config, g.steps), g.sigmas!), label).toEqual([]);
          expect(eulerInitNoiseSigma(g.config, g.steps), label).toBe(f32(g.initNoiseSigma!));
        }
      }
    });
  }

  it('numpy primitives: round half to even, float arange overshoot', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, 978.5].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, 2, 978]);
    expect(npArange(1000, 0, -1000 / 61)).toHaveLength(62);
    expect(npArange(1000, 0, -1000 / 50)).toHaveLength(50);
  });

  it('DDIM steps to t − T//n for every spacing, and to the final ᾱ after the last step', () => {
    const sd = stableDiffusionConfig();
    const p = ddimPlan({ ...sd, timestep_spacing: 'linspace' }, 50);
    expect(p.prevTimesteps.slice(0, 2)).toEqual([979, 959]); // 999 − 20 and 979 − 20 (the grid's next point is 958)
    expect(p.prevTimesteps[49]).toBe(-20);
    const ab = alphaBars(betas('scaled_linear', { betaStart: 0.00085, betaEnd: 0.012 }));
    expect(p.alphaBarPrev[49]).toBe(ab[0]); // set_alpha_to_one: false
    expect(ddimPlan({ ...sd, set_alpha_to_one: true }, 50).alphaBarPrev[49]).toBe(1);
  });

  it('grids diffusers cannot run are rejected by the plans', () => {
    const sd = stableDiffusionConfig();
    expect(ddimTimesteps(sd, 1000)[0]).toBe(1000); // as diffusers returns it…
    expect(() => ddimPlan(sd, 1000)).toThrow(/reaches t = 1000, outside 0…999/); // …and then fails on
    expect(ddimTimesteps({ ...sd, timestep_spacing: 'trailing' }, 61)).toHaveLength(62);
    expect(() => ddimPlan({ ...sd, timestep_spacing: 'trailing' }, 61)).toThrow(/steps = 61 gives 62 timesteps/);
    expect(() => eulerPlan({ ...sd, timestep_spacing: 'trailing' }, 103)).toThrow(/steps = 103 gives 104 timesteps/);
    expect(() => dpmSolverPlan(sd, 1000)).toThrow(/repeats t = /);
    expect(() => dpmSolverPlan({ ...sd, timestep_spacing: 'trailing' }, 61)).toThrow(/gives 62 timesteps/);
    expect(() => ddimTimesteps(sd, 0)).toThrow(/positive integer/);
    expect(() => eulerTimesteps(sd, 1001)).toThrow(/cannot exceed num_train_timesteps = 1000/);
    expect(dpmSolverPlan(sd, 999).timesteps).toHaveLength(999);
    expect(ddimPlan({ ...sd, steps_offset: 0 }, 1000).timesteps[0]).toBe(999);
  });
});

describe('scheduler config', () => {
  it('defaults: common ones in the schema, sampler-specific ones per sampler', () => {
    const c = parseSchedulerConfig({});
    expect(c.num_train_timesteps).toBe(1000);
    expect(c.beta_schedule).toBe('linear');
    expect(c.prediction_type).toBe('epsilon');
    expect(c.timestep_spacing).toBeUndefined();
    expect(c.clip_sample).toBeUndefined();
    const d = resolveDdimConfig(c);
    expect([d.timestepSpacing, d.clipSample, d.setAlphaToOne, d.clipSampleRange]).toEqual(['leading', true, true, 1]);
    const p = resolveDpmSolverConfig(c);
    expect([p.timestepSpacing, p.solverOrder, p.lowerOrderFinal, p.finalSigmasType, p.lambdaMinClipped]).toEqual(['linspace', 2, true, 'zero', -Infinity]);
    const e = resolveEulerConfig(c);
    expect([e.timestepSpacing, e.finalSigmasType]).toEqual(['linspace', 'zero']);
  });

  it('the SD 1.x PNDM config: no clipping, no ᾱ=1, offset 1, per-sampler spacing', () => {
    const sd = stableDiffusionConfig();
    expect(sd).toMatchObject({ beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012, steps_offset: 1, set_alpha_to_one: false, clip_sample: false, skip_prk_steps: true });
    expect(sd.timestep_spacing).toBeUndefined();
    const d = resolveDdimConfig(sd);
    expect([d.clipSample, d.setAlphaToOne, d.timestepSpacing]).toEqual([false, false, 'leading']);
    expect(resolveDpmSolverConfig(sd).timestepSpacing).toBe('linspace');
    expect(resolveEulerConfig(sd).timestepSpacing).toBe('linspace');
    expect(fx.sd).toMatchObject({ beta_start: 0.00085, steps_offset: 1, set_alpha_to_one: false, clip_sample: false });
  });

  it('errors name the field, the allowed values and what was given', () => {
    expect(() => parseSchedulerConfig({ timestep_spacing: 'lead' }, 'x.json')).toThrow(
      /x\.json: invalid scheduler config: timestep_spacing: .*"leading"\|"linspace"\|"trailing".*\(got "lead"\)/,
    );
    expect(() => parseSchedulerConfig({ beta_schedule: 'cosine' })).toThrow(/beta_schedule: .*"linear"\|"scaled_linear"\|"squaredcos_cap_v2"/);
    expect(() => parseSchedulerConfig({ prediction_type: 'eps' })).toThrow(/prediction_type: .*"epsilon"\|"v_prediction"\|"sample"/);
    expect(() => parseSchedulerConfig({ steps_offset: -1 })).toThrow(/steps_offset/);
    expect(() => parseSchedulerConfig({ clip_sample: 'no' })).toThrow(/clip_sample: .*boolean/);
    expect(() => parseSchedulerConfig({ num_train_timesteps: 10, trained_betas: [0.1, 0.2] })).toThrow(/trained_betas: has 2 values, expected num_train_timesteps = 10/);
    expect(() => parseSchedulerConfig({ rescale_betas_zero_snr: true })).toThrow(/rescale_betas_zero_snr: true is not supported/);
    expect(() => parseSchedulerConfig([1, 2])).toThrow(/must be a JSON object/);
    expect(() => parseSchedulerConfig('{nope', 'f.json')).toThrow(/f\.json: not valid JSON/);
  });

  it('unsupported options are rejected by the samplers that use them', () => {
    const k = { use_karras_sigmas: true };
    expect(() => resolveDpmSolverConfig(k)).toThrow(/use_karras_sigmas = true is not supported by the dpmpp2m sampler \(not supported yet/);
    expect(() => resolveEulerConfig(k)).toThrow(/use_karras_sigmas = true is not supported by the euler sampler/);
    expect(resolveDdimConfig(k).timestepSpacing).toBe('leading'); // DDIMScheduler has no such key
    expect(() => resolveDpmSolverConfig({ algorithm_type: 'sde-dpmsolver++' })).toThrow(/algorithm_type = "sde-dpmsolver\+\+"/);
    expect(() => resolveDpmSolverConfig({ solver_order: 3 })).toThrow(/solver_order = 3/);
    expect(() => resolveDpmSolverConfig({ solver_type: 'heun' })).toThrow(/solver_type = "heun"/);
    expect(() => resolveDdimConfig({ thresholding: true })).toThrow(/thresholding = true/);
    expect(() => resolveEulerConfig({ interpolation_type: 'log_linear' })).toThrow(/interpolation_type = "log_linear"/);
    expect(resolveDpmSolverConfig({ algorithm_type: 'deis', solver_type: 'bh2', use_karras_sigmas: null }).solverOrder).toBe(2);
  });

  it('extra keys are ignored; Python JSON tokens are read; files and folders load', async () => {
    const text = '{"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity, "odd": NaN, "name": "-Infinity", "beta_schedule": "scaled_linear", "whatever": {"a": 1}}';
    const v = parseJsonLenient(text) as Record<string, unknown>;
    expect(v.lambda_min_clipped).toBe(-Infinity);
    expect(v.name).toBe('-Infinity');
    expect(Number.isNaN(v.odd)).toBe(true);
    const c = parseSchedulerConfig(text);
    expect(c.lambda_min_clipped).toBe(-Infinity);
    expect(c._class_name).toBe('DPMSolverMultistepScheduler');
    expect(resolveDpmSolverConfig(c).lambdaMinClipped).toBe(-Infinity);

    const dir = mkdtempSync(join(tmpdir(), 'memscope-sched-'));
    mkdirSync(join(dir, 'scheduler'));
    writeFileSync(join(dir, 'scheduler', 'scheduler_config.json'), JSON.stringify(fx.sd));
    const fromDir = await loadSchedulerConfig(dir);
    expect(fromDir.steps_offset).toBe(1);
    expect(ddimTimesteps(fromDir, 50)[0]).toBe(981);
    const fromFile = await loadSchedulerConfig(join(dir, 'scheduler', 'scheduler_config.json'));
    expect(fromFile.beta_schedule).toBe('scaled_linear');
    writeFileSync(join(dir, 'bad.json'), '{"timestep_spacing": "sideways"}');
    await expect(loadSchedulerConfig(join(dir, 'bad.json'))).rejects.toThrow(/bad\.json: invalid scheduler config: timestep_spacing/);
    await expect(loadSchedulerConfig(join(dir, 'missing.json'))).rejects.toThrow(/missing\.json: scheduler config not found/);
  });
});

describe('noiseRange', () => {
  it('σ_max of SD 1.x scaled-linear 1000 steps is 14.6 (diffusers sigmas[-1] = 14.6146)', async () => {
    const { noiseRange } = await import('./range.ts');
    const { parseSchedulerConfig } = await import('./config.ts');
    const r = noiseRange(parseSchedulerConfig({ beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012, num_train_timesteps: 1000 }, 'test'));
    expect(r.sigmaMax).toBeCloseTo(14.6146, 3);
    expect(r.sigmaMin).toBeCloseTo(Math.sqrt(0.00085 / (1 - 0.00085)), 6);
    expect(r.alphaBar.length).toBe(1000);
  });
});
