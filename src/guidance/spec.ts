/**
 * One grammar for guidance schedules and mitigation methods (issue 15 §6): the string after
 * `--guidance` (sample, validate, demo) and each item of `--methods` (evaluate) is
 *
 *     name[:p][@τ | @lo-hi][/λog]      combined with `+`  (og+stp, og+dtp)
 *
 * For a guidance schedule `p` is the guidance scale λ (omitted: `--scale`, default 7.5), `@τ` the
 * static transition timestep (stp; default 500), `@lo-hi` the guided timestep range (interval;
 * default 200-700) and `/λog` the scale of the opposite guidance before the switch (og+…; default
 * λ, as Jain et al.'s Algorithm 1). Examples: `cfg`, `cfg:3`, `stp@500`, `stp:7.5@500`,
 * `og+stp@600/2`, `og+dtp/2`, `og+dtp:7.5/2`, `interval@200-700`, `dtp`. A bare number λ means
 * `cfg:λ`. The same string gives the same {@link GuidanceSpec} object whichever flag it came from.
 *
 * Spellings of the old method grammar whose meaning would silently change are refused with the
 * new spelling: `stp:700` (τ = 700 there; a number after `:` is λ now, so stp needs `@τ` with it),
 * `og+stp:600/2`, `interval:100-300`.
 */
import { didYouMean } from '../text/suggest.ts';
import { constant, cosineRamp, dtp, interval, jainSchedule, linearRamp, stp, type GuidanceSchedule } from './schedules.ts';

/** The grammar's parts of one item, before any method reads them (see the module comment). */
export interface SpecTerms {
  /** The item as written (trimmed). */
  readonly text: string;
  /** Lower-cased name, `+`-combinations included (`og+dtp`). */
  readonly name: string;
  /** After `:` (absent when there is no `:`). */
  readonly colon?: string;
  /** After the last `@` (absent when there is none). */
  readonly at?: string;
  /** After `/` (absent when there is none). */
  readonly slash?: string;
}

/** How errors name what was parsed: the flag and the word for one item (`schedule`, `method`). */
export interface SpecFlag {
  /** `--guidance`, `--methods`. */
  readonly flag: string;
  /** `schedule` or `method`. */
  readonly noun: string;
  /** The allowed forms, quoted in every error. */
  readonly forms: string;
}

/**
 * Split one item into its grammar parts. `:` starts `p`, the last `@` starts the `@` part, and a
 * `/` in the tail after `@` (or, without `@`, anywhere after the name and `:`) starts `/λog`,
 * so a directory with slashes after `:` (swap:models/class@1-4) stays in `p`.
 */
export function splitSpecTerms(raw: string, f: SpecFlag): SpecTerms {
  const text = raw.trim();
  const m = /^([A-Za-z][A-Za-z0-9_-]*(?:\+[A-Za-z][A-Za-z0-9_-]*)*)(.*)$/s.exec(text);
  if (!m) throw new Error(`${f.flag}: "${text}" is not a ${f.noun}; expected ${f.forms}`);
  const name = m[1]!.toLowerCase();
  let tail = m[2]!;
  if (tail !== '' && !/^[:@/]/.test(tail)) throw new Error(`${f.flag}: "${text}": unexpected "${tail}" after ${name}; expected ${f.forms}`);
  let colon: string | undefined;
  let at: string | undefined;
  let slash: string | undefined;
  const lastAt = tail.lastIndexOf('@');
  if (lastAt >= 0) {
    const after = tail.slice(lastAt + 1);
    const s = after.indexOf('/');
    at = s < 0 ? after : after.slice(0, s);
    if (s >= 0) slash = after.slice(s + 1);
    tail = tail.slice(0, lastAt);
  } else {
    const s = tail.lastIndexOf('/');
    if (s >= 0) {
      slash = tail.slice(s + 1);
      tail = tail.slice(0, s);
    }
  }
  if (tail.startsWith(':')) colon = tail.slice(1);
  else if (tail !== '') throw new Error(`${f.flag}: "${text}": unexpected "${tail}"; expected ${f.forms}`);
  return { text, name, ...(colon === undefined ? {} : { colon }), ...(at === undefined ? {} : { at }), ...(slash === undefined ? {} : { slash }) };
}

