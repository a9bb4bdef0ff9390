/**
 * Train a scenario end to end (issue 3): the scenario's examples from the embedded data, the
 * text-conditioned (or unconditional) U-Net, the gradient graph from memscope's differentiator,
 * run by onnxruntime, AdamW + EMA + checkpoints from the trainer, and the finished model written as
 * `model.json` + `weights.safetensors` (EMA weights). Killed runs resume from the last checkpoint.
 */
import { z } from 'zod';
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { createSession, type Session, type Feed } from '../graph/session.ts';
import { gradientGraph } from '../graph/autodiff.ts';
import { EDM_SIGMA_MAX, EDM_SIGMA_MIN, EdmPreconditioningSchema } from '../models/edm.ts';
import { EDM_P_MEAN, EDM_P_STD, edmNoiseBatch } from './edm-noise.ts';
import { trainingAlphaBars, pad28to32 } from '../models/model-dir.ts';
import { type Tensor } from '../tensor/tensor.ts';
import { writeJsonAtomic } from '../io/atomic.ts';
import { buildScenario, SCENARIO_NAMES, type ScenarioData, type ScenarioName } from './scenarios.ts';
import { buildTrainingGraph, DiffusionModelConfigSchema, type DiffusionModelConfig } from '../models/diffusion-model.ts';
import { initParams } from '../models/init.ts';
import { WordTokenizer } from '../text/word-tokenizer.ts';
import { noiseBatch, stepEngine, uniformFrom, batchIndices } from './noise.ts';
import { train, type TrainBatch, type TrainResult } from './trainer.ts';
import { writeSafetensors } from '../io/safetensors.ts';
import { randomWordInsertion } from '../mitigate/prompt-noise.ts';

/** Settings of a training run (defaults in the schema; the resolved object is stored with the model). */
export const TrainSettingsSchema = z.object({
  scenario: z.enum(SCENARIO_NAMES),
  seed: z.number().int().min(0).default(0),
  steps: z.number().int().positive().default(3000),
  batchSize: z.number().int().positive().default(64),
  lr: z.number().positive().default(1e-3),
  weightDecay: z.number().min(0).default(0),
  warmupSteps: z.number().int().min(0).default(100),
  clipNorm: z.number().positive().default(1),
  emaDecay: z.number().min(0).max(1).default(0.999),
  /** Probability of replacing the prompt by the empty prompt (CFG training). */
  condDropout: z.number().min(0).max(1).default(0.1),
  checkpointEvery: z.number().int().positive().default(250),
  /** Noise-level sampling: VP (t uniform) or EDM log-normal σ (default: edm for the edm-* scenarios, vp otherwise). */
  sampling: z.enum(['vp', 'edm']).optional(),
  /**
   * The network's parameterisation: `eps` (ε-prediction, every model before issue 16) or `edm`
   * (EDM preconditioning, Karras et al. 2022: continuous log-normal σ in [0.002, 80], see `edm.ts`).
   * Absent = `eps`; kept absent in stored settings so that older checkpoints resume unchanged.
   */
  parameterization: z.enum(['eps', 'edm']).optional(),
  /** `graded`: captions per duplication count (default 10) and unique once-seen captions (default 200); absent = defaults. */
  gradedPerCount: z.number().int().positive().optional(),
  gradedUnique: z.number().int().min(0).optional(),
  /** `graded`: class-prompt images, a seeded sample of the images no caption uses; absent = all of them. */
  gradedClassImages: z.number().int().positive().optional(),
  /** Scenario sizes. */
  captions: z.number().int().positive().default(50),
  duplicates: z.number().int().positive().default(100),
  smallSet: z.number().int().positive().default(300),
  edmSmall: z.number().int().positive().default(1000),
  /** Mid-σ loss band for `edm-small-undertrained` (SPEC §5.6b): loss × ρ for σ ∈ [sigmaLo, sigmaHi] (default: the scenario's [0.2, 2], ρ 0.1). */
  band: z
    .object({ sigmaLo: z.number().positive(), sigmaHi: z.number().positive(), rho: z.number().min(0).max(1) })
    .refine((b) => b.sigmaLo < b.sigmaHi, { message: 'band: expected sigmaLo < sigmaHi' })
    .optional(),
  model: DiffusionModelConfigSchema.shape.unet.optional(),
  /**
   * Training-time mitigation of Somepalli et al. 2023 as Wen et al.'s training script runs it
   * (`--prompt_aug_style rand_word_add --repeat_num n`): every step, each example's caption gets n
   * words of the model's vocabulary inserted at uniform positions (seeded per step and row). Absent = none.
   */
  captionNoise: z.object({ kind: z.literal('random-word'), count: z.number().int().positive() }).optional(),
  /**
   * Wen et al. 2024's training-time mitigation (`--hard_threshold`): before each step, the
   * text-conditional noise estimate's magnitude ‖ε̂(x_t, e_p) − ε̂(x_t, e_∅)‖ (L2 over the image) is
   * computed with the current weights, and examples at or above the threshold leave the loss
   * (weight 0; the others are averaged, as their mean over the kept examples). Absent = none.
   */
  wenFilter: z.object({ threshold: z.number().positive() }).optional(),
});
/** Resolved training settings. */
export type TrainSettings = z.output<typeof TrainSettingsSchema>;

