/** `memscope sample`: sample a testbed condition or an ONNX model, tracing every step. */
import { z } from 'zod';
import { join } from 'node:path';
import { parseFlags, validate, positiveInt, finiteNumber, UsageError, InputError, asInput, didYouMean, samplerFlag } from './args.ts';
import { parseSeeds } from '../random/seeds.ts';
import type { GuidanceSchedule } from '../guidance/schedules.ts';
import { parseGuidance } from '../guidance/spec.ts';
import { SAMPLER_NAMES } from '../samplers/index.ts';
import { loadSchedulerConfig, stableDiffusionConfig, type SchedulerConfig } from '../schedules/config.ts';
import { TENSOR_QUANTITIES, type TensorQuantity } from '../record/recorders.ts';
import { runSampling, type SamplingResult } from '../study/sampling.ts';
import { parseConditions } from '../study/conditions.ts';
import { defaultTestbed } from '../study/testbed.ts';
import { loadOnnxDenoiser } from '../denoisers/onnx.ts';
import { loadTrainedModel } from '../denoisers/trained.ts';
import { isSdExportDir, loadSdStudySource } from '../study/sd-source.ts';
import { SD_SOURCE_FIELDS, SD_SOURCE_HELP, refuseSdFlags, sdImageSizeNote, sdSourceOptions, promptText } from './source-flags.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { stat } from 'node:fs/promises';
import { readNpy, writeNpy } from '../io/npy.ts';
import { writeJsonAtomic, writeFileAtomic } from '../io/atomic.ts';
import { checkResultsTarget, withResultsDir } from '../io/results.ts';
import { gridPng } from '../report/png.ts';
import { lineChart } from '../report/svg.ts';
import { page, imgTag, table, escapeHtml } from '../report/html.ts';
import type { CondRef, Denoiser } from '../denoisers/denoiser.ts';

export const SAMPLE_HELP = `memscope sample — sample with any sampler and guidance schedule, tracing every denoising step

Usage: memscope sample [flags]

Model (one of):
  --model testbed            the analytic testbed on the embedded Fashion-MNIST data (default)
      --condition SPEC       conditions to sample: caption:0-3,class:0,uncond,all (default caption:0-1,class:0-1)
      --captions N           number of memorized captions in the testbed (default 20)
  --model DIR                a model trained by memscope train (DIR/model.json); --condition as for the testbed
  --model EXPORT_DIR         a Stable Diffusion ONNX export (diffusers / optimum layout), latent space
      --prompt TEXT          one prompt to sample (or --prompt-set FILE with --condition caption:0-3)
      (the export's own scheduler config is used unless --scheduler-config is given)
  --model PATH.onnx          an ONNX noise-prediction model with the diffusers U-Net signature
      --cond FILE.npy        condition rows (class labels [K] or encoder_hidden_states [K,L,D]); each row is sampled
      --uncond FILE.npy      the null condition (default zeros)
      --prediction-type T    epsilon | v_prediction | sample (default: scheduler config, else epsilon)
      --shape C,H,W          per-sample shape when the model's is dynamic

Sampling:
  --scheduler-config FILE    a diffusers scheduler_config.json (default: Stable Diffusion 1.x)
  --sampler NAME             ${SAMPLER_NAMES.join(' | ')} (default ddim); diffusers' class names and the usual
                             spellings are accepted (DDIMScheduler, DPMSolverMultistepScheduler, dpm++2m,
                             EulerDiscreteScheduler, …)
  --steps N                  inference steps (default 50)
  --eta X                    DDIM η in [0, 1] (default 0 = deterministic; 1 = DDPM's posterior variance);
                             only with --sampler ddim
  --guidance SPEC            constant:7.5 | stp:7.5@500 | dtp:7.5 | og+dtp:7.5 | og+stp:7.5@500 |
                             interval:7.5@200-700 | linear:7.5 | cosine:7.5 | none (default constant:7.5)
  --seeds LIST               e.g. 0-3 or 1,5,9-12 (default 0-3); x_T = torch.randn with that seed
  --batch-size N             rows per sampler call (default: all)

Output:
  --out DIR                  results directory (default runs/sample); replaced only when the run succeeds
  --trajectory               also save x_t of every step as trajectory.npy [steps+1, rows, ...], in the
                             variance-preserving scale of the model input: for euler that is
                             sample/√(σ²+1), not diffusers' latents (sample = x_t·√(σ²+1); multiply
                             entry i by √(σ_i²+1) to get them); for ddim and dpmpp2m they are the same
  --record LIST              more per-step tensors: ${TENSOR_QUANTITIES.join(',')} (saved as <name>.npy)

${SD_SOURCE_HELP}

Writes config.json (resolved settings), samples.npy (latents for an export, plus images.npy decoded), noise.npy, grid.png, guidance.json (t, ᾱ_t, s and
d_t per step and row, switch steps), report.html.

Examples:
  memscope sample --condition caption:0-3 --guidance og+dtp:7.5 --seeds 0-7 --out runs/og
  memscope sample --model unet.onnx --cond cond.npy --uncond uncond.npy \\
      --scheduler-config scheduler_config.json --sampler ddim --steps 50 --guidance dtp:7.5 \\
      --seeds 0-3 --trajectory --out runs/a
`;

