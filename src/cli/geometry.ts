/** `memscope geometry`: Dodson & Gao's noise regimes (SPEC §5) on the exact empirical denoiser and trained models, with the swap / under-training table. */
import { rateText } from '../analysis/verdict.ts';
import { z } from 'zod';
import { commandHelp, flagDocs, SAMPLER_HELP } from './help.ts';
import { join, dirname, basename } from 'node:path';
import { positiveInt, finiteNumber, nonNegativeInt, UsageError, asUsage, samplerFlag } from './args.ts';
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { logSigmaGrid } from '../analysis/geometry.ts';
import { geometryStudy, type GeometryModel, type GeometryResult, type GeometrySource } from '../study/geometry.ts';
import { denoiserFn } from '../analysis/geometry.ts';
import { makeGaussianDenoiser } from '../denoisers/gaussian.ts';
import { swapDenoiser, type SwapBand } from '../denoisers/swap.ts';
import type { Denoiser } from '../denoisers/denoiser.ts';
import { runSwapStudy, searchSwapBand, samplerSigmas, type SwapVariant, type SwapStudyResult, type BandSearch, type SwapRunOptions } from '../study/swap.ts';
import { SAMPLER_NAMES } from '../samplers/index.ts';
import { parseSeeds } from '../random/seeds.ts';
import { takeRows } from '../data/indices.ts';
import { Classifier } from '../models/classifier.ts';
import { classifierTools } from '../study/evaluate.ts';
import { checkResultsTarget, withResultsDir } from '../io/results.ts';
import type { UnitStore } from '../engine/study.ts';
import { STORE_FIELDS, STORE_SECTION, storeDirOf, openCliStore, closeCliStore, dryRunText, runStudyUnits, parseCommandFlags } from './study-run.ts';
import { runRecord, type RunRecord } from '../store/run-record.ts';
import { SHIPPED_MODEL, loadStudySource, type SdSourceOptions, type StudySource } from '../study/source.ts';
import { SD_SOURCE_FIELDS, SD_SOURCE_FLAGS, refuseSdFlags, sdSourceOptions, samplerFor } from './source-flags.ts';
import { loadImageFolder } from '../data/folder.ts';
import { type Tensor, concatBatch } from '../tensor/tensor.ts';
import { writeJsonAtomic } from '../io/atomic.ts';
import { fmt, escapeHtml } from '../report/html.ts';
import { writeSection } from '../report/section.ts';
import { swapHtml, geometrySection, fmtSpan } from '../study/views/geometry.ts';

const nonNegInt = (name: string) => nonNegativeInt(name);
const unit = (name: string) => finiteNumber(name, { lo: 0, hi: 1 });
const positive = (name: string) => finiteNumber(name, { lo: 0, loOpen: true });