/** Read a number from a grammar part, naming the flag, the item and what the number is. */
export function specNumber(raw: string | undefined, what: string, t: SpecTerms, f: SpecFlag): number {
  const v = raw === undefined || raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(v)) throw new Error(`${f.flag} "${t.text}": ${what} must be a number, got "${raw ?? ''}"; expected ${f.forms}`);
  return v;
}

/** Guidance schedule kinds (the names of {@link SCHEDULE_RULES}). */
export const SCHEDULE_KINDS = ['cfg', 'stp', 'og+stp', 'dtp', 'og+dtp', 'interval', 'linear', 'cosine', 'invlinear', 'sine', 'v_shape', 'a_shape'] as const;
/** A guidance schedule kind. */
export type ScheduleKind = (typeof SCHEDULE_KINDS)[number];

/** A parsed guidance schedule: the one object `--guidance` and `--methods` share. */
export interface GuidanceSpec {
  readonly kind: ScheduleKind;
  /** λ when written (`:λ`); absent: the command's `--scale`. */
  readonly lambda?: number;
  /** stp / og+stp: the transition timestep τ (default filled in). */
  readonly tau?: number;
  /** interval: [t_lo, t_hi] (default filled in). */
  readonly range?: readonly [number, number];
  /** og+stp / og+dtp: λ_og when written (`/λog`); absent: λ. */
  readonly og?: number;
}

/** What follows the name of a schedule kind (`@τ`, `@lo-hi` or nothing). */
type AtPart = 'none' | 'tau' | 'range';

/** One row of {@link SCHEDULE_RULES}. */
export interface ScheduleRule {
  readonly kind: ScheduleKind;
  /** The grammar of this kind, for help and errors. */
  readonly form: string;
  /** What it does, one line. */
  readonly about: string;
  readonly at: AtPart;
  /** Whether `/λog` is allowed (opposite guidance before the switch). */
  readonly og: boolean;
  /** Default of `@` (τ, or [lo, hi]). */
  readonly atDefault?: number | readonly [number, number];
  /** The schedule at scale λ (`lambda` resolved). */
  build(s: GuidanceSpec, lambda: number): GuidanceSchedule;
}

/** Default τ of stp / og+stp (Jain et al.'s Scenario 1). */
export const DEFAULT_TAU = 500;
/** Default guided range of interval (Kynkäänniemi et al. 2024's SD setting). */
export const DEFAULT_INTERVAL: readonly [number, number] = [200, 700];
/** Default λ when neither `:λ` nor `--scale` gives it (the papers' 7.5). */
export const DEFAULT_SCALE = 7.5;

/** Every schedule kind with its grammar, defaults and builder, in one table. */
export const SCHEDULE_RULES: readonly ScheduleRule[] = [
  { kind: 'cfg', form: 'cfg[:λ]', about: 'constant λ (standard CFG; also constant:λ or a bare λ)', at: 'none', og: false, build: (_s, l) => constant(l) },
  { kind: 'stp', form: 'stp[:λ][@τ]', about: `s = 0 while t > τ, λ from τ on (static transition point; τ default ${DEFAULT_TAU})`, at: 'tau', og: false, atDefault: DEFAULT_TAU, build: (s, l) => stp(l, s.tau!) },
  { kind: 'og+stp', form: 'og+stp[:λ][@τ][/λog]', about: 's = −λog while t > τ (opposite guidance; λog default λ)', at: 'tau', og: true, atDefault: DEFAULT_TAU, build: (s, l) => stp(l, s.tau!, s.og ?? l) },
  { kind: 'dtp', form: 'dtp[:λ]', about: "s = 0 until d_t's first local minimum, then λ (Jain et al.'s Algorithm 1)", at: 'none', og: false, build: (_s, l) => dtp(l) },
  { kind: 'og+dtp', form: 'og+dtp[:λ][/λog]', about: 'Algorithm 1 with −λog before the switch (λog default λ)', at: 'none', og: true, build: (s, l) => dtp(l, s.og ?? l) },
  { kind: 'interval', form: 'interval[:λ][@lo-hi]', about: `λ only for lo ≤ t ≤ hi (Kynkäänniemi et al. 2024; default ${DEFAULT_INTERVAL.join('-')})`, at: 'range', og: false, atDefault: DEFAULT_INTERVAL, build: (s, l) => interval(l, s.range![1], s.range![0]) },
  { kind: 'linear', form: 'linear[:λ]', about: 's = λ·(1 − t/T)', at: 'none', og: false, build: (_s, l) => linearRamp(l) },
  { kind: 'cosine', form: 'cosine[:λ]', about: 's = λ·(1 − cos(π(1 − t/T)))/2', at: 'none', og: false, build: (_s, l) => cosineRamp(l) },
  { kind: 'invlinear', form: 'invlinear[:λ]', about: "s = λ·t/T (Jain et al.'s code)", at: 'none', og: false, build: (_s, l) => jainSchedule('invlinear', l) },
  { kind: 'sine', form: 'sine[:λ]', about: "s = λ·(1 − cos(π t/T)) (Jain et al.'s code)", at: 'none', og: false, build: (_s, l) => jainSchedule('sine', l) },
  { kind: 'v_shape', form: 'v_shape[:λ]', about: "s = λ·(1 − t/T) above t = T/2, λ·t/T below (Jain et al.'s code)", at: 'none', og: false, build: (_s, l) => jainSchedule('v_shape', l) },
  { kind: 'a_shape', form: 'a_shape[:λ]', about: "s = λ·(1 − t/T) below t = T/2, λ·t/T above (Jain et al.'s code)", at: 'none', og: false, build: (_s, l) => jainSchedule('a_shape', l) },
];

