/**
 * Open a Stable Diffusion ONNX export (SPEC §2.4, §7) and describe it from what is on disk and in
 * the session metadata, never from `_class_name`: which components exist (by sub-folder), the
 * text encoder's `input_ids` dtype, the U-Net's timestep dtype and rank, the hidden size E, the
 * latent channels, the VAE encoder's output kind (`latent_sample` or `latent_parameters`), the
 * VAE scaling factor and the scheduler's `prediction_type`. Every ONNX model is opened BY PATH so
 * that external weights (`weights.pb`, `model.onnx_data`) load.
 *
 * Float16 exports (fp16 `sample`, `encoder_hidden_states`, hidden states, VAE inputs/outputs) load
 * like float32 ones, and components of different float types may be mixed (an fp16 U-Net with an
 * fp32 text encoder): each component's float type is reported (`unet.dtype`, …) and memscope
 * tensors stay float32 — the session boundary (`graph/session.ts`) rounds feeds to float16 and
 * widens float16 outputs. A non-float tensor where a float one belongs is an error naming it.
 *
 * Errors list every missing component or file at once (`unet/model.onnx`, `tokenizer/merges.txt`,
 * an external weight file a model refers to), and every mismatch between components naming both
 * sides (e.g. the U-Net's `encoder_hidden_states` width against the text encoder's hidden size).
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { type ExecutionProvider, type Session, type TypedFeed, type ValueInfo, createSession } from '../graph/session.ts';
import { externalDataLocations } from '../graph/external-data.ts';
import { OnnxDenoiser, type TimestepLayout, timestepLayout } from '../denoisers/onnx.ts';
import type { PredictionType } from '../denoisers/parameterization.ts';
import { type SchedulerConfig, parseJsonLenient, parseSchedulerConfig } from '../schedules/config.ts';
import { type ClipTokenizer, loadClipTokenizer } from '../text/clip-tokenizer.ts';
import type { Tensor } from '../tensor/tensor.ts';

/** The ONNX components of an export (sub-folders holding `model.onnx`). */
export type SdComponentName = 'text_encoder' | 'unet' | 'vae_encoder' | 'vae_decoder';

/** SD 1.x/2.x VAE scaling factor, used when no config says otherwise (SPEC §0, §7). */
export const SD_DEFAULT_SCALING_FACTOR = 0.18215;

/** Float element type of a component's float inputs / outputs, from the session metadata. */
export type SdFloatType = 'float32' | 'float16' | 'float64';

const FLOAT_TYPES: ReadonlySet<string> = new Set(['float32', 'float16', 'float64']);

/** Options of {@link loadSdExport}. */
export interface LoadSdExportOptions {
  /** Execution provider of every session (default `'cpu'`; `'cuda'` only when asked, with a clear error when unavailable). */
  readonly executionProvider?: ExecutionProvider;
  /** onnxruntime intra-op threads (default: `MEMSCOPE_THREADS` or 2). */
  readonly threads?: number;
  /** Fail when there is no `vae_encoder/` (default false: it is optional, loaded when present). */
  readonly requireVaeEncoder?: boolean;
  /** The CLIP tokenizer's text clean-up: `'fast'` (default; transformers 5 / CLIPTokenizerFast) or `'slow'` (transformers 4.x's slow CLIPTokenizer). */
  readonly tokenizer?: 'fast' | 'slow';
  /** The U-Net file whose session samples, in `unet/` (default `model.onnx`; a diffusers folder's fused-attention graph). `unet.path` — what Ren et al.'s surgery and Wen et al.'s gradient read — stays `unet/model.onnx`. */
  readonly unetSessionFile?: string;
  /** External data files handed to onnxruntime in memory, per component (`path` = the location the model names); default none. */
  readonly externalData?: Readonly<Partial<Record<SdComponentName, readonly { readonly path: string; readonly data: Uint8Array }[]>>>;
}

