/**
 * Pluggable copy-detection descriptors f for the memorization score of SPEC §3.8 (Kim et al.
 * use SSCD: Pizzi et al., "A Self-Supervised Descriptor for Image Copy Detection", CVPR 2022).
 * A descriptor maps images `[n, C, H, W]` in the model's pixel space (values in [−1, 1]) to
 * `[n, dim]` rows of unit L2 norm, so that `cos(f(a), f(b)) = ⟨f(a), f(b)⟩`.
 *
 * Three kinds:
 * - `pixel`: mean-centred pixel cosine (no model; the baseline of `copy.ts`);
 * - `learned`: memscope's own small SSCD-style CNN for 28×28 grey images, trained by
 *   `src/train/descriptor.ts` and shipped in `models/descriptor/`;
 * - `sscd`: a user-supplied SSCD model (TorchScript `sscd_disc_mixup` / `sscd_disc_large`
 *   exported to ONNX), with the preprocessing of the SSCD README.
 *
 * Resizing everywhere is PIL's bilinear resampling (what torchvision's `Resize` does to PIL
 * images, which is how the SSCD README feeds its models): separable, half-pixel centres, a
 * triangle filter whose support is widened by the scale factor when downsampling (antialiasing),
 * taps outside the image dropped and the weights renormalised. It is computed in float (no
 * 8-bit rounding) as two MatMuls with the weight matrices of {@link pilBilinearWeights}.
 */
import { existsSync, statSync } from 'node:fs';
import { GraphBuilder } from '../graph/builder.ts';
import { createSession, type Session } from '../graph/session.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { batchRows, checkImageBatch, embedImageChunks, fixedDim, runFixedBatch, sessionCache, shapeText, type ImageModelRun } from './model-run.ts';
import { centerCropOffset, pilBilinearWeights } from './resize.ts';
import { readEvalModelManifest, type EvalModelManifest } from './manifest.ts';
import { DESCRIPTOR_SIZE, LEARNED_PREPROCESSING, defaultDescriptorDir, descriptorInferenceGraph, readDescriptorModel } from '../models/descriptor.ts';

/** PIL bilinear resampling weights (re-exported from `resize.ts`, where the PIL resampling code lives). */
export { pilBilinearWeights };

/** What a descriptor is and how it treats its input (recorded with every score). */
export interface DescriptorInfo {
  /** Which kind of descriptor. */
  readonly name: 'pixel' | 'learned' | 'sscd';
  /** Human-readable, exact description of the preprocessing applied before the model. */
  readonly preprocessing: string;
  /** Embedding dimension (for `pixel`: the row size of its mean image, 0 when it has none and takes any row size). */
  readonly dim: number;
  /** Model path (directory or file) the descriptor was loaded from. */
  readonly source?: string;
  /** The conversion manifest beside an SSCD export (checkpoint, sha256, check), null when it has none. */
  readonly manifest?: EvalModelManifest | null;
}

/** A copy-detection embedding f. */
export interface Descriptor {
  /** What it is (see {@link DescriptorInfo}). */
  readonly info: DescriptorInfo;
  /** Embed images `[n, C, H, W]` in the model's pixel space, values in [−1, 1] → `[n, dim]`, each row L2-normalised. */
  embed(images: Tensor): Promise<Tensor>;
  /** Release sessions (optional). */
  dispose?(): Promise<void>;
}

/** ImageNet channel means used by SSCD's `transforms.Normalize` (README "Preprocessing"). */
export const SSCD_MEAN: readonly number[] = Object.freeze([0.485, 0.456, 0.406]);
/** ImageNet channel standard deviations used by SSCD's `transforms.Normalize`. */
export const SSCD_STD: readonly number[] = Object.freeze([0.229, 0.224, 0.225]);
/** SSCD README default: `transforms.Resize(288)`, the small edge resized to 288 keeping the aspect ratio. */
export const SSCD_DEFAULT_RESIZE = 288;
/** ITU-R 601 luma weights of PIL's `convert('L')` (R, G, B). */
export const LUMA_WEIGHTS: readonly number[] = Object.freeze([0.299, 0.587, 0.114]);