/** The default architecture per scenario (small enough to train on 2 CPU cores). */
export function defaultModelConfig(data: ScenarioData, vocabSize: number, unet?: DiffusionModelConfig['unet'], parameterization: 'eps' | 'edm' = 'eps'): DiffusionModelConfig {
  const text = data.conditioning === 'text';
  const u = unet ?? { channels: [32, 64, 64], attentionLevels: [false, true, true] };
  return DiffusionModelConfigSchema.parse({
    unet: { ...u, conditioning: text ? 'text' : 'none', contextDim: 64, contextLength: 16 },
    ...(text ? { textEncoder: { vocabSize, width: 64, maxLength: 16, layers: 1, heads: 4 } } : {}),
    ...(parameterization === 'edm' ? { preconditioning: EdmPreconditioningSchema.parse({ kind: 'edm' }) } : {}),
  });
}

/** What a finished run wrote. */
export interface TrainOutcome {
  readonly dir: string;
  readonly result: TrainResult;
  readonly imagesPerSecond: number;
}

/** Run (or resume) the training of a scenario into `dir`. */
export async function trainScenario(settingsIn: z.input<typeof TrainSettingsSchema>, dir: string, opts: { progress?: boolean; signal?: AbortSignal; log?: (m: string) => void } = {}): Promise<TrainOutcome> {
  const parsed = TrainSettingsSchema.parse(settingsIn);
  const edm = parsed.parameterization === 'edm';
  if (edm && parsed.sampling === 'vp') throw new Error('sampling: "vp" cannot be combined with parameterization "edm" (EDM draws its own log-normal σ)');
  const s = { ...parsed, sampling: parsed.sampling ?? (edm || parsed.scenario.startsWith('edm') ? ('edm' as const) : ('vp' as const)) };
  const log = opts.log ?? (() => {});
  const ds = loadFashionMnist({ split: 'train' });
  const data = buildScenario(s.scenario as ScenarioName, ds.labels, ds.classNames, s.seed, {
    captions: s.captions,
    duplicates: s.duplicates,
    smallSet: s.smallSet,
    edmSmall: s.edmSmall,
    ...(s.band ? { band: s.band } : {}),
    ...(s.gradedPerCount === undefined ? {} : { gradedPerCount: s.gradedPerCount }),
    ...(s.gradedUnique === undefined ? {} : { gradedUnique: s.gradedUnique }),
    ...(s.gradedClassImages === undefined ? {} : { gradedClassImages: s.gradedClassImages }),
  });
  const tokenizer = WordTokenizer.fromTexts(data.prompts.map((p) => p.text));
  const model = defaultModelConfig(data, tokenizer.vocabSize, s.model as DiffusionModelConfig['unet'] | undefined, edm ? 'edm' : 'eps');
  const B = s.batchSize;
  log(`building the training graph (batch ${B}) and its gradient graph…`);
  const g = buildTrainingGraph(model, B);
  const wrt = g.specs.map((p) => p.name);
  const gradBytes = gradientGraph(g.bytes, { loss: g.loss, wrt, inputShapes: g.inputShapes });
  const session: Session = await createSession(gradBytes);
  const alphaBar = trainingAlphaBars();
  const L = model.textEncoder?.maxLength ?? 0;
  const emptyIds = tokenizer.encode('', L || 16);
  const nEx = data.image.length;

  const makeBatch = (step: number): TrainBatch => {
    const idx = batchIndices(nEx, s.seed, B, step);
    const x0 = pad28to32(ds.images, idx.map((i) => data.image[i]!));
    let inputs: Map<string, Tensor>;
    if (model.preconditioning) {
      const e = edmNoiseBatch(x0, { seed: s.seed, step, precond: model.preconditioning, band: data.band ?? null });
      const col = (v: Float32Array): Tensor => ({ dims: [B, 1, 1, 1], data: v });
      inputs = new Map<string, Tensor>([
        ['x0', x0],
        ['noise', e.noise],
        ['sigma', col(e.sigma4)],
        ['c_skip', col(e.cSkip)],
        ['c_out', col(e.cOut)],
        ['c_in', col(e.cIn)],
        ['noise_label', { dims: [B], data: e.noiseLabel }],
        ['weight', { dims: [B], data: Float32Array.from(e.weight) }],
      ]);
    } else {
      const nb = noiseBatch(x0, { seed: s.seed, step, alphaBar, sampling: s.sampling === 'edm' ? { kind: 'edm' } : { kind: 'vp' }, band: data.band ?? null });
      inputs = new Map<string, Tensor>([
        ['x0', x0],
        ['noise', nb.eps],
        ['timestep', { dims: [B], data: Float32Array.from(nb.t) }],
        ['sqrt_alpha_bar', { dims: [B, 1, 1, 1], data: nb.sqrtAlphaBar }],
        ['sqrt_one_minus_alpha_bar', { dims: [B, 1, 1, 1], data: nb.sqrtOneMinusAlphaBar }],
        ['weight', { dims: [B], data: Float32Array.from(nb.weight) }],
      ]);
    }
    if (L) {
      const ids = captionIds({ seed: s.seed, step, L, condDropout: s.condDropout, captionNoise: s.captionNoise ?? null, texts: idx.map((i) => data.prompts[data.prompt[i]!]!.text), tokenizer });
      inputs.set('ids', { dims: [B, L], data: ids });
    }
    return { size: B, inputs };
  };

  // Wen et al.'s filter: a forward-only graph with the noise estimate as an output
  if (s.wenFilter && !L) throw new Error('wenFilter: the scenario is unconditional; the filter compares conditional and unconditional noise estimates');
  const fwd: Session | null = s.wenFilter ? await createSession(buildTrainingGraph(model, B, { epsOutput: true }).bytes) : null;
  // counted over the whole run and carried in the checkpoints; a checkpoint written without them (before they were carried) starts the count at its step
  const filterStats = { fromStep: 0, rows: 0, filtered: 0, byPrompt: new Map<number, { rows: number; filtered: number }>() };
  const filterState = {
    state: (): unknown => ({ wenFilter: { fromStep: filterStats.fromStep, rows: filterStats.rows, filtered: filterStats.filtered, byPrompt: [...filterStats.byPrompt].map(([p, e]) => [p, e.rows, e.filtered]) } }),
    restore: (v: unknown, step: number): void => {
      const w = (v as { wenFilter?: { fromStep: number; rows: number; filtered: number; byPrompt: [number, number, number][] } } | null)?.wenFilter;
      if (w === undefined) {
        filterStats.fromStep = step;
        return;
      }
      filterStats.fromStep = w.fromStep;
      filterStats.rows = w.rows;
      filterStats.filtered = w.filtered;
      for (const [p, rows, filtered] of w.byPrompt) filterStats.byPrompt.set(p, { rows, filtered });
    },
  };
  const wenWeights = async (batch: TrainBatch, feeds: Record<string, Feed>, step: number): Promise<void> => {
    const magnitudes = await conditionalMagnitudes(fwd!, feeds, emptyIds, B, L);
    const w = Float32Array.from(batch.inputs.get('weight')!.data);
    const idx = batchIndices(nEx, s.seed, B, step);
    magnitudes.forEach((m, r) => {
      const p = data.prompt[idx[r]!]!;
      const e = filterStats.byPrompt.get(p) ?? { rows: 0, filtered: 0 };
      e.rows++;
      filterStats.rows++;
      if (!(m < s.wenFilter!.threshold)) {
        w[r] = 0;
        e.filtered++;
        filterStats.filtered++;
      }
      filterStats.byPrompt.set(p, e);
    });
    // Wen et al. average the loss over the examples kept: rescale them by B / kept (the graph divides by B)
    const kept = magnitudes.filter((m) => m < s.wenFilter!.threshold).length;
    if (kept > 0 && kept < B) for (let r = 0; r < B; r++) w[r] = w[r]! * (B / kept);
    feeds['weight'] = { dims: [B], data: w };
  };
  const init = initParams(g.specs, s.seed);
  const gradNames = wrt.map((n) => `grad/${n}`);
  const started = performance.now();
  let stepsThisSession = 0;
  await mkdir(dir, { recursive: true });
  const result = await train({
    params: init,
    steps: s.steps,
    makeBatch,
    step: async (batch, params, step) => {
      const feeds: Record<string, Feed> = {};
      for (const [k, v] of batch.inputs) feeds[k] = k === 'ids' ? { type: 'int64', dims: v.dims, data: v.data } : v;
      for (const p of g.specs) feeds[p.name] = { dims: p.dims, data: params.get(p.name)! };
      if (fwd !== null) await wenWeights(batch, feeds, step);
      const out = await session.run(feeds, ['loss', ...gradNames]);
      const grads = new Map<string, Float32Array>();
      wrt.forEach((n, i) => grads.set(n, out[gradNames[i]!]!.data));
      stepsThisSession++;
      return { loss: out['loss']!.data[0]!, grads };
    },
    optimizer: { lr: s.lr, weightDecay: s.weightDecay, warmupSteps: s.warmupSteps },
    clipNorm: s.clipNorm,
    ema: { decay: s.emaDecay },
    checkpointDir: join(dir, 'checkpoints'),
    checkpointEvery: s.checkpointEvery,
    // steps and checkpointEvery may change between sessions (a run can be extended); the rest may not
    config: { settings: { ...s, steps: undefined, checkpointEvery: undefined }, model },
    progress: opts.progress ?? false,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(s.wenFilter ? { extra: filterState } : {}),
  });
  await session.release();
  await fwd?.release();
  const seconds = (performance.now() - started) / 1000;
  const imagesPerSecond = (stepsThisSession * B) / Math.max(seconds, 1e-9);
  const weights = result.ema ? result.ema.values : result.params;
  await writeSafetensors(join(dir, 'weights.safetensors'), new Map([...weights].map(([k, v]) => [k, { dims: g.specs.find((p) => p.name === k)!.dims, data: v }])), { format: 'memscope-trained-model', scenario: s.scenario });
  await writeJsonAtomic(join(dir, 'model.json'), {
    format: 'memscope-trained-model',
    version: 1,
    scenario: s.scenario,
    settings: s,
    model,
    tokenizer: tokenizer.toJSON(),
    prompts: data.prompts,
    imagePool: data.imagePool.length === ds.labels.length ? 'all' : data.imagePool,
    band: data.band ?? null,
    // The U-Net graph memscope builds always outputs ε on this VP schedule (EDM models: converted inside the graph).
    schedule: { beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012, num_train_timesteps: 1000, prediction_type: 'epsilon' },
    ...(model.preconditioning ? { edm: { ...model.preconditioning, sigmaMin: EDM_SIGMA_MIN, sigmaMax: EDM_SIGMA_MAX, pMean: EDM_P_MEAN, pStd: EDM_P_STD } } : {}),
    training: {
      steps: result.step,
      elapsedSeconds: result.elapsedSeconds,
      imagesPerSecondLastSession: imagesPerSecond,
      finalLossMean100: mean(result.lossHistory.slice(-100)),
      ...(s.wenFilter ? { wenFilter: filterSummary(filterStats, data) } : {}),
    },
  });
  return { dir, result, imagesPerSecond };
}