/** The text encoder as its metadata describes it. */
export interface SdTextEncoderInfo {
  /** Path of `text_encoder/model.onnx`. */
  readonly path: string;
  /** Element type of `input_ids`: int32 (legacy diffusers script) or int64 (optimum). */
  readonly idsType: 'int32' | 'int64';
  /** Tokens per prompt declared by `input_ids` (`null` when dynamic). */
  readonly sequenceLength: number | null;
  /** Hidden size E: last dim of `last_hidden_state` (`null` when dynamic). */
  readonly hiddenSize: number | null;
  /** Name of the per-token output (`last_hidden_state`). */
  readonly hiddenStateOutput: string;
  /** Name of the pooled output (`pooler_output`), `null` when absent. */
  readonly pooledOutput: string | null;
  /** Element type of the hidden-state output (float16 for fp16 exports; returned as float32 either way). */
  readonly dtype: SdFloatType;
}

/** The U-Net as its metadata describes it. */
export interface SdUnetInfo {
  /** Path of `unet/model.onnx`. */
  readonly path: string;
  /** Timestep dtype and layout (`scalar` `[]`, `one` `[1]`, `batch` `[B]`), from {@link timestepLayout}. */
  readonly timestep: TimestepLayout;
  /** Rank of the declared `timestep` (0 or 1). */
  readonly timestepRank: 0 | 1;
  /** Latent channels of `sample` (`null` when dynamic). */
  readonly latentChannels: number | null;
  /** Latent height and width of `sample` (`null` when dynamic). */
  readonly sampleSize: readonly [number, number] | null;
  /** Width of `encoder_hidden_states` (`null` when dynamic). */
  readonly hiddenSize: number | null;
  /** Tokens of `encoder_hidden_states` (`null` when dynamic). */
  readonly contextLength: number | null;
  /** Name of the prediction output (`out_sample`). */
  readonly output: string;
  /** Element type of `sample` (float16 for fp16 exports; fed and read back as float32 by memscope). */
  readonly dtype: SdFloatType;
  /** Where the external weight files `model.onnx` names really are, when not beside it (a diffusers folder whose weights could not be hard-linked into the temp layout); default none. */
  readonly weightSources?: Readonly<Record<string, string>>;
}

/** The VAE encoder as its metadata describes it. */
export interface SdVaeEncoderInfo {
  /** Path of `vae_encoder/model.onnx`. */
  readonly path: string;
  /** Image input name (`sample`). */
  readonly input: string;
  /** `latent_sample` (legacy: sampled inside the graph) or `latent_parameters` (optimum: mean ‖ log-variance on channels). */
  readonly outputKind: 'latent_sample' | 'latent_parameters';
  /** Latent channels (half the `latent_parameters` channels; `null` when dynamic). */
  readonly latentChannels: number | null;
  /** Element type of the image input (float16 for fp16 exports). */
  readonly dtype: SdFloatType;
}

/** The VAE decoder as its metadata describes it. */
export interface SdVaeDecoderInfo {
  /** Path of `vae_decoder/model.onnx`. */
  readonly path: string;
  /** Latent input name (`latent_sample`). */
  readonly input: string;
  /** Image output name (`sample`). */
  readonly output: string;
  /** Latent channels (`null` when dynamic). */
  readonly latentChannels: number | null;
  /** Element type of the latent input (float16 for fp16 exports). */
  readonly dtype: SdFloatType;
}

/** Everything {@link loadSdExport} read about an export. */
export interface SdExportDescription {
  /** Absolute export root. */
  readonly dir: string;
  /** `model_index.json` `_class_name` (informational only; components are found by folder). */
  readonly className: string | null;
  /** The ONNX components found, in the order text_encoder, unet, vae_encoder, vae_decoder. */
  readonly components: readonly SdComponentName[];
  /** The text encoder. */
  readonly textEncoder: SdTextEncoderInfo;
  /** The U-Net. */
  readonly unet: SdUnetInfo;
  /** `null` when the export has no `vae_encoder/`. */
  readonly vaeEncoder: SdVaeEncoderInfo | null;
  /** The VAE decoder. */
  readonly vaeDecoder: SdVaeDecoderInfo;
  /** Hidden size E shared by the text encoder and the U-Net (`null` when both are dynamic). */
  readonly hiddenSize: number | null;
  /** Latent channels shared by the U-Net and the VAE (4 when every model leaves it dynamic). */
  readonly latentChannels: number;
  /** Scheduler `prediction_type`. */
  readonly predictionType: PredictionType;
  /** VAE scaling factor (default {@link SD_DEFAULT_SCALING_FACTOR}). */
  readonly scalingFactor: number;
  /** Where the scaling factor came from (`vae_decoder/config.json`, …, or `default`). */
  readonly scalingFactorSource: string;
  /** VAE scale factor 2^(len(block_out_channels) − 1) from the VAE config (8 without one, as diffusers). */
  readonly vaeScaleFactor: number;
  /** The image size used when none is asked for, and where it came from (see {@link sdDefaultImageSize}). */
  readonly defaultSize: SdDefaultImageSize;
  /** Execution provider the sessions run on. */
  readonly executionProvider: ExecutionProvider;
}

