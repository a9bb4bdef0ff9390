/**
 * Inception-v3 pool features (2048-d for the real network) from a user-supplied ONNX file, for
 * the Fréchet Inception Distance (SPEC §4.5 image quality; `frechet.ts` computes the distance).
 *
 * Input: images `[n, C, H, W]` in memscope's pixel space [−1, 1] (C = 1 grey, repeated to RGB, or
 * 3). Two preprocessing conventions, for the two common exports:
 *
 * - `'pytorch-fid'` (default): the FID Inception of mseitzer/pytorch-fid
 *   (`FIDInceptionA…E`, weights `pt_inception-2015-12-05`, TF-FID compatible), whose
 *   `InceptionV3.forward` takes [0, 1] images and does
 *   `F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)` (no antialias) and
 *   then `2·x − 1`. Here: `(x + 1)/2` clipped to [0, 1], that resize (`torchBilinearWeights`),
 *   `2·y − 1`. Export the model with `resize_input=False, normalize_input=False` (or without those
 *   steps), as the preprocessing is done here.
 * - `'torchvision'`: torchvision's `inception_v3` (ImageNet weights, `fc = Identity` for the pool
 *   features): `(x + 1)/2` clipped, `Resize((299, 299))` bilinear with antialiasing (PIL's
 *   bilinear, `pilResampleWeights(…, 'bilinear')`, in float), `Normalize(mean = (0.485, 0.456,
 *   0.406), std = (0.229, 0.224, 0.225))`.
 *
 * Both resize to the model input's declared H×W when it fixes one (else 299×299), without keeping
 * the aspect ratio. The input name is read from the session metadata (the model must have exactly
 * one float input `[B, 3, H, W]`); the output (option `output`, default the first) must be
 * `[B, D]` or `[B, D, 1, 1]` and is flattened to `[n, D]`. Resizing is two MatMuls in an ONNX graph.
 */
import { existsSync, statSync } from 'node:fs';
import { createSession, type Session } from '../graph/session.ts';
import type { FeatureExtractor } from './types.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { embedImageChunks, fixedDim, preprocessImages, runFixedBatch, sessionCache, shapeText, type ImageModelRun } from './model-run.ts';
import { preprocessSession, pilResampleWeights, torchBilinearWeights } from './resize.ts';
import { readEvalModelManifest, type EvalModelManifest } from './manifest.ts';

/** Inception preprocessing conventions (see the module comment). */
export type InceptionConvention = 'pytorch-fid' | 'torchvision';

/** Default Inception-v3 input side when the model does not fix it. */
export const INCEPTION_SIZE = 299;
/** ImageNet channel means of torchvision's `Normalize` (RGB). */
export const IMAGENET_MEAN: readonly number[] = Object.freeze([0.485, 0.456, 0.406]);
/** ImageNet channel standard deviations of torchvision's `Normalize` (RGB). */
export const IMAGENET_STD: readonly number[] = Object.freeze([0.229, 0.224, 0.225]);

/** Options of {@link loadInceptionFeatures}. */
export interface InceptionOptions {
  /** Preprocessing convention (default `'pytorch-fid'`). */
  readonly convention?: InceptionConvention;
  /** Output to read (default: the model's first output). */
  readonly output?: string;
  /** Images per model run (default 16; a fixed batch size declared by the model wins, zero-padded). */
  readonly batch?: number;
}

/** A loaded Inception feature extractor. */
export interface InceptionFeatures extends FeatureExtractor {
  /** The ONNX file. */
  readonly path: string;
  /** The conversion manifest beside the file (scripts/convert/inception_to_onnx.py), null when it has none. */
  readonly manifest: EvalModelManifest | null;
  /** Feature dimension D (2048 for Inception-v3's pool3). */
  readonly dim: number;
  /** The convention in use. */
  readonly convention: InceptionConvention;
  /** Exact description of the preprocessing. */
  readonly preprocessing: string;
  /** The model input `[n, 3, H, W]` for these images (the preprocessing alone). */
  preprocess(images: Tensor): Promise<Tensor>;
  /** Release the sessions. */
  dispose(): Promise<void>;
}

/**
 * Load Inception-v3 pool features from the ONNX file `path` as a `FeatureExtractor` (`[n, D]`
 * rows, not normalised), with the `convention`'s preprocessing (default `'pytorch-fid'`; see the
 * module comment). Throws naming `path` when the file is missing or not ONNX, has other than one
 * float `[B, 3, H, W]` input, or its output is not `[B, D]` / `[B, D, 1, 1]`.
 */
