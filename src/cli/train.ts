/** `memscope train`: train a scenario's model on the embedded data (resumes a killed run). */
import { z } from 'zod';
import { commandHelp, flagDocs, formatDefault, schemaDefault } from './help.ts';
import { parseFlags, flagsOf, validate, positiveInt, finiteNumber, nonNegativeInt, UsageError } from './args.ts';
import { SCENARIO_NAMES } from '../train/scenarios.ts';
import { trainScenario, TrainSettingsSchema } from '../train/run.ts';
import { trainClassifier, CLASSIFIER_DEFAULT_STEPS } from '../train/classifier.ts';
import { trainDescriptor, DESCRIPTOR_DEFAULT_STEPS } from '../train/descriptor.ts';
import { checkTrainTarget, defaultTrainOut } from '../train/out.ts';
import { UnetConfigSchema } from '../models/unet.ts';

const TARGETS = [...SCENARIO_NAMES, 'classifier', 'descriptor'] as const;

/** A training setting's default, from {@link TrainSettingsSchema}. */
function trainDefault(key: keyof typeof TrainSettingsSchema.shape): string {
  return formatDefault(schemaDefault(TrainSettingsSchema.shape[key]));
}

const Schema = z.object({
  scenario: z.enum(TARGETS, { message: `expected one of ${TARGETS.join(', ')}` }).register(flagDocs, { value: 'NAME', help: `what to train: ${TARGETS.join(', ')} (required; see Scenarios)` }),
  out: z.string().min(1).optional().register(flagDocs, {
    value: 'DIR',
    help: `model directory [${defaultTrainOut('<scenario>')}]; checkpoints go to DIR/checkpoints; rerunning the same command resumes a killed run from the last one, and a larger --steps extends a run that still has its checkpoints. A folder of other files, or a finished model without checkpoints (such as a shipped model), is refused instead of retrained from scratch`,
  }),
  steps: positiveInt('steps').optional().register(flagDocs, { value: 'N', help: `optimizer steps [${trainDefault('steps')}; classifier ${CLASSIFIER_DEFAULT_STEPS}, descriptor ${DESCRIPTOR_DEFAULT_STEPS}]` }),
  'batch-size': positiveInt('batch-size', 4096).optional().register(flagDocs, { value: 'N', help: `[${trainDefault('batchSize')}; classifier and descriptor 128]` }),
  seed: nonNegativeInt('seed').optional().register(flagDocs, { value: 'N', help: `[${trainDefault('seed')}]` }),
  lr: finiteNumber('lr', { lo: 0, loOpen: true }).optional().register(flagDocs, { value: 'X', help: `AdamW learning rate [${trainDefault('lr')}]` }),
  captions: positiveInt('captions', 320).optional().register(flagDocs, { value: 'N', help: `duplication: captions [${trainDefault('captions')}]` }),
  duplicates: positiveInt('duplicates').optional().register(flagDocs, { value: 'K', help: `duplication: copies per caption [${trainDefault('duplicates')}]` }),
  'checkpoint-every': positiveInt('checkpoint-every').optional().register(flagDocs, { value: 'N', help: `optimizer steps between checkpoints [${trainDefault('checkpointEvery')}]` }),
  sampling: z.enum(['vp', 'edm']).optional().register(flagDocs, { value: 'vp|edm', help: 'noise levels: t uniform (VP) or EDM log-normal σ [edm for edm-*, else vp]' }),
  parameterization: z.enum(['eps', 'edm'], { message: 'expected eps or edm' }).optional().register(flagDocs, {
    value: 'eps|edm',
    help: 'the network: ε-prediction, or EDM preconditioning (Karras et al. 2022: c_skip/c_out/c_in/c_noise, σ_data 0.5, ln σ ~ N(−1.2, 1.2²) in [0.002, 80]) [eps]',
  }),
  'per-count': positiveInt('per-count').optional().register(flagDocs, { value: 'N', help: 'graded: captions per duplication count [10]' }),
  unique: z.string().regex(/^\d+$/, { message: 'expected a non-negative integer' }).transform(Number).optional().register(flagDocs, { value: 'N', help: 'graded: unique captions whose image appears once [200]' }),
  'ema-decay': finiteNumber('ema-decay', { lo: 0, hi: 1 }).optional().register(flagDocs, { value: 'X', help: `EMA of the weights [${trainDefault('emaDecay')}]` }),
  channels: z
    .string()
    .transform((s, ctx) => {
      const problem = channelsProblem(s);
      if (problem !== null) {
        ctx.addIssue({ code: 'custom', message: problem });
        return z.NEVER;
      }
      return s.split(',').map(Number);
    })
    .optional()
    .register(flagDocs, { value: 'A,B,C', help: 'U-Net widths, each a multiple of 8 up to 1024, at most 6 levels [32,64,64]' }),
  images: positiveInt('images').optional().register(flagDocs, { value: 'N', help: `training images of small-set [${trainDefault('smallSet')}] / edm-small(-undertrained) [${trainDefault('edmSmall')}] / the class prompts of graded (a seeded sample of the images no caption uses) [all]` }),
  band: z
    .string()
    .regex(/^[0-9.eE+-]+-[0-9.eE+]+(:[0-9.eE+-]+)?$/, { message: 'expected LO-HI or LO-HI:RHO, e.g. 1-4:0.1' })
    .transform((v, ctx) => {
      const [range, rhoText] = v.split(':') as [string, string | undefined];
      const cut = range.indexOf('-', 1);
      const sigmaLo = Number(range.slice(0, cut));
      const sigmaHi = Number(range.slice(cut + 1));
      const rho = rhoText === undefined ? 0.1 : Number(rhoText);
      if (!(sigmaLo > 0 && sigmaHi > sigmaLo && Number.isFinite(sigmaHi))) ctx.addIssue({ code: 'custom', message: `expected 0 < LO < HI, got "${v}"` });
      if (!(rho >= 0 && rho <= 1)) ctx.addIssue({ code: 'custom', message: `expected ρ in [0, 1], got "${rhoText ?? ''}"` });
      return { sigmaLo, sigmaHi, rho };
    })
    .optional()
    .register(flagDocs, { value: 'LO-HI[:RHO]', help: 'edm-small-undertrained: loss × ρ for σ in [LO, HI] [0.2-2:0.1]' }),
  'caption-noise': z
    .string()
    .regex(/^random-word(:[1-9]\d*)?$/, { message: 'expected random-word or random-word:N (N ≥ 1 words)' })
    .transform((v) => ({ kind: 'random-word' as const, count: v.includes(':') ? Number(v.split(':')[1]) : 1 }))
    .optional()
    .register(flagDocs, { value: 'random-word[:N]', help: "Somepalli et al.'s training-time mitigation as Wen et al.'s script runs it (rand_word_add): N random vocabulary words inserted into every training caption, redrawn each step [1]" }),
  'wen-filter': finiteNumber('wen-filter', { lo: 0, loOpen: true, expected: 'a positive threshold' }).optional().register(flagDocs, {
    value: 'X',
    help: "Wen et al.'s training-time mitigation (--hard_threshold): examples whose ‖ε̂(x_t, caption) − ε̂(x_t, empty)‖ with the current weights is ≥ X leave the step's loss",
  }),
  'into-models': z.boolean().default(false).register(flagDocs, { help: "allow --out inside memscope's shipped models/ folder (never by default)" }),
});

