/** `memscope curves`: guidance-magnitude curves and the static transition point (Jain et al., SPEC §4.1–4.2). */
import { z } from 'zod';
import { commandHelp, flagDocs, SAMPLER_HELP } from './help.ts';
import { join } from 'node:path';
import { positiveInt, finiteNumber, UsageError, asUsage, samplerFlag } from './args.ts';
import { parseSeeds } from '../random/seeds.ts';
import { parsePrompts } from '../study/conditions.ts';
import { loadCliSource, studyConfig, SD_SOURCE_FIELDS, SD_SOURCE_SECTION, MODEL_SPEC_HELP, samplerFor } from './source-flags.ts';
import { curvesStudy, type CurveMode, type CurvesSource } from '../study/curves.ts';
import { curvesSection, curvesIntro, curveModeLabel } from '../study/views/curves.ts';
import { sourceFingerprint } from '../study/fingerprint.ts';
import type { JobContext } from '../queue/jobs.ts';
import type { ResolvedContext } from '../queue/worker.ts';
import { STORE_FIELDS, STORE_SECTION, QUEUE_FIELDS, QUEUE_SECTION, checkQueueFlags, queueOptions, workerFlags, storeDirOf, openCliStore, closeCliStore, dryRunText, runStudyUnits, parseCommandFlags } from './study-run.ts';
import { checkResultsTarget, withResultsDir } from '../io/results.ts';
import { writeJsonAtomic } from '../io/atomic.ts';
import { writeSection } from '../report/section.ts';

const MODES: readonly CurveMode[] = ['zero', 'cfg', 'og'];
const Schema = z.object({
  model: z.string().default('default').register(flagDocs, { value: 'SPEC', help: MODEL_SPEC_HELP }),
  prompts: z.string().default('all').register(flagDocs, { value: 'SPEC', help: 'prompts (default {default}; memorized = conditions tied to a training image trained on more than once; dup:N selects by count)' }),
  seeds: z.string().default('0-3').register(flagDocs, { value: 'LIST', help: 'seeds per prompt' }),
  scale: finiteNumber('scale').default(7.5).register(flagDocs, { value: 'X', help: 'λ: standard CFG uses s = λ, opposite guidance s = −λ' }),
  modes: z.string().default('zero,cfg,og').register(flagDocs, { value: 'LIST', help: 'some of zero,cfg,og' }),
  fraction: finiteNumber('fraction', { lo: 0, hi: 1, loOpen: true }).default(0.1).register(flagDocs, { value: 'X', help: 'd_t counts as low below this fraction of its maximum' }),
  sampler: samplerFlag().default('ddim').register(flagDocs, { value: 'NAME', help: SAMPLER_HELP }),
  steps: positiveInt('steps', 1000).default(50).register(flagDocs, { value: 'N', help: 'inference steps' }),
  out: z.string().default('runs/curves').register(flagDocs, { value: 'DIR', help: 'results directory' }),
  ...STORE_FIELDS,
  ...QUEUE_FIELDS,
  ...SD_SOURCE_FIELDS,
});

/** The help of `memscope curves`, generated from its schema. */
export const CURVES_HELP = commandHelp(Schema, {
  title: 'memscope curves — guidance-magnitude curves and the static transition point (docs/methods.md §4.1–4.2)',
  usage: 'memscope curves [flags]',
  blocks: [
    { flags: ['model', 'prompts', 'seeds', 'scale', 'modes', 'fraction', 'sampler', 'steps', 'out'] },
    STORE_SECTION,
    QUEUE_SECTION,
    SD_SOURCE_SECTION,
    `Per step, mean ± std over the prompts' seeds of ‖ε_c‖, ‖ε_u‖ and ‖ε_c − ε_u‖ (√d_t) for memorized
and normal prompts under each mode, and the static transition point of each group: the first step
of the final stretch where the mean d_t stays below --fraction of its maximum. One stored unit per
mode, prompt and seed: a rerun computes nothing. Writes run.json, settings.json, curves.json,
d.svg|png, norms.svg|png and report.html.`,
  ],
  examples: ['memscope curves --model models/duplication --prompts all --seeds 0-3 --scale 7.5 --out runs/curves'],
});

