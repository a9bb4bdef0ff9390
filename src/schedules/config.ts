/**
 * diffusers `scheduler_config.json`: parsing, validation, and per-sampler defaults (SPEC §0, §7).
 *
 * A config is parsed once into a {@link SchedulerConfig}: keys shared by every diffusers scheduler
 * get their (common) defaults, keys whose default differs between schedulers stay `undefined`.
 * Each sampler then resolves the config with ITS OWN defaults ({@link resolveDdimConfig},
 * {@link resolveDpmSolverConfig}, {@link resolveEulerConfig}) — exactly what diffusers'
 * `XScheduler.from_config(config)` does: keys absent from the file (diffusers records them in
 * `_use_default_values`) take the new class's `__init__` defaults. This matters for real Stable
 * Diffusion configs, which are PNDM configs without `timestep_spacing`: DDIM then uses `leading`
 * (its default) while DPM-Solver and Euler use `linspace`; and DDIM's own `clip_sample: true` /
 * `set_alpha_to_one: true` apply only where the file does not say otherwise.
 *
 * Unknown keys (`_class_name`, PNDM's `skip_prk_steps`, …) are allowed and ignored. Options that
 * change the result and are not supported are rejected with an error naming the key — at parse
 * time when every sampler would use them, otherwise when a sampler that uses them resolves the
 * config (e.g. `use_karras_sigmas: true` stops DPM-Solver and Euler, not DDIM, which ignores the
 * key in diffusers too).
 */
import { z } from 'zod';
import { BETA_SCHEDULES, type BetaSchedule } from './betas.ts';

/** diffusers `timestep_spacing` (Table 2 of Lin et al., "Common Diffusion Noise Schedules and Sample Steps are Flawed"). */
export type TimestepSpacing = 'leading' | 'linspace' | 'trailing';

/** The spacings memscope supports. */
export const TIMESTEP_SPACINGS: readonly TimestepSpacing[] = ['leading', 'linspace', 'trailing'];

/** A number, or −∞ (diffusers writes `-Infinity` into JSON for `lambda_min_clipped`). */
const NumberOrMinusInf = z.custom<number>((v) => typeof v === 'number' && !Number.isNaN(v) && v !== Infinity, {
  message: 'expected a number (or -Infinity)',
});

/** An optional flag that diffusers sometimes writes as `null` (meaning false). */
const Flag = z.boolean().nullable().optional();

/**
 * Zod schema of a diffusers scheduler config (snake_case keys, as in the JSON file).
 *
 * Defaults filled in by the schema (common to DDIM, DPMSolverMultistep, Euler and PNDM):
 * `num_train_timesteps` 1000, `beta_start` 0.0001, `beta_end` 0.02, `beta_schedule` "linear",
 * `trained_betas` null, `prediction_type` "epsilon", `steps_offset` 0, `clip_sample_range` 1.
 * Left `undefined` when absent (sampler-specific defaults, see the resolvers):
 * `timestep_spacing`, `set_alpha_to_one`, `clip_sample`, `lower_order_final`, `final_sigmas_type`,
 * `solver_order`, `euler_at_final`, `lambda_min_clipped`, and the rejected-if-set options.
 */
