/**
 * A safetensors header without a file behind it (float32, contiguous offsets from byte 8), for
 * tests that check key / shape bookkeeping of full-size state dicts (SD 1.5 / 2.1 manifests).
 */
import type { SafetensorsEntry, SafetensorsIndex } from '../../src/io/safetensors.ts';

/** The index of a float32 file at `path` holding `keys` (name → shape) in their order. */
export function fakeSafetensorsIndex(keys: Readonly<Record<string, readonly number[]>>, path: string): SafetensorsIndex {
  const entries = new Map<string, SafetensorsEntry>();
  let offset = 8;
  for (const [name, dims] of Object.entries(keys)) {
    const length = 4 * dims.reduce((a, d) => a * d, 1);
    entries.set(name, { name, dtype: 'F32', dims, offset, length });
    offset += length;
  }
  return { path, entries, metadata: {} };
}
