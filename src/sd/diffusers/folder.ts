/**
 * A diffusers Stable Diffusion pipeline folder as a model source, without an ONNX export (issue
 * 19 §1): `model_index.json`, `scheduler/`, `tokenizer/`, and `unet/`, `text_encoder/`, `vae/`
 * each with `config.json` and safetensors weights (float32, or the `.fp16` variant; single files
 * or shards with a `.safetensors.index.json`). memscope builds its own graphs of the three
 * components from the configs (`config.ts`) — `UNet2DConditionModel`, `CLIPTextModel`,
 * `AutoencoderKL` (encoder and decoder) — with every weight an external-data initializer pointing
 * into the safetensors file by name (`weights.ts`, `keys.ts`); missing or unexpected keys and
 * shape mismatches are one error per component listing them all.
 *
 * The graphs are written, in the layout of an optimum ONNX export, to a fresh folder under
 * `os.tmpdir()` beside HARD links to the weight files (no copy; onnxruntime resolves external
 * data relative to the model file and refuses symbolic links that leave its folder). Where a
 * hard link is impossible (the temp folder on another file system) the weight file is read and
 * handed to onnxruntime in memory. Nothing is written into the pipeline folder. The export loader
 * (`../export.ts`) then opens that folder, so every method that runs on an export runs on a
 * pipeline folder; `dispose` removes the temp folder.
 *
 * `.bin` (pickle) weights are refused: loading them runs arbitrary code.
 */
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { GraphBuilder } from '../../graph/builder.ts';
import { readSafetensorsIndex } from '../../io/safetensors.ts';
import { buildTextEncoder, type TextEncoderConfigInput } from '../../models/text-encoder.ts';
import { buildUnet, type UnetConfigInput } from '../../models/unet.ts';
import { buildVaeDecoder, buildVaeEncoder, type VaeConfigInput } from '../../models/vae.ts';
import { readJsonObject } from '../export.ts';
import { textEncoderConfigFromDiffusers, unetConfigFromDiffusers, vaeConfigFromDiffusers } from './config.ts';
import { textEncoderKey, unetKey, vaeKey } from './keys.ts';
import { bindWeights, checkWeights, type WeightFile } from './weights.ts';
import { matchLora, type LoraDelta, type LoraFile } from './lora.ts';
import { splitSingleFile } from './single-file.ts';

/** The U-Net sampling graph with onnxruntime's fused attention, beside `unet/model.onnx` (the exposable, differentiable one). */
export const FUSED_UNET_FILE = 'model-fused-attention.onnx';

/** Which weight files of a pipeline folder to read. */
export type DiffusersVariant = 'fp32' | 'fp16';

/** The three model folders of a pipeline and their weight-file stems. */
const COMPONENTS = { unet: 'diffusion_pytorch_model', text_encoder: 'model', vae: 'diffusion_pytorch_model' } as const;
/** The model folders of a diffusers Stable Diffusion pipeline that memscope builds graphs of. */
export type Component = keyof typeof COMPONENTS;

const readJson = readJsonObject;

/** True when `dir` is a diffusers pipeline folder with safetensors weights (and not an ONNX export): `model_index.json` and `unet/config.json`, no `unet/model.onnx`. */
export function isDiffusersFolder(dir: string): boolean {
  return existsSync(join(dir, 'model_index.json')) && existsSync(join(dir, 'unet', 'config.json')) && !existsSync(join(dir, 'unet', 'model.onnx'));
}

