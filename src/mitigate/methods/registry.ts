/**
 * The registry of mitigation methods (Jain et al. 2025's Tables 1–4 and the related papers): one
 * module per method, found by name. `parseMethod` reads the shared grammar
 * (`guidance/spec.ts`), `prepareMethod` builds what a method samples with, `methodGuidance` gives
 * its schedule, `skippedMethods` says which methods a source cannot run and why (from their
 * `requires` and the source's capabilities). `memscope evaluate` and the mitigation bench go
 * through here, so every row of the evaluation table runs through the same sampler loop and is
 * timed the same way.
 *
 * | name                        | what it does                                                           |
 * |-----------------------------|------------------------------------------------------------------------|
 * | `cfg[:λ]`                   | no mitigation: constant λ                                              |
 * | `stp[:λ][@τ]`               | s = 0 while t > τ, λ from τ on (static transition point; τ = 500)      |
 * | `og+stp[:λ][@τ][/λog]`      | s = −λog while t > τ (opposite guidance; λog = λ unless given)         |
 * | `dtp[:λ]`                   | Algorithm 1: s = 0 until the first local minimum of d_t, then λ        |
 * | `og+dtp[:λ][/λog]`          | Algorithm 1 with −λog before the switch (λog = λ unless given)         |
 * | `interval[:λ][@lo-hi]`      | λ only for lo ≤ t ≤ hi (Kynkäänniemi et al. 2024; 200–700)             |
 * | `linear[:λ]`, `cosine[:λ]`  | ramps                                                                  |
 * | `random-word[:n]`           | n random vocabulary words inserted into the prompt (Somepalli et al.)  |
 * | `random-number[:n]`         | n random integers in [0, 100000) inserted (Somepalli et al.)           |
 * | `wen[:l]`                   | prompt embedding optimised until ‖ε_c − ε_u‖ ≤ l at x_T (Wen et al.)   |
 * | `ren[:c]`                   | start-token logits × c, padding masked (Ren et al.)                    |
 * | `swap:DIR@lo-hi`            | Dodson & Gao's denoiser swap over a σ band; constant λ                 |
 *
 * A method written `gated+M` (detect-then-mitigate, Jain et al.'s limitations) samples M only for
 * the prompts whose Wen et al. first-step score exceeds a threshold calibrated on held-out
 * prompts (`study/gate.ts`), plain CFG for the others; `memscope evaluate` runs it.
 *
 * λ omitted → `--scale` (default 7.5). For guidance methods `:` gives λ; for the others their own
 * parameter (n, l, c, DIR).
 */
import { didYouMean } from '../../text/suggest.ts';
import { splitSpecTerms, type SpecFlag } from '../../guidance/spec.ts';
import type { GuidanceSchedule } from '../../guidance/schedules.ts';
import { GUIDANCE_METHODS } from './guidance.ts';
import { RANDOM_NUMBER, RANDOM_WORD } from './prompt-noise.ts';
import { WEN } from './wen.ts';
import { REN } from './ren.ts';
import { CADS } from './cads.ts';
import { SWAP } from './swap.ts';
import type { Capability, MethodContext, MethodSpec, PreparedMethod, RegisteredMethod } from './types.ts';

/** Every registered method, in the order of Jain et al.'s tables (guidance schedules from `SCHEDULE_RULES`). */
export const METHODS: readonly RegisteredMethod[] = [GUIDANCE_METHODS[0]!, RANDOM_WORD, RANDOM_NUMBER, WEN, REN, CADS, ...GUIDANCE_METHODS.slice(1), SWAP];

/** Method names, in registry order. */
export const METHOD_KINDS: readonly string[] = METHODS.map((m) => m.name);

/** The forms of every method, for help texts and errors. */
export const METHOD_FORMS = METHODS.map((m) => m.form).join(' | ');

/** The default method list: every method with its default parameter, and Wen et al. also at l_target = 1 (as Jain et al.'s Table 3). */
export const DEFAULT_METHODS = 'cfg,random-word,random-number,wen,wen:1,ren,stp,og+stp,dtp,og+dtp,interval';

/** The registered method of a name (undefined when none). */
export function findMethod(name: string): RegisteredMethod | undefined {
  return METHODS.find((m) => m.name === name);
}

/** The prefix of a gated method (`gated+og+dtp`). */
export const GATE_PREFIX = 'gated+';

/** The parameters of a gated method: the method it gates and, once calibrated, the threshold. */
export interface GateParams {
  readonly inner: MethodSpec;
  /** Wen et al.'s first-step score above which a prompt is mitigated (null until `memscope evaluate` calibrates it). */
  readonly threshold: number | null;
  /** The calibration's target false-positive rate and prompt count (recorded in the unit key). */
  readonly fpr: number | null;
  readonly calibrationPrompts: number | null;
}

/** Whether `m` is a gated method (`gated+M`). */
export function isGatedMethod(m: MethodSpec): boolean {
  return m.kind === 'gated';
}

/** The method a gated method applies to flagged prompts (`m` itself for every other method). */
export function innerMethod(m: MethodSpec): MethodSpec {
  return isGatedMethod(m) ? (m.params as unknown as GateParams).inner : m;
}