/** The help of `memscope train`, generated from its schema; the defaults in brackets are the training settings' ({@link TrainSettingsSchema}). */
export const TRAIN_HELP = commandHelp(Schema, {
  title: "memscope train — train a scenario's diffusion model on the embedded Fashion-MNIST subset",
  usage: 'memscope train --scenario NAME [flags]',
  blocks: [
    `Scenarios: ${SCENARIO_NAMES.join(', ')}
  duplication             10 class prompts + captions each tied to one image duplicated K times
  small-set               a few hundred images, each with its own caption
  class                   class prompts only
  graded                  graded duplication: captions whose image appears 3, 10, 30, 100 times
                          (10 each), 200 unique captions seen once, class prompts over the rest
  edm-small / edm-large   unconditional, 1,000 images / the whole subset
  edm-small-undertrained  edm-small with the loss scaled by ρ inside a mid-σ band
  classifier              the 10-class CNN used to score class-prompt samples (${CLASSIFIER_DEFAULT_STEPS.toLocaleString('en-US')} steps, batch 128)
  descriptor              the learned copy descriptor of the memorization score: a CNN trained
                          contrastively (NT-Xent, τ 0.1) over strong augmentations (${DESCRIPTOR_DEFAULT_STEPS.toLocaleString('en-US')} steps, batch 128)`,
    {
      heading: 'Flags (defaults in brackets):',
      flags: ['scenario', 'out', 'into-models', 'steps', 'batch-size', 'seed', 'lr', 'captions', 'duplicates', 'sampling', 'parameterization', 'per-count', 'unique', 'checkpoint-every', 'ema-decay', 'channels', 'images', 'band', 'caption-noise', 'wen-filter'],
    },
    `Writes DIR/model.json (settings, architecture, tokenizer, prompts, training stats) and
DIR/weights.safetensors (EMA weights).`,
  ],
  examples: ['memscope train --scenario duplication                (→ runs/train/duplication)', 'memscope train --scenario edm-small --steps 5000 --out runs/edm-small-5k'],
});
/** Widest U-Net level accepted by --channels (a 28×28 testbed model; wider is memory, not science). */
const MAX_CHANNELS = 1024;

