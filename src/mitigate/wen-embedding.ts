/**
 * Wen et al. 2024 ("Detecting, Explaining, and Mitigating Memorization in Diffusion Models", ICLR
 * 2024, the inference-time mitigation by minimising the text-conditional prediction), a baseline of Jain et al. 2025 (SPEC §4.4): before
 * sampling, optimise the prompt embedding e (the U-Net's `encoder_hidden_states` of the prompt,
 * `[L, width]`) so that the text-conditional prediction at the first step stops standing out:
 *
 *     minimise  l(e) = ‖ ε_θ(x_T, T, e) − ε_θ(x_T, T, e_∅) ‖₂      over the N seeds' x_T jointly,
 *
 * with AdamW, and sample from the same seeds with the optimised e (classifier-free guidance as usual).
 *
 * What their code does (YuxinWenRick/diffusion_memorization, `local_sd_pipeline.py` `aug_prompt`
 * and `inference_mem.py` defaults), reproduced here:
 * - loss: `torch.norm(noise_pred_text - noise_pred_uncond, p=2)` — the plain (not squared) L2 norm
 *   of the whole `[N, C, H, W]` batch of differences, one norm over all N images together (the
 *   trailing `.mean()` acts on a scalar); no guidance scale inside the loss;
 * - at the first inference step (`--optim_target_steps 0`), on the N = `num_images_per_prompt`
 *   initial latents x_T of the generation (default 4 there);
 * - optimiser `torch.optim.AdamW([e], lr)` with lr 0.05 (`--optim_lr`), torch's other defaults
 *   (betas 0.9/0.999, eps 1e-8, weight_decay 0.01);
 * - at most 10 iterations (`--optim_iters`); in each, the loss is computed first and the loop
 *   stops, without updating, once `loss ≤ target_loss` (`--optim_target_loss`; default None in the
 *   script, 3 in the runs Jain et al. compare with, who also report l_target = 1);
 * - the gradient of token position 0 (the start token) is zeroed before each step (decoupled weight
 *   decay still shrinks it, as in torch);
 * - only the conditional embedding is optimised; e_∅ is the embedding of the empty prompt.
 *
 * Differences: memscope's models are pixel-space 1×32×32 (SD: 4×64×64 latents), so the scale of the
 * loss differs and l_target = 3 is not the same threshold — it is an absolute value of the joint
 * norm, which grows like √(N·C·H·W); calibrate it per model (e.g. from the loss of non-memorized
 * prompts). The gradient comes from memscope's ONNX differentiator (`gradientGraph`) on a graph
 * that rebuilds the U-Net from `TrainedModel.unetBytes` and adds the loss nodes.
 */
import { GraphBuilder } from '../graph/builder.ts';
import { gradientGraph } from '../graph/autodiff.ts';
import { createSession, type Session } from '../graph/session.ts';
import { paramFnFor } from '../models/init.ts';
import { buildEpsNetwork, prefixed } from '../models/diffusion-model.ts';
import { trainingSigmas } from '../models/model-dir.ts';
import { AdamW } from '../optim/adamw.ts';
import { loadOnnxDenoiser } from '../denoisers/onnx.ts';
import type { Denoiser } from '../denoisers/denoiser.ts';
import type { TrainedModel } from '../denoisers/trained.ts';
import { type Tensor, numel } from '../tensor/tensor.ts';
import { embedTexts, textShape } from './prompt-noise.ts';
import { modelConfig } from './unet-graph.ts';
import { graphWeights } from '../graph/weights.ts';

/** Wen et al.'s defaults (their `inference_mem.py` and the l_target of the runs Jain et al. compare with). */
export const WEN_DEFAULTS = { lr: 0.05, maxIters: 10, lossTarget: 3, weightDecay: 0.01 } as const;

/** The serialized loss graph of {@link createWenObjective} and the static input shapes it was built for. */
export interface WenLossGraph {
  /** Inputs `embedding` `[1, L, W]`, `uncond` `[1, L, W]`, `sample` `[N, C, S, S]`, `timestep` `[2N]`; output `loss` `[]`. */
  readonly bytes: Uint8Array;
  readonly inputShapes: Readonly<Record<string, readonly number[]>>;
}

