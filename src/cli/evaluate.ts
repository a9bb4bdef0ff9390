/** `memscope evaluate`: the mitigation evaluation table of Jain et al. (SPEC §4.5). */
import { isMemorizedCondition } from '../denoisers/denoiser.ts';
import { z } from 'zod';
import { commandHelp, flagDocs, SAMPLER_HELP } from './help.ts';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { positiveInt, finiteNumber, UsageError, asUsage, samplerFlag, nonNegativeInt } from './args.ts';
import { parseSeeds } from '../random/seeds.ts';
import { parsePrompts } from '../study/conditions.ts';
import type { StudySource } from '../study/source.ts';
import { loadCliSource, studyConfig, samplerFor, SD_SOURCE_FIELDS, SD_SOURCE_SECTION, MODEL_SPEC_HELP } from './source-flags.ts';
import { loadImageFolder } from '../data/folder.ts';
import { checkEvaluation, evaluateStudy, planEvaluation, classifierTools, type EvaluateResult, type EvaluateSettings, type EvaluateSource } from '../study/evaluate.ts';
import { evaluateMarkdown, evaluateTableHtml, type EvaluateTable } from '../study/views/evaluate.ts';
import { DEFAULT_METHODS, METHODS, parseMethods, methodLambda, methodRequires, skippedMethods, isGatedMethod, withGateThreshold, type MethodSpec } from '../mitigate/methods.ts';
import { calibrateGate, firstStepScores } from '../study/gate.ts';
import { sourceCapabilities } from '../study/capabilities.ts';
import { loadDescriptor } from '../metrics/descriptor.ts';
import { PROTOCOL_NAMES, PROTOCOLS, checkProtocolModel } from '../analysis/protocols.ts';
import { clipAlignmentScorer, clipPathsFromDir, loadClip, type Clip } from '../metrics/clip.ts';
import { loadInceptionFeatures, type InceptionFeatures } from '../metrics/inception.ts';
import { meanBatch } from '../tensor/ops.ts';
import { Classifier } from '../models/classifier.ts';
import { checkResultsTarget, withResultsDir } from '../io/results.ts';
import { sourceFingerprint } from '../study/fingerprint.ts';
import type { JobContext } from '../queue/jobs.ts';
import type { ResolvedContext } from '../queue/worker.ts';
import { STORE_FIELDS, STORE_SECTION, QUEUE_FIELDS, QUEUE_SECTION, checkQueueFlags, queueOptions, workerFlags, storeDirOf, openCliStore, closeCliStore, dryRunText, runStudyUnits, parseCommandFlags } from './study-run.ts';
import { writeJsonAtomic, writeFileAtomic } from '../io/atomic.ts';
import { gridPng } from '../report/png.ts';
import { writeNpy } from '../io/npy.ts';
import { page, escapeHtml } from '../report/html.ts';
import { type Tensor, numel } from '../tensor/tensor.ts';

