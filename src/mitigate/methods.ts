/**
 * Mitigation methods by name (Jain et al. 2025, SPEC §4.4–4.5, their Tables 1–4): each method is a
 * guidance schedule over the model's own prompts, or a prompt / embedding / attention transform of
 * the model sampled with plain CFG. One parser and one preparation step, shared by
 * `memscope evaluate` and the mitigation bench, so that every row of the evaluation table runs
 * through the same sampler loop and is timed the same way.
 *
 * | name              | what it does                                                                 |
 * |-------------------|-------------------------------------------------------------------------------|
 * | `cfg`             | no mitigation: constant λ                                                     |
 * | `stp[:τ]`         | s = 0 while t > τ, λ from τ on (static transition point; default τ = 500)     |
 * | `og+stp[:τ[/a]]`  | s = −a while t > τ (opposite guidance; a = λ as Algorithm 1 unless given)     |
 * | `dtp`             | Algorithm 1: s = 0 until the first local minimum of d_t, then λ              |
 * | `og+dtp[:a]`      | Algorithm 1 with −a before the switch (a = λ unless given)                    |
 * | `interval[:lo-hi]`| λ only for lo ≤ t ≤ hi (Kynkäänniemi et al. 2024; default 200–700)           |
 * | `random-word[:n]` | n random vocabulary words inserted into the prompt (Somepalli et al.; n = 1)  |
 * | `random-number[:n]`| n random integers in [0, 100000) inserted (Somepalli et al.; n = 1)          |
 * | `wen[:l]`         | prompt embedding optimised until ‖ε_c − ε_u‖ ≤ l at x_T (Wen et al.; l = 3)   |
 * | `ren[:c]`         | start-token logits × c, padding masked (Ren et al.; c = 1.25)                 |
 * | `swap:DIR@lo-hi`  | the trained model in DIR denoises for σ ∈ [lo, hi], this model elsewhere (Dodson & Gao's denoiser swap, SPEC §5.6a); constant λ |
 *
 * Wen et al. optimise per prompt on the latents of one generation call (their default 4 images per
 * prompt, whose joint norm the target l applies to); memscope does the same on groups of
 * `WEN_GROUP` = 4 seeds, so l means the same whatever the number of seeds evaluated.
 */
import { didYouMean } from '../text/suggest.ts';
import type { Denoiser, CondRef } from '../denoisers/denoiser.ts';
import type { TrainedModel } from '../denoisers/trained.ts';
import { constant, dtp, interval, stp, type GuidanceSchedule } from '../guidance/schedules.ts';
import { mulberry32 } from '../random/mulberry32.ts';
import { modelVocabulary, randomNumberInsertion, randomWordInsertion, textDenoiser } from './prompt-noise.ts';
import { createWenObjective, optimizePromptEmbedding, wenDenoiser, WEN_DEFAULTS } from './wen-embedding.ts';
import { renMitigatedDenoiser, REN_DEFAULTS, type ScaledAttentionUnet } from './ren-attention.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { loadTrainedModel } from '../denoisers/trained.ts';
import { swapDenoiser } from '../denoisers/swap.ts';

/** Method kinds, in the order of Jain et al.'s tables. */
export const METHOD_KINDS = ['cfg', 'random-word', 'random-number', 'wen', 'ren', 'stp', 'og+stp', 'dtp', 'og+dtp', 'interval', 'swap'] as const;
/** A method kind. */
export type MethodKind = (typeof METHOD_KINDS)[number];

/** Seeds per Wen et al. optimisation (their `num_images_per_prompt` default). */
export const WEN_GROUP = 4;

/** Defaults of the method parameters. */
export const METHOD_DEFAULTS = { tau: 500, intervalLo: 200, intervalHi: 700, insertions: 1, wenTarget: WEN_DEFAULTS.lossTarget, renScale: REN_DEFAULTS.startScale } as const;

/** A parsed method. */
export interface MethodSpec {
  readonly kind: MethodKind;
  /** Canonical name, parseable by {@link parseMethod} (e.g. `stp:500`). */
  readonly name: string;
  /** The method's parameter (τ, insertions, l_target, c; null for cfg, dtp, og+dtp). */
  readonly param: number | null;
  /** interval only: [t_lo, t_hi]. */
  readonly range?: readonly [number, number];
  /** og+stp / og+dtp: λ_og, the scale of the opposite guidance (absent: λ, as Algorithm 1). */
  readonly ogScale?: number;
  /** swap only: the generalizing trained model's directory and the σ band it denoises. */
  readonly swap?: { readonly model: string; readonly sigmaLo: number; readonly sigmaHi: number };
}

