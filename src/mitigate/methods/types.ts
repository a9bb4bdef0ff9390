/**
 * The shape of a mitigation method (issue 15 §6): one small module per method, `{ name, params
 * (zod), requires (capabilities), guidance?, prepare? }`, registered in `registry.ts`. A method
 * reads its parameters from the shared grammar (`guidance/spec.ts`), names itself canonically,
 * and either changes the guidance schedule, or prepares the denoisers to sample (a prompt,
 * embedding, attention or model transform), or both.
 */
import type { z } from 'zod';
import type { Denoiser, CondRef } from '../../denoisers/denoiser.ts';
import type { GuidanceSchedule } from '../../guidance/schedules.ts';
import type { SpecFlag, SpecTerms } from '../../guidance/spec.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import type { Capability, ModelCapabilities, TextCapability } from '../capabilities.ts';

export { CAPABILITIES, type Capability } from '../capabilities.ts';

/** A parsed method: the same object whichever command parsed it. */
export interface MethodSpec {
  /** The registered method name (`cfg`, `og+dtp`, `random-word`, …). */
  readonly kind: string;
  /** Canonical spelling: row name in tables, parseable back to the same spec. */
  readonly name: string;
  /** The method's parameters as its zod schema validated them (guidance methods: the `GuidanceSpec`). */
  readonly params: Readonly<Record<string, unknown>>;
}

/** Re-encodable prompt texts: the `text` capability (`mitigate/capabilities.ts`) under its older name. */
export type PromptTextModel = TextCapability;

/** What a method's `prepare` is given. */
export interface MethodContext {
  /** The model's plain denoiser (guidance methods sample it directly). */
  readonly denoiser: Denoiser;
  /** What the model source can do (the prompt, embedding and attention methods need `text`, `embeddingGradient`, `attention`). */
  readonly capabilities: ModelCapabilities;
  /** The class label of condition k's prompt (its training image's class), null when unknown; default none (swap maps by id, then by class). */
  readonly classOf?: (cond: number) => number | null;
  /** Guidance scale λ (`--scale`); a method's own `:λ` overrides it for its schedule. */
  readonly lambda: number;
  /** Prompts evaluated (condition indices). */
  readonly conds: readonly CondRef[];
  /** x_T of every evaluated seed `[N, ...shape]` (Wen et al. optimise on them). */
  readonly noise: Tensor;
  /** The first timestep of the sampler grid (Wen et al.'s optimisation step). */
  readonly firstTimestep: number;
  /** Seed of the prompt perturbations (default 0). */
  readonly runSeed?: number;
}

/** One sampling unit of a prepared method: a denoiser for some of the seeds. */
export interface MethodPart {
  readonly denoiser: Denoiser;
  /** Indices into the evaluated seed list this part samples. */
  readonly seedIndices: readonly number[];
}

/** What a method's `prepare` returns. */
export interface Preparation {
  /** Denoisers and the seeds each samples. */
  readonly parts: readonly MethodPart[];
  /** What the preparation did, for the record (perturbed prompts, Wen losses …). */
  readonly details: Record<string, unknown>;
  dispose(): Promise<void>;
}

/** A method ready to sample. */
export interface PreparedMethod extends Preparation {
  readonly spec: MethodSpec;
  readonly guidance: GuidanceSchedule;
  /** Wall seconds of the preparation (prompt encoding, embedding optimisation, graph rebuild). */
  readonly seconds: number;
}

/** One mitigation method with parameters `P`. */
export interface MitigationMethod<P> {
  /** Registered name (what the grammar's `name` part matches). */
  readonly name: string;
  /** Its grammar, for help and errors (e.g. `wen[:l_target]`). */
  readonly form: string;
  /** One line: what it does and whose method it is. */
  readonly about: string;
  /** Its parameters; defaults live here, messages of refused values too. */
  readonly params: z.ZodType<P>;
  /** Capabilities the model source must have (none: any conditional denoiser). */
  readonly requires: readonly Capability[];
  /** Whether the method is a guidance schedule (its `:p` is λ; `--guidance` accepts it). */
  readonly isSchedule?: boolean;
  /** The grammar's parts → the input of `params` (throw naming `f.flag` for a part it does not take). */
  read(t: SpecTerms, f: SpecFlag): unknown;
  /** Canonical spelling of validated parameters. */
  label(p: P): string;
  /** The guidance schedule at `--scale` λ (absent: constant λ). */
  guidance?(p: P, scale: number): GuidanceSchedule;
  /** Builds what the method samples with (absent: the model's own denoiser for every seed). */
  prepare?(p: P, ctx: MethodContext, spec: MethodSpec): Promise<Preparation>;
}

/** A registered method with its parameter type erased (see `defineMethod`). */
export interface RegisteredMethod {
  readonly name: string;
  readonly form: string;
  readonly about: string;
  readonly requires: readonly Capability[];
  readonly isSchedule: boolean;
  /** Parse grammar parts into a spec (validating the parameters). */
  parse(t: SpecTerms, f: SpecFlag): MethodSpec;
  guidance(spec: MethodSpec, scale: number): GuidanceSchedule;
  prepare(spec: MethodSpec, ctx: MethodContext): Promise<Preparation>;
}
