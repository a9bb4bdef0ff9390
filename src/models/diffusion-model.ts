/**
 * The trainable text-to-image diffusion model of memscope's trained testbed (issue 3): a small
 * text encoder (per-token embeddings) read by a conditional U-Net through cross-attention, as in
 * Stable Diffusion. This file composes the graph builders into (a) the training graph — forward
 * noising x_t = √ᾱ·x0 + √(1−ᾱ)·ε, ε-prediction and the weighted MSE loss, with every parameter a
 * graph input so that the differentiator can derive the gradient graph — and (b) the inference
 * graphs (parameters as initializers): the U-Net with the diffusers signature and the text encoder.
 */
import { z } from 'zod';
import { GraphBuilder } from '../graph/builder.ts';
import type { ParamFn, ParamSpec } from './params.ts';
import { paramFnFor } from './init.ts';
import { UnetConfigSchema, buildUnet, buildDiffusersUnet } from './unet.ts';
import { TextEncoderConfigSchema, buildTextEncoder } from './text-encoder.ts';
import { batchDim, type BatchDim } from './layers.ts';
import { EdmPreconditioningSchema, edmCoefficientNodes, sigmaTableNodes, type EdmPreconditioning } from './edm.ts';
import { type UnetConfig, type UnetIO } from './unet.ts';
import { CROSS_ATTENTION_BIAS, CROSS_ATTENTION_PROBS_PREFIX } from '../graph/cross-attention.ts';

/** Architecture of a trained model (defaults in the schemas). */
export const DiffusionModelConfigSchema = z.object({
  unet: UnetConfigSchema,
  /** The text encoder (absent for unconditional models: `unet.conditioning = 'none'`). */
  textEncoder: TextEncoderConfigSchema.optional(),
  /**
   * EDM preconditioning of the U-Net (Karras et al. 2022; see `edm.ts`). Absent: the U-Net predicts
   * ε directly (every model trained before issue 16; their model.json and checkpoints load unchanged).
   */
  preconditioning: EdmPreconditioningSchema.optional(),
});
/** A resolved model configuration. */
export type DiffusionModelConfig = z.output<typeof DiffusionModelConfigSchema>;

/** Prefix every parameter name (`unet.`, `text.`), so both networks live in one parameter set. */
export function prefixed(param: ParamFn, prefix: string): ParamFn {
  return (name, dims, init, opts) => param(`${prefix}${name}`, dims, init, opts);
}

function checkConsistent(cfg: DiffusionModelConfig): void {
  const text = cfg.unet.conditioning === 'text';
  if (text && !cfg.textEncoder) throw new Error('model config: unet.conditioning is "text" but no textEncoder is configured');
  if (!text && cfg.textEncoder) throw new Error(`model config: a textEncoder is configured but unet.conditioning is "${cfg.unet.conditioning}"`);
  if (text && (cfg.textEncoder!.width !== cfg.unet.contextDim || cfg.textEncoder!.maxLength !== cfg.unet.contextLength)) {
    throw new Error(`model config: text encoder width/maxLength (${cfg.textEncoder!.width}/${cfg.textEncoder!.maxLength}) must equal unet contextDim/contextLength (${cfg.unet.contextDim}/${cfg.unet.contextLength})`);
  }
}

/** The training graph and what feeding it needs. */
export interface TrainingGraph {
  /** Serialized forward+loss model (parameters are inputs); differentiate with `gradientGraph`. */
  readonly bytes: Uint8Array;
  readonly specs: readonly ParamSpec[];
  /** Shapes of every input (data and parameters) at this batch size. */
  readonly inputShapes: Readonly<Record<string, readonly number[]>>;
  /** Name of the scalar loss. */
  readonly loss: string;
}