/** A component's weight files: `{stem}{.fp16}.safetensors`, or the shards its `….safetensors.index.json` lists. */
function weightFiles(root: string, comp: Component, variant: DiffusersVariant | undefined): { path: string; rel: string }[] {
  const stem = COMPONENTS[comp];
  const dir = join(root, comp);
  const candidates = (v: DiffusersVariant): { single: string; index: string } => {
    const infix = v === 'fp16' ? '.fp16' : '';
    return { single: `${stem}${infix}.safetensors`, index: `${stem}.safetensors.index${infix}.json` };
  };
  const order: DiffusersVariant[] = variant === undefined ? ['fp32', 'fp16'] : [variant];
  for (const v of order) {
    const c = candidates(v);
    if (existsSync(join(dir, c.single))) return [{ path: join(dir, c.single), rel: `${comp}/${c.single}` }];
    const idx = [c.index, `${stem}${v === 'fp16' ? '.fp16' : ''}.safetensors.index.json`].find((n) => existsSync(join(dir, n)));
    if (idx !== undefined) {
      const map = readJson(join(dir, idx), `${comp}/${idx}`)['weight_map'];
      if (typeof map !== 'object' || map === null) throw new Error(`${comp}/${idx}: no weight_map object`);
      const shards = [...new Set(Object.values(map as Record<string, unknown>).map(String))].sort();
      const lost = shards.filter((s) => !existsSync(join(dir, s)));
      if (lost.length > 0) throw new Error(`${comp}/${idx} names shard${lost.length === 1 ? '' : 's'} that are missing: ${lost.map((s) => `${comp}/${s}`).join(', ')}`);
      return shards.map((s) => ({ path: join(dir, s), rel: `${comp}/${s}` }));
    }
  }
  const present = existsSync(dir) ? readdirSync(dir).filter((f) => f !== 'config.json') : [];
  const pickle = present.filter((f) => f.endsWith('.bin') || f.endsWith('.ckpt') || f.endsWith('.pt'));
  const want = order.map((v) => `${comp}/${candidates(v).single}`).join(' or ');
  if (pickle.length > 0) {
    throw new Error(`${comp}/: only pickle weights (${pickle.join(', ')}); memscope reads safetensors only (loading pickle runs arbitrary code) — convert once with diffusers (\`DiffusionPipeline.from_pretrained(DIR).save_pretrained(DIR2, safe_serialization=True)\`) and point --model at DIR2`);
  }
  throw new Error(`${comp}/: no weights found (expected ${want}${variant === undefined ? '' : `, variant ${variant}`}; the folder has ${present.length === 0 ? 'nothing' : present.join(', ')})`);
}

/** The graphs of a pipeline folder and the weight files each refers to. */
interface BuiltComponent {
  /** Folder of the optimum export layout (`unet`, `text_encoder`, `vae_encoder`, `vae_decoder`). */
  readonly folder: 'unet' | 'text_encoder' | 'vae_encoder' | 'vae_decoder';
  /** File name in the folder (default `model.onnx`). */
  readonly file?: string;
  readonly bytes: Uint8Array;
  readonly files: readonly { path: string; location: string }[];
}

/** The resolved configurations of a pipeline folder (written next to results by callers). */
export interface DiffusersConfigs {
  readonly unet: UnetConfigInput;
  readonly textEncoder: TextEncoderConfigInput;
  readonly vae: VaeConfigInput;
  /** The weight files read, relative to the folder (empty for a single-file checkpoint). */
  readonly weights: readonly string[];
  /** A single-file checkpoint read instead of the folder's weights (`--pipeline-config`): its absolute path and the keys skipped by reason. */
  readonly singleFile?: { readonly path: string; readonly skipped: Readonly<Record<string, number>> };
  /** The LoRA adapters merged (`--lora`), with the number of U-Net and text-encoder weights each adapted. */
  readonly lora?: readonly { readonly path: string; readonly scale: number; readonly adapted: { readonly unet: number; readonly textEncoder: number } }[];
}

/** A LoRA adapter to merge at load: its safetensors file and scale (`--lora FILE[:scale]`). */
export interface LoraSpec {
  readonly path: string;
  readonly scale: number;
}

function indexOf(files: readonly { path: string; rel: string }[]): WeightFile[] {
  return files.map((f) => {
    try {
      return { index: readSafetensorsIndex(f.path), location: basename(f.path), rel: f.rel };
    } catch (e) {
      throw new Error(`${f.rel}: ${(e as Error).message}`);
    }
  });
}

