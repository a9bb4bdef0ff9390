/**
 * The interface every source of standard normal draws implements: the torch-compatible generator
 * of `src/random/torch.ts`, or anything a sampler's stochastic steps may read from.
 */

/** A source of standard normal draws (e.g. the torch-compatible generator of one seed). */
export interface NormalSource {
  /** Next `numel(dims)` standard normal draws as torch would produce for `torch.randn(dims)`. */
  randn(dims: readonly number[]): Float32Array;
}
