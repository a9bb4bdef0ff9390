/**
 * Cross-attention of a Stable Diffusion export's U-Net, exposed by graph surgery on its ONNX file —
 * what Ren et al. 2024's attention-entropy detection and start-token / padding-mask mitigation
 * need (see `mitigate/ren-attention.ts`), on the user's own `unet/model.onnx`.
 *
 * Which nodes: real exports (torch.onnx, directly or through optimum, of diffusers'
 * `UNet2DConditionModel`) name every node by its module path, e.g.
 * `/down_blocks.0/attentions.0/transformer_blocks.0/attn2/Softmax`; in diffusers'
 * `BasicTransformerBlock`, `attn1` is the self-attention and `attn2` the cross-attention to the
 * prompt tokens. A cross-attention softmax is therefore a `Softmax` node whose name has a path
 * segment `attn2` ({@link CROSS_ATTENTION_SOFTMAX_PATTERN}); the layer is named by its diffusers
 * module path (`down_blocks.0.attentions.0.transformer_blocks.0.attn2`). A U-Net without such
 * nodes (not a diffusers export, or names stripped by an optimiser) is an error naming the file.
 *
 * Layouts: the softmax input (the logits) is `[B·heads, q, L]` with diffusers' classic
 * `AttnProcessor` (`head_to_batch_dim` + `baddbmm`) or `[B, heads, q, L]` with the SDPA processor
 * decomposed by the exporter. Both are batch-major, so the surgery never needs the rank or the head
 * count: B is read at run time from `encoder_hidden_states` (`Shape` + `Slice`) and the logits are
 * `Reshape`d to `[B, −1, L]` (the −1 is heads·q; for rank 3 the head count is (B·heads)/B, computed
 * by `Reshape` itself), adjusted, and reshaped back to their own `Shape`; the probabilities are
 * reshaped to `[B, −1, q, L]` and averaged over axis 1 (the heads).
 *
 * What is inserted before each cross-attention softmax: `logits' = scale[b, i] · logits + bias[b, i]`
 * with new graph inputs `cross_attention_scale` and `cross_attention_bias`, float32 `[B, L]`
 * (broadcast over heads and queries; Cast to the logits' element type, found by following the
 * graph back to a typed value, for fp16 exports), and one new output per layer
 * `cross_attention_probs/<layer>` float32 `[B, q, L]` = the softmax output averaged over the heads.
 * Scale 1 and bias 0 give the original U-Net.
 *
 * Weights stay where they are: the modified `model.onnx` is written into a fresh folder under
 * `os.tmpdir()` (removed by `dispose`) beside HARD links to the external data file(s) the model
 * names (`weights.pb`, `model.onnx_data`, or torch's one-file-per-tensor), because onnxruntime
 * resolves external data relative to the model file and (1.30) refuses symbolic links that
 * resolve outside the model's folder. Where a hard link is impossible (the temp folder on another
 * file system) the file is handed to onnxruntime in memory (session option `externalData`) —
 * still no copy on disk. Nothing is written into the export. A U-Net with inline weights is
 * re-serialized whole into the temp folder (one copy).
 */
import { linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, normalize, resolve } from 'node:path';
import p from 'onnx-proto';
import { createSession, type Session, type TypedFeed } from '../graph/session.ts';
import { CROSS_ATTENTION_BIAS, CROSS_ATTENTION_PROBS_PREFIX } from '../models/unet.ts';
import { CROSS_ATTENTION_SCALE, type LogitAdjustment, type ScaledAttentionUnet } from '../mitigate/ren-attention.ts';
import type { AttentionOutput } from '../denoisers/trained.ts';
import { checkConds, type CondRef, type Denoiser, type NoiseLevel } from '../denoisers/denoiser.ts';
import { toEps } from '../denoisers/parameterization.ts';
import type { TimestepLayout } from '../denoisers/onnx.ts';
import { type Tensor, batchSize, concatBatch, sliceBatch } from '../tensor/tensor.ts';
import type { SdExport } from './export.ts';

const { onnx } = p;
type ModelProto = InstanceType<typeof onnx.ModelProto>;
type NodeProto = InstanceType<typeof onnx.NodeProto>;
type TensorProto = InstanceType<typeof onnx.TensorProto>;

