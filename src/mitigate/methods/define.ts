/** `defineMethod`: a typed {@link MitigationMethod} → a {@link RegisteredMethod} the registry can hold. */
import { constant } from '../../guidance/schedules.ts';
import type { SpecFlag, SpecTerms } from '../../guidance/spec.ts';
import type { MethodContext, MethodSpec, MitigationMethod, Preparation, RegisteredMethod } from './types.ts';

/** Erase a method's parameter type: parameters are validated by its zod schema when parsed. */
export function defineMethod<P>(m: MitigationMethod<P>): RegisteredMethod {
  return {
    name: m.name,
    form: m.form,
    about: m.about,
    requires: m.requires,
    isSchedule: m.isSchedule ?? false,
    parse(t: SpecTerms, f: SpecFlag): MethodSpec {
      const r = m.params.safeParse(m.read(t, f));
      if (!r.success) throw new Error(`${f.flag} "${t.text}": ${r.error.issues[0]?.message ?? 'invalid parameters'}; expected ${m.form}`);
      return { kind: m.name, name: m.label(r.data), params: r.data as Readonly<Record<string, unknown>> };
    },
    guidance: (spec, scale) => (m.guidance ? m.guidance(spec.params as P, scale) : constant(scale)),
    prepare(spec: MethodSpec, ctx: MethodContext): Promise<Preparation> {
      if (m.prepare) return m.prepare(spec.params as P, ctx, spec);
      const seedIndices = Array.from({ length: ctx.noise.dims[0]! }, (_, i) => i);
      return Promise.resolve({ parts: [{ denoiser: ctx.denoiser, seedIndices }], details: {}, dispose: async () => {} });
    },
  };
}

/**
 * Refuse grammar parts a method does not take (`:p`, `@…`, `/…`), naming the flag, the item and
 * the method's form.
 */
export function onlyParts(t: SpecTerms, f: SpecFlag, form: string, allowed: readonly ('colon' | 'at' | 'slash')[]): void {
  const what = { colon: '":" parameter', at: '"@" part', slash: '"/" part' } as const;
  for (const k of ['colon', 'at', 'slash'] as const) {
    if (t[k] !== undefined && !allowed.includes(k)) throw new Error(`${f.flag} "${t.text}": ${t.name} takes no ${what[k]}; expected ${form}`);
  }
}