const Schema = z.object({
  train: positiveInt('train', 12000, 2).default(1000).register(flagDocs, { value: 'N', help: 'without --model: the first N images of the embedded Fashion-MNIST train split' }),
  test: positiveInt('test', 2000).default(200).register(flagDocs, { value: 'M', help: 'test images: the first M of the embedded test split' }),
  sigmas: positiveInt('sigmas', 1000, 2).default(40).register(flagDocs, { value: 'N', help: 'number of log-spaced noise levels (default {default}, at least 2)' }),
  'sigma-min': positive('sigma-min').default(0.002).register(flagDocs, { value: 'X', help: 'smallest σ' }),
  'sigma-max': positive('sigma-max').default(80).register(flagDocs, { value: 'X', help: 'largest σ' }),
  seed: nonNegInt('seed').default(0).register(flagDocs, { value: 'N', help: 'seed of every noise draw' }),
  kappa: finiteNumber('kappa', { lo: 0 }).default(3).register(flagDocs, { value: 'X', help: 'shell half-thickness in units of σ/√2' }),
  'coverage-min': unit('coverage-min').default(0.5).register(flagDocs, { value: 'X', help: 'small regime where C_σ < X' }),
  'concentration-min': unit('concentration-min').default(0.5).register(flagDocs, { value: 'X', help: 'large regime where the test m_σ < X' }),
  ratio: positive('ratio').default(1 / 3).register(flagDocs, { value: 'X', help: 'memorized when ‖x̂ − NN1‖/‖x̂ − NN2‖ < X' }),
  out: z.string().default('runs/geometry').register(flagDocs, { value: 'DIR', help: 'results directory' }),
  ...STORE_FIELDS,
  model: z.string().min(1).optional().register(flagDocs, {
    value: 'DIR',
    help: 'a trained unconditional model (e.g. models/edm-small): the training set becomes its image pool, and its per-σ memorization rate and MSE are added; enables the swap table',
  }),
  compare: z.string().min(1).optional().register(flagDocs, { value: 'DIRS', help: 'more trained models (comma-separated), e.g. models/edm-small-undertrained,models/edm-large' }),
  generalizer: z.string().min(1).optional().register(flagDocs, {
    value: 'LIST',
    help: 'swap partners: model dirs and/or "lin" (D_lin of the training set); default: the --compare models not trained with a loss band, and lin',
  }),
  band: z
    .string()
    .regex(/^[0-9.eE+]+-[0-9.eE+]+$/, { message: 'expected LO-HI in σ, e.g. 1-4' })
    .transform((v, ctx) => {
      const cut = v.indexOf('-', 1);
      const band = { sigmaLo: Number(v.slice(0, cut)), sigmaHi: Number(v.slice(cut + 1)) };
      if (!(band.sigmaLo >= 0 && band.sigmaHi > band.sigmaLo && Number.isFinite(band.sigmaHi))) ctx.addIssue({ code: 'custom', message: `expected 0 ≤ LO < HI, got "${v}"` });
      return band;
    })
    .optional()
    .register(flagDocs, { value: 'LO-HI', help: 'swap band in σ (default: the medium regime, between the interpolated coverage and concentration boundaries)' }),
  target: unit('target').optional().register(flagDocs, { value: 'X', help: 'also search the narrowest swap band with trajectory-level rate ≤ X (first generalizer)' }),
  seeds: z.string().default('0-63').register(flagDocs, { value: 'LIST', help: 'seeds of the unconditional samples of the swap table' }),
  sampler: samplerFlag().default('ddim').register(flagDocs, { value: 'NAME', help: SAMPLER_HELP }),
  steps: positiveInt('steps', 1000).default(50).register(flagDocs, { value: 'N', help: 'sampler steps' }),
  classifier: z.string().default(join(dirname(SHIPPED_MODEL), 'classifier')).register(flagDocs, { value: 'DIR', help: 'Fréchet features', shownDefault: 'models/classifier' }),
  'held-out': z.string().min(1).optional().register(flagDocs, { value: 'DIR', help: 'real images not in the training set (the test inputs)' }),
  ...SD_SOURCE_FIELDS,
});

/** The help of `memscope geometry` (SPEC §5), generated from its schema. */
export const GEOMETRY_HELP = commandHelp(Schema, {
  title: "memscope geometry — Dodson & Gao's three noise regimes on the exact empirical denoiser (docs/methods.md §5)",
  usage: 'memscope geometry [flags]',
  blocks: [
    {
      flags: ['model', 'compare', 'generalizer', 'band', 'target', 'seeds', 'sampler', 'steps', 'classifier', 'train', 'test', 'sigmas', 'sigma-min', 'sigma-max', 'seed', 'kappa', 'coverage-min', 'concentration-min', 'ratio', 'out'],
    },
    STORE_SECTION,
    {
      heading: `Stable Diffusion (--model EXPORT_DIR with --prompt-set FILE and --held-out DIR, latent space): D* is built
over the VAE latents (× scaling factor) of the prompt set's training images, the test side is the held-out
folder's images encoded the same way, and the export's U-Net is added as a model through its
unconditional branch (e_∅ = the empty prompt) up to the σ of its last training timestep. The swap table
(--compare, --generalizer, --band, --target) needs memscope's trained models and is not available.
Its flags:`,
      flags: [...SD_SOURCE_FLAGS, 'held-out'],
    },
    `On the exact empirical denoiser D* over the training images: posterior concentration m_σ and the
effective number of contributors for noisy train and test inputs, the Gaussian-shell coverage C_σ of
noisy test inputs, the regime map (small: C_σ < coverage-min; else large: m_σ < concentration-min;
else medium, the danger zone), the linearity residual ‖D* − D_lin‖/‖D*‖ (D_lin = Gaussian denoiser
of the same images), the per-σ memorization rate of test images and the train vs test MSE. Writes
settings.json, geometry.json, concentration|memorization|gap|linearity .svg/.png and report.html,
and prints the regime boundaries.`,
    `With --model, every denoiser is also sampled unconditionally on the same seeds (the model, each
--compare model, D_lin, and the model with each generalizer swapped in inside the band) and scored by
the trajectory-level memorization rate (same ratio test against the model's training images) and
the Fréchet distance of classifier features to the 2,000 held-out test images (floor: a same-size set
of real training images): swap.json and the table in report.html. Every row (and every band the
search tries) is a unit kept in the results store (--store DIR), so a killed run resumes and a rerun
resamples nothing.`,
    `The curves are units of the store too: one for D* (every D* curve and D_lin's, keyed by the training
and test images, the σ grid, the seed, κ and the ratio threshold) and one per added model (keyed by its
fingerprint and the same settings): a rerun computes nothing, and changing only --coverage-min or
--concentration-min recomputes nothing. --dry-run counts the curve units (the swap table's rows are
planned once the regimes are known). Writes run.json next to the results.`,
  ],
  examples: ['memscope geometry --model models/edm-small --compare models/edm-small-undertrained,models/edm-large --target 0.1'],
});

