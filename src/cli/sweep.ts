/** `memscope sweep`: Jain et al.'s CFG-start sweep for one prompt and seed (SPEC §4.3). */
import { z } from 'zod';
import { commandHelp, flagDocs, SAMPLER_HELP } from './help.ts';
import { join } from 'node:path';
import { positiveInt, finiteNumber, UsageError, samplerFlag, nonNegativeInt } from './args.ts';
import { parseConditions } from '../study/conditions.ts';
import { loadCliSource, studyConfig, samplerFor, SD_SOURCE_FIELDS, SD_SOURCE_SECTION, MODEL_SPEC_HELP } from './source-flags.ts';
import { sweepStudy, sweepSpecOf, scoreSweep, type SweepResult, type SweepSource } from '../study/sweep.ts';
import { sourceFingerprint } from '../study/fingerprint.ts';
import type { JobContext } from '../queue/jobs.ts';
import type { ResolvedContext } from '../queue/worker.ts';
import { STORE_FIELDS, STORE_SECTION, QUEUE_FIELDS, QUEUE_SECTION, checkQueueFlags, queueOptions, workerFlags, storeDirOf, openCliStore, closeCliStore, dryRunText, runStudyUnits, parseCommandFlags } from './study-run.ts';
import type { RunRecord } from '../store/run-record.ts';
import { loadDescriptor } from '../metrics/descriptor.ts';
import { meanBatch } from '../tensor/ops.ts';
import { checkResultsTarget, withResultsDir } from '../io/results.ts';
import { writeJsonAtomic, writeFileAtomic } from '../io/atomic.ts';
import { sweepSection, sweepTableOf } from '../study/views/sweep.ts';
import { writeFigure, labelledStrip } from '../report/figure.ts';
import { page, imgTag, escapeHtml } from '../report/html.ts';

const Schema = z.object({
  model: z.string().default('default').register(flagDocs, { value: 'SPEC', help: MODEL_SPEC_HELP }),
  prompts: z.string({ message: '--prompts: required, e.g. caption:0' }).register(flagDocs, { value: 'COND', help: 'one memorized condition, e.g. caption:0' }),
  seeds: nonNegativeInt('seeds').default(0).register(flagDocs, { value: 'N', help: 'one seed' }),
  scale: finiteNumber('scale').default(7.5).register(flagDocs, { value: 'X', help: 'λ applied from the start step k on' }),
  og: z.boolean().default(false).register(flagDocs, { help: 'also sweep with opposite guidance −λ before k' }),
  'og-scale': finiteNumber('og-scale').optional().register(flagDocs, { value: 'X', help: 'λ_og of the OG variant (default λ)' }),
  every: positiveInt('every', 1000).default(1).register(flagDocs, { value: 'N', help: 'sweep every N-th start step' }),
  sampler: samplerFlag().default('ddim').register(flagDocs, { value: 'NAME', help: SAMPLER_HELP }),
  steps: positiveInt('steps', 1000).default(50).register(flagDocs, { value: 'N', help: 'inference steps' }),
  descriptor: z.string().optional().register(flagDocs, { value: 'SPEC', help: 'pixel | learned[:DIR] | sscd:PATH (default learned; pixel on a Stable Diffusion export)' }),
  threshold: finiteNumber('threshold').default(0.75).register(flagDocs, { value: 'X', help: 'a sample is a copy when its descriptor cosine to the target is ≥ X' }),
  out: z.string().default('runs/sweep').register(flagDocs, { value: 'DIR', help: 'results directory' }),
  ...STORE_FIELDS,
  ...QUEUE_FIELDS,
  ...SD_SOURCE_FIELDS,
});

/** The help of `memscope sweep`, generated from its schema. */
export const SWEEP_HELP = commandHelp(Schema, {
  title: 'memscope sweep — the CFG-start sweep of Jain et al. (docs/methods.md §4.3)',
  usage: 'memscope sweep --prompts COND [flags]',
  blocks: [
    { flags: ['model', 'prompts', 'seeds', 'scale', 'og', 'og-scale', 'every', 'sampler', 'steps', 'descriptor', 'threshold', 'out'] },
    STORE_SECTION,
    QUEUE_SECTION,
    SD_SOURCE_SECTION,
    `For every start step k one sample with s = 0 before k and λ from k (k = 0 is standard CFG,
k = steps never guides), its copy similarity to the prompt's training image and whether its
nearest training image is that image; the empirical transition point is the first k whose output is
not a copy. One stored unit per sample (variant, k); the scores are recomputed from the stored
samples, so a rerun (or another --descriptor / --threshold) samples nothing. Writes run.json,
sweep.json, sweep.csv, strips of the samples in step order, similarity.svg|png and report.html.`,
  ],
  examples: ['memscope sweep --model models/duplication --prompts caption:0 --seeds 0 --og --out runs/sweep'],
});

