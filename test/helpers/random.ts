/**
 * Seeded random helpers shared by tests and benchmarks. The generator is the project's own
 * mulberry32 (`src/random/mulberry32.ts`), so the streams are identical to the local copies these
 * files used to carry; nothing here reads `Math.random`.
 */
import { mulberry32 } from '../../src/random/mulberry32.ts';

export { mulberry32 };

/** `n` standard normals from `rng` by Box–Muller (two uniforms per value, cosine branch only). */
export function normals(rng: () => number, n: number): Float32Array {
  const o = new Float32Array(n);
  for (let i = 0; i < n; i++) o[i] = Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  return o;
}
