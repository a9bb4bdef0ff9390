/**
 * The network of memscope's copy-detection descriptor (the training recipe is in
 * `src/train/descriptor.ts`): the architecture, the embedding graph, the inference graph with the
 * weights baked in, and the reader of a descriptor folder (`descriptor.json` +
 * `weights.safetensors`, shipped in `models/descriptor/`). Loaded as a `Descriptor` by
 * `learnedDescriptor` (`src/metrics/descriptor.ts`).
 */
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { GraphBuilder } from '../graph/builder.ts';
import type { ParamFn } from './params.ts';
import { conv2d, linear, convOut } from './layers.ts';
import { paramFnFor } from './init.ts';
import { readSafetensors } from '../io/safetensors.ts';
import { packageRoot } from '../data/paths.ts';

/** The `format` tag of `descriptor.json` and of the safetensors metadata. */
export const DESCRIPTOR_FORMAT = 'memscope-descriptor';

/** Side of the images the network takes (`[B, 1, 28, 28]`). */
export const DESCRIPTOR_SIZE = 28;

/** Where the shipped descriptor lives: `<package root>/models/descriptor`. */
export function defaultDescriptorDir(): string {
  return join(packageRoot(), 'models', 'descriptor');
}

// ---------------------------------------------------------------------------------------------
// architecture

/** One 3×3 convolution of the trunk (padding 1, ReLU after it). */
export interface DescriptorConv {
  readonly cout: number;
  readonly stride: number;
}

/** The network: a conv trunk, flatten, one linear layer to `dim`, L2 normalisation. */
export interface DescriptorArchitecture {
  /** Trunk convolutions in order (input: 1 channel, 28×28). */
  readonly convs: readonly DescriptorConv[];
  /** Embedding dimension D. */
  readonly dim: number;
}

/** Default architecture: convs 16 (s1), 32 (s2), 64 (s2), 64 (s2) → 64×4×4 → linear → D = 64 (≈126k parameters, 0.5 MB). */
export const DEFAULT_DESCRIPTOR_ARCHITECTURE: DescriptorArchitecture = Object.freeze({
  convs: Object.freeze([
    { cout: 16, stride: 1 },
    { cout: 32, stride: 2 },
    { cout: 64, stride: 2 },
    { cout: 64, stride: 2 },
  ]),
  dim: 64,
});

/** ε added to ‖z‖² before the square root of the in-graph L2 normalisation. */
export const L2_EPS = 1e-12;

/**
 * The embedding graph: `[B, 1, 28, 28]` → `[B, dim]` rows of unit L2 norm. Each conv is 3×3 with
 * padding 1 and a ReLU (`conv{i}`), then Flatten, `head` (linear to `dim`) and
 * `z / √(Σ z² + 1e-12)`. Returns the normalised output's name.
 */
export function buildDescriptorNet(b: GraphBuilder, param: ParamFn, x: string, arch: DescriptorArchitecture = DEFAULT_DESCRIPTOR_ARCHITECTURE): string {
  let h = x;
  let cin = 1;
  let side = DESCRIPTOR_SIZE;
  arch.convs.forEach((c, i) => {
    h = b.op('Relu', [conv2d(b, param, `conv${i}`, h, cin, c.cout, { stride: c.stride })]);
    cin = c.cout;
    side = convOut(side, 3, c.stride, 1);
  });
  const flat = b.op('Flatten', [h], { axis: 1 });
  const zr = linear(b, param, 'head', flat, cin * side * side, arch.dim);
  const norm = b.op('Sqrt', [b.op('Add', [b.op('ReduceSum', [b.op('Mul', [zr, zr]), b.constI64([1])], { keepdims: 1 }), b.constF32(L2_EPS)])]);
  return b.op('Div', [zr, norm]);
}

/**
 * The inference graph with weights baked in: input `x` `[B, 1, 28, 28]`, clipped to [−1, 1],
 * then {@link buildDescriptorNet}; output `embedding` `[B, dim]` (unit rows).
 */
export function descriptorInferenceGraph(weights: ReadonlyMap<string, Float32Array>, arch: DescriptorArchitecture): Uint8Array {
  const b = new GraphBuilder({ name: 'descriptor' });
  b.input('x', 'float32', ['B', 1, DESCRIPTOR_SIZE, DESCRIPTOR_SIZE]);
  const { param } = paramFnFor(b, 'initializer', weights);
  const xc = b.op('Clip', ['x', b.constF32(-1), b.constF32(1)]);
  b.output(buildDescriptorNet(b, param, xc, arch), 'float32', ['B', arch.dim], 'embedding');
  return b.toBytes();
}

/** Schema of `descriptor.json`. */
export const descriptorModelSchema = z.object({
  format: z.literal(DESCRIPTOR_FORMAT),
  version: z.literal(1),
  architecture: z.object({
    convs: z.array(z.object({ cout: z.number().int().positive(), stride: z.number().int().positive() })).min(1),
    dim: z.number().int().positive(),
    parameters: z.number().int().nonnegative().optional(),
    description: z.string().optional(),
  }),
  preprocessing: z.string(),
  training: z.record(z.string(), z.unknown()).optional(),
  metrics: z.record(z.string(), z.unknown()).optional(),
  timing: z.record(z.string(), z.unknown()).optional(),
});

/** The parsed `descriptor.json`. */
export type DescriptorModelFile = z.infer<typeof descriptorModelSchema>;

/** The preprocessing text of the learned descriptor (what its `DescriptorInfo.preprocessing` says). */
export const LEARNED_PREPROCESSING =
  'values clipped to [-1, 1]; 3-channel input converted to grey with ITU-R 601 luma weights (0.299, 0.587, 0.114), 1-channel used as is; ' +
  'spatial size other than 28x28 resized to 28x28 with PIL-style bilinear interpolation (half-pixel centres, triangle filter widened by the scale factor when downsampling); ' +
  'no further normalisation (the network was trained on Fashion-MNIST pixels x/127.5 - 1); output L2-normalised in the graph';

/** Read `dir/descriptor.json` and `dir/weights.safetensors` (validated). */
export async function readDescriptorModel(dir: string): Promise<{ config: DescriptorModelFile; weights: Map<string, Float32Array> }> {
  const jsonPath = join(dir, 'descriptor.json');
  let raw: string;
  try {
    raw = await readFile(jsonPath, 'utf8');
  } catch (e) {
    throw new Error(`learned descriptor: cannot read ${jsonPath} (dir '${dir}'): ${(e as Error).message}`);
  }
  const parsed = descriptorModelSchema.safeParse(JSON.parse(raw));
  if (!parsed.success) throw new Error(`learned descriptor: ${jsonPath} is not a ${DESCRIPTOR_FORMAT} file: ${parsed.error.message}`);
  const st = await readSafetensors(join(dir, 'weights.safetensors'));
  return { config: parsed.data, weights: new Map([...st.tensors].map(([k, t]) => [k, t.data])) };
}