const Schema = z.object({
  model: z.string().default('default').register(flagDocs, { value: 'SPEC', help: MODEL_SPEC_HELP }),
  prompts: z.string().default('memorized').register(flagDocs, {
    value: 'SPEC',
    help: 'prompts to evaluate: memorized (those tied to a training image trained on more than once; all when none), all, or a selection like caption:0-19,class:0-9 or dup:100',
  }),
  seeds: z.string().default('0-15').register(flagDocs, { value: 'LIST', help: 'seeds per prompt' }),
  methods: z.string().default(DEFAULT_METHODS).register(flagDocs, {
    value: 'LIST',
    help: `comma-separated (default {default}; from the default list, methods the model cannot run are skipped with the reason): name[:p][@τ|@lo-hi][/λog], as --guidance; for guidance methods p is λ (omitted: --scale), for the others their own parameter:
${METHODS.map((m) => `  ${m.form.padEnd(22)} ${m.about}`).join('\n')}
  ${'gated+METHOD'.padEnd(22)} METHOD only for prompts whose Wen et al. first-step score passes a threshold calibrated on held-out non-memorized prompts (--gate-calibration, --gate-fpr), plain CFG for the others (detect-then-mitigate)
random-word / random-number on a Stable Diffusion export re-encode the texts with its text encoder; ren works there by graph surgery on its U-Net's attn2 softmax nodes`,
  }),
  scale: finiteNumber('scale').default(7.5).register(flagDocs, { value: 'X', help: 'λ, the guidance scale of every method that does not write its own :λ' }),
  sampler: samplerFlag().default('dpmpp2m').register(flagDocs, { value: 'NAME', help: `${SAMPLER_HELP} (default {default}, as the paper; diffusers' class names accepted)` }),
  steps: positiveInt('steps', 1000).default(50).register(flagDocs, { value: 'N', help: 'inference steps' }),
  descriptor: z.string().optional().register(flagDocs, {
    value: 'SPEC',
    help: "copy descriptor: learned (default, models/descriptor) | pixel | sscd:PATH (default pixel on a Stable Diffusion export; sscd:PATH is the papers' choice)",
  }),
  protocol: z.enum(PROTOCOL_NAMES).optional().register(flagDocs, {
    value: 'NAME',
    help: "copy-detection protocol of an anchor's code, with --descriptor sscd:FILE: wen (disc_large, Resize 256 / CenterCrop 224 / Normalize 0.5, max over ground-truth images, mean/max/min over generations) | somepalli (DCR: disc_large, 256 → 224, top-1 over the training set, 95th percentile, fraction > 0.5) | nemo (disc_mixup, 320 × 320 skew, ImageNet normalisation, median over references, median ± MAD over prompts) | kim ((sim_train + sim_gen)/2 > 0.75); sets the descriptor's preprocessing and adds the protocol's numbers per method",
  }),
  'gate-calibration': z.string().min(1).optional().register(flagDocs, {
    value: 'SPEC',
    help: "held-out prompts known not to be memorized that calibrate the threshold of gated+M methods (default: the model's non-memorized captions that are not evaluated, e.g. graded's 1× captions)",
  }),
  'gate-fpr': finiteNumber('gate-fpr', { lo: 0, hi: 1, loOpen: true, hiOpen: true, expected: 'a rate strictly between 0 and 1' })
    .default(0.05)
    .register(flagDocs, { value: 'F', help: "gated+M: the threshold is the (1 − F) quantile of the calibration prompts' Wen first-step scores" }),
  threshold: finiteNumber('threshold').optional().register(flagDocs, {
    value: 'X',
    help: "copy threshold on the similarity (default: calibrated, the --calibration quantile of held-out test images' similarity to their nearest training image)",
  }),
  calibration: finiteNumber('calibration', { lo: 0, hi: 1, loOpen: true, hiOpen: true, expected: 'a quantile strictly between 0 and 1' })
    .default(0.99)
    .register(flagDocs, { value: 'Q', help: 'quantile for the calibrated threshold' }),
  classifier: z.string().optional().register(flagDocs, { value: 'DIR', help: 'classifier for alignment and Fréchet features (default models/classifier)' }),
  batch: positiveInt('batch', 100000).default(128).register(flagDocs, { value: 'N', help: 'rows per sampler call' }),
  seed: nonNegativeInt('seed').default(0).register(flagDocs, { value: 'N', help: 'seed of the prompt perturbations' }),
  grid: positiveInt('grid', 1000).default(8).register(flagDocs, { value: 'N', help: "prompts shown in each method's sample grid" }),
  out: z.string().default('runs/evaluate').register(flagDocs, { value: 'DIR', help: 'results directory' }),
  'held-out': z.string().min(1).optional().register(flagDocs, {
    value: 'DIR',
    help: 'Stable Diffusion: a folder of real images not in the training set (threshold calibration, Fréchet reference); without it give --threshold',
  }),
  clip: z.string().min(1).optional().register(flagDocs, {
    value: 'DIR',
    help: "CLIP score alignment (max(100·cos, 0) against the prompt text) from a CLIP ONNX export split into vision_model.onnx + text_model.onnx with its tokenizer files (DIR or DIR/onnx, DIR/tokenizer); replaces the classifier's accuracy",
  }),
  inception: z.string().min(1).optional().register(flagDocs, { value: 'PATH', help: "Inception-v3 pool features (ONNX) for the Fréchet distance (FID) instead of the classifier's" }),
  'inception-convention': z.enum(['pytorch-fid', 'torchvision']).optional().register(flagDocs, {
    value: 'C',
    help: 'how --inception resizes and normalizes: pytorch-fid (default; 299² bilinear, [−1, 1]) | torchvision (antialiased 299², ImageNet mean/std)',
  }),
  ...SD_SOURCE_FIELDS,
  ...STORE_FIELDS,
  ...QUEUE_FIELDS,
});

