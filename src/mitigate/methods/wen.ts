/**
 * `wen[:l_target]`: Wen et al.'s mitigation — the prompt embedding optimised until
 * ‖ε_c − ε_u‖ ≤ l_target at x_T (default 3), then sampled with constant λ. Wen et al. optimise per
 * prompt on the latents of one generation call (their default 4 images per prompt, whose joint
 * norm the target applies to); memscope does the same on groups of {@link WEN_GROUP} = 4 seeds,
 * so l means the same whatever the number of seeds evaluated. Needs gradients through the
 * denoiser (`embeddingGradient`).
 */
import { z } from 'zod';
import { specNumber } from '../../guidance/spec.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { WEN_DEFAULTS, type WenObjective } from '../wen-embedding.ts';
import { defineMethod, onlyParts } from './define.ts';
import { needsTextMessage } from './prompt-noise.ts';
import type { MethodPart } from './types.ts';

/** Seeds per Wen et al. optimisation (their `num_images_per_prompt` default). */
export const WEN_GROUP = 4;

const Params = z.object({ lossTarget: z.number().min(0, 'l_target must be ≥ 0').default(WEN_DEFAULTS.lossTarget) });

function rowsOf(t: Tensor, idx: readonly number[]): Tensor {
  const per = t.data.length / t.dims[0]!;
  const out = new Float32Array(idx.length * per);
  idx.forEach((r, i) => out.set(t.data.subarray(r * per, (r + 1) * per), i * per));
  return { dims: [idx.length, ...t.dims.slice(1)], data: out };
}

/** wen[:l_target]. */
export const WEN = defineMethod<z.infer<typeof Params>>({
  name: 'wen',
  form: 'wen[:l_target]',
  about: 'prompt embedding optimised until ‖ε_c − ε_u‖ ≤ l at x_T (Wen et al.; l = 3)',
  params: Params,
  requires: ['text', 'embeddingGradient'],
  read: (t, f) => {
    onlyParts(t, f, 'wen[:l_target]', ['colon']);
    return t.colon === undefined ? {} : { lossTarget: specNumber(t.colon, 'l_target', t, f) };
  },
  label: (p) => `wen:${p.lossTarget}`,
  async prepare(p, ctx, spec) {
    const grad = ctx.capabilities.embeddingGradient;
    if (grad === undefined) throw new Error(needsTextMessage(spec.name, 'embeddingGradient'));
    const N = ctx.noise.dims[0]!;
    const allSeeds = Array.from({ length: N }, (_, i) => i);
    const groups: number[][] = [];
    for (let i = 0; i < N; i += WEN_GROUP) groups.push(allSeeds.slice(i, i + WEN_GROUP));
    const parts: MethodPart[] = [];
    const optimisation: { cond: number; seeds: number[]; iterations: number; firstLoss: number; lastLoss: number; reachedTarget: boolean }[] = [];
    const objectives = new Map<number, WenObjective>();
    try {
      for (const g of groups) {
        let obj = objectives.get(g.length);
        if (!obj) objectives.set(g.length, (obj = await grad.objective(g.length)));
        const xT = rowsOf(ctx.noise, g);
        const embeddings = new Map<number, Tensor>();
        for (const c of ctx.conds) {
          if (c === null) continue;
          const r = await grad.optimize(c, xT, ctx.firstTimestep, { lossTarget: p.lossTarget, objective: obj });
          embeddings.set(c, r.embedding);
          optimisation.push({ cond: c, seeds: g, iterations: r.iterations, firstLoss: r.losses[0] ?? NaN, lastLoss: r.losses[r.losses.length - 1] ?? NaN, reachedTarget: r.reachedTarget });
        }
        parts.push({ denoiser: await grad.denoiser(embeddings, `${ctx.denoiser.name}+${spec.name}`), seedIndices: g });
      }
    } catch (e) {
      for (const q of parts) await q.denoiser.dispose?.();
      throw e;
    } finally {
      for (const o of objectives.values()) await o.dispose();
    }
    const iters = optimisation.map((o) => o.iterations);
    return {
      parts,
      details: {
        lossTarget: p.lossTarget,
        group: WEN_GROUP,
        meanIterations: iters.reduce((a, b) => a + b, 0) / Math.max(1, iters.length),
        reachedTarget: optimisation.filter((o) => o.reachedTarget).length / Math.max(1, optimisation.length),
        meanFirstLoss: optimisation.reduce((a, o) => a + o.firstLoss, 0) / Math.max(1, optimisation.length),
        optimisation,
      },
      dispose: async () => {
        for (const q of parts) await q.denoiser.dispose?.();
      },
    };
  },
});
