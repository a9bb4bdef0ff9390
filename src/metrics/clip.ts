/**
 * CLIP image and text encoders from user-supplied ONNX files, the CLIP score, and the CLIP
 * image embedding as a feature extractor (SPEC §4.5: alignment with the prompt, image quality).
 *
 * Expected files: a CLIP model split into its two towers, as transformers.js / optimum exports of
 * `CLIPVisionModelWithProjection` and `CLIPTextModelWithProjection` are laid out
 * (`vision_model.onnx`, `text_model.onnx`, often under `onnx/`):
 * - vision: input `pixel_values` float `[B, 3, S, S]` (S = 224 for ViT-B/32, B/16, L/14; 336 for
 *   L/14-336), output `image_embeds` `[B, D]`;
 * - text: input `input_ids` int64/int32 `[B, L]` (L = 77), optional `attention_mask`, output
 *   `text_embeds` `[B, D]`;
 * - the tokenizer folder of the same model (`vocab.json` + `merges.txt`, or `tokenizer.json`),
 *   read by `loadClipTokenizer`.
 *
 * Output choice (both towers, unless named in the options): `image_embeds` / `text_embeds` (the
 * projected embeddings, in CLIP's joint space), else `pooler_output`, else the first output. Only
 * the `*_embeds` outputs are comparable across the towers; `info.projected` says which was used.
 *
 * Image preprocessing = Hugging Face `CLIPImageProcessor` (the OpenAI CLIP `preprocess` recipe):
 * memscope images `[n, C, H, W]` in [−1, 1] → `(x + 1)/2` clipped to [0, 1]; grey (C = 1)
 * repeated to RGB; resize the shortest edge to S (long edge `⌊S·long/short⌋`) with PIL `BICUBIC`
 * (Keys a = −0.5, antialiased when downsampling; `pilBicubicWeights` in `resize.ts`) in float,
 * clamped to [0, 1] after each pass as PIL's 8-bit resampling clamps (its 8-bit rounding is not
 * reproduced); center crop S×S (offset `(n − S) // 2`, transformers `image_transforms.center_crop`;
 * `crop: 'torchvision'` gives OpenAI CLIP's `CenterCrop`, `int(round((n − S)/2))`); normalise
 * with mean (0.48145466, 0.4578275, 0.40821073) and std (0.26862954, 0.26130258, 0.27577711)
 * (`OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD`). Resize + crop are two MatMuls in an ONNX graph.
 *
 * Text: `loadClipTokenizer` ids (bos, tokens, eos, padding to L; longer prompts truncated so eos
 * stays). Padding to L instead of the batch's longest prompt (transformers' `padding=True`) does
 * not change CLIP's pooled output: attention is causal and the pooler reads the eos position.
 *
 * CLIP score of image i with text t: `max(100·cos(E_i, E_t), 0)` — the formula of torchmetrics'
 * `CLIPScore` docs (Hessel et al. 2021's CLIP-S with w = 100 instead of 2.5). torchmetrics'
 * implementation clamps the batch mean rather than each image; here every image gets its own
 * clamped score, which equals torchmetrics' value for a one-image batch.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createSession, type Session, type ValueInfo } from '../graph/session.ts';
import type { AlignmentScorer, EvaluatedPrompt, FeatureExtractor } from './types.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { loadClipTokenizer, type ClipTokenizer } from '../text/clip-tokenizer.ts';
import { l2NormalizeRows } from './descriptor.ts';
import { readEvalModelManifest, type EvalModelManifest } from './manifest.ts';
import { embedImageChunks, fixedDim, preprocessImages, runFixedBatch, runInChunks, sessionCache, shapeText, type ImageModelRun } from './model-run.ts';
import { centerCropOffset, pilBicubicWeights, preprocessSession, shortestEdgeSize, sliceRows, type CropRounding } from './resize.ts';

/** OpenAI CLIP's per-channel mean (RGB) of its `Normalize` (= transformers `OPENAI_CLIP_MEAN`). */
export const OPENAI_CLIP_MEAN: readonly number[] = Object.freeze([0.48145466, 0.4578275, 0.40821073]);
/** OpenAI CLIP's per-channel standard deviation (RGB) (= transformers `OPENAI_CLIP_STD`). */
export const OPENAI_CLIP_STD: readonly number[] = Object.freeze([0.26862954, 0.26130258, 0.27577711]);
/** Default CLIP input side S (shortest-edge resize and crop size) when the model does not fix it. */
export const CLIP_IMAGE_SIZE = 224;
/** Default images / prompts per model run. */
export const CLIP_DEFAULT_BATCH = 16;