const FORMS = 'cfg | stp[:τ] | og+stp[:τ[/λog]] | dtp | og+dtp[:λog] | interval[:lo-hi] | random-word[:n] | random-number[:n] | wen[:l_target] | ren[:c] | swap:DIR@σlo-σhi';

/** The default method list: every method with its default parameter, and Wen et al. also at l_target = 1 (as Jain et al.'s Table 3). */
export const DEFAULT_METHODS = 'cfg,random-word,random-number,wen,wen:1,ren,stp,og+stp,dtp,og+dtp,interval';

function numberArg(raw: string, what: string, spec: string, arg: string): number {
  const v = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(v)) throw new Error(`${arg}: "${spec}": ${what} must be a number; expected ${FORMS}`);
  return v;
}

/** Parse one method name (see the module table). */
export function parseMethod(spec: string, arg = '--methods'): MethodSpec {
  const s = spec.trim();
  const i = s.indexOf(':');
  const kind = (i < 0 ? s : s.slice(0, i)) as MethodKind;
  const rest = i < 0 ? null : s.slice(i + 1);
  if (!(METHOD_KINDS as readonly string[]).includes(kind)) throw new Error(`${arg}: unknown method "${s}"${didYouMean(kind, METHOD_KINDS)}; expected ${FORMS}`);
  const noParam = (): MethodSpec => {
    if (rest !== null) throw new Error(`${arg}: "${s}": ${kind} takes no parameter; expected ${FORMS}`);
    return { kind, name: kind, param: null };
  };
  switch (kind) {
    case 'cfg':
    case 'dtp':
      return noParam();
    case 'og+dtp': {
      if (rest === null) return { kind, name: kind, param: null };
      const a = numberArg(rest, 'λ_og', s, arg);
      return { kind, name: `og+dtp:${a}`, param: null, ogScale: a };
    }
    case 'interval': {
      if (rest === null) return { kind, name: `interval:${METHOD_DEFAULTS.intervalLo}-${METHOD_DEFAULTS.intervalHi}`, param: null, range: [METHOD_DEFAULTS.intervalLo, METHOD_DEFAULTS.intervalHi] };
      const [lo, hi] = rest.split('-');
      const a = numberArg(lo ?? '', 't_lo', s, arg);
      const b = numberArg(hi ?? '', 't_hi', s, arg);
      if (!(a <= b)) throw new Error(`${arg}: "${s}": need t_lo ≤ t_hi`);
      return { kind, name: `interval:${a}-${b}`, param: null, range: [a, b] };
    }
    case 'random-word':
    case 'random-number': {
      const n = rest === null ? METHOD_DEFAULTS.insertions : numberArg(rest, 'the number of insertions', s, arg);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${arg}: "${s}": the number of insertions must be a positive integer`);
      return { kind, name: n === METHOD_DEFAULTS.insertions ? kind : `${kind}:${n}`, param: n };
    }
    case 'stp':
    case 'og+stp': {
      const [tauPart, ogPart] = rest === null ? [undefined, undefined] : rest.split('/');
      const tau = tauPart === undefined ? METHOD_DEFAULTS.tau : numberArg(tauPart, 'τ', s, arg);
      if (ogPart === undefined) return { kind, name: `${kind}:${tau}`, param: tau };
      if (kind === 'stp') throw new Error(`${arg}: "${s}": /λog is only valid with og+stp`);
      const a = numberArg(ogPart, 'λ_og', s, arg);
      return { kind, name: `${kind}:${tau}/${a}`, param: tau, ogScale: a };
    }
    case 'wen': {
      const l = rest === null ? METHOD_DEFAULTS.wenTarget : numberArg(rest, 'l_target', s, arg);
      if (!(l >= 0)) throw new Error(`${arg}: "${s}": l_target must be ≥ 0`);
      return { kind, name: `wen:${l}`, param: l };
    }
    case 'ren': {
      const c = rest === null ? METHOD_DEFAULTS.renScale : numberArg(rest, 'c', s, arg);
      return { kind, name: `ren:${c}`, param: c };
    }
    case 'swap': {
      const at = rest === null ? -1 : rest.lastIndexOf('@');
      if (rest === null || at <= 0) throw new Error(`${arg}: "${s}": swap needs a model directory and a σ band, e.g. swap:models/class@1-4; expected ${FORMS}`);
      const model = rest.slice(0, at);
      const band = rest.slice(at + 1);
      const cut = band.indexOf('-', 1);
      const lo = numberArg(cut < 0 ? '' : band.slice(0, cut), 'σ_lo', s, arg);
      const hi = numberArg(cut < 0 ? '' : band.slice(cut + 1), 'σ_hi', s, arg);
      if (!(lo >= 0 && hi > lo)) throw new Error(`${arg}: "${s}": need 0 ≤ σ_lo < σ_hi`);
      return { kind, name: `swap:${model}@${lo}-${hi}`, param: null, swap: { model, sigmaLo: lo, sigmaHi: hi } };
    }
  }
}

/** Parse a comma-separated method list; duplicate names are an error. */
export function parseMethods(spec: string, arg = '--methods'): MethodSpec[] {
  const parts = spec.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) throw new Error(`${arg}: expected a comma-separated list of methods (${FORMS})`);
  const out = parts.map((p) => parseMethod(p, arg));
  const seen = new Set<string>();
  for (const m of out) {
    if (seen.has(m.name)) throw new Error(`${arg}: method ${m.name} is listed twice`);
    seen.add(m.name);
  }
  return out;
}

/** Whether the method needs a trained text model (prompt, embedding or attention transforms). */
export function needsTextModel(m: MethodSpec): boolean {
  return m.kind === 'random-word' || m.kind === 'random-number' || m.kind === 'wen' || m.kind === 'ren';
}

/** The guidance schedule of a method at scale λ (prompt transforms use constant λ). */
export function methodGuidance(m: MethodSpec, lambda: number): GuidanceSchedule {
  switch (m.kind) {
    case 'stp':
      return stp(lambda, m.param!);
    case 'og+stp':
      return stp(lambda, m.param!, m.ogScale ?? lambda);
    case 'dtp':
      return dtp(lambda);
    case 'og+dtp':
      return dtp(lambda, m.ogScale ?? lambda);
    case 'interval':
      return interval(lambda, m.range![1], m.range![0]);
    default:
      return constant(lambda);
  }
}

/** The seed of the prompt perturbation of condition k (distinct per condition, fixed per run seed). */
export function perturbationSeed(k: number, runSeed: number): number {
  const r = mulberry32((runSeed * 0x9e3779b1 + k * 0x85ebca6b) >>> 0);
  return Math.floor(r() * 0x7fffffff);
}

/** One sampling unit of a prepared method: a denoiser for some of the seeds. */
export interface MethodPart {
  readonly denoiser: Denoiser;
  /** Indices into the evaluated seed list this part samples. */
  readonly seedIndices: readonly number[];
}

/** A method ready to sample. */
export interface PreparedMethod {
  readonly spec: MethodSpec;
  readonly guidance: GuidanceSchedule;
  /** Denoisers and the seeds each samples (one part, except Wen et al.: one per group of seeds). */
  readonly parts: readonly MethodPart[];
  /** Wall seconds of the preparation (prompt encoding, embedding optimisation, graph rebuild). */
  readonly seconds: number;
  /** What the preparation did, for the record (perturbed prompts, Wen losses …). */
  readonly details: Record<string, unknown>;
  dispose(): Promise<void>;
}

/**
 * A model whose prompts are texts that can be re-encoded (a Stable Diffusion export): the prompt
 * perturbations (random-word / random-number) use it when there is no trained memscope text model.
 */
export interface PromptTextModel {
  /** The text of condition k. */
  readonly texts: readonly string[];
  /** Words random-word inserts (the tokenizer's whole-word tokens). */
  readonly vocabulary: readonly string[];
  /** A denoiser with the same conditions (ids, targets) whose condition k is `texts[k]` encoded; its dispose releases only what it made. */
  denoiserFor(texts: readonly string[]): Promise<Denoiser>;
}

/** What {@link prepareMethod} needs. */
export interface MethodContext {
  /** The model's plain denoiser (guidance methods sample it directly). */
  readonly denoiser: Denoiser;
  /** The trained model (required for the prompt, embedding and attention methods). */
  readonly trained: TrainedModel | null;
  /** Guidance scale λ. */
  readonly lambda: number;
  /** Prompts evaluated (condition indices). */
  readonly conds: readonly CondRef[];
  /** x_T of every evaluated seed `[N, ...shape]` (Wen et al. optimise on them). */
  readonly noise: Tensor;
  /** The first timestep of the sampler grid (Wen et al.'s optimisation step). */
  readonly firstTimestep: number;
  /** Seed of the prompt perturbations (default 0). */
  readonly runSeed?: number;
  /** Re-encodable prompt texts (Stable Diffusion exports), for random-word / random-number without a trained text model. */
  readonly textModel?: PromptTextModel;
  /**
   * Opens the model's U-Net with cross-attention exposed (Stable Diffusion exports: `src.sd.attention`),
   * for `ren` without a trained text model; the prepared method disposes what it opened. Default none.
   */
  readonly attention?: () => Promise<ScaledAttentionUnet>;
}

function rowsOf(t: Tensor, idx: readonly number[]): Tensor {
  const per = t.data.length / t.dims[0]!;
  const out = new Float32Array(idx.length * per);
  idx.forEach((r, i) => out.set(t.data.subarray(r * per, (r + 1) * per), i * per));
  return { dims: [idx.length, ...t.dims.slice(1)], data: out };
}

/** Build what a method samples with (see the module table). The caller disposes it. */
export async function prepareMethod(m: MethodSpec, ctx: MethodContext): Promise<PreparedMethod> {
  const started = performance.now();
  const guidance = methodGuidance(m, ctx.lambda);
  const N = ctx.noise.dims[0]!;
  const allSeeds = Array.from({ length: N }, (_, i) => i);
  const done = (parts: MethodPart[], details: Record<string, unknown>, dispose: () => Promise<void>): PreparedMethod => ({
    spec: m,
    guidance,
    parts,
    seconds: (performance.now() - started) / 1000,
    details,
    dispose,
  });
  if (m.kind === 'swap') {
    const sw = m.swap!;
    const gen = await loadTrainedModel(sw.model).catch((e: Error) => {
      throw new Error(`--methods: ${m.name}: cannot load the generalizing model in ${sw.model}: ${e.message}`);
    });
    const genIds = new Map(gen.denoiser.conditions.map((c, i) => [c.id, i] as const));
    const prompts = ctx.trained?.prompts ?? [];
    const mapped: Record<string, string | null> = {};
    // a condition goes to the generalizing condition with the same id, else to the class prompt of its image's class, else to e_∅
    const mapCond = (c: CondRef): CondRef => {
      if (c === null) return null;
      const id = ctx.denoiser.conditions[c]!.id;
      const label = prompts[c]?.label;
      const g = genIds.get(id) ?? (label === undefined ? undefined : genIds.get(`class:${label}`));
      mapped[id] = g === undefined ? null : gen.denoiser.conditions[g]!.id;
      return g ?? null;
    };
    const d = swapDenoiser(ctx.denoiser, gen.denoiser, { sigmaLo: sw.sigmaLo, sigmaHi: sw.sigmaHi }, { disposeInner: false, mapCond, name: `${ctx.denoiser.name}+${m.name}` });
    return done([{ denoiser: d, seedIndices: allSeeds }], { generalizing: sw.model, band: [sw.sigmaLo, sw.sigmaHi], counts: d.counts, mapped }, async () => {
      await gen.denoiser.dispose?.();
    });
  }
  if (!needsTextModel(m)) return done([{ denoiser: ctx.denoiser, seedIndices: allSeeds }], {}, async () => {});
  const runSeed0 = ctx.runSeed ?? 0;
  const tmx = ctx.textModel;
  if ((ctx.trained === null || ctx.trained.textEncoderBytes === null) && tmx !== undefined && (m.kind === 'random-word' || m.kind === 'random-number')) {
    // Somepalli et al.'s prompt perturbations on a model that re-encodes text itself (a Stable Diffusion export)
    const texts = tmx.texts.map((t, k) =>
      m.kind === 'random-word'
        ? randomWordInsertion(t, { seed: perturbationSeed(k, runSeed0), count: m.param!, vocabulary: tmx.vocabulary })
        : randomNumberInsertion(t, { seed: perturbationSeed(k, runSeed0), count: m.param! }),
    );
    const d = await tmx.denoiserFor(texts);
    const perturbed = Object.fromEntries(ctx.conds.filter((c): c is number => c !== null).map((c) => [tmx.texts[c]!, texts[c]!]));
    return done([{ denoiser: d, seedIndices: allSeeds }], { perturbed }, async () => {
      await d.dispose?.();
    });
  }
  if ((ctx.trained === null || ctx.trained.textEncoderBytes === null) && ctx.attention !== undefined && m.kind === 'ren') {
    // Ren et al. on a model whose U-Net is exposed by graph surgery (a Stable Diffusion export)
    const att = await ctx.attention();
    const d = await renMitigatedDenoiser({ denoiser: ctx.denoiser, attention: att }, { startScale: m.param!, name: `${ctx.denoiser.name}+${m.name}` }).catch(async (e: unknown) => {
      await att.dispose();
      throw e;
    });
    return done([{ denoiser: d, seedIndices: allSeeds }], { startScale: m.param, maskPadding: REN_DEFAULTS.maskPadding, layers: att.layers.length }, async () => {
      await d.dispose?.();
    });
  }
  const tm = ctx.trained;
  if (tm === null || tm.textEncoderBytes === null) throw new Error(`--methods: ${m.name} needs a trained text-conditioned model (prompt, embedding or attention transforms); this model has no text encoder`);
  const runSeed = ctx.runSeed ?? 0;
  switch (m.kind) {
    case 'random-word':
    case 'random-number': {
      const vocabulary = m.kind === 'random-word' ? modelVocabulary(tm) : [];
      const texts = tm.prompts.map((p, k) =>
        m.kind === 'random-word'
          ? randomWordInsertion(p.text, { seed: perturbationSeed(k, runSeed), count: m.param!, vocabulary })
          : randomNumberInsertion(p.text, { seed: perturbationSeed(k, runSeed), count: m.param! }),
      );
      const d = await textDenoiser(tm, texts, { name: `${tm.denoiser.name}+${m.name}` });
      const perturbed = Object.fromEntries(ctx.conds.filter((c): c is number => c !== null).map((c) => [tm.prompts[c]!.text, texts[c]!]));
      return done([{ denoiser: { ...d, conditions: tm.denoiser.conditions }, seedIndices: allSeeds }], { perturbed }, async () => {
        await d.dispose?.();
      });
    }
    case 'ren': {
      const d = await renMitigatedDenoiser(tm, { startScale: m.param! });
      return done([{ denoiser: d, seedIndices: allSeeds }], { startScale: m.param, maskPadding: REN_DEFAULTS.maskPadding }, async () => {
        await d.dispose?.();
      });
    }
    case 'wen': {
      const groups: number[][] = [];
      for (let i = 0; i < N; i += WEN_GROUP) groups.push(allSeeds.slice(i, i + WEN_GROUP));
      const parts: MethodPart[] = [];
      const optimisation: { cond: number; seeds: number[]; iterations: number; firstLoss: number; lastLoss: number; reachedTarget: boolean }[] = [];
      const objectives = new Map<number, Awaited<ReturnType<typeof createWenObjective>>>();
      try {
        for (const g of groups) {
          let obj = objectives.get(g.length);
          if (!obj) objectives.set(g.length, (obj = await createWenObjective(tm, g.length)));
          const xT = rowsOf(ctx.noise, g);
          const embeddings = new Map<number, Tensor>();
          for (const c of ctx.conds) {
            if (c === null) continue;
            const r = await optimizePromptEmbedding(tm, c, xT, ctx.firstTimestep, { lossTarget: m.param!, objective: obj });
            embeddings.set(c, r.embedding);
            optimisation.push({ cond: c, seeds: g, iterations: r.iterations, firstLoss: r.losses[0] ?? NaN, lastLoss: r.losses[r.losses.length - 1] ?? NaN, reachedTarget: r.reachedTarget });
          }
          parts.push({ denoiser: await wenDenoiser(tm, embeddings, { name: `${tm.denoiser.name}+${m.name}` }), seedIndices: g });
        }
      } catch (e) {
        for (const p of parts) await p.denoiser.dispose?.();
        throw e;
      } finally {
        for (const o of objectives.values()) await o.dispose();
      }
      const iters = optimisation.map((o) => o.iterations);
      return done(
        parts,
        {
          lossTarget: m.param,
          group: WEN_GROUP,
          meanIterations: iters.reduce((a, b) => a + b, 0) / Math.max(1, iters.length),
          reachedTarget: optimisation.filter((o) => o.reachedTarget).length / Math.max(1, optimisation.length),
          meanFirstLoss: optimisation.reduce((a, o) => a + o.firstLoss, 0) / Math.max(1, optimisation.length),
          optimisation,
        },
        async () => {
          for (const p of parts) await p.denoiser.dispose?.();
        },
      );
    }
    default:
      throw new Error(`unreachable method ${m.kind}`);
  }
}