/** A JSON-friendly copy of the result (typed arrays as plain arrays). */
function toJson(r: GeometryResult): unknown {
  return { ...r, memorization: { ...r.memorization, ratio: r.memorization.ratio.map((a) => Array.from(a)), nearest: r.memorization.nearest.map((a) => Array.from(a)) } };
}


/** Parse and run `memscope geometry` (SPEC §5). */
export async function geometryCommand(argv: string[]): Promise<void> {
  const { o, commandLine } = await parseCommandFlags(argv, Schema, { command: 'geometry' });
  if (!(o['sigma-max'] > o['sigma-min'])) throw new UsageError(`--sigma-max: expected a number > --sigma-min = ${o['sigma-min']}, got ${o['sigma-max']}`);
  const sigmas = asUsage(() => logSigmaGrid(o['sigma-min'], o['sigma-max'], o.sigmas));
  if (o.model === undefined) {
    for (const k of ['compare', 'generalizer', 'band', 'target'] as const) if (o[k] !== undefined) throw new UsageError(`--${k}: needs --model`);
  }
  const seeds = asUsage(() => parseSeeds(o.seeds, '--seeds'));
  const dryRun = o['dry-run'];
  if (!dryRun) await checkResultsTarget(o.out);
  const log = (m: string): void => void process.stderr.write(`${m}\n`);
  if (o.model === undefined) refuseSdFlags(o, ['held-out']);
  const settings = { seed: o.seed, kappa: o.kappa, coverageMin: o['coverage-min'], concentrationMin: o['concentration-min'], ratio: o.ratio };
  let trainSet: { images: Tensor; source: DataSource };
  let testSet: { images: Tensor; source: DataSource };
  const storeDir = storeDirOf(o.store);
  // opened first: model fingerprints cache their file hashes in it
  const store = await openCliStore(storeDir, dryRun);
  let r: GeometryResult;
  let swap: { study: SwapStudyResult; search: BandSearch | null; band: SwapBand | null } | null = null;
  let runJson: RunRecord;
  let opened: { main: LoadedModel; compare: LoadedModel[]; all: LoadedModel[] } | null = null;
  // the --model's image pool in image space (the swap table's ratio-test reference) and its indices
  let poolImages: Tensor | null = null;
  let pool: number[] | null = null;
  // the --model's space for D*: true = noisy images (the model called through its codec's view), false = its encoding of the images
  let inImageSpace = true;
  let swapOn = false;
  let swapSampler: string = o.sampler;
  try {
    opened = o.model === undefined ? null : await loadModels(o.model, o.compare, sdSourceOptions(o), o);
    // --sampler auto: the main model's own scheduler (the swap table samples with it)
    swapSampler = opened === null ? o.sampler : samplerFor(o.sampler, opened.main.src.schedule.config, o.model!, log);
    const main = opened?.main.src ?? null;
    if (main) {
      const view = main.codec.noisyImages;
      inImageSpace = view !== null;
      swapOn = swapReason(main) === null;
      pool = main.data.imagePool === null ? Array.from({ length: main.trainImages.dims[0]! }, (_, i) => i) : [...main.data.imagePool];
      poolImages = takeRows(main.trainImages, pool);
      const train = view !== null ? poolImages : concatBatch(pool.map((i) => main.toModelSpace(i)));
      trainSet = { images: train, source: main.data.credit?.() ?? USER_DATA };
      const held = main.data.heldOut;
      if (held !== null) {
        const all = held.load();
        if (o.test > all.dims[0]!) throw new UsageError(`--test: ${held.description} has ${all.dims[0]} images, got ${o.test}`);
        const images = takeRows(all, Array.from({ length: o.test }, (_, i) => i));
        testSet = { images: view !== null ? images : await main.codec.encode(images), source: held.credit?.() ?? USER_DATA };
      } else {
        const [, c, h, w] = main.trainImages.dims as [number, number, number, number];
        const folder = await loadImageFolder({ dir: o['held-out']!, size: [h, w], ...(c === 1 ? { color: 'gray' as const } : {}) }).catch((e: Error) => {
          throw new UsageError(`--held-out: ${e.message}`);
        });
        testSet = { images: view !== null ? folder.images : await main.codec.encode(folder.images), source: USER_DATA };
      }
    } else {
      trainSet = loadFashionMnist({ split: 'train', limit: o.train });
      testSet = loadFashionMnist({ split: 'test', limit: o.test });
    }
    const models: GeometryModel[] = [];
    for (const t of opened?.all ?? []) {
      const config = t.src.schedule.config;
      const D = denoiserFn(t.src.denoiser, { config });
      const fingerprint = await t.src.fingerprint();
      const view = t.src.codec.noisyImages;
      // on noisy images: the model's weights (its fingerprint) called through its codec's view with the study's seed;
      // on encoded images: the model (weights and settings) and its schedule, called through its unconditional branch
      models.push(
        view !== null
          ? { name: t.name, denoise: view.denoiser(D, o.seed), sigmaMax: t.src.schedule.range.sigmaMax, identity: { fingerprint, pad: view.key(o.seed) } }
          : { name: t.name, denoise: D, sigmaMax: t.src.schedule.range.sigmaMax, identity: { fingerprint, config } },
      );
    }
    const spec = geometryStudy.schema.parse({ sigmas, ...settings, models: models.map((m) => m.name) });
    const source: GeometrySource = { train: trainSet.images, test: testSet.images, models, log };
    const units = await asUsage(() => geometryStudy.plan(spec, source));
    const heldOutFolder = main !== null && main.data.heldOut === null;
    const runSpec = { ...spec, model: o.model ?? null, compare: o.compare ?? null, train: main ? null : o.train, test: heldOutFolder ? null : o.test, heldOut: o['held-out'] ?? null, promptSet: o['prompt-set'] ?? null };
    if (dryRun || store === null) {
      process.stdout.write(dryRunText('geometry', runSpec, units, store, storeDir));
      if (swapOn) process.stdout.write('(the swap table\'s rows are planned once the regimes are known; not counted above)\n');
      return;
    }
    const ran = await runStudyUnits('geometry', geometryStudy, runSpec, units, source, store, { commandLine });
    if (ran.outcome.reused > 0) log(`${ran.outcome.reused} of ${units.length} curve units from the store`);
    r = await geometryStudy.reduce(ran.outcome.units, store, spec);
    runJson = ran.runJson;
    if (opened && swapOn) {
      const swapKeys: string[] = [];
      let computed = ran.outcome.computed;
      const onUnits = (keys: readonly string[], c: number): void => {
        for (const k of keys) if (!swapKeys.includes(k)) swapKeys.push(k);
        computed += c;
      };
      swap = await swapTable(opened, { ...o, seeds, sampler: swapSampler }, r, poolImages!, pool!, store, log, onUnits);
      // the command's study run: the curve units, then the swap table's rows (each unit is computed once or reused)
      const keys = [...units.map((u) => u.key), ...swapKeys.filter((k) => !units.some((u) => u.key === k))];
      const runId = store.beginStudy('geometry', runSpec, keys);
      runJson = runRecord({ command: 'geometry', study: 'geometry', runId, spec: runSpec, keys, store: store.dir, computed, reused: keys.length - computed, commandLine });
      // the swap table (scored with the models and the classifier), kept for the store views
      store.putRunTable(runId, 'swap', swap);
    }
  } finally {
    if (opened) for (const t of new Set([...opened.all, ...opened.compare])) await t.src.denoiser.dispose?.();
    closeCliStore(store);
  }
  const rg = r.regimes;
  await withResultsDir(o.out, async (dir) => {
    await writeJsonAtomic(join(dir, 'run.json'), runJson);
    await writeJsonAtomic(join(dir, 'settings.json'), {
      command: 'geometry',
      train: !inImageSpace
        ? { model: o.model, promptSet: o['prompt-set'], latents: trainSet.images.dims, scalingFactor: opened!.main.src.codec.scalingFactor }
        : opened
          ? { split: 'train', imagePoolOf: o.model, images: trainSet.images.dims[0]!, source: trainSet.source }
          : { split: 'train', first: o.train, source: trainSet.source },
      ...(opened && swapOn ? { models: opened.all.map((t) => ({ dir: t.dir, scenario: t.src.info['scenario'], sigmaMax: t.src.schedule.range.sigmaMax })), swap: { seeds, sampler: swapSampler, steps: o.steps, band: swap?.band ?? null, target: o.target ?? null, generalizer: o.generalizer ?? null, classifier: o.classifier } } : {}),
      test: o['held-out'] !== undefined ? { heldOut: o['held-out'], ...(inImageSpace ? { images: testSet.images.dims } : { latents: testSet.images.dims }) } : { split: 'test', first: o.test, source: testSet.source },
      sigmas,
      ...settings,
    });
    await writeJsonAtomic(join(dir, 'geometry.json'), toJson(r));
    if (swap) await writeJsonAtomic(join(dir, 'swap.json'), swap);
    const sec = geometrySection(r, `<p>Exact empirical denoiser D* over ${!inImageSpace ? `the encodings (${escapeHtml(opened!.main.src.codec.kind)}, model space) of the ${r.n} training images of ${escapeHtml(opened!.main.src.description)}` : opened ? `the ${r.n} training images of ${escapeHtml(o.model!)}` : `the first ${r.n} Fashion-MNIST training images`}${o['held-out'] === undefined ? '' : ` (test: ${escapeHtml(o['held-out'])})`}; ${r.m} test images; ${r.sigma.length} σ from ${fmt(r.sigma[0]!)} to ${fmt(r.sigma[r.sigma.length - 1]!)}; seed ${o.seed}; ${fmt(r.seconds.total)} s. Plots use log10 σ on the x axis.</p>`, swap ? swapHtml(swap) : []);
    await writeSection(dir, 'memscope geometry', { ...sec, tail: [sec.tail ?? '', `<p>${escapeHtml(trainSet.source.dataset)} (${escapeHtml(trainSet.source.license)}), ${escapeHtml(trainSet.source.copyright)}.</p>`].join('\n') });
  }, { command: 'geometry' });
  const b = rg.boundaries;
  process.stdout.write(`small  (C_σ < ${fmt(rg.coverageMin)}): ${fmtSpan(rg.small)}\n`);
  process.stdout.write(`medium (danger zone): ${fmtSpan(rg.medium)}\n`);
  process.stdout.write(`large  (m_σ < ${fmt(rg.concentrationMin)}): ${fmtSpan(rg.large)}\n`);
  process.stdout.write(`boundaries: coverage σ = ${b.coverage === null ? 'none' : fmt(b.coverage)}, concentration σ = ${b.concentration === null ? 'none' : fmt(b.concentration)}${rg.contiguous ? '' : ' (labels not contiguous)'}\n`);
  const peak = r.memorization.rate.reduce((k, v, i, a) => (v > a[k]! ? i : k), 0);
  const gapPeak = r.gap.gap.reduce((k, v, i, a) => (v > a[k]! ? i : k), 0);
  process.stdout.write(`peak memorization rate ${fmt(r.memorization.rate[peak]!)} at σ = ${fmt(r.sigma[peak]!)}; largest gap ${fmt(r.gap.gap[gapPeak]!)} (test ${fmt(r.gap.testMse[gapPeak]!)} vs train ${fmt(r.gap.trainMse[gapPeak]!)} per pixel) at σ = ${fmt(r.sigma[gapPeak]!)}; ${fmt(r.seconds.total)} s\n`);
  for (const m of r.models) {
    const p = argmax(m.memorization.rate);
    process.stdout.write(`${m.name}: peak per-σ memorization rate ${fmt(m.memorization.rate[p]!)} at σ = ${fmt(m.sigma[p]!)} (rate ${fmt(m.memorization.rate[0]!)} at σ = ${fmt(m.sigma[0]!)}, ${fmt(m.memorization.rate[m.sigma.length - 1]!)} at σ = ${fmt(m.sigma[m.sigma.length - 1]!)})\n`);
  }
  if (swap) {
    process.stdout.write(`trajectory level (${swap.study.rows[0]!.samples} samples, ${swapSampler} ${o.steps} steps; swap band ${swap.band ? `[${fmt(swap.band.sigmaLo)}, ${fmt(swap.band.sigmaHi)}]` : 'none'}; Fréchet floor ${swap.study.frechetFloor === null ? '—' : fmt(swap.study.frechetFloor)}):\n`);
    for (const row of swap.study.rows) process.stdout.write(`  ${row.name.padEnd(44)} rate ${rateText(row.rate, row.samples)}  median d1/d2 ${row.medianRatio.toFixed(3)}  Fréchet ${row.frechet === null ? '—' : row.frechet.toFixed(1)}\n`);
    if (swap.search && swap.search.baseRate <= swap.search.target) process.stdout.write(`band search: the model alone is already at ${(100 * swap.search.baseRate).toFixed(1)} % ≤ ${fmt(swap.search.target)}; no band needed\n`);
    else if (swap.search) process.stdout.write(swap.search.best ? `narrowest band with rate ≤ ${fmt(swap.search.target)}: [${fmt(swap.search.best.band.sigmaLo)}, ${fmt(swap.search.best.band.sigmaHi)}] (${swap.search.best.stepsInBand} steps) → ${(100 * swap.search.best.rate).toFixed(1)} %\n` : `no band of the ${swap.search.trials.length} tried reaches rate ≤ ${fmt(swap.search.target)}\n`);
  }
  process.stdout.write(`${join(o.out, 'report.html')}\n`);
}