/**
 * A cross-attention softmax node name: a path segment `attn2` (diffusers' `BasicTransformerBlock.attn2`),
 * as torch.onnx names it, e.g. `/down_blocks.0/attentions.0/transformer_blocks.0/attn2/Softmax`.
 */
export const CROSS_ATTENTION_SOFTMAX_PATTERN = /(^|[/.])attn2([/.]|$)/;

/** One cross-attention softmax found in a U-Net graph. */
export interface CrossAttentionSoftmax {
  /** The Softmax node's name. */
  readonly node: string;
  /** The layer name: the diffusers module path (`down_blocks.0.attentions.0.transformer_blocks.0.attn2`). */
  readonly layer: string;
  /** The softmax input (logits) and output (probabilities) value names. */
  readonly logits: string;
  readonly probs: string;
}

/** The layer name of cross-attention softmax node `name`: the module path up to `attn2`, `/` → `.`, no leading `/`. */
function layerName(name: string): string {
  const parts = name.split('/').filter((s) => s !== '');
  const i = parts.findIndex((s) => s === 'attn2' || s.endsWith('.attn2') || s.startsWith('attn2.'));
  const upto = i < 0 ? parts.slice(0, -1) : parts.slice(0, i + 1);
  return (upto.length > 0 ? upto : parts).join('.');
}

/**
 * The cross-attention Softmax nodes of a U-Net graph (names matching
 * {@link CROSS_ATTENTION_SOFTMAX_PATTERN}), in graph order. Throws, naming `file`, when there is none.
 */
export function findCrossAttentionSoftmax(model: ModelProto, file: string): CrossAttentionSoftmax[] {
  const nodes = model.graph?.node ?? [];
  const found: CrossAttentionSoftmax[] = [];
  const seen = new Map<string, number>();
  for (const n of nodes) {
    if (n.opType !== 'Softmax' || (n.domain ?? '') !== '' || !CROSS_ATTENTION_SOFTMAX_PATTERN.test(n.name ?? '')) continue;
    let layer = layerName(n.name ?? '');
    const k = seen.get(layer) ?? 0;
    seen.set(layer, k + 1);
    if (k > 0) layer = `${layer}#${k}`;
    found.push({ node: n.name ?? '', layer, logits: n.input![0]!, probs: n.output![0]! });
  }
  if (found.length === 0) {
    const softmax = nodes.filter((n) => n.opType === 'Softmax').length;
    throw new Error(
      `${file}: no cross-attention Softmax node (a Softmax named like '/down_blocks.0/attentions.0/transformer_blocks.0/attn2/Softmax'; ` +
        `${softmax} Softmax node${softmax === 1 ? '' : 's'} in all) — this does not look like a diffusers UNet2DConditionModel export ` +
        '(or its node names were stripped), so its cross-attention cannot be exposed',
    );
  }
  return found;
}

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const FLOAT_TYPES = new Set<number>([onnx.TensorProto.DataType.FLOAT, onnx.TensorProto.DataType.FLOAT16, onnx.TensorProto.DataType.DOUBLE, onnx.TensorProto.DataType.BFLOAT16]);

/**
 * The element type of `value` (an ONNX TensorProto.DataType), found by following producers back
 * (through their data input) to a typed value: an initializer, a graph input / value_info, a
 * `Cast` or a `Constant`. `null` when lost.
 */
function elemTypeOf(model: ModelProto, value: string): number | null {
  const g = model.graph!;
  const typed = new Map<string, number>();
  for (const t of g.initializer ?? []) if (t.name) typed.set(t.name, t.dataType ?? 0);
  for (const v of [...(g.input ?? []), ...(g.valueInfo ?? []), ...(g.output ?? [])]) {
    const e = v.type?.tensorType?.elemType;
    if (v.name && e) typed.set(v.name, e);
  }
  const producer = new Map<string, NodeProto>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) producer.set(o, n as NodeProto);
  let cur = value;
  for (let step = 0; step < 100_000; step++) {
    const t = typed.get(cur);
    if (t !== undefined && FLOAT_TYPES.has(t)) return t;
    const n = producer.get(cur);
    if (n === undefined) return t ?? null;
    if (n.opType === 'Cast') return Number((n.attribute ?? []).find((a) => a.name === 'to')?.i ?? 0) || null;
    if (n.opType === 'Constant') return (n.attribute ?? []).find((a) => a.name === 'value')?.t?.dataType ?? null;
    const data = (n.input ?? []).filter((x, i) => x !== '' && !(n.opType === 'Where' && i === 0));
    const known = data.map((x) => typed.get(x)).find((x) => x !== undefined && FLOAT_TYPES.has(x));
    if (known !== undefined) return known;
    const next = data.find((x) => producer.has(x));
    if (next === undefined) return null;
    cur = next;
  }
  return null;
}

