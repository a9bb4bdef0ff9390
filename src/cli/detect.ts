/** `memscope detect`: memorization detection scores and their ROC over a labelled prompt set. */
import { z } from 'zod';
import { commandHelp, flagDocs, SAMPLER_HELP } from './help.ts';
import { join } from 'node:path';
import { positiveInt, finiteNumber, UsageError, asUsage, samplerFlag } from './args.ts';
import { parseSeeds } from '../random/seeds.ts';
import { parsePrompts } from '../study/conditions.ts';
import { loadCliSource, studyConfig, samplerFor, SD_SOURCE_FIELDS, SD_SOURCE_SECTION, MODEL_SPEC_HELP } from './source-flags.ts';
import { closeDetectSource, detectPrompts, detectStudy, detectionResult, planDetection, type DetectResult, type DetectSource } from '../study/detect.ts';
import { sourceFingerprint } from '../study/fingerprint.ts';
import type { JobContext } from '../queue/jobs.ts';
import type { ResolvedContext } from '../queue/worker.ts';
import { STORE_FIELDS, STORE_SECTION, QUEUE_FIELDS, QUEUE_SECTION, checkQueueFlags, queueOptions, workerFlags, storeDirOf, openCliStore, closeCliStore, dryRunText, runStudyUnits, parseCommandFlags } from './study-run.ts';
import { refuseOldScaleFlag } from './evaluate.ts';
import { checkResultsTarget, withResultsDir } from '../io/results.ts';
import { writeJsonAtomic, writeFileAtomic } from '../io/atomic.ts';
import { fmt, escapeHtml } from '../report/html.ts';
import { writeSection } from '../report/section.ts';
import { detectSection } from '../study/views/detect.ts';

const Schema = z.object({
  model: z.string().default('default').register(flagDocs, { value: 'SPEC', help: MODEL_SPEC_HELP }),
  prompts: z.string().default('all').register(flagDocs, { value: 'SPEC', help: 'labelled prompt set (default {default}: memorized = conditions tied to a training image trained on more than once; dup:N selects by count)' }),
  seeds: z.string().default('0-3').register(flagDocs, { value: 'LIST', help: 'generations per prompt (default {default}, as Wen et al.)' }),
  scale: finiteNumber('scale').default(7.5).register(flagDocs, { value: 'X', help: 'guidance scale λ of the scored sampling run' }),
  sampler: samplerFlag().default('ddim').register(flagDocs, { value: 'NAME', help: SAMPLER_HELP }),
  steps: positiveInt('steps', 1000).default(50).register(flagDocs, { value: 'N', help: 'inference steps' }),
  out: z.string().default('runs/detect').register(flagDocs, { value: 'DIR', help: 'results directory' }),
  ...SD_SOURCE_FIELDS,
  ...STORE_FIELDS,
  ...QUEUE_FIELDS,
});

/** The help of `memscope detect`, generated from its schema. */
export const DETECT_HELP = commandHelp(Schema, {
  title: 'memscope detect — is this prompt memorized? Detection scores and ROC (docs/methods.md §4.4)',
  usage: 'memscope detect [flags]',
  blocks: [
    { flags: ['model', 'prompts', 'seeds', 'scale', 'sampler', 'steps', 'out'] },
    SD_SOURCE_SECTION,
    `Detectors: Wen et al.'s first-step ‖ε_c − ε_u‖ averaged over the seeds and its all-steps mean;
Webster's one-step white-box score σ²·mean(ε̂²) at x_T; Ren et al.'s cross-attention entropy at the
first step on text models. For each: ROC AUC
with its 95 % Hanley–McNeil interval ("inconclusive" below 10 prompts per class) and TPR at 1, 3, 5
and 10 % FPR (Wen et al.'s 1 %, Ren et al.'s four) with Wilson intervals ("inconclusive" below
⌈1/FPR⌉ normal prompts: 100, 34, 20, 10). Writes detect.json, detect.csv, roc.svg|png,
report.html and run.json (the resolved settings, the unit keys, the store).`,
    STORE_SECTION,
    QUEUE_SECTION,
    `Units per prompt (all its seeds): its CFG sampling run and its scores; a killed run resumes with the
prompts it had not scored. The sampling units are those of evaluate's cfg row: after \`memscope evaluate
--methods cfg\` with the same model, prompts, --seeds, --scale, --sampler and --steps (and store),
detect samples nothing (the reverse too).`,
  ],
  examples: ['memscope detect --model models/duplication --out runs/detect'],
});