/** What a loaded CLIP tower is (recorded with results). */
export interface ClipTowerInfo {
  /** The ONNX file. */
  readonly path: string;
  /** Embedding dimension D. */
  readonly dim: number;
  /** Model input fed (images: `pixel_values`; text: `input_ids`). */
  readonly input: string;
  /** Model output read. */
  readonly output: string;
  /** Whether the output is a projected `*_embeds` output (CLIP's joint space). */
  readonly projected: boolean;
  /** Exact description of the preprocessing. */
  readonly preprocessing: string;
  /** The conversion manifest beside the file (scripts/convert/clip_to_onnx.py), null when it has none. */
  readonly manifest: EvalModelManifest | null;
}

/** A CLIP image tower. */
export interface ClipImageEncoder {
  /** What was loaded and how inputs are preprocessed. */
  readonly info: ClipTowerInfo;
  /** Embeddings `[n, D]`, rows L2-normalised, of images `[n, 1|3, H, W]` in [−1, 1]. */
  embed(images: Tensor): Promise<Tensor>;
  /** Raw model outputs `[n, D]` (not normalised). */
  embedRaw(images: Tensor): Promise<Tensor>;
  /** The model input `[n, 3, S, S]` for these images (the preprocessing alone). */
  preprocess(images: Tensor): Promise<Tensor>;
  /** Release the sessions. */
  dispose(): Promise<void>;
}

/** A CLIP text tower with its tokenizer. */
export interface ClipTextEncoder {
  /** What was loaded and how prompts are tokenized. */
  readonly info: ClipTowerInfo;
  /** The tokenizer (its `maxLength` = the model's fixed sequence length when it declares one). */
  readonly tokenizer: ClipTokenizer;
  /** Embeddings `[n, D]`, rows L2-normalised, of `texts`. */
  embed(texts: readonly string[]): Promise<Tensor>;
  /** Raw model outputs `[n, D]` (not normalised). */
  embedRaw(texts: readonly string[]): Promise<Tensor>;
  /** Release the session. */
  dispose(): Promise<void>;
}

/** Options of {@link loadClipImageEncoder}. */
export interface ClipImageOptions {
  /** Input side S (shortest edge and crop). Default: the model's fixed square input size, else 224. */
  readonly size?: number;
  /** Center-crop rounding (default `'hf'`: `(n − S) // 2`; `'torchvision'`: `int(round((n − S)/2))`). */
  readonly crop?: CropRounding;
  /** Output to read (default: `image_embeds`, else `pooler_output`, else the first output). */
  readonly output?: string;
  /** Images per model run (default 16; a fixed batch size declared by the model wins, zero-padded). */
  readonly batch?: number;
}

/** Options of {@link loadClipTextEncoder}. */
export interface ClipTextOptions {
  /** Output to read (default: `text_embeds`, else `pooler_output`, else the first output). */
  readonly output?: string;
  /** Prompts per model run (default 16; a fixed batch size declared by the model wins). */
  readonly batch?: number;
}

// ---------------------------------------------------------------------------------------------
// helpers

function checkFile(fn: string, arg: string, path: string, what: string): void {
  if (!existsSync(path)) throw new Error(`${fn}: ${arg} '${path}' does not exist (expected ${what})`);
  if (!statSync(path).isFile()) throw new Error(`${fn}: ${arg} '${path}' is not a file (expected ${what})`);
}

function checkBatch(fn: string, batch: number): void {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`${fn}: batch must be a positive integer, got ${batch}`);
}

async function open(fn: string, arg: string, path: string): Promise<Session> {
  try {
    return await createSession(path);
  } catch (e) {
    throw new Error(`${fn}: ${arg} '${path}' could not be loaded as an ONNX model: ${(e as Error).message}`);
  }
}

/** The output to read: `name` when given, else the first of `prefer` present, else the first output. */
function pickOutput(s: Session, name: string | undefined, prefer: readonly string[]): ValueInfo | string {
  if (name !== undefined) return s.outputs.find((o) => o.name === name) ?? `it has no output '${name}' (outputs: ${s.outputNames.join(', ')})`;
  for (const p of prefer) {
    const o = s.outputs.find((v) => v.name === p);
    if (o !== undefined) return o;
  }
  return s.outputs[0] ?? 'it has no outputs';
}

