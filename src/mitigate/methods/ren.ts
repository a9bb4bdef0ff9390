/**
 * `ren[:c]`: Ren et al.'s mitigation — start-token attention logits × c, padding masked
 * (default c = 1.25), sampled with constant λ, on the U-Net the source's `attention` capability
 * opens (a trained text model's rebuilt graph, a Stable Diffusion export's after graph surgery).
 */
import { z } from 'zod';
import { specNumber } from '../../guidance/spec.ts';
import { renMitigatedDenoiser, REN_DEFAULTS } from '../ren-attention.ts';
import { defineMethod, onlyParts } from './define.ts';
import { needsTextMessage } from './prompt-noise.ts';

const Params = z.object({ startScale: z.number().finite().default(REN_DEFAULTS.startScale) });

/** ren[:c]. */
export const REN = defineMethod<z.infer<typeof Params>>({
  name: 'ren',
  form: 'ren[:c]',
  about: 'start-token logits × c, padding masked (Ren et al.; c = 1.25)',
  params: Params,
  requires: ['attention'],
  read: (t, f) => {
    onlyParts(t, f, 'ren[:c]', ['colon']);
    return t.colon === undefined ? {} : { startScale: specNumber(t.colon, 'c', t, f) };
  },
  label: (p) => `ren:${p.startScale}`,
  async prepare(p, ctx, spec) {
    const seedIndices = Array.from({ length: ctx.noise.dims[0]! }, (_, i) => i);
    const attention = ctx.capabilities.attention;
    if (attention === undefined) throw new Error(needsTextMessage(spec.name, 'attention'));
    const att = await attention.open();
    const d = await renMitigatedDenoiser({ denoiser: ctx.denoiser, attention: att }, { startScale: p.startScale, name: `${ctx.denoiser.name}+${spec.name}` }).catch(async (e: unknown) => {
      await att.dispose();
      throw e;
    });
    return { parts: [{ denoiser: d, seedIndices }], details: { startScale: p.startScale, maskPadding: REN_DEFAULTS.maskPadding, layers: att.layers.length }, dispose: async () => void (await d.dispose?.()) };
  },
});