/** `m` (gated) with its calibrated threshold set. */
export function withGateThreshold(m: MethodSpec, threshold: number, fpr: number, calibrationPrompts: number): MethodSpec {
  if (!isGatedMethod(m)) throw new Error(`withGateThreshold: ${m.name} is not a gated method`);
  const params: GateParams = { inner: innerMethod(m), threshold, fpr, calibrationPrompts };
  return { ...m, params: params as unknown as Record<string, unknown> };
}

function methodOf(spec: MethodSpec): RegisteredMethod {
  const m = findMethod(spec.kind);
  if (!m) throw new Error(`no method "${spec.kind}" is registered`);
  return m;
}

/** Parse one method (see the module table); `arg` names the flag in errors. */
export function parseMethod(text: string, arg = '--methods'): MethodSpec {
  const f: SpecFlag = { flag: arg, noun: 'method', forms: METHOD_FORMS };
  const s = text.trim();
  if (s.toLowerCase().startsWith(GATE_PREFIX)) {
    const inner = parseMethod(s.slice(GATE_PREFIX.length), arg);
    if (isGatedMethod(inner)) throw new Error(`${arg}: "${s}" gates twice; write gated+ once`);
    if (inner.kind === 'cfg') throw new Error(`${arg}: "${s}": cfg is no mitigation, there is nothing to gate; gate a mitigation (gated+og+dtp, gated+wen, …)`);
    const params: GateParams = { inner, threshold: null, fpr: null, calibrationPrompts: null };
    return { kind: 'gated', name: `${GATE_PREFIX}${inner.name}`, params: params as unknown as Record<string, unknown> };
  }
  const head = /^[A-Za-z][A-Za-z0-9_+-]*/.exec(s)?.[0]?.toLowerCase() ?? s;
  const m = findMethod(head === 'constant' ? 'cfg' : head);
  if (!m) throw new Error(`${arg}: unknown method "${s}"${didYouMean(head, METHOD_KINDS)}; expected ${METHOD_FORMS}`);
  return m.parse(splitSpecTerms(s, f), f);
}

/** Parse a comma-separated method list; duplicate names are an error. */
export function parseMethods(text: string, arg = '--methods'): MethodSpec[] {
  const parts = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) throw new Error(`${arg}: expected a comma-separated list of methods (${METHOD_FORMS})`);
  const out = parts.map((p) => parseMethod(p, arg));
  const seen = new Set<string>();
  for (const m of out) {
    if (seen.has(m.name)) throw new Error(`${arg}: method ${m.name} is listed twice`);
    seen.add(m.name);
  }
  return out;
}

/** The capabilities a method needs from its source. */
export function methodRequires(m: MethodSpec): readonly Capability[] {
  return methodOf(innerMethod(m)).requires;
}

/** Whether the method is a guidance schedule (its `:` is λ). */
export function isScheduleMethod(m: MethodSpec): boolean {
  return !isGatedMethod(m) && methodOf(m).isSchedule;
}

/** λ a guidance method writes itself (`:λ`), or null (it samples at `--scale`). */
export function methodLambda(m: MethodSpec): number | null {
  if (!isScheduleMethod(m)) return null;
  const l = m.params['lambda'];
  return typeof l === 'number' ? l : null;
}

/** Whether the method's schedule switches (dtp, og+dtp: the evaluation reports who never switched). */
export function isSwitchingMethod(m: MethodSpec): boolean {
  return m.kind === 'dtp' || m.kind === 'og+dtp';
}

/** Whether the method needs a model that re-encodes, embeds or attends to prompt text. */
export function needsTextModel(m: MethodSpec): boolean {
  return methodRequires(m).length > 0;
}

/** The guidance schedule of a method at `--scale` λ (its own `:λ` wins; prompt transforms use constant λ). */
export function methodGuidance(m: MethodSpec, scale: number): GuidanceSchedule {
  const inner = innerMethod(m);
  return methodOf(inner).guidance(inner, scale);
}

/**
 * Methods the source cannot run: `capabilities` maps each capability to null (present) or why
 * it is missing (see `study/capabilities.ts`). Returns each skipped method with the reason of its
 * first missing capability.
 */
export function skippedMethods(methods: readonly MethodSpec[], capabilities: ReadonlyMap<Capability, string | null>): { method: MethodSpec; reason: string }[] {
  const out: { method: MethodSpec; reason: string }[] = [];
  for (const m of methods) {
    for (const c of methodRequires(m)) {
      const why = capabilities.get(c);
      if (why === undefined) throw new Error(`skippedMethods: capability ${c} of ${m.name} was not checked`);
      if (why !== null) {
        out.push({ method: m, reason: why });
        break;
      }
    }
  }
  return out;
}

/** Build what a method samples with (see the module table). The caller disposes it. */
export async function prepareMethod(m: MethodSpec, ctx: MethodContext): Promise<PreparedMethod> {
  if (isGatedMethod(m)) throw new Error(`prepareMethod: ${m.name} is prepared per prompt by the evaluation (it samples ${innerMethod(m).name} for flagged prompts and cfg for the others)`);
  const started = performance.now();
  const method = methodOf(m);
  const guidance = method.guidance(m, ctx.lambda);
  const p = await method.prepare(m, ctx);
  return { spec: m, guidance, parts: p.parts, details: p.details, dispose: p.dispose, seconds: (performance.now() - started) / 1000 };
}