/** The rule of a kind. */
export function scheduleRule(kind: ScheduleKind): ScheduleRule {
  return SCHEDULE_RULES.find((r) => r.kind === kind)!;
}

/** The schedule forms, for help texts and errors. */
export const SCHEDULE_FORMS = `${SCHEDULE_RULES.map((r) => r.form).join(' | ')} (constant:λ or a bare λ = cfg:λ; e.g. cfg, stp@500, stp:7.5@500, og+dtp/2, interval@200-700)`;

const GUIDANCE_FLAG: SpecFlag = { flag: '--guidance', noun: 'schedule', forms: SCHEDULE_FORMS };

/** Names accepted for schedule kinds (aliases included), for did-you-mean. */
const SCHEDULE_NAMES: readonly string[] = [...SCHEDULE_KINDS, 'constant'];

/** Whether `name` is a guidance schedule kind (or the alias `constant`). */
export function isScheduleName(name: string): boolean {
  return SCHEDULE_NAMES.includes(name.toLowerCase());
}

/**
 * Read the grammar parts of a schedule item into a {@link GuidanceSpec}, refusing old spellings
 * whose meaning changed. `f` names the flag in errors.
 */
export function guidanceSpecFromTerms(t: SpecTerms, f: SpecFlag): GuidanceSpec {
  const kind: ScheduleKind = t.name === 'constant' ? 'cfg' : (t.name as ScheduleKind);
  const rule = SCHEDULE_RULES.find((r) => r.kind === kind);
  const where = `${f.flag} "${t.text}"`;
  if (!rule) throw new Error(`${where}: unknown ${f.noun} "${t.name}"${didYouMean(t.name, SCHEDULE_NAMES)}; expected ${f.forms}`);
  // old method grammar: stp:τ, og+stp:τ/λog, interval:lo-hi
  if (rule.at === 'tau' && t.colon !== undefined && t.at === undefined) {
    throw new Error(`${where}: a number after ":" is the guidance scale λ, and ${kind} needs its τ after "@" when λ is given: write ${kind}@${t.colon}${t.slash === undefined ? '' : `/${t.slash}`} for τ = ${t.colon} (the old spelling ${t.text}) or ${kind}:${t.colon}@${DEFAULT_TAU}${t.slash === undefined ? '' : `/${t.slash}`} for λ = ${t.colon}; expected ${rule.form}`);
  }
  if (rule.at === 'range' && t.colon !== undefined && /\d\s*-\s*\d/.test(t.colon)) {
    throw new Error(`${where}: the range goes after "@" (write ${kind}@${t.colon}${t.at === undefined ? '' : `, and λ as ${kind}:λ@${t.colon}`}); expected ${rule.form}`);
  }
  if (t.name === 'constant' && t.colon === undefined) throw new Error(`${where}: ("constant" needs a scale, e.g. constant:7.5, or write cfg to take λ from --scale); expected ${f.forms}`);
  const lambda = t.colon === undefined ? undefined : specNumber(t.colon, 'λ', t, f);
  let tau: number | undefined;
  let range: readonly [number, number] | undefined;
  if (t.at !== undefined && rule.at === 'none') throw new Error(`${where}: ${kind} takes no "@" part; expected ${rule.form}`);
  if (rule.at === 'tau') tau = t.at === undefined ? (rule.atDefault as number) : specNumber(t.at, 'τ (after @)', t, f);
  if (rule.at === 'range') {
    if (t.at === undefined) range = rule.atDefault as readonly [number, number];
    else {
      const cut = t.at.indexOf('-', 1);
      const lo = specNumber(cut < 0 ? '' : t.at.slice(0, cut), 't_lo (after @)', t, f);
      const hi = specNumber(cut < 0 ? t.at : t.at.slice(cut + 1), 't_hi (after lo-)', t, f);
      if (!(lo <= hi)) throw new Error(`${where}: need t_lo ≤ t_hi, got ${lo}-${hi}; expected ${rule.form}`);
      range = [lo, hi];
    }
  }
  if (t.slash !== undefined && !rule.og) throw new Error(`${where}: /λog is only valid with og+stp or og+dtp; expected ${rule.form}`);
  const og = t.slash === undefined ? undefined : specNumber(t.slash, 'λ_og (after /)', t, f);
  return { kind, ...(lambda === undefined ? {} : { lambda }), ...(tau === undefined ? {} : { tau }), ...(range === undefined ? {} : { range }), ...(og === undefined ? {} : { og }) };
}