/** The help of `memscope evaluate`, generated from its schema. */
export const EVALUATE_HELP = commandHelp(Schema, {
  title: 'memscope evaluate — which mitigation removes the copy, at what cost? (Jain et al. Tables 1–4; docs/methods.md §4.5)',
  usage: 'memscope evaluate [flags]',
  blocks: [
    {
      flags: ['model', 'prompts', 'seeds', 'methods', 'scale', 'sampler', 'steps', 'gate-calibration', 'gate-fpr', 'descriptor', 'protocol', 'threshold', 'calibration', 'classifier', 'clip', 'inception', 'inception-convention', 'held-out', 'batch', 'seed', 'grid', 'out'],
    },
    SD_SOURCE_SECTION,
    `Columns: copy similarity to the nearest training image (95th percentile, mean ± std), similarity
to the prompt's own training image (prompts tied to one), memorization rate with its 95 % Wilson
interval at the prompt-cluster effective n ("inconclusive" below 10 prompts, or when the threshold
was calibrated on fewer than 1/(1 − Q) held-out images) — on a Stable Diffusion prompt set:
similarity to the prompt's own training image above the threshold (SSCD: 0.5, as Wen et al. and
Somepalli et al.; otherwise --threshold or the calibrated one); on the testbeds: the nearest
training image is the prompt's own; for prompts without one, similarity above the threshold (copy
rate, the fraction above the threshold, is in the CSV/JSON), alignment (classifier accuracy against
the prompt's class), Fréchet distance of classifier features to the held-out split, seconds per image.
DTP rows add the fraction of samples that never switched to λ, with their similarity and alignment.
Writes evaluate.md, evaluate.csv, evaluate.json (with every sample's similarities), grid-<method>.png,
samples-<method>.npy and report.html. samples-<method>.npy holds the images in [−1, 1], prompt-major
(row = prompt · seeds + seed index): [prompts·seeds, 1, 28, 28] on the testbed and trained models; on a
Stable Diffusion export the VAE-decoded RGB images [prompts·seeds, 3, H, W] at the sampled size (not
the latents). Writes run.json (the resolved settings, the unit keys, the store) beside them.`,
    STORE_SECTION,
    QUEUE_SECTION,
    `Units are one method × one prompt (all its seeds); a killed run resumes with the units it had not
finished, and units of the same model, prompts, seeds, sampler and method are reused by any later run.
The cfg row's units are the CFG sampling units that detect plans too (same model, prompts, seeds, λ,
sampler and steps): whichever runs first samples, the other reuses.`,
  ],
  examples: [
    'memscope evaluate --model models/duplication --seeds 0-15 --out runs/evaluate-duplication',
    'memscope evaluate --model models/class --methods cfg,stp@700,stp@600,og+dtp/2,interval@200-700 --out runs/ev-class',
  ],
});

/** The sentence above the table: model, prompts × seeds, λ, sampler, descriptor, threshold, pool, Fréchet reference. */
function evaluateIntro(src: StudySource, r: EvaluateResult, settings: EvaluateSettings, descriptor: string, scale: number, sampler: string, steps: number): string {
  return (
    `${src.description}; ${r.prompts.length} prompts × ${settings.seeds.length} seeds; λ = ${scale}; ${sampler} ${steps} steps; ` +
    `descriptor ${descriptor}; copy threshold ${r.threshold.text}; ` +
    `similarity against ${r.poolSize} training images; Fréchet reference: ${r.reference.heldOut} held-out images` +
    (r.reference.floor === null ? '' : ` (${r.reference.floorImages} real training images reach ${r.reference.floor.toFixed(2)})`) +
    '.'
  );
}

