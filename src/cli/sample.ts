/** `memscope sample`: sample a testbed condition or an ONNX model, tracing every step. */
import { z } from 'zod';
import { commandHelp, flagDocs, SAMPLER_HELP } from './help.ts';
import { join } from 'node:path';
import { positiveInt, finiteNumber, UsageError, InputError, asInput, didYouMean, samplerFlag } from './args.ts';
import { parseSeeds } from '../random/seeds.ts';
import type { GuidanceSchedule } from '../guidance/schedules.ts';
import { parseGuidance } from '../guidance/spec.ts';
import { loadSchedulerConfig } from '../schedules/config-file.ts';
import { TENSOR_QUANTITIES, type TensorQuantity } from '../record/recorders.ts';
import { parseConditions } from '../study/conditions.ts';
import { loadStudySource } from '../study/source.ts';
import { SD_SOURCE_FIELDS, SD_SOURCE_SECTION, sdSourceOptions, promptText, samplerFor } from './source-flags.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { writeJsonAtomic } from '../io/atomic.ts';
import { checkResultsTarget, withResultsDir } from '../io/results.ts';
import type { JobContext } from '../queue/jobs.ts';
import type { ResolvedContext } from '../queue/worker.ts';
import { STORE_FIELDS, QUEUE_FIELDS, QUEUE_SECTION, checkQueueFlags, queueOptions, workerFlags, storeDirOf, openCliStore, closeCliStore, dryRunText, runStudyUnits, parseCommandFlags } from './study-run.ts';
import { sampleStudy, SampleSpecSchema, type SampleSource, type SampleSpec } from '../study/sample-study.ts';

const Schema = z.object({
  model: z.string().min(1).default('testbed').register(flagDocs, {
    value: 'SPEC',
    help: `the model to sample (default {default}), one of:
  testbed      the analytic testbed on the embedded Fashion-MNIST data
  DIR          a model trained by memscope train (DIR/model.json)
  EXPORT_DIR   a Stable Diffusion ONNX export (diffusers / optimum layout), latent space; the export's own scheduler config is used unless --scheduler-config is given
  PATH.onnx    an ONNX noise-prediction model with the diffusers U-Net signature`,
  }),
  prompts: z.string().optional().register(flagDocs, { value: 'SPEC', help: 'conditions to sample: caption:0-3,class:0,uncond,all (default caption:0-1,class:0-1); with --prompt-set on an export, its prompts (caption:0-3)' }),
  captions: positiveInt('captions', 1000).optional().register(flagDocs, { value: 'N', help: 'number of memorized captions in the testbed (default 20)' }),
  cond: z.string().optional().register(flagDocs, { value: 'FILE.npy', help: 'condition rows (class labels [K] or encoder_hidden_states [K,L,D]); each row is sampled' }),
  uncond: z.string().optional().register(flagDocs, { value: 'FILE.npy', help: 'the null condition (default zeros)' }),
  'prediction-type': z.enum(['epsilon', 'v_prediction', 'sample']).optional().register(flagDocs, { value: 'T', help: 'epsilon | v_prediction | sample (default: scheduler config, else epsilon)' }),
  shape: z
    .string()
    .transform((s, ctx) => {
      if (!/^\s*[1-9]\d*(\s*,\s*[1-9]\d*)*\s*$/.test(s)) {
        ctx.addIssue({ code: 'custom', message: `expected comma-separated positive integers (the per-sample shape C,H,W), e.g. 4,64,64, got "${s}"` });
        return z.NEVER;
      }
      return s.split(',').map(Number);
    })
    .optional()
    .register(flagDocs, { value: 'C,H,W', help: "per-sample shape when the model's is dynamic" }),
  'scheduler-config': z.string().optional().register(flagDocs, { value: 'FILE', help: 'a diffusers scheduler_config.json (default: Stable Diffusion 1.x; an export: its own)' }),
  sampler: samplerFlag().default('ddim').register(flagDocs, {
    value: 'NAME',
    help: `${SAMPLER_HELP} (default {default}); diffusers' class names and the usual spellings are accepted (DDIMScheduler, DPMSolverMultistepScheduler, dpm++2m, EulerDiscreteScheduler, …)`,
  }),
  steps: positiveInt('steps', 1000).default(50).register(flagDocs, { value: 'N', help: 'inference steps' }),
  eta: finiteNumber('eta', { lo: 0, hi: 1, what: "DDIM's η: 0 deterministic, 1 = DDPM's variance; above 1 the step's variance exceeds 1 − ᾱ_prev" })
    .optional()
    .register(flagDocs, { value: 'X', help: "DDIM η in [0, 1] (default 0 = deterministic; 1 = DDPM's posterior variance); only with --sampler ddim" }),
  guidance: z.string().default('constant:7.5').register(flagDocs, {
    value: 'SPEC',
    help: 'constant:7.5 | stp:7.5@500 | dtp:7.5 | og+dtp:7.5 | og+stp:7.5@500 | interval:7.5@200-700 | linear:7.5 | cosine:7.5 | none',
  }),
  seeds: z.string().default('0-3').register(flagDocs, { value: 'LIST', help: 'e.g. 0-3 or 1,5,9-12 (default {default}); x_T = torch.randn with that seed' }),
  'batch-size': positiveInt('batch-size').optional().register(flagDocs, { value: 'N', help: 'rows per sampler call (default: all)' }),
  out: z.string().min(1).default('runs/sample').register(flagDocs, { value: 'DIR', help: 'results directory (default {default}); replaced only when the run succeeds' }),
  trajectory: z.boolean().default(false).register(flagDocs, {
    help: "also save x_t of every step as trajectory.npy [steps+1, rows, ...], in the variance-preserving scale of the model input: for euler that is sample/√(σ²+1), not diffusers' latents (sample = x_t·√(σ²+1); multiply entry i by √(σ_i²+1) to get them); for ddim and dpmpp2m they are the same",
  }),
  record: z.string().optional().register(flagDocs, { value: 'LIST', help: `more per-step tensors: ${TENSOR_QUANTITIES.join(',')} (saved as <name>.npy)` }),
  prompt: promptText().optional().register(flagDocs, { value: 'TEXT', help: 'one prompt to sample (or --prompt-set FILE with --prompts caption:0-3)' }),
  ...STORE_FIELDS,
  ...QUEUE_FIELDS,
  ...SD_SOURCE_FIELDS,
});