/**
 * Build memscope's graphs of the pipeline folder `root` (see the module note): the text encoder
 * (`input_ids` int64 `[batch, L]` → `last_hidden_state`), the U-Net (`sample` `[batch, C, height,
 * width]`, `timestep` float32 `[batch]`, `encoder_hidden_states` → `out_sample`, attention
 * softmaxes named as torch.onnx names diffusers' modules), the VAE encoder (`sample` →
 * `latent_parameters`) and decoder (`latent_sample` → `sample`). Throws, before any session
 * exists, listing every unsupported setting or weight problem of a component.
 */
export function buildDiffusersGraphs(root: string, variant?: DiffusersVariant, lora: readonly LoraSpec[] = [], singleFile?: string): { components: BuiltComponent[]; configs: DiffusersConfigs } {
  const json = {
    unet: readJson(join(root, 'unet', 'config.json'), 'unet/config.json'),
    text_encoder: readJson(join(root, 'text_encoder', 'config.json'), 'text_encoder/config.json'),
    vae: readJson(join(root, 'vae', 'config.json'), 'vae/config.json'),
  };
  // configs first: an unsupported setting is reported before any weight file is opened
  const configs = resolveConfigs(json);
  const problems: string[] = [];
  const find = (c: Component): { path: string; rel: string }[] => {
    try {
      return weightFiles(root, c, variant);
    } catch (e) {
      problems.push((e as Error).message);
      return [];
    }
  };
  if (singleFile !== undefined && variant !== undefined) throw new Error(`--variant: a single-file checkpoint has one set of weights (${basename(singleFile)}); omit --variant`);
  let split: ReturnType<typeof splitSingleFile> | null = null;
  if (singleFile !== undefined) {
    let index;
    try {
      index = readSafetensorsIndex(singleFile);
    } catch (e) {
      throw new Error(`${singleFile}: ${(e as Error).message}`);
    }
    split = splitSingleFile(index, { unetLayersPerBlock: configs.unet.layersPerLevel ?? 1, vaeLevels: configs.vae.channels?.length ?? 4, textLayers: configs.textEncoder.layers ?? 1 });
    // SD 1.x files carry OpenAI CLIP (quick_gelu), SD 2.x files open_clip (gelu): a config of the other family computes another function on weights of the same shapes
    const want = split.textEncoder === 'clip' ? 'quick_gelu' : 'gelu';
    if ((configs.textEncoder.activation ?? 'quick_gelu') !== want) {
      throw new Error(`--pipeline-config: ${basename(singleFile)} carries ${split.textEncoder === 'clip' ? "OpenAI CLIP's text encoder (SD 1.x)" : "open_clip's text encoder (SD 2.x)"}, whose activation is ${want}, but ${root}/text_encoder/config.json has hidden_act ${configs.textEncoder.activation}: use the pipeline folder of the checkpoint's family`);
    }
  }
  const one = singleFile === undefined ? [] : [{ path: resolve(singleFile), rel: basename(singleFile) }];
  const files = split !== null ? { unet: one, text_encoder: one, vae: one } : { unet: find('unet'), text_encoder: find('text_encoder'), vae: find('vae') };
  if (problems.length > 0) throw new Error(problems.join('\n'));
  const loraFiles: LoraFile[] = lora.map((l, i) => {
    try {
      return { index: readSafetensorsIndex(l.path), location: `lora-${i}.safetensors`, scale: l.scale };
    } catch (e) {
      throw new Error(`--lora: ${(e as Error).message}`);
    }
  });
  const built = buildComponentGraphs(json, split !== null ? split.weights : { unet: indexOf(files.unet), text_encoder: indexOf(files.text_encoder), vae: indexOf(files.vae) }, loraFiles, configs);
  const source = (folder: BuiltComponent['folder']): Component => (folder === 'vae_encoder' || folder === 'vae_decoder' ? 'vae' : folder);
  const pathOf = (folder: BuiltComponent['folder'], l: string): string => files[source(folder)].find((f) => basename(f.path) === l)?.path ?? lora[loraFiles.findIndex((f) => f.location === l)]!.path;
  const components = built.components.map((c) => ({ ...c, files: c.locations.map((l) => ({ path: pathOf(c.folder, l), location: l })) }));
  return {
    components,
    configs: { ...built.configs, weights: split !== null ? [] : [...files.unet, ...files.text_encoder, ...files.vae].map((f) => f.rel), ...(split === null ? {} : { singleFile: { path: resolve(singleFile!), skipped: split.skipped } }), ...(lora.length === 0 ? {} : { lora: lora.map((l, i) => ({ ...l, adapted: built.adapted[i]! })) }) },
  };
}