const Schema = z.object({
  model: z.string().min(1).default('testbed'),
  condition: z.string().optional(),
  captions: positiveInt('captions', 1000).optional(),
  cond: z.string().optional(),
  uncond: z.string().optional(),
  'prediction-type': z.enum(['epsilon', 'v_prediction', 'sample']).optional(),
  shape: z
    .string()
    .transform((s, ctx) => {
      if (!/^\s*[1-9]\d*(\s*,\s*[1-9]\d*)*\s*$/.test(s)) {
        ctx.addIssue({ code: 'custom', message: `expected comma-separated positive integers (the per-sample shape C,H,W), e.g. 4,64,64, got "${s}"` });
        return z.NEVER;
      }
      return s.split(',').map(Number);
    })
    .optional(),
  'scheduler-config': z.string().optional(),
  sampler: samplerFlag().default('ddim'),
  steps: positiveInt('steps', 1000).default(50),
  eta: finiteNumber('eta', { lo: 0, hi: 1, what: "DDIM's η: 0 deterministic, 1 = DDPM's variance; above 1 the step's variance exceeds 1 − ᾱ_prev" }).optional(),
  guidance: z.string().default('constant:7.5'),
  seeds: z.string().default('0-3'),
  'batch-size': positiveInt('batch-size').optional(),
  out: z.string().min(1).default('runs/sample'),
  trajectory: z.boolean().default(false),
  record: z.string().optional(),
  prompt: promptText().optional(),
  ...SD_SOURCE_FIELDS,
});

const FLAGS = Object.fromEntries(
  Object.keys(Schema.shape).map((k) => [k, { type: k === 'trajectory' ? ('boolean' as const) : ('string' as const) }]),
);

