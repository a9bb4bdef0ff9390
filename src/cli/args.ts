/** Command-line parsing shared by every command: strict flags, clear errors naming the argument. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';
import { didYouMean } from '../text/suggest.ts';
import { parseSamplerName, SAMPLER_NAMES, type SamplerName } from '../samplers/index.ts';

export { editDistance, nearestName, didYouMean } from '../text/suggest.ts';
import { UsageError, InputError } from '../io/errors.ts';
/** The user-input errors live in `src/io/errors.ts` (any layer may throw them); re-exported here for the CLI. */
export { UsageError, InputError } from '../io/errors.ts';

/** Options spec of one command (node:util parseArgs). */
export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** A value that reads as a negative number (`-1`, `-0.5`, `-.5`, `-1e-3`), not a flag. */
const NEGATIVE_NUMBER = /^-(\d|\.\d)/;

/**
 * Parse `argv` strictly against `options`; every problem becomes a `UsageError` naming the flag:
 * an unknown flag (with the nearest known flag of the command: "did you mean --sampler?"), a
 * missing value, a value given to a switch, a flag given twice with different values, a stray
 * argument. A negative number after a flag that takes a value is read as its value
 * (`--eta -1` = `--eta=-1`), so that the flag's own range check can name it.
 */
export function parseFlags(argv: readonly string[], options: OptionSpec): Record<string, string | boolean | undefined> {
  const names = Object.keys(options);
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    const name = a.startsWith('--') && !a.includes('=') ? a.slice(2) : null;
    if (name !== null && options[name]?.type === 'string' && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      args.push(`${a}=${next}`);
      i++;
    } else {
      args.push(a);
    }
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true, tokens: true });
  } catch (e) {
    throw new UsageError(parseArgsMessage(e as Error & { code?: string }, args, names));
  }
  const { values, positionals, tokens } = parsed;
  if (positionals.length) {
    const p = positionals[0]!;
    const asFlag = names.includes(p) ? ` (did you mean --${p}?)` : '';
    throw new UsageError(`unexpected argument "${p}"${asFlag}; flags start with --`);
  }
  const seen = new Map<string, string | boolean | undefined>();
  for (const t of tokens ?? []) {
    if (t.kind !== 'option') continue;
    if (seen.has(t.name) && seen.get(t.name) !== t.value) {
      throw new UsageError(`--${t.name}: given twice ("${String(seen.get(t.name))}" and "${String(t.value)}"); give it once`);
    }
    seen.set(t.name, t.value);
  }
  return values as Record<string, string | boolean | undefined>;
}

/** node:util's parseArgs error, restated as memscope's one-line message. */
function parseArgsMessage(e: Error & { code?: string }, args: readonly string[], names: readonly string[]): string {
  const quoted = /'(-{1,2}[^'\s<]+)/.exec(e.message)?.[1];
  const flag = quoted ?? '';
  const bare = flag.replace(/^-+/, '');
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const hint = didYouMean(bare, names, (s) => `--${s}`);
    return `unknown flag ${flag}${hint}${hint ? '' : '; see --help for the flags of this command'}`;
  }
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    if (/does not take an argument/.test(e.message)) {
      const given = args.find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1) ?? '';
      return `${flag}: a switch, takes no value (got "${given}")`;
    }
    const i = args.indexOf(flag);
    const next = i >= 0 ? args[i + 1] : undefined;
    return next === undefined ? `${flag}: missing value` : `${flag}: missing value (found the flag ${next} after it)`;
  }
  return e.message.replace(/^TypeError \[[A-Z_]+\]: /, '').replace(/\. To specify.*$/s, '');
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

/**
 * The `--sampler` flag: `ddim`, `dpmpp2m` or `euler` in any common spelling (see
 * {@link parseSamplerName}: `dpmpp-2m`, `dpm++2m`, `DPMSolverMultistepScheduler`, …).
 */
export function samplerFlag() {
  return z.string().transform((s, ctx): SamplerName => {
    const v = parseSamplerName(s);
    if (v === null) {
      const hint = didYouMean(s.toLowerCase().replace(/\+\+/g, 'pp').replace(/[\s._-]+/g, ''), SAMPLER_NAMES);
      ctx.addIssue({ code: 'custom', message: `"${s}" is not a sampler memscope implements; expected ${SAMPLER_NAMES.join(', ')} (or diffusers' DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler)${hint}` });
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
