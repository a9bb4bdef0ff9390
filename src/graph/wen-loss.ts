/**
 * Wen et al. 2024's objective around ANY U-Net ONNX file with the diffusers signature (`sample`,
 * `timestep`, `encoder_hidden_states` → one prediction): a Stable Diffusion export's or a
 * diffusers folder's U-Net (issue 19 §2). Graph surgery, not a rebuild: the U-Net's `sample` and
 * `encoder_hidden_states` inputs become values computed from new inputs —
 *
 *     sample                = [x; x]                       (x = `wen/x` [N, C, H, W], the seeds' x_T)
 *     encoder_hidden_states = [e_∅ ×N; e ×N]                (`wen/uncond`, `wen/embedding` [1, L, E])
 *     wen/ss                = Σ (out[N:2N] − out[0:N])²     (the squared joint norm, a scalar)
 *
 * with `timestep` left as the U-Net declares it. The squared norm (not the norm) is the output so
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
  /** Seeds (x_T rows) per call; the U-Net sees 2N rows. */
  readonly seeds: number;
  /** `[C, H, W]` of one latent. */
  readonly latent: readonly [number, number, number];
  /** `[L, E]` of one prompt embedding. */
  readonly context: readonly [number, number];
  /** The U-Net's `timestep` shape for 2N rows (`[]`, `[1]` or `[2N]`). */
  readonly timestepDims: readonly number[];
}

/** The forward and gradient models of {@link writeWenLossModels}, on disk beside the U-Net's weights. */
export interface WenLossModels {
  /** Forward model: inputs `wen/x`, `wen/embedding`, `wen/uncond`, `timestep`; output `wen/ss` `[]`. */
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
  g.input = [vi('wen/x', FLOAT, [N, C, H, W]), vi('wen/embedding', FLOAT, [1, L, E]), vi('wen/uncond', FLOAT, [1, L, E]), vi('timestep', tsType, spec.timestepDims)];
  g.initializer = [...(g.initializer ?? []), i64('wen/rows', [N, L, E]), i64('wen/0', [0]), i64('wen/N', [N]), i64('wen/2N', [2 * N])];
  const node = (opType: string, input: string[], output: string[], attribute: Record<string, unknown>[] = []): InstanceType<typeof onnx.NodeProto> =>
    onnx.NodeProto.create({ opType, input, output, name: `wen/${output[0]}`, attribute });
  const axis0 = [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }];
  const pre = [
    node('Concat', ['wen/x', 'wen/x'], ['sample'], axis0),
    node('Expand', ['wen/uncond', 'wen/rows'], ['wen/eu']),
    node('Expand', ['wen/embedding', 'wen/rows'], ['wen/ec']),
    node('Concat', ['wen/eu', 'wen/ec'], ['encoder_hidden_states'], axis0),
  ];
  const post = [
    node('Slice', [out, 'wen/0', 'wen/N', 'wen/0'], ['wen/out_u']),
    node('Slice', [out, 'wen/N', 'wen/2N', 'wen/0'], ['wen/out_c']),
    node('Sub', ['wen/out_c', 'wen/out_u'], ['wen/d']),
    node('Mul', ['wen/d', 'wen/d'], ['wen/d2']),
    node('ReduceSum', ['wen/d2'], ['wen/ss'], [{ name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }]),
  ];
  g.node = [...pre, ...(g.node ?? []), ...post];
  g.output = [vi('wen/ss', FLOAT, [])];
  return { bytes: onnx.ModelProto.encode(model).finish(), locations: externalLocations(model) };
}

/**
 * Write the forward Wen loss model around `unetPath` and its gradient model w.r.t. `wen/embedding`
 * into a temp folder beside hard links to the U-Net's weights. `dispose` the files when done.
 */
export function writeWenLossModels(unetPath: string, spec: WenLossSpec): WenLossModels {
  const { bytes, locations } = wenLossModel(unetPath, spec);
  const [C, H, W] = spec.latent;
  const [L, E] = spec.context;
  const inputShapes = { 'wen/x': [spec.seeds, C, H, W], 'wen/embedding': [1, L, E], 'wen/uncond': [1, L, E], timestep: [...spec.timestepDims] };
  const grad = gradientGraph(bytes, { loss: 'wen/ss', wrt: ['wen/embedding'], inputShapes });
  const files = writeBesideWeights(unetPath, locations, { 'wen_loss.onnx': bytes, 'wen_grad.onnx': grad }, 'memscope-wen-');
  return { forwardPath: files.paths['wen_loss.onnx']!, gradientPath: files.paths['wen_grad.onnx']!, files, inputShapes };
}