/** Options of {@link buildTrainingGraph}. */
export interface TrainingGraphOptions {
  /** Also output `eps_hat` `[B,C,S,S]`, the network's noise estimate ε̂ (Wen et al.'s training-time filter compares the conditional and unconditional ones); default false. */
  readonly epsOutput?: boolean;
  /**
   * Normalisations as single `LayerNormalization` nodes whose statistics the backward pass reuses
   * (see `GraphBuilderOptions.fusedNormalization`); default true. False builds the composed form
   * of the inference graphs (the same function; the tests compare the two).
   */
  readonly fusedNormalization?: boolean;
}

/**
 * Build the training graph at a fixed batch size. Data inputs: `x0` `[B,C,S,S]`, `noise`
 * `[B,C,S,S]`, `timestep` float32 `[B]`, `sqrt_alpha_bar` and `sqrt_one_minus_alpha_bar`
 * `[B,1,1,1]`, `weight` `[B]` (λ(σ) per example), and `ids` int64 `[B,L]` for text models.
 * Loss = (1/B)·Σ_b weight_b · mean((ε̂_b − ε_b)²)  (ε-prediction, SPEC §0).
 */
export function buildTrainingGraph(cfgIn: z.input<typeof DiffusionModelConfigSchema>, batch: number, opts: TrainingGraphOptions = {}): TrainingGraph {
  const cfg = DiffusionModelConfigSchema.parse(cfgIn);
  checkConsistent(cfg);
  const b = new GraphBuilder({ name: 'memscope_train', fusedNormalization: opts.fusedNormalization ?? true });
  const { param, specs } = paramFnFor(b, 'input');
  const { inChannels: C, sampleSize: S } = cfg.unet;
  if (cfg.preconditioning) return buildEdmTrainingGraph(cfg, cfg.preconditioning, batch, opts);
  const shapes: Record<string, number[]> = {
    x0: [batch, C, S, S],
    noise: [batch, C, S, S],
    timestep: [batch],
    sqrt_alpha_bar: [batch, 1, 1, 1],
    sqrt_one_minus_alpha_bar: [batch, 1, 1, 1],
    weight: [batch],
  };
  for (const [k, v] of Object.entries(shapes)) b.input(k, 'float32', v);
  const xt = b.op('Add', [b.op('Mul', ['x0', 'sqrt_alpha_bar']), b.op('Mul', ['noise', 'sqrt_one_minus_alpha_bar'])]);
  let context: string | undefined;
  if (cfg.textEncoder) {
    shapes['ids'] = [batch, cfg.textEncoder.maxLength];
    b.input('ids', 'int64', shapes['ids']);
    context = buildTextEncoder(b, cfg.textEncoder, 'ids', prefixed(param, 'text.'), batch);
  }
  const eps = buildUnet(b, cfg.unet, { sample: xt, timestep: 'timestep', ...(context ? { context } : {}) }, prefixed(param, 'unet.'), batch);
  if (opts.epsOutput === true) b.output(eps, 'float32', [batch, C, S, S], 'eps_hat');
  const diff = b.op('Sub', [eps, 'noise']);
  const mse = b.op('ReduceMean', [b.op('Mul', [diff, diff])], { axes: [1, 2, 3], keepdims: 0 });
  const loss = b.op('Div', [b.op('ReduceSum', [b.op('Mul', [mse, 'weight']), b.constI64([0])], { keepdims: 0 }), b.constF32(batch)]);
  b.output(loss, 'float32', [], 'loss');
  const inputShapes: Record<string, readonly number[]> = { ...shapes };
  for (const s of specs) inputShapes[s.name] = s.dims;
  return { bytes: b.toBytes(), specs, inputShapes, loss: 'loss' };
}

/**
 * The EDM training graph (see `edm.ts`). Data inputs: `x0`, `noise` `[B,C,S,S]`; `sigma`, `c_skip`,
 * `c_out`, `c_in` `[B,1,1,1]`; `noise_label` `[B]` (the U-Net timestep input); `weight` `[B]`;
 * `ids` for text models. x = x0 + σ·n; F = U-Net(c_in·x, noise_label);
 * loss = (1/B)·Σ_b weight_b·mean((F_b − (x0_b − c_skip·x_b)/c_out)²) = (1/B)·Σ_b weight_b·λ(σ_b)·mean((D_b − x0_b)²).
 */
