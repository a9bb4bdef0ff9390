/** `memscope transition`: the transition study (Jain et al. Fig. 2) — sweep transition, DTP switch and zero-CFG d_t per prompt and seed. */
import { isMemorizedCondition } from '../denoisers/denoiser.ts';
import { z } from 'zod';
import { join } from 'node:path';
import { positiveInt, finiteNumber, UsageError, asUsage, samplerFlag } from './args.ts';
import { parseSeeds } from '../random/seeds.ts';
import { parsePrompts } from '../study/conditions.ts';
import { loadCliSource, studyConfig, SD_SOURCE_FIELDS, SD_SOURCE_SECTION, MODEL_SPEC_HELP, samplerFor } from './source-flags.ts';
import { commandHelp, flagDocs, SAMPLER_HELP } from './help.ts';
import { loadDescriptor } from '../metrics/descriptor.ts';
import { meanBatch } from '../tensor/ops.ts';
import { checkResultsTarget, withResultsDir } from '../io/results.ts';
import { writeJsonAtomic } from '../io/atomic.ts';
import { sourceFingerprint } from '../study/fingerprint.ts';
import type { JobContext } from '../queue/jobs.ts';
import type { ResolvedContext } from '../queue/worker.ts';
import { STORE_FIELDS, STORE_SECTION, QUEUE_FIELDS, QUEUE_SECTION, checkQueueFlags, queueOptions, workerFlags, storeDirOf, openCliStore, closeCliStore, dryRunText, runStudyUnits, parseCommandFlags } from './study-run.ts';
import { transitionStudy, type TransitionSource } from '../study/transition.ts';
import { refuseOldScaleFlag } from './evaluate.ts';

const Schema = z.object({
  model: z.string().default('default').register(flagDocs, { value: 'SPEC', help: MODEL_SPEC_HELP }),
  prompts: z.string().optional().register(flagDocs, { value: 'SPEC', help: 'memorized prompts, e.g. caption:0-1 (default: the first two conditions tied to a training image)' }),
  seeds: z.string().default('0-3').register(flagDocs, { value: 'LIST', help: 'seeds per prompt' }),
  scale: finiteNumber('scale').default(7.5).register(flagDocs, { value: 'X', help: 'λ of the sweep (from start step k on) and of DTP (after its switch)' }),
  sampler: samplerFlag().default('ddim').register(flagDocs, { value: 'NAME', help: SAMPLER_HELP }),
  steps: positiveInt('steps', 1000).default(50).register(flagDocs, { value: 'N', help: 'inference steps' }),
  every: positiveInt('every', 1000).default(1).register(flagDocs, { value: 'N', help: 'sweep every N-th start step' }),
  descriptor: z.string().optional().register(flagDocs, { value: 'SPEC', help: 'pixel | learned[:DIR] | sscd:PATH (default learned; pixel on a Stable Diffusion export)' }),
  threshold: finiteNumber('threshold').default(0.75).register(flagDocs, { value: 'X', help: 'a sweep sample is a copy when its descriptor cosine to the target is ≥ X' }),
  out: z.string().default('runs/transition').register(flagDocs, { value: 'DIR', help: 'results directory' }),
  ...STORE_FIELDS,
  ...QUEUE_FIELDS,
  ...SD_SOURCE_FIELDS,
});

/** The help of `memscope transition`, generated from its schema. */
export const TRANSITION_HELP = commandHelp(Schema, {
  title: 'memscope transition — where does guidance stop copying? (Jain et al. Fig. 2; docs/jain.md)',
  usage: 'memscope transition [flags]',
  blocks: [
    { flags: ['model', 'prompts', 'seeds', 'scale', 'sampler', 'steps', 'every', 'descriptor', 'threshold', 'out'] },
    STORE_SECTION,
    QUEUE_SECTION,
    SD_SOURCE_SECTION,
    `Per prompt and seed: the CFG-start sweep's empirical transition step (the first start step k whose
sample, s = 0 before k and λ from k, is not a copy; as memscope sweep), the step at which DTP
(dtp:λ, Algorithm 1) switched to λ in a run of the same seed, and the zero-CFG d_t = ‖ε_c − ε_u‖²
curve of that seed (the curve whose first local minimum DTP looks for). Cost per unit: steps/every + 3
sampling runs. Writes transition.csv (one row per prompt and seed), transition.json (with the
curves and sweep similarities), transition.svg|png (d_t curves with both steps marked) and report.html.`,
  ],
  examples: [
    'memscope transition --model models/duplication --prompts caption:0-1 --seeds 0-3 --out runs/transition',
    'memscope transition --prompts caption:0 --seeds 0-7 --every 2 --out runs/transition-fast',
  ],
});