/** What {@link captionIds} needs: the run's seed, step and settings, and each row's caption. */
export interface CaptionIdsJob {
  readonly seed: number;
  readonly step: number;
  readonly L: number;
  readonly condDropout: number;
  readonly captionNoise: { readonly kind: 'random-word'; readonly count: number } | null;
  /** The caption of each row of the batch. */
  readonly texts: readonly string[];
  readonly tokenizer: WordTokenizer;
}

/**
 * The token ids `[B·L]` of a training batch: row r is the empty caption when the step's r-th
 * 'aux' draw is below `condDropout` (CFG training), else its caption — with `captionNoise`,
 * `count` vocabulary words inserted by {@link randomWordInsertion} seeded with ⌊2²⁴·u⌋ of the
 * step's (B + r)-th 'aux' draw (so runs without caption noise keep their stream).
 */
export function captionIds(job: CaptionIdsJob): Float32Array {
  const B = job.texts.length;
  const aux = uniformFrom(stepEngine(job.seed, job.step, 'aux'), job.captionNoise ? 2 * B : B);
  const ids = new Float32Array(B * job.L);
  const empty = job.tokenizer.encode('', job.L);
  job.texts.forEach((text, r) => {
    if (aux[r]! < job.condDropout) ids.set(empty, r * job.L);
    else if (job.captionNoise) {
      const noisy = randomWordInsertion(text, { seed: Math.floor(aux[B + r]! * 2 ** 24), count: job.captionNoise.count, vocabulary: job.tokenizer.words });
      ids.set(job.tokenizer.encode(noisy, job.L), r * job.L);
    } else ids.set(job.tokenizer.encode(text, job.L), r * job.L);
  });
  return ids;
}