function buildEdmTrainingGraph(cfg: DiffusionModelConfig, _precond: EdmPreconditioning, batch: number, opts: TrainingGraphOptions): TrainingGraph {
  const b = new GraphBuilder({ name: 'memscope_train_edm', fusedNormalization: opts.fusedNormalization ?? true });
  const { param, specs } = paramFnFor(b, 'input');
  const { inChannels: C, sampleSize: S } = cfg.unet;
  const shapes: Record<string, number[]> = {
    x0: [batch, C, S, S],
    noise: [batch, C, S, S],
    sigma: [batch, 1, 1, 1],
    c_skip: [batch, 1, 1, 1],
    c_out: [batch, 1, 1, 1],
    c_in: [batch, 1, 1, 1],
    noise_label: [batch],
    weight: [batch],
  };
  for (const [k, v] of Object.entries(shapes)) b.input(k, 'float32', v);
  const x = b.op('Add', ['x0', b.op('Mul', ['noise', 'sigma'])]);
  let context: string | undefined;
  if (cfg.textEncoder) {
    shapes['ids'] = [batch, cfg.textEncoder.maxLength];
    b.input('ids', 'int64', shapes['ids']);
    context = buildTextEncoder(b, cfg.textEncoder, 'ids', prefixed(param, 'text.'), batch);
  }
  const F = buildUnet(b, cfg.unet, { sample: b.op('Mul', [x, 'c_in']), timestep: 'noise_label', ...(context ? { context } : {}) }, prefixed(param, 'unet.'), batch);
  if (opts.epsOutput === true) {
    // ε̂ = (x − D)/σ with D = c_skip·x + c_out·F (the denoiser's noise estimate, EDM eq. 7)
    const D = b.op('Add', [b.op('Mul', ['c_skip', x]), b.op('Mul', ['c_out', F])]);
    b.output(b.op('Div', [b.op('Sub', [x, D]), 'sigma']), 'float32', [batch, C, S, S], 'eps_hat');
  }
  const target = b.op('Div', [b.op('Sub', ['x0', b.op('Mul', ['c_skip', x])]), 'c_out']);
  const diff = b.op('Sub', [F, target]);
  const mse = b.op('ReduceMean', [b.op('Mul', [diff, diff])], { axes: [1, 2, 3], keepdims: 0 });
  const loss = b.op('Div', [b.op('ReduceSum', [b.op('Mul', [mse, 'weight']), b.constI64([0])], { keepdims: 0 }), b.constF32(batch)]);
  b.output(loss, 'float32', [], 'loss');
  const inputShapes: Record<string, readonly number[]> = { ...shapes };
  for (const s of specs) inputShapes[s.name] = s.dims;
  return { bytes: b.toBytes(), specs, inputShapes, loss: 'loss' };
}

/** The inference graphs of a trained model (parameters baked in as initializers). */
export interface InferenceGraphs {
  /** The U-Net with the diffusers signature (`sample`, `timestep`, `encoder_hidden_states`) → `out_sample`, dynamic batch. */
  readonly unet: Uint8Array;
  /** The text encoder `ids` int64 `[B,L]` → `last_hidden_state` `[B,L,width]` (text models only). */
  readonly textEncoder: Uint8Array | null;
  /**
   * EDM models only (else null): the denoiser at any σ, inputs `x` float32 `[B,C,S,S]` (VE scale,
   * x0 + σ·n), `sigma` float32 `[B]` (> 0), and `encoder_hidden_states` for text models → `denoised` D(x; σ).
   */
  readonly edmDenoiser: Uint8Array | null;
}

