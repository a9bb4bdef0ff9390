/**
 * Guidance schedules: functions of (step index, timestep, history of d_t) → guidance scale s
 * (SPEC §1). A schedule is pure: the scale at a step depends only on its arguments, so the
 * same schedule object serves every seed and every run, and "never switch back" follows from
 * the history only growing.
 */

/** What a schedule sees at one step of one trajectory. */
export interface GuidanceContext {
  /** 0-based inference step. */
  readonly step: number;
  readonly numSteps: number;
  /** Timestep passed to the model at this step. */
  readonly t: number;
  /** Number of training timesteps (1000), for ramps keyed on t/T. */
  readonly numTrainTimesteps: number;
  /** d_t = ‖ε_c − ε_u‖² of this trajectory at steps 0..step (the current one last). */
  readonly dHistory: readonly number[];
}

/** A guidance schedule (SPEC §1). `scale` must be deterministic in its arguments. */
export interface GuidanceSchedule {
  /** Canonical string form, parseable by `parseGuidance` (guidance/spec.ts) (e.g. `og+dtp:7.5`). */
  readonly label: string;
  /** The guidance scale s for this step. */
  scale(ctx: GuidanceContext): number;
  /**
   * For schedules that switch (stp, dtp, og+…): the positive scale λ they switch to. The
   * combinator records per trajectory the first step that used it (the transition point).
   */
  readonly switchesTo?: number;
}

function checkScale(name: string, v: number): void {
  if (!Number.isFinite(v)) throw new Error(`guidance ${name}: scale must be a finite number, got ${v}`);
}

/** Standard classifier-free guidance with constant scale λ (papers: λ = 7.5). */
export function constant(lambda: number): GuidanceSchedule {
  checkScale('constant', lambda);
  return { label: `constant:${lambda}`, scale: () => lambda };
}

/** Guidance limited to an interval (Kynkäänniemi et al. 2024): λ for t_lo ≤ t ≤ t_hi, 0 outside. */
export function interval(lambda: number, tHi: number, tLo: number): GuidanceSchedule {
  checkScale('interval', lambda);
  if (!(tLo <= tHi)) throw new Error(`guidance interval: need t_lo ≤ t_hi, got ${tLo}-${tHi}`);
  return { label: `interval:${lambda}@${tLo}-${tHi}`, scale: (c) => (c.t >= tLo && c.t <= tHi ? lambda : 0) };
}

/**
 * Static transition point (Jain et al., Scenario 1 uses τ = 500): s = 0 while t > τ, then λ.
 * With `og`, s = −λ_og while t > τ (opposite guidance).
 */
export function stp(lambda: number, tau: number, og?: number): GuidanceSchedule {
  checkScale('stp', lambda);
  if (og !== undefined) checkScale('og', og);
  const before = og === undefined ? 0 : -og;
  const first = (c: GuidanceContext): boolean => c.t <= tau;
  return {
    label: `${og === undefined ? '' : 'og+'}stp:${lambda}@${tau}${og !== undefined && og !== lambda ? `/${og}` : ''}`,
    scale: (c) => (first(c) ? lambda : before),
    switchesTo: lambda,
  };
}

/**
 * Index of the step at which Jain et al.'s Algorithm 1 switches to λ, given d_t history
 * d[0..]: with d_{T+2} = d_{T+1} = −∞, the first step i with d[i−2] > d[i−1] and d[i−1] < d[i]
 * (a local minimum one step back). Returns null when no such step exists yet.
 */
export function dtpSwitchIndex(d: readonly number[]): number | null {
  for (let i = 2; i < d.length; i++) {
    if (d[i - 2]! > d[i - 1]! && d[i - 1]! < d[i]!) return i;
  }
  return null;
}

/**
 * Dynamic transition point (Jain et al. Algorithm 1): s = 0 (or −λ_og with opposite guidance)
 * until the first local minimum of d_t one step back, then λ from that step on, never back.
 */
export function dtp(lambda: number, og?: number): GuidanceSchedule {
  checkScale('dtp', lambda);
  if (og !== undefined) checkScale('og', og);
  const before = og === undefined ? 0 : -og;
  return {
    label: `${og === undefined ? '' : 'og+'}dtp:${lambda}${og !== undefined && og !== lambda ? `/${og}` : ''}`,
    scale: (c) => (dtpSwitchIndex(c.dHistory) === null ? before : lambda),
    switchesTo: lambda,
  };
}

/** Linear ramp (monotone increasing in the denoising direction): s = λ·(1 − t/T_train). */
export function linearRamp(lambda: number): GuidanceSchedule {
  checkScale('linear', lambda);
  return { label: `linear:${lambda}`, scale: (c) => lambda * (1 - c.t / c.numTrainTimesteps) };
}

/**
 * Jain et al.'s (CVPR 2025) other weight schedules, as their code defines them (t the timestep,
 * T = `numTrainTimesteps`, 1000 in their runs; the names are theirs):
 * - `invlinear`: s = λ·t/T (decreasing in the denoising direction);
 * - `sine`: s = λ·(sin(π t/T − π/2) + 1) = λ·(1 − cos(π t/T)) (from 2λ at t = T to 0);
 * - `v_shape`: s = λ·(1 − t/T) for t > T/2, λ·t/T otherwise (0 at both ends, λ/2 at t = T/2);
 * - `a_shape`: s = λ·(1 − t/T) for t < T/2, λ·t/T otherwise (λ at both ends, λ/2 at t = T/2).
 */
export type JainSchedule = 'invlinear' | 'sine' | 'v_shape' | 'a_shape';

/** One of {@link JainSchedule} at scale λ. */
export function jainSchedule(kind: JainSchedule, lambda: number): GuidanceSchedule {
  checkScale(kind, lambda);
  const f: Record<JainSchedule, (u: number) => number> = {
    invlinear: (u) => u,
    sine: (u) => Math.sin(Math.PI * u - Math.PI / 2) + 1,
    v_shape: (u) => (u > 0.5 ? 1 - u : u),
    a_shape: (u) => (u < 0.5 ? 1 - u : u),
  };
  return { label: `${kind}:${lambda}`, scale: (c) => lambda * f[kind](c.t / c.numTrainTimesteps) };
}

/** Cosine ramp (monotone increasing): s = λ·(1 − cos(π·(1 − t/T_train)))/2. */
export function cosineRamp(lambda: number): GuidanceSchedule {
  checkScale('cosine', lambda);
  return { label: `cosine:${lambda}`, scale: (c) => (lambda * (1 - Math.cos(Math.PI * (1 - c.t / c.numTrainTimesteps)))) / 2 };
}