function checkOutput(o: ValueInfo): string | null {
  if (!o.isTensor || (o.type !== 'float32' && o.type !== 'float16')) return `output '${o.name}' has type ${o.type ?? 'non-tensor'}, not float`;
  if (o.shape !== null && o.shape.length !== 0 && o.shape.length !== 2) return `output '${o.name}' has rank ${o.shape.length} (shape ${shapeText(o)}), not 2 ([B, D])`;
  return null;
}

/**
 * A tower's {@link ClipTowerInfo}: fed at `input`, reading `output` `[B, dim]`, projected when
 * `output` is the tower's `embeds` output (`image_embeds` / `text_embeds`); `preprocessing` is
 * completed with the output read.
 */
function towerInfo(path: string, dim: number, input: string, output: string, embeds: string, preprocessing: string, manifest: EvalModelManifest | null): ClipTowerInfo {
  const projected = output === embeds;
  return { path, dim, input, output, projected, preprocessing: `${preprocessing}output '${output}' [B, ${dim}]${projected ? '' : ` (not a projected ${embeds} output)`}`, manifest };
}

/** The conversion manifest beside a tower's file, checked to be of that tower's kind. */
function towerManifest(fn: string, path: string, kind: 'clip-vision' | 'clip-text'): EvalModelManifest | null {
  const m = readEvalModelManifest(path);
  if (m !== null && m.kind !== kind) throw new Error(`${fn}: path '${path}' is a ${m.kind} model by its manifest (${m.checkpoint}), not ${kind}`);
  return m;
}

/** Cosines of matching rows of `a` and `b` `[n, D]`, in float64 (0 for a zero row). */
export function rowCosines(a: Tensor, b: Tensor): Float64Array {
  const n = a.dims[0] ?? 0;
  if (a.dims.length !== 2 || b.dims.length !== 2 || b.dims[0] !== n || a.dims[1] !== b.dims[1]) {
    throw new Error(`rowCosines: need two [n, D] tensors of the same shape, got [${a.dims.join(', ')}] and [${b.dims.join(', ')}]`);
  }
  const d = a.dims[1]!;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let k = 0; k < d; k++) {
      const x = a.data[i * d + k]!;
      const y = b.data[i * d + k]!;
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    out[i] = aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0;
  }
  return out;
}

/**
 * CLIP scores of matching rows of image and text embeddings `[n, D]` (raw or normalised):
 * `max(100·cos, 0)` per row (torchmetrics `CLIPScore` formula, clamped per image; see the module
 * comment). Cosines in float64.
 */
export function clipScoresFromEmbeddings(image: Tensor, text: Tensor): number[] {
  return Array.from(rowCosines(image, text), (c) => Math.max(100 * c, 0));
}

// ---------------------------------------------------------------------------------------------
// image tower

/**
 * Load a CLIP image tower from the ONNX file `path` (see the module comment for the expected
 * signature, output choice and preprocessing). The input is `pixel_values`, or the model's only
 * input when it is a float tensor. Throws naming `path` when the file is missing, not ONNX, has
 * other inputs, or its output is not `[B, D]`.
 */