function i64(name: string, values: readonly number[]): TensorProto {
  return onnx.TensorProto.create({ name, dims: [values.length], dataType: onnx.TensorProto.DataType.INT64, rawData: new Uint8Array(BigInt64Array.from(values.map((v) => BigInt(v))).buffer) });
}

/** What {@link exposeCrossAttention} did to a model. */
export interface ExposedCrossAttention {
  /** The modified model (also serialized by {@link writeExposedUnet}). */
  readonly model: ModelProto;
  /** The cross-attention layers, in graph order (outputs `cross_attention_probs/<layer>`). */
  readonly layers: readonly CrossAttentionSoftmax[];
  /** Element type of the logits (1 = float32, 10 = float16). */
  readonly logitType: number;
}

/**
 * Graph surgery on a diffusers U-Net `model` (modified in place; see the module note): before every
 * cross-attention Softmax ({@link findCrossAttentionSoftmax}) the logits become
 * `scale[b, i] · logits + bias[b, i]` with new inputs `cross_attention_scale` /
 * `cross_attention_bias` float32 `[B, L]`, and each layer's head-averaged probabilities become the
 * output `cross_attention_probs/<layer>` float32 `[B, q, L]`. Works for `[B·heads, q, L]` and
 * `[B, heads, q, L]` logits alike. `file` names the model in errors. Needs the input
 * `encoder_hidden_states` (the batch size B is read from it).
 */
