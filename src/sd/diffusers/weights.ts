/**
 * A {@link ParamFn} that points memscope's graph parameters into safetensors files (issue 19 §1):
 * every requested parameter becomes an ONNX external-data initializer at the tensor's byte range
 * in the file — memscope never reads the weights into JS memory; onnxruntime reads each tensor
 * from the file when it opens the model. Layout differences are graph ops onnxruntime folds at
 * load time: float16 / bfloat16 tensors get a `Cast` to float32, linear weights (stored
 * `[out, in]`, requested `[in, out]`) a `Transpose`, and `[C, C]` linear projections requested as
 * 1×1 convs (`use_linear_projection`) or 1×1-conv weights requested as linears (old VAE
 * attention) are re-declared with the requested shape over the same bytes.
 *
 * Problems are collected, not thrown one by one: {@link checkWeights} lists every missing key,
 * unexpected key and shape mismatch of a component at once.
 */
import type { GraphBuilder } from '../../graph/builder.ts';
import type { ParamFn } from '../../models/params.ts';
import type { SafetensorsEntry, SafetensorsIndex } from '../../io/safetensors.ts';
import { BUFFER_KEYS } from './keys.ts';
import type { LoraDelta } from './lora.ts';

/** ONNX element-type codes of the safetensors float dtypes. */
const ONNX_TYPE: Readonly<Record<string, number>> = { F32: 1, F16: 10, BF16: 16 };

/** One tensor of a component's weights: its header entry and the file it lives in. */
interface Located {
  readonly entry: SafetensorsEntry;
  /** File name the graph's external data names (relative to the model file's folder). */
  readonly location: string;
  /** The file's path relative to the pipeline folder (errors). */
  readonly rel: string;
}

/** What {@link bindWeights} returns: the ParamFn and what it found while the graph was built. */
export interface WeightBinding {
  readonly param: ParamFn;
  /** The keys the graph used. */
  readonly used: ReadonlySet<string>;
  /** Keys the graph asked for that no file has (first candidate of each). */
  readonly missing: readonly string[];
  /** `key: the file has […], the config needs […]` (or an unsupported dtype). */
  readonly mismatched: readonly string[];
}

