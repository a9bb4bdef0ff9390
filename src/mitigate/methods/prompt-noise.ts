/**
 * Somepalli et al.'s prompt perturbations as methods: `random-word[:n]` inserts n random
 * vocabulary words, `random-number[:n]` n random integers in [0, 100000), seeded per condition
 * ({@link perturbationSeed}); the model samples the perturbed prompt with constant λ, re-encoded
 * by the source's `text` capability (a trained text model's encoder, a Stable Diffusion export's).
 */
import { z } from 'zod';
import { mulberry32 } from '../../random/mulberry32.ts';
import { specNumber } from '../../guidance/spec.ts';
import { randomNumberInsertion, randomWordInsertion } from '../prompt-noise.ts';
import { defineMethod, onlyParts } from './define.ts';
import type { MethodContext, MethodSpec, Preparation, RegisteredMethod } from './types.ts';

/** Default number of insertions. */
export const DEFAULT_INSERTIONS = 1;

/** The seed of the prompt perturbation of condition k (distinct per condition, fixed per run seed). */
export function perturbationSeed(k: number, runSeed: number): number {
  const r = mulberry32((runSeed * 0x9e3779b1 + k * 0x85ebca6b) >>> 0);
  return Math.floor(r() * 0x7fffffff);
}

const Params = z.object({
  insertions: z.number().int('the number of insertions must be a positive integer').min(1, 'the number of insertions must be a positive integer').default(DEFAULT_INSERTIONS),
});
type P = z.infer<typeof Params>;

/** The message when the source lacks a capability the method needs (prepare-time; the commands skip such methods before, with the source's reason). */
export function needsTextMessage(name: string, capability = 'text'): string {
  return `--methods: ${name} needs the model capability '${capability}' (prompt, embedding or attention transforms); this model source has none`;
}

async function preparePerturbation(kind: 'random-word' | 'random-number', p: P, ctx: MethodContext, spec: MethodSpec): Promise<Preparation> {
  const runSeed = ctx.runSeed ?? 0;
  const seedIndices = Array.from({ length: ctx.noise.dims[0]! }, (_, i) => i);
  const perturb = (text: string, k: number, vocabulary: readonly string[]): string =>
    kind === 'random-word'
      ? randomWordInsertion(text, { seed: perturbationSeed(k, runSeed), count: p.insertions, vocabulary })
      : randomNumberInsertion(text, { seed: perturbationSeed(k, runSeed), count: p.insertions });
  const text = ctx.capabilities.text;
  if (text === undefined) throw new Error(needsTextMessage(spec.name));
  const vocabulary = kind === 'random-word' ? text.vocabulary : [];
  const texts = text.texts.map((t, k) => perturb(t, k, vocabulary));
  const d = await text.denoiserFor(texts, `${ctx.denoiser.name}+${spec.name}`);
  const perturbed = Object.fromEntries(ctx.conds.filter((c): c is number => c !== null).map((c) => [text.texts[c]!, texts[c]!]));
  return { parts: [{ denoiser: d, seedIndices }], details: { perturbed }, dispose: async () => void (await d.dispose?.()) };
}

function perturbation(kind: 'random-word' | 'random-number'): RegisteredMethod {
  const form = `${kind}[:n]`;
  return defineMethod<P>({
    name: kind,
    form,
    about: kind === 'random-word' ? 'n random vocabulary words inserted into the prompt (Somepalli et al.; n = 1)' : 'n random integers in [0, 100000) inserted (Somepalli et al.; n = 1)',
    params: Params,
    requires: ['text'],
    read: (t, f) => {
      onlyParts(t, f, form, ['colon']);
      return t.colon === undefined ? {} : { insertions: specNumber(t.colon, 'the number of insertions', t, f) };
    },
    label: (p) => (p.insertions === DEFAULT_INSERTIONS ? kind : `${kind}:${p.insertions}`),
    prepare: (p, ctx, spec) => preparePerturbation(kind, p, ctx, spec),
  });
}

/** random-word[:n]. */
export const RANDOM_WORD = perturbation('random-word');
/** random-number[:n]. */
export const RANDOM_NUMBER = perturbation('random-number');