export async function loadClipImageEncoder(path: string, opts: ClipImageOptions = {}): Promise<ClipImageEncoder> {
  const fn = 'loadClipImageEncoder';
  checkFile(fn, 'path', path, 'a CLIP vision model exported to ONNX, e.g. vision_model.onnx');
  const manifest = towerManifest(fn, path, 'clip-vision');
  const batch = opts.batch ?? CLIP_DEFAULT_BATCH;
  checkBatch(fn, batch);
  if (opts.size !== undefined && (!Number.isInteger(opts.size) || opts.size < 1)) throw new Error(`${fn}: size must be a positive integer, got ${opts.size}`);
  const crop = opts.crop ?? 'hf';
  if (crop !== 'hf' && crop !== 'torchvision') throw new Error(`${fn}: crop must be 'hf' or 'torchvision', got ${JSON.stringify(crop)}`);
  const model = await open(fn, 'path', path);
  const fail = async (msg: string): Promise<never> => {
    await model.release();
    throw new Error(
      `${fn}: path '${path}' is not a CLIP vision model: ${msg}. Expected input 'pixel_values' float [B, 3, S, S] and output ` +
        "'image_embeds' [B, D] (transformers CLIPVisionModelWithProjection exported to ONNX)",
    );
  };
  let inp = model.inputs.find((i) => i.name === 'pixel_values');
  if (inp === undefined && model.inputs.length === 1) inp = model.inputs[0]!;
  if (inp === undefined) return fail(`it has no input 'pixel_values' (inputs: ${model.inputNames.join(', ')})`);
  if (model.inputs.length !== 1) return fail(`it has inputs ${model.inputNames.join(', ')}; only '${inp.name}' can be fed (is this the combined CLIP model?)`);
  if (!inp.isTensor || (inp.type !== 'float32' && inp.type !== 'float16')) return fail(`input '${inp.name}' has type ${inp.type ?? 'non-tensor'}, not float`);
  if (inp.shape !== null && inp.shape.length !== 0 && inp.shape.length !== 4) return fail(`input '${inp.name}' has shape ${shapeText(inp)}, not [B, 3, S, S]`);
  const ch = fixedDim(inp, 1);
  if (ch !== null && ch !== 3) return fail(`input '${inp.name}' has ${ch} channels, not 3`);
  const out = pickOutput(model, opts.output, ['image_embeds', 'pooler_output']);
  if (typeof out === 'string') return fail(out);
  const bad = checkOutput(out);
  if (bad !== null) return fail(bad);
  const fh = fixedDim(inp, 2);
  const fw = fixedDim(inp, 3);
  if (fh !== null && fw !== null && fh !== fw) return fail(`input '${inp.name}' is ${fh}x${fw}, not square`);
  const S = fh ?? fw ?? opts.size ?? CLIP_IMAGE_SIZE;
  if (opts.size !== undefined && opts.size !== S) {
    await model.release();
    throw new Error(`${fn}: size ${opts.size} contradicts the fixed input ${S}x${S} of path '${path}'`);
  }
  const fixedBatch = fixedDim(inp, 0);
  const chunk = fixedBatch ?? batch;
  const pre = sessionCache();
  const run: ImageModelRun = {
    what: `CLIP image encoder (${path})`,
    prep: (c, h, w) =>
      pre.get(`${c}x${h}x${w}`, () => {
        const [rh, rw] = shortestEdgeSize(h, w, S);
        const top = centerCropOffset(rh, S, crop);
        const left = centerCropOffset(rw, S, crop);
        return preprocessSession({
          c,
          h,
          w,
          rows: sliceRows(pilBicubicWeights(h, rh), h, top, S),
          oh: S,
          cols: sliceRows(pilBicubicWeights(w, rw), w, left, S),
          ow: S,
          clampPasses: true,
          mean: OPENAI_CLIP_MEAN,
          std: OPENAI_CLIP_STD,
        });
      }),
    chunk,
    run: (x) =>
      runFixedBatch(x, fixedBatch, async (feed) => {
        const y = (await model.run({ [inp.name]: feed }, [out.name]))[out.name]!;
        if (y.dims.length !== 2 || y.dims[0] !== feed.dims[0]) {
          throw new Error(`${fn}: path '${path}': output '${out.name}' came back as [${y.dims.join(', ')}] for ${feed.dims[0]} images, not rank 2 [B, D]`);
        }
        return y;
      }),
    mismatch: (got, want) => new Error(`${fn}: path '${path}': output '${out.name}' has ${got} columns, expected ${want}`),
  };
  const preprocess = (images: Tensor): Promise<Tensor> => preprocessImages(images, run);
  let dim = fixedDim(out, 1);
  const embedRaw = (images: Tensor): Promise<Tensor> => embedImageChunks(images, dim, run);
  if (dim === null) {
    // probe D with one mid-grey image
    dim = (await embedRaw({ dims: [1, 1, S, S], data: new Float32Array(S * S) })).dims[1]!;
  }
  const info = towerInfo(
    path,
    dim,
    inp.name,
    out.name,
    'image_embeds',
    'HF CLIPImageProcessor / OpenAI CLIP: x in [-1, 1] -> (x + 1)/2 clipped to [0, 1]; 1-channel images repeated to RGB; ' +
      `resize the shortest edge to ${S} (long edge floor(${S}*long/short)) with PIL BICUBIC (Keys a = -0.5, antialiased when downsampling; ` +
      'float, clamped to [0, 1] after each pass, no 8-bit rounding); ' +
      `center crop ${S}x${S} (${crop === 'hf' ? 'offset (n - S) // 2, transformers center_crop' : 'offset int(round((n - S)/2)), torchvision CenterCrop'}); ` +
      `normalise with mean (${OPENAI_CLIP_MEAN.join(', ')}) and std (${OPENAI_CLIP_STD.join(', ')}); ` +
      `fed to '${inp.name}', `,
    manifest,
  );
  return {
    info,
    embedRaw,
    preprocess,
    async embed(images: Tensor): Promise<Tensor> {
      return l2NormalizeRows(await embedRaw(images));
    },
    async dispose(): Promise<void> {
      await model.release();
      await pre.release();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// text tower

/**
 * Load a CLIP text tower from the ONNX file `path` and its tokenizer from `tokenizerDir` (a
 * folder with `vocab.json` + `merges.txt` or `tokenizer.json`, or a folder holding `tokenizer/`;
 * see `loadClipTokenizer`). Inputs: `input_ids` (int64 or int32, `[B, L]`; a fixed L sets the
 * tokenizer's length) and optionally `attention_mask` (1 before the padding, 0 in it). Output
 * choice as in the module comment. Throws naming the argument when a file is missing, an input
 * is not one of these, or the output is not `[B, D]`.
 */
export async function loadClipTextEncoder(path: string, tokenizerDir: string, opts: ClipTextOptions = {}): Promise<ClipTextEncoder> {
  const fn = 'loadClipTextEncoder';
  checkFile(fn, 'path', path, 'a CLIP text model exported to ONNX, e.g. text_model.onnx');
  const manifest = towerManifest(fn, path, 'clip-text');
  if (!existsSync(tokenizerDir)) throw new Error(`${fn}: tokenizerDir '${tokenizerDir}' does not exist (expected the CLIP tokenizer folder: vocab.json + merges.txt, or tokenizer.json)`);
  const batch = opts.batch ?? CLIP_DEFAULT_BATCH;
  checkBatch(fn, batch);
  const model = await open(fn, 'path', path);
  const fail = async (msg: string): Promise<never> => {
    await model.release();
    throw new Error(
      `${fn}: path '${path}' is not a CLIP text model: ${msg}. Expected input 'input_ids' int64/int32 [B, 77] (optionally 'attention_mask') ` +
        "and output 'text_embeds' [B, D] (transformers CLIPTextModelWithProjection exported to ONNX)",
    );
  };
  const ids = model.inputs.find((i) => i.name === 'input_ids');
  if (ids === undefined) return fail(`it has no input 'input_ids' (inputs: ${model.inputNames.join(', ')})`);
  const extra = model.inputs.filter((i) => i.name !== 'input_ids' && i.name !== 'attention_mask');
  if (extra.length > 0) return fail(`it has inputs ${extra.map((i) => `'${i.name}'`).join(', ')} besides input_ids / attention_mask (is this the combined CLIP model?)`);
  const mask = model.inputs.find((i) => i.name === 'attention_mask');
  for (const i of [ids, ...(mask === undefined ? [] : [mask])]) {
    if (!i.isTensor || (i.type !== 'int64' && i.type !== 'int32')) return fail(`input '${i.name}' has type ${i.type ?? 'non-tensor'}, not int64 or int32`);
    if (i.shape !== null && i.shape.length !== 0 && i.shape.length !== 2) return fail(`input '${i.name}' has shape ${shapeText(i)}, not [B, L]`);
  }
  const out = pickOutput(model, opts.output, ['text_embeds', 'pooler_output']);
  if (typeof out === 'string') return fail(out);
  const bad = checkOutput(out);
  if (bad !== null) return fail(bad);
  const L = fixedDim(ids, 1);
  let tokenizer: ClipTokenizer;
  try {
    tokenizer = loadClipTokenizer(tokenizerDir, L === null ? {} : { maxLength: L });
  } catch (e) {
    await model.release();
    throw new Error(`${fn}: tokenizerDir '${tokenizerDir}': ${(e as Error).message}`);
  }
  const fixedBatch = fixedDim(ids, 0);
  const chunk = fixedBatch ?? batch;
  const runModel = async (texts: readonly string[]): Promise<Tensor> => {
    const n = texts.length;
    const rows = fixedBatch ?? n;
    const enc = tokenizer.encodeBatch(texts);
    const T = enc.maxLength;
    let idData = enc.ids;
    let maskData = enc.attentionMask;
    if (rows !== n) {
      // pad a fixed batch with copies of the first prompt (outputs dropped)
      idData = new Int32Array(rows * T);
      maskData = new Int32Array(rows * T);
      for (let r = 0; r < rows; r++) {
        const src = r < n ? r : 0;
        idData.set(enc.ids.subarray(src * T, (src + 1) * T), r * T);
        maskData.set(enc.attentionMask.subarray(src * T, (src + 1) * T), r * T);
      }
    }
    const feeds: Record<string, { type: 'int32'; dims: number[]; data: Int32Array }> = { input_ids: { type: 'int32', dims: [rows, T], data: idData } };
    if (mask !== undefined) feeds['attention_mask'] = { type: 'int32', dims: [rows, T], data: maskData };
    const y = (await model.run(feeds, [out.name]))[out.name]!;
    if (y.dims.length !== 2 || y.dims[0] !== rows) {
      throw new Error(`${fn}: path '${path}': output '${out.name}' came back as [${y.dims.join(', ')}] for ${rows} prompts, not rank 2 [B, D]`);
    }
    const d = y.dims[1]!;
    return n === rows ? y : { dims: [n, d], data: y.data.slice(0, n * d) };
  };
  let dim = fixedDim(out, 1);
  const embedRaw = (texts: readonly string[]): Promise<Tensor> =>
    runInChunks(
      texts.length,
      chunk,
      dim,
      (s, e) => runModel(texts.slice(s, e)),
      (got, want) => new Error(`${fn}: path '${path}': output '${out.name}' has ${got} columns, expected ${want}`),
    );
  if (dim === null) dim = (await embedRaw([''])).dims[1]!;
  const info = towerInfo(
    path,
    dim,
    ids.name,
    out.name,
    'text_embeds',
    `CLIP BPE tokenizer from '${tokenizerDir}' (${tokenizer.source}): <|startoftext|>, tokens, <|endoftext|>, padded with '${tokenizer.specialTokens.pad}' ` +
      `to ${tokenizer.maxLength} ids (longer prompts truncated); ${mask === undefined ? 'no attention_mask input' : 'attention_mask 1 before the padding'}; `,
    manifest,
  );
  return {
    info,
    tokenizer,
    embedRaw,
    async embed(texts: readonly string[]): Promise<Tensor> {
      return l2NormalizeRows(await embedRaw(texts));
    },
    async dispose(): Promise<void> {
      await model.release();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// both towers

/** Where a CLIP model's parts are. */
export interface ClipPaths {
  /** The vision tower ONNX file (`vision_model.onnx`). */
  readonly vision: string;
  /** The text tower ONNX file (`text_model.onnx`). */
  readonly text: string;
  /** The tokenizer folder (or a folder holding `tokenizer/`). */
  readonly tokenizer: string;
}

/**
 * The parts of a CLIP export folder `dir`: `vision_model.onnx` and `text_model.onnx` in `dir` or
 * `dir/onnx` (the transformers.js layout), the tokenizer in `dir` (its `vocab.json` /
 * `tokenizer.json`) or `dir/tokenizer`. Throws naming `dir` and the missing file.
 */
export function clipPathsFromDir(dir: string): ClipPaths {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`clipPathsFromDir: dir '${dir}' is not a directory (expected a CLIP export with vision_model.onnx, text_model.onnx and tokenizer files)`);
  const find = (name: string): string => {
    for (const p of [join(dir, name), join(dir, 'onnx', name)]) if (existsSync(p)) return p;
    throw new Error(`clipPathsFromDir: dir '${dir}' has no ${name} (looked in '${dir}' and '${join(dir, 'onnx')}')`);
  };
  const hasTok = (d: string): boolean => existsSync(join(d, 'tokenizer.json')) || existsSync(join(d, 'vocab.json'));
  const tok = hasTok(dir) ? dir : hasTok(join(dir, 'tokenizer')) ? join(dir, 'tokenizer') : null;
  if (tok === null) throw new Error(`clipPathsFromDir: dir '${dir}' has no tokenizer (tokenizer.json or vocab.json + merges.txt in it or in tokenizer/)`);
  return { vision: find('vision_model.onnx'), text: find('text_model.onnx'), tokenizer: tok };
}

/** A CLIP model: both towers, with D checked equal. */
export interface Clip {
  /** The image tower. */
  readonly image: ClipImageEncoder;
  /** The text tower. */
  readonly text: ClipTextEncoder;
  /** Joint embedding dimension D. */
  readonly dim: number;
  /** CLIP score of each image `[n, ...]` with `texts[i]` (see {@link clipScoresFromEmbeddings}). */
  scores(images: Tensor, texts: readonly string[]): Promise<number[]>;
  /** Release both towers. */
  dispose(): Promise<void>;
}

/** Options of {@link loadClip}. */
export interface ClipOptions {
  /** Options of the image tower (defaults as in {@link ClipImageOptions}). */
  readonly image?: ClipImageOptions;
  /** Options of the text tower (defaults as in {@link ClipTextOptions}). */
  readonly text?: ClipTextOptions;
}

/**
 * Load both CLIP towers (see {@link loadClipImageEncoder}, {@link loadClipTextEncoder}). Throws
 * naming both files when their embedding sizes differ.
 */
export async function loadClip(paths: ClipPaths, opts: ClipOptions = {}): Promise<Clip> {
  const image = await loadClipImageEncoder(paths.vision, opts.image ?? {});
  let text: ClipTextEncoder;
  try {
    text = await loadClipTextEncoder(paths.text, paths.tokenizer, opts.text ?? {});
  } catch (e) {
    await image.dispose();
    throw e;
  }
  if (image.info.dim !== text.info.dim) {
    await image.dispose();
    await text.dispose();
    throw new Error(
      `loadClip: the vision model '${paths.vision}' (output '${image.info.output}') gives ${image.info.dim}-d embeddings but the text model ` +
        `'${paths.text}' (output '${text.info.output}') gives ${text.info.dim}-d; both must be CLIP's joint space (image_embeds / text_embeds of one model)`,
    );
  }
  return {
    image,
    text,
    dim: image.info.dim,
    async scores(images: Tensor, texts: readonly string[]): Promise<number[]> {
      const n = images.dims[0] ?? 0;
      if (texts.length !== n) throw new Error(`Clip.scores: ${n} images but ${texts.length} texts`);
      const uniq = [...new Set(texts)];
      const at = new Map(uniq.map((t, i) => [t, i]));
      const te = await text.embedRaw(uniq);
      const d = te.dims[1]!;
      const rows = new Float32Array(n * d);
      texts.forEach((t, i) => rows.set(te.data.subarray(at.get(t)! * d, (at.get(t)! + 1) * d), i * d));
      return clipScoresFromEmbeddings(await image.embedRaw(images), { dims: [n, d], data: rows });
    },
    async dispose(): Promise<void> {
      await image.dispose();
      await text.dispose();
    },
  };
}

/**
 * An `AlignmentScorer` giving each image its CLIP score against `prompts[r].label`
 * (`max(100·cos, 0)`, see the module comment); null when some prompt has an empty label.
 */
export function clipAlignmentScorer(clip: Clip): AlignmentScorer {
  return {
    name: `CLIP score max(100*cos, 0) vs the prompt text (${clip.image.info.path}, ${clip.text.info.path}, D = ${clip.dim})`,
    unit: 'score',
    async score(images: Tensor, prompts: readonly EvaluatedPrompt[]): Promise<number[] | null> {
      if (prompts.some((p) => p.label.trim() === '')) return null;
      return clip.scores(images, prompts.map((p) => p.label));
    },
  };
}

/** Options of {@link clipFeatureExtractor}. */
export interface ClipFeatureOptions {
  /** L2-normalise each embedding (default true). */
  readonly normalize?: boolean;
}

/**
 * A `FeatureExtractor` of CLIP image embeddings `[n, D]` (L2-normalised unless
 * `normalize: false`), for a Fréchet distance in CLIP space.
 */
export function clipFeatureExtractor(encoder: ClipImageEncoder, opts: ClipFeatureOptions = {}): FeatureExtractor {
  const normalize = opts.normalize ?? true;
  return {
    name: `CLIP image embeddings (${encoder.info.path}, output '${encoder.info.output}', ${encoder.info.dim}-d${normalize ? ', L2-normalised' : ''})`,
    features: (images) => (normalize ? encoder.embed(images) : encoder.embedRaw(images)),
  };
}
