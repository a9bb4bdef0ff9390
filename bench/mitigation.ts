/**
 * Mitigation overhead (Jain et al. §6 "Inference time"; SPEC §4.5): seconds per image of each
 * mitigation — preparation (prompt encoding, Wen et al.'s embedding optimisation, Ren et al.'s
 * graph rebuild) plus sampling — against plain CFG, on the shipped duplication model, same prompts,
 * seeds and sampler. Methods are interleaved and repeated; medians are compared. Targets: STP, DTP
 * and OG ≤ 1.01 × CFG; Wen et al. and Ren et al. measured (the paper: +127 % and +65 % on SD 2.1).
 */
import { loadStudySource, SHIPPED_MODEL } from '../src/study/source.ts';
import { runSampling, initialNoise } from '../src/study/sampling.ts';
import { samplerTimesteps } from '../src/samplers/index.ts';
import { stableDiffusionConfig } from '../src/schedules/config.ts';
import { parseConditions } from '../src/study/conditions.ts';
import { parseMethods, prepareMethod } from '../src/mitigate/methods.ts';

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Measure seconds per image per method and the ratio to CFG; `reps` interleaved repetitions. */
export async function benchMitigation(reps = 3): Promise<Record<string, unknown>> {
  const src = await loadStudySource(SHIPPED_MODEL);
  const d = src.denoiser;
  const conds = parseConditions('caption:0-7', d);
  const seeds = [0, 1, 2, 3];
  const steps = 50;
  const sampler = 'dpmpp2m' as const;
  const config = stableDiffusionConfig();
  const methods = parseMethods('cfg,stp,og+stp,dtp,og+dtp,interval,random-word,wen,wen:1,ren');
  const noise = initialNoise(d.shape, seeds);
  const firstTimestep = samplerTimesteps(sampler, config, steps)[0]!;
  const images = conds.length * seeds.length;
  const run = async (i: number): Promise<number> => {
    const t0 = performance.now();
    const p = await prepareMethod(methods[i]!, { denoiser: d, capabilities: src.capabilities, classOf: src.data.classOf, lambda: 7.5, conds, noise, firstTimestep });
    try {
      for (const part of p.parts) {
        await runSampling({ denoiser: part.denoiser, conds, seeds: part.seedIndices.map((k) => seeds[k]!), sampler, steps, config, guidance: p.guidance });
      }
    } finally {
      await p.dispose();
    }
    return (performance.now() - t0) / 1000 / images;
  };
  await run(0); // warm-up (session creation, caches)
  const times = methods.map(() => [] as number[]);
  for (let r = 0; r < reps; r++) {
    const order = methods.map((_, i) => i);
    if (r % 2) order.reverse();
    for (const i of order) times[i]!.push(await run(i));
  }
  const base = median(times[0]!);
  await d.dispose?.();
  return {
    what: `mitigation overhead: median seconds per image (preparation + sampling; ${conds.length} memorized captions × ${seeds.length} seeds, ${sampler} ${steps} steps, λ = 7.5, models/duplication) and the ratio to plain CFG`,
    reps,
    baseline: 'cfg',
    baselineSecondsPerImage: base,
    ratio: Object.fromEntries(methods.map((m, i) => [m.name, median(times[i]!) / base])),
    secondsPerImage: Object.fromEntries(methods.map((m, i) => [m.name, times[i]])),
    target: 'stp, dtp, og+*: ≤ 1.01; wen and ren measured (Jain et al. on SD 2.1: wen 2.27×, ren 1.65×)',
  };
}
