/**
 * Trained memscope models through the `Denoiser` interface (issue 3 §5): the text encoder embeds
 * every scenario prompt once (and the empty prompt, the null condition e_∅, as Stable Diffusion
 * does), then the U-Net — built from the saved weights as an ONNX graph with the diffusers
 * signature — runs cond and uncond rows in one batch through the generic ONNX denoiser.
 */
import { join } from 'node:path';
import { readModelJson, trainingSigmas } from '../models/model-dir.ts';
import { readSafetensors } from '../io/safetensors.ts';
import { buildInferenceGraphs, DiffusionModelConfigSchema } from '../models/diffusion-model.ts';
import { EDM_SIGMA_MAX, EDM_SIGMA_MIN } from '../models/edm.ts';
import { WordTokenizer } from '../text/word-tokenizer.ts';
import { createSession, type Session } from '../graph/session.ts';
import { CROSS_ATTENTION_BIAS, CROSS_ATTENTION_PROBS_PREFIX, CROSS_ATTENTION_SCALE, addLogitScaleToBytes } from '../graph/cross-attention.ts';
import { type Tensor, batchSize, rowSize } from '../tensor/tensor.ts';
import { loadOnnxDenoiser, type OnnxDenoiser } from './onnx.ts';
import { checkConds, type CondRef, type ConditionInfo, type Denoiser } from './denoiser.ts';
import type { ScenarioPrompt } from '../models/model-dir.ts';
import type { AttentionOutput, CrossAttentionUnet } from './attention.ts';

/** A loaded trained model: its denoiser, its prompts and the graphs (for export). */
export interface TrainedModel {
  readonly denoiser: Denoiser;
  readonly scenario: string;
  readonly prompts: readonly ScenarioPrompt[];
  /** Training image indices the model saw (`'all'` = the whole embedded train split). */
  readonly imagePool: readonly number[] | 'all';
  /** The U-Net graph with the diffusers signature. */
  readonly unetBytes: Uint8Array;
  /** The text encoder graph (null for unconditional models). */
  readonly textEncoderBytes: Uint8Array | null;
  /**
   * The text encoder's output for every prompt (`conditions` `[K, L, E]`, prompt order) and for
   * the empty prompt (`uncond` `[1, L, E]`): the U-Net's `encoder_hidden_states` rows, as the
   * denoiser feeds them (null for unconditional models).
   */
  readonly embeddings: { readonly conditions: Tensor; readonly uncond: Tensor } | null;
  /** Raw model.json. */
  readonly meta: Record<string, unknown>;
  /** The U-Net with cross-attention exposed (text models loaded with `exposeCrossAttention`; else null); released by the caller. */
  readonly attention: CrossAttentionUnet | null;
  /**
   * Open another session of the U-Net with cross-attention exposed and adjustable (the inference
   * U-Net, EDM preconditioning included, rebuilt with `exposeCrossAttention` and the logit scale);
   * the caller disposes it. Null for models without a text encoder (no cross-attention).
   */
  readonly openAttention: (() => Promise<CrossAttentionUnet>) | null;
  /** EDM-preconditioned models: the denoiser D(x; σ) at any σ (for EDM's Heun sampler); null for ε-prediction models. */
  readonly edm: EdmDenoiser | null;
}

/**
 * The denoiser of an EDM-preconditioned model at arbitrary σ (Karras et al. 2022):
 * D(x; σ) = c_skip·x + c_out·F(c_in·x; c_noise), x in VE scale (x0 + σ·n).
 */
export interface EdmDenoiser {
  /** Per-sample shape. */
  readonly shape: readonly number[];
  /** σ_data of the preconditioning. */
  readonly sigmaData: number;
  /** D(x; σ_b) for a batch `x` `[B, ...shape]`, one σ per row (> 0), conditions as `Denoiser.predict` (null = e_∅). */
  denoise(x: Tensor, sigma: ArrayLike<number>, cond: readonly CondRef[]): Promise<Tensor>;
  dispose(): Promise<void>;
}