/** A component's weight files as {@link bindWeights} takes them. */
export interface WeightFile {
  readonly index: SafetensorsIndex;
  /** File name the graph's external data names. */
  readonly location: string;
  /** Path relative to the pipeline folder (errors). */
  readonly rel: string;
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

const fmt = (d: readonly number[]): string => `[${d.join(', ')}]`;

/**
 * Bind the weights of one component to a graph being built in `b`: `files` are its safetensors
 * headers, each with the file name the graph refers to and its folder-relative path; `keysOf`
 * maps a memscope parameter name to the candidate state-dict keys; `lora` adds each listed
 * adapter's `factor · B·A` to its base weight (`lora.ts`).
 */
export function bindWeights(b: GraphBuilder, files: readonly WeightFile[], keysOf: (name: string) => string[], lora: ReadonlyMap<string, readonly LoraDelta[]> = new Map()): WeightBinding {
  const all = new Map<string, Located>();
  for (const f of files) for (const [k, e] of f.index.entries) all.set(k, { entry: e, location: f.location, rel: f.rel });
  const used = new Set<string>();
  const missing: string[] = [];
  const mismatched: string[] = [];
  const param: ParamFn = (name, dims) => {
    const keys = keysOf(name);
    const key = keys.find((k) => all.has(k));
    const placeholder = (): string => b.input(b.fresh('unbound'), 'float32', dims);
    if (key === undefined) {
      missing.push(keys[0]!);
      return placeholder();
    }
    used.add(key);
    const { entry, location } = all.get(key)!;
    const type = ONNX_TYPE[entry.dtype];
    if (type === undefined) {
      mismatched.push(`${key}: dtype ${entry.dtype} (supported: F32, F16, BF16)`);
      return placeholder();
    }
    const have = entry.dims;
    const linear = dims.length === 2 && name.endsWith('.weight') && !name.endsWith('embedding.weight');
    let declared: readonly number[];
    let transpose = false;
    if (linear && (sameDims(have, [dims[1]!, dims[0]!]) || sameDims(have, [dims[1]!, dims[0]!, 1, 1]))) {
      declared = [dims[1]!, dims[0]!];
      transpose = true;
    } else if (dims.length === 4 && dims[2] === 1 && dims[3] === 1 && sameDims(have, [dims[0]!, dims[1]!])) {
      declared = dims; // a linear projection's [out, in] as a 1×1 conv's [out, in, 1, 1]: the same bytes
    } else if (sameDims(have, dims)) {
      declared = dims;
    } else {
      mismatched.push(`${key}: the file has ${fmt(have)}, the config needs ${fmt(linear ? [dims[1]!, dims[0]!] : dims)}`);
      return placeholder();
    }
    let v = b.externalInitializer(key, type, declared, { location, offset: entry.offset, length: entry.length });
    if (type !== 1) v = b.op('Cast', [v], { to: 1 });
    for (const [i, d] of (lora.get(key) ?? []).entries()) v = b.op('Add', [v, loraDelta(b, `${key}#lora${i}`, d, declared)]);
    if (transpose) v = b.op('Transpose', [v], { perm: [1, 0] });
    return v;
  };
  return { param, used, missing, mismatched };
}

/** `factor · B·A` of one adapter as graph ops on its two factors (external data in the adapter file), reshaped to `dims`. */
function loraDelta(b: GraphBuilder, name: string, d: LoraDelta, dims: readonly number[]): string {
  const factor = (e: LoraDelta['down'], suffix: string): string => {
    const v = b.externalInitializer(`${name}.${suffix}`, ONNX_TYPE[e.dtype]!, e.dims, { location: d.location, offset: e.offset, length: e.length });
    return e.dtype === 'F32' ? v : b.op('Cast', [v], { to: 1 });
  };
  const r = d.down.dims[0]!;
  const A = b.op('Reshape', [factor(d.down, 'down'), b.constI64([r, -1])]);
  const B = b.op('Reshape', [factor(d.up, 'up'), b.constI64([d.up.dims[0]!, r])]);
  const delta = b.op('Reshape', [b.op('MatMul', [B, A]), b.constI64(dims)]);
  return b.op('Mul', [delta, b.constF32(d.factor)]);
}

/**
 * Check that the graphs bound to one component's files (`bindings`: one per graph, e.g. the VAE's
 * encoder and decoder) used every key of the files and found every key and shape they asked for;
 * throws one error naming `what` and listing every missing key, unexpected key and shape mismatch.
 */
export function checkWeights(what: string, files: readonly WeightFile[], bindings: readonly WeightBinding[]): void {
  const used = new Set(bindings.flatMap((x) => [...x.used]));
  const missing = [...new Set(bindings.flatMap((x) => x.missing))];
  const mismatched = [...new Set(bindings.flatMap((x) => x.mismatched))];
  const unexpected = files.flatMap((f) => [...f.index.entries.keys()]).filter((k) => !used.has(k) && !BUFFER_KEYS.has(k)).sort();
  const parts: string[] = [];
  const list = (label: string, xs: readonly string[]): void => {
    if (xs.length === 0) return;
    const shown = xs.slice(0, 40);
    parts.push(`${xs.length} ${label}${xs.length === 1 ? '' : label.endsWith('ch') ? 'es' : 's'}:\n    ${shown.join('\n    ')}${xs.length > shown.length ? `\n    … and ${xs.length - shown.length} more` : ''}`);
  };
  list('missing key', missing);
  list('unexpected key', unexpected);
  list('shape mismatch', mismatched);
  if (parts.length > 0) throw new Error(`${what}: the weights do not fit the config (${files.map((f) => f.rel).join(', ')}):\n  ${parts.join('\n  ')}`);
}
