/**
 * The guidance-schedule methods (cfg, stp, og+stp, dtp, og+dtp, interval, linear, cosine): one
 * registered method per row of `SCHEDULE_RULES`, each reading the shared grammar into the same
 * `GuidanceSpec` that `--guidance` gives; `:λ` overrides `--scale` for that method.
 */
import { z } from 'zod';
import { guidanceSchedule, guidanceSpecFromTerms, guidanceSpecName, SCHEDULE_KINDS, SCHEDULE_RULES, type GuidanceSpec, type ScheduleRule } from '../../guidance/spec.ts';
import { defineMethod } from './define.ts';
import type { RegisteredMethod } from './types.ts';

/** The zod form of a `GuidanceSpec` (values were checked by the grammar; this fixes the shape). */
const GuidanceSpecSchema = z.object({
  kind: z.enum(SCHEDULE_KINDS),
  lambda: z.number().finite().optional(),
  tau: z.number().finite().optional(),
  range: z.tuple([z.number().finite(), z.number().finite()]).optional(),
  og: z.number().finite().optional(),
});
type SpecParams = z.infer<typeof GuidanceSpecSchema>;

/** Drop the keys zod leaves `undefined` (exactOptionalPropertyTypes: absent, not undefined). */
function asSpec(p: SpecParams): GuidanceSpec {
  return Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as unknown as GuidanceSpec;
}

function scheduleMethod(rule: ScheduleRule): RegisteredMethod {
  return defineMethod<SpecParams>({
    name: rule.kind,
    form: rule.form,
    about: rule.about,
    params: GuidanceSpecSchema,
    requires: [],
    isSchedule: true,
    read: (t, f) => guidanceSpecFromTerms(t, f),
    label: (p) => guidanceSpecName(asSpec(p)),
    guidance: (p, scale) => guidanceSchedule(asSpec(p), scale),
  });
}

/** Every guidance-schedule method, in the order of `SCHEDULE_RULES`. */
export const GUIDANCE_METHODS: readonly RegisteredMethod[] = SCHEDULE_RULES.map(scheduleMethod);

/** The `GuidanceSpec` of a schedule method's spec. */
export function guidanceSpecOf(params: Readonly<Record<string, unknown>>): GuidanceSpec {
  return asSpec(GuidanceSpecSchema.parse(params));
}
