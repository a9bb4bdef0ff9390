/** `memscope sample`: sample a testbed condition or an ONNX model, tracing every step. */
import { z } from 'zod';
import { commandHelp, flagDocs, SAMPLER_HELP } from './help.ts';
import { join } from 'node:path';
import { parseFlags, flagsOf, type OptionSpec, validate, positiveInt, finiteNumber, UsageError, InputError, asInput, didYouMean, samplerFlag } from './args.ts';
import { parseSeeds } from '../random/seeds.ts';
import type { GuidanceSchedule } from '../guidance/schedules.ts';
import { parseGuidance } from '../guidance/spec.ts';
import { loadSchedulerConfig, stableDiffusionConfig, type SchedulerConfig } from '../schedules/config.ts';
import { TENSOR_QUANTITIES, type TensorQuantity } from '../record/recorders.ts';
import { parseConditions } from '../study/conditions.ts';
import { defaultTestbed } from '../study/testbed.ts';
import { loadOnnxDenoiser } from '../denoisers/onnx.ts';
import { loadTrainedModel } from '../denoisers/trained.ts';
import { isSdExportDir, loadSdStudySource } from '../study/sd-source.ts';
import { SD_SOURCE_FIELDS, SD_SOURCE_SECTION, refuseSdFlags, sdImageSizeNote, sdSourceOptions, promptText } from './source-flags.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { stat } from 'node:fs/promises';
import { readNpy } from '../io/npy.ts';
import { writeJsonAtomic } from '../io/atomic.ts';
import { checkResultsTarget, withResultsDir } from '../io/results.ts';
import type { CondRef, Denoiser } from '../denoisers/denoiser.ts';
import { readFile } from 'node:fs/promises';
import { defaultStoreDir } from '../store/sqlite-store.ts';
import { openCliStore, closeCliStore, dryRunText, runStudyUnits } from './study-run.ts';
import { describedFingerprint, folderFingerprint } from '../store/fingerprint.ts';
import { RUN_FORMAT } from '../store/run-record.ts';
import { sampleStudy, SampleSpecSchema, type SampleSource, type SampleSpec } from '../study/sample-study.ts';
import { defaultFashionMnistDir } from '../data/fashion-mnist.ts';

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
  store: z.string().min(1).optional().register(flagDocs, {
    value: 'DIR',
    help: 'results store (default $MEMSCOPE_STORE, else runs/store): every finished (condition, seed) unit is kept there; a rerun reuses stored units',
  }),
  ...SD_SOURCE_FIELDS,
});

/** The help of `memscope sample`, generated from its schema (and the two flags it parses itself, --dry-run and --config). */
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
        { flag: 'dry-run', help: 'print the resolved spec, the number of units (how many are already in the store) and an estimate of their time; computes and writes nothing' },
        { flag: 'config', value: 'OUT/run.json', help: 're-run (or re-render from the store) the run that wrote OUT; flags given beside it override its values (e.g. --out)' },
        'trajectory',
        'record',
      ],
    },
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

const FLAGS: OptionSpec = { ...flagsOf(Schema), config: { type: 'string' }, 'dry-run': { type: 'boolean' } };