/** Parse and run `memscope curves`. */
export async function curvesCommand(argv: string[]): Promise<void> {
  const { o, commandLine } = await parseCommandFlags(argv, Schema, { command: 'curves', renamed: { guidance: 'scale' } });
  const modes = o.modes.split(',').map((m) => m.trim());
  for (const m of modes) if (!MODES.includes(m as CurveMode)) throw new UsageError(`--modes: "${m}" is not one of ${MODES.join(', ')}`);
  if (new Set(modes).size !== modes.length) throw new UsageError(`--modes: "${o.modes}" names a mode twice`);
  const seeds = asUsage(() => parseSeeds(o.seeds, '--seeds'));
  if (!o['dry-run']) await checkResultsTarget(o.out);
  await checkQueueFlags(o);
  const { spec: model, src } = await loadCliSource(o.model, o);
  const prompts = asUsage(() => parsePrompts(o.prompts, src.denoiser, '--prompts', 'has no conditional branch to measure'));
  const sampler = samplerFor(o.sampler, studyConfig(src), o.model, (m) => void process.stderr.write(`${m}\n`));
  const settings = { prompts, seeds, lambda: o.scale, modes: modes as CurveMode[], sampler, steps: o.steps, config: studyConfig(src), fraction: o.fraction };
  const spec = curvesStudy.schema.parse({ prompts, seeds, lambda: o.scale, modes, sampler, steps: o.steps, fraction: o.fraction });
  const source: CurvesSource = { src, config: settings.config, fingerprint: await sourceFingerprint(src) };
  const units = await curvesStudy.plan(spec, source);
  const storeDir = storeDirOf(o.store);
  const store = await openCliStore(storeDir, o['dry-run']);
  const started = performance.now();
  let r: Awaited<ReturnType<typeof curvesStudy.reduce>>;
  let runJson: Awaited<ReturnType<typeof runStudyUnits>>['runJson'];
  try {
    if (o['dry-run'] || store === null) {
      process.stdout.write(dryRunText('curves', { model, ...spec }, units, store, storeDir));
      await src.denoiser.dispose?.();
      return;
    }
    const ran = await runStudyUnits('curves', curvesStudy, { model, ...spec }, units, source, store, { commandLine, ...queueOptions(o) });
    runJson = ran.runJson;
    r = { ...(await curvesStudy.reduce(ran.outcome.units, store, spec)), seconds: (performance.now() - started) / 1000 };
  } finally {
    closeCliStore(store);
  }
  await src.denoiser.dispose?.();
  const label = curveModeLabel;
  await withResultsDir(o.out, async (dir) => {
    await writeJsonAtomic(join(dir, 'run.json'), runJson);
    await writeJsonAtomic(join(dir, 'settings.json'), { command: 'curves', model, ...settings, units: units.map((u) => u.key) });
    await writeJsonAtomic(join(dir, 'curves.json'), r);
    await writeSection(dir, 'memscope curves', curvesSection(r, curvesIntro(src.description, prompts.length, seeds.length, sampler, o.steps, r.seconds)));
  }, { command: 'curves' });
  for (const m of r.modes) {
    for (const g of ['memorized', 'normal'] as const) {
      const c = m[g];
      if (c) process.stdout.write(`${label(m.mode, m.scale)} ${g}: static transition step ${c.staticTransition ?? 'never'}${c.staticTransition === null ? '' : ` (t = ${r.t[c.staticTransition]})`}\n`);
    }
  }
  process.stdout.write(`${join(o.out, 'report.html')}\n`);
}

/** A queue worker's `curves` study and source, rebuilt from the flags the coordinator recorded (the study needs only the model). */
export async function curvesWorkerContext(ctx: JobContext): Promise<ResolvedContext> {
  const o = workerFlags(Schema, ctx);
  const { src } = await loadCliSource(o.model, o);
  const source: CurvesSource = { src, config: studyConfig(src), fingerprint: await sourceFingerprint(src) };
  return { study: curvesStudy as unknown as ResolvedContext['study'], source, dispose: async () => src.denoiser.dispose?.() };
}
