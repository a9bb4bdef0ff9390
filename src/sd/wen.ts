/**
 * Wen et al. 2024's inference-time mitigation on Stable Diffusion (issue 19 §2): the objective
 * l(e) = ‖ε_θ(x_T, t, e) − ε_θ(x_T, t, e_∅)‖₂ over the N seeds jointly and its gradient w.r.t. the
 * prompt embedding e, through the export's (or diffusers folder's) own U-Net file —
 * `graph/wen-loss.ts` builds the loss around it by graph surgery and memscope's differentiator
 * its gradient; ε_θ(x_T, t, e_∅) comes from the export's own U-Net session (it does not depend on
 * e), computed once per x_T and t. The seeds are split into chunks of `seedsPerCall` (default 1:
 * one U-Net row through the backward pass per call, what fits a 512² SD U-Net on a CPU): l = √(Σ ss_chunk), ∂l/∂e =
 * Σ ∂ss_chunk/∂e / (2l) — the same l and gradient as one call, in less memory. The loop itself is
 * the trained models' ({@link optimizeEmbedding}).
 */
import { createSession, type Session, type TypedFeed } from '../graph/session.ts';
import { timestepFeed } from './cross-attention.ts';
import { writeWenLossModels, type WenLossModels } from '../graph/wen-loss.ts';
import type { WenObjective } from '../mitigate/wen-embedding.ts';
import type { Tensor } from '../tensor/tensor.ts';
import type { SdExport } from './export.ts';

/** Options of {@link createSdWenObjective}. */
export interface SdWenOptions {
  /** e_∅ `[1, L, E]` (the empty or negative prompt's embedding). */
  readonly uncond: Tensor;
  /** One latent's `[C, H, W]`. */
  readonly latent: readonly [number, number, number];
  /** Seeds per U-Net call (default 1). */
  readonly seedsPerCall?: number;
}

function timestepDims(exp: SdExport, rows: number): number[] {
  const l = exp.unet.timestep.layout;
  return l === 'scalar' ? [] : l === 'one' ? [1] : [rows];
}

/**
 * Wen et al.'s objective for `seeds` x_T rows on the export's U-Net (see the module note). The
 * models are written beside hard links to the U-Net's weights and opened on the export's
 * execution provider (the gradient model at once, the forward model on the first `loss` call);
 * `dispose` releases them and removes the temp files.
 */
export async function createSdWenObjective(exp: SdExport, seeds: number, opts: SdWenOptions): Promise<WenObjective> {
  if (!Number.isInteger(seeds) || seeds < 1) throw new Error(`Wen objective: seeds must be a positive integer, got ${seeds}`);
  const per = Math.min(seeds, opts.seedsPerCall ?? 1);
  const [C, H, W] = opts.latent;
  const [, L, E] = opts.uncond.dims as [number, number, number];
  const chunks: number[] = [];
  for (let a = 0; a < seeds; a += per) chunks.push(Math.min(per, seeds - a));
  const built = new Map<number, { models: WenLossModels; grad: Session; fwd: Session | null }>();
  const opened = async (n: number): Promise<{ models: WenLossModels; grad: Session; fwd: Session | null }> => {
    let b = built.get(n);
    if (b === undefined) {
      const models = writeWenLossModels(exp.unet.path, { seeds: n, latent: [C, H, W], context: [L, E], timestepDims: timestepDims(exp, n) }, exp.unet.weightSources ?? {});
      try {
        const grad = await createSession(models.gradientPath, { executionProvider: exp.executionProvider, externalData: models.files.inMemoryData() });
        b = { models, grad, fwd: null };
        built.set(n, b);
      } catch (e) {
        models.files.dispose();
        throw e;
      }
    }
    return b;
  };
  for (const n of new Set(chunks)) await opened(n);
  const perSeed = C * H * W;
  // ε_θ(x_T, t, e_∅) per chunk, cached for the last (x_T, t): the optimisation loop calls with the same x_T and t every iteration
  let cache: { x: Float32Array; t: number; outs: Float32Array[] } | null = null;
  const same = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);
  const uncondOut = async (xT: Tensor, t: number): Promise<Float32Array[]> => {
    if (cache !== null && cache.t === t && same(cache.x, xT.data)) return cache.outs;
    const outs: Float32Array[] = [];
    let a = 0;
    for (const n of chunks) {
      const ctx = { dims: [n, L, E], data: new Float32Array(n * L * E) };
      for (let r = 0; r < n; r++) ctx.data.set(opts.uncond.data, r * L * E);
      const x = { dims: [n, C, H, W], data: xT.data.slice(a * perSeed, (a + n) * perSeed) };
      outs.push((await exp.sessions.unet.run({ sample: x, timestep: timestepFeed(exp.unet.timestep, t, n), encoder_hidden_states: ctx }, [exp.unet.output]))[exp.unet.output]!.data);
      a += n;
    }
    cache = { x: xT.data.slice(), t, outs };
    return outs;
  };
  const feeds = async (embedding: Float32Array, xT: Tensor, t: number, k: number, a: number, n: number): Promise<Record<string, Tensor | TypedFeed>> => {
    if (embedding.length !== L * E) throw new Error(`Wen objective: embedding has ${embedding.length} values, expected ${L * E} ([1, ${L}, ${E}])`);
    if (xT.dims[0] !== seeds || xT.data.length !== seeds * perSeed) throw new Error(`Wen objective: x_T must be [${seeds}, ${C}, ${H}, ${W}], got [${xT.dims.join(', ')}]`);
    if (!Number.isFinite(t)) throw new Error(`Wen objective: timestep must be finite, got ${t}`);
    return {
      sample: { dims: [n, C, H, W], data: xT.data.subarray(a * perSeed, (a + n) * perSeed) },
      timestep: timestepFeed(exp.unet.timestep, t, n),
      'wen/embedding': { dims: [1, L, E], data: embedding },
      'wen/out_u': { dims: [n, C, H, W], data: (await uncondOut(xT, t))[k]! },
    };
  };
  return {
    seeds,
    uncond: opts.uncond,
    async loss(embedding, xT, t) {
      let ss = 0;
      let a = 0;
      for (const [k, n] of chunks.entries()) {
        const b = await opened(n);
        b.fwd ??= await createSession(b.models.forwardPath, { executionProvider: exp.executionProvider, externalData: b.models.files.inMemoryData() });
        ss += (await b.fwd.run(await feeds(embedding, xT, t, k, a, n), ['wen/ss']))['wen/ss']!.data[0]!;
        a += n;
      }
      return Math.sqrt(ss);
    },
    async lossAndGradient(embedding, xT, t) {
      let ss = 0;
      const g = new Float32Array(L * E);
      let a = 0;
      for (const [k, n] of chunks.entries()) {
        const out = await (await opened(n)).grad.run(await feeds(embedding, xT, t, k, a, n));
        ss += out['wen/ss']!.data[0]!;
        const gc = out['grad/wen/embedding']!.data;
        for (let i = 0; i < g.length; i++) g[i]! += gc[i]!;
        a += n;
      }
      const loss = Math.sqrt(ss);
      if (!Number.isFinite(loss)) throw new Error(`Wen objective: the loss is not finite (${loss}) at t = ${t}`);
      const s = loss > 0 ? 1 / (2 * loss) : 0;
      for (let i = 0; i < g.length; i++) g[i]! *= s;
      return { loss, grad: g };
    },
    async dispose() {
      for (const b of built.values()) {
        await b.grad.release();
        if (b.fwd !== null) await b.fwd.release();
        b.models.files.dispose();
      }
      built.clear();
    },
  };
}
