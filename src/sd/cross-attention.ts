/**
 * Ren et al. 2024's attention hooks on a Stable Diffusion export: {@link sdScaledAttentionUnet}
 * runs the export's U-Net with its cross-attention exposed by the graph surgery of
 * `src/graph/cross-attention.ts` (which see for the surgery itself: which nodes, the layouts, the
 * temp folder of hard-linked weights), as the `CrossAttentionUnet` (`denoisers/attention.ts`) that `mitigate/ren-attention.ts`
 * detects and mitigates with.
 */
import { createSession, type Session, type TypedFeed } from '../graph/session.ts';
import { CROSS_ATTENTION_BIAS, CROSS_ATTENTION_PROBS_PREFIX, CROSS_ATTENTION_SCALE, writeExposedUnet } from '../graph/cross-attention.ts';
import type { AttentionOutput, CrossAttentionUnet, LogitAdjustment } from '../denoisers/attention.ts';
import { checkConds, type CondRef, type Denoiser, type NoiseLevel } from '../denoisers/denoiser.ts';
import { toEps } from '../denoisers/parameterization.ts';
import type { TimestepLayout } from '../denoisers/onnx.ts';
import { type Tensor, batchSize, concatBatch, sliceBatch } from '../tensor/tensor.ts';
import type { SdExport } from './export.ts';

/** The token strings of a CLIP tokenizer's ids (vocabulary and added tokens inverted). */
export function clipIdToToken(tokenizerJson: object): (id: number) => string {
  const j = tokenizerJson as { model?: { vocab?: Record<string, number> }; added_tokens?: readonly { id: number; content: string }[] };
  const names = new Map<number, string>();
  for (const [t, id] of Object.entries(j.model?.vocab ?? {})) names.set(id, t);
  for (const a of j.added_tokens ?? []) names.set(a.id, a.content);
  return (id) => names.get(id) ?? `<id ${id}>`;
}

/** Options of {@link sdScaledAttentionUnet}. */
export interface SdAttentionOptions {
  /** The plain denoiser of the source (its conditions are checked against `cond`). */
  readonly denoiser: Denoiser;
  /** `encoder_hidden_states` rows `[K, L, E]`, row k = condition k. */
  readonly conditions: Tensor;
  /** e_∅ `[1, L, E]` (the empty or negative prompt's embedding). */
  readonly uncond: Tensor;
  /** The prompt of each condition row (for the token strings). */
  readonly texts: readonly string[];
  /** The text of e_∅ (default `''`, the empty prompt). */
  readonly uncondText?: string;
  /** Rows per U-Net call; larger batches run in chunks (default: all rows in one call). */
  readonly maxRows?: number;
}

/** The U-Net `timestep` feed for `B` rows in its declared dtype and layout (scalar `[]`, `[1]` or `[B]`; integer types rounded). */
export function timestepFeed(ts: TimestepLayout, t: number, B: number): TypedFeed {
  const v = ts.type === 'int64' || ts.type === 'int32' ? Math.round(t) : t;
  if (ts.layout === 'scalar') return { type: ts.type, dims: [], data: [v] };
  if (ts.layout === 'one') return { type: ts.type, dims: [1], data: [v] };
  return { type: ts.type, dims: [B], data: new Array<number>(B).fill(v) };
}

/**
 * A Stable Diffusion export's U-Net with its cross-attention exposed and adjustable per token (a
 * `CrossAttentionUnet`, for Ren et al. 2024): the surgery of {@link writeExposedUnet} on
 * `exp.unet.path`, opened as a second session on the export's execution provider. Tokens are the
 * export's CLIP tokens (`<|startoftext|>`, the prompt's BPE tokens, `<|endoftext|>`, then the pad
 * token); the timestep is fed in the U-Net's declared dtype and layout (as `OnnxDenoiser`); ε̂ is
 * converted from the scheduler's `prediction_type` (v-prediction → ε). `dispose` releases the
 * session and removes the temp folder.
 */