/** An opened export: description, tokenizer, scheduler config and one session per component. */
export interface SdExport extends SdExportDescription {
  /** Parsed `model_index.json`. */
  readonly modelIndex: Readonly<Record<string, unknown>>;
  /** Parsed `scheduler/scheduler_config.json`. */
  readonly scheduler: SchedulerConfig;
  /** The export's CLIP tokenizer (`tokenizer/`). */
  readonly tokenizer: ClipTokenizer;
  /** One onnxruntime session per component, opened by path (`vaeEncoder` is `null` without `vae_encoder/`). */
  readonly sessions: {
    readonly textEncoder: Session;
    readonly unet: Session;
    readonly vaeEncoder: Session | null;
    readonly vaeDecoder: Session;
  };
  /** Release every session. */
  dispose(): Promise<void>;
}

const COMPONENTS: readonly SdComponentName[] = ['text_encoder', 'unet', 'vae_encoder', 'vae_decoder'];

function isDir(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}

/** The JSON object in the file at `path` (comments and trailing commas tolerated); errors name `rel`. */
export function readJsonObject(path: string, rel: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = parseJsonLenient(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${rel}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${rel}: expected a JSON object`);
  return v as Record<string, unknown>;
}

function dimNum(shape: readonly (number | string)[] | null, i: number): number | null {
  if (shape === null) return null;
  const d = shape[i < 0 ? shape.length + i : i];
  return typeof d === 'number' && d > 0 ? d : null;
}

/** The float type of `info`, or an error naming the component, the input/output and its type. */
function floatType(rel: string, kind: 'input' | 'output', info: ValueInfo): SdFloatType {
  const t = info.type;
  if (t === undefined || !FLOAT_TYPES.has(t)) {
    throw new Error(`${rel}: ${kind} '${info.name}' has type ${t ?? 'non-tensor'}; expected a float tensor (float32 or float16)`);
  }
  return t as SdFloatType;
}

function fmtShape(info: ValueInfo): string {
  return info.shape === null ? '(no shape)' : `[${info.shape.join(', ')}]`;
}

/** The files missing for the parts of an export that must (or, by their folder, do) exist, relative to `root`. */
function missingFiles(root: string, requireVaeEncoder: boolean): string[] {
  const missing: string[] = [];
  const need = (rel: string): void => {
    if (!existsSync(join(root, rel))) missing.push(rel);
  };
  need('model_index.json');
  need('scheduler/scheduler_config.json');
  if (!existsSync(join(root, 'tokenizer', 'tokenizer.json'))) {
    need('tokenizer/vocab.json');
    need('tokenizer/merges.txt');
  }
  for (const c of COMPONENTS) {
    if (c === 'vae_encoder' && !requireVaeEncoder && !isDir(join(root, c))) continue;
    need(`${c}/model.onnx`);
  }
  return missing;
}

async function openComponent(root: string, c: SdComponentName, opts: LoadSdExportOptions): Promise<Session> {
  const path = join(root, c, c === 'unet' ? (opts.unetSessionFile ?? 'model.onnx') : 'model.onnx');
  try {
    const data = opts.externalData?.[c];
    return await createSession(path, {
      ...(data === undefined ? {} : { externalData: data }),
      ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
      ...(opts.executionProvider !== undefined ? { executionProvider: opts.executionProvider } : {}),
    });
  } catch (e) {
    // name missing external weight files rather than onnxruntime's low-level message
    let lost: string[] = [];
    try {
      if (statSync(path).size < 256 * 1024 * 1024) lost = externalDataLocations(path).filter((l) => !existsSync(join(root, c, l)));
    } catch {
      lost = [];
    }
    if (lost.length > 0) {
      throw new Error(`Stable Diffusion export ${root}: missing ${lost.map((l) => `${c}/${l}`).join(', ')} (external weights of ${c}/model.onnx)`);
    }
    throw e;
  }
}

function describeTextEncoder(s: Session, rel: string, path: string): SdTextEncoderInfo {
  const ids = s.inputs.find((i) => i.name === 'input_ids');
  if (ids === undefined) throw new Error(`${rel}: no input 'input_ids' (inputs: ${s.inputNames.join(', ')})`);
  if (ids.type !== 'int32' && ids.type !== 'int64') throw new Error(`${rel}: input 'input_ids' has type ${ids.type}; expected int32 or int64`);
  const hs = s.outputs.find((o) => o.name === 'last_hidden_state') ?? s.outputs[0];
  if (hs === undefined) throw new Error(`${rel}: model has no outputs`);
  const dtype = floatType(rel, 'output', hs);
  const pooled = s.outputs.find((o) => o.name === 'pooler_output');
  if (pooled !== undefined) floatType(rel, 'output', pooled);
  return {
    path,
    idsType: ids.type,
    sequenceLength: dimNum(ids.shape, 1),
    hiddenSize: hs.shape !== null && hs.shape.length === 3 ? dimNum(hs.shape, 2) : null,
    hiddenStateOutput: hs.name,
    pooledOutput: pooled?.name ?? null,
    dtype,
  };
}

function describeUnet(s: Session, rel: string, path: string): SdUnetInfo {
  const missing = ['sample', 'timestep', 'encoder_hidden_states'].filter((n) => !s.inputNames.includes(n));
  if (missing.length > 0) throw new Error(`${rel}: missing input${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')} (inputs: ${s.inputNames.join(', ')})`);
  if (s.outputs.length === 0) throw new Error(`${rel}: model has no outputs`);
  const sample = s.input('sample');
  const ehs = s.input('encoder_hidden_states');
  const tInfo = s.input('timestep');
  const dtype = floatType(rel, 'input', sample);
  floatType(rel, 'input', ehs);
  floatType(rel, 'output', s.outputs[0]!);
  const h = dimNum(sample.shape, 2);
  const w = dimNum(sample.shape, 3);
  return {
    path,
    timestep: timestepLayout(tInfo, rel),
    timestepRank: tInfo.shape !== null && tInfo.shape.length === 1 ? 1 : 0,
    latentChannels: dimNum(sample.shape, 1),
    sampleSize: h !== null && w !== null && sample.shape!.length === 4 ? [h, w] : null,
    hiddenSize: ehs.shape !== null && ehs.shape.length === 3 ? dimNum(ehs.shape, 2) : null,
    contextLength: ehs.shape !== null && ehs.shape.length === 3 ? dimNum(ehs.shape, 1) : null,
    output: s.outputNames[0]!,
    dtype,
  };
}

function describeVaeEncoder(s: Session, rel: string, path: string): SdVaeEncoderInfo {
  const out = s.outputs.find((o) => o.name === 'latent_parameters') ?? s.outputs.find((o) => o.name === 'latent_sample');
  if (out === undefined) throw new Error(`${rel}: no output 'latent_sample' or 'latent_parameters' (outputs: ${s.outputNames.join(', ')})`);
  if (s.inputs.length !== 1) throw new Error(`${rel}: expected one image input, got ${s.inputNames.join(', ') || 'none'}`);
  const kind = out.name as 'latent_sample' | 'latent_parameters';
  const dtype = floatType(rel, 'input', s.inputs[0]!);
  floatType(rel, 'output', out);
  const ch = dimNum(out.shape, 1);
  if (kind === 'latent_parameters' && ch !== null && ch % 2 !== 0) throw new Error(`${rel}: output 'latent_parameters' has ${ch} channels; expected mean and log-variance (an even count)`);
  return { path, input: s.inputNames[0]!, outputKind: kind, latentChannels: ch === null ? null : kind === 'latent_parameters' ? ch / 2 : ch, dtype };
}

function describeVaeDecoder(s: Session, rel: string, path: string): SdVaeDecoderInfo {
  const input = s.inputs.find((i) => i.name === 'latent_sample') ?? s.inputs[0];
  if (input === undefined || s.outputs.length === 0) throw new Error(`${rel}: expected a latent input and an image output (inputs: ${s.inputNames.join(', ') || 'none'}; outputs: ${s.outputNames.join(', ') || 'none'})`);
  const dtype = floatType(rel, 'input', input);
  floatType(rel, 'output', s.outputs[0]!);
  return { path, input: input.name, output: s.outputNames[0]!, latentChannels: dimNum(input.shape, 1), dtype };
}

/** The default image size of an export, as diffusers derives it, with where it came from. */
export interface SdDefaultImageSize {
  /** Height in pixels. */
  readonly height: number;
  /** Width in pixels. */
  readonly width: number;
  /** Where the size came from, in words (e.g. `unet/config.json sample_size 64 × VAE scale factor 8 (vae_decoder/config.json)`). */
  readonly source: string;
}

/** The image side diffusers' ONNX pipeline uses when the export says nothing (`OnnxStableDiffusionPipeline.__call__` height = width = 512). */
export const SD_FALLBACK_IMAGE_SIZE = 512;

/**
 * The VAE scale factor as diffusers computes it, `2^(len(vae.config.block_out_channels) − 1)`,
 * from the first of `vae_decoder/config.json`, `vae_encoder/config.json`, `vae/config.json` that
 * lists `block_out_channels`; 8 (diffusers' value without a VAE config) when none does.
 */
export function vaeScaleFactorOf(root: string): { value: number; source: string } {
  for (const d of ['vae_decoder', 'vae_encoder', 'vae']) {
    const p = join(root, d, 'config.json');
    if (!existsSync(p)) continue;
    const boc = readJsonObject(p, `${d}/config.json`)['block_out_channels'];
    if (boc === undefined || boc === null) continue;
    if (!Array.isArray(boc) || boc.length === 0) throw new Error(`${d}/config.json: block_out_channels must be a non-empty list, got ${JSON.stringify(boc)}`);
    return { value: 2 ** (boc.length - 1), source: `${d}/config.json block_out_channels` };
  }
  return { value: 8, source: 'default, no VAE config with block_out_channels' };
}

/**
 * The image size an export generates when none is asked for, as diffusers derives it: the U-Net's
 * declared latent size when its `sample` input has fixed height and width; otherwise
 * `unet/config.json` `sample_size` (a number or `[h, w]`) × the VAE scale factor
 * ({@link vaeScaleFactorOf}) — SD 1.x 64 × 8 = 512, SD 2.1 96 × 8 = 768, SD 2.1-base 512 —; and
 * {@link SD_FALLBACK_IMAGE_SIZE} (512, the ONNX pipeline's default) when the export has no
 * `unet/config.json` (diffusers' legacy ONNX exporter writes none).
 */
export function sdDefaultImageSize(root: string, declared: readonly [number, number] | null): SdDefaultImageSize {
  const f = vaeScaleFactorOf(root);
  const factor = `VAE scale factor ${f.value} (${f.source})`;
  if (declared !== null) return { height: declared[0] * f.value, width: declared[1] * f.value, source: `unet/model.onnx's fixed sample size ${declared[0]}×${declared[1]} × ${factor}` };
  const p = join(root, 'unet', 'config.json');
  if (existsSync(p)) {
    const ss = readJsonObject(p, 'unet/config.json')['sample_size'];
    const hw = typeof ss === 'number' ? [ss, ss] : Array.isArray(ss) && ss.length === 2 ? ss : null;
    if (hw === null || !hw.every((v) => Number.isInteger(v) && (v as number) > 0)) throw new Error(`unet/config.json: sample_size must be a positive integer or [height, width], got ${JSON.stringify(ss)}`);
    const [h, w] = hw as [number, number];
    return { height: h * f.value, width: w * f.value, source: `unet/config.json sample_size ${h === w ? h : `[${h}, ${w}]`} × ${factor}` };
  }
  return { height: SD_FALLBACK_IMAGE_SIZE, width: SD_FALLBACK_IMAGE_SIZE, source: `no unet/config.json and a dynamic U-Net sample size: ${SD_FALLBACK_IMAGE_SIZE}, diffusers' ONNX pipeline default` };
}

/** Scaling factor from the `vae…/config.json` files or `model_index.json`; conflicting values are an error naming both files. */
function scalingFactorOf(root: string, modelIndex: Readonly<Record<string, unknown>>): { value: number; source: string } {
  const found: { value: number; source: string }[] = [];
  const order = ['vae_decoder', 'vae_encoder', 'vae'];
  const dirs = readdirSync(root)
    .filter((d) => d.startsWith('vae') && isDir(join(root, d)))
    .sort((a, b) => (order.indexOf(a) === -1 ? 99 : order.indexOf(a)) - (order.indexOf(b) === -1 ? 99 : order.indexOf(b)) || a.localeCompare(b));
  for (const d of dirs) {
    const p = join(root, d, 'config.json');
    if (!existsSync(p)) continue;
    const v = readJsonObject(p, `${d}/config.json`)['scaling_factor'];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !(v > 0)) throw new Error(`${d}/config.json: scaling_factor must be a positive number, got ${JSON.stringify(v)}`);
    found.push({ value: v, source: `${d}/config.json` });
  }
  const mi = modelIndex['scaling_factor'];
  if (typeof mi === 'number' && mi > 0) found.push({ value: mi, source: 'model_index.json' });
  if (found.length === 0) return { value: SD_DEFAULT_SCALING_FACTOR, source: 'default' };
  const other = found.find((x) => x.value !== found[0]!.value);
  if (other !== undefined) throw new Error(`Stable Diffusion export ${root}: VAE scaling factors disagree: ${found[0]!.source} says ${found[0]!.value}, ${other.source} says ${other.value}`);
  return found[0]!;
}

/**
 * Open the Stable Diffusion ONNX export in `dir` (SPEC §7): check that `model_index.json`,
 * `scheduler/scheduler_config.json`, `tokenizer/` (`vocab.json` + `merges.txt`, or
 * `tokenizer.json`), `text_encoder/`, `unet/`, `vae_decoder/` (each `model.onnx`) exist —
 * `vae_encoder/` is loaded when its folder exists — then open each model by path and describe it
 * from the session metadata ({@link SdExportDescription}). Throws one error listing every missing
 * file, or every mismatch between components naming both sides. float32 and float16 components
 * (and mixes of them) are accepted, each component's float type reported as its `dtype`; a
 * non-float `sample`, `encoder_hidden_states`, hidden-state or VAE input/output is an error
 * naming the file and the value. Defaults: CPU execution provider, `MEMSCOPE_THREADS` (or 2)
 * threads, VAE encoder optional. Call `dispose()` when done.
 */
export async function loadSdExport(dir: string, opts: LoadSdExportOptions = {}): Promise<SdExport> {
  const root = resolve(dir);
  if (!isDir(root)) throw new Error(`Stable Diffusion export ${root}: not a directory`);
  const missing = missingFiles(root, opts.requireVaeEncoder === true);
  if (missing.length > 0) {
    throw new Error(`Stable Diffusion export ${root}: missing ${missing.join(', ')} (the layout of docs/methods.md §7: model_index.json, scheduler/, tokenizer/, text_encoder/, unet/, vae_decoder/ and optionally vae_encoder/)`);
  }
  const modelIndex = readJsonObject(join(root, 'model_index.json'), 'model_index.json');
  const scheduler = parseSchedulerConfig(parseJsonLenient(readFileSync(join(root, 'scheduler', 'scheduler_config.json'), 'utf8')), 'scheduler/scheduler_config.json');
  const tokenizer = loadClipTokenizer(join(root, 'tokenizer'), opts.tokenizer === undefined ? {} : { semantics: opts.tokenizer });
  const scaling = scalingFactorOf(root, modelIndex);

  const present = COMPONENTS.filter((c) => existsSync(join(root, c, 'model.onnx')));
  const sessions = new Map<SdComponentName, Session>();
  try {
    for (const c of present) sessions.set(c, await openComponent(root, c, opts));
    const rel = (c: SdComponentName): string => relative(root, join(root, c, 'model.onnx'));
    const path = (c: SdComponentName): string => join(root, c, 'model.onnx');
    const te = describeTextEncoder(sessions.get('text_encoder')!, rel('text_encoder'), path('text_encoder'));
    const unet = describeUnet(sessions.get('unet')!, rel('unet'), path('unet'));
    const encS = sessions.get('vae_encoder');
    const enc = encS === undefined ? null : describeVaeEncoder(encS, rel('vae_encoder'), path('vae_encoder'));
    const dec = describeVaeDecoder(sessions.get('vae_decoder')!, rel('vae_decoder'), path('vae_decoder'));

    // cross-component checks, all reported at once
    const problems: string[] = [];
    const ehs = sessions.get('unet')!.input('encoder_hidden_states');
    const teOut = sessions.get('text_encoder')!.outputs.find((o) => o.name === te.hiddenStateOutput)!;
    if (te.hiddenSize !== null && unet.hiddenSize !== null && te.hiddenSize !== unet.hiddenSize) {
      problems.push(`unet/model.onnx input 'encoder_hidden_states' ${fmtShape(ehs)} has width ${unet.hiddenSize} but text_encoder/model.onnx output '${te.hiddenStateOutput}' ${fmtShape(teOut)} has hidden size ${te.hiddenSize}`);
    }
    if (te.sequenceLength !== null && unet.contextLength !== null && te.sequenceLength !== unet.contextLength) {
      problems.push(`unet/model.onnx input 'encoder_hidden_states' ${fmtShape(ehs)} has ${unet.contextLength} tokens but text_encoder/model.onnx input 'input_ids' has ${te.sequenceLength}`);
    }
    if (te.sequenceLength !== null && te.sequenceLength !== tokenizer.maxLength) {
      problems.push(`tokenizer/ gives ${tokenizer.maxLength} ids per prompt but text_encoder/model.onnx input 'input_ids' takes ${te.sequenceLength}`);
    }
    const latent: { who: string; c: number }[] = [];
    if (unet.latentChannels !== null) latent.push({ who: `unet/model.onnx input 'sample'`, c: unet.latentChannels });
    if (dec.latentChannels !== null) latent.push({ who: `vae_decoder/model.onnx input '${dec.input}'`, c: dec.latentChannels });
    if (enc !== null && enc.latentChannels !== null) latent.push({ who: `vae_encoder/model.onnx output '${enc.outputKind}'${enc.outputKind === 'latent_parameters' ? ' (mean ‖ log-variance)' : ''}`, c: enc.latentChannels });
    for (let i = 1; i < latent.length; i++) {
      if (latent[i]!.c !== latent[0]!.c) problems.push(`latent channels differ: ${latent[0]!.who} has ${latent[0]!.c}, ${latent[i]!.who} has ${latent[i]!.c}`);
    }
    if (problems.length > 0) throw new Error(`Stable Diffusion export ${root}: components do not fit together:\n  - ${problems.join('\n  - ')}`);
    const vsf = vaeScaleFactorOf(root);
    if (vsf.value !== 8) throw new Error(`Stable Diffusion export ${root}: VAE scale factor ${vsf.value} (${vsf.source}) is not supported; memscope's latent pipeline takes latents at 1/8 of the image side, as every SD 1.x / 2.x VAE`);
    const defaultSize = sdDefaultImageSize(root, unet.sampleSize);

    const s = {
      textEncoder: sessions.get('text_encoder')!,
      unet: sessions.get('unet')!,
      vaeEncoder: encS ?? null,
      vaeDecoder: sessions.get('vae_decoder')!,
    };
    const className = modelIndex['_class_name'];
    return {
      dir: root,
      className: typeof className === 'string' ? className : null,
      components: present,
      textEncoder: te,
      unet,
      vaeEncoder: enc,
      vaeDecoder: dec,
      hiddenSize: te.hiddenSize ?? unet.hiddenSize,
      latentChannels: latent[0]?.c ?? 4,
      predictionType: scheduler.prediction_type,
      scalingFactor: scaling.value,
      scalingFactorSource: scaling.source,
      vaeScaleFactor: vsf.value,
      defaultSize,
      executionProvider: opts.executionProvider ?? 'cpu',
      modelIndex,
      scheduler,
      tokenizer,
      sessions: s,
      async dispose(): Promise<void> {
        await Promise.all([...sessions.values()].map((x) => x.release()));
      },
    };
  } catch (e) {
    await Promise.all([...sessions.values()].map((x) => x.release()));
    throw e;
  }
}

/** Text-encoder outputs for a batch of prompts. */
export interface SdPromptEmbeddings {
  /** `last_hidden_state` `[K, 77, E]`: the U-Net's `encoder_hidden_states` rows. */
  readonly hiddenStates: Tensor;
  /** `pooler_output` `[K, E]`, `null` when the text encoder has none. */
  readonly pooled: Tensor | null;
}

/**
 * Tokenize `prompts` with the export's tokenizer and run its text encoder, feeding `input_ids`
 * in the dtype its metadata declares (int32 or int64) (SPEC §7). The embeddings come back as
 * float32 also from a float16 text encoder (widened exactly at the session boundary).
 */
export async function encodePrompts(exp: SdExport, prompts: readonly string[]): Promise<SdPromptEmbeddings> {
  const enc = exp.tokenizer.encodeBatch(prompts);
  const feed: TypedFeed = { type: exp.textEncoder.idsType, dims: [enc.batchSize, enc.maxLength], data: enc.ids };
  const outs = [exp.textEncoder.hiddenStateOutput, ...(exp.textEncoder.pooledOutput === null ? [] : [exp.textEncoder.pooledOutput])];
  const res = await exp.sessions.textEncoder.run({ input_ids: feed }, outs);
  return { hiddenStates: res[exp.textEncoder.hiddenStateOutput]!, pooled: exp.textEncoder.pooledOutput === null ? null : res[exp.textEncoder.pooledOutput]! };
}

/** Options of {@link sdUnetDenoiser}. */
export interface SdUnetDenoiserOptions {
  /** `encoder_hidden_states` rows `[K, 77, E]` (e.g. {@link encodePrompts}' `hiddenStates`). */
  readonly conditions: Tensor;
  /** The null condition e_∅ (default zeros; SD uses the embedding of the empty prompt). */
  readonly uncond?: Tensor;
  /** Labels of the condition rows. */
  readonly labels?: readonly string[];
  /** Per-sample latent shape when the U-Net's `sample` dims are dynamic (e.g. `[4, 64, 64]`). */
  readonly shape?: readonly number[];
  /** Replace each batch's `encoder_hidden_states` from the timestep (CADS); default none. */
  readonly contextTransform?: (context: Float32Array, t: number) => Float32Array;
}

/**
 * The export's U-Net as a latent-space {@link OnnxDenoiser} (SPEC §2.4) on the already open
 * session — no second copy of the weights; `prediction_type` comes from the scheduler config.
 * Disposing the denoiser releases the export's U-Net session.
 */
export function sdUnetDenoiser(exp: SdExport, opts: SdUnetDenoiserOptions): OnnxDenoiser {
  return new OnnxDenoiser(exp.sessions.unet, {
    path: exp.unet.path,
    conditions: opts.conditions,
    predictionType: exp.predictionType,
    space: 'latent',
    ...(opts.uncond !== undefined ? { uncond: opts.uncond } : {}),
    ...(opts.labels !== undefined ? { labels: opts.labels } : {}),
    ...(opts.shape !== undefined ? { shape: opts.shape } : {}),
    ...(opts.contextTransform !== undefined ? { contextTransform: opts.contextTransform } : {}),
  });
}