function csv(r: EvaluateResult): string {
  const header = ['method', 'images', 'similarity_p95', 'similarity_mean', 'similarity_std', 'own_similarity_p95', 'own_similarity_mean', 'own_similarity_std', 'copy_rate', 'memorization_rate', 'alignment', 'frechet', 'seconds_per_image', 'prep_seconds', 'sampling_seconds', 'never_switched', 'strict_copy_rate'];
  const rows = r.rows.map((x) => [x.method, x.images, x.similarity.p95, x.similarity.mean, x.similarity.std, x.targetSimilarity?.p95 ?? '', x.targetSimilarity?.mean ?? '', x.targetSimilarity?.std ?? '', x.copyRate, x.memorizationRate, x.alignment ?? '', x.frechet ?? '', x.secondsPerImage, x.prepSeconds, x.samplingSeconds, x.switching?.neverFraction ?? '', x.strict?.value ?? '']);
  return [header.join(','), ...rows.map((x) => x.join(','))].join('\n') + '\n';
}

/** A grid per method: one row per prompt (its training image first when it has one), one column per seed (up to 8). */
async function methodGrid(src: StudySource, r: EvaluateResult, samples: Tensor, N: number, gridPrompts: number): Promise<Buffer> {
  const P = Math.min(gridPrompts, r.prompts.length);
  const cols = Math.min(N, 8);
  const withTarget = r.prompts.slice(0, P).some((p) => p.target !== null);
  const C = cols + (withTarget ? 1 : 0);
  const shape = samples.dims.slice(1);
  const per = numel(shape);
  const data = new Float32Array(P * C * per).fill(1);
  for (let p = 0; p < P; p++) {
    const t = r.prompts[p]!.target;
    if (withTarget && t !== null) data.set(src.trainImages.data.subarray(t * per, (t + 1) * per), p * C * per);
    for (let j = 0; j < cols; j++) data.set(samples.data.subarray((p * N + j) * per, (p * N + j + 1) * per), (p * C + j + (withTarget ? 1 : 0)) * per);
  }
  return gridPng({ dims: [P * C, ...shape], data }, { cols: C, zoom: shape[1]! <= 64 ? 2 : 1 });
}

/**
 * `--guidance X` was evaluate's (and detect's) name for the scale until the guidance grammar
 * became the method grammar: refuse it, pointing to `--scale` (and to `--methods` for a schedule).
 */
export function refuseOldScaleFlag(argv: readonly string[], hasMethods = true): void {
  const i = argv.findIndex((a) => a === '--guidance' || a.startsWith('--guidance='));
  if (i < 0) return;
  const value = argv[i]!.includes('=') ? argv[i]!.slice(argv[i]!.indexOf('=') + 1) : (argv[i + 1] ?? '');
  const asNumber = value.trim() !== '' && Number.isFinite(Number(value));
  throw new UsageError(
    `--guidance: renamed to --scale (the guidance scale λ)${asNumber ? `; write --scale ${value}` : value === '' || !hasMethods ? '' : `; "${value}" is not a scale — a schedule goes into --methods (e.g. --methods cfg,${value})`}`,
  );
}

/**
 * Notes for methods that write their own λ different from `--scale` (their schedule uses it);
 * for og+… written `og+X:a` without `/λog` the note says what the old method grammar meant by it (λ_og = a).
 */
export function scaleNotes(methods: readonly MethodSpec[], scale: number): string[] {
  const out: string[] = [];
  for (const m of methods) {
    const l = methodLambda(m);
    if (l === null || l === scale) continue;
    const og = m.kind.startsWith('og+') && m.params['og'] === undefined;
    out.push(
      `note: ${m.name} guides with its own λ = ${l}, not --scale ${scale}` +
        (og ? ` (and λ_og = λ = ${l}); in the old method grammar ${m.name} meant λ_og = ${l} at λ = --scale: write ${m.kind}/${l} for that` : ''),
    );
  }
  return out;
}

