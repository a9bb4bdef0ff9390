/**
 * The samplers by name (SPEC §1): DDIM (η = 0 and η > 0), DPM-Solver++(2M), Euler, Euler ancestral, PNDM's PLMS (Stable Diffusion 1.x's own scheduler), UniPC (bh2, order 2), and EDM's Heun (Karras et al. 2022) for denoisers defined at any σ — each a plain
 * async function `(model, noise, config, opts) → x_0` matching the diffusers scheduler of the same
 * name and config to float32 round-off.
 */
import type { Tensor } from '../tensor/tensor.ts';
import type { SchedulerConfig, SchedulerConfigInput } from '../schedules/config.ts';
import { sampleDdim, type DdimOptions } from './ddim.ts';
import { sampleDpmpp2m } from './dpmpp2m.ts';
import { sampleEuler } from './euler.ts';
import { sampleEulerAncestral } from './euler-ancestral.ts';
import { samplePndm } from './pndm.ts';
import { sampleUniPc } from './unipc.ts';
import { heunEdmTimesteps, sampleHeunEdmEps } from './heun-edm.ts';
import type { EpsModel, SamplerOptions } from './types.ts';
import { ddimTimesteps, dpmSolverTimesteps, eulerTimesteps, pndmTimesteps } from '../schedules/timesteps.ts';

export { sampleDdim, type DdimOptions } from './ddim.ts';
export { sampleDpmpp2m } from './dpmpp2m.ts';
export { sampleEuler } from './euler.ts';
export { sampleEulerAncestral } from './euler-ancestral.ts';
export { samplePndm } from './pndm.ts';
export { sampleUniPc } from './unipc.ts';
/**
 * EDM's deterministic Heun sampler: over a denoiser D(x; σ) (`sampleHeunEdm`) and over an ε-model
 * evaluated at any σ (`sampleHeunEdmEps`, the `heun-edm` of {@link SAMPLERS}).
 */
export {
  sampleHeunEdm,
  sampleHeunEdmEps,
  heunEdmTimesteps,
  sigmaTimesteps,
  edmSigmas,
  guidedHeunModel,
  type HeunModel,
  type HeunEdmOptions,
  type HeunEdmEpsOptions,
  type HeunModelOutput,
  type HeunCallInfo,
  type SigmaDenoiser,
} from './heun-edm.ts';

/**
 * A sampler's name: `ddim` (DDIMScheduler), `dpmpp2m` (DPMSolverMultistepScheduler), `euler`
 * (EulerDiscreteScheduler), `euler-ancestral` (EulerAncestralDiscreteScheduler), `pndm`
 * (PNDMScheduler with `skip_prk_steps`: PLMS), `unipc` (UniPCMultistepScheduler, bh2, order ≤ 2), `heun-edm` (EDM's deterministic Heun, Karras et al.
 * 2022 Algorithm 1; for denoisers that can be evaluated at any σ).
 */
export type SamplerName = 'ddim' | 'dpmpp2m' | 'euler' | 'euler-ancestral' | 'pndm' | 'unipc' | 'heun-edm';

/** The sampler names, in a fixed order. */
export const SAMPLER_NAMES: readonly SamplerName[] = ['ddim', 'dpmpp2m', 'euler', 'euler-ancestral', 'pndm', 'unipc', 'heun-edm'];

/** Spellings (after {@link samplerKey}) of each sampler: memscope's, diffusers' scheduler classes, k-diffusion / A1111 names. */
const SAMPLER_SPELLINGS: Readonly<Record<string, SamplerName>> = {
  ddim: 'ddim',
  ddimscheduler: 'ddim',
  dpmpp2m: 'dpmpp2m',
  dpmsolverpp2m: 'dpmpp2m',
  dpmsolvermultistep: 'dpmpp2m',
  dpmsolvermultistepscheduler: 'dpmpp2m',
  kdpmpp2m: 'dpmpp2m',
  sampledpmpp2m: 'dpmpp2m',
  euler: 'euler',
  eulerdiscrete: 'euler',
  eulerdiscretescheduler: 'euler',
  keuler: 'euler',
  sampleeuler: 'euler',
  eulerancestral: 'euler-ancestral',
  eulera: 'euler-ancestral',
  eulerancestraldiscrete: 'euler-ancestral',
  eulerancestraldiscretescheduler: 'euler-ancestral',
  keulera: 'euler-ancestral',
  keulerancestral: 'euler-ancestral',
  sampleeulerancestral: 'euler-ancestral',
  pndm: 'pndm',
  pndmscheduler: 'pndm',
  plms: 'pndm',
  unipc: 'unipc',
  unipcmultistep: 'unipc',
  unipcmultistepscheduler: 'unipc',
  heunedm: 'heun-edm',
  edmheun: 'heun-edm',
};

