/**
 * The one place the CLI turns an error into what the user sees: `error:` and `hint:` lines on stderr
 * and an exit code from the error's class. Stack traces only with `--verbose`.
 */
import type { z } from 'zod';
import { ConfigError, fromDatabaseError, MiniPaasError } from '../sql/errors.ts';
import type { Writer } from './context.ts';

/** One problem with the command line, e.g. `{ path: '--limit', problem: 'must be a positive integer, got "0"' }`. */
export interface InputProblem {
  path: string;
  problem: string;
}

/** Command-line input that failed validation; printed as `path: problem` lines under one `error:` line. */
export class InputError extends ConfigError {
  constructor(
    readonly command: string,
    readonly problems: InputProblem[],
  ) {
    super('INVALID_INPUT', `invalid input for \`${command}\``, `run \`${command} --help\` for usage`);
  }
}

/**
 * An operation payload that fails its executor's schema; printed as `path: problem` lines (the payload's
 * own paths, `replicas`, `service`) under one `error:` line, with a valid example as the hint.
 */
export class InvalidPayloadError extends ConfigError {
  constructor(
    readonly kind: string,
    readonly problems: InputProblem[],
    example: unknown,
  ) {
    super('MP008', `invalid --payload for ${kind}`, `a valid payload looks like --payload '${JSON.stringify(example)}'`);
  }
}

/** The operation the command waited for ended failed or cancelled; the process exits non-zero with the reason. */
export class OperationFailedError extends MiniPaasError {
  override readonly exitCode: number = 8;
}

/** No alive agent could run the operation, so it was not submitted (instead of waiting forever). */
export class NoAgentError extends MiniPaasError {
  override readonly exitCode: number = 9;
}

/** The user stopped following an operation (Ctrl-C); it keeps running. 128 + SIGINT, as shells report it. */
export class StoppedFollowingError extends MiniPaasError {
  override readonly exitCode: number = 130;
}

/**
 * Validates raw command-line values against a command's zod schema; throws `InputError` naming each bad
 * value. `labels` maps schema keys to what the user typed (`limit` -> `--limit`).
 */
export function parseInput<S extends z.ZodType>(
  schema: S,
  raw: unknown,
  command: string,
  labels: Record<string, string> = {},
): z.output<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    // The top-level key is what the user typed (`--id`); array indexes add nothing, the message names the value.
    const top = String(issue.path[0] ?? '');
    return { path: labels[top] ?? (top || 'input'), problem: issue.message };
  });
  throw new InputError(command, problems);
}

/**
 * Prints `err` for a user and returns the process exit code.
 *
 * - `MiniPaasError` (including mapped SQLSTATEs `MP001`...): `error: <message>`, `hint: <hint>`, its exit code.
 * - anything else: `error: <message>` and a pointer to `--verbose`, exit 1.
 */
export function reportError(err: unknown, out: { stderr: Writer; verbose: boolean }): number {
  const mapped = fromDatabaseError(err);
  const write = (line: string): void => void out.stderr.write(`${line}\n`);
  if (mapped instanceof MiniPaasError) {
    write(`error: ${mapped.message}`);
    if (mapped instanceof InputError || mapped instanceof InvalidPayloadError) for (const p of mapped.problems) write(`  ${p.path}: ${p.problem}`);
    if (mapped.hint) write(`hint: ${mapped.hint}`);
    if (out.verbose && mapped.stack) write(mapped.stack);
    return mapped.exitCode;
  }
  const message = mapped instanceof Error ? mapped.message : String(mapped);
  write(`error: ${message}`);
  if (out.verbose) {
    if (mapped instanceof Error && mapped.stack) write(mapped.stack);
  } else {
    write('hint: this is unexpected; run with --verbose for details');
  }
  return 1;
}