/** Where a data set comes from (settings.json, the report). */
interface DataSource {
  readonly dataset: string;
  readonly license: string;
  readonly copyright: string;
}

/** σ with 3 significant digits and no trailing zeros (row names). */
function short(v: number): string {
  return String(Number(v.toPrecision(3)));
}

function argmax(v: readonly number[]): number {
  return v.reduce((k, x, i, a) => (x > a[k]! ? i : k), 0);
}

/** The images of a model opened with a held-out folder: the user's. */
const USER_DATA: DataSource = { dataset: "the model's training images and the held-out folder (user data)", license: 'user-supplied', copyright: 'their owners' };

/** A model of the study, opened through the source registry. */
interface LoadedModel {
  /** The flag's value (a directory). */
  readonly dir: string;
  /** Row and curve name. */
  readonly name: string;
  readonly src: StudySource;
  /** Trained with a mid-σ loss band (SPEC §5.6b). */
  readonly undertrained: boolean;
}

/**
 * Why the swap table (SPEC §5.6) cannot run on `src`, or null: it scores samples by the Fréchet
 * distance of memscope's classifier features to the source's held-out split.
 */
function swapReason(src: StudySource): string | null {
  if (src.data.heldOut === null) return `not available for ${src.description}: it comes without a held-out split (the Fréchet reference)`;
  if (src.defaults.classifierDir === null) return `not available for ${src.description}: ${src.defaults.noClassifier ?? "memscope's classifier does not fit its images"}`;
  return null;
}