/** Options of {@link buildInferenceGraphs}. */
export interface InferenceGraphOptions {
  /** Build the U-Net with the cross-attention bias input and probability outputs (`DiffusersUnetOptions`). Default false. */
  readonly exposeCrossAttention?: boolean;
  /** EDM models: the σ table of the VP schedule the ε graph serves (σ_t for t = 0..T−1, increasing). Required for EDM models. */
  readonly vpSigmas?: ArrayLike<number>;
}

/** Build the inference graphs from parameter values (names as in the training graph). */
export function buildInferenceGraphs(cfgIn: z.input<typeof DiffusionModelConfigSchema>, values: ReadonlyMap<string, Float32Array>, opts: InferenceGraphOptions = {}): InferenceGraphs {
  const cfg = DiffusionModelConfigSchema.parse(cfgIn);
  checkConsistent(cfg);
  const ub = new GraphBuilder({ name: 'memscope_unet' });
  let edm: Uint8Array | null = null;
  if (cfg.preconditioning) {
    if (opts.vpSigmas === undefined) throw new Error('buildInferenceGraphs: an EDM-preconditioned model needs vpSigmas (the σ table of its VP schedule)');
    buildEdmEpsUnet(ub, cfg, prefixed(paramFnFor(ub, 'initializer', values).param, 'unet.'), opts.vpSigmas, opts.exposeCrossAttention === true);
    const db = new GraphBuilder({ name: 'memscope_edm_denoiser' });
    buildEdmDenoiser(db, cfg.unet, cfg.preconditioning, prefixed(paramFnFor(db, 'initializer', values).param, 'unet.'));
    edm = db.toBytes();
  } else {
    buildDiffusersUnet(ub, cfg.unet, prefixed(paramFnFor(ub, 'initializer', values).param, 'unet.'), 'dynamic', { exposeCrossAttention: opts.exposeCrossAttention === true });
  }
  let te: Uint8Array | null = null;
  if (cfg.textEncoder) {
    const tb = new GraphBuilder({ name: 'memscope_text_encoder' });
    tb.input('ids', 'int64', ['B', cfg.textEncoder.maxLength]);
    const h = buildTextEncoder(tb, cfg.textEncoder, 'ids', prefixed(paramFnFor(tb, 'initializer', values).param, 'text.'), 'dynamic');
    tb.output(h, 'float32', ['B', cfg.textEncoder.maxLength, cfg.textEncoder.width], 'last_hidden_state');
    te = tb.toBytes();
  }
  return { unet: ub.toBytes(), textEncoder: te, edmDenoiser: edm };
}

function unetInputs(b: GraphBuilder, cfg: UnetConfig, sampleName: string, extra: string, extraType: 'float32'): { sample: string; extra: string; context?: string } {
  const sample = b.input(sampleName, 'float32', ['B', cfg.inChannels, cfg.sampleSize, cfg.sampleSize]);
  const e = b.input(extra, extraType, ['B']);
  if (cfg.conditioning === 'class') throw new Error("EDM preconditioning: class-label conditioning is not supported (use 'text' or 'none')");
  if (cfg.conditioning === 'text') return { sample, extra: e, context: b.input('encoder_hidden_states', 'float32', ['B', cfg.contextLength, cfg.contextDim]) };
  return { sample, extra: e };
}

/** D(x; σ) = c_skip·x + c_out·F(c_in·x; label) for σ `[B,1,1,1]`; returns D. */
function edmDenoise(b: GraphBuilder, cfg: UnetConfig, precond: EdmPreconditioning, param: ParamFn, x: string, sigma4: string, io: Omit<UnetIO, 'sample' | 'timestep'>, batch: BatchDim = 'dynamic'): string {
  const c = edmCoefficientNodes(b, sigma4, precond, batchDim(batch));
  const F = buildUnet(b, cfg, { ...io, sample: b.op('Mul', [x, c.cIn]), timestep: c.noiseLabel }, param, batch);
  return b.op('Add', [b.op('Mul', [c.cSkip, x]), b.op('Mul', [c.cOut, F])]);
}

