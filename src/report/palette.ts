/** Chart colours shared by every figure spec. */

/** The default series colours (matplotlib's tab10), cycled by index. */
export const PALETTE: readonly string[] = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** The colour of series `k`: `PALETTE[k mod 10]`. */
export function paletteColor(k: number): string {
  return PALETTE[((k % PALETTE.length) + PALETTE.length) % PALETTE.length]!;
}

/** A JSON-safe number: the value when finite, else `null` (Vega-Lite's invalid value, drawn as a gap). */
export function finiteOrNull(v: number | undefined): number | null {
  return v !== undefined && Number.isFinite(v) ? v : null;
}