/**
 * Why a --channels value is not a U-Net memscope can build, or null: comma-separated widths, each a
 * multiple of 8 (GroupNorm's 8 groups and 4 attention heads) up to {@link MAX_CHANNELS}, at most 6
 * levels (the 32×32 padded input halves per level), the same rules as `UnetConfigSchema`.
 */
export function channelsProblem(s: string): string | null {
  const parts = s.split(',').map((p) => p.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) return `expected comma-separated positive integers, e.g. 32,64,64, got "${s}"`;
  const ch = parts.map(Number);
  const bad = ch.filter((c) => c < 8 || c % 8 !== 0 || c > MAX_CHANNELS);
  if (bad.length) return `each width must be a multiple of 8 between 8 and ${MAX_CHANNELS} (GroupNorm uses 8 groups, attention 4 heads), got "${s}" (${bad.join(', ')} not allowed)`;
  if (ch.length > 6) return `at most 6 levels (the 32×32 input halves at each level), got ${ch.length} in "${s}"`;
  const check = UnetConfigSchema.safeParse({ channels: ch, attentionLevels: ch.map((_, i) => i > 0) });
  if (!check.success) return `"${s}": ${check.error.issues.map((i) => i.message).join('; ')}`;
  return null;
}

const FLAGS = flagsOf(Schema);

/** The scenarios whose models are text-conditioned (the training-time mitigations act on captions). */
const TEXT_SCENARIOS: readonly string[] = ['duplication', 'graded', 'small-set', 'class'];

