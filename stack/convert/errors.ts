/** The one error shape of the converters: which service (or object) and key, what is wrong. */
import { ConfigError } from '../../sql/errors.ts';

/** A `ConfigError` (`COMPOSE_CONVERT`) for `where` (`services.web.ports`), with an optional hint. */
export function convertError(where: string, problem: string, hint?: string): ConfigError {
  return new ConfigError('COMPOSE_CONVERT', `${where}: ${problem}`, hint ?? 'see docs/compose.md for what each key accepts');
}

/** Runs a parser, turning its plain `Error` into a `convertError` for `where`. */
export function at<T>(where: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw convertError(where, (err as Error).message);
  }
}
