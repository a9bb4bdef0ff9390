/**
 * `cads[:s]`: CADS, condition-annealed sampling (Sadat et al. 2024), as Jain et al. run it — the
 * conditioning noised and rescaled for t > τ₁ = 500 (fully noised above τ₂ = 800), noise scale s
 * (default 0.1), sampled with constant λ (see `guidance/cads.ts`). Needs a text model (the source's
 * `conditionTransform`).
 */
import { z } from 'zod';
import { specNumber } from '../../guidance/spec.ts';
import { CADS_DEFAULTS, cadsCondition } from '../../guidance/cads.ts';
import { defineMethod, onlyParts } from './define.ts';
import { needsTextMessage } from './prompt-noise.ts';

const Params = z.object({ s: z.number().min(0, 's must be ≥ 0').finite().default(CADS_DEFAULTS.s) });

/** cads[:s]. */
export const CADS = defineMethod<z.infer<typeof Params>>({
  name: 'cads',
  form: 'cads[:s]',
  about: `conditioning annealed: noise of scale s (${CADS_DEFAULTS.s}) for t > ${CADS_DEFAULTS.tau1}, full above ${CADS_DEFAULTS.tau2}, rescaled (CADS, Sadat et al.; as Jain et al. run it)`,
  params: Params,
  requires: ['text'],
  read: (t, f) => {
    onlyParts(t, f, 'cads[:s]', ['colon']);
    return t.colon === undefined ? {} : { s: specNumber(t.colon, 's', t, f) };
  },
  label: (p) => `cads:${p.s}`,
  async prepare(p, ctx, spec) {
    const ct = ctx.capabilities.conditionTransform;
    if (ct === undefined) throw new Error(needsTextMessage(spec.name, 'text'));
    const o = { ...CADS_DEFAULTS, s: p.s, seed: ctx.runSeed ?? 0 };
    const d = await ct.denoiser((c, t) => cadsCondition(c, t, o), `${ctx.denoiser.name}+${spec.name}`);
    const seedIndices = Array.from({ length: ctx.noise.dims[0]! }, (_, i) => i);
    return { parts: [{ denoiser: d, seedIndices }], details: { s: o.s, psi: o.psi, tau1: o.tau1, tau2: o.tau2, noise: 'Gaussian (CADS paper; Jain et al.’s code draws uniform)' }, dispose: async () => void (await d.dispose?.()) };
  },
});
