/**
 * Cross-attention graph surgery (the only place besides the rest of `src/graph/` that edits ONNX
 * protobufs): the input / output names memscope's exposed U-Nets share, the per-token logit scale
 * spliced into a memscope U-Net ({@link addLogitScale}), and the cross-attention of a Stable
 * Diffusion export's U-Net exposed by surgery on its ONNX file — what Ren et al. 2024's
 * attention-entropy detection and start-token / padding-mask mitigation need (see
 * `mitigate/ren-attention.ts` and the denoiser wrapper in `sd/cross-attention.ts`), on the user's
 * own `unet/model.onnx`.
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

import { readFileSync } from 'node:fs';
import p from 'onnx-proto';
import { externalLocations, writeBesideWeights } from './linked-model.ts';

const { onnx } = p;
type ModelProto = InstanceType<typeof onnx.ModelProto>;
type NodeProto = InstanceType<typeof onnx.NodeProto>;
type TensorProto = InstanceType<typeof onnx.TensorProto>;

/** Input name of the per-token cross-attention logit bias `[B, contextLength]` in graphs built with `exposeCrossAttention`. */
export const CROSS_ATTENTION_BIAS = 'cross_attention_bias';
/** Prefix of the outputs `cross_attention_probs/<layer>` `[B, qLen, contextLength]` (mean over heads). */
export const CROSS_ATTENTION_PROBS_PREFIX = 'cross_attention_probs/';

/** Input name of the per-token cross-attention logit scale `[B, contextLength]` added by {@link addLogitScale} (Ren et al.'s `buildScaledAttentionUnet`, `src/mitigate/ren-attention.ts`). */
export const CROSS_ATTENTION_SCALE = 'cross_attention_scale';

/**
 * Splice the per-token logit scale input {@link CROSS_ATTENTION_SCALE} float32 `[B, contextLength]`
 * into a U-Net built by `buildDiffusersUnet(…, { exposeCrossAttention: true })` (modified in place
 * and returned): every cross-attention logit becomes `scale[b, i] · (q·k_i/√d) + bias[b, i]`, the
 * scale multiplied in before each bias `Add`. Scale 1 and bias 0 give the plain U-Net.
 */
export function addLogitScale(m: ModelProto, contextLength: number): ModelProto {
  const g = m.graph!;
  const nodes = [...(g.node ?? [])];
  const ri = nodes.findIndex((n) => n.opType === 'Reshape' && n.input?.[0] === CROSS_ATTENTION_BIAS);
  if (ri < 0) throw new Error(`buildScaledAttentionUnet: no Reshape of '${CROSS_ATTENTION_BIAS}' in the exposed U-Net`);
  const biasR = nodes[ri]!.output![0]!;
  const shapeConst = nodes[ri]!.input![1]!;
  const taken = new Set<string>(nodes.flatMap((n) => [...(n.output ?? []), n.name ?? '']));
  const fresh = (hint: string): string => {
    let k = 0;
    while (taken.has(`${hint}_${k}`)) k++;
    taken.add(`${hint}_${k}`);
    return `${hint}_${k}`;
  };
  const scaleR = fresh('ren/scale_reshaped');
  const out: NodeProto[] = [];
  let adds = 0;
  nodes.forEach((n, i) => {
    if (n.opType === 'Add' && (n.input ?? []).includes(biasR)) {
      const slot = n.input![0] === biasR ? 1 : 0;
      const scaled = fresh('ren/scaled_logits');
      out.push(onnx.NodeProto.create({ opType: 'Mul', name: fresh('ren/Mul'), input: [n.input![slot]!, scaleR], output: [scaled] }));
      const inputs = [...n.input!];
      inputs[slot] = scaled;
      n.input = inputs;
      adds++;
    }
    out.push(n as NodeProto);
    if (i === ri) out.push(onnx.NodeProto.create({ opType: 'Reshape', name: fresh('ren/Reshape'), input: [CROSS_ATTENTION_SCALE, shapeConst], output: [scaleR] }));
  });
  const layers = (g.output ?? []).filter((o) => (o.name ?? '').startsWith(CROSS_ATTENTION_PROBS_PREFIX)).length;
  if (adds !== layers || adds === 0) throw new Error(`buildScaledAttentionUnet: found ${adds} biased logit Adds for ${layers} cross-attention layers`);
  g.node = out;
  g.input = [
    ...(g.input ?? []),
    onnx.ValueInfoProto.create({
      name: CROSS_ATTENTION_SCALE,
      type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'B' }, { dimValue: contextLength }] } } },
    }),
  ];
  return m;
}

/** {@link addLogitScale} on encoded ONNX bytes (e.g. a trained model's U-Net built with `exposeCrossAttention`): the scaled graph's bytes. */
export function addLogitScaleToBytes(bytes: Uint8Array, contextLength: number): Uint8Array {
  return encodeModel(addLogitScale(onnx.ModelProto.decode(bytes), contextLength));
}

/** Encode a model to ONNX bytes. */
export function encodeModel(m: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(m).finish();
}

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
export function writeExposedUnet(modelPath: string, sources: Readonly<Record<string, string>> = {}): ExposedUnetFile {
  const model = onnx.ModelProto.decode(readFileSync(modelPath));
  const exposed = exposeCrossAttention(model, modelPath);
  const linked = writeBesideWeights(modelPath, externalLocations(model), { 'model.onnx': onnx.ModelProto.encode(model).finish() }, 'memscope-unet-attn-', sources);
  return { ...exposed, path: linked.paths['model.onnx']!, externalData: linked.externalData, unlinked: linked.unlinked, inMemoryData: () => linked.inMemoryData(), dispose: () => linked.dispose() };
}

/** True when the U-Net at `modelPath` has cross-attention Softmax nodes that {@link writeExposedUnet} can expose (reads only the graph file). */
export function hasCrossAttentionSoftmax(modelPath: string): boolean {
  const model = onnx.ModelProto.decode(readFileSync(modelPath));
  return (model.graph?.node ?? []).some((n) => n.opType === 'Softmax' && (n.domain ?? '') === '' && CROSS_ATTENTION_SOFTMAX_PATTERN.test(n.name ?? ''));
}