/** Options of {@link loadTrainedModel}. */
export interface LoadTrainedOptions {
  /** Also open {@link TrainedModel.attention} (text models only; default false). */
  readonly exposeCrossAttention?: boolean;
}

/** Load a trained model directory (`model.json` + `weights.safetensors`). */
export async function loadTrainedModel(dir: string, opts: LoadTrainedOptions = {}): Promise<TrainedModel> {
  const meta = await readModelJson(dir);
  const cfg = DiffusionModelConfigSchema.parse(meta['model']);
  const weights = await readSafetensors(join(dir, 'weights.safetensors'));
  const values = new Map<string, Float32Array>([...weights.tensors].map(([k, t]) => [k, t.data]));
  const vpSigmas = trainingSigmas();
  const graphs = buildInferenceGraphs(cfg, values, { vpSigmas });
  const prompts = (meta['prompts'] as ScenarioPrompt[]) ?? [];
  const name = `trained:${String(meta['scenario'])}`;
  let denoiser: OnnxDenoiser;
  let embeddings: TrainedModel['embeddings'] = null;
  let attention: CrossAttentionUnet | null = null;
  let openAttention: (() => Promise<CrossAttentionUnet>) | null = null;
  if (opts.exposeCrossAttention === true && !graphs.textEncoder) throw new Error(`exposeCrossAttention: ${dir} is an unconditional model; cross-attention exists only in text-conditioned models`);
  if (graphs.textEncoder) {
    const tok = WordTokenizer.fromJSON(meta['tokenizer']);
    const L = cfg.textEncoder!.maxLength;
    const te = await createSession(graphs.textEncoder);
    const texts = [...prompts.map((p) => p.text), ''];
    const enc = tok.encodeBatch(texts, L);
    const out = await te.run({ ids: enc });
    await te.release();
    const h = out['last_hidden_state']!;
    const per = L * cfg.textEncoder!.width;
    const K = prompts.length;
    embeddings = { conditions: { dims: [K, L, cfg.textEncoder!.width], data: h.data.slice(0, K * per) }, uncond: { dims: [1, L, cfg.textEncoder!.width], data: h.data.slice(K * per) } };
    denoiser = await loadOnnxDenoiser({
      path: join(dir, 'unet.onnx'),
      bytes: graphs.unet,
      name,
      conditions: embeddings.conditions,
      uncond: embeddings.uncond,
      labels: prompts.map((p) => p.text),
    });
    const ids = enc.data;
    const names = texts.map((_, i) => Array.from(ids.subarray(i * L, (i + 1) * L), (v) => tok.tokenName(Number(v))));
    const shape = denoiser.shape;
    let exposed: Uint8Array | null = null;
    openAttention = async () => {
      exposed ??= addLogitScaleToBytes(buildInferenceGraphs(cfg, values, { exposeCrossAttention: true, vpSigmas }).unet, L);
      return attentionUnet(await createSession(exposed), { embeddings: h.data, width: cfg.textEncoder!.width, L, K, shape, tokenNames: names, name });
    };
    if (opts.exposeCrossAttention === true) attention = await openAttention();
  } else {
    denoiser = await loadOnnxDenoiser({ path: join(dir, 'unet.onnx'), bytes: graphs.unet, name });
  }
  let edm: EdmDenoiser | null = null;
  if (graphs.edmDenoiser !== null) {
    const session = await createSession(graphs.edmDenoiser);
    let embed: { data: Float32Array; K: number; L: number; width: number } | null = null;
    if (graphs.textEncoder) {
      const tok = WordTokenizer.fromJSON(meta['tokenizer']);
      const L = cfg.textEncoder!.maxLength;
      const te = await createSession(graphs.textEncoder);
      const out = await te.run({ ids: tok.encodeBatch([...prompts.map((p) => p.text), ''], L) });
      await te.release();
      embed = { data: out['last_hidden_state']!.data, K: prompts.length, L, width: cfg.textEncoder!.width };
    }
    edm = edmDenoiser(session, denoiser.shape, cfg.preconditioning!.sigmaData, embed, denoiser);
  }
  // Re-label conditions with the scenario's kinds and targets (ids class:k / caption:k as in the testbed).
  let nClass = 0;
  let nCap = 0;
  const conditions: ConditionInfo[] = prompts.map((p) =>
    p.kind === 'class'
      ? { id: `class:${nClass++}`, kind: 'class', label: p.text }
      : { id: `caption:${nCap++}`, kind: 'caption', label: p.text, ...(p.targets ? { targets: p.targets } : {}), ...(p.duplicates === undefined ? {} : { duplicates: p.duplicates }) },
  );
  const wrapped: Denoiser = {
    name,
    space: denoiser.space,
    shape: denoiser.shape,
    conditions,
    // at a σ-sampler's σ an EDM model runs its D(x; σ) graph (σ beyond the VP table's top); otherwise the VP U-Net graph
    predict: (xt, level, cond) => (level.sigma === undefined ? denoiser.predict(xt, level, cond) : epsAtSigma(edm, name, xt, level.sigma, cond)),
    ...(edm === null ? {} : { sigmaRange: [EDM_SIGMA_MIN, EDM_SIGMA_MAX] as const }),
    dispose: async () => {
      await denoiser.dispose();
      await edm?.dispose();
    },
  };
  return {
    denoiser: wrapped,
    scenario: String(meta['scenario']),
    prompts,
    imagePool: (meta['imagePool'] as number[] | 'all') ?? 'all',
    unetBytes: graphs.unet,
    textEncoderBytes: graphs.textEncoder,
    embeddings,
    meta,
    attention,
    openAttention,
    edm,
  };
}

