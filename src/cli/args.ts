/** Command-line parsing shared by every command: strict flags, clear errors naming the argument. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';

/** An error in what the user typed; the CLI prints its message and the command's usage line, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Options spec of one command (node:util parseArgs). */
export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** Parse `argv` strictly against `options`; unknown flags and missing values become `UsageError`s. */
export function parseFlags(argv: readonly string[], options: OptionSpec): Record<string, string | boolean | undefined> {
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"; flags start with --`);
    return values as Record<string, string | boolean | undefined>;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const msg = (e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, '');
    throw new UsageError(msg.replace(/\. To specify.*$/s, ''));
  }
}

/** Validate raw flag values with a zod schema; the first issue becomes a `UsageError` naming the flag. */
export function validate<T extends z.ZodType>(schema: T, raw: Record<string, unknown>): z.infer<T> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const key = issue.path.map(String).join('.');
  throw new UsageError(`--${key}: ${issue.message}`);
}

/** A positive integer flag given as a string. */
export function positiveInt(name: string, max = Number.MAX_SAFE_INTEGER) {
  return z
    .string()
    .regex(/^\s*\d+\s*$/, { message: `expected a positive integer (${name})` })
    .transform(Number)
    .refine((v) => v > 0 && v <= max, { message: `expected an integer in 1..${max} (${name})` });
}

/** A finite number flag given as a string. */
export function finiteNumber(name: string) {
  return z
    .string()
    .transform((s) => (s.trim() === '' ? NaN : Number(s)))
    .refine((v) => Number.isFinite(v), { message: `expected a number (${name})` });
}

/** Run `f`, turning any error it throws into a {@link UsageError} with the same message (bad user input). */
export function asUsage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw e instanceof UsageError ? e : new UsageError((e as Error).message);
  }
}