/**
 * ε_θ(x_t, t) of a model of either parameterization as graph nodes (returns the ε node): the bare
 * U-Net of an ε-prediction model; for an EDM-preconditioned one (Karras et al. 2022), σ = σ_table(t),
 * x = x_t·√(1 + σ²) and ε = (x − D(x; σ))/σ, as its shipped `unet.onnx` computes it. For graphs that
 * rebuild a trained model's network with extra nodes (Wen et al.'s loss). `vpSigmas`: the σ table
 * of the VP schedule (needed for EDM models).
 */
export function buildEpsNetwork(b: GraphBuilder, cfg: DiffusionModelConfig, io: UnetIO, param: ParamFn, batch: BatchDim, vpSigmas?: ArrayLike<number>): string {
  if (!cfg.preconditioning) return buildUnet(b, cfg.unet, io, param, batch);
  if (vpSigmas === undefined) throw new Error('buildEpsNetwork: an EDM-preconditioned model needs vpSigmas (the σ table of its VP schedule)');
  const { sample, timestep, ...rest } = io;
  const sigma4 = b.op('Reshape', [sigmaTableNodes(b, timestep, vpSigmas), b.constI64([-1, 1, 1, 1])]);
  const x = b.op('Mul', [sample, b.op('Sqrt', [b.op('Add', [b.op('Mul', [sigma4, sigma4]), b.constF32(1)])])]);
  const D = edmDenoise(b, cfg.unet, cfg.preconditioning, param, x, sigma4, rest, batch);
  return b.op('Div', [b.op('Sub', [x, D]), sigma4]);
}

/**
 * The ε graph of an EDM model with the diffusers signature: σ = σ_table(t), x = sample·√(1 + σ²),
 * out_sample = (x − D(x; σ))/σ. With `expose`, the cross-attention bias input and probability outputs as in `buildDiffusersUnet`.
 */
function buildEdmEpsUnet(b: GraphBuilder, model: DiffusionModelConfig, param: ParamFn, vpSigmas: ArrayLike<number>, expose: boolean): void {
  const cfg = model.unet;
  const io = unetInputs(b, cfg, 'sample', 'timestep', 'float32');
  if (expose && cfg.conditioning !== 'text') throw new Error("exposeCrossAttention: needs a text-conditioned U-Net (conditioning 'text')");
  const probs: { name: string; probs: string; qLen: number }[] = [];
  const extra: Omit<UnetIO, 'sample' | 'timestep'> = {
    ...(io.context === undefined ? {} : { context: io.context }),
    ...(expose ? { crossAttentionBias: b.input(CROSS_ATTENTION_BIAS, 'float32', ['B', cfg.contextLength]), crossAttentionProbs: probs } : {}),
  };
  const eps = buildEpsNetwork(b, model, { ...extra, sample: io.sample, timestep: io.extra }, param, 'dynamic', vpSigmas);
  for (const p of probs) b.output(p.probs, 'float32', ['B', p.qLen, cfg.contextLength], `${CROSS_ATTENTION_PROBS_PREFIX}${p.name}`);
  b.output(eps, 'float32', ['B', cfg.inChannels, cfg.sampleSize, cfg.sampleSize], 'out_sample');
}

/** The EDM denoiser graph: `x` (VE scale), `sigma` `[B]` → `denoised`. */
function buildEdmDenoiser(b: GraphBuilder, cfg: UnetConfig, precond: EdmPreconditioning, param: ParamFn): void {
  const io = unetInputs(b, cfg, 'x', 'sigma', 'float32');
  const sigma4 = b.op('Reshape', [io.extra, b.constI64([-1, 1, 1, 1])]);
  const D = edmDenoise(b, cfg, precond, param, io.sample, sigma4, io.context === undefined ? {} : { context: io.context });
  b.output(D, 'float32', ['B', cfg.inChannels, cfg.sampleSize, cfg.sampleSize], 'denoised');
}
