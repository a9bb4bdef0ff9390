/**
 * The pixel ↔ model-space convention of memscope: a byte `x ∈ [0, 255]` maps to
 * `x / 127.5 − 1 ∈ [−1, 1]` (0 → −1, 255 → 1), and back by `round((v + 1) · 127.5)`,
 * clamped. The round trip is exact for every byte.
 */

/** Bytes → float32 in [−1, 1] (`x / 127.5 − 1`), same order and length. */
export function bytesToSigned(bytes: ArrayLike<number>): Float32Array {
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < out.length; i++) out[i] = bytes[i]! / 127.5 - 1;
  return out;
}

/** Float values in [−1, 1] → bytes (`round((v + 1) · 127.5)`, clamped to 0..255; NaN → 0). */
export function signedToBytes(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < out.length; i++) {
    const b = Math.round((values[i]! + 1) * 127.5);
    out[i] = b > 255 ? 255 : b > 0 ? b : 0;
  }
  return out;
}