export const SchedulerConfigSchema = z
  .object({
    _class_name: z.string().optional(),
    _diffusers_version: z.string().optional(),
    num_train_timesteps: z.number().int().positive().default(1000),
    beta_start: z.number().gt(0).lt(1).default(0.0001),
    beta_end: z.number().gt(0).lt(1).default(0.02),
    beta_schedule: z.enum(BETA_SCHEDULES as unknown as [BetaSchedule, ...BetaSchedule[]]).default('linear'),
    trained_betas: z.array(z.number().gt(0).lt(1)).nullable().default(null),
    prediction_type: z.enum(['epsilon', 'v_prediction', 'sample']).default('epsilon'),
    timestep_spacing: z.enum(TIMESTEP_SPACINGS as unknown as [TimestepSpacing, ...TimestepSpacing[]]).optional(),
    steps_offset: z.number().int().min(0).default(0),
    // DDIM
    set_alpha_to_one: z.boolean().optional(),
    clip_sample: z.boolean().optional(),
    clip_sample_range: z.number().positive().default(1),
    // DPM-Solver (multistep)
    solver_order: z.number().int().positive().optional(),
    algorithm_type: z.string().optional(),
    solver_type: z.string().optional(),
    lower_order_final: z.boolean().optional(),
    euler_at_final: z.boolean().optional(),
    lambda_min_clipped: NumberOrMinusInf.optional(),
    variance_type: z.string().nullable().optional(),
    // DPM-Solver and Euler
    final_sigmas_type: z.enum(['zero', 'sigma_min']).optional(),
    use_karras_sigmas: Flag,
    use_exponential_sigmas: Flag,
    use_beta_sigmas: Flag,
    use_lu_lambdas: Flag,
    use_flow_sigmas: Flag,
    // Euler
    interpolation_type: z.string().optional(),
    timestep_type: z.string().optional(),
    // DDIM and DPM-Solver
    thresholding: Flag,
    // all
    rescale_betas_zero_snr: Flag,
    // PNDM (real SD configs): accepted, no effect on DDIM/DPM/Euler
    skip_prk_steps: z.boolean().optional(),
    // UniPC
    predict_x0: z.boolean().optional(),
    disable_corrector: z.array(z.number().int()).optional(),
    solver_p: z.unknown().optional(),
  })
  .superRefine((c, ctx) => {
    if (c.trained_betas !== null && c.trained_betas.length !== c.num_train_timesteps) {
      ctx.addIssue({
        code: 'custom',
        path: ['trained_betas'],
        message: `has ${c.trained_betas.length} values, expected num_train_timesteps = ${c.num_train_timesteps}`,
      });
    }
    if (c.rescale_betas_zero_snr === true) {
      ctx.addIssue({ code: 'custom', path: ['rescale_betas_zero_snr'], message: 'true is not supported (zero-terminal-SNR rescaling); use false' });
    }
  });

/** A parsed scheduler config (the output of {@link SchedulerConfigSchema}). */
export type SchedulerConfig = z.output<typeof SchedulerConfigSchema>;

/** What {@link SchedulerConfigSchema} accepts: a diffusers config object, keys optional. */
export type SchedulerConfigInput = z.input<typeof SchedulerConfigSchema>;

/** Keys and values every resolved config has. */
export interface ResolvedCommon {
  readonly numTrainTimesteps: number;
  readonly betaSchedule: BetaSchedule;
  readonly betaStart: number;
  readonly betaEnd: number;
  readonly trainedBetas: readonly number[] | null;
  readonly predictionType: 'epsilon' | 'v_prediction' | 'sample';
  readonly timestepSpacing: TimestepSpacing;
  readonly stepsOffset: number;
}

/** `DDIMScheduler`'s view of a config. */
export interface DdimConfig extends ResolvedCommon {
  /** Final ᾱ_prev = 1 when true, ᾱ_0 otherwise (diffusers default true; SD configs false). */
  readonly setAlphaToOne: boolean;
  /** Clamp x̂0 to ±clipSampleRange (diffusers default true; SD configs false). */
  readonly clipSample: boolean;
  readonly clipSampleRange: number;
}

/** `DPMSolverMultistepScheduler`'s view of a config (algorithm dpmsolver++, midpoint). */
export interface DpmSolverConfig extends ResolvedCommon {
  /** 1 or 2 (diffusers default 2). */
  readonly solverOrder: 1 | 2;
  /** First order at the last step when fewer than 15 steps (default true). */
  readonly lowerOrderFinal: boolean;
  /** Always first order at the last step (default false). */
  readonly eulerAtFinal: boolean;
  /** Last σ: 0 (default) or σ(t = 0). */
  readonly finalSigmasType: 'zero' | 'sigma_min';
  /** Clip λ(t) from below, which shortens the grid (default −∞, no clipping). */
  readonly lambdaMinClipped: number;
}