/** Parse and run `memscope sample`. */
export async function sampleCommand(argv: string[]): Promise<void> {
  const raw = parseFlags(argv, FLAGS);
  const configPath = raw['config'];
  const dryRun = raw['dry-run'] === true;
  delete raw['config'];
  delete raw['dry-run'];
  const fromConfig = typeof configPath === 'string' ? await readRunConfig(configPath) : null;
  const o = validate(Schema, fromConfig === null ? raw : { ...fromConfig.flags, ...definedOnly(raw) });
  const seeds = wrap(() => parseSeeds(o.seeds, '--seeds'));
  const guidance: GuidanceSchedule | undefined = o.guidance === 'none' ? undefined : wrap(() => parseGuidance(o.guidance));
  const record: TensorQuantity[] = o.record ? (o.record.split(',').map((s) => s.trim()) as TensorQuantity[]) : [];
  for (const q of record) if (!TENSOR_QUANTITIES.includes(q)) throw new UsageError(`--record: unknown quantity "${q}"${didYouMean(q, TENSOR_QUANTITIES)}; expected some of ${TENSOR_QUANTITIES.join(', ')}`);
  if (o.trajectory && !record.includes('xt')) record.unshift('xt');
  if ((o.eta ?? 0) > 0 && o.sampler !== 'ddim') throw new UsageError(`--eta: only the ddim sampler takes η (got --sampler ${o.sampler})`);
  const onnxFile = o.model.endsWith('.onnx');
  if (!onnxFile) {
    for (const k of ['shape', 'prediction-type'] as const) if (o[k] !== undefined) throw new UsageError(`--${k}: only for --model PATH.onnx (an ONNX noise-prediction model), not "${o.model}"`);
  }
  if (o.captions !== undefined && o.model !== 'testbed') throw new UsageError(`--captions: only for --model testbed (the number of memorized captions it builds), not "${o.model}"`);
  if (!dryRun) await checkResultsTarget(o.out);
  // --config uses the store its run.json names unless --store is given
  const storeDir = o.store ?? fromConfig?.store ?? defaultStoreDir();
  const store = await openCliStore(storeDir, dryRun);
  try {
    const source = await loadSampleSource(o);
    const spec = sampleStudy.schema.parse(specFromFlags(o, record)) as SampleSpec;
    const units = await sampleStudy.plan(spec, source);
    if (dryRun) {
      await source.denoiser.dispose?.();
      process.stdout.write(dryRunText('sample', spec, units, store, storeDir));
      return;
    }
    const st = store!;
    const { outcome, runJson } = await runStudyUnits('sample', sampleStudy, spec, units, source, st, o['batch-size'] === undefined ? {} : { maxBatch: o['batch-size'] });
    await source.denoiser.dispose?.();
    const denoiser = source.denoiser;
    const resolved = {
      command: 'sample',
      model: source.modelInfo,
      conditions: source.conds.map((c) => (c === null ? { id: 'uncond', label: 'unconditional' } : denoiser.conditions[c])),
      seeds,
      sampler: o.sampler,
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

/** Load the model `--model` names, its conditions, scheduler config and fingerprint. */
async function loadSampleSource(o: z.infer<typeof Schema>): Promise<SampleSource> {
  let config: SchedulerConfig = o['scheduler-config'] ? await asInput('--scheduler-config', () => loadSchedulerConfig(o['scheduler-config']!)) : stableDiffusionConfig();
  if (!isSdExportDir(o.model)) refuseSdFlags(o, ['prompt']);
  let decode: ((x: Tensor) => Promise<Tensor>) | null = null;
  let denoiser: Denoiser;
  let conds: CondRef[];
  let modelInfo: Record<string, unknown>;
  let fingerprint: string;
  if (o.model === 'testbed') {
    if (o.cond || o.uncond) throw new UsageError('--cond/--uncond: only for --model PATH.onnx; the testbed takes --prompts');
    const tb = await defaultTestbed(o.captions === undefined ? {} : { captions: o.captions });
    denoiser = tb.denoiser;
    conds = wrap(() => parseConditions(o.prompts ?? 'caption:0-1,class:0-1', denoiser));
    modelInfo = { kind: 'testbed', name: denoiser.name, captions: tb.captionTargets.length, captionTargets: tb.captionTargets };
    // the testbed is its training data (the shipped subset, hashed in its manifest) and its captions
    fingerprint = await describedFingerprint('testbed', { name: denoiser.name, captionTargets: tb.captionTargets }, { manifest: join(defaultFashionMnistDir(), 'manifest.json') });
  } else if (isSdExportDir(o.model)) {
    if (o.cond || o.uncond) throw new UsageError('--cond/--uncond: only for --model PATH.onnx; a Stable Diffusion export takes --prompt or --prompt-set');
    const sdOpts = { ...sdSourceOptions(o), ...(o.prompt === undefined ? {} : { texts: [o.prompt] }) };
    const sd = await loadSdStudySource(o.model, sdOpts).catch((e: Error) => {
      throw new UsageError(e.message);
    });
    process.stderr.write(`${sdImageSizeNote(sd.sd.imageSize)}\n`);
    denoiser = sd.denoiser;
    decode = sd.toImageSpace;
    if (!o['scheduler-config']) config = sd.config;
    conds = wrap(() => parseConditions(o.prompts ?? 'all', denoiser));
    modelInfo = { kind: 'stable-diffusion', dir: o.model, promptSet: o['prompt-set'] ?? null, prompt: o.prompt ?? null, predictionType: sd.sd.export.predictionType, executionProvider: sd.sd.export.executionProvider, shape: denoiser.shape, imageSize: sd.sd.imageSize };
    const files = await folderFingerprint('stable-diffusion', o.model, { recursive: true });
    fingerprint = await describedFingerprint('stable-diffusion-source', { files, negativePrompt: o['negative-prompt'] ?? '', shape: denoiser.shape, predictionType: sd.sd.export.predictionType, provider: sd.sd.export.executionProvider });
  } else if (await isTrainedModelDir(o.model)) {
    if (o.cond || o.uncond) throw new UsageError('--cond/--uncond: only for --model PATH.onnx; a trained model takes --prompts');
    const tm = await asInput('--model', () => loadTrainedModel(o.model));
    denoiser = tm.denoiser;
    conds = wrap(() => parseConditions(o.prompts ?? (denoiser.conditions.length ? 'all' : 'uncond'), denoiser));
    modelInfo = { kind: 'trained', dir: o.model, scenario: tm.scenario };
    fingerprint = await folderFingerprint('trained', o.model);
  } else {
    if (!o.model.endsWith('.onnx')) throw new UsageError(`--model: expected "testbed", a trained model directory (with model.json) or a path to a .onnx file, got "${o.model}"`);
    if (o.prompts) throw new UsageError('--prompts: only for the testbed and trained models; an ONNX model takes --cond FILE.npy');
    if (!(await isFile(o.model))) throw new InputError(`--model: ${o.model} does not exist or is not a file`);
    const condT = o.cond ? await asInput('--cond', () => readNpy(o.cond!, '--cond')) : undefined;
    const uncondT = o.uncond ? await asInput('--uncond', () => readNpy(o.uncond!, '--uncond')) : undefined;
    const predictionType = o['prediction-type'] ?? config.prediction_type ?? 'epsilon';
    denoiser = await asInput('--model', () =>
      loadOnnxDenoiser({
        path: o.model,
        ...(condT ? { conditions: condT } : {}),
        ...(uncondT ? { uncond: uncondT } : {}),
        predictionType,
        ...(o.shape ? { shape: o.shape } : {}),
      }),
    );
    conds = denoiser.conditions.length ? denoiser.conditions.map((_, i) => i) : [null];
    modelInfo = { kind: 'onnx', path: o.model, cond: o.cond ?? null, uncond: o.uncond ?? null, predictionType, shape: denoiser.shape };
    fingerprint = await describedFingerprint('onnx', { predictionType, shape: denoiser.shape }, { model: o.model, cond: o.cond, uncond: o.uncond });
  }
  return { denoiser, conds, config, decode, modelInfo, fingerprint };
}

/** The study spec of validated flags (flag names; `record` already holds `xt` for --trajectory). */
function specFromFlags(o: z.infer<typeof Schema>, record: readonly TensorQuantity[]): Record<string, unknown> {
  const skip = new Set(['out', 'store', 'trajectory', 'record']);
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

function definedOnly(raw: Record<string, string | boolean | undefined>): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (const [k, v] of Object.entries(raw)) if (v !== undefined) out[k] = v;
  return out;
}

/** Read `--config OUT/run.json`: the resolved spec it holds, as flags (the command line overrides them). */
async function readRunConfig(path: string): Promise<{ flags: Record<string, string | boolean>; store: string | undefined }> {
  const text = await asInput('--config', () => readFile(path, 'utf8'));
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new InputError(`--config: ${path} is not valid JSON (${(e as Error).message})`);
  }
  const r = j as { format?: unknown; command?: unknown; spec?: unknown; store?: unknown };
  if (r === null || typeof r !== 'object' || r.format !== RUN_FORMAT) throw new InputError(`--config: ${path} is not a memscope run.json (expected "format": "${RUN_FORMAT}")`);
  if (r.command !== 'sample') throw new InputError(`--config: ${path} is the run.json of memscope ${String(r.command)}, not of memscope sample`);
  const parsed = SampleSpecSchema.safeParse(r.spec);
  if (!parsed.success) throw new InputError(`--config: ${path}: its spec is not a sample spec (${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')})`);
  return { flags: flagsFromSpec(parsed.data as Record<string, unknown>), store: typeof r.store === 'string' ? r.store : undefined };
}

async function isFile(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isFile(),
    () => false,
  );
}

async function isTrainedModelDir(p: string): Promise<boolean> {
  return stat(join(p, 'model.json')).then(
    (s) => s.isFile(),
    () => false,
  );
}

function wrap<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

