import { describe, expect, it } from 'vitest';
import { parseSamplerName, SAMPLER_NAMES } from './index.ts';

describe('parseSamplerName: the common spellings of each sampler', () => {
  it.each([
    ['dpmpp2m', 'dpmpp2m'],
    ['dpmpp-2m', 'dpmpp2m'],
    ['dpmpp_2m', 'dpmpp2m'],
    ['dpm++2m', 'dpmpp2m'],
    ['dpm++ 2m', 'dpmpp2m'],
    ['DPM++ 2M', 'dpmpp2m'],
    ['k_dpmpp_2m', 'dpmpp2m'],
    ['sample_dpmpp_2m', 'dpmpp2m'],
    ['DPMSolverMultistepScheduler', 'dpmpp2m'],
    ['dpmsolver++2m', 'dpmpp2m'],
    ['ddim', 'ddim'],
    ['DDIM', 'ddim'],
    ['DDIMScheduler', 'ddim'],
    ['euler', 'euler'],
    ['Euler', 'euler'],
    ['EulerDiscreteScheduler', 'euler'],
    ['euler_discrete', 'euler'],
    ['euler-discrete', 'euler'],
    ['k_euler', 'euler'],
    ['  euler  ', 'euler'],
    ['euler_a', 'euler-ancestral'],
    ['Euler a', 'euler-ancestral'],
    ['k_euler_ancestral', 'euler-ancestral'],
    ['EulerAncestralDiscreteScheduler', 'euler-ancestral'],
    ['pndm', 'pndm'],
    ['PNDMScheduler', 'pndm'],
    ['PLMS', 'pndm'],
    ['UniPCMultistepScheduler', 'unipc'],
    ['uni_pc', 'unipc'],
  ])('%j → %s', (spelling, name) => {
    expect(parseSamplerName(spelling)).toBe(name);
  });

  it.each(['euler_a_karras', 'dpmpp2m_karras', 'dpmpp_2m_sde', 'dpmpp3m', 'lms', 'LMSDiscreteScheduler', 'heun', 'unipc_bh1', '', 'dd im x'])('%j is not accepted (a different sampler or none)', (spelling) => {
    expect(parseSamplerName(spelling)).toBeNull();
  });

  it('every canonical name maps to itself', () => {
    for (const n of SAMPLER_NAMES) expect(parseSamplerName(n)).toBe(n);
  });
});
