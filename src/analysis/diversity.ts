/**
 * Generation diversity across seeds (Kim et al., SPEC §3.4): the trace of the sample covariance of
 * the states x_t^(n) of one prompt's seeds at one step, `(1/(N−1)) Σ_n ‖x_t^(n) − mean_n x_t‖²`.
 */

/**
 * Trace of the sample covariance of `n` row vectors of length `d` (`rows` row-major `[n·d]`,
 * float32 or float64):
 * `(1/(n−1)) Σ_i ‖x_i − x̄‖²` (Kim et al. SPEC §3.4, the diversity of one prompt's seeds at one
 * step). One pass over `rows` with Welford's update per coordinate in float64 (accurate when the
 * rows are nearly identical, unlike Σx² − (Σx)²/n). Returns 0 for n = 1, NaN for n = 0.
 */
export function traceCovariance(rows: ArrayLike<number>, n: number, d: number): number {
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(d) || d < 0) throw new Error(`traceCovariance: n and d must be non-negative integers, got n=${n}, d=${d}`);
  if (rows.length !== n * d) throw new Error(`traceCovariance: expected n·d = ${n * d} values, got ${rows.length}`);
  if (n === 0) return NaN;
  if (n === 1) return 0;
  const mean = new Float64Array(d);
  const m2 = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const off = i * d;
    const inv = 1 / (i + 1);
    for (let k = 0; k < d; k++) {
      const v = rows[off + k]!;
      const delta = v - mean[k]!;
      const mk = mean[k]! + delta * inv;
      mean[k] = mk;
      m2[k] = m2[k]! + delta * (v - mk);
    }
  }
  let s = 0;
  for (let k = 0; k < d; k++) s += m2[k]!;
  return s / (n - 1);
}