/**
 * ε̂ at VE level σ through an EDM model's D(x; σ): x = x_t·√(1 + σ²), ε̂ = (x − D)/σ (the
 * difference in float64, the result in float32). Refuses models without the graph and σ outside EDM's training range.
 */
async function epsAtSigma(edm: EdmDenoiser | null, name: string, xt: Tensor, sigma: number, cond: readonly CondRef[]): Promise<Tensor> {
  if (edm === null) throw new Error(`${name}: cannot be evaluated at an arbitrary σ (${sigma}): only EDM-trained models (--parameterization edm) have a D(x; σ) graph; use a sampler on the schedule's grid (ddim, dpmpp2m, euler)`);
  if (!(sigma >= EDM_SIGMA_MIN * (1 - 1e-9) && sigma <= EDM_SIGMA_MAX * (1 + 1e-9))) throw new Error(`${name}: σ = ${sigma} lies outside the EDM training range [${EDM_SIGMA_MIN}, ${EDM_SIGMA_MAX}]`);
  const k = Math.sqrt(1 + sigma * sigma);
  const x = Float32Array.from(xt.data, (v) => v * k);
  const B = batchSize(xt);
  const D = await edm.denoise({ dims: [...xt.dims], data: x }, new Float64Array(B).fill(sigma), cond);
  const eps = new Float32Array(x.length);
  for (let j = 0; j < eps.length; j++) eps[j] = (xt.data[j]! * k - D.data[j]!) / sigma;
  return { dims: [...xt.dims], data: eps };
}