/** Parse and run `memscope detect`. */
export async function detectCommand(argv: string[]): Promise<void> {
  refuseOldScaleFlag(argv, false);
  const { o, commandLine } = await parseCommandFlags(argv, Schema, { command: 'detect' });
  const seeds = asUsage(() => parseSeeds(o.seeds, '--seeds'));
  if (!o['dry-run']) await checkResultsTarget(o.out);
  await checkQueueFlags(o);
  const { spec, src, settings, labelled } = await loadDetect(o, seeds);
  const storeDir = storeDirOf(o.store);
  // opened first: the model fingerprint caches its file hashes in the store
  const store = await openCliStore(storeDir, o['dry-run']);
  const source: DetectSource = { src, fingerprint: await sourceFingerprint(src), log };
  const units = planDetection(settings, source);
  const runSpec = { model: spec, ...settings };
  let r: DetectResult;
  let runJson: Awaited<ReturnType<typeof runStudyUnits>>['runJson'];
  try {
    if (o['dry-run'] || store === null) {
      process.stdout.write(dryRunText('detect', runSpec, units, store, storeDir));
      await src.denoiser.dispose?.();
      return;
    }
    const ran = await runStudyUnits('detect', detectStudy, runSpec, units, source, store, { maxBatch: settings.promptsPerBatch, commandLine, ...queueOptions(o) });
    runJson = ran.runJson;
    if (ran.outcome.reused > 0) log(`${ran.outcome.reused} of ${units.length} units (CFG sampling and scores per prompt) reused from ${storeDir}`);
    r = detectionResult(labelled, ran.outcome.units, settings, log);
  } catch (e) {
    throw /^--/.test((e as Error).message) ? new UsageError((e as Error).message) : e;
  } finally {
    await closeDetectSource(source);
    closeCliStore(store);
  }
  await withResultsDir(o.out, async (dir) => {
    await writeJsonAtomic(join(dir, 'run.json'), runJson);
    await writeJsonAtomic(join(dir, 'settings.json'), { command: 'detect', model: spec, ...settings });
    await writeJsonAtomic(join(dir, 'detect.json'), r);
    const header = ['id', 'label', 'memorized', ...r.detectors.map((x) => x.name)];
    const rows = r.prompts.map((p, i) => [p.id, `"${p.label.replace(/"/g, '""')}"`, p.memorized, ...r.detectors.map((x) => x.scores[i])]);
    await writeFileAtomic(join(dir, 'detect.csv'), [header.join(','), ...rows.map((x) => x.join(','))].join('\n') + '\n');
    const intro = `<p>${escapeHtml(src.description)}; ${r.prompts.length} prompts (${r.prompts.filter((p) => p.memorized).length} memorized); ${seeds.length} seeds; CFG ${o.scale}; ${escapeHtml(settings.sampler)} ${o.steps} steps; sampling ${fmt(r.samplingSeconds)} s.</p>`;
    await writeSection(dir, 'memscope detect', detectSection(r, intro));
  }, { command: 'detect' });
  await src.denoiser.dispose?.();
  for (const x of r.detectors) process.stdout.write(`${x.name}: AUC ${x.aucText}; ${x.tprAtFprs.map((t) => `TPR@${Math.round(t.fpr * 100)}%FPR ${t.text}`).join('; ')}\n`);
  process.stdout.write(`${join(o.out, 'report.html')}\n`);
}

const log = (m: string): void => void process.stderr.write(`${m}\n`);

/** Load the source and resolve the settings of validated `detect` flags (the command and a queue worker share it). */
async function loadDetect(o: z.infer<typeof Schema>, seeds: number[]) {
  const { spec, src } = await loadCliSource(o.model, o, {}, { labelsSuffice: true });
  const prompts = asUsage(() => parsePrompts(o.prompts, src.denoiser, '--prompts', 'is not a prompt to classify'));
  const sampler = samplerFor(o.sampler, studyConfig(src), o.model, (m) => void process.stderr.write(`${m}\n`));
  const settings = { prompts, seeds, scale: o.scale, sampler, steps: o.steps, config: studyConfig(src), promptsPerBatch: 16 };
  const labelled = asUsage(() => detectPrompts(src, settings));
  return { spec, src, settings, labelled };
}

/** A queue worker's `detect` study and source, rebuilt from the flags the coordinator recorded. */
export async function detectWorkerContext(ctx: JobContext): Promise<ResolvedContext> {
  const o = workerFlags(Schema, ctx);
  const { src } = await loadDetect(o, parseSeeds(o.seeds, '--seeds'));
  const source: DetectSource = { src, fingerprint: await sourceFingerprint(src), log };
  return { study: detectStudy as unknown as ResolvedContext['study'], source, dispose: () => closeDetectSource(source) };
}