/** Parse and run `memscope evaluate`. */
export async function evaluateCommand(argv: string[]): Promise<void> {
  refuseOldScaleFlag(argv);
  const { o, commandLine } = await parseCommandFlags(argv, Schema, { command: 'evaluate' });
  const seeds = asUsage(() => parseSeeds(o.seeds, '--seeds'));
  let methods = asUsage(() => parseMethods(o.methods));
  if (!o['dry-run']) await checkResultsTarget(o.out);
  await checkQueueFlags(o);
  const started = performance.now();
  const loaded = await loadEvaluate(o, seeds, methods);
  const { spec, src, descriptor, clfDir, hasClf, settings, inception, clip, evalTools } = loaded;
  methods = loaded.methods;
  const log = (m: string): void => void process.stderr.write(`${m}\n`);
  const storeDir = storeDirOf(o.store);
  // opened first: the model fingerprint caches its file hashes in the store
  const store = await openCliStore(storeDir, o['dry-run']);
  const source: EvaluateSource = { src, fingerprint: await sourceFingerprint(src), batchSize: settings.batchSize, log };
  const study = evaluateStudy(source, evalTools);
  const units = planEvaluation(settings, source);
  const runSpec = { model: spec, ...settings };
  const dispose = loaded.dispose;
  let r: EvaluateResult;
  let runJson: Awaited<ReturnType<typeof runStudyUnits>>['runJson'];
  try {
    if (o['dry-run'] || store === null) {
      process.stdout.write(dryRunText('evaluate', runSpec, units, store, storeDir));
      await dispose();
      return;
    }
    const ran = await runStudyUnits('evaluate', study, runSpec, units, source, store, { commandLine, ...queueOptions(o) });
    runJson = ran.runJson;
    if (ran.outcome.reused > 0) log(`${ran.outcome.reused} of ${units.length} method × prompt units reused from ${storeDir}`);
    r = await study.reduce(ran.outcome.units, store, settings);
    // the table, kept for the store views (their reduction would need the model and the tools)
    const { samples: _x, similarities: _y, targetSimilarities: _z, ...summary } = r;
    const table: EvaluateTable = { intro: evaluateIntro(src, r, settings, descriptor.info.name, o.scale, settings.sampler, o.steps), summary };
    store.putRunTable(runJson.studyRun, 'evaluate', table);
  } catch (e) {
    throw /^--/.test((e as Error).message) ? new UsageError((e as Error).message) : e;
  } finally {
    closeCliStore(store);
  }
  const md = evaluateMarkdown(r);
  await withResultsDir(o.out, async (dir) => {
    await writeJsonAtomic(join(dir, 'run.json'), runJson);
    await writeJsonAtomic(join(dir, 'settings.json'), { command: 'evaluate', model: spec, ...settings, descriptor: descriptor.info, protocol: evalTools.protocol ?? null, classifier: hasClf ? clfDir : null, clip: o.clip === undefined ? null : { dir: o.clip, vision: clip?.image.info ?? null, text: clip?.text.info ?? null }, inception: o.inception === undefined ? null : { path: o.inception, convention: inception!.convention, preprocessing: inception!.preprocessing, manifest: inception!.manifest }, alignment: r.alignmentName, quality: r.qualityName });
    const { samples: _s, similarities, targetSimilarities, ...rest } = r;
    void _s;
    const plain = (m: ReadonlyMap<string, Float64Array>) => Object.fromEntries([...m].map(([k, v]) => [k, Array.from(v)]));
    await writeJsonAtomic(join(dir, 'evaluate.json'), { ...rest, similarities: plain(similarities), targetSimilarities: plain(targetSimilarities) });
    await writeFileAtomic(join(dir, 'evaluate.csv'), csv(r));
    const intro = evaluateIntro(src, r, settings, descriptor.info.name, o.scale, settings.sampler, o.steps);
    await writeFileAtomic(join(dir, 'evaluate.md'), `${intro}\n\n${md}`);
    const grids: string[] = [];
    for (const row of r.rows) {
      const file = `grid-${row.method.replace(/[^a-z0-9+.-]/gi, '_')}.png`;
      await writeFileAtomic(join(dir, file), await methodGrid(src, r, r.samples.get(row.method)!, seeds.length, o.grid));
      await writeNpy(join(dir, file.replace(/^grid-/, 'samples-').replace(/\.png$/, '.npy')), r.samples.get(row.method)!);
      grids.push(`<figure><img src="${file}" alt="${escapeHtml(row.method)} samples"><figcaption>${escapeHtml(row.method)}</figcaption></figure>`);
    }
    const body = [
      `<p>${escapeHtml(intro)}</p>`,
      evaluateTableHtml(r),
      '<h2>Samples</h2><p class="note">One row per prompt (its training image first when it has one), one column per seed.</p>',
      `<div class="grid">${grids.join('\n')}</div>`,
    ].join('\n');
    await writeFileAtomic(join(dir, 'report.html'), page('memscope evaluate', body));
  }, { command: 'evaluate' });
  await dispose();
  process.stdout.write(`${md}\ntotal ${((performance.now() - started) / 1000).toFixed(0)} s\n${join(o.out, 'report.html')}\n`);
}

