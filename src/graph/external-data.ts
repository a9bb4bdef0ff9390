/**
 * ONNX external data (SPEC §7: large U-Nets keep their weights beside `model.onnx`, as
 * `weights.pb` for the legacy diffusers script or `model.onnx_data` for optimum): write a
 * {@link GraphBuilder}'s model with its large initializers moved into one data file, and list
 * the data files a saved model refers to. Lives in `graph/` because it needs `onnx-proto`.
 *
 * Each moved initializer becomes a TensorProto with `data_location = EXTERNAL` and the
 * `external_data` entries `location` (file name relative to the model's folder), `offset` and
 * `length` (bytes), exactly as `onnx.save_model(..., save_as_external_data=True,
 * all_tensors_to_one_file=True)` writes them; onnxruntime resolves them when the model is
 * loaded BY PATH (not from bytes). Every element type moves the same way, float16 initializers
 * (builder `Uint16Array` half bits) included: the data file holds each tensor's little-endian raw
 * bytes (2 per float16 value, so an fp16 model's data file is half the size of its fp32 one).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import p from 'onnx-proto';
import type { GraphBuilder } from './builder.ts';

const { onnx } = p;

/** Options of {@link splitExternalData} / {@link writeModelWithExternalData}. */
export interface ExternalDataOptions {
  /** Data file name, relative to the model's folder (e.g. `'weights.pb'`, `'model.onnx_data'`). */
  readonly location: string;
  /** Initializers with at least this many bytes go to the data file (default 1024, as `onnx`'s `size_threshold`). */
  readonly sizeThreshold?: number;
  /** Byte alignment of each tensor's offset in the data file (default 64). */
  readonly align?: number;
}

/** A model split into its graph bytes and its external data bytes. */
export interface ExternalDataModel {
  /** Serialized ModelProto whose large initializers refer to {@link ExternalDataModel.location}. */
  readonly model: Uint8Array;
  /** Contents of the data file. */
  readonly data: Uint8Array;
  /** The data file name written into the model. */
  readonly location: string;
  /** Names of the initializers moved to the data file. */
  readonly externalTensors: readonly string[];
}

/**
 * Serialize `builder`'s model with every initializer of ≥ `sizeThreshold` bytes (default 1024)
 * stored externally in one file named `location` (offsets aligned to `align`, default 64 bytes).
 * The builder itself is not modified.
 */
export function splitExternalData(builder: GraphBuilder, opts: ExternalDataOptions): ExternalDataModel {
  const threshold = opts.sizeThreshold ?? 1024;
  const align = opts.align ?? 64;
  if (opts.location === '' || opts.location.includes('/') || opts.location.includes('\\')) {
    throw new Error(`splitExternalData: location must be a plain file name, got '${opts.location}'`);
  }
  if (!Number.isInteger(align) || align < 1) throw new Error(`splitExternalData: align must be a positive integer, got ${align}`);
  const model = builder.toModel();
  const graph = model.graph!;
  const chunks: { offset: number; bytes: Uint8Array }[] = [];
  const moved: string[] = [];
  let size = 0;
  // a new initializer list and new TensorProtos: the builder's own objects stay untouched
  graph.initializer = (graph.initializer ?? []).map((t) => {
    const raw = t.rawData;
    if (raw === undefined || raw === null || raw.length < threshold) return t;
    const offset = Math.ceil(size / align) * align;
    chunks.push({ offset, bytes: raw });
    size = offset + raw.length;
    moved.push(t.name ?? '');
    return onnx.TensorProto.create({
      name: t.name ?? null,
      dims: t.dims ?? null,
      dataType: t.dataType ?? null,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: opts.location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(raw.length) },
      ],
    });
  });
  const data = new Uint8Array(size);
  for (const c of chunks) data.set(c.bytes, c.offset);
  return { model: onnx.ModelProto.encode(model).finish(), data, location: opts.location, externalTensors: moved };
}

/**
 * Write `builder`'s model to `modelPath` with its large initializers in `<folder>/<location>`
 * (see {@link splitExternalData}); creates the folder. Returns what was written.
 */
export function writeModelWithExternalData(builder: GraphBuilder, modelPath: string, opts: ExternalDataOptions): ExternalDataModel {
  const split = splitExternalData(builder, opts);
  if (basename(modelPath) === split.location) throw new Error(`writeModelWithExternalData: the data file cannot be the model file '${modelPath}'`);
  mkdirSync(dirname(modelPath), { recursive: true });
  writeFileSync(join(dirname(modelPath), split.location), split.data);
  writeFileSync(modelPath, split.model);
  return split;
}

/**
 * The external data files (relative `location`s, deduplicated, in first-use order) that the
 * ONNX model at `modelPath` refers to; `[]` when all its weights are inline. Reads and decodes the
 * whole file, so use it for diagnostics rather than on every load of a large inline model.
 */
export function externalDataLocations(modelPath: string): string[] {
  const model = onnx.ModelProto.decode(readFileSync(modelPath));
  const out: string[] = [];
  const seen = new Set<string>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    const loc = (t.externalData ?? []).find((e) => e.key === 'location')?.value;
    if (typeof loc === 'string' && !seen.has(loc)) {
      seen.add(loc);
      out.push(loc);
    }
  }
  return out;
}