/** Parse and run `memscope train`. */
export async function trainCommand(argv: string[]): Promise<void> {
  const raw = parseFlags(argv, FLAGS);
  if (raw['scenario'] === undefined) throw new UsageError(`--scenario: required; expected one of ${TARGETS.join(', ')}`);
  const o = validate(Schema, raw);
  // flags that only some targets read: refused elsewhere instead of silently ignored
  const only: Record<string, readonly string[]> = {
    captions: ['duplication'],
    duplicates: ['duplication'],
    images: ['small-set', 'edm-small', 'edm-small-undertrained', 'graded'],
    band: ['edm-small-undertrained'],
    'per-count': ['graded'],
    unique: ['graded'],
    parameterization: SCENARIO_NAMES,
    channels: SCENARIO_NAMES,
    sampling: SCENARIO_NAMES,
    'ema-decay': SCENARIO_NAMES,
    'checkpoint-every': SCENARIO_NAMES,
    'caption-noise': TEXT_SCENARIOS,
    'wen-filter': TEXT_SCENARIOS,
  };
  for (const [k, targets] of Object.entries(only)) {
    if (raw[k] !== undefined && !targets.includes(o.scenario)) throw new UsageError(`--${k}: not used by --scenario ${o.scenario}; only by ${targets.join(', ')}`);
  }
  if (o.parameterization === 'edm' && o.sampling === 'vp') throw new UsageError('--sampling: "vp" cannot be combined with --parameterization edm (EDM draws its own log-normal σ); omit --sampling');
  const out = o.out ?? defaultTrainOut(o.scenario);
  const kind = o.scenario === 'classifier' || o.scenario === 'descriptor' ? o.scenario : 'model';
  const steps = o.steps ?? (o.scenario === 'classifier' ? CLASSIFIER_DEFAULT_STEPS : o.scenario === 'descriptor' ? DESCRIPTOR_DEFAULT_STEPS : TrainSettingsSchema.shape.steps.parse(undefined));
  await checkTrainTarget(out, { kind, scenario: o.scenario, steps, intoModels: o['into-models'] });
  if (o.scenario === 'classifier') {
    const r = await trainClassifier(out, { progress: true, ...(o.steps === undefined ? {} : { steps: o.steps }), ...(o.seed === undefined ? {} : { seed: o.seed }), ...(o.lr === undefined ? {} : { lr: o.lr }), ...(o['batch-size'] === undefined ? {} : { batch: o['batch-size'] }) });
    process.stderr.write(`classifier: test accuracy ${(100 * r.testAccuracy).toFixed(1)} % on the 2,000 embedded test images, ${r.seconds.toFixed(0)} s\n`);
    process.stdout.write(`${out}/classifier.json\n`);
    return;
  }
  if (o.scenario === 'descriptor') {
    const r = await trainDescriptor(out, { progress: true, ...(o.steps === undefined ? {} : { steps: o.steps }), ...(o.seed === undefined ? {} : { seed: o.seed }), ...(o.lr === undefined ? {} : { lr: o.lr }), ...(o['batch-size'] === undefined ? {} : { batch: o['batch-size'] }) });
    process.stderr.write(`descriptor: copy retrieval top-1 on the 2,000 test images ${JSON.stringify({ strong: r.strong, mild: r.mild })}, ${r.trainSeconds.toFixed(0)} s of training\n`);
    process.stdout.write(`${out}/descriptor.json\n`);
    return;
  }
  const scenario = o.scenario;
  const ac = new AbortController();
  const onSig = (): void => ac.abort(new Error('interrupted: a checkpoint was written; run the same command again to resume'));
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  try {
    const r = await trainScenario(
      {
        scenario,
        ...(o.steps === undefined ? {} : { steps: o.steps }),
        ...(o['batch-size'] === undefined ? {} : { batchSize: o['batch-size'] }),
        ...(o.seed === undefined ? {} : { seed: o.seed }),
        ...(o.lr === undefined ? {} : { lr: o.lr }),
        ...(o.captions === undefined ? {} : { captions: o.captions }),
        ...(o.duplicates === undefined ? {} : { duplicates: o.duplicates }),
        ...(o['checkpoint-every'] === undefined ? {} : { checkpointEvery: o['checkpoint-every'] }),
        ...(o['ema-decay'] === undefined ? {} : { emaDecay: o['ema-decay'] }),
        ...(o.sampling === undefined ? {} : { sampling: o.sampling }),
        ...(o.parameterization === undefined ? {} : { parameterization: o.parameterization }),
        ...(o['per-count'] === undefined ? {} : { gradedPerCount: o['per-count'] }),
        ...(o.unique === undefined ? {} : { gradedUnique: o.unique }),
        ...(o.images === undefined ? {} : scenario === 'small-set' ? { smallSet: o.images } : scenario === 'graded' ? { gradedClassImages: o.images } : { edmSmall: o.images }),
        ...(o.band === undefined ? {} : { band: o.band }),
        ...(o['caption-noise'] === undefined ? {} : { captionNoise: o['caption-noise'] }),
        ...(o['wen-filter'] === undefined ? {} : { wenFilter: { threshold: o['wen-filter'] } }),
        ...(o.channels === undefined ? {} : { model: { channels: o.channels, attentionLevels: o.channels.map((_, i) => i > 0) } }),
      },
      out,
      { progress: true, signal: ac.signal, log: (m) => void process.stderr.write(`${m}\n`) },
    );
    process.stderr.write(`trained ${r.result.step} steps (${r.result.resumedFrom === null ? 'fresh start' : `resumed from step ${r.result.resumedFrom}`}), ${r.imagesPerSecond.toFixed(1)} images/s, ${r.result.elapsedSeconds.toFixed(0)} s in all\n`);
    process.stdout.write(`${out}/model.json\n`);
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}
