/**
 * Mitigation methods by name: a facade over the registry in `mitigate/methods/` (one module per
 * method; see `methods/registry.ts` for the table and `guidance/spec.ts` for the grammar).
 */
export { METHODS, METHOD_KINDS, METHOD_FORMS, DEFAULT_METHODS, findMethod, parseMethod, parseMethods, methodRequires, isScheduleMethod, methodLambda, isSwitchingMethod, needsTextModel, methodGuidance, skippedMethods, prepareMethod, GATE_PREFIX, isGatedMethod, innerMethod, withGateThreshold, type GateParams } from './methods/registry.ts';
export { perturbationSeed, DEFAULT_INSERTIONS } from './methods/prompt-noise.ts';
export { WEN_GROUP } from './methods/wen.ts';
export { defineMethod } from './methods/define.ts';
export { CAPABILITIES } from './methods/types.ts';
export type { Capability, MethodSpec, MethodContext, MethodPart, Preparation, PreparedMethod, PromptTextModel, MitigationMethod, RegisteredMethod } from './methods/types.ts';
