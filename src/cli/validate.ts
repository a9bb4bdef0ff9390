/** `memscope validate`: does a trained testbed memorize its captions and generalize on its classes? */
import { z } from 'zod';
import { samplerFor } from './source-flags.ts';
import { commandHelp, flagDocs, SAMPLER_HELP } from './help.ts';
import { join, basename, resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import { Classifier } from '../models/classifier.ts';
import { positiveInt, UsageError, samplerFlag, asInput } from './args.ts';
import { parseSeeds } from '../random/seeds.ts';
import { parseGuidance } from '../guidance/spec.ts';
import { stableDiffusionConfig } from '../schedules/config.ts';
import { loadTrainedModel } from '../denoisers/trained.ts';
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { parseConditions } from '../study/conditions.ts';
import { validateSamples, VALIDATE_BATCH } from '../study/validate.ts';
import { sampleStudy, type SampleSource, type SampleSpec } from '../study/sample-study.ts';
import { folderFingerprint } from '../store/fingerprint.ts';
import type { JobContext } from '../queue/jobs.ts';
import type { ResolvedContext } from '../queue/worker.ts';
import { STORE_FIELDS, STORE_SECTION, QUEUE_FIELDS, QUEUE_SECTION, checkQueueFlags, queueOptions, workerFlags, storeDirOf, openCliStore, closeCliStore, dryRunText, runStudyUnits, parseCommandFlags } from './study-run.ts';
import type { RunRecord } from '../store/run-record.ts';
import { defaultClassifierDir, pixelCodec } from '../study/source.ts';
import { checkResultsTarget, isSameOrAncestor, packageRootReal, realish, withResultsDir } from '../io/results.ts';
import { writeJsonAtomic, writeFileAtomic } from '../io/atomic.ts';
import { gridPng } from '../report/png.ts';
import { page, table, imgTag, fmt, escapeHtml } from '../report/html.ts';

const Schema = z.object({
  model: z.string().min(1).register(flagDocs, { value: 'DIR', help: 'the trained model (memscope train) to validate' }),
  seeds: z.string().default('0-15').register(flagDocs, { value: 'LIST', help: 'seeds per condition' }),
  guidance: z.string().default('constant:7.5').register(flagDocs, { value: 'SPEC', help: 'guidance schedule, as memscope sample --guidance' }),
  prompts: z.string().default('all').register(flagDocs, { value: 'SPEC', help: 'conditions to sample (default {default}: every caption and class prompt)' }),
  sampler: samplerFlag().default('ddim').register(flagDocs, { value: 'NAME', help: SAMPLER_HELP }),
  steps: positiveInt('steps', 1000).default(50).register(flagDocs, { value: 'N', help: 'inference steps' }),
  out: z.string().optional().register(flagDocs, { value: 'DIR', help: "results directory (default <model>/validation; runs/validate/<name> for a model shipped in memscope's models/ folder: results never go into models/)" }),
  classifier: z.string().optional().register(flagDocs, { value: 'DIR', help: 'classifier for class-prompt alignment (default models/classifier when present)' }),
  ...STORE_FIELDS,
  ...QUEUE_FIELDS,
});

/** The help of `memscope validate`, generated from its schema. */
export const VALIDATE_HELP = commandHelp(Schema, {
  title: 'memscope validate — measure memorization and generalization of a trained model',
  usage: 'memscope validate --model DIR [flags]',
  blocks: [
    { flags: ['model', 'seeds', 'guidance', 'prompts', 'sampler', 'steps', 'out', 'classifier'] },
    STORE_SECTION,
    QUEUE_SECTION,
    `For every memorized caption: the fraction of seeds whose nearest training image (pixel L2, on the
central 28×28) is the caption's own image, the strict ratio test d1/d2 < 1/3 (docs/methods.md §5.4) and the
pixel copy similarity; for class prompts the same copy tests. The samples are the sample study's units
(one per condition and seed): memscope sample --model DIR with the same guidance, sampler, steps and
seeds reuses them, and a rerun samples nothing. Writes run.json, validation.json and report.html and
prints the summary.`,
  ],
  examples: ['memscope validate --model models/duplication --seeds 0-15'],
});

/** Parse and run `memscope validate`. */
export async function validateCommand(argv: string[]): Promise<void> {
  const { o, commandLine } = await parseCommandFlags(argv, Schema, { command: 'validate' });
  let seeds: number[];
  let guidance;
  try {
    seeds = parseSeeds(o.seeds, '--seeds');
    guidance = parseGuidance(o.guidance);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const out = o.out ?? (await defaultValidationOut(o.model));
  if (!o['dry-run']) await checkResultsTarget(out);
  await checkQueueFlags(o);
  const { tm, conds, clfDir, hasClf, source } = await loadValidate(o);
  // the spec `memscope sample --model DIR` resolves for the same settings: its units are shared
  const sampler = samplerFor(o.sampler, source.config, o.model, (m) => void process.stderr.write(`${m}\n`));
  const spec = sampleStudy.schema.parse({ model: o.model, sampler, steps: o.steps, guidance: o.guidance, seeds: o.seeds, record: [] }) as SampleSpec;
  const units = await sampleStudy.plan(spec, source);
  const storeDir = storeDirOf(o.store);
  const store = await openCliStore(storeDir, o['dry-run']);
  let result: Awaited<ReturnType<typeof sampleStudy.reduce>>['result'];
  let runJson: RunRecord;
  try {
    if (o['dry-run'] || store === null) {
      process.stdout.write(dryRunText('validate', spec, units, store, storeDir));
      await tm.denoiser.dispose?.();
      return;
    }
    const ran = await runStudyUnits('validate', sampleStudy, spec, units, source, store, { maxBatch: VALIDATE_BATCH, commandLine, ...queueOptions(o) });
    runJson = ran.runJson;
    result = (await sampleStudy.reduce(ran.outcome.units, store, spec)).result;
  } finally {
    closeCliStore(store);
  }
  const train = loadFashionMnist({ split: 'train' });
  const clf = hasClf ? await Classifier.load(clfDir) : null;
  const labelOf = tm.prompts.map((p) => (p.kind === 'class' ? (p.label ?? null) : null));
  const codec = pixelCodec(train.images, tm.denoiser.shape);
  const v = await validateSamples({
    denoiser: tm.denoiser,
    trainImages: train.images,
    toImageSpace: codec.toImageSpace,
    conds,
    seeds,
    result,
    guidanceLabel: guidance.label,
    pool: tm.imagePool === 'all' ? null : tm.imagePool,
    ...(clf ? { classifier: { model: clf, classOf: (c: number) => labelOf[c] ?? null } } : {}),
  });
  await clf?.dispose();
  await tm.denoiser.dispose?.();
  const { result: _sampled, copies, ...summary } = v;
  await withResultsDir(out, async (dir) => {
    await writeJsonAtomic(join(dir, 'run.json'), runJson);
    await writeJsonAtomic(join(dir, 'validation.json'), { model: o.model, sampler, steps: o.steps, ...summary, nn1: copies.map((c) => c.nn1) });
    const png = await gridPng(await codec.toImageSpace(result.samples), { cols: seeds.length, zoom: 1 });
    await writeFileAtomic(join(dir, 'samples.png'), png);
    const body = [
      `<p>${escapeHtml(o.model)} · ${escapeHtml(v.guidance)} · ${escapeHtml(sampler)} ${o.steps} steps · seeds ${escapeHtml(o.seeds)} · ${v.seconds.toFixed(0)} s</p>`,
      table(['figure', 'value'], [
        [`captions with nearest = own image in ≥ ${v.captionThreshold * 100} % of seeds`, pct(v.captionsMemorized)],
        ['caption samples: nearest = own image', pct(v.captionNearestIsTarget)],
        ['caption samples: ratio test d1/d2 < 1/3', pct(v.captionRatioCopy)],
        ['caption samples: strict copies (d1/d2 < 1/3 and nearest = own image)', pct(v.captionStrictCopy)],
        ['caption samples: median d1/d2', fmt(v.captionMedianRatio)],
        ['caption samples: mean pixel similarity', fmt(v.captionMeanSimilarity)],
        ['class samples: ratio test d1/d2 < 1/3', pct(v.classRatioCopy)],
        ['class samples: mean pixel similarity', fmt(v.classMeanSimilarity)],
        ['class samples: classifier accuracy', v.classAccuracy === null ? '— (no classifier)' : pct(v.classAccuracy)],
        ...(v.uncond === null
          ? []
          : [
              ['unconditional samples: ratio test d1/d2 < 1/3 (95 % Wilson interval)', v.uncond.text],
              ['unconditional samples: distinct training images copied', String(v.uncond.distinctCopied)],
              ['unconditional samples: median d1/d2', fmt(v.uncond.medianRatio)],
              ['unconditional samples: mean pixel similarity', fmt(v.uncond.meanSimilarity)],
            ]),
      ]),
      ...(v.byDuplicates.length
        ? ['<h2>Strict copies by duplication count</h2>', table(['times the image is trained on', 'captions', 'strict copies (95 % interval, n)'], v.byDuplicates.map((r) => [String(r.duplicates), String(r.captions), r.text]))]
        : []),
      '<h2>Per condition</h2>',
      table(['condition', 'kind', 'duplicates', 'nearest = own', 'ratio copies', 'strict copies', 'mean d1/d2', 'similarity'], v.perCondition.map((p) => [p.label, p.kind, p.duplicates === null ? '—' : String(p.duplicates), p.nearestIsTarget === null ? '—' : pct(p.nearestIsTarget), pct(p.ratioCopy), p.strictCopy === null ? '—' : pct(p.strictCopy), fmt(p.meanRatio), fmt(p.meanSimilarity)])),
      '<h2>Samples</h2>',
      imgTag(png, 'samples'),
    ].join('\n');
    await writeFileAtomic(join(dir, 'report.html'), page('memscope validate', body));
  }, { command: 'validate' });
  process.stdout.write(
    `captions memorized (nearest = own image in ≥ ${v.captionThreshold * 100} % of ${seeds.length} seeds): ${pct(v.captionsMemorized)}\n` +
      `caption samples: nearest = own ${pct(v.captionNearestIsTarget)}, ratio test ${pct(v.captionRatioCopy)}, strict ${pct(v.captionStrictCopy)}, median d1/d2 ${fmt(v.captionMedianRatio)}, similarity ${fmt(v.captionMeanSimilarity)}\n` +
      `class samples: ratio test ${pct(v.classRatioCopy)}, similarity ${fmt(v.classMeanSimilarity)}, classifier accuracy ${v.classAccuracy === null ? '— (no classifier)' : pct(v.classAccuracy)}\n` +
      v.byDuplicates.map((r) => `strict copies, captions trained on ${r.duplicates}×: ${r.text}\n`).join('') +
      (v.uncond === null ? '' : `unconditional samples: ratio test d1/d2 < 1/3 ${v.uncond.text}, ${v.uncond.distinctCopied} distinct training images copied, median d1/d2 ${fmt(v.uncond.medianRatio)}, similarity ${fmt(v.uncond.meanSimilarity)}\n`) +
      `${join(out, 'report.html')}\n`,
  );
}

/** `<model>/validation`, or `runs/validate/<name>` when the model is one of the package's shipped models. */
async function defaultValidationOut(model: string): Promise<string> {
  const pkg = await packageRootReal();
  const shipped = pkg !== null && isSameOrAncestor(join(pkg, 'models'), await realish(model));
  return shipped ? join('runs', 'validate', basename(resolve(model))) : join(model, 'validation');
}

function pct(v: number): string {
  return Number.isNaN(v) ? '—' : `${(100 * v).toFixed(0)} %`;
}

/** Load the trained model and its sampling source for validated `validate` flags (the command and a queue worker share it). */
async function loadValidate(o: z.infer<typeof Schema>) {
  const tm = await asInput('--model', () => loadTrainedModel(o.model));
  const conds = (() => {
    try {
      return parseConditions(o.prompts, tm.denoiser, '--prompts');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  })();
  const clfDir = o.classifier ?? (await defaultClassifierDir(o.model));
  const hasClf = await stat(join(clfDir, 'weights.safetensors')).then(() => true, () => false);
  if (o.classifier && !hasClf) throw new UsageError(`--classifier: no weights.safetensors in ${o.classifier}; train one with memscope train --scenario classifier`);
  const config = stableDiffusionConfig();
  const source: SampleSource = { denoiser: tm.denoiser, conds, config, decode: null, modelInfo: { kind: 'trained', dir: o.model, scenario: tm.scenario }, fingerprint: await folderFingerprint('trained', o.model) };
  return { tm, conds, clfDir, hasClf, source };
}

/** A queue worker's `validate` study (the sample study) and source, rebuilt from the flags the coordinator recorded. */
export async function validateWorkerContext(ctx: JobContext): Promise<ResolvedContext> {
  const { tm, source } = await loadValidate(workerFlags(Schema, ctx));
  return { study: sampleStudy as unknown as ResolvedContext['study'], source, dispose: async () => tm.denoiser.dispose?.() };
}