/** A sampler spelling reduced to a lookup key: lower case, `++` → `pp`, spaces, `-`, `_` and `.` removed. */
function samplerKey(s: string): string {
  return s.trim().toLowerCase().replace(/\+\+/g, 'pp').replace(/[\s._-]+/g, '');
}

/**
 * The sampler a user's spelling names, or `null`: case and the separators space, `-`, `_`, `.` are
 * ignored and `++` reads as `pp`, so `dpmpp-2m`, `dpmpp_2m`, `dpm++2m`, `DPM++ 2M`, `k_dpmpp_2m` and
 * diffusers' `DPMSolverMultistepScheduler` all give `dpmpp2m`; `DDIMScheduler` gives `ddim`;
 * `EulerDiscreteScheduler`, `euler_discrete` and `k_euler` give `euler`; `euler_a`, `k_euler_ancestral`
 * and `EulerAncestralDiscreteScheduler` give `euler-ancestral`; `PNDMScheduler` and `plms` give `pndm`; `UniPCMultistepScheduler` gives `unipc`.
 * Variants that are a different sampler (Karras σ, SDE, 3M) are not accepted.
 */
export function parseSamplerName(s: string): SamplerName | null {
  return SAMPLER_SPELLINGS[samplerKey(s)] ?? null;
}

/** Options any sampler takes; `eta` > 0 (and `useClippedModelOutput`) only for `ddim`. */
export type AnySamplerOptions = SamplerOptions & { readonly eta?: number; readonly useClippedModelOutput?: boolean };

/** The common signature of the samplers. */
export type SamplerFn = (
  model: EpsModel,
  noise: Tensor,
  config: SchedulerConfigInput | SchedulerConfig,
  opts: AnySamplerOptions,
) => Promise<Tensor>;

/** name → sampler function (`ddim` → {@link sampleDdim}, `dpmpp2m` → {@link sampleDpmpp2m}, `euler` → {@link sampleEuler}, `euler-ancestral` → {@link sampleEulerAncestral}, `pndm` → {@link samplePndm}, `unipc` → {@link sampleUniPc}, `heun-edm` → {@link sampleHeunEdmEps}). */
export const SAMPLERS: Readonly<Record<SamplerName, SamplerFn>> = {
  ddim: (model, noise, config, opts) => sampleDdim(model, noise, config, opts as DdimOptions),
  dpmpp2m: sampleDpmpp2m,
  euler: sampleEuler,
  'euler-ancestral': sampleEulerAncestral,
  pndm: samplePndm,
  unipc: sampleUniPc,
  'heun-edm': sampleHeunEdmEps,
};

/** Whether `name` is a sampler name. */
export function isSamplerName(name: string): name is SamplerName {
  return (SAMPLER_NAMES as readonly string[]).includes(name);
}

/**
 * Run the sampler called `name`. Throws (synchronously) `unknown sampler "x"; expected one of
 * ddim, dpmpp2m, euler, euler-ancestral, pndm, unipc, heun-edm` for other names; otherwise returns the sampler's promise of x_0.
 */
export function sample(
  name: string,
  model: EpsModel,
  noise: Tensor,
  config: SchedulerConfigInput | SchedulerConfig,
  opts: AnySamplerOptions,
): Promise<Tensor> {
  if (!isSamplerName(name)) throw new Error(`unknown sampler "${name}"; expected one of ${SAMPLER_NAMES.join(', ')}`);
  return SAMPLERS[name](model, noise, config, opts);
}

/** The timesteps the sampler `name` passes to the model for `steps` steps of `config` (diffusers' `scheduler.timesteps`). */
export function samplerTimesteps(name: SamplerName, config: SchedulerConfig, steps: number): number[] {
  switch (name) {
    case 'ddim':
      return ddimTimesteps(config, steps);
    case 'dpmpp2m':
      return dpmSolverTimesteps(config, steps);
    case 'euler':
    case 'euler-ancestral':
      return eulerTimesteps({ ...config, final_sigmas_type: 'zero' }, steps);
    case 'pndm':
      return pndmTimesteps(config, steps);
    case 'unipc': {
      const { solver_type: _st, algorithm_type: _at, lambda_min_clipped: _l, euler_at_final: _e, ...grid } = config;
      void [_st, _at, _l, _e];
      return dpmSolverTimesteps(grid, steps);
    }
    case 'heun-edm':
      return heunEdmTimesteps(config, steps);
  }
}
