/** `memscope analyze kim`: the Kim et al. analysis suite (SPEC §3) on a model and a prompt set. */
import { z } from 'zod';
import { commandHelp, flagDocs, SAMPLER_HELP } from './help.ts';
import { join } from 'node:path';
import { positiveInt, UsageError, asUsage, samplerFlag, finiteNumber, didYouMean } from './args.ts';
import { parseSeeds } from '../random/seeds.ts';
import { parsePrompts } from '../study/conditions.ts';
import { loadCliSource, studyConfig, samplerFor, SD_SOURCE_FIELDS, SD_SOURCE_SECTION, MODEL_SPEC_HELP } from './source-flags.ts';
import { planKim, kimStudy, finishKimStudy, KIM_DEFAULTS, type KimSettings, type KimSource, type KimStudy } from '../study/kim.ts';
import { sourceFingerprint } from '../study/fingerprint.ts';
import type { JobContext } from '../queue/jobs.ts';
import type { ResolvedContext } from '../queue/worker.ts';
import { STORE_FIELDS, STORE_SECTION, QUEUE_FIELDS, QUEUE_SECTION, checkQueueFlags, queueOptions, workerFlags, storeDirOf, openCliStore, closeCliStore, dryRunText, runStudyUnits, parseCommandFlags } from './study-run.ts';
import { writeKimReport, claimsMarkdown } from '../study/kim-report.ts';
import { loadDescriptor } from '../metrics/descriptor.ts';
import { meanBatch } from '../tensor/ops.ts';
import { checkResultsTarget, withResultsDir } from '../io/results.ts';
import { writeJsonAtomic } from '../io/atomic.ts';

const Schema = z.object({
  model: z.string().default('default').register(flagDocs, { value: 'SPEC', help: MODEL_SPEC_HELP }),
  prompts: z.string().default('all').register(flagDocs, { value: 'SPEC', help: 'conditions to study, e.g. caption:0-49,class:0-9' }),
  seeds: z.string().default('0-15').register(flagDocs, { value: 'LIST', help: 'seeds per prompt' }),
  scales: z.string().default('1,7.5').register(flagDocs, { value: 'LIST', help: 'guidance scales s' }),
  sampler: samplerFlag().default('ddim').register(flagDocs, { value: 'NAME', help: SAMPLER_HELP }),
  steps: positiveInt('steps', 1000).default(50).register(flagDocs, { value: 'N', help: 'inference steps' }),
  descriptor: z.string().optional().register(flagDocs, {
    value: 'LIST',
    help: "copy descriptor(s) f of the memorization score, comma-separated; the first drives the correlations, the others are scored on the same samples: pixel (mean-centred cosine), learned[:DIR] (memscope's contrastive descriptor, models/descriptor), sscd:PATH (a user's SSCD ONNX export) (default pixel,learned; pixel on a Stable Diffusion export)",
  }),
  threshold: finiteNumber('threshold', { lo: -1, hi: 1 }).default(0.75).register(flagDocs, { value: 'X', help: 'memorization-score threshold' }),
  'k-scales': z.string().default(KIM_DEFAULTS.kScales.join(',')).register(flagDocs, { value: 'LIST', help: 'scales at which k(T) and x̂0(T) are shown' }),
  'no-replay': z.boolean().default(false).register(flagDocs, { help: "skip the target-unknown pass (x = each seed's own final sample)" }),
  out: z.string().default('runs/kim').register(flagDocs, { value: 'DIR', help: 'results directory' }),
  ...STORE_FIELDS,
  ...QUEUE_FIELDS,
  ...SD_SOURCE_FIELDS,
});

/** The help of `memscope analyze kim`, generated from its schema. */
export const ANALYZE_HELP = commandHelp(Schema, {
  title: 'memscope analyze kim — how diffusion models memorize (Kim et al.; docs/methods.md §3)',
  usage: 'memscope analyze kim [flags]',
  blocks: [
    { flags: ['model', 'prompts', 'seeds', 'scales', 'sampler', 'steps', 'descriptor', 'threshold', 'k-scales', 'no-replay', 'out'] },
    STORE_SECTION,
    QUEUE_SECTION,
    SD_SOURCE_SECTION,
    `Per prompt and scale, streaming over the denoising steps: the x0- and ε-space loss, cos(x̂0, x),
k(t) with its affine split, the first-step noise diagnostics, the seed diversity trace, the PC1
ratio of the updates, the least-squares decomposition x_t ≈ w0·x + wT·x_T and the deviation sums,
then the memorization score and the correlations (95 % bootstrap intervals). Memorized prompts are
the conditions tied to a training image. Each prompt at each scale is a unit kept in the results
store: a killed run resumes where it stopped, and a rerun computes nothing.`,
    `Writes run.json, settings.json, kim.json, prompts.csv, first-step.csv, correlations.csv, claims.md,
figures/*.svg|png and report.html.`,
  ],
  examples: ['memscope analyze kim --model models/duplication --out runs/kim-duplication', 'memscope analyze kim --model testbed --seeds 0-7 --out runs/kim-testbed'],
});

/** Parse a comma-separated list of finite numbers, naming the flag on error. */
export function parseNumberList(spec: string, arg: string): number[] {
  const parts = spec.split(',').map((p) => p.trim());
  const out = parts.map(Number);
  if (parts.some((p) => p === '') || out.some((v) => !Number.isFinite(v))) throw new UsageError(`${arg}: expected comma-separated numbers like 1,7.5, got "${spec}"`);
  return out;
}