/** The help of `memscope sample`, generated from its schema (and --config, which parseCommandFlags adds). */
export const SAMPLE_HELP = commandHelp(Schema, {
  title: 'memscope sample — sample with any sampler and guidance schedule, tracing every denoising step',
  usage: 'memscope sample [flags]',
  blocks: [
    { heading: 'Model:', flags: ['model'] },
    { heading: 'Testbed and trained models (--model testbed | DIR):', flags: ['prompts', 'captions'] },
    { heading: 'Stable Diffusion export (--model EXPORT_DIR; more flags below):', flags: ['prompt'] },
    { heading: 'ONNX model (--model PATH.onnx):', flags: ['cond', 'uncond', 'prediction-type', 'shape'] },
    { heading: 'Sampling:', flags: ['scheduler-config', 'sampler', 'steps', 'eta', 'guidance', 'seeds', 'batch-size'] },
    {
      heading: 'Output:',
      flags: [
        'out',
        'store',
        'dry-run',
        { flag: 'config', value: 'OUT/run.json', help: "re-run (or re-render from the store) the run that wrote OUT with the flags it was made from; flags given beside it override them; results go to OUT unless --out is given, into run.json's store unless --store is given" },
        'trajectory',
        'record',
      ],
    },
    QUEUE_SECTION,
    SD_SOURCE_SECTION,
    `Writes run.json (resolved spec, unit keys, store, versions), config.json (resolved settings),
samples.npy (latents for an export, plus images.npy decoded), noise.npy, grid.png, guidance.json
(t, ᾱ_t, s and d_t per step and row, switch steps), report.html.`,
  ],
  examples: [
    'memscope sample --prompts caption:0-3 --guidance og+dtp:7.5 --seeds 0-7 --out runs/og',
    `memscope sample --model unet.onnx --cond cond.npy --uncond uncond.npy \\
      --scheduler-config scheduler_config.json --sampler ddim --steps 50 --guidance dtp:7.5 \\
      --seeds 0-3 --trajectory --out runs/a`,
  ],
});

/** Parse and run `memscope sample`. */
export async function sampleCommand(argv: string[]): Promise<void> {
  const { o, commandLine } = await parseCommandFlags(argv, Schema, { command: 'sample', legacyFlags: flagsOfSpec });
  const dryRun = o['dry-run'];
  const seeds = wrap(() => parseSeeds(o.seeds, '--seeds'));
  const guidance: GuidanceSchedule | undefined = o.guidance === 'none' ? undefined : wrap(() => parseGuidance(o.guidance));
  const record: TensorQuantity[] = o.record ? (o.record.split(',').map((s) => s.trim()) as TensorQuantity[]) : [];
  for (const q of record) if (!TENSOR_QUANTITIES.includes(q)) throw new UsageError(`--record: unknown quantity "${q}"${didYouMean(q, TENSOR_QUANTITIES)}; expected some of ${TENSOR_QUANTITIES.join(', ')}`);
  if (o.trajectory && !record.includes('xt')) record.unshift('xt');
  if ((o.eta ?? 0) > 0 && o.sampler !== 'ddim' && o.sampler !== 'auto') throw new UsageError(`--eta: only the ddim sampler takes η (got --sampler ${o.sampler})`);
  if (!dryRun) await checkResultsTarget(o.out);
  await checkQueueFlags(o);
  const storeDir = storeDirOf(o.store);
  const store = await openCliStore(storeDir, dryRun);
  try {
    const source = await loadSampleSource(o);
    const sampler = samplerFor(o.sampler, source.config, o.model, (m) => void process.stderr.write(`${m}\n`));
    if ((o.eta ?? 0) > 0 && sampler !== 'ddim') throw new UsageError(`--eta: only the ddim sampler takes η (--sampler auto chose ${sampler})`);
    const spec = sampleStudy.schema.parse(specFromFlags({ ...o, sampler }, record)) as SampleSpec;
    const units = await sampleStudy.plan(spec, source);
    if (dryRun) {
      await source.denoiser.dispose?.();
      process.stdout.write(dryRunText('sample', spec, units, store, storeDir));
      return;
    }
    const st = store!;
    const { outcome, runJson } = await runStudyUnits('sample', sampleStudy, spec, units, source, st, { commandLine, ...(o['batch-size'] === undefined ? {} : { maxBatch: o['batch-size'] }), ...queueOptions(o) });
    await source.denoiser.dispose?.();
    const denoiser = source.denoiser;
    const resolved = {
      command: 'sample',
      model: source.modelInfo,
      conditions: source.conds.map((c) => (c === null ? { id: 'uncond', label: 'unconditional' } : denoiser.conditions[c])),
      seeds,
      sampler,
      steps: o.steps,
      eta: o.eta ?? 0,
      guidance: guidance?.label ?? 'none',
      schedulerConfig: source.config,
      record,
      memscopeVersion: '0.1.0',
    };
    const summary = { ...(await sampleStudy.reduce(outcome.units, st, spec)), resolved };
    await withResultsDir(
      o.out,
      async (dir) => {
        await sampleStudy.report!(summary, dir, spec);
        await writeJsonAtomic(join(dir, 'run.json'), runJson);
      },
      { command: 'sample' },
    );
    process.stdout.write(`${o.out}/report.html\n`);
  } finally {
    closeCliStore(store);
  }
}

