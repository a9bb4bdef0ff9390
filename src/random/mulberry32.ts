/**
 * mulberry32: a small 32-bit PRNG (Tommy Ettinger's) for seeded index sampling and test data.
 * Deterministic on every machine; memscope never reads `Math.random`.
 */

/**
 * A mulberry32 generator: returns a function giving uniform floats in [0, 1). `seed` is
 * taken as a uint32 (`seed >>> 0`); it must be a finite integer.
 */
export function mulberry32(seed: number): () => number {
  if (!Number.isInteger(seed)) throw new Error(`seed: must be an integer, got ${seed}`);
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