/** `EulerDiscreteScheduler`'s view of a config (linear σ interpolation, discrete timesteps). */
export interface EulerConfig extends ResolvedCommon {
  /** Last σ: 0 (default) or σ(t = 0). */
  readonly finalSigmasType: 'zero' | 'sigma_min';
}

/** `PNDMScheduler`'s view of a config (PLMS only: `skip_prk_steps` true). */
export interface PndmConfig extends ResolvedCommon {
  /** Final ᾱ_prev = 1 when true, ᾱ_0 otherwise (diffusers default false). */
  readonly setAlphaToOne: boolean;
}

/** diffusers `PNDMScheduler.__init__` defaults for the sampler-specific keys. */
export const PNDM_DEFAULTS = { timestep_spacing: 'leading', set_alpha_to_one: false, skip_prk_steps: false } as const;

/** diffusers `DDIMScheduler.__init__` defaults for the sampler-specific keys. */
export const DDIM_DEFAULTS = { timestep_spacing: 'leading', set_alpha_to_one: true, clip_sample: true } as const;
/** diffusers `DPMSolverMultistepScheduler.__init__` defaults for the sampler-specific keys. */
export const DPM_SOLVER_DEFAULTS = {
  timestep_spacing: 'linspace',
  solver_order: 2,
  lower_order_final: true,
  euler_at_final: false,
  final_sigmas_type: 'zero',
  lambda_min_clipped: -Infinity,
} as const;
/** diffusers `EulerDiscreteScheduler.__init__` defaults for the sampler-specific keys. */
export const EULER_DEFAULTS = { timestep_spacing: 'linspace', final_sigmas_type: 'zero' } as const;

function common(c: SchedulerConfig, spacing: TimestepSpacing): ResolvedCommon {
  return {
    numTrainTimesteps: c.num_train_timesteps,
    betaSchedule: c.beta_schedule,
    betaStart: c.beta_start,
    betaEnd: c.beta_end,
    trainedBetas: c.trained_betas,
    predictionType: c.prediction_type,
    timestepSpacing: c.timestep_spacing ?? spacing,
    stepsOffset: c.steps_offset,
  };
}

function reject(sampler: string, key: string, value: unknown, why: string): never {
  throw new Error(`scheduler config: ${key} = ${JSON.stringify(value)} is not supported by the ${sampler} sampler (${why})`);
}

/** Coerce a raw object or an already parsed config into a {@link SchedulerConfig}. */
function asParsed(c: SchedulerConfigInput | SchedulerConfig): SchedulerConfig {
  return parseSchedulerConfig(c, 'scheduler config');
}

/**
 * Resolve a config for PNDM (`PNDMScheduler`): absent keys take PNDM's defaults (`timestep_spacing`
 * "leading", `set_alpha_to_one` false, `skip_prk_steps` false). Only the PLMS path is implemented:
 * `skip_prk_steps` must be true (SD 1.x configs set it); false (the class default: three Runge–Kutta
 * warm-up steps first) is refused naming the key. Rejects `v_prediction`-free options it lacks
 * (`thresholding`).
 */
export function resolvePndmConfig(config: SchedulerConfigInput | SchedulerConfig): PndmConfig {
  const c = asParsed(config);
  if (c.thresholding === true) reject('pndm', 'thresholding', true, 'dynamic thresholding is not supported by memscope');
  const skip = c.skip_prk_steps ?? PNDM_DEFAULTS.skip_prk_steps;
  if (!skip) reject('pndm', 'skip_prk_steps', skip, "memscope's PNDM is PLMS only, as Stable Diffusion's configs run it; set skip_prk_steps: true, or pick another sampler");
  return { ...common(c, PNDM_DEFAULTS.timestep_spacing), setAlphaToOne: c.set_alpha_to_one ?? PNDM_DEFAULTS.set_alpha_to_one };
}

