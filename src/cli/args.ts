/** Command-line parsing shared by every command: strict flags, clear errors naming the argument. */
import { Command, Option } from 'commander';
import { z } from 'zod';
import { didYouMean } from '../text/suggest.ts';
import { parseSamplerName, SAMPLER_NAMES, type SamplerName } from '../samplers/index.ts';

export { editDistance, nearestName, didYouMean } from '../text/suggest.ts';
import { UsageError, InputError } from '../io/errors.ts';
/** The user-input errors live in `src/io/errors.ts` (any layer may throw them); re-exported here for the CLI. */
export { UsageError, InputError } from '../io/errors.ts';

/** Flags renamed in every command that has the new name (issue 15: one name per concept). */
export const RENAMED: Readonly<Record<string, string>> = { condition: 'prompts', conditions: 'prompts' };

/** Options spec of one command: flag name → `{ type: 'string' }` (takes a value) or `{ type: 'boolean' }` (a switch). */
export type OptionSpec = Readonly<Record<string, { readonly type: 'string' | 'boolean' }>>;

/**
 * Parse `argv` strictly against `options` with commander; every problem becomes a `UsageError`
 * naming the flag: an unknown flag (with the nearest known flag of the command: "did you mean
 * --sampler?"), a missing value, a value given to a switch, a flag given twice with different
 * values, a stray argument. A negative number after a flag that takes a value is read as its value
 * (`--eta -1` = `--eta=-1`, as commander does), so that the flag's own range check can name it.
 */
export function parseFlags(argv: readonly string[], options: OptionSpec, renamed: Readonly<Record<string, string>> = {}): Record<string, string | boolean | undefined> {
  const names = Object.keys(options);
  for (const a of argv) {
    const old = /^--([^=]+)/.exec(a)?.[1];
    const now = old === undefined || old in options ? undefined : (renamed[old] ?? RENAMED[old]);
    if (now !== undefined && now in options) throw new UsageError(`--${old} is now --${now} (one name per concept in every command)`);
  }
  const cmd = new Command('memscope')
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} })
    .helpOption(false)
    .allowExcessArguments(true)
    .showSuggestionAfterError(false);
  for (const name of names) {
    if (options[name]!.type === 'boolean') {
      cmd.addOption(new Option(`--${name}`));
      continue;
    }
    cmd.addOption(
      new Option(`--${name} <value>`).argParser((value: string, previous: unknown) => {
        // commander hands a required value the next argument even when it is a flag
        if (/^--[^\s=]+(=|$)/.test(value)) throw new UsageError(`--${name}: missing value (found the flag ${value.split('=')[0]} after it)`);
        if (previous !== undefined && previous !== value) throw new UsageError(`--${name}: given twice ("${String(previous)}" and "${value}"); give it once`);
        return value;
      }),
    );
  }
  try {
    cmd.parse(argv.map(String), { from: 'user' });
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(commanderMessage(e as Error & { code?: string }, names, options));
  }
  const stray = cmd.args[0];
  if (stray !== undefined) {
    const asFlag = names.includes(stray) ? ` (did you mean --${stray}?)` : '';
    throw new UsageError(`unexpected argument "${stray}"${asFlag}; flags start with --`);
  }
  const values = cmd.opts() as Record<string, string | boolean | undefined>;
  // commander camel-cases option keys (`--batch-size` → batchSize): give them back by flag name
  const out: Record<string, string | boolean | undefined> = {};
  for (const o of cmd.options) {
    // only what was typed: commander gives a `--no-x` switch a default of its own (x = true)
    if (cmd.getOptionValueSource(o.attributeName()) !== 'cli') continue;
    const v = values[o.attributeName()];
    out[o.name()] = o.negate || o.isBoolean() ? true : v;
  }
  return out;
}

