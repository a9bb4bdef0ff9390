/** The float32 weights of an ONNX model, read back from its initializers. */
import p from 'onnx-proto';

const { onnx } = p;

const cache = new WeakMap<Uint8Array, ReadonlyMap<string, Float32Array>>();

/**
 * The float32 initializers of an ONNX model by name (raw or `float_data` storage). memscope's
 * U-Net graphs hold every parameter as `unet.<name>`; other initializers (constants) come along
 * and are ignored by the parameter lookup. Cached per byte array.
 */
export function graphWeights(bytes: Uint8Array): ReadonlyMap<string, Float32Array> {
  const hit = cache.get(bytes);
  if (hit !== undefined) return hit;
  const m = onnx.ModelProto.decode(bytes);
  const out = new Map<string, Float32Array>();
  for (const t of m.graph?.initializer ?? []) {
    if (t.dataType !== onnx.TensorProto.DataType.FLOAT || !t.name) continue;
    const raw = t.rawData;
    if (raw && raw.length > 0) {
      const copy = new Uint8Array(raw); // a fresh, aligned copy (protobufjs may hand out Buffer views)
      out.set(t.name, new Float32Array(copy.buffer, 0, copy.byteLength / 4));
    } else {
      out.set(t.name, Float32Array.from(t.floatData ?? []));
    }
  }
  cache.set(bytes, out);
  return out;
}