/** Parse and run `memscope transition`. */
export async function transitionCommand(argv: string[]): Promise<void> {
  refuseOldScaleFlag(argv, false);
  const { o, commandLine } = await parseCommandFlags(argv, Schema, { command: 'transition' });
  const seeds = asUsage(() => parseSeeds(o.seeds, '--seeds'));
  if (o.steps < 2) throw new UsageError(`--steps: the transition study needs at least 2 steps, got ${o.steps}`);
  if (!o['dry-run']) await checkResultsTarget(o.out);
  await checkQueueFlags(o);
  const { model, spec, source, units, descriptor, d } = await prepareTransition(o, seeds);
  const storeDir = storeDirOf(o.store);
  const store = await openCliStore(storeDir, o['dry-run']);
  const started = performance.now();
  let summary: Awaited<ReturnType<typeof transitionStudy.reduce>>;
  try {
    if (o['dry-run'] || store === null) {
      process.stdout.write(dryRunText('transition', { model, ...spec }, units, store, storeDir));
      await descriptor.dispose?.();
      await d.dispose?.();
      return;
    }
    const { outcome, runJson } = await runStudyUnits('transition', transitionStudy, { model, ...spec }, units, source, store, { commandLine, ...queueOptions(o) });
    const s = await transitionStudy.reduce(outcome.units, store, spec);
    summary = s;
    await withResultsDir(o.out, async (dir) => {
      await writeJsonAtomic(join(dir, 'run.json'), runJson);
      await writeJsonAtomic(join(dir, 'settings.json'), { command: 'transition', model, descriptor: descriptor.info, config: source.config, ...spec, units: units.map((u) => u.key) });
      await transitionStudy.report!(s, dir, spec);
    }, { command: 'transition' });
  } finally {
    closeCliStore(store);
  }
  await descriptor.dispose?.();
  await d.dispose?.();
  for (const r of summary.rows) {
    process.stdout.write(`${r.condId} seed ${r.seed}: sweep transition k = ${r.sweepTransition ?? 'none'}, DTP switch k = ${r.dtpSwitch ?? 'never'}\n`);
  }
  const a = summary.agreement;
  process.stdout.write(`both found in ${a.n}/${summary.rows.length}; mean (sweep − DTP) ${a.meanDiff === null ? '—' : a.meanDiff.toFixed(2)} steps, mean |sweep − DTP| ${a.meanAbsDiff === null ? '—' : a.meanAbsDiff.toFixed(2)} steps\n`);
  process.stdout.write(`total ${((performance.now() - started) / 1000).toFixed(0)} s\n${join(o.out, 'report.html')}\n`);
}

/** Load the source and plan the units of validated `transition` flags (the command and a queue worker share it). */
async function prepareTransition(o: z.infer<typeof Schema>, seeds: number[]) {
  const { spec: model, src } = await loadCliSource(o.model, o);
  const d = src.denoiser;
  const prompts = asUsage(() => {
    if (o.prompts === undefined) {
      const mem = d.conditions.map((c, i) => (isMemorizedCondition(c) ? i : -1)).filter((i) => i >= 0).slice(0, 2);
      if (mem.length === 0) throw new Error(`--prompts: ${src.description} has no condition tied to a training image; the transition study needs memorized prompts`);
      return mem;
    }
    const ps = parsePrompts(o.prompts, d, '--prompts', 'is not a prompt; the transition study needs memorized prompts');
    const bad = ps.filter((p) => d.conditions[p]!.targets?.[0] === undefined);
    if (bad.length) throw new Error(`--prompts "${o.prompts}": ${bad.map((p) => d.conditions[p]!.id).join(', ')} ${bad.length === 1 ? 'has' : 'have'} no training image to copy; pick memorized prompts`);
    return ps;
  });
  const descriptor = await loadDescriptor(o.descriptor ?? src.defaults.descriptor, { trainMean: meanBatch(src.trainImages).data }).catch((e: Error) => {
    throw new UsageError(`--descriptor: ${e.message}`);
  });
  const spec = transitionStudy.schema.parse({ prompts, seeds, lambda: o.scale, sampler: samplerFor(o.sampler, studyConfig(src), o.model, (m) => void process.stderr.write(`${m}\n`)), steps: o.steps, every: o.every, threshold: o.threshold });
  const source: TransitionSource = { src, config: studyConfig(src), descriptor, fingerprint: await sourceFingerprint(src) };
  const units = await transitionStudy.plan(spec, source);
  return { model, spec, source, units, descriptor, d };
}

/** A queue worker's `transition` study and source, rebuilt from the flags the coordinator recorded. */
export async function transitionWorkerContext(ctx: JobContext): Promise<ResolvedContext> {
  const o = workerFlags(Schema, ctx);
  const { source, descriptor, d } = await prepareTransition(o, parseSeeds(o.seeds, '--seeds'));
  return {
    study: transitionStudy as unknown as ResolvedContext['study'],
    source,
    dispose: async () => {
      await descriptor.dispose?.();
      await d.dispose?.();
    },
  };
}
