/**
 * `swap:DIR@σlo-σhi`: Dodson & Gao's denoiser swap (docs/methods.md §5.6a) — the generalizing
 * trained model in DIR denoises for σ ∈ [σlo, σhi], this model elsewhere; constant λ. A condition
 * goes to the generalizing model's condition with the same id, else to the class prompt of its
 * image's class, else to e_∅.
 */
import { z } from 'zod';
import type { CondRef } from '../../denoisers/denoiser.ts';
import { loadTrainedModel } from '../../denoisers/trained.ts';
import { swapDenoiser } from '../../denoisers/swap.ts';
import { specNumber } from '../../guidance/spec.ts';
import { defineMethod, onlyParts } from './define.ts';

const FORM = 'swap:DIR@σlo-σhi';
const Params = z
  .object({ model: z.string().min(1), sigmaLo: z.number().finite(), sigmaHi: z.number().finite() })
  .refine((p) => p.sigmaLo >= 0 && p.sigmaHi > p.sigmaLo, { message: 'need 0 ≤ σ_lo < σ_hi' });

/** swap:DIR@σlo-σhi. */
export const SWAP = defineMethod<z.infer<typeof Params>>({
  name: 'swap',
  form: FORM,
  about: "the trained model in DIR denoises for σ ∈ [lo, hi], this model elsewhere (Dodson & Gao's denoiser swap); constant λ",
  params: Params,
  requires: [],
  read: (t, f) => {
    onlyParts(t, f, FORM, ['colon', 'at']);
    if (t.colon === undefined || t.colon === '' || t.at === undefined) throw new Error(`${f.flag} "${t.text}": swap needs a model directory and a σ band, e.g. swap:models/class@1-4; expected ${FORM}`);
    const cut = t.at.indexOf('-', 1);
    const lo = specNumber(cut < 0 ? '' : t.at.slice(0, cut), 'σ_lo', t, f);
    const hi = specNumber(cut < 0 ? '' : t.at.slice(cut + 1), 'σ_hi', t, f);
    return { model: t.colon, sigmaLo: lo, sigmaHi: hi };
  },
  label: (p) => `swap:${p.model}@${p.sigmaLo}-${p.sigmaHi}`,
  async prepare(p, ctx, spec) {
    const seedIndices = Array.from({ length: ctx.noise.dims[0]! }, (_, i) => i);
    const gen = await loadTrainedModel(p.model).catch((e: Error) => {
      throw new Error(`--methods: ${spec.name}: cannot load the generalizing model in ${p.model}: ${e.message}`);
    });
    const genIds = new Map(gen.denoiser.conditions.map((c, i) => [c.id, i] as const));
    const mapped: Record<string, string | null> = {};
    const mapCond = (c: CondRef): CondRef => {
      if (c === null) return null;
      const id = ctx.denoiser.conditions[c]!.id;
      const label = ctx.classOf?.(c) ?? null;
      const g = genIds.get(id) ?? (label === null ? undefined : genIds.get(`class:${label}`));
      mapped[id] = g === undefined ? null : gen.denoiser.conditions[g]!.id;
      return g ?? null;
    };
    const d = swapDenoiser(ctx.denoiser, gen.denoiser, { sigmaLo: p.sigmaLo, sigmaHi: p.sigmaHi }, { disposeInner: false, mapCond, name: `${ctx.denoiser.name}+${spec.name}` });
    return {
      parts: [{ denoiser: d, seedIndices }],
      details: { generalizing: p.model, band: [p.sigmaLo, p.sigmaHi], counts: d.counts, mapped },
      dispose: async () => void (await gen.denoiser.dispose?.()),
    };
  },
});
