/**
 * Guidance-schedule overhead: wall time of DTP, OG+DTP and STP over constant CFG with the same
 * sampler, model and seeds (Jain et al. report no overhead; target ratio ≤ 1.01). Runs are
 * interleaved and repeated; medians are compared.
 */
import { defaultTestbed } from '../src/study/testbed.ts';
import { runSampling } from '../src/study/sampling.ts';
import { parseGuidance } from '../src/guidance/spec.ts';
import { stableDiffusionConfig } from '../src/schedules/config.ts';
import { parseConditions } from '../src/study/conditions.ts';

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Measure the overhead ratios; `reps` interleaved repetitions of each schedule. */
export async function benchGuidance(reps = 5): Promise<Record<string, unknown>> {
  const tb = await defaultTestbed();
  const conds = parseConditions('caption:0-3,class:0-3', tb.denoiser);
  const seeds = [0, 1, 2, 3];
  const specs = ['constant:7.5', 'dtp:7.5', 'og+dtp:7.5', 'stp:7.5@500'];
  const times = new Map<string, number[]>(specs.map((s) => [s, []]));
  const config = stableDiffusionConfig();
  // warm-up (session creation, caches)
  await runSampling({ denoiser: tb.denoiser, conds, seeds, sampler: 'ddim', steps: 10, config, guidance: parseGuidance('constant:7.5') });
  for (let r = 0; r < reps; r++) {
    for (const s of r % 2 ? [...specs].reverse() : specs) {
      const res = await runSampling({ denoiser: tb.denoiser, conds, seeds, sampler: 'ddim', steps: 50, config, guidance: parseGuidance(s) });
      times.get(s)!.push(res.seconds);
    }
  }
  const base = median(times.get('constant:7.5')!);
  const out: Record<string, unknown> = { what: 'guidance overhead: median seconds per 50-step DDIM run (32 rows, analytic testbed) and ratio to constant CFG', reps, baseline: 'constant:7.5', baselineSeconds: base };
  const ratios: Record<string, number> = {};
  for (const s of specs) ratios[s] = median(times.get(s)!) / base;
  out['ratio'] = ratios;
  out['seconds'] = Object.fromEntries([...times].map(([k, v]) => [k, v]));
  out['target'] = '≤ 1.01';
  await tb.denoiser.dispose?.();
  return out;
}