/** Commander's parse error, restated as memscope's one-line message naming the flag. */
function commanderMessage(e: Error & { code?: string }, names: readonly string[], options: OptionSpec): string {
  const quoted = /'(-{1,2}[^'\s<]+)/.exec(e.message)?.[1] ?? '';
  if (e.code === 'commander.unknownOption') {
    const eq = quoted.indexOf('=');
    if (eq > 0) {
      const flag = quoted.slice(0, eq);
      if (options[flag.replace(/^-+/, '')]?.type === 'boolean') return `${flag}: a switch, takes no value (got "${quoted.slice(eq + 1)}")`;
    }
    const bare = quoted.replace(/^-+/, '');
    if (bare === 'queue') return 'unknown flag --queue: this command runs in this process only; memscope worker --help lists the commands whose units run on queue workers';
    const hint = didYouMean(bare, names, (s) => `--${s}`);
    return `unknown flag ${quoted}${hint}${hint ? '' : '; see --help for the flags of this command'}`;
  }
  if (e.code === 'commander.optionMissingArgument') return `${quoted}: missing value`;
  return e.message.replace(/^error: /, '');
}

/**
 * The flags of a command derived from its zod schema: every key of the object schema is a flag;
 * a boolean field (optionally with a default) is a switch, everything else takes a value.
 */
export function flagsOf(schema: z.ZodObject): OptionSpec {
  const out: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const [k, t] of Object.entries(schema.shape)) out[k] = { type: isBooleanSchema(t as z.ZodType) ? 'boolean' : 'string' };
  return out;
}

function isBooleanSchema(t: z.ZodType): boolean {
  let cur: z.ZodType = t;
  for (let i = 0; i < 8; i++) {
    if (cur instanceof z.ZodBoolean) return true;
    if (cur instanceof z.ZodDefault || cur instanceof z.ZodOptional || cur instanceof z.ZodNullable) cur = cur.unwrap() as z.ZodType;
    else return false;
  }
  return false;
}

/** Parse `argv` against the flags of `schema` ({@link flagsOf}) and validate them ({@link validate}). */
export function parseCommand<T extends z.ZodObject>(argv: readonly string[], schema: T, renamed: Readonly<Record<string, string>> = {}): z.infer<T> {
  return validate(schema, parseFlags(argv, flagsOf(schema), renamed));
}

/**
 * Validate raw flag values with a zod schema; the first issue becomes a `UsageError` naming the
 * flag and the value: `--x: required`, `--x: empty value`, `--x: "v" is not one of a, b, c (did you
 * mean "b"?)`, or the schema's own message.
 */
export function validate<T extends z.ZodType>(schema: T, raw: Record<string, unknown>): z.infer<T> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const key = String(issue.path[0] ?? '');
  const value = raw[key];
  if (value === undefined && issue.code === 'invalid_type') throw new UsageError(`--${key}: required`);
  if (value === '' && issue.code !== 'custom') throw new UsageError(`--${key}: empty value`);
  if (issue.code === 'invalid_value' && typeof value === 'string') {
    const allowed = issue.values.map(String);
    throw new UsageError(`--${key}: "${value}" is not one of ${allowed.join(', ')}${didYouMean(value, allowed)}`);
  }
  throw new UsageError(`--${key}: ${issue.message}`);
}

/** A positive integer flag given as a string, in `min`..`max` (default 1..2⁵³−1); the message shows what was given. */
export function positiveInt(name: string, max = Number.MAX_SAFE_INTEGER, min = 1) {
  void name;
  const allowed = max === Number.MAX_SAFE_INTEGER ? (min === 1 ? 'a positive integer' : `an integer ≥ ${min}`) : min === 1 ? `an integer in 1..${max}` : `an integer ≥ ${min} (at most ${max})`;
  return z.string().transform((s, ctx) => {
    const t = s.trim();
    const v = /^\+?\d+$/.test(t) ? Number(t) : NaN;
    if (!(Number.isSafeInteger(v) && v >= min && v <= max)) {
      ctx.addIssue({ code: 'custom', message: `expected ${allowed}, got "${s}"` });
      return z.NEVER;
    }
    return v;
  });
}

/** A non-negative integer flag (a seed) given as a string. */
export function nonNegativeInt(name: string) {
  void name;
  return z.string().transform((s, ctx) => {
    const t = s.trim();
    const v = /^\+?\d+$/.test(t) ? Number(t) : NaN;
    if (!Number.isSafeInteger(v)) {
      ctx.addIssue({ code: 'custom', message: `expected a non-negative integer, got "${s}"` });
      return z.NEVER;
    }
    return v;
  });
}