function edmDenoiser(
  session: Session,
  shape: readonly number[],
  sigmaData: number,
  embed: { data: Float32Array; K: number; L: number; width: number } | null,
  probe: Denoiser,
): EdmDenoiser {
  const per = numelOf(shape);
  return {
    shape,
    sigmaData,
    denoise: async (x, sigma, cond) => {
      const B = batchSize(x);
      checkConds(probe, cond, B, 'edm denoise cond');
      if (rowSize(x) !== per) throw new Error(`edm denoise x: expected rows of shape [${shape.join(', ')}], got dims [${x.dims.join(', ')}]`);
      if (sigma.length !== B) throw new Error(`edm denoise sigma: expected ${B} values (one per row), got ${sigma.length}`);
      for (let i = 0; i < B; i++) if (!(sigma[i]! > 0) || !Number.isFinite(sigma[i]!)) throw new Error(`edm denoise sigma: row ${i} has σ = ${sigma[i]}, expected a finite number > 0`);
      const feeds: Record<string, Tensor> = { x, sigma: { dims: [B], data: Float32Array.from(sigma) } };
      if (embed !== null) {
        const w = embed.L * embed.width;
        const ctx = new Float32Array(B * w);
        cond.forEach((c, r) => {
          const k = c === null ? embed.K : c;
          ctx.set(embed.data.subarray(k * w, (k + 1) * w), r * w);
        });
        feeds['encoder_hidden_states'] = { dims: [B, embed.L, embed.width], data: ctx };
      } else if (cond.some((c) => c !== null)) throw new Error('edm denoise cond: an unconditional model takes only null conditions');
      const out = await session.run(feeds);
      const d = out['denoised']!;
      for (let i = 0; i < d.data.length; i++) if (!Number.isFinite(d.data[i]!)) throw new Error(`edm denoise: non-finite output at element ${i}`);
      return { dims: [...x.dims], data: d.data };
    },
    dispose: () => session.release(),
  };
}

function numelOf(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Wrap a session of the exposed U-Net graph (embeddings: K prompt rows then the empty prompt). */
async function attentionUnet(
  session: Session,
  o: { embeddings: Float32Array; width: number; L: number; K: number; shape: readonly number[]; tokenNames: string[][]; name: string },
): Promise<CrossAttentionUnet> {
  const layers = session.outputNames.filter((n) => n.startsWith(CROSS_ATTENTION_PROBS_PREFIX)).map((n) => n.slice(CROSS_ATTENTION_PROBS_PREFIX.length));
  const per = o.L * o.width;
  const conds: ConditionInfo[] = Array.from({ length: o.K }, (_, i) => ({ id: `row:${i}`, kind: 'text', label: '' }));
  const probe = { name: o.name, conditions: conds } as unknown as Denoiser;
  return {
    layers,
    contextLength: o.L,
    tokens: (cond) => [...o.tokenNames[cond === null ? o.K : cond]!],
    run: async (xt, level, cond, adjust = {}, runOpts = {}): Promise<AttentionOutput> => {
      const B = batchSize(xt);
      checkConds(probe, cond, B, 'attention cond');
      if (rowSize(xt) !== o.shape.reduce((a, b) => a * b, 1)) throw new Error(`attention xt: expected rows of shape [${o.shape.join(', ')}], got dims [${xt.dims.join(', ')}]`);
      for (const [k, v] of Object.entries(adjust)) {
        if (v !== undefined && (v as Float32Array).length !== B * o.L) throw new Error(`attention ${k}: expected ${B}·${o.L} = ${B * o.L} values (one per row and token), got ${(v as Float32Array).length}`);
      }
      const ctx = new Float32Array(B * per);
      cond.forEach((c, r) => ctx.set(o.embeddings.subarray((c === null ? o.K : c) * per, ((c === null ? o.K : c) + 1) * per), r * per));
      const out = await session.run(
        {
          sample: xt,
          timestep: { dims: [B], data: new Float32Array(B).fill(level.t) },
          encoder_hidden_states: { dims: [B, o.L, o.width], data: ctx },
          [CROSS_ATTENTION_BIAS]: { dims: [B, o.L], data: adjust.bias ?? new Float32Array(B * o.L) },
          [CROSS_ATTENTION_SCALE]: { dims: [B, o.L], data: adjust.scale ?? new Float32Array(B * o.L).fill(1) },
        },
        runOpts.probs === false ? ['out_sample'] : undefined,
      );
      const probs = new Map<string, Tensor>();
      if (runOpts.probs !== false) for (const l of layers) probs.set(l, out[CROSS_ATTENTION_PROBS_PREFIX + l]!);
      return { eps: out['out_sample']!, probs };
    },
    dispose: () => session.release(),
  };
}