export function exposeCrossAttention(model: ModelProto, file: string): ExposedCrossAttention {
  const g = model.graph;
  if (!g) throw new Error(`${file}: not an ONNX model (no graph)`);
  const layers = findCrossAttentionSoftmax(model, file);
  if (!(g.input ?? []).some((i) => i.name === 'encoder_hidden_states')) throw new Error(`${file}: no input 'encoder_hidden_states'; cross-attention needs the prompt tokens`);
  const taken = new Set<string>([...(g.node ?? []).flatMap((n) => [...(n.output ?? []), n.name ?? '']), ...(g.input ?? []).map((i) => i.name ?? ''), ...(g.initializer ?? []).map((t) => t.name ?? '')]);
  for (const n of [CROSS_ATTENTION_SCALE, CROSS_ATTENTION_BIAS, ...layers.map((l) => CROSS_ATTENTION_PROBS_PREFIX + l.layer)]) {
    if (taken.has(n)) throw new Error(`${file}: already has a value named '${n}' (cross-attention exposed twice?)`);
  }
  const fresh = (hint: string): string => {
    let k = 0;
    while (taken.has(`memscope_ca/${hint}_${k}`)) k++;
    const n = `memscope_ca/${hint}_${k}`;
    taken.add(n);
    return n;
  };
  const opset = Number((model.opsetImport ?? []).find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version ?? 0);
  if (opset < 13) throw new Error(`${file}: default-domain opset ${opset}; exposing cross-attention needs opset ≥ 13 (Softmax over the last axis)`);
  const logitType = elemTypeOf(model, layers[0]!.logits) ?? FLOAT;
  let added: NodeProto[] = [];
  const node = (opType: string, input: string[], attrs: Record<string, number | number[]> = {}, output?: string): string => {
    const out = output ?? fresh(opType);
    const attribute = Object.entries(attrs).map(([name, v]) =>
      Array.isArray(v) ? onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: v }) : onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i: v }),
    );
    added.push(onnx.NodeProto.create({ opType, name: fresh(`${opType}_node`), input, output: [out], attribute }));
    return out;
  };
  const inits: TensorProto[] = [];
  const constant = (hint: string, v: readonly number[]): string => {
    const n = fresh(hint);
    inits.push(i64(n, v));
    return n;
  };
  // shared: B, adjusted scale/bias [B, 1, L] in the logits' type, constants
  const c0 = constant('c0', [0]);
  const c1 = constant('c1', [1]);
  const cm1 = constant('cm1', [-1]);
  const cm2 = constant('cm2', [-2]);
  const cBig = constant('cbig', [2 ** 53 - 1]);
  const B = node('Slice', [node('Shape', ['encoder_hidden_states']), c0, c1]);
  const shapeB1L = constant('shape_b1l', [0, 1, -1]);
  const asLogit = (x: string): string => (logitType === FLOAT ? x : node('Cast', [x], { to: logitType }));
  const scale3 = node('Reshape', [asLogit(CROSS_ATTENTION_SCALE), shapeB1L]);
  const bias3 = node('Reshape', [asLogit(CROSS_ATTENTION_BIAS), shapeB1L]);
  const shared = added;
  const before = new Map<string, NodeProto[]>();
  const after = new Map<string, NodeProto[]>();
  const outputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  for (const l of layers) {
    added = [];
    const xs = node('Shape', [l.logits]);
    const Lsh = node('Slice', [xs, cm1, cBig]);
    const x3 = node('Reshape', [l.logits, node('Concat', [B, cm1, Lsh], { axis: 0 })]);
    const adj = node('Reshape', [node('Add', [node('Mul', [x3, scale3]), bias3]), xs]);
    before.set(l.probs, added);
    added = [];
    const qsh = node('Slice', [node('Shape', [l.probs]), cm2, cm1]);
    const y4 = node('Reshape', [l.probs, node('Concat', [B, cm1, qsh, Lsh], { axis: 0 })]);
    const name = CROSS_ATTENTION_PROBS_PREFIX + l.layer;
    const mean = opset >= 18 ? node('ReduceMean', [y4, constant('axis1', [1])], { keepdims: 0 }, logitType === FLOAT ? name : undefined) : node('ReduceMean', [y4], { axes: [1], keepdims: 0 }, logitType === FLOAT ? name : undefined);
    if (logitType !== FLOAT) node('Cast', [mean], { to: FLOAT }, name);
    after.set(l.probs, added);
    outputs.push(onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimParam: `q_${l.layer}` }, { dimParam: 'tokens' }] } } } }));
    // rewire the softmax to the adjusted logits
    const sm = (g.node ?? []).find((n) => n.opType === 'Softmax' && n.output?.[0] === l.probs)!;
    sm.input = [adj, ...(sm.input ?? []).slice(1)];
  }
  const out: NodeProto[] = [...shared];
  for (const n of g.node ?? []) {
    const key = n.opType === 'Softmax' ? (n.output?.[0] ?? '') : '';
    out.push(...(before.get(key) ?? []));
    out.push(n as NodeProto);
    out.push(...(after.get(key) ?? []));
  }
  g.node = out;
  g.initializer = [...(g.initializer ?? []), ...inits];
  const vi = (name: string): InstanceType<typeof onnx.ValueInfoProto> =>
    onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimParam: 'tokens' }] } } } });
  g.input = [...(g.input ?? []), vi(CROSS_ATTENTION_SCALE), vi(CROSS_ATTENTION_BIAS)];
  g.output = [...(g.output ?? []), ...outputs];
  return { model, layers, logitType };
}

/** A U-Net with exposed cross-attention written to a temp folder (see {@link writeExposedUnet}). */
export interface ExposedUnetFile extends ExposedCrossAttention {
  /** The modified model's path (inside a fresh folder under `os.tmpdir()`). */
  readonly path: string;
  /** The external data files the model names (relative locations). */
  readonly externalData: readonly string[];
  /**
   * Those that could not be hard-linked beside the temp model (another file system): give them to
   * onnxruntime in memory ({@link ExposedUnetFile.inMemoryData}); empty when every file is linked.
   */
  readonly unlinked: readonly string[];
  /** The `externalData` session option for the unlinked files (reads them; `[]` when none). */
  inMemoryData(): { path: string; data: Uint8Array }[];
  /** Remove the temp folder (the export is untouched). */
  dispose(): void;
}

/**
 * Read the U-Net at `modelPath`, expose its cross-attention ({@link exposeCrossAttention}) and write
 * the result as `model.onnx` into a fresh folder under `os.tmpdir()`, beside links to
 * every external data file the model names (hard links, resolved relative to `modelPath` as
 * onnxruntime does; see `unlinked` for files on another file system). Nothing is written next to `modelPath`; `dispose()` removes the folder.
 */