/** Parse and run `memscope analyze <suite>`. */
export async function analyzeCommand(argv: string[]): Promise<void> {
  const [suite, ...rest] = argv;
  if (suite !== 'kim') throw new UsageError(`expected a suite name: kim (got ${suite === undefined ? 'nothing' : `"${suite}"`})${suite === undefined ? '' : didYouMean(suite, ['kim'])}`);
  const { o, commandLine } = await parseCommandFlags(rest, Schema, { command: 'analyze kim' });
  const seeds = asUsage(() => parseSeeds(o.seeds, '--seeds'));
  const scales = parseNumberList(o.scales, '--scales');
  const kScales = parseNumberList(o['k-scales'], '--k-scales');
  if (!o['dry-run']) await checkResultsTarget(o.out);
  await checkQueueFlags(o);
  const { spec0, src, descriptorSpec, descriptor, extraDescriptors, settings } = await loadKim(o, seeds, scales, kScales);
  const started = performance.now();
  const storeDir = storeDirOf(o.store);
  const store = await openCliStore(storeDir, o['dry-run']);
  let study: KimStudy;
  let claims: Awaited<ReturnType<typeof writeKimReport>>;
  try {
    const source: KimSource = { src, descriptor, extras: extraDescriptors, fingerprint: await sourceFingerprint(src) };
    const units = planKim(settings, source);
    const spec = { model: spec0, ...settings, descriptor: descriptorSpec };
    if (o['dry-run'] || store === null) {
      process.stdout.write(dryRunText('analyze kim', spec, units, store, storeDir));
      await src.denoiser.dispose?.();
      return;
    }
    const { outcome, runJson } = await runStudyUnits('analyze kim', kimStudy(settings), spec, units, source, store, { maxBatch: Math.max(1, settings.promptsPerBatch), commandLine, ...queueOptions(o) });
    const done = await finishKimStudy(outcome.units, store, source, settings, outcome.reused);
    study = done;
    claims = await withResultsDir(o.out, async (dir) => {
      await writeJsonAtomic(join(dir, 'run.json'), runJson);
      await writeJsonAtomic(join(dir, 'settings.json'), { command: 'analyze kim', model: spec0, ...settings, descriptor: descriptorSpec, scoreRecord: done.scoreRecord, extraScoreRecords: done.extraScoreRecords });
      return writeKimReport(dir, done);
    }, { command: 'analyze kim' });
  } finally {
    closeCliStore(store);
  }
  await src.denoiser.dispose?.();
  const t = study.timing;
  process.stdout.write(
    claimsMarkdown(claims, study.model) +
      `\nsampling ${t.samplingSeconds.toFixed(1)} s, analyses ${t.analysisSeconds.toFixed(2)} s (${((100 * t.analysisSeconds) / Math.max(t.samplingSeconds, 1e-9)).toFixed(1)} %), total ${((performance.now() - started) / 1000).toFixed(0)} s\n${join(o.out, 'report.html')}\n`,
  );
}

/** Load the source and descriptors and resolve the settings of validated `analyze kim` flags (the command and a queue worker share it). */
async function loadKim(o: z.infer<typeof Schema>, seeds: number[], scales: number[], kScales: number[]) {
  const { spec: spec0, src } = await loadCliSource(o.model, o);
  const prompts = asUsage(() => parsePrompts(o.prompts, src.denoiser, '--prompts', 'has no prompt to analyse; list conditions such as caption:0-9,class:0-9'));
  const trainMean = meanBatch(src.trainImages).data;
  const descriptorSpec = o.descriptor ?? src.defaults.analysisDescriptors;
  const specs = descriptorSpec.split(',').map((x) => x.trim());
  if (specs.some((x) => x === '')) throw new UsageError(`--descriptor: empty entry in "${descriptorSpec}"`);
  const [descriptor, ...extraDescriptors] = await Promise.all(
    specs.map((x) =>
      loadDescriptor(x, { trainMean }).catch((e: Error) => {
        throw new UsageError(`--descriptor: ${e.message}`);
      }),
    ),
  );
  const sampler = samplerFor(o.sampler, studyConfig(src), o.model, (m) => void process.stderr.write(`${m}\n`));
  const settings: KimSettings = {
    ...KIM_DEFAULTS,
    prompts,
    seeds,
    scales,
    kScales,
    sampler,
    steps: o.steps,
    config: studyConfig(src),
    threshold: o.threshold,
    unknownTarget: !o['no-replay'],
  };
  return { spec0, src, descriptorSpec, descriptor: descriptor!, extraDescriptors, settings };
}

/** A queue worker's `analyze kim` study and source, rebuilt from the flags the coordinator recorded. */
export async function kimWorkerContext(ctx: JobContext): Promise<ResolvedContext> {
  const o = workerFlags(Schema, ctx);
  const { src, descriptor, extraDescriptors, settings } = await loadKim(o, parseSeeds(o.seeds, '--seeds'), parseNumberList(o.scales, '--scales'), parseNumberList(o['k-scales'], '--k-scales'));
  const source: KimSource = { src, descriptor, extras: extraDescriptors, fingerprint: await sourceFingerprint(src) };
  return {
    study: kimStudy(settings) as unknown as ResolvedContext['study'],
    source,
    dispose: async () => {
      for (const x of [descriptor, ...extraDescriptors]) await x.dispose?.();
      await src.denoiser.dispose?.();
    },
  };
}
