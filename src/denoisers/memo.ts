/**
 * A denoiser that remembers its last answers: a call with the same x_t (bit for bit), noise level
 * and conditions as a remembered one returns the remembered ε̂ without running the model. Two
 * samplings that share a prefix — the same prompt, seed and sampler with guidance that differs only
 * from step k on (CFG from step k: s = 0 before it) — then share its model calls: the explorer's
 * CFG-start slider computes only the steps after the earlier of the two start steps.
 *
 * Exact: a hit compares the whole input, not only its hash, so the answer is the model's answer for
 * that input. Bounded: least recently used entries go first.
 */
import type { Tensor } from '../tensor/tensor.ts';
import type { CondRef, Denoiser, NoiseLevel } from './denoiser.ts';

/** Counts of a {@link MemoDenoiser}'s calls. */
export interface MemoStats {
  /** Calls of `predict`. */
  calls: number;
  /** Of those, answered from memory (no model run). */
  hits: number;
}

/** A {@link Denoiser} with a memory of its last calls. */
export interface MemoDenoiser extends Denoiser {
  /** Calls and hits since creation (or the last {@link MemoDenoiser.resetStats}). */
  readonly stats: MemoStats;
  /** Zero the counts (the memory stays). */
  resetStats(): void;
}

interface Entry {
  readonly input: Uint32Array;
  readonly eps: Tensor;
}

/** FNV-1a over the 32-bit words of a float array (a bucket key; hits are confirmed word by word). */
function hashWords(w: Uint32Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < w.length; i++) {
    h ^= w[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16);
}

function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Wrap `denoiser` so that repeated calls are answered from memory (at most `capacity` calls
 * remembered, default 256: five 50-step samplings).
 */
export function memoDenoiser(denoiser: Denoiser, capacity = 256): MemoDenoiser {
  if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`memoDenoiser: capacity must be a positive integer, got ${capacity}`);
  const memory = new Map<string, Entry>();
  const stats: MemoStats = { calls: 0, hits: 0 };
  const copy = (t: Tensor): Tensor => ({ dims: [...t.dims], data: t.data.slice() });
  return {
    name: denoiser.name,
    space: denoiser.space,
    shape: denoiser.shape,
    conditions: denoiser.conditions,
    ...(denoiser.sigmaRange === undefined ? {} : { sigmaRange: denoiser.sigmaRange }),
    stats,
    resetStats() {
      stats.calls = 0;
      stats.hits = 0;
    },
    async predict(xt: Tensor, level: NoiseLevel, cond: readonly CondRef[]): Promise<Tensor> {
      stats.calls++;
      const input = new Uint32Array(xt.data.buffer, xt.data.byteOffset, xt.data.length);
      const key = `${level.t}|${level.alphaBar}|${level.sigma ?? ''}|${cond.map((c) => (c === null ? 'u' : c)).join(',')}|${xt.dims.join('x')}|${hashWords(input)}`;
      const hit = memory.get(key);
      if (hit !== undefined && sameWords(hit.input, input)) {
        stats.hits++;
        memory.delete(key); // most recently used last
        memory.set(key, hit);
        return copy(hit.eps);
      }
      const eps = await denoiser.predict(xt, level, cond);
      memory.delete(key);
      memory.set(key, { input: input.slice(), eps: copy(eps) });
      while (memory.size > capacity) memory.delete(memory.keys().next().value!);
      return eps;
    },
    async dispose() {
      memory.clear();
      await denoiser.dispose?.();
    },
  };
}