/**
 * Build Wen et al.'s loss `‖ε_θ(x_T, e) − ε_θ(x_T, e_∅)‖₂` (one norm over the N seeds) around the
 * trained U-Net at a static batch of 2N rows: `[x_T; x_T]` with contexts `[e_∅ ×N; e ×N]`.
 */
export function buildWenLossGraph(model: TrainedModel, seeds: number): WenLossGraph {
  if (!Number.isInteger(seeds) || seeds < 1) throw new Error(`Wen loss graph: seeds must be a positive integer, got ${seeds}`);
  const cfg = modelConfig(model);
  if (cfg.unet.conditioning !== 'text') throw new Error(`${model.denoiser.name}: Wen et al.'s mitigation needs a text-conditioned model`);
  const { L, width } = textShape(model);
  const N = seeds;
  const C = cfg.unet.inChannels;
  const S = cfg.unet.sampleSize;
  const b = new GraphBuilder({ name: 'wen_loss' });
  const shapes: Record<string, readonly number[]> = { embedding: [1, L, width], uncond: [1, L, width], sample: [N, C, S, S], timestep: [2 * N] };
  for (const [k, v] of Object.entries(shapes)) b.input(k, 'float32', v);
  const rows = b.constI64([N, L, width]);
  const ctx = b.op('Concat', [b.op('Expand', ['uncond', rows]), b.op('Expand', ['embedding', rows])], { axis: 0 });
  const x2 = b.op('Concat', ['sample', 'sample'], { axis: 0 });
  const { param } = paramFnFor(b, 'initializer', graphWeights(model.unetBytes));
  const eps = buildEpsNetwork(b, cfg, { sample: x2, timestep: 'timestep', context: ctx }, prefixed(param, 'unet.'), 2 * N, trainingSigmas());
  const [eu, ec] = b.opN('Split', [eps, b.constI64([N, N])], { axis: 0 }, { outputs: 2 });
  const d = b.op('Sub', [ec!, eu!]);
  const ss = b.op('ReduceSum', [b.op('Mul', [d, d]), b.constI64([0, 1, 2, 3])], { keepdims: 0 });
  b.output(b.op('Sqrt', [ss]), 'float32', [], 'loss');
  return { bytes: b.toBytes(), inputShapes: shapes };
}

/** Wen et al.'s objective for one model and seed count: the loss and its gradient w.r.t. e. */
export interface WenObjective {
  /** N, the number of seeds (x_T rows) it takes. */
  readonly seeds: number;
  /** e_∅ `[1, L, W]` (the embedding of `''`). */
  readonly uncond: Tensor;
  /** l(e) for `embedding` (`L·W` values) at x_T `[N, C, S, S]` and timestep t (forward graph only). */
  loss(embedding: Float32Array, xT: Tensor, t: number): Promise<number>;
  /** l(e) and ∂l/∂e (`L·W` values) from the differentiated graph. */
  lossAndGradient(embedding: Float32Array, xT: Tensor, t: number): Promise<{ loss: number; grad: Float32Array }>;
  dispose(): Promise<void>;
}

/**
 * Build Wen et al.'s objective for `seeds` x_T rows: the loss graph ({@link buildWenLossGraph}),
 * its gradient graph w.r.t. `embedding` (memscope's differentiator) and their sessions. Reuse it
 * across prompts of the same seed count (pass it as `objective` to {@link optimizePromptEmbedding}).
 */