/** The memscope configurations of a pipeline's three `config.json` objects (errors list every unsupported setting of a file; the U-Net's context is the text encoder's). */
export function resolveConfigs(json: Readonly<Record<Component, Readonly<Record<string, unknown>>>>): { unet: UnetConfigInput; textEncoder: TextEncoderConfigInput; vae: VaeConfigInput } {
  const textEncoder = textEncoderConfigFromDiffusers(json.text_encoder, 'text_encoder/config.json');
  const unet = unetConfigFromDiffusers(json.unet, 'unet/config.json', textEncoder.maxLength!);
  const vae = vaeConfigFromDiffusers(json.vae, 'vae/config.json');
  if (unet.contextDim !== textEncoder.width) throw new Error(`unet/config.json cross_attention_dim ${unet.contextDim} does not match text_encoder/config.json hidden_size ${textEncoder.width}`);
  if (unet.inChannels !== vae.latentChannels) throw new Error(`unet/config.json in_channels ${unet.inChannels} does not match vae/config.json latent_channels ${vae.latentChannels}`);
  return { unet, textEncoder, vae };
}

/**
 * Build the four graphs from a pipeline's `config.json` objects and the safetensors headers of
 * each component's weights (see {@link buildDiffusersGraphs}); each graph's external data names
 * the files by their `location`; `resolved` = `resolveConfigs(json)` when the caller has it.
 * Throws listing every weight problem of a component.
 */
export function buildComponentGraphs(
  json: Readonly<Record<Component, Readonly<Record<string, unknown>>>>,
  weights: Readonly<Record<Component, readonly WeightFile[]>>,
  loraFiles: readonly LoraFile[] = [],
  resolved: ReturnType<typeof resolveConfigs> = resolveConfigs(json),
): { components: (Omit<BuiltComponent, 'files'> & { readonly locations: readonly string[] })[]; configs: Omit<DiffusersConfigs, 'weights'>; adapted: { unet: number; textEncoder: number }[] } {
  const { unet: unetCfg, textEncoder: teCfg, vae: vaeCfg } = resolved;
  const dimsOf = (c: Component): Map<string, readonly number[]> => new Map(weights[c].flatMap((w) => [...w.index.entries.values()].map((e) => [e.name, e.dims] as const)));
  const lora: Record<'unet' | 'text_encoder', Map<string, LoraDelta[]>> = loraFiles.length === 0 ? { unet: new Map(), text_encoder: new Map() } : matchLora(loraFiles, dimsOf('unet'), dimsOf('text_encoder'));
  const adapted = loraFiles.map((f) => ({
    unet: [...lora.unet.values()].filter((ds) => ds.some((d) => d.location === f.location)).length,
    textEncoder: [...lora.text_encoder.values()].filter((ds) => ds.some((d) => d.location === f.location)).length,
  }));
  const locations = (c: Component): string[] => [...weights[c].map((w) => w.location), ...(c === 'vae' ? [] : loraFiles.map((f) => f.location))];
  const out: (Omit<BuiltComponent, 'files'> & { readonly locations: readonly string[] })[] = [
    { folder: 'text_encoder', bytes: buildTextEncoderGraph(teCfg, weights.text_encoder, lora.text_encoder), locations: locations('text_encoder') },
    { folder: 'unet', bytes: buildUnetGraph(unetCfg, weights.unet, lora.unet), locations: locations('unet') },
    { folder: 'unet', file: FUSED_UNET_FILE, bytes: buildUnetGraph(unetCfg, weights.unet, lora.unet, { fusedAttention: true }), locations: locations('unet') },
  ];
  const vae = buildVaeGraphs(vaeCfg, weights.vae);
  out.push({ folder: 'vae_encoder', bytes: vae.encoder, locations: locations('vae') }, { folder: 'vae_decoder', bytes: vae.decoder, locations: locations('vae') });
  return { components: out, configs: { unet: unetCfg, textEncoder: teCfg, vae: vaeCfg }, adapted };
}

