/**
 * Cost of the streaming Kim et al. analyses (issue 4 figure): the full suite over 16 seeds × 50
 * DDIM steps must cost ≤ 10 % of the sampling time of the same run. Measured on the shipped
 * duplication model (CFG 7.5, one memorized caption and one class prompt), timing the observer
 * separately from the sampler in the same run, and also as the wall-time ratio of a run with the
 * analyses against one without.
 */
import { loadStudySource, resolveModelSpec } from '../src/study/source.ts';
import { runSampling } from '../src/study/sampling.ts';
import { parseGuidance } from '../src/guidance/spec.ts';
import { stableDiffusionConfig } from '../src/schedules/config.ts';
import { KimAccumulator } from '../src/analysis/kim.ts';
import type { StepObserver } from '../src/record/recorders.ts';
import { numel } from '../src/tensor/tensor.ts';

export async function benchKim(): Promise<Record<string, unknown>> {
  const spec = await resolveModelSpec('default');
  const src = await loadStudySource(spec);
  const d = src.denoiser;
  const capIdx = d.conditions.findIndex((c) => c.kind === 'caption');
  const clsIdx = d.conditions.findIndex((c) => c.kind === 'class');
  const conds = [capIdx, clsIdx];
  const seeds = Array.from({ length: 16 }, (_, i) => i);
  const N = seeds.length;
  const per = numel(d.shape);
  const job = { denoiser: d, conds, seeds, sampler: 'ddim' as const, steps: 50, config: stableDiffusionConfig(), guidance: parseGuidance('constant:7.5') };
  await runSampling({ ...job, steps: 3 }); // warm-up
  const reps = 3;
  let plain = 0;
  let withAnalyses = 0;
  let observerSeconds = 0;
  let samplingSeconds = 0;
  for (let r = 0; r < reps; r++) {
    const a = await runSampling(job);
    plain += a.seconds;
    const target = src.toModelSpace(d.conditions[capIdx]!.targets![0]!).data;
    const acc = new KimAccumulator({ groups: conds.map((_, i) => ({ rows: Array.from({ length: N }, (_, n) => i * N + n) })), targets: conds.flatMap((_, i) => Array.from({ length: N }, () => (i === 0 ? target : null))) });
    let ms = 0;
    const timed: StepObserver = async (e) => {
      const t0 = performance.now();
      await acc.observe(e);
      ms += performance.now() - t0;
    };
    const b = await runSampling({ ...job, observers: [timed] });
    acc.result();
    withAnalyses += b.seconds;
    observerSeconds += ms / 1000;
    samplingSeconds += b.seconds - ms / 1000;
  }
  await d.dispose?.();
  return {
    what: 'streaming Kim analyses (loss, cos/k with affine split, first-step diagnostics, trace, PC1, decomposition, deviation sums) over 2 prompts × 16 seeds × 50 DDIM steps at CFG 7.5 on the shipped duplication model',
    model: spec,
    elements: per,
    reps,
    samplingSeconds: samplingSeconds / reps,
    analysisSeconds: observerSeconds / reps,
    analysisOverSampling: observerSeconds / samplingSeconds,
    wallRatioWithOverWithout: withAnalyses / plain,
    target: 'analysisOverSampling ≤ 0.10',
  };
}