export async function createWenObjective(model: TrainedModel, seeds: number): Promise<WenObjective> {
  const g = buildWenLossGraph(model, seeds);
  const gradBytes = gradientGraph(g.bytes, { loss: 'loss', wrt: ['embedding'], inputShapes: g.inputShapes });
  const uncond = await embedTexts(model, ['']);
  const gradSession = await createSession(gradBytes);
  let fwd: Session | null = null;
  const per = numel(g.inputShapes['embedding']!);
  const sampleDims = g.inputShapes['sample']!;
  const feeds = (embedding: Float32Array, xT: Tensor, t: number): Record<string, Tensor> => {
    if (embedding.length !== per) throw new Error(`Wen objective: embedding has ${embedding.length} values, expected ${per} ([${g.inputShapes['embedding']!.join(', ')}])`);
    if (xT.dims.length !== sampleDims.length || xT.dims.some((v, i) => v !== sampleDims[i])) {
      throw new Error(`Wen objective: x_T must be [${sampleDims.join(', ')}] (built for ${seeds} seeds), got [${xT.dims.join(', ')}]`);
    }
    if (!Number.isFinite(t)) throw new Error(`Wen objective: timestep must be finite, got ${t}`);
    return {
      embedding: { dims: g.inputShapes['embedding']!, data: embedding },
      uncond,
      sample: xT,
      timestep: { dims: [2 * seeds], data: new Float32Array(2 * seeds).fill(t) },
    };
  };
  return {
    seeds,
    uncond,
    loss: async (embedding, xT, t) => {
      fwd ??= await createSession(g.bytes);
      const out = await fwd.run(feeds(embedding, xT, t), ['loss']);
      return out['loss']!.data[0]!;
    },
    lossAndGradient: async (embedding, xT, t) => {
      const out = await gradSession.run(feeds(embedding, xT, t));
      const loss = out['loss']!.data[0]!;
      const grad = out['grad/embedding']!.data;
      if (!Number.isFinite(loss)) throw new Error(`Wen objective: the loss is not finite (${loss}) at t = ${t}`);
      return { loss, grad };
    },
    dispose: async () => {
      await gradSession.release();
      if (fwd !== null) await fwd.release();
    },
  };
}

/** Options of {@link optimizePromptEmbedding}; defaults in {@link WEN_DEFAULTS}. */
export interface WenOptions {
  /** AdamW learning rate (default 0.05, `--optim_lr`). */
  readonly lr?: number;
  /** Most iterations (default 10, `--optim_iters`). */
  readonly maxIters?: number;
  /** Stop (before updating) once the loss is ≤ this; `null` = always run `maxIters` steps (default 3, l_target). */
  readonly lossTarget?: number | null;
  /** AdamW decoupled weight decay (default 0.01, torch's default, which their code keeps). */
  readonly weightDecay?: number;
  /** Zero the gradient of token position 0 (the start token), as their code does (default true). */
  readonly freezeStart?: boolean;
  /** A prebuilt objective for N = `xT.dims[0]` seeds (default: built here, and disposed after). */
  readonly objective?: WenObjective;
}

/** The outcome of {@link optimizePromptEmbedding}. */
export interface WenResult {
  /** The optimised embedding `[1, L, W]`. */
  readonly embedding: Tensor;
  /** The loss at the start of each iteration (the last one is ≤ lossTarget when the loop stopped early). */
  readonly losses: number[];
  /** Optimizer steps taken (≤ maxIters). */
  readonly iterations: number;
  /** Whether the loop stopped because the loss reached the target. */
  readonly reachedTarget: boolean;
  /** Wall seconds, including building the objective when none was passed. */
  readonly seconds: number;
}

/**
 * Wen et al. 2024 inference-time mitigation: optimise the embedding of condition `cond` of `model` on the seeds' initial
 * noise `xT` `[N, C, S, S]` at timestep `t` (the first step of the sampler, e.g. 999) with AdamW
 * (lr 0.05, ≤ 10 iterations, stop once l ≤ 3; see the module note for the exact loop).
 */
export async function optimizePromptEmbedding(model: TrainedModel, cond: number, xT: Tensor, t: number, opts: WenOptions = {}): Promise<WenResult> {
  const t0 = performance.now();
  const prompt = model.prompts[cond];
  if (!Number.isInteger(cond) || prompt === undefined) throw new Error(`optimizePromptEmbedding: condition ${cond} is out of range (0..${model.prompts.length - 1})`);
  const N = xT.dims[0] ?? 0;
  if (opts.objective !== undefined && opts.objective.seeds !== N) throw new Error(`optimizePromptEmbedding: the objective was built for ${opts.objective.seeds} seeds but x_T has ${N} rows`);
  const objective = opts.objective ?? (await createWenObjective(model, N));
  try {
    const { L, width } = textShape(model);
    const e0 = await embedTexts(model, [prompt.text]);
    const r = await optimizeEmbedding({ dims: [1, L, width], data: e0.data }, objective, xT, t, opts);
    return { ...r, seconds: (performance.now() - t0) / 1000 };
  } finally {
    if (opts.objective === undefined) await objective.dispose();
  }
}

