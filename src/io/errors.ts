/**
 * The two kinds of user-input error every layer may throw and the CLI maps to exit code 2: a
 * {@link UsageError} (a flag or value the user typed) and an {@link InputError} (a file, folder or
 * model the user named).
 */

/** An error in what the user typed; the CLI prints its message and the command's usage line, exit code 2. */
export class UsageError extends Error {
  override readonly name: string = 'UsageError';
}

/**
 * An error in a file, folder or model the user named (missing, unreadable, malformed, the wrong
 * kind): the CLI prints its message, exit code 2 (as for {@link UsageError}, without the usage line).
 * Failures of memscope itself stay ordinary errors (exit code 1).
 */
export class InputError extends Error {
  override readonly name: string = 'InputError';
}