export function writeExposedUnet(modelPath: string): ExposedUnetFile {
  const model = onnx.ModelProto.decode(readFileSync(modelPath));
  const exposed = exposeCrossAttention(model, modelPath);
  const locations = new Set<string>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    const loc = (t.externalData ?? []).find((e) => e.key === 'location')?.value;
    if (typeof loc === 'string') locations.add(loc);
  }
  const dir = mkdtempSync(join(tmpdir(), 'memscope-unet-attn-'));
  try {
    const unlinked: string[] = [];
    for (const loc of locations) {
      const rel = normalize(loc);
      if (isAbsolute(rel) || rel.startsWith('..')) throw new Error(`${modelPath}: external data location '${loc}' leaves the model's folder`);
      const link = join(dir, rel);
      mkdirSync(dirname(link), { recursive: true });
      // a hard link (no copy): onnxruntime refuses symbolic links that resolve outside the model's folder
      try {
        linkSync(resolve(dirname(modelPath), rel), link);
      } catch {
        unlinked.push(loc);
      }
    }
    const path = join(dir, 'model.onnx');
    writeFileSync(path, onnx.ModelProto.encode(model).finish());
    return {
      ...exposed,
      path,
      externalData: [...locations],
      unlinked,
      inMemoryData: () => unlinked.map((loc) => ({ path: loc, data: readFileSync(resolve(dirname(modelPath), normalize(loc))) })),
      dispose: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

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

function timestepFeed(ts: TimestepLayout, t: number, B: number): TypedFeed {
  const v = ts.type === 'int64' || ts.type === 'int32' ? Math.round(t) : t;
  if (ts.layout === 'scalar') return { type: ts.type, dims: [], data: [v] };
  if (ts.layout === 'one') return { type: ts.type, dims: [1], data: [v] };
  return { type: ts.type, dims: [B], data: new Array<number>(B).fill(v) };
}

/**
 * A Stable Diffusion export's U-Net with its cross-attention exposed and adjustable per token (a
 * {@link ScaledAttentionUnet}, for Ren et al. 2024): the surgery of {@link writeExposedUnet} on
 * `exp.unet.path`, opened as a second session on the export's execution provider. Tokens are the
 * export's CLIP tokens (`<|startoftext|>`, the prompt's BPE tokens, `<|endoftext|>`, then the pad
 * token); the timestep is fed in the U-Net's declared dtype and layout (as `OnnxDenoiser`); ε̂ is
 * converted from the scheduler's `prediction_type` (v-prediction → ε). `dispose` releases the
 * session and removes the temp folder.
 */
export async function sdScaledAttentionUnet(exp: SdExport, opts: SdAttentionOptions): Promise<ScaledAttentionUnet> {
  const K = opts.conditions.dims[0]!;
  const L = opts.conditions.dims[1]!;
  const per = opts.conditions.data.length / Math.max(1, K);
  if (opts.texts.length !== K) throw new Error(`sdScaledAttentionUnet: ${opts.texts.length} texts for ${K} condition rows`);
  if (opts.uncond.data.length !== per) throw new Error(`sdScaledAttentionUnet: uncond has ${opts.uncond.data.length} values, one condition row ${per}`);
  const name = clipIdToToken(exp.tokenizer.tokenizerJson);
  const toks = (text: string): string[] => Array.from(exp.tokenizer.encode(text).ids, name);
  const names = [...opts.texts.map(toks), toks(opts.uncondText ?? '')];
  if (names[0]!.length !== L) throw new Error(`sdScaledAttentionUnet: the tokenizer gives ${names[0]!.length} ids per prompt but the embeddings have ${L} tokens`);
  const file = writeExposedUnet(exp.unet.path);
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
  const unet: ScaledAttentionUnet & { runChunk: ChunkRunner } = {
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

/** True when the U-Net at `modelPath` has cross-attention Softmax nodes that {@link writeExposedUnet} can expose (reads only the graph file). */
export function hasCrossAttentionSoftmax(modelPath: string): boolean {
  const model = onnx.ModelProto.decode(readFileSync(modelPath));
  return (model.graph?.node ?? []).some((n) => n.opType === 'Softmax' && (n.domain ?? '') === '' && CROSS_ATTENTION_SOFTMAX_PATTERN.test(n.name ?? ''));
}