/**
 * Open `dir` (the value of `flag`) with the source registry, on the schedule stored with the model:
 * the study needs training images and an unconditional branch that stands for a model of them.
 * Errors name the flag.
 */
async function loadOne(dir: string, flag: string, sd?: SdSourceOptions): Promise<LoadedModel> {
  const src = await loadStudySource(dir, { ownSchedule: true, ...(sd === undefined ? {} : { sd }) }).catch((e: Error) => {
    const m = e.message;
    if (m.startsWith('--model: ')) throw new UsageError(`${flag}: cannot load the trained model in ${dir}: ${m.slice('--model: '.length)}`);
    throw new UsageError(flag === '--model' ? m : `${flag}: cannot load the trained model in ${dir}: ${m}`);
  });
  const why = src.trainImages.dims[0] === 0 ? `${src.description} comes without training images, and D* is built over them` : src.data.unconditionalReason ? `${src.data.unconditionalReason}; the geometry study needs an unconditional one (edm-small, edm-large, edm-small-undertrained)` : null;
  if (why !== null) {
    await src.denoiser.dispose?.();
    throw new UsageError(`${flag}: ${why}`);
  }
  return { dir, name: src.name ?? src.denoiser.name, src, undertrained: (src.data.lossBand ?? null) !== null };
}

