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
import { paramFnFor } from './models/init.ts';
import { UnetConfigSchema, buildUnet, buildDiffusersUnet } from './models/unet.ts';
import { TextEncoderConfigSchema, buildTextEncoder } from './models/text-encoder.ts';

/** Architecture of a trained model (defaults in the schemas). */
export const DiffusionModelConfigSchema = z.object({
  unet: UnetConfigSchema,
  /** The text encoder (absent for unconditional models: `unet.conditioning = 'none'`). */
  textEncoder: TextEncoderConfigSchema.optional(),
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

/**
 * Build the training graph at a fixed batch size. Data inputs: `x0` `[B,C,S,S]`, `noise`
 * `[B,C,S,S]`, `timestep` float32 `[B]`, `sqrt_alpha_bar` and `sqrt_one_minus_alpha_bar`
 * `[B,1,1,1]`, `weight` `[B]` (λ(σ) per example), and `ids` int64 `[B,L]` for text models.
 * Loss = (1/B)·Σ_b weight_b · mean((ε̂_b − ε_b)²)  (ε-prediction, SPEC §0).
 */
export function buildTrainingGraph(cfgIn: z.input<typeof DiffusionModelConfigSchema>, batch: number): TrainingGraph {
  const cfg = DiffusionModelConfigSchema.parse(cfgIn);
  checkConsistent(cfg);
  const b = new GraphBuilder({ name: 'memscope_train' });
  const { param, specs } = paramFnFor(b, 'input');
  const { inChannels: C, sampleSize: S } = cfg.unet;
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
  const diff = b.op('Sub', [eps, 'noise']);
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
}

/** Options of {@link buildInferenceGraphs}. */
export interface InferenceGraphOptions {
  /** Build the U-Net with the cross-attention bias input and probability outputs (`DiffusersUnetOptions`). Default false. */
  readonly exposeCrossAttention?: boolean;
}

/** Build the inference graphs from parameter values (names as in the training graph). */
export function buildInferenceGraphs(cfgIn: z.input<typeof DiffusionModelConfigSchema>, values: ReadonlyMap<string, Float32Array>, opts: InferenceGraphOptions = {}): InferenceGraphs {
  const cfg = DiffusionModelConfigSchema.parse(cfgIn);
  checkConsistent(cfg);
  const ub = new GraphBuilder({ name: 'memscope_unet' });
  buildDiffusersUnet(ub, cfg.unet, prefixed(paramFnFor(ub, 'initializer', values).param, 'unet.'), 'dynamic', { exposeCrossAttention: opts.exposeCrossAttention === true });
  let te: Uint8Array | null = null;
  if (cfg.textEncoder) {
    const tb = new GraphBuilder({ name: 'memscope_text_encoder' });
    tb.input('ids', 'int64', ['B', cfg.textEncoder.maxLength]);
    const h = buildTextEncoder(tb, cfg.textEncoder, 'ids', prefixed(paramFnFor(tb, 'initializer', values).param, 'text.'), 'dynamic');
    tb.output(h, 'float32', ['B', cfg.textEncoder.maxLength, cfg.textEncoder.width], 'last_hidden_state');
    te = tb.toBytes();
  }
  return { unet: ub.toBytes(), textEncoder: te };
}