export async function sdScaledAttentionUnet(exp: SdExport, opts: SdAttentionOptions): Promise<CrossAttentionUnet> {
  const K = opts.conditions.dims[0]!;
  const L = opts.conditions.dims[1]!;
  const per = opts.conditions.data.length / Math.max(1, K);
  if (opts.texts.length !== K) throw new Error(`sdScaledAttentionUnet: ${opts.texts.length} texts for ${K} condition rows`);
  if (opts.uncond.data.length !== per) throw new Error(`sdScaledAttentionUnet: uncond has ${opts.uncond.data.length} values, one condition row ${per}`);
  const name = clipIdToToken(exp.tokenizer.tokenizerJson);
  const toks = (text: string): string[] => Array.from(exp.tokenizer.encode(text).ids, name);
  const names = [...opts.texts.map(toks), toks(opts.uncondText ?? '')];
  if (names[0]!.length !== L) throw new Error(`sdScaledAttentionUnet: the tokenizer gives ${names[0]!.length} ids per prompt but the embeddings have ${L} tokens`);
  const file = writeExposedUnet(exp.unet.path, exp.unet.weightSources ?? {});
  let session: Session;
  try {
    session = await createSession(file.path, { executionProvider: exp.executionProvider, externalData: file.inMemoryData() });
  } catch (e) {
    file.dispose();
    throw e;
  }
  const layers = file.layers.map((l) => l.layer);
  const probsOut = layers.map((l) => CROSS_ATTENTION_PROBS_PREFIX + l);
  const out0 = exp.unet.output;
  let ts = exp.unet.timestep;
  let tsUnsure = ts.layout === 'scalar';
  const shape = opts.denoiser.shape;
  type ChunkRunner = (xt: Tensor, level: NoiseLevel, cond: readonly CondRef[], adjust: LogitAdjustment, ro: { readonly probs?: boolean }) => Promise<AttentionOutput>;
  const unet: CrossAttentionUnet & { runChunk: ChunkRunner } = {
    layers,
    contextLength: L,
    tokens: (cond) => [...names[cond === null ? K : cond]!],
    async run(xt: Tensor, level: NoiseLevel, cond: readonly CondRef[], adjust: LogitAdjustment = {}, ro: { readonly probs?: boolean } = {}): Promise<AttentionOutput> {
      const B = batchSize(xt);
      const maxRows = opts.maxRows ?? B;
      if (B <= maxRows) return this.runChunk(xt, level, cond, adjust, ro);
      // chunks of maxRows rows; ε̂ and every layer's probabilities concatenated along the batch
      const outs: AttentionOutput[] = [];
      for (let a = 0; a < B; a += maxRows) {
        const e = Math.min(a + maxRows, B);
        const scale = adjust.scale?.subarray(a * L, e * L);
        const bias = adjust.bias?.subarray(a * L, e * L);
        outs.push(await this.runChunk(sliceBatch(xt, a, e), level, cond.slice(a, e), { ...(scale ? { scale } : {}), ...(bias ? { bias } : {}) }, ro));
      }
      const probs = new Map<string, Tensor>();
      for (const l of outs[0]!.probs.keys()) probs.set(l, concatBatch(outs.map((r) => r.probs.get(l)!)));
      return { eps: concatBatch(outs.map((r) => r.eps)), probs };
    },
    async runChunk(xt: Tensor, level: NoiseLevel, cond: readonly CondRef[], adjust: LogitAdjustment, ro: { readonly probs?: boolean }): Promise<AttentionOutput> {
      const B = batchSize(xt);
      checkConds(opts.denoiser, cond, B, 'attention cond');
      if (xt.dims.length !== shape.length + 1 || xt.dims.slice(1).some((v, i) => v !== shape[i])) throw new Error(`attention xt: expected [B, ${shape.join(', ')}], got [${xt.dims.join(', ')}]`);
      for (const [k, v] of Object.entries(adjust)) {
        if (v !== undefined && (v as Float32Array).length !== B * L) throw new Error(`attention ${k}: expected ${B}·${L} = ${B * L} values (one per row and token), got ${(v as Float32Array).length}`);
      }
      if (exp.predictionType !== 'epsilon' && !(level.alphaBar > 0 && level.alphaBar < 1)) throw new Error(`attention: ${exp.predictionType} conversion needs 0 < ᾱ < 1, got ${level.alphaBar}`);
      const ctx = new Float32Array(B * per);
      cond.forEach((c, r) => ctx.set(c === null ? opts.uncond.data : opts.conditions.data.subarray(c * per, (c + 1) * per), r * per));
      const feeds = (): Record<string, Tensor | TypedFeed> => ({
        sample: xt,
        timestep: timestepFeed(ts, level.t, B),
        encoder_hidden_states: { dims: [B, L, per / L], data: ctx },
        [CROSS_ATTENTION_BIAS]: { dims: [B, L], data: adjust.bias ?? new Float32Array(B * L) },
        [CROSS_ATTENTION_SCALE]: { dims: [B, L], data: adjust.scale ?? new Float32Array(B * L).fill(1) },
      });
      const want = ro.probs === false ? [out0] : [out0, ...probsOut];
      let res: Record<string, Tensor>;
      try {
        res = await session.run(feeds(), want);
      } catch (e) {
        // an undeclared timestep shape reads like rank 0: try [B] once (as OnnxDenoiser does)
        if (!tsUnsure) throw e;
        tsUnsure = false;
        ts = { type: ts.type, layout: 'batch' };
        res = await session.run(feeds(), want);
      }
      tsUnsure = false;
      const probs = new Map<string, Tensor>();
      if (ro.probs !== false) layers.forEach((l, i) => probs.set(l, res[probsOut[i]!]!));
      const raw = res[out0]!;
      return { eps: toEps(exp.predictionType, xt, { dims: [...xt.dims], data: raw.data }, level.alphaBar), probs };
    },
    async dispose(): Promise<void> {
      await session.release();
      file.dispose();
    },
  };
  return unet;
}