/**
 * ‖ε̂(x_t, e_p) − ε̂(x_t, e_∅)‖ per row of a batch (the L2 norm over the image, as Wen et al.'s
 * `noise_pred_text.norm(p=2, dim=1)`): the forward graph run with the batch's captions and with the
 * empty caption on every row, same x_t and noise level.
 */
async function conditionalMagnitudes(fwd: Session, feeds: Readonly<Record<string, Feed>>, emptyIds: ArrayLike<number>, B: number, L: number): Promise<number[]> {
  const cond = (await fwd.run(feeds, ['eps_hat']))['eps_hat']!.data;
  const empty = new Float32Array(B * L);
  for (let r = 0; r < B; r++) empty.set(Array.from(emptyIds), r * L);
  const uncond = (await fwd.run({ ...feeds, ids: { type: 'int64', dims: [B, L], data: empty } }, ['eps_hat']))['eps_hat']!.data;
  const per = cond.length / B;
  return Array.from({ length: B }, (_, r) => {
    let ss = 0;
    for (let k = r * per; k < (r + 1) * per; k++) ss += (cond[k]! - uncond[k]!) ** 2;
    return Math.sqrt(ss);
  });
}

/** What Wen et al.'s filter removed from step `fromStep` on (0: the whole run): overall and by the captions' duplication count. */
function filterSummary(st: { fromStep: number; rows: number; filtered: number; byPrompt: Map<number, { rows: number; filtered: number }> }, data: ScenarioData): Record<string, unknown> {
  const byDup = new Map<string, { rows: number; filtered: number }>();
  for (const [p, e] of st.byPrompt) {
    const info = data.prompts[p]!;
    const key = info.kind === 'class' ? 'class' : `${info.duplicates ?? 'caption'}x`;
    const acc = byDup.get(key) ?? { rows: 0, filtered: 0 };
    acc.rows += e.rows;
    acc.filtered += e.filtered;
    byDup.set(key, acc);
  }
  return { fromStep: st.fromStep, rows: st.rows, filtered: st.filtered, fraction: st.rows ? st.filtered / st.rows : 0, byDuplication: Object.fromEntries([...byDup].sort()) };
}

function mean(v: readonly number[]): number {
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
}
