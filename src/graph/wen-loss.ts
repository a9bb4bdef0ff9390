/**
 * Wen et al. 2024's objective around ANY U-Net ONNX file with the diffusers signature (`sample`,
 * `timestep`, `encoder_hidden_states` → one prediction): a Stable Diffusion export's or a
 * diffusers folder's U-Net (issue 19 §2). Graph surgery, not a rebuild: the U-Net's
 * `encoder_hidden_states` input becomes a value computed from a new input, and its output is
 * compared with the unconditional prediction fed in —
 *
 *     sample                = x                            (the seeds' x_T, [N, C, H, W])
 *     encoder_hidden_states = e ×N                         (`wen/embedding` [1, L, E])
 *     wen/ss                = Σ (out − `wen/out_u`)²       (the squared joint norm, a scalar)
 *
 * with `timestep` left as the U-Net declares it. ε_θ(x_T, t, e_∅) does not depend on e, so it comes
 * from a plain forward call of the U-Net (`wen/out_u`) and only the N conditional rows run
 * through the graph and its backward pass — half the memory and work of differentiating the
 * batched cond + uncond call. The squared norm (not the norm) is the output so
 * that seeds can be split across calls (memory at 512²): the caller sums the chunks' `ss` and
 * their gradients and takes l = √Σss, ∂l/∂e = Σ ∂ss/∂e / (2l). The gradient model comes from
 * memscope's differentiator (`autodiff.ts`). Both models are written beside hard links to the
 * U-Net's weights (`linked-model.ts`): no copy of a multi-GB file.
 *
 * The difference is taken on the U-Net's raw output, as Wen et al.'s code takes
 * `noise_pred_text − noise_pred_uncond`: for a v-prediction model that is the v difference,
 * (ε_c − ε_u)/α_t — the same direction, scaled by 1/α_t at the fixed timestep.
 */
import { readFileSync } from 'node:fs';
import p from 'onnx-proto';
import { gradientGraph } from './autodiff.ts';
import { externalLocations, writeBesideWeights, type LinkedModels } from './linked-model.ts';

const { onnx } = p;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

/** Shapes of the Wen loss graph around a U-Net. */
export interface WenLossSpec {
  /** Seeds (x_T rows) per call: the U-Net sees N conditional rows. */
  readonly seeds: number;
  /** `[C, H, W]` of one latent. */
  readonly latent: readonly [number, number, number];
  /** `[L, E]` of one prompt embedding. */
  readonly context: readonly [number, number];
  /** The U-Net's `timestep` shape for N rows (`[]`, `[1]` or `[N]`). */
  readonly timestepDims: readonly number[];
}

/** The forward and gradient models of {@link writeWenLossModels}, on disk beside the U-Net's weights. */
export interface WenLossModels {
  /** Forward model: inputs `sample`, `timestep`, `wen/embedding`, `wen/out_u`; output `wen/ss` `[]`. */
  readonly forwardPath: string;
  /** Gradient model: the same inputs; outputs `wen/ss` and `grad/wen/embedding` `[1, L, E]`. */
  readonly gradientPath: string;
  readonly files: LinkedModels;
  /** Input shapes the models were built for. */
  readonly inputShapes: Readonly<Record<string, readonly number[]>>;
}

function vi(name: string, elemType: number, dims: readonly number[]): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
}

function i64(name: string, values: readonly number[]): InstanceType<typeof onnx.TensorProto> {
  const data = BigInt64Array.from(values.map((v) => BigInt(v)));
  return onnx.TensorProto.create({ name, dims: [values.length], dataType: INT64, rawData: new Uint8Array(data.buffer) });
}

/**
 * The Wen loss model around the U-Net at `unetPath` (see the module note), as bytes; throws naming
 * the file when the U-Net lacks the diffusers inputs or has a non-float32 `sample`.
 */
export function wenLossModel(unetPath: string, spec: WenLossSpec): { bytes: Uint8Array; locations: string[] } {
  const model = onnx.ModelProto.decode(readFileSync(unetPath));
  const g = model.graph;
  if (!g) throw new Error(`${unetPath}: no graph`);
  const inputs = g.input ?? [];
  for (const need of ['sample', 'timestep', 'encoder_hidden_states']) {
    if (!inputs.some((i) => i.name === need)) throw new Error(`${unetPath}: Wen et al.'s loss needs the U-Net input '${need}' (has ${inputs.map((i) => i.name).join(', ')})`);
  }
  for (const name of ['sample', 'encoder_hidden_states']) {
    const t = inputs.find((i) => i.name === name)!.type?.tensorType?.elemType;
    if (t !== FLOAT) throw new Error(`${unetPath}: input '${name}' is not float32 (element type ${t}); Wen et al.'s loss is built on float32 U-Nets only`);
  }
  const outs = g.output ?? [];
  if (outs.length < 1) throw new Error(`${unetPath}: the U-Net has no output`);
  const out = outs[0]!.name!;
  const N = spec.seeds;
  const [C, H, W] = spec.latent;
  const [L, E] = spec.context;
  const tsType = inputs.find((i) => i.name === 'timestep')!.type?.tensorType?.elemType ?? FLOAT;
  g.input = [vi('sample', FLOAT, [N, C, H, W]), vi('timestep', tsType, spec.timestepDims), vi('wen/embedding', FLOAT, [1, L, E]), vi('wen/out_u', FLOAT, [N, C, H, W])];
  g.initializer = [...(g.initializer ?? []), i64('wen/rows', [N, L, E])];
  const node = (opType: string, input: string[], output: string[], attribute: Record<string, unknown>[] = []): InstanceType<typeof onnx.NodeProto> =>
    onnx.NodeProto.create({ opType, input, output, name: `wen/${output[0]}`, attribute });
  const pre = [node('Expand', ['wen/embedding', 'wen/rows'], ['encoder_hidden_states'])];
  const post = [
    node('Sub', [out, 'wen/out_u'], ['wen/d']),
    node('Mul', ['wen/d', 'wen/d'], ['wen/d2']),
    node('ReduceSum', ['wen/d2'], ['wen/ss'], [{ name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }]),
  ];
  g.node = [...pre, ...(g.node ?? []), ...post];
  g.output = [vi('wen/ss', FLOAT, [])];
  return { bytes: onnx.ModelProto.encode(model).finish(), locations: externalLocations(model) };
}

/**
 * Write the forward Wen loss model around `unetPath` and its gradient model w.r.t. `wen/embedding`
 * into a temp folder beside hard links to the U-Net's weights (`sources`: where a weight file
 * named by the model really is, when not beside it). `dispose` the files when done.
 */
export function writeWenLossModels(unetPath: string, spec: WenLossSpec, sources: Readonly<Record<string, string>> = {}): WenLossModels {
  const { bytes, locations } = wenLossModel(unetPath, spec);
  const [C, H, W] = spec.latent;
  const [L, E] = spec.context;
  const inputShapes = { sample: [spec.seeds, C, H, W], timestep: [...spec.timestepDims], 'wen/embedding': [1, L, E], 'wen/out_u': [spec.seeds, C, H, W] };
  const grad = gradientGraph(bytes, { loss: 'wen/ss', wrt: ['wen/embedding'], inputShapes });
  const files = writeBesideWeights(unetPath, locations, { 'wen_loss.onnx': bytes, 'wen_grad.onnx': grad }, 'memscope-wen-', sources);
  return { forwardPath: files.paths['wen_loss.onnx']!, gradientPath: files.paths['wen_grad.onnx']!, files, inputShapes };
}