/**
 * Resolve a config for DDIM (`DDIMScheduler`): absent keys take DDIM's defaults
 * (`timestep_spacing` "leading", `set_alpha_to_one` true, `clip_sample` true).
 * Rejects `thresholding: true`.
 */
export function resolveDdimConfig(config: SchedulerConfigInput | SchedulerConfig): DdimConfig {
  const c = asParsed(config);
  if (c.thresholding === true) reject('ddim', 'thresholding', true, 'dynamic thresholding is not supported by memscope');
  return {
    ...common(c, DDIM_DEFAULTS.timestep_spacing),
    setAlphaToOne: c.set_alpha_to_one ?? DDIM_DEFAULTS.set_alpha_to_one,
    clipSample: c.clip_sample ?? DDIM_DEFAULTS.clip_sample,
    clipSampleRange: c.clip_sample_range,
  };
}

/**
 * Resolve a config for DPM-Solver++ 2M (`DPMSolverMultistepScheduler`): absent keys take its
 * defaults (`timestep_spacing` "linspace", `solver_order` 2, `lower_order_final` true,
 * `euler_at_final` false, `final_sigmas_type` "zero", `lambda_min_clipped` −∞).
 * `algorithm_type` must be "dpmsolver++" (or "deis", which diffusers maps to it), `solver_type`
 * "midpoint" (or "logrho"/"bh1"/"bh2", mapped likewise); Karras/exponential/beta/λ-uniform/flow
 * sigmas, thresholding and `solver_order` 3 are rejected.
 */
export function resolveDpmSolverConfig(config: SchedulerConfigInput | SchedulerConfig): DpmSolverConfig {
  const c = asParsed(config);
  const S = 'dpmpp2m';
  if (c.algorithm_type !== undefined && c.algorithm_type !== 'dpmsolver++' && c.algorithm_type !== 'deis') {
    reject(S, 'algorithm_type', c.algorithm_type, 'only "dpmsolver++" (data prediction, ODE) is implemented');
  }
  if (c.solver_type !== undefined && !['midpoint', 'logrho', 'bh1', 'bh2'].includes(c.solver_type)) {
    reject(S, 'solver_type', c.solver_type, 'only "midpoint" is implemented');
  }
  const order = c.solver_order ?? DPM_SOLVER_DEFAULTS.solver_order;
  if (order !== 1 && order !== 2) reject(S, 'solver_order', order, 'only orders 1 and 2 are implemented');
  for (const k of ['use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas', 'use_lu_lambdas', 'use_flow_sigmas'] as const) {
    if (c[k] === true) reject(S, k, true, 'not supported yet: only the default σ(t) of the discrete schedule is implemented');
  }
  if (c.thresholding === true) reject(S, 'thresholding', true, 'dynamic thresholding is not supported by memscope');
  return {
    ...common(c, DPM_SOLVER_DEFAULTS.timestep_spacing),
    solverOrder: order,
    lowerOrderFinal: c.lower_order_final ?? DPM_SOLVER_DEFAULTS.lower_order_final,
    eulerAtFinal: c.euler_at_final ?? DPM_SOLVER_DEFAULTS.euler_at_final,
    finalSigmasType: c.final_sigmas_type ?? DPM_SOLVER_DEFAULTS.final_sigmas_type,
    lambdaMinClipped: c.lambda_min_clipped ?? DPM_SOLVER_DEFAULTS.lambda_min_clipped,
  };
}

/**
 * Resolve a config for Euler (`EulerDiscreteScheduler`): absent keys take its defaults
 * (`timestep_spacing` "linspace", `final_sigmas_type` "zero"). Rejects Karras/exponential/beta
 * sigmas, `interpolation_type` other than "linear", and `timestep_type` "continuous".
 */
