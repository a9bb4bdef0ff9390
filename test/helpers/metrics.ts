/**
 * Reference helpers shared by the metric tests (`src/metrics/*.test.ts`): a seeded uniform
 * generator, a max-error assertion, writing a test model, and float64 PIL-bilinear weights written out from the
 * definition (independent of the code under test).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { GraphBuilder } from '../../src/graph/builder.ts';

/**
 * `n` deterministic pseudo-random values in [`lo`, `hi`) (default [−1, 1)) from a 32-bit LCG
 * (Numerical Recipes constants) seeded with `seed`, as float32.
 */
export function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * s) / 2 ** 32;
  });
}

/** Assert `got` has the length of `want` and max |got − want| ≤ `tol` (the message names the worst index). */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  expect(got.length).toBe(want.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i]! - want[i]!);
    if (!(e <= worst)) {
      worst = e;
      at = i;
    }
  }
  expect(worst, `max |error| ${worst} at ${at}`).toBeLessThanOrEqual(tol);
}

/** `v` divided by its L2 norm. */
export function unit(v: number[]): number[] {
  const n = Math.sqrt(v.reduce((a, b) => a + b * b, 0));
  return v.map((x) => x / n);
}

/**
 * Float64 PIL bilinear (triangle-filter) weights of output `i` of an `inN` → `outN` resize, over
 * all `inN` inputs: centre `(i + ½)·inN/outN` in input pixel units, filter half-width
 * `max(1, inN/outN)`, renormalised to sum 1.
 */
export function triRow(inN: number, outN: number, i: number): Float64Array {
  const s = inN / outN;
  const half = Math.max(1, s);
  const c = (i + 0.5) * s;
  const r = Float64Array.from({ length: inN }, (_, j) => Math.max(0, 1 - Math.abs(j + 0.5 - c) / half));
  const t = r.reduce((a, b) => a + b, 0);
  return r.map((v) => v / t);
}

/** Write the model built by `b` to `dir/name` and return that path. */
export function saveModel(b: GraphBuilder, dir: string, name: string): string {
  const p = join(dir, name);
  writeFileSync(p, b.toBytes());
  return p;
}