// ---------------------------------------------------------------------------------------------
// helpers

/** Each row of `[n, ...]` divided by its L2 norm (computed in float64); rows of zero norm stay zero. Returns `[n, d]`. */
export function l2NormalizeRows(t: Tensor): Tensor {
  const n = t.dims[0] ?? 0;
  const d = n === 0 ? 0 : t.data.length / n;
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let k = 0; k < d; k++) ss += t.data[i * d + k]! * t.data[i * d + k]!;
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let k = 0; k < d; k++) out[i * d + k] = t.data[i * d + k]! * inv;
  }
  return { dims: [n, d], data: out };
}

/** How the preprocessing graph maps its input. */
interface PreprocessSpec {
  readonly c: number;
  readonly h: number;
  readonly w: number;
  /** Output channels: 1 (luma of RGB input) or 3 (grey input repeated). */
  readonly channels: 1 | 3;
  readonly oh: number;
  readonly ow: number;
  /** `'unit'`: map [−1, 1] to [0, 1] (after clipping); `'signed'`: keep [−1, 1]. */
  readonly range: 'unit' | 'signed';
  /** Per-channel normalisation `(y − mean)/std` after resizing. */
  readonly normalize?: { readonly mean: readonly number[]; readonly std: readonly number[] };
  /** A window `[top, top + h) × [left, left + w)` of the resized image (torchvision `CenterCrop`). */
  readonly crop?: { readonly top: number; readonly left: number; readonly h: number; readonly w: number };
}

/** Add the preprocessing nodes for input `x` `[B, c, h, w]`; returns the output `[B, channels, oh, ow]`. */
function addPreprocess(b: GraphBuilder, x: string, p: PreprocessSpec): string {
  let y = b.op('Clip', [x, b.constF32(-1), b.constF32(1)]);
  if (p.range === 'unit') y = b.op('Mul', [b.op('Add', [y, b.constF32(1)]), b.constF32(0.5)]);
  if (p.c === 1 && p.channels === 3) y = b.op('Concat', [y, y, y], { axis: 1 });
  else if (p.c === 3 && p.channels === 1) y = b.op('ReduceSum', [b.op('Mul', [y, b.constF32(LUMA_WEIGHTS, [1, 3, 1, 1])]), b.constI64([1])], { keepdims: 1 });
  else if (p.c !== p.channels) throw new Error(`preprocess: cannot map ${p.c} channels to ${p.channels}`);
  if (p.w !== p.ow) {
    const rw = pilBilinearWeights(p.w, p.ow); // [ow, w]
    const rwT = new Float32Array(p.w * p.ow);
    for (let i = 0; i < p.ow; i++) for (let j = 0; j < p.w; j++) rwT[j * p.ow + i] = rw[i * p.w + j]!;
    y = b.op('MatMul', [y, b.constF32(rwT, [p.w, p.ow])]);
  }
  if (p.h !== p.oh) y = b.op('MatMul', [b.constF32(pilBilinearWeights(p.h, p.oh), [p.oh, p.h]), y]);
  if (p.crop !== undefined) {
    const { top, left, h, w } = p.crop;
    y = b.op('Slice', [y, b.constI64([top, left]), b.constI64([top + h, left + w]), b.constI64([2, 3])]);
  }
  if (p.normalize !== undefined) {
    y = b.op('Div', [b.op('Sub', [y, b.constF32(p.normalize.mean, [1, p.channels, 1, 1])]), b.constF32(p.normalize.std, [1, p.channels, 1, 1])]);
  }
  return y;
}

async function preprocessSession(p: PreprocessSpec): Promise<Session> {
  const b = new GraphBuilder({ name: 'descriptor_preprocess' });
  b.input('x', 'float32', ['B', p.c, p.h, p.w]);
  b.output(addPreprocess(b, 'x', p), 'float32', ['B', p.channels, p.crop?.h ?? p.oh, p.crop?.w ?? p.ow], 'y');
  return createSession(b.toBytes());
}

// ---------------------------------------------------------------------------------------------
// pixel