/** Refuse (naming `flag`) a model `b` that does not work on `a`'s images in `a`'s space. */
function checkSameSpace(a: LoadedModel, b: LoadedModel, flag: string): void {
  const same = (x: readonly number[], y: readonly number[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
  const view = (m: LoadedModel): boolean => m.src.codec.noisyImages !== null;
  if (!same(a.src.denoiser.shape, b.src.denoiser.shape) || !same(a.src.trainImages.dims.slice(1), b.src.trainImages.dims.slice(1)) || view(a) !== view(b)) {
    throw new UsageError(`${flag}: ${b.dir} works on [${b.src.denoiser.shape.join(', ')}] (images [${b.src.trainImages.dims.slice(1).join(', ')}], ${b.src.codec.kind}), --model ${a.dir} on [${a.src.denoiser.shape.join(', ')}] (images [${a.src.trainImages.dims.slice(1).join(', ')}], ${a.src.codec.kind}); the models must share their space`);
  }
}

/**
 * Open `--model` (with the source flags `sd`; its notes printed) and the `--compare` models; refuse
 * the swap-table flags where the swap table cannot run and `--held-out` where the model has its
 * own held-out split (or its absence where it has none). Every opened model is disposed on error.
 */
async function loadModels(
  main: string,
  compare: string | undefined,
  sd: SdSourceOptions,
  o: { generalizer?: string | undefined; band?: unknown; target?: number | undefined; 'held-out'?: string | undefined },
): Promise<{ main: LoadedModel; compare: LoadedModel[]; all: LoadedModel[] }> {
  const m = await loadOne(main, '--model', sd);
  const c: LoadedModel[] = [];
  try {
    for (const line of m.src.notes) process.stderr.write(`${line}\n`);
    const noSwap = swapReason(m.src);
    const flags = { compare, generalizer: o.generalizer, band: o.band, target: o.target };
    if (noSwap !== null) for (const k of ['compare', 'generalizer', 'band', 'target'] as const) if (flags[k] !== undefined) throw new UsageError(`--${k}: the swap table needs memscope's trained models; ${noSwap}`);
    const held = m.src.data.heldOut;
    if (held !== null && o['held-out'] !== undefined) throw new UsageError(`--held-out: only for a model without a held-out split (a Stable Diffusion export); ${m.src.description} comes with ${held.description}`);
    if (held === null && o['held-out'] === undefined) throw new UsageError(`--held-out: ${m.src.description} comes without a held-out split; give a folder of held-out real images (the test inputs of m_σ, C_σ, the memorization rate and the gap)`);
    for (const dir of (compare ?? '').split(',').filter((x) => x.length)) {
      const x = await loadOne(dir, '--compare');
      c.push(x);
      checkSameSpace(m, x, '--compare');
    }
    const names = new Set<string>();
    for (const x of [m, ...c]) {
      if (names.has(x.name)) throw new UsageError(`--compare: two models are named '${x.name}'; give directories with different names`);
      names.add(x.name);
    }
  } catch (e) {
    for (const x of [m, ...c]) await x.src.denoiser.dispose?.();
    throw e;
  }
  return { main: m, compare: c, all: [m, ...c] };
}

/** The trajectory-level table of SPEC §5.6: the models, D_lin, and the swaps in the band; optional band search. */
async function swapTable(
  opened: { main: LoadedModel; compare: LoadedModel[] },
  o: { seeds: number[]; sampler: string; steps: number; band?: SwapBand | undefined; target?: number | undefined; generalizer?: string | undefined; classifier: string; seed: number },
  r: GeometryResult,
  poolImages: Tensor,
  pool: number[],
  store: UnitStore,
  log: (m: string) => void,
  onUnits: SwapRunOptions['onUnits'],
): Promise<{ study: SwapStudyResult; search: BandSearch | null; band: SwapBand | null }> {
  const classifier = await Classifier.load(o.classifier).catch((e: Error) => {
    throw new UsageError(`--classifier: cannot load ${o.classifier}: ${e.message}`);
  });
  const main = opened.main.src;
  // D_lin of the training pool in the model's space
  const lin = await makeGaussianDenoiser(await main.codec.encode(poolImages), { name: 'D_lin' });
  try {
    const config = main.schedule.config;
    const sampler = o.sampler as (typeof SAMPLER_NAMES)[number]; // resolved from auto by the caller
    const s = { seeds: o.seeds, sampler, steps: o.steps, config, threshold: r.ratio };
    const heldOut = main.data.heldOut!.load();
    const sc = { train: poolImages, heldOut, quality: classifierTools(classifier).quality, toImageSpace: main.codec.toImageSpace };
    const byName = new Map<string, Denoiser>([['lin', lin], ...opened.compare.map((c) => [c.dir, c.src.denoiser] as const)]);
    const genList = o.generalizer === undefined ? [...opened.compare.filter((c) => !c.undertrained).map((c) => c.dir), 'lin'] : o.generalizer.split(',').filter((x) => x.length);
    for (const g of genList) {
      if (!byName.has(g)) {
        const extra = await loadOne(g, '--generalizer');
        opened.compare.push(extra);
        checkSameSpace(opened.main, extra, '--generalizer');
        byName.set(g, extra.src.denoiser);
      }
    }
    const b = r.regimes.boundaries;
    const band = o.band ?? (b.coverage !== null && b.concentration !== null && b.concentration > b.coverage ? { sigmaLo: b.coverage, sigmaHi: b.concentration } : r.regimes.medium ? { sigmaLo: r.regimes.medium[0], sigmaHi: r.regimes.medium[1] } : null);
    const sig = samplerSigmas(sampler, config, o.steps);
    if (band && !sig.some((x) => x >= band.sigmaLo && x <= band.sigmaHi)) throw new UsageError(`--band: [${band.sigmaLo}, ${band.sigmaHi}] contains none of the sampler's σ (${fmt(Math.min(...sig))} … ${fmt(Math.max(...sig))})`);
    const mem = main.denoiser;
    // what identifies each denoiser's weights: a model's fingerprint; D_lin its training pool
    const fp = new Map<string, unknown>([['lin', { kind: 'D_lin', pool }]]);
    fp.set(opened.main.dir, await main.fingerprint());
    for (const c of opened.compare) fp.set(c.dir, await c.src.fingerprint());
    const memId = fp.get(opened.main.dir);
    const variants: SwapVariant[] = [
      { name: opened.main.name, kind: 'memorizing', denoiser: mem, identity: memId },
      ...opened.compare.filter((c) => o.generalizer === undefined || !genList.includes(c.dir) || c.undertrained).map((c): SwapVariant => ({ name: c.name, kind: c.undertrained ? 'undertrained' : 'generalizing', denoiser: c.src.denoiser, identity: fp.get(c.dir) })),
      ...(o.generalizer === undefined ? [{ name: 'D_lin', kind: 'generalizing' as const, denoiser: lin, identity: fp.get('lin') }] : genList.map((g): SwapVariant => ({ name: g === 'lin' ? 'D_lin' : basename(g), kind: 'generalizing', denoiser: byName.get(g)!, identity: fp.get(g) }))),
      ...(band ? genList.map((g): SwapVariant => { const gname = g === 'lin' ? 'D_lin' : basename(g); return { name: `swap ${gname} in [${short(band.sigmaLo)}, ${short(band.sigmaHi)}]`, kind: 'swap', band, denoiser: swapDenoiser(mem, byName.get(g)!, band, { disposeInner: false, mapCond: () => null }), identity: { memorizing: memId, generalizing: fp.get(g) } }; }) : []),
    ];
    const study = await runSwapStudy(variants, s, sc, { store, log, ...(onUnits ? { onUnits } : {}) });
    const search = o.target === undefined ? null : await searchSwapBand(mem, byName.get(genList[0]!)!, s, sc, { target: o.target, store, log, ...(onUnits ? { onUnits } : {}), identities: { memorizing: memId, generalizing: fp.get(genList[0]!) } });
    return { study, search, band };
  } finally {
    await lin.dispose();
    await classifier.dispose();
  }
}