/**
 * Set the threshold of every gated+M method: Wen et al.'s first-step score of the calibration
 * prompts (--gate-calibration, default the non-memorized captions not evaluated) under the
 * evaluation's sampler and seeds, its (1 − --gate-fpr) quantile. Refuses calibration flags without a
 * gated method, no or overlapping calibration prompts, and memorized ones (exit 2).
 */
async function calibrateGates(o: z.infer<typeof Schema>, src: StudySource, methods: MethodSpec[], prompts: readonly number[], seeds: readonly number[]): Promise<MethodSpec[]> {
  const gated = methods.filter((m) => isGatedMethod(m));
  if (gated.length === 0) {
    if (o['gate-calibration'] !== undefined) throw new UsageError('--gate-calibration: only with a gated method in --methods (gated+og+dtp, gated+wen, …)');
    return methods;
  }
  const d = src.denoiser;
  const evaluated = new Set(prompts);
  const calib = asUsage(() =>
    o['gate-calibration'] !== undefined
      ? parsePrompts(o['gate-calibration'], d, '--gate-calibration', 'is not a prompt')
      : d.conditions.map((c, i) => (c.kind !== 'class' && !isMemorizedCondition(c) && !evaluated.has(i) ? i : -1)).filter((i) => i >= 0),
  );
  if (calib.length === 0) {
    throw new UsageError(`--gate-calibration: ${gated.map((m) => m.name).join(', ')} ${gated.length === 1 ? 'needs' : 'need'} held-out prompts known not to be memorized to calibrate the gate; ${src.description} has none outside --prompts, so name them (e.g. --gate-calibration caption:100-199)`);
  }
  const overlap = calib.filter((c) => evaluated.has(c));
  if (overlap.length) throw new UsageError(`--gate-calibration: ${overlap.map((c) => d.conditions[c]!.id).slice(0, 5).join(', ')}${overlap.length > 5 ? ` and ${overlap.length - 5} more` : ''} ${overlap.length === 1 ? 'is' : 'are'} also evaluated (--prompts); the calibration prompts must be held out`);
  const memorized = calib.filter((c) => isMemorizedCondition(d.conditions[c]!));
  if (memorized.length) throw new UsageError(`--gate-calibration: ${memorized.map((c) => d.conditions[c]!.id).slice(0, 5).join(', ')}${memorized.length > 5 ? ` and ${memorized.length - 5} more` : ''} ${memorized.length === 1 ? 'is' : 'are'} memorized by the model's labels; the threshold is a quantile of non-memorized prompts' scores`);
  const config = studyConfig(src);
  const sampler = samplerFor(o.sampler, config, o.model, () => {});
  const scores = await firstStepScores({ denoiser: d, conds: calib, seeds, sampler, steps: o.steps, config, lambda: o.scale, batchSize: o.batch });
  const cal = calibrateGate(calib.map((c) => d.conditions[c]!.id), scores, o['gate-fpr']);
  process.stderr.write(`gate threshold ${cal.text}\n`);
  return methods.map((m) => (isGatedMethod(m) ? withGateThreshold(m, cal.threshold, cal.fpr, calib.length) : m));
}