/**
 * The canonical spelling of a spec: λ only when written, `@` always (defaults filled in),
 * `/λog` when written — `stp` → `stp@500`, `interval` → `interval@200-700`, `og+dtp/2`.
 * Table rows of `evaluate` carry this name.
 */
export function guidanceSpecName(s: GuidanceSpec): string {
  const at = s.tau !== undefined ? `@${s.tau}` : s.range !== undefined ? `@${s.range[0]}-${s.range[1]}` : '';
  return `${s.kind}${s.lambda === undefined ? '' : `:${s.lambda}`}${at}${s.og === undefined ? '' : `/${s.og}`}`;
}

/** The schedule of a spec: λ from the spec when written, else `scale`. */
export function guidanceSchedule(s: GuidanceSpec, scale: number = DEFAULT_SCALE): GuidanceSchedule {
  return scheduleRule(s.kind).build(s, s.lambda ?? scale);
}

/** Options of {@link parseGuidanceSpec} / {@link parseGuidance}. */
export interface ParseGuidanceOptions {
  /** The flag named in errors (default `--guidance`). */
  readonly flag?: string;
}

/** Parse one schedule (`--guidance` grammar, see the module comment); a bare number λ is `cfg:λ`. */
export function parseGuidanceSpec(text: string, opts: ParseGuidanceOptions = {}): GuidanceSpec {
  const f: SpecFlag = opts.flag === undefined ? GUIDANCE_FLAG : { ...GUIDANCE_FLAG, flag: opts.flag };
  const s = text.trim();
  if (s !== '' && Number.isFinite(Number(s))) return { kind: 'cfg', lambda: Number(s) };
  if (s === '') throw new Error(`${f.flag}: empty; expected ${f.forms}`);
  return guidanceSpecFromTerms(splitSpecTerms(s, f), f);
}

/**
 * Parse a guidance string into its schedule at `scale` (λ omitted → `scale`, default 7.5):
 * `cfg`, `constant:7.5`, `7.5`, `stp:7.5@500`, `stp@500`, `dtp`, `og+dtp:7.5/3` (λ_og = 3),
 * `interval:7.5@200-700`, `linear:7.5`, `cosine:7.5`.
 */
export function parseGuidance(text: string, scale: number = DEFAULT_SCALE, opts: ParseGuidanceOptions = {}): GuidanceSchedule {
  const spec = parseGuidanceSpec(text, opts);
  return guidanceSchedule(spec, scale);
}
