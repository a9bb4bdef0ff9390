/**
 * The denoiser swap of Dodson & Gao (SPEC §5.6a): a generalizing denoiser (a model trained on more
 * or disjoint data, or D_lin) inside a band of noise levels [σ_lo, σ_hi], the memorizing one
 * elsewhere. Each call's σ = √((1−ᾱ)/ᾱ) (SPEC §0) decides which one runs; a batch shares one
 * level, so a whole call goes to one denoiser. Counts of calls and rows per side are kept for
 * reports.
 */
import { type CondRef, type ConditionInfo, type Denoiser, type NoiseLevel, type Space, checkConds } from './denoiser.ts';
import type { Tensor } from '../tensor/tensor.ts';

/** The band of σ where the generalizing denoiser is used (inclusive at both ends). */
export interface SwapBand {
  /** Lower edge σ_lo ≥ 0. */
  readonly sigmaLo: number;
  /** Upper edge σ_hi > σ_lo (may be +∞: everything above σ_lo). */
  readonly sigmaHi: number;
}

/** Options of {@link swapDenoiser}. */
export interface SwapOptions {
  /** Name for reports (default `swap(<memorizing>|<generalizing>@[lo,hi])`). */
  readonly name?: string;
  /**
   * Map a condition of the memorizing denoiser (whose conditions the swap exposes) to one of the
   * generalizing denoiser's. Default: `null` → `null`, and condition k → the generalizing
   * condition with the same `id` (a call routed to the generalizing denoiser with a condition it
   * lacks throws, naming it). Pass `() => null` to use an unconditional generalizer (e.g. D_lin)
   * for every row — note that CFG then sees no guidance inside the band.
   */
  readonly mapCond?: (c: CondRef) => CondRef;
  /** Whether `dispose` also disposes the two inner denoisers (default true). */
  readonly disposeInner?: boolean;
}

/** Calls and rows routed to each side. */
export interface SwapCounts {
  readonly memorizing: { calls: number; rows: number };
  readonly generalizing: { calls: number; rows: number };
}

/** The swapped denoiser: a {@link Denoiser} plus its band and routing counts. */
export interface SwapDenoiser extends Denoiser {
  readonly band: SwapBand;
  readonly memorizing: Denoiser;
  readonly generalizing: Denoiser;
  /** Calls and rows routed to each side since creation or the last {@link SwapDenoiser.resetCounts}. */
  readonly counts: SwapCounts;
  /** Whether σ lies in the band (the generalizing side). */
  inBand(sigma: number): boolean;
  /** Zero the counts. */
  resetCounts(): void;
}

/**
 * Wrap two ε-denoisers into the swap of SPEC §5.6a: calls whose σ = √((1−ᾱ)/ᾱ) lies in
 * [band.sigmaLo, band.sigmaHi] (inclusive, σ in float64) go to `generalizing`, all others to
 * `memorizing`. The two must have the same `shape` and `space`; the swap exposes the memorizing
 * denoiser's conditions (see {@link SwapOptions.mapCond} for the generalizing side). Throws a
 * clear error when shapes or spaces differ or the band is invalid (NaN, σ_lo < 0, σ_hi ≤ σ_lo).
 */
export function swapDenoiser(memorizing: Denoiser, generalizing: Denoiser, band: SwapBand, opts: SwapOptions = {}): SwapDenoiser {
  if (band === null || typeof band !== 'object') throw new Error(`swapDenoiser: band must be { sigmaLo, sigmaHi }, got ${String(band)}`);
  const { sigmaLo, sigmaHi } = band;
  if (typeof sigmaLo !== 'number' || !Number.isFinite(sigmaLo) || sigmaLo < 0) {
    throw new Error(`swapDenoiser: band.sigmaLo must be a finite number ≥ 0, got ${String(sigmaLo)}`);
  }
  if (typeof sigmaHi !== 'number' || Number.isNaN(sigmaHi) || !(sigmaHi > sigmaLo)) {
    throw new Error(`swapDenoiser: band.sigmaHi must be a number > band.sigmaLo = ${sigmaLo} (+Infinity allowed), got ${String(sigmaHi)}`);
  }
  const ms = memorizing.shape;
  const gs = generalizing.shape;
  if (ms.length !== gs.length || ms.some((v, i) => v !== gs[i])) {
    throw new Error(`swapDenoiser: generalizing denoiser '${generalizing.name}' has shape [${gs.join(', ')}], expected the memorizing denoiser '${memorizing.name}''s shape [${ms.join(', ')}]`);
  }
  if (memorizing.space !== generalizing.space) {
    throw new Error(`swapDenoiser: generalizing denoiser '${generalizing.name}' works in ${generalizing.space} space, expected the memorizing denoiser's ${memorizing.space} space`);
  }
  const byId = new Map(generalizing.conditions.map((c, i) => [c.id, i] as const));
  const mapCond =
    opts.mapCond ??
    ((c: CondRef): CondRef => {
      if (c === null) return null;
      const id = memorizing.conditions[c]!.id;
      const g = byId.get(id);
      if (g === undefined) throw new Error(`swapDenoiser: condition ${c} ('${id}') of '${memorizing.name}' has no counterpart in the generalizing denoiser '${generalizing.name}' (pass mapCond to map it, e.g. () => null)`);
      return g;
    });
  const counts = { memorizing: { calls: 0, rows: 0 }, generalizing: { calls: 0, rows: 0 } };
  const fmt = (v: number): string => (Number.isFinite(v) ? String(v) : '∞');
  const name = opts.name ?? `swap(${memorizing.name}|${generalizing.name}@[${fmt(sigmaLo)},${fmt(sigmaHi)}])`;
  const inBand = (sigma: number): boolean => sigma >= sigmaLo && sigma <= sigmaHi;
  const self: SwapDenoiser = {
    name,
    space: memorizing.space as Space,
    shape: [...ms],
    conditions: memorizing.conditions as readonly ConditionInfo[],
    ...(memorizing.sigmaRange && generalizing.sigmaRange
      ? { sigmaRange: [Math.max(memorizing.sigmaRange[0], generalizing.sigmaRange[0]), Math.min(memorizing.sigmaRange[1], generalizing.sigmaRange[1])] as const }
      : {}),
    band: { sigmaLo, sigmaHi },
    memorizing,
    generalizing,
    counts,
    inBand,
    resetCounts(): void {
      counts.memorizing.calls = counts.memorizing.rows = 0;
      counts.generalizing.calls = counts.generalizing.rows = 0;
    },
    async predict(xt: Tensor, level: NoiseLevel, cond: readonly CondRef[]): Promise<Tensor> {
      const B = xt.dims[0] ?? 0;
      checkConds(self, cond, B);
      const a = level.alphaBar;
      if (!(a > 0 && a <= 1)) throw new Error(`${name}: ᾱ must be in (0, 1], got ${a}`);
      const sigma = Math.sqrt((1 - a) / a);
      if (inBand(sigma)) {
        counts.generalizing.calls++;
        counts.generalizing.rows += B;
        return generalizing.predict(xt, level, cond.map(mapCond));
      }
      counts.memorizing.calls++;
      counts.memorizing.rows += B;
      return memorizing.predict(xt, level, cond);
    },
  };
  if (opts.disposeInner ?? true) {
    self.dispose = async (): Promise<void> => {
      await memorizing.dispose?.();
      if (generalizing !== memorizing) await generalizing.dispose?.();
    };
  }
  return self;
}