/** Every file of pipeline folder `root` that memscope reads (relative paths, sorted): the index, scheduler, tokenizer, configs and the weight files chosen. */
export function diffusersFilesRead(root: string, configs: DiffusersConfigs): string[] {
  const tok = readdirSync(join(root, 'tokenizer')).filter((f) => statSync(join(root, 'tokenizer', f)).isFile()).map((f) => `tokenizer/${f}`);
  return ['model_index.json', 'scheduler/scheduler_config.json', 'unet/config.json', 'text_encoder/config.json', 'vae/config.json', ...tok, ...configs.weights].sort();
}

/** The text encoder's graph (`input_ids` int64 `[batch, L]` → `last_hidden_state`) over its weight files; throws listing every weight problem. */
export function buildTextEncoderGraph(cfg: TextEncoderConfigInput, weights: readonly WeightFile[], lora: ReadonlyMap<string, readonly LoraDelta[]> = new Map()): Uint8Array {
  const L = cfg.maxLength!;
  const b = new GraphBuilder({ name: 'text_encoder' });
  const ids = b.input('input_ids', 'int64', ['batch', L]);
  const w = bindWeights(b, weights, textEncoderKey, lora);
  b.output(buildTextEncoder(b, cfg, ids, w.param, 'dynamic'), 'float32', ['batch', L, cfg.width!], 'last_hidden_state');
  checkWeights('text_encoder', weights, [w]);
  return b.toBytes();
}

/**
 * The U-Net's graph over its weight files: `sample` `[batch, C, height, width]`, `timestep` float32
 * `[batch]`, `encoder_hidden_states` `[batch, L, E]` → `out_sample`, attention softmaxes named as
 * torch.onnx names diffusers' modules — or, with `fusedAttention`, onnxruntime's fused attention
 * kernel (the sampling graph: faster, but neither exposable nor differentiable); throws listing
 * every weight problem.
 */
export function buildUnetGraph(cfg: UnetConfigInput, weights: readonly WeightFile[], lora: ReadonlyMap<string, readonly LoraDelta[]> = new Map(), opts: { readonly fusedAttention?: boolean } = {}): Uint8Array {
  const b = new GraphBuilder({ name: 'unet' });
  const C = cfg.inChannels!;
  const io = {
    sample: b.input('sample', 'float32', ['batch', C, 'height', 'width']),
    timestep: b.input('timestep', 'float32', ['batch']),
    context: b.input('encoder_hidden_states', 'float32', ['batch', cfg.contextLength!, cfg.contextDim!]),
  };
  const levels = cfg.channels!.length;
  const w = bindWeights(b, weights, (n) => unetKey(n, levels), lora);
  const eps = buildUnet(b, cfg, io, w.param, 'dynamic', opts.fusedAttention === true ? { dynamicSpatial: true, fusedAttention: true } : { diffusersNodeNames: true, dynamicSpatial: true });
  b.output(eps, 'float32', ['batch', C, 'height', 'width'], 'out_sample');
  checkWeights('unet', weights, [w]);
  return b.toBytes();
}

/** The VAE encoder (`sample` → `latent_parameters`) and decoder (`latent_sample` → `sample`) graphs over one set of weight files. */
export function buildVaeGraphs(cfg: VaeConfigInput, weights: readonly WeightFile[]): { encoder: Uint8Array; decoder: Uint8Array } {
  const Lc = cfg.latentChannels!;
  const b = new GraphBuilder({ name: 'vae_encoder' });
  const img = b.input('sample', 'float32', ['batch', cfg.imageChannels!, 'height', 'width']);
  const w = bindWeights(b, weights, vaeKey);
  b.output(buildVaeEncoder(b, cfg, img, w.param), 'float32', ['batch', 2 * Lc, 'latent_height', 'latent_width'], 'latent_parameters');
  const d = new GraphBuilder({ name: 'vae_decoder' });
  const z = d.input('latent_sample', 'float32', ['batch', Lc, 'latent_height', 'latent_width']);
  const wd = bindWeights(d, weights, vaeKey);
  d.output(buildVaeDecoder(d, cfg, z, wd.param), 'float32', ['batch', cfg.imageChannels!, 'height', 'width'], 'sample');
  checkWeights('vae', weights, [w, wd]);
  return { encoder: b.toBytes(), decoder: d.toBytes() };
}