/** The SSCD descriptor of `--protocol` with the protocol's preprocessing, refused (exit 2) when its manifest names another checkpoint. */
async function loadProtocolDescriptor(protocol: (typeof PROTOCOLS)[keyof typeof PROTOCOLS], spec: string) {
  const descriptor = await loadDescriptor(spec, { sscd: protocol.sscd }).catch((e: Error) => {
    throw new UsageError(`--descriptor: ${e.message}`);
  });
  const problem = checkProtocolModel(protocol, descriptor.info);
  if (problem.error !== null) {
    await descriptor.dispose?.();
    throw new UsageError(`--protocol ${protocol.name}: ${problem.error}`);
  }
  if (problem.warning !== null) process.stderr.write(`--protocol ${protocol.name}: ${problem.warning}\n`);
  return descriptor;
}

/** Load the source, descriptor and scoring tools and resolve the settings of validated `evaluate` flags (the command and a queue worker share it). */
async function loadEvaluate(o: z.infer<typeof Schema>, seeds: number[], methods: MethodSpec[]) {
  const protocol = o.protocol === undefined ? undefined : PROTOCOLS[o.protocol];
  if (protocol !== undefined && !(o.descriptor ?? '').startsWith('sscd:')) {
    throw new UsageError(`--protocol ${protocol.name}: needs --descriptor sscd:FILE (${protocol.checkpoint ?? 'an SSCD checkpoint'} exported to ONNX, e.g. by scripts/convert/sscd_to_onnx.py), got ${o.descriptor === undefined ? 'no --descriptor' : `--descriptor ${o.descriptor}`}`);
  }
  // a protocol's SSCD export is checked (its manifest names the right checkpoint) before the model loads or anything runs
  const protocolDescriptor = protocol === undefined ? undefined : await loadProtocolDescriptor(protocol, o.descriptor!);
  const { spec, src } = await loadCliSource(o.model, o);
  const d = src.denoiser;
  if (o['held-out'] !== undefined && src.data.heldOut !== null) throw new UsageError(`--held-out: only for a model without a held-out split (a Stable Diffusion export); ${src.description} uses ${src.data.heldOut.description}`);
  if (o.classifier !== undefined && src.defaults.classifierDir === null) throw new UsageError(`--classifier: ${src.defaults.noClassifier ?? `${src.description} has no classifier`}`);
  if (d.conditions.length === 0) throw new UsageError(`--model: ${src.description} is unconditional; mitigation by guidance needs prompts`);
  // methods whose `requires` the source lacks: refused when listed by hand, skipped with the reason from the default list
  const skipped = skippedMethods(methods, sourceCapabilities(src, [...new Set(methods.flatMap((m) => methodRequires(m)))]));
  const reasons = [...new Set(skipped.map((x) => x.reason))];
  for (const why of reasons) {
    const names = skipped.filter((x) => x.reason === why).map((x) => x.method.name).join(', ');
    if (o.methods !== DEFAULT_METHODS) throw new UsageError(`--methods: ${names} ${why}`);
    process.stderr.write(`${names} skipped: they ${why}\n`);
  }
  methods = methods.filter((m) => !skipped.some((x) => x.method === m));
  for (const line of scaleNotes(methods, o.scale)) process.stderr.write(`${line}\n`);
  const prompts = asUsage(() => {
    if (o.prompts === 'memorized') {
      const mem = d.conditions.map((c, i) => (isMemorizedCondition(c) ? i : -1)).filter((i) => i >= 0);
      return mem.length ? mem : d.conditions.map((_, i) => i);
    }
    return parsePrompts(o.prompts, d, '--prompts', 'is not a prompt; mitigation acts on conditional sampling');
  });
  methods = await calibrateGates(o, src, methods, prompts, seeds);
  const descriptorSpec = o.descriptor ?? src.defaults.descriptor;
  const descriptor =
    protocolDescriptor ??
    (await loadDescriptor(descriptorSpec, descriptorSpec === 'pixel' && src.defaults.centerPixels ? { trainMean: meanBatch(src.trainImages).data } : {}).catch((e: Error) => {
      throw new UsageError(`--descriptor: ${e.message}`);
    }));
  const clfDir = o.classifier ?? src.defaults.classifierDir;
  const hasClf = clfDir !== null && (await stat(join(clfDir, 'weights.safetensors')).then(() => true, () => false));
  if (o.classifier && !hasClf) throw new UsageError(`--classifier: no weights.safetensors in ${o.classifier}; train one with memscope train --scenario classifier`);
  // checked before anything is sampled or written: the Fréchet distance needs a covariance (≥ 2 samples per method)
  const perMethod = prompts.length * seeds.length;
  if ((hasClf || o.inception !== undefined) && perMethod < 2) {
    throw new UsageError(`--seeds: the Fréchet distance needs at least 2 samples per method; --prompts ${o.prompts} gives ${prompts.length} prompt${prompts.length === 1 ? '' : 's'} and --seeds ${o.seeds} ${seeds.length} seed${seeds.length === 1 ? '' : 's'} (${perMethod} sample); give at least 2 seeds or 2 prompts`);
  }
  const classifier = hasClf && clfDir !== null ? await Classifier.load(clfDir) : null;
  const settings: EvaluateSettings = {
    prompts,
    seeds,
    methods,
    lambda: o.scale,
    sampler: samplerFor(o.sampler, studyConfig(src), o.model, (m) => void process.stderr.write(`${m}\n`)),
    steps: o.steps,
    config: studyConfig(src),
    batchSize: o.batch,
    threshold: o.threshold ?? null,
    calibrationQuantile: o.calibration,
    runSeed: o.seed,
  };
  const base = classifier ? classifierTools(classifier) : { quality: null, alignment: null };
  let clip: Clip | null = null;
  let inception: InceptionFeatures | null = null;
  if (o['inception-convention'] !== undefined && o.inception === undefined) throw new UsageError('--inception-convention: only with --inception PATH');
  if (o.clip !== undefined) {
    clip = await (async () => loadClip(clipPathsFromDir(o.clip!)))().catch((e: Error) => {
      throw new UsageError(`--clip: ${e.message}`);
    });
  }
  if (o.inception !== undefined) {
    inception = await loadInceptionFeatures(o.inception, o['inception-convention'] === undefined ? {} : { convention: o['inception-convention'] }).catch((e: Error) => {
      throw new UsageError(`--inception: ${e.message}`);
    });
  }
  const tools = { quality: inception ?? base.quality, alignment: clip === null ? base.alignment : clipAlignmentScorer(clip) };
  let heldOut: Tensor | undefined;
  if (o['held-out'] !== undefined) {
    const [, c, h, w] = src.trainImages.dims as [number, number, number, number];
    heldOut = (await loadImageFolder({ dir: o['held-out'], size: [h, w], color: c === 1 ? 'gray' : 'rgb' }).catch((e: Error) => {
      throw new UsageError(`--held-out: ${e.message}`);
    })).images;
  }
  const evalTools = { descriptor, ...tools, ...(heldOut === undefined ? {} : { heldOut }), ...(protocol === undefined ? {} : { protocol }) };
  asUsage(() => checkEvaluation(src, settings, evalTools));
  const dispose = async (): Promise<void> => {
    await classifier?.dispose();
    await clip?.dispose();
    await inception?.dispose();
    await d.dispose?.();
  };
  return { spec, src, d, methods, descriptor, clfDir, hasClf, settings, inception, clip, evalTools, dispose };
}

/** A queue worker's `evaluate` study and source, rebuilt from the flags the coordinator recorded. */
export async function evaluateWorkerContext(ctx: JobContext): Promise<ResolvedContext> {
  const o = workerFlags(Schema, ctx);
  const { src, settings, evalTools, dispose } = await loadEvaluate(o, parseSeeds(o.seeds, '--seeds'), parseMethods(o.methods));
  const source: EvaluateSource = { src, fingerprint: await sourceFingerprint(src), batchSize: settings.batchSize, log: (m) => void process.stderr.write(`${m}\n`) };
  return { study: evaluateStudy(source, evalTools) as unknown as ResolvedContext['study'], source, dispose };
}