/** Parse and run `memscope sweep`. */
export async function sweepCommand(argv: string[]): Promise<void> {
  const { o, commandLine } = await parseCommandFlags(argv, Schema, {
    command: 'sweep',
    renamed: { prompt: 'prompts', seed: 'seeds', guidance: 'scale' },
    check: (raw) => {
      if (raw['prompts'] === undefined) throw new UsageError('--prompts: required; one memorized condition such as caption:0');
    },
  });
  if (!o['dry-run']) await checkResultsTarget(o.out);
  await checkQueueFlags(o);
  const { spec: modelSpec, src } = await loadCliSource(o.model, o);
  let cond: number;
  try {
    const cs = parseConditions(o.prompts, src.denoiser, '--prompts');
    if (cs.length !== 1 || cs[0] === null) throw new Error(`--prompts: the sweep takes exactly one condition such as caption:0, got "${o.prompts}"`);
    cond = cs[0];
    if (src.denoiser.conditions[cond]!.targets === undefined) throw new Error(`--prompts: ${src.denoiser.conditions[cond]!.id} has no training image to copy; pick a memorized caption`);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const descriptor = await loadDescriptor(o.descriptor ?? src.defaults.descriptor, { trainMean: meanBatch(src.trainImages).data }).catch((e: Error) => {
    throw new UsageError(`--descriptor: ${e.message}`);
  });
  const sampler = samplerFor(o.sampler, studyConfig(src), o.model, (m) => void process.stderr.write(`${m}\n`));
  const settings = { cond, seed: o.seeds, lambda: o.scale, og: o.og, ogLambda: o['og-scale'] ?? o.scale, sampler, steps: o.steps, config: studyConfig(src), every: o.every, threshold: o.threshold };
  const spec = sweepSpecOf(settings);
  const source: SweepSource = { src, config: settings.config, fingerprint: await sourceFingerprint(src) };
  const units = await sweepStudy.plan(spec, source);
  const storeDir = storeDirOf(o.store);
  const store = await openCliStore(storeDir, o['dry-run']);
  const started = performance.now();
  let r: SweepResult;
  let runJson: RunRecord;
  try {
    if (o['dry-run'] || store === null) {
      process.stdout.write(dryRunText('sweep', { model: modelSpec, ...spec }, units, store, storeDir));
      await descriptor.dispose?.();
      await src.denoiser.dispose?.();
      return;
    }
    const ran = await runStudyUnits('sweep', sweepStudy, { model: modelSpec, ...spec }, units, source, store, { commandLine, ...queueOptions(o) });
    runJson = ran.runJson;
    const samples = await sweepStudy.reduce(ran.outcome.units, store, spec);
    const scored = await scoreSweep(src, samples, descriptor, settings, (m) => process.stderr.write(`${m}\n`));
    r = { settings, prompt: scored.prompt, target: scored.target, timesteps: samples.timesteps, variants: scored.variants, seconds: (performance.now() - started) / 1000 };
    store.putRunTable(runJson.studyRun, 'sweep', sweepTableOf(r, descriptor.info.name));
  } finally {
    closeCliStore(store);
  }
  await withResultsDir(o.out, async (dir) => {
    await writeJsonAtomic(join(dir, 'run.json'), runJson);
    await writeJsonAtomic(join(dir, 'settings.json'), { command: 'sweep', model: modelSpec, prompt: o.prompts, descriptor: descriptor.info, ...settings, units: units.map((u) => u.key) });
    await writeSweepReport(dir, r, descriptor.info.name);
  }, { command: 'sweep' });
  await descriptor.dispose?.();
  await src.denoiser.dispose?.();
  for (const v of r.variants) process.stdout.write(`${v.label}: empirical transition point k = ${v.transition ?? 'none (every output is a copy)'}\n`);
  process.stdout.write(`${join(o.out, 'report.html')}\n`);
}

async function writeSweepReport(dir: string, r: SweepResult, descriptorName: string): Promise<void> {
  await writeJsonAtomic(join(dir, 'sweep.json'), { prompt: r.prompt, target: r.target, timesteps: r.timesteps, seconds: r.seconds, variants: r.variants.map((v) => ({ label: v.label, transition: v.transition, rows: v.rows })) });
  const csv = ['variant,k,t,similarity,nearest_is_target,copy', ...r.variants.flatMap((v) => v.rows.map((x) => `"${v.label}",${x.k},${x.t ?? ''},${x.similarity},${x.nearestIsTarget},${x.copy}`))].join('\n') + '\n';
  await writeFileAtomic(join(dir, 'sweep.csv'), csv);
  const section = sweepSection(sweepTableOf(r, descriptorName));
  await writeFigure(dir, 'similarity', section.figures[0]!.spec);
  const html: string[] = [section.head, `<img src="similarity.svg" width="640" alt="similarity against the start step">`];
  const per = 17;
  for (const [vi, v] of r.variants.entries()) {
    html.push(`<h2>${escapeHtml(v.label)}</h2>`);
    const imgPer = v.images.data.length / v.rows.length;
    for (let a = 0; a < v.rows.length; a += per) {
      const rows = v.rows.slice(a, a + per);
      const png = await labelledStrip({ dims: [rows.length, ...v.images.dims.slice(1)], data: v.images.data.slice(a * imgPer, (a + rows.length) * imgPer) }, rows.map((x) => `k=${x.k}${x.copy ? ' ©' : ''}`), { scale: 2 });
      await writeFileAtomic(join(dir, `strip-${vi}-${a / per}.png`), png);
      html.push(imgTag(png, `samples for k = ${rows[0]!.k}…${rows[rows.length - 1]!.k}`));
    }
  }
  html.push('<p>© marks outputs counted as copies (descriptor cosine ≥ threshold).</p>');
  await writeFileAtomic(join(dir, 'report.html'), page('memscope sweep', html.join('\n')));
}

/** A queue worker's `sweep` study and source, rebuilt from the flags the coordinator recorded (the study needs only the model). */
export async function sweepWorkerContext(ctx: JobContext): Promise<ResolvedContext> {
  const o = workerFlags(Schema, ctx);
  const { src } = await loadCliSource(o.model, o);
  const source: SweepSource = { src, config: studyConfig(src), fingerprint: await sourceFingerprint(src) };
  return { study: sweepStudy as unknown as ResolvedContext['study'], source, dispose: async () => src.denoiser.dispose?.() };
}