/**
 * A finite number flag given as a string, optionally within a range: `lo`/`hi` bounds with
 * `loOpen`/`hiOpen` for strict ones; the message states the range (or `expected`, its wording),
 * `what` the number is, and the value given.
 */
export function finiteNumber(name: string, range: { lo?: number; hi?: number; loOpen?: boolean; hiOpen?: boolean; what?: string; expected?: string } = {}) {
  void name;
  const { lo, hi, loOpen = false, hiOpen = false } = range;
  const allowed =
    range.expected ?? (lo !== undefined && hi !== undefined
      ? `a number in ${loOpen ? '(' : '['}${lo}, ${hi}${hiOpen ? ')' : ']'}`
      : lo !== undefined
        ? `a number ${loOpen ? '>' : '≥'} ${lo}`
        : hi !== undefined
          ? `a number ${hiOpen ? '<' : '≤'} ${hi}`
          : 'a finite number');
  return z.string().transform((s, ctx) => {
    const v = s.trim() === '' ? NaN : Number(s);
    const ok = Number.isFinite(v) && (lo === undefined || (loOpen ? v > lo : v >= lo)) && (hi === undefined || (hiOpen ? v < hi : v <= hi));
    if (!ok) {
      ctx.addIssue({ code: 'custom', message: `expected ${allowed}${range.what === undefined ? '' : ` (${range.what})`}, got "${s}"` });
      return z.NEVER;
    }
    return v;
  });
}

/**
 * An enum flag whose unknown values get "did you mean": `normalize` may map other spellings to an
 * allowed value (default: exact match, then case-insensitive).
 */
export function oneOf<T extends string>(values: readonly T[], normalize?: (s: string) => T | null) {
  const norm = normalize ?? ((s: string) => values.find((v) => v === s) ?? values.find((v) => v.toLowerCase() === s.trim().toLowerCase()) ?? null);
  return z.string().transform((s, ctx): T => {
    const v = norm(s);
    if (v === null) {
      ctx.addIssue({ code: 'custom', message: `"${s}" is not one of ${values.join(', ')}${didYouMean(s, values)}` });
      return z.NEVER;
    }
    return v;
  });
}

/** A `--sampler` value: a sampler, or `auto` (the model's own scheduler, resolved once it is loaded: `samplerFor`). */
export type SamplerFlag = SamplerName | 'auto';

/**
 * The `--sampler` flag: a sampler in any common spelling (see {@link parseSamplerName}: `dpmpp-2m`,
 * `dpm++2m`, `DPMSolverMultistepScheduler`, …), or `auto`.
 */
export function samplerFlag() {
  return z.string().transform((s, ctx): SamplerFlag => {
    if (s.trim().toLowerCase() === 'auto') return 'auto';
    const v = parseSamplerName(s);
    if (v === null) {
      const hint = didYouMean(s.toLowerCase().replace(/\+\+/g, 'pp').replace(/[\s._-]+/g, ''), SAMPLER_NAMES);
      ctx.addIssue({ code: 'custom', message: `"${s}" is not a sampler memscope implements; expected ${SAMPLER_NAMES.join(', ')} or auto (or diffusers' DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, PNDMScheduler, UniPCMultistepScheduler)${hint}` });
      return z.NEVER;
    }
    return v;
  });
}

/** Run `f`, turning any error it throws into a {@link UsageError} with the same message (bad user input). */
export function asUsage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw e instanceof UsageError ? e : new UsageError((e as Error).message);
  }
}

/**
 * Await `f()` (the loading of a file or model the user named with `flag`), turning any error into
 * an {@link InputError} whose message starts with the flag (added when the message does not
 * already name a flag).
 */
export async function asInput<T>(flag: string, f: () => Promise<T> | T): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof UsageError || e instanceof InputError) throw e;
    const msg = (e as Error).message;
    throw new InputError(/^--[a-z]/.test(msg) ? msg : `${flag}: ${msg}`);
  }
}