/**
 * Mean-centred pixel cosine: f(x) = (x − mean)/‖x − mean‖ over the flattened image (SPEC §0
 * cosine; the similarity of `copy.ts`). `mean` is e.g. the training-set mean image (same row
 * size as the images); default: no centring (plain pixel cosine). Rows of zero norm embed to 0.
 */
export function pixelDescriptor(mean?: Float32Array): Descriptor {
  const m = mean;
  const info: DescriptorInfo = {
    name: 'pixel',
    preprocessing:
      m === undefined
        ? 'flatten each image; no centring; divide by its L2 norm (all-zero rows stay zero)'
        : `flatten each image; subtract the given mean image (${m.length} values, e.g. the training-set mean); divide by the L2 norm (all-zero rows stay zero)`,
    dim: m?.length ?? 0,
  };
  return {
    info,
    embed(images: Tensor): Promise<Tensor> {
      const n = images.dims[0] ?? 0;
      const d = n === 0 ? (m?.length ?? 0) : images.data.length / n;
      if (m !== undefined && d !== m.length) return Promise.reject(new Error(`pixel descriptor: images have ${d} values per row, the mean image has ${m.length}`));
      if (m === undefined) return Promise.resolve(l2NormalizeRows({ dims: [n, d], data: images.data }));
      const c = new Float32Array(n * d);
      for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) c[i * d + k] = images.data[i * d + k]! - m[k]!;
      return Promise.resolve(l2NormalizeRows({ dims: [n, d], data: c }));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// learned

/**
 * memscope's learned descriptor (SSCD's recipe in miniature: a small CNN trained with NT-Xent on
 * strongly augmented Fashion-MNIST views; `src/train/descriptor.ts`), loaded from `dir`
 * (default `models/descriptor`). Takes `[n, 1|3, H, W]`; see `LEARNED_PREPROCESSING` for what is
 * done to inputs that are not 1×28×28. Embeds in chunks of 512.
 */
export async function learnedDescriptor(dir?: string): Promise<Descriptor> {
  const d = dir ?? defaultDescriptorDir();
  const { config, weights } = await readDescriptorModel(d);
  const arch = { convs: config.architecture.convs, dim: config.architecture.dim };
  const net = await createSession(descriptorInferenceGraph(weights, arch));
  const pre = sessionCache();
  const S = DESCRIPTOR_SIZE;
  const info: DescriptorInfo = { name: 'learned', preprocessing: LEARNED_PREPROCESSING, dim: arch.dim, source: d };
  const chunk = 512;
  return {
    info,
    async embed(images: Tensor): Promise<Tensor> {
      const [n, c, h, w] = checkImageBatch(`learned descriptor (${d})`, images);
      const p = c !== 1 || h !== S || w !== S ? await pre.get(`${c}x${h}x${w}`, () => preprocessSession({ c, h, w, channels: 1, oh: S, ow: S, range: 'signed' })) : undefined;
      const out = new Float32Array(n * arch.dim);
      for (let s = 0; s < n; s += chunk) {
        let x = batchRows(images, s, Math.min(n, s + chunk));
        if (p !== undefined) x = (await p.run({ x }))['y']!;
        out.set((await net.run({ x }))['embedding']!.data, s * arch.dim);
      }
      // the graph normalises already; renormalise in float64 so rows are unit to round-off
      return l2NormalizeRows({ dims: [n, arch.dim], data: out });
    },
    async dispose(): Promise<void> {
      await net.release();
      await pre.release();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// SSCD

/** Options of {@link sscdDescriptor}. */
export interface SscdOptions {
  /**
   * Resize before the model: a number = the small edge to that size keeping the aspect ratio
   * (torchvision `Resize(n)`: the long edge becomes `⌊n·long/short⌋`); `[h, w]` = exactly that
   * size (`Resize([320, 320])`, the README's "skew_320"). Default 288 (the README's
   * "small_288"), or the model's fixed input size when its input declares one.
   */
  readonly resize?: number | readonly [number, number];
  /** Images per model run (default 16; a model whose input declares a fixed batch size runs that many, zero-padded). */
  readonly batch?: number;
  /**
   * Crop a `centerCrop × centerCrop` window from the middle of the resized image (torchvision
   * `CenterCrop(n)`: top = round((h − n)/2), left = round((w − n)/2), Python's round half to
   * even). Default none (the SSCD README crops nothing; Wen et al. and DCR crop 224).
   */
  readonly centerCrop?: number;
  /** Per-channel normalisation after resizing (default ImageNet's, {@link SSCD_MEAN} / {@link SSCD_STD}, as the SSCD README; Wen et al. and DCR use 0.5 / 0.5). */
  readonly normalize?: { readonly mean: readonly number[]; readonly std: readonly number[] };
}

/** torchvision `CenterCrop(n)` offsets of an `h × w` image: `[top, left]` (Python's round half to even; images smaller than n are refused: torchvision would pad). */
export function centerCropOffsets(h: number, w: number, n: number): [top: number, left: number] {
  if (n > h || n > w) throw new Error(`center crop ${n} is larger than the resized image ${h}x${w}`);
  return [centerCropOffset(h, n, 'torchvision'), centerCropOffset(w, n, 'torchvision')];
}

function sscdSignatureError(path: string, msg: string): Error {
  return new Error(
    `sscdDescriptor: path '${path}' is not an SSCD export: ${msg}. An SSCD TorchScript model (sscd_disc_mixup / sscd_disc_large) exported to ONNX ` +
      'takes one float input [B, 3, H, W] (ImageNet-normalised RGB) and returns one float descriptor [B, D].',
  );
}

/**
 * A user-supplied SSCD model (facebookresearch/sscd-copy-detection TorchScript `disc_mixup` or
 * `disc_large`, exported to ONNX) with the README's inference preprocessing: [−1, 1] → [0, 1]
 * (`(x + 1)/2`, clipped), grey repeated to RGB, PIL bilinear `Resize(288)` on the small edge (or
 * `resize`, or the model's fixed input size), `Normalize(mean = (0.485, 0.456, 0.406), std =
 * (0.229, 0.224, 0.225))`; the input name comes from the session metadata; the output (first
 * output, `[B, D]`) is L2-normalised. Throws naming `path` when the file is missing or its
 * signature is not an SSCD export's.
 */
export async function sscdDescriptor(path: string, opts: SscdOptions = {}): Promise<Descriptor> {
  if (!existsSync(path)) throw new Error(`sscdDescriptor: path '${path}' does not exist (expected an SSCD model exported to ONNX, e.g. sscd_disc_mixup.onnx)`);
  if (!statSync(path).isFile()) throw new Error(`sscdDescriptor: path '${path}' is not a file (expected an SSCD model exported to ONNX)`);
  const batch = opts.batch ?? 16;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`sscdDescriptor: batch must be a positive integer, got ${batch}`);
  const r = opts.resize;
  if (r !== undefined) {
    const ok = typeof r === 'number' ? Number.isInteger(r) && r > 0 : r.length === 2 && r.every((v) => Number.isInteger(v) && v > 0);
    if (!ok) throw new Error(`sscdDescriptor: resize must be a positive integer or [h, w] of positive integers, got ${JSON.stringify(r)}`);
  }
  const cc = opts.centerCrop;
  if (cc !== undefined && !(Number.isInteger(cc) && cc > 0)) throw new Error(`sscdDescriptor: centerCrop must be a positive integer, got ${cc}`);
  const norm = opts.normalize ?? { mean: SSCD_MEAN, std: SSCD_STD };
  if (norm.mean.length !== 3 || norm.std.length !== 3 || norm.std.some((v) => !(v > 0)) || norm.mean.some((v) => !Number.isFinite(v))) {
    throw new Error(`sscdDescriptor: normalize needs 3 finite means and 3 positive standard deviations, got ${JSON.stringify(norm)}`);
  }
  const manifest = readEvalModelManifest(path);
  if (manifest !== null && manifest.kind !== 'sscd') throw new Error(`sscdDescriptor: path '${path}' is a ${manifest.kind} model by its manifest (${manifest.checkpoint}), not SSCD`);
  let model: Session;
  try {
    model = await createSession(path);
  } catch (e) {
    throw new Error(`sscdDescriptor: path '${path}' could not be loaded as an ONNX model: ${(e as Error).message}`);
  }
  const fail = async (msg: string): Promise<never> => {
    await model.release();
    throw sscdSignatureError(path, msg);
  };
  if (model.inputs.length !== 1) await fail(`it has ${model.inputs.length} inputs (${model.inputNames.join(', ')})`);
  const inp = model.inputs[0]!;
  if (!inp.isTensor || (inp.type !== 'float32' && inp.type !== 'float16')) await fail(`input '${inp.name}' has type ${inp.type ?? 'non-tensor'}, not float`);
  if (inp.shape !== null && inp.shape.length !== 4) await fail(`input '${inp.name}' has shape ${shapeText(inp)}, not [B, 3, H, W]`);
  if (inp.shape !== null && typeof inp.shape[1] === 'number' && inp.shape[1] !== 3) await fail(`input '${inp.name}' has ${inp.shape[1]} channels, not 3`);
  if (model.outputs.length < 1) await fail('it has no outputs');
  const outInfo = model.outputs[0]!;
  if (!outInfo.isTensor || (outInfo.type !== 'float32' && outInfo.type !== 'float16')) await fail(`output '${outInfo.name}' has type ${outInfo.type ?? 'non-tensor'}, not float`);
  if (outInfo.shape !== null && outInfo.shape.length !== 2) await fail(`output '${outInfo.name}' has shape ${shapeText(outInfo)}, not [B, D]`);
  const fixed: [number, number] | null =
    inp.shape !== null && typeof inp.shape[2] === 'number' && typeof inp.shape[3] === 'number' ? [inp.shape[2], inp.shape[3]] : null;
  if (fixed !== null && cc !== undefined && (fixed[0] !== cc || fixed[1] !== cc)) {
    await model.release();
    throw new Error(`sscdDescriptor: path '${path}' takes fixed ${fixed[0]}x${fixed[1]} input, which contradicts centerCrop ${cc}`);
  }
  if (fixed !== null && cc === undefined && r !== undefined) {
    const want = typeof r === 'number' ? null : r;
    if (want === null || want[0] !== fixed[0] || want[1] !== fixed[1]) {
      await model.release();
      throw new Error(`sscdDescriptor: path '${path}' takes fixed ${fixed[0]}x${fixed[1]} input, which contradicts resize ${JSON.stringify(r)}`);
    }
  }
  const sizeOf = (h: number, w: number): [number, number] => {
    if (fixed !== null && cc === undefined) return fixed;
    const rs = r ?? SSCD_DEFAULT_RESIZE;
    if (typeof rs !== 'number') return [rs[0], rs[1]];
    return h <= w ? [rs, Math.floor((rs * w) / h)] : [Math.floor((rs * h) / w), rs];
  };
  const resizeText =
    fixed !== null
      ? `to the model's fixed input ${fixed[0]}x${fixed[1]} (skew resize)`
      : r === undefined || typeof r === 'number'
        ? `small edge to ${r ?? SSCD_DEFAULT_RESIZE} keeping the aspect ratio (torchvision Resize(${r ?? SSCD_DEFAULT_RESIZE}); long edge floor(size*long/short))`
        : `to ${r[0]}x${r[1]} (torchvision Resize([${r[0]}, ${r[1]}]), skew)`;
  const pre = sessionCache();
  const prep = (c: number, h: number, w: number): Promise<Session> => {
    const [oh, ow] = sizeOf(h, w);
    const crop = cc === undefined ? undefined : ((o) => ({ top: o[0], left: o[1], h: cc, w: cc }))(centerCropOffsets(oh, ow, cc));
    return pre.get(`${c}x${h}x${w}`, () => preprocessSession({ c, h, w, channels: 3, oh, ow, range: 'unit', normalize: norm, ...(crop === undefined ? {} : { crop }) }));
  };
  // an export without dynamic axes has a fixed batch size: run chunks of exactly that many (zero-padded)
  const fixedBatch = fixedDim(inp, 0);
  const chunk = fixedBatch ?? batch;
  const run: ImageModelRun = {
    what: `sscd descriptor (${path})`,
    prep,
    chunk,
    run: (x) =>
      runFixedBatch(x, fixedBatch, async (feed) => {
        const out = (await model.run({ [inp.name]: feed }, [outInfo.name]))[outInfo.name]!;
        if (out.dims.length !== 2 || out.dims[0] !== feed.dims[0]) throw sscdSignatureError(path, `output '${outInfo.name}' came back as [${out.dims.join(', ')}] for ${feed.dims[0]} images, not [B, D]`);
        return out;
      }),
    mismatch: (got, want) => sscdSignatureError(path, `output '${outInfo.name}' has ${got} columns, earlier ${want}`),
  };
  let dim: number;
  if (outInfo.shape !== null && typeof outInfo.shape[1] === 'number') {
    dim = outInfo.shape[1];
  } else {
    // probe the descriptor size with one mid-grey image
    const [oh, ow] = sizeOf(SSCD_DEFAULT_RESIZE, SSCD_DEFAULT_RESIZE);
    const probe = (await (await prep(1, oh, ow)).run({ x: { dims: [1, 1, oh, ow], data: new Float32Array(oh * ow) } }))['y']!;
    dim = (await run.run(probe)).dims[1]!;
  }
  const info: DescriptorInfo = {
    name: 'sscd',
    preprocessing:
      'SSCD README inference preprocessing: x in [-1, 1] -> (x + 1)/2 clipped to [0, 1]; 1-channel images repeated to 3 (RGB), 3-channel used as RGB; ' +
      `resize ${resizeText} with PIL-style bilinear interpolation (antialiased when downsampling, float, no 8-bit rounding); ` +
      (cc === undefined ? '' : `center crop ${cc}x${cc} (torchvision CenterCrop, offsets round((size - ${cc})/2)); `) +
      `normalise per channel with mean (${norm.mean.join(', ')}) and std (${norm.std.join(', ')}); ` +
      `fed to input '${inp.name}', output '${outInfo.name}' [B, ${dim}] L2-normalised`,
    dim,
    source: path,
    manifest,
  };
  return {
    info,
    async embed(images: Tensor): Promise<Tensor> {
      return l2NormalizeRows(await embedImageChunks(images, dim, run));
    },
    async dispose(): Promise<void> {
      await model.release();
      await pre.release();
    },
  };
}

// ---------------------------------------------------------------------------------------------

/** Options of {@link loadDescriptor}. */
export interface LoadDescriptorOptions {
  /** Mean image for `pixel` (e.g. the training-set mean); without it `pixel` does not centre. */
  readonly trainMean?: Float32Array;
  /** Options for `sscd:PATH`. */
  readonly sscd?: SscdOptions;
}

/**
 * A descriptor from a spec string: `pixel` (mean-centred with `opts.trainMean` when given),
 * `learned` (the shipped `models/descriptor`), `learned:DIR`, or `sscd:PATH` (an SSCD ONNX
 * export, see {@link sscdDescriptor}).
 */
export async function loadDescriptor(spec: string, opts: LoadDescriptorOptions = {}): Promise<Descriptor> {
  const i = spec.indexOf(':');
  const kind = i < 0 ? spec : spec.slice(0, i);
  const arg = i < 0 ? null : spec.slice(i + 1);
  switch (kind) {
    case 'pixel':
      if (arg !== null) break;
      return pixelDescriptor(opts.trainMean);
    case 'learned':
      if (arg === '') throw new Error(`descriptor '${spec}': learned:DIR needs a directory`);
      return learnedDescriptor(arg ?? undefined);
    case 'sscd':
      if (arg === null || arg === '') throw new Error(`descriptor '${spec}': sscd needs the model path, as sscd:PATH (an SSCD TorchScript model exported to ONNX)`);
      return sscdDescriptor(arg, opts.sscd ?? {});
  }
  throw new Error(`descriptor '${spec}': expected pixel, learned, learned:DIR or sscd:PATH`);
}