export async function loadInceptionFeatures(path: string, opts: InceptionOptions = {}): Promise<InceptionFeatures> {
  const fn = 'loadInceptionFeatures';
  if (!existsSync(path)) throw new Error(`${fn}: path '${path}' does not exist (expected an Inception-v3 model exported to ONNX, e.g. pt_inception.onnx)`);
  if (!statSync(path).isFile()) throw new Error(`${fn}: path '${path}' is not a file (expected an Inception-v3 model exported to ONNX)`);
  const convention = opts.convention ?? 'pytorch-fid';
  if (convention !== 'pytorch-fid' && convention !== 'torchvision') throw new Error(`${fn}: convention must be 'pytorch-fid' or 'torchvision', got ${JSON.stringify(convention)}`);
  const batch = opts.batch ?? 16;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`${fn}: batch must be a positive integer, got ${batch}`);
  const manifest = readEvalModelManifest(path);
  if (manifest !== null && manifest.kind !== 'inception') throw new Error(`${fn}: path '${path}' is a ${manifest.kind} model by its manifest (${manifest.checkpoint}), not Inception`);
  const made = manifest?.extra['convention'];
  if (made !== undefined && made !== convention) throw new Error(`${fn}: path '${path}' was converted for the ${String(made)} convention (its manifest), not ${convention}; use --inception-convention ${String(made)}`);
  let model: Session;
  try {
    model = await createSession(path);
  } catch (e) {
    throw new Error(`${fn}: path '${path}' could not be loaded as an ONNX model: ${(e as Error).message}`);
  }
  const fail = async (msg: string): Promise<never> => {
    await model.release();
    throw new Error(`${fn}: path '${path}' is not an Inception feature model: ${msg}. Expected one float input [B, 3, H, W] and a pool-feature output [B, D] or [B, D, 1, 1]`);
  };
  if (model.inputs.length !== 1) return fail(`it has ${model.inputs.length} inputs (${model.inputNames.join(', ')})`);
  const inp = model.inputs[0]!;
  if (!inp.isTensor || (inp.type !== 'float32' && inp.type !== 'float16')) return fail(`input '${inp.name}' has type ${inp.type ?? 'non-tensor'}, not float`);
  if (inp.shape !== null && inp.shape.length !== 0 && inp.shape.length !== 4) return fail(`input '${inp.name}' has shape ${shapeText(inp)}, not [B, 3, H, W]`);
  const ch = fixedDim(inp, 1);
  if (ch !== null && ch !== 3) return fail(`input '${inp.name}' has ${ch} channels, not 3`);
  const out = opts.output === undefined ? model.outputs[0] : model.outputs.find((o) => o.name === opts.output);
  if (out === undefined) return fail(opts.output === undefined ? 'it has no outputs' : `it has no output '${opts.output}' (outputs: ${model.outputNames.join(', ')})`);
  if (!out.isTensor || (out.type !== 'float32' && out.type !== 'float16')) return fail(`output '${out.name}' has type ${out.type ?? 'non-tensor'}, not float`);
  const outRank = out.shape === null || out.shape.length === 0 ? null : out.shape.length;
  if (outRank !== null && outRank !== 2 && outRank !== 4) return fail(`output '${out.name}' has rank ${outRank} (shape ${shapeText(out)}), not [B, D] or [B, D, 1, 1]`);
  if (outRank === 4 && ((fixedDim(out, 2) ?? 1) !== 1 || (fixedDim(out, 3) ?? 1) !== 1)) return fail(`output '${out.name}' has shape ${shapeText(out)}, not [B, D, 1, 1]`);
  const H = fixedDim(inp, 2) ?? INCEPTION_SIZE;
  const W = fixedDim(inp, 3) ?? INCEPTION_SIZE;
  const fixedBatch = fixedDim(inp, 0);
  const chunk = fixedBatch ?? batch;
  const [mean, std] = convention === 'pytorch-fid' ? [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]] : [IMAGENET_MEAN, IMAGENET_STD];
  const weights = (a: number, b: number): Float32Array => (convention === 'pytorch-fid' ? torchBilinearWeights(a, b) : pilResampleWeights(a, b, 'bilinear'));
  const pre = sessionCache();
  const run: ImageModelRun = {
    what: `Inception features (${path})`,
    prep: (c, h, w) =>
      pre.get(`${c}x${h}x${w}`, () => preprocessSession({ c, h, w, rows: weights(h, H), oh: H, cols: weights(w, W), ow: W, clampPasses: false, mean, std })),
    chunk,
    run: (x) =>
      runFixedBatch(x, fixedBatch, async (feed) => {
        const y = (await model.run({ [inp.name]: feed }, [out.name]))[out.name]!;
        const ok = y.dims[0] === feed.dims[0] && (y.dims.length === 2 || (y.dims.length === 4 && y.dims[2] === 1 && y.dims[3] === 1));
        if (!ok) throw new Error(`${fn}: path '${path}': output '${out.name}' came back as [${y.dims.join(', ')}] for ${feed.dims[0]} images, not [B, D] or [B, D, 1, 1]`);
        return y;
      }),
    mismatch: (got, want) => new Error(`${fn}: path '${path}': output '${out.name}' has ${got} features, expected ${want}`),
  };
  let dim = fixedDim(out, 1);
  const features = (images: Tensor): Promise<Tensor> => embedImageChunks(images, dim, run);
  if (dim === null) dim = (await features({ dims: [1, 1, H, W], data: new Float32Array(H * W) })).dims[1]!;
  const preprocessing =
    convention === 'pytorch-fid'
      ? `pytorch-fid InceptionV3: x in [-1, 1] -> (x + 1)/2 clipped to [0, 1]; 1-channel images repeated to RGB; resize to ${H}x${W} with ` +
        "F.interpolate(mode='bilinear', align_corners=False, no antialias); 2*y - 1"
      : `torchvision: x in [-1, 1] -> (x + 1)/2 clipped to [0, 1]; 1-channel images repeated to RGB; Resize((${H}, ${W})) bilinear with antialiasing ` +
        `(PIL bilinear, float); normalise with mean (${IMAGENET_MEAN.join(', ')}) and std (${IMAGENET_STD.join(', ')})`;
  return {
    name: `Inception pool features (${path}, output '${out.name}', ${dim}-d, ${convention} preprocessing)`,
    path,
    dim,
    convention,
    manifest,
    preprocessing: `${preprocessing}; fed to '${inp.name}', output '${out.name}' flattened to [n, ${dim}]`,
    features,
    preprocess: (images: Tensor): Promise<Tensor> => preprocessImages(images, run),
    async dispose(): Promise<void> {
      await model.release();
      await pre.release();
    },
  };
}