/**
 * Load the model `--model` names through the model-source registry (`SOURCE_LOADERS`: the
 * testbed, a trained model, a Stable Diffusion export, a bare ONNX U-Net file; each refuses the
 * flags of the others), its conditions, scheduler config and fingerprint.
 */
async function loadSampleSource(o: z.infer<typeof Schema>): Promise<SampleSource> {
  const schedulerConfig = o['scheduler-config'] ? await asInput('--scheduler-config', () => loadSchedulerConfig(o['scheduler-config']!)) : undefined;
  const onnx = {
    ...(o.cond === undefined ? {} : { cond: o.cond }),
    ...(o.uncond === undefined ? {} : { uncond: o.uncond }),
    ...(o['prediction-type'] === undefined ? {} : { predictionType: o['prediction-type'] }),
    ...(o.shape === undefined ? {} : { shape: o.shape }),
  };
  const src = await asInput('--model', () =>
    loadStudySource(o.model, {
      ...(schedulerConfig === undefined ? {} : { schedulerConfig }),
      sd: { ...sdSourceOptions(o), ...(o.prompt === undefined ? {} : { texts: [o.prompt] }) },
      onnx,
      testbed: o.captions === undefined ? {} : { captions: o.captions },
    }),
  );
  for (const line of src.notes) process.stderr.write(`${line}\n`);
  const denoiser = src.denoiser;
  const conds = wrap(() => parseConditions(o.prompts ?? src.defaults.samplePrompts, denoiser));
  // latents are decoded for the images; pixel-space samples are kept as the model made them
  const decode = denoiser.space === 'latent' ? (x: Tensor) => src.toImageSpace(x) : null;
  return { denoiser, conds, config: src.schedule.config, decode, modelInfo: src.info, fingerprint: await src.fingerprint() };
}

/** A queue worker's `sample` study and source, rebuilt from the flags the coordinator recorded (the model loaded once per context). */
export async function sampleWorkerContext(ctx: JobContext): Promise<ResolvedContext> {
  const o = workerFlags(Schema, ctx);
  const source = await loadSampleSource(o);
  return { study: sampleStudy as unknown as ResolvedContext['study'], source, dispose: async () => source.denoiser.dispose?.() };
}

/** The study spec of validated flags (flag names; `record` already holds `xt` for --trajectory). */
function specFromFlags(o: z.infer<typeof Schema>, record: readonly TensorQuantity[]): Record<string, unknown> {
  const skip = new Set(['out', 'store', 'dry-run', 'trajectory', 'record']);
  const spec: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (!skip.has(k) && v !== undefined) spec[k] = v;
  spec['record'] = [...record];
  return spec;
}

/** Flag values (as typed on the command line) of a resolved spec, for --config. */
function flagsFromSpec(spec: Record<string, unknown>): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (const [k, v] of Object.entries(spec)) {
    if (v === undefined || v === null) continue;
    if (k === 'record') {
      if (Array.isArray(v) && v.length) out[k] = v.join(',');
    } else if (Array.isArray(v)) out[k] = v.join(',');
    else out[k] = typeof v === 'boolean' ? v : String(v);
  }
  return out;
}

/** Flags of a run.json written before run.json recorded its flags: those of its resolved spec. */
function flagsOfSpec(spec: unknown, path: string): Record<string, string | boolean> {
  const parsed = SampleSpecSchema.safeParse(spec);
  if (!parsed.success) throw new InputError(`--config: ${path}: its spec is not a sample spec (${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')})`);
  return flagsFromSpec(parsed.data as Record<string, unknown>);
}

function wrap<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

