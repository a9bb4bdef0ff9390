/**
 * What a model source can do beyond a conditional denoiser, by capability (issue 15 §5): studies
 * and mitigation methods ask for `text`, `attention` or `embeddingGradient`, never for the kind
 * of model. Each source loader (`study/sources/`) states the capabilities it has — as the objects
 * below — and, for each one it lacks, the reason in words.
 *
 * - `text`: prompts that can be re-encoded as text (Somepalli et al.'s prompt perturbations;
 *   trained text models and Stable Diffusion exports);
 * - `attention`: the U-Net with cross-attention exposed and adjustable ({@link CrossAttentionUnet}:
 *   Ren et al.'s entropy detector and mitigation);
 * - `embeddingGradient`: ∂‖ε_c − ε_u‖/∂e through the denoiser (Wen et al.'s mitigation; memscope
 *   differentiates only the graphs it builds, i.e. its own trained text models);
 * - `provider`: the execution provider its ONNX sessions run on (data, not a requirement).
 */
import type { Denoiser } from '../denoisers/denoiser.ts';
import type { TrainedModel } from '../denoisers/trained.ts';
import type { CrossAttentionUnet } from '../denoisers/attention.ts';
import type { ExecutionProvider } from '../graph/session.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { modelVocabulary, textDenoiser } from './prompt-noise.ts';
import { createWenObjective, optimizePromptEmbedding, wenDenoiser, type WenObjective, type WenOptions, type WenResult } from './wen-embedding.ts';

/** A capability a study or method may require. */
export type Capability = 'text' | 'attention' | 'embeddingGradient';
/** Every capability name. */
export const CAPABILITIES: readonly Capability[] = ['text', 'attention', 'embeddingGradient'];

/** Prompts that are texts and can be re-encoded (capability `text`). */
export interface TextCapability {
  /** The text of condition k. */
  readonly texts: readonly string[];
  /** Words random-word inserts (the tokenizer's whole-word tokens). */
  readonly vocabulary: readonly string[];
  /**
   * A denoiser with the same conditions (ids, targets) whose condition k is `texts[k]` encoded,
   * named `name` when given; its dispose releases only what it made.
   */
  denoiserFor(texts: readonly string[], name?: string): Promise<Denoiser>;
}

/** The U-Net with cross-attention exposed (capability `attention`). */
export interface AttentionCapability {
  /** Open a session of it (the caller disposes it). Rejects, naming the file, when the model's graph cannot be exposed. */
  open(): Promise<CrossAttentionUnet>;
}

/** Gradients of Wen et al.'s objective with respect to the prompt embedding (capability `embeddingGradient`). */
export interface EmbeddingGradientCapability {
  /** The objective ‖ε_c − ε_u‖ and its gradient for batches of `seeds` x_T (disposed by the caller). */
  objective(seeds: number): Promise<WenObjective>;
  /** Wen et al.'s optimisation of condition `cond`'s embedding on `xT` at timestep `t`. */
  optimize(cond: number, xT: Tensor, t: number, opts: WenOptions): Promise<WenResult>;
  /** A denoiser whose condition k uses `embeddings.get(k)` (others: the model's own). */
  denoiser(embeddings: ReadonlyMap<number, Tensor>, name: string): Promise<Denoiser>;
}

/** A denoiser whose conditioning is transformed per call from the timestep (CADS, `guidance/cads.ts`); every text model has it. */
export interface ConditionTransformCapability {
  /** The source's denoiser (same conditions) with each batch's `encoder_hidden_states` replaced by `transform(context, t)`; the caller disposes it. */
  denoiser(transform: (context: Float32Array, t: number) => Float32Array, name: string): Promise<Denoiser>;
}

/** The capabilities a model source has (absent = missing; the source says why, see {@link CapabilityReasons}). */
export interface ModelCapabilities {
  readonly text?: TextCapability;
  /** Per-step conditioning transforms (CADS); present on text models. */
  readonly conditionTransform?: ConditionTransformCapability;
  readonly attention?: AttentionCapability;
  readonly embeddingGradient?: EmbeddingGradientCapability;
  /** The execution provider of the source's ONNX sessions (absent: it runs none, e.g. the analytic testbed). */
  readonly provider?: ExecutionProvider;
}

/**
 * Whether a source has capability `c`: null when it has it (and it applies: a Stable Diffusion
 * export's attention needs attn2 Softmax nodes in its U-Net), else why not, phrased to follow a
 * list of method names ("wen:3 need …").
 */
export type CapabilityReasons = (c: Capability) => string | null;

/**
 * The capabilities of a trained memscope model: a text model has all three (memscope builds and
 * differentiates its graphs); a class-conditional or unconditional one has none.
 */
export function trainedModelCapabilities(tm: TrainedModel): ModelCapabilities {
  if (tm.textEncoderBytes === null || tm.openAttention === null) return { provider: 'cpu' };
  const open = tm.openAttention;
  return {
    provider: 'cpu',
    text: {
      texts: tm.prompts.map((p) => p.text),
      get vocabulary() {
        return modelVocabulary(tm);
      },
      async denoiserFor(texts, name) {
        const d = await textDenoiser(tm, texts, name === undefined ? {} : { name });
        return { ...d, conditions: tm.denoiser.conditions };
      },
    },
    attention: { open },
    conditionTransform: {
      denoiser: (transform, name) => wenDenoiser(tm, new Map(), { name, contextTransform: transform }),
    },
    embeddingGradient: {
      objective: (seeds) => createWenObjective(tm, seeds),
      optimize: (cond, xT, t, opts) => optimizePromptEmbedding(tm, cond, xT, t, opts),
      denoiser: (embeddings, name) => wenDenoiser(tm, embeddings, { name }),
    },
  };
}
