/**
 * The memorization detection score of Wen et al., "Detecting, Explaining, and Mitigating
 * Memorization in Diffusion Models" (ICLR 2024, §3; SPEC §4.4 baseline): the magnitude of the
 * text-conditional noise prediction ‖ε_θ(x_t, e) − ε_θ(x_t, e_∅)‖, averaged over a prompt's
 * generations — at the first step only (t = T, where x_T is pure noise and the score needs a single
 * model call pair) or over all steps. Memorized prompts score high.
 *
 * Their exact magnitude, from the official code (github.com/YuxinWenRick/diffusion_memorization):
 * `local_sd_pipeline.py` records, per image j and step, `noise_pred_text = noise_pred_text −
 * noise_pred_uncond` then `noise_pred_text[j].norm(p=2)` — the plain L2 norm of the difference
 * over the whole latent (4×64×64 for SD), not squared and not divided by the dimension; the
 * detection notebook `examples/det_mem_viz.ipynb` takes `text_noise_norm[:num_gens, start:end]`,
 * averages over generations (axis 0) and then over the steps (defaults: 4 generations, steps
 * 0–50; first-step detection is start = 0, end = 1). Both means have equal weights, so this
 * module's "mean over steps and seeds" is the same number.
 *
 * Input is memscope's `SamplingResult.d` = d_t = ‖ε_c − ε_u‖² (SPEC §0), so the 'norm' magnitude
 * is √d_t.
 */

/** How a row's guidance magnitude is measured: Wen et al.'s ‖ε_c − ε_u‖ ('norm') or d_t ('squared'). */
export type WenMagnitude = 'norm' | 'squared';

/** Options of {@link wenScores}. */
export interface WenOptions {
  /** 'norm' = ‖ε_c − ε_u‖ = √d_t (default, Wen et al.'s code) or 'squared' = d_t (SPEC §0, Jain et al.). */
  readonly magnitude?: WenMagnitude;
  /**
   * 'none' (default, as Wen et al.) or 'dim': divide by the element count so that models with
   * different latent sizes compare — ‖δ‖/√dim (the RMS element) for 'norm', d_t/dim for 'squared'.
   */
  readonly normalize?: 'none' | 'dim';
  /** Elements per row (e.g. 4·64·64), required with `normalize: 'dim'`. */
  readonly dim?: number;
}

/** Per-prompt detection scores (prompt p covers rows p·N … p·N + N − 1). */
export interface WenScores {
  /** Mean over the prompt's seeds of the first-step magnitude (t = T). */
  readonly firstStep: number[];
  /** Mean over all steps and the prompt's seeds of the magnitude. */
  readonly allSteps: number[];
}

/** The aggregation, as recorded with every score (exact text). */
export const WEN_AGGREGATION =
  'Wen et al. (ICLR 2024): magnitude m = ||eps_c - eps_u||_2 (norm; sqrt of d_t) or d_t (squared), per row and step, optionally divided by sqrt(dim) or dim; ' +
  'firstStep = mean over the prompt\'s N seeds of m at step 0; allSteps = mean over all steps and the N seeds of m. Rows are prompt-major: row = p*N + n.';

/**
 * Wen et al.'s detection scores per prompt (ICLR 2024 §3.1; SPEC §4.4) from `d[step][row]` =
 * ‖ε_c − ε_u‖² as in `SamplingResult.d`, rows prompt-major (row = p·N + n, N = `rowsPerPrompt`):
 * `firstStep[p]` = mean_n m(d[0][pN+n]) and `allSteps[p]` = mean over steps and n, with m the
 * magnitude of {@link WenOptions} (default: the norm √d_t, no normalisation, as their code).
 * Throws on an unguided record (empty rows), ragged steps, rows not a multiple of N, or a
 * negative or non-finite d.
 */
export function wenScores(d: readonly (readonly number[])[], rowsPerPrompt: number, opts: WenOptions = {}): WenScores {
  const magnitude = opts.magnitude ?? 'norm';
  const normalize = opts.normalize ?? 'none';
  if (magnitude !== 'norm' && magnitude !== 'squared') throw new Error(`wenScores: magnitude must be 'norm' or 'squared', got ${String(magnitude)}`);
  if (normalize !== 'none' && normalize !== 'dim') throw new Error(`wenScores: normalize must be 'none' or 'dim', got ${String(normalize)}`);
  let divisor = 1;
  if (normalize === 'dim') {
    const dim = opts.dim;
    if (dim === undefined || !Number.isInteger(dim) || dim < 1) throw new Error(`wenScores: normalize 'dim' needs dim, a positive integer (elements per row), got ${String(dim)}`);
    divisor = magnitude === 'norm' ? Math.sqrt(dim) : dim;
  }
  if (!Number.isInteger(rowsPerPrompt) || rowsPerPrompt < 1) throw new Error(`wenScores: rowsPerPrompt must be a positive integer, got ${rowsPerPrompt}`);
  if (d.length === 0) throw new Error('wenScores: d has no steps');
  const R = d[0]!.length;
  if (R === 0) throw new Error('wenScores: d[0] has no rows (was the run unguided? the score needs ε_c and ε_u)');
  if (R % rowsPerPrompt !== 0) throw new Error(`wenScores: d has ${R} rows per step, not a multiple of rowsPerPrompt ${rowsPerPrompt}`);
  const P = R / rowsPerPrompt;
  const N = rowsPerPrompt;
  const m = (v: number, step: number, row: number): number => {
    if (!Number.isFinite(v) || v < 0) throw new Error(`wenScores: d[${step}][${row}] is ${v}; d_t = ‖ε_c − ε_u‖² must be finite and ≥ 0`);
    return (magnitude === 'norm' ? Math.sqrt(v) : v) / divisor;
  };
  const firstStep = new Array<number>(P).fill(0);
  const allSteps = new Array<number>(P).fill(0);
  d.forEach((row, step) => {
    if (row.length !== R) throw new Error(`wenScores: d[${step}] has ${row.length} rows, d[0] has ${R}`);
    for (let p = 0; p < P; p++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += m(row[p * N + n]!, step, p * N + n);
      if (step === 0) firstStep[p] = s / N;
      allSteps[p]! += s / N;
    }
  });
  for (let p = 0; p < P; p++) allSteps[p]! /= d.length;
  return { firstStep, allSteps };
}