export function resolveEulerConfig(config: SchedulerConfigInput | SchedulerConfig): EulerConfig {
  const c = asParsed(config);
  const S = 'euler';
  for (const k of ['use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas'] as const) {
    if (c[k] === true) reject(S, k, true, 'not supported yet: only the default σ(t) of the discrete schedule is implemented');
  }
  if (c.interpolation_type !== undefined && c.interpolation_type !== 'linear') {
    reject(S, 'interpolation_type', c.interpolation_type, 'only "linear" σ interpolation is implemented');
  }
  if (c.timestep_type !== undefined && c.timestep_type !== 'discrete') {
    reject(S, 'timestep_type', c.timestep_type, 'only "discrete" timesteps are implemented');
  }
  return {
    ...common(c, EULER_DEFAULTS.timestep_spacing),
    finalSigmasType: c.final_sigmas_type ?? EULER_DEFAULTS.final_sigmas_type,
  };
}

function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
  } catch {
    return String(v);
  }
}

/**
 * JSON.parse that also accepts the non-standard tokens Python's `json.dumps` writes
 * (`NaN`, `Infinity`, `-Infinity`, e.g. diffusers' `"lambda_min_clipped": -Infinity`).
 */
export function parseJsonLenient(text: string): unknown {
  const TAG = '__memscope_nonfinite__:';
  const replaced = text.replace(/"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)/g, (m, tok: string | undefined) => (tok ? `"${TAG}${tok}"` : m));
  return JSON.parse(replaced, (_k, v: unknown) => {
    if (typeof v === 'string' && v.startsWith(TAG)) {
      const tok = v.slice(TAG.length);
      return tok === 'NaN' ? NaN : tok === '-Infinity' ? -Infinity : Infinity;
    }
    return v;
  });
}

/**
 * Validate a diffusers scheduler config (an object, or JSON text) against
 * {@link SchedulerConfigSchema}. Errors name `source`, every offending field, what it allows,
 * and what it got, e.g.
 * `sched.json: invalid scheduler config: timestep_spacing: Invalid option: expected one of "leading"|"linspace"|"trailing" (got "lead")`.
 */
export function parseSchedulerConfig(json: unknown, source = 'scheduler config'): SchedulerConfig {
  let value = json;
  if (typeof json === 'string') {
    try {
      value = parseJsonLenient(json);
    } catch (e) {
      throw new Error(`${source}: not valid JSON: ${(e as Error).message}`);
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${source}: a scheduler config must be a JSON object, got ${describeValue(value)}`);
  }
  const r = SchedulerConfigSchema.safeParse(value, { reportInput: true });
  if (!r.success) {
    const parts = r.error.issues.map((i) => {
      const field = i.path.length ? i.path.map(String).join('.') : '(config)';
      const got = 'input' in i && i.code !== 'custom' ? ` (got ${describeValue(i.input)})` : '';
      return `${field}: ${i.message}${got}`;
    });
    throw new Error(`${source}: invalid scheduler config: ${parts.join('; ')}`);
  }
  return r.data;
}

/**
 * The Stable Diffusion 1.x scheduler config (`CompVis/stable-diffusion-v1-4` and
 * `runwayml/stable-diffusion-v1-5` `scheduler/scheduler_config.json`, a `PNDMScheduler` config):
 * `scaled_linear` β from 0.00085 to 0.012, T = 1000, `steps_offset` 1, `set_alpha_to_one` false,
 * `clip_sample` false, `skip_prk_steps` true, `trained_betas` null.
 *
 * The real file has NO `timestep_spacing` key, and neither does this config: each sampler applies
 * its own default as diffusers' `from_config` does — DDIM `leading` (50 steps: 981, 961, …, 1),
 * DPM-Solver++ and Euler `linspace` (DPM 50 steps: 999, 979, …, 20; Euler 999.0, 978.61…, 0.0).
 */
export function stableDiffusionConfig(): SchedulerConfig {
  return parseSchedulerConfig(
    {
      _class_name: 'PNDMScheduler',
      num_train_timesteps: 1000,
      beta_start: 0.00085,
      beta_end: 0.012,
      beta_schedule: 'scaled_linear',
      trained_betas: null,
      steps_offset: 1,
      set_alpha_to_one: false,
      clip_sample: false,
      skip_prk_steps: true,
    },
    'stableDiffusionConfig()',
  );
}