/** Parse and run `memscope sample`. */
export async function sampleCommand(argv: string[]): Promise<void> {
  const o = validate(Schema, parseFlags(argv, FLAGS));
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
  await checkResultsTarget(o.out);
  let config: SchedulerConfig = o['scheduler-config'] ? await asInput('--scheduler-config', () => loadSchedulerConfig(o['scheduler-config']!)) : stableDiffusionConfig();
  if (!isSdExportDir(o.model)) refuseSdFlags(o, ['prompt']);
  let decode: ((x: Tensor) => Promise<Tensor>) | null = null;

  let denoiser: Denoiser;
  let conds: CondRef[];
  let modelInfo: Record<string, unknown>;
  if (o.model === 'testbed') {
    if (o.cond || o.uncond) throw new UsageError('--cond/--uncond: only for --model PATH.onnx; the testbed takes --condition');
    const tb = await defaultTestbed(o.captions === undefined ? {} : { captions: o.captions });
    denoiser = tb.denoiser;
    conds = wrap(() => parseConditions(o.condition ?? 'caption:0-1,class:0-1', denoiser));
    modelInfo = { kind: 'testbed', name: denoiser.name, captions: tb.captionTargets.length, captionTargets: tb.captionTargets };
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
    conds = wrap(() => parseConditions(o.condition ?? 'all', denoiser));
    modelInfo = { kind: 'stable-diffusion', dir: o.model, promptSet: o['prompt-set'] ?? null, prompt: o.prompt ?? null, predictionType: sd.sd.export.predictionType, executionProvider: sd.sd.export.executionProvider, shape: denoiser.shape, imageSize: sd.sd.imageSize };
  } else if (await isTrainedModelDir(o.model)) {
    if (o.cond || o.uncond) throw new UsageError('--cond/--uncond: only for --model PATH.onnx; a trained model takes --condition');
    const tm = await asInput('--model', () => loadTrainedModel(o.model));
    denoiser = tm.denoiser;
    conds = wrap(() => parseConditions(o.condition ?? (denoiser.conditions.length ? 'all' : 'uncond'), denoiser));
    modelInfo = { kind: 'trained', dir: o.model, scenario: tm.scenario };
  } else {
    if (!o.model.endsWith('.onnx')) throw new UsageError(`--model: expected "testbed", a trained model directory (with model.json) or a path to a .onnx file, got "${o.model}"`);
    if (o.condition) throw new UsageError('--condition: only for the testbed and trained models; an ONNX model takes --cond FILE.npy');
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
  }

  const result = await runSampling({
    denoiser,
    conds,
    seeds,
    sampler: o.sampler,
    steps: o.steps,
    config,
    record,
    ...(guidance ? { guidance } : {}),
    ...(o.eta === undefined ? {} : { eta: o.eta }),
    ...(o['batch-size'] === undefined ? {} : { batchSize: o['batch-size'] }),
  });
  const images = decode === null ? null : await decode(result.samples);
  await denoiser.dispose?.();

  const resolved = {
    command: 'sample',
    model: modelInfo,
    conditions: conds.map((c) => (c === null ? { id: 'uncond', label: 'unconditional' } : denoiser.conditions[c])),
    seeds,
    sampler: o.sampler,
    steps: o.steps,
    eta: o.eta ?? 0,
    guidance: guidance?.label ?? 'none',
    schedulerConfig: config,
    record,
    memscopeVersion: '0.1.0',
  };
  await withResultsDir(o.out, async (dir) => writeSampleResults(dir, resolved, result, denoiser, conds, seeds, images), { command: 'sample' });
  process.stdout.write(`${o.out}/report.html\n`);
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

async function writeSampleResults(
  dir: string,
  resolved: Record<string, unknown>,
  r: SamplingResult,
  denoiser: Denoiser,
  conds: readonly CondRef[],
  seeds: readonly number[],
  images: Tensor | null,
): Promise<void> {
  await writeJsonAtomic(join(dir, 'config.json'), resolved);
  if (images !== null) await writeNpy(join(dir, 'images.npy'), images);
  await writeNpy(join(dir, 'samples.npy'), r.samples);
  await writeNpy(join(dir, 'noise.npy'), r.noise);
  for (const [q, t] of r.recorded) await writeNpy(join(dir, q === 'xt' ? 'trajectory.npy' : `${q}.npy`), t);
  await writeJsonAtomic(join(dir, 'guidance.json'), {
    rows: r.rows.map((x) => ({ cond: x.cond === null ? 'uncond' : denoiser.conditions[x.cond]!.id, seed: x.seed })),
    t: r.t,
    alphaBar: r.alphaBar,
    s: r.s,
    d: r.d,
    switchSteps: r.switchSteps,
    seconds: r.seconds,
  });
  const shown = images ?? r.samples;
  const viewable = shown.dims.length === 4 && (shown.dims[1] === 1 || shown.dims[1] === 3);
  const png = viewable ? await gridPng(shown, { cols: seeds.length, zoom: shown.dims[2]! <= 32 ? 3 : 1 }) : null;
  if (png) await writeFileAtomic(join(dir, 'grid.png'), png);
  const N = seeds.length;
  const series = r.s[0]?.length
    ? conds.map((c, ci) => ({
        label: c === null ? 'uncond' : denoiser.conditions[c]!.label,
        x: r.t,
        y: r.t.map((_, st) => {
          let acc = 0;
          for (let n = 0; n < N; n++) acc += r.d[st]![ci * N + n]!;
          return acc / N;
        }),
      }))
    : [];
  const chart = series.length ? lineChart({ title: 'd_t = ‖ε_c − ε_u‖² (mean over seeds)', xLabel: 'timestep t', yLabel: 'd_t', series, logY: true, reverseX: true }) : '';
  if (chart) await writeFileAtomic(join(dir, 'd_t.svg'), chart);
  const rows = r.rows.map((x, i) => [x.cond === null ? 'uncond' : denoiser.conditions[x.cond]!.label, x.seed, r.switchSteps[i] === null ? '—' : String(r.switchSteps[i])]);
  const body = [
    `<p class="note">Rows: conditions; columns: seeds ${escapeHtml(seeds.join(", "))}. Guidance <code>${escapeHtml(String(resolved["guidance"]))}</code>, sampler ${escapeHtml(String(resolved["sampler"]))}, ${String(resolved["steps"])} steps, ${r.seconds.toFixed(2)} s.</p>`,
    png ? imgTag(png, 'samples') : '<p>(samples are not images; see samples.npy)</p>',
    chart,
    '<h2>Transition points</h2>',
    table(['condition', 'seed', 'switch step'], rows),
  ].join('\n');
  await writeFileAtomic(join(dir, 'report.html'), page('memscope sample', body));
}