/** A pipeline folder written out as a temporary optimum-layout export. */
export interface MaterializedFolder {
  /** The temp export root. */
  readonly root: string;
  /** Weight files that could not be hard-linked, per export component, to hand to onnxruntime in memory. */
  readonly inMemory: Readonly<Partial<Record<BuiltComponent['folder'], { path: string; data: Uint8Array }[]>>>;
  /** The U-Net's weight files that are not beside its temp graph: location → their path in the pipeline folder (for graphs derived from it later). */
  readonly unetSources: Readonly<Record<string, string>>;
  readonly configs: DiffusersConfigs;
  /** Remove the temp folder. */
  dispose(): void;
}

/**
 * Write the graphs of {@link buildDiffusersGraphs} as an optimum-layout export into a fresh folder
 * under `os.tmpdir()` (model files, hard links to the weights, copies of `model_index.json`,
 * `scheduler/`, `tokenizer/`, `unet/config.json` and `vae/config.json` as `vae_encoder/` and
 * `vae_decoder/config.json`). Nothing is written into `dir`. `link` makes the hard links (default
 * `fs.linkSync`; a file it fails on is handed to onnxruntime in memory instead).
 */
export function materializeDiffusersFolder(dir: string, variant?: DiffusersVariant, lora: readonly LoraSpec[] = [], link: (src: string, dst: string) => void = linkSync, singleFile?: string): MaterializedFolder {
  const root = resolve(dir);
  const missing = ['model_index.json', 'scheduler/scheduler_config.json', 'unet/config.json', 'text_encoder/config.json', 'vae/config.json'].filter((f) => !existsSync(join(root, f)));
  if (!existsSync(join(root, 'tokenizer', 'tokenizer.json')) && !(existsSync(join(root, 'tokenizer', 'vocab.json')) && existsSync(join(root, 'tokenizer', 'merges.txt')))) missing.push('tokenizer/vocab.json + tokenizer/merges.txt (or tokenizer/tokenizer.json)');
  if (missing.length > 0) throw new Error(`diffusers pipeline folder ${root}: missing ${missing.join(', ')}`);
  const { components, configs } = buildDiffusersGraphs(root, variant, lora, singleFile);
  const tmp = mkdtempSync(join(tmpdir(), 'memscope-diffusers-'));
  try {
    const inMemory: Partial<Record<BuiltComponent['folder'], { path: string; data: Uint8Array }[]>> = {};
    const unetSources: Record<string, string> = {};
    for (const c of components) {
      const d = join(tmp, c.folder);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, c.file ?? 'model.onnx'), c.bytes);
      for (const f of c.files) {
        if (existsSync(join(d, f.location)) || (inMemory[c.folder] ?? []).some((x) => x.path === f.location)) continue;
        try {
          link(f.path, join(d, f.location));
        } catch {
          (inMemory[c.folder] ??= []).push({ path: f.location, data: readFileSync(f.path) });
          if (c.folder === 'unet') unetSources[f.location] = f.path;
        }
      }
    }
    copyFileSync(join(root, 'model_index.json'), join(tmp, 'model_index.json'));
    for (const sub of ['scheduler', 'tokenizer']) {
      mkdirSync(join(tmp, sub), { recursive: true });
      for (const f of readdirSync(join(root, sub))) if (statSync(join(root, sub, f)).isFile()) copyFileSync(join(root, sub, f), join(tmp, sub, f));
    }
    copyFileSync(join(root, 'unet', 'config.json'), join(tmp, 'unet', 'config.json'));
    for (const v of ['vae_encoder', 'vae_decoder']) copyFileSync(join(root, 'vae', 'config.json'), join(tmp, v, 'config.json'));
    return { root: tmp, inMemory, unetSources, configs, dispose: () => rmSync(tmp, { recursive: true, force: true }) };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