/**
 * Wen et al.'s optimisation loop on any objective (trained models, Stable Diffusion): start from
 * `e0` (`[1, L, W]`, not modified), AdamW (lr 0.05, decoupled weight decay 0.01), at most 10
 * iterations, each computing the loss first and stopping before the update once it is ≤ the
 * target (3); the start token's gradient zeroed (see the module note). `opts.objective` is ignored
 * (the objective is the second argument).
 */
export async function optimizeEmbedding(e0: Tensor, objective: WenObjective, xT: Tensor, t: number, opts: WenOptions = {}): Promise<WenResult> {
  const t0 = performance.now();
  const lr = opts.lr ?? WEN_DEFAULTS.lr;
  const maxIters = opts.maxIters ?? WEN_DEFAULTS.maxIters;
  const target = opts.lossTarget === undefined ? WEN_DEFAULTS.lossTarget : opts.lossTarget;
  if (!Number.isInteger(maxIters) || maxIters < 0) throw new Error(`optimizePromptEmbedding: maxIters must be a non-negative integer, got ${maxIters}`);
  if (e0.dims.length !== 3 || e0.dims[0] !== 1) throw new Error(`optimizeEmbedding: e0 must be [1, L, W], got [${e0.dims.join(', ')}]`);
  const width = e0.dims[2]!;
  const e = e0.data.slice();
  const adam = new AdamW([{ name: 'e', dims: [...e0.dims] }], { lr, weightDecay: opts.weightDecay ?? WEN_DEFAULTS.weightDecay });
  const losses: number[] = [];
  let iterations = 0;
  let reachedTarget = false;
  const params = new Map([['e', e]]);
  for (let j = 0; j < maxIters; j++) {
    const { loss, grad } = await objective.lossAndGradient(e, xT, t);
    losses.push(loss);
    if (target !== null && loss <= target) {
      reachedTarget = true;
      break;
    }
    const g = grad.slice();
    if (opts.freezeStart ?? true) g.fill(0, 0, width);
    adam.step(params, new Map([['e', g]]));
    iterations++;
  }
  return { embedding: { dims: [...e0.dims], data: e }, losses, iterations, reachedTarget, seconds: (performance.now() - t0) / 1000 };
}

/** Options of {@link wenDenoiser}. */
export interface WenDenoiserOptions {
  /** Name for reports (default `<model name>+wen`). */
  readonly name?: string;
  /** Replace each batch's `encoder_hidden_states` from the timestep (CADS); default none. */
  readonly contextTransform?: (context: Float32Array, t: number) => Float32Array;
}

/**
 * The trained model's denoiser with optimised embeddings (Wen et al. 2024 inference-time mitigation): condition k uses
 * `embeddings.get(k)` (`[1, L, W]` or `[L, W]`, from {@link optimizePromptEmbedding}) when given,
 * else its original prompt embedding; e_∅ stays the embedding of `''`. Same conditions (ids,
 * labels, targets) as `model.denoiser`.
 */
export async function wenDenoiser(model: TrainedModel, embeddings: ReadonlyMap<number, Tensor>, opts: WenDenoiserOptions = {}): Promise<Denoiser> {
  const { L, width } = textShape(model);
  const K = model.prompts.length;
  const per = L * width;
  const all = await embedTexts(model, [...model.prompts.map((p) => p.text), '']);
  const rows = all.data.slice(0, K * per);
  for (const [k, e] of embeddings) {
    if (!Number.isInteger(k) || k < 0 || k >= K) throw new Error(`wenDenoiser: condition ${k} is out of range (0..${K - 1})`);
    if (e.data.length !== per) throw new Error(`wenDenoiser: the embedding of condition ${k} has ${e.data.length} values ([${e.dims.join(', ')}]), expected ${per} ([1, ${L}, ${width}])`);
    rows.set(e.data, k * per);
  }
  const name = opts.name ?? `${model.denoiser.name}+wen`;
  const inner = await loadOnnxDenoiser({
    path: name,
    bytes: model.unetBytes,
    name,
    conditions: { dims: [K, L, width], data: rows },
    uncond: { dims: [1, L, width], data: all.data.slice(K * per) },
    ...(opts.contextTransform === undefined ? {} : { contextTransform: opts.contextTransform }),
  });
  return {
    name,
    space: inner.space,
    shape: inner.shape,
    conditions: model.denoiser.conditions,
    predict: (xt, level, cond) => inner.predict(xt, level, cond),
    dispose: () => inner.dispose(),
  };
}
