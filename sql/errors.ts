/**
 * Errors users see. Every error MiniPaaS raises on purpose is a `MiniPaasError` with a stable `code`,
 * a one-line `message` naming the value that caused it, and a `hint` saying what to do.
 *
 * SQL raises its own errors with custom SQLSTATEs (`MP001`...); `fromDatabaseError` maps them here, in
 * one place, so TypeScript never matches on message text.
 */

/** Base class: `code` is stable, `message` names the problem, `hint` names the fix. */
export class MiniPaasError extends Error {
  /** Process exit code the CLI uses for this class of error. */
  readonly exitCode: number = 1;
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad input: a name, option, payload or file the user supplied is not valid. */
export class ConfigError extends MiniPaasError {
  override readonly exitCode: number = 2;
}

/** A queue, stream, group, operation or node that does not exist. */
export class NotFoundError extends MiniPaasError {
  override readonly exitCode: number = 3;
}

/** The request is valid but clashes with the current state (already finished, schema edited...). */
export class ConflictError extends MiniPaasError {
  override readonly exitCode: number = 4;
}

/** PostgreSQL (or another server MiniPaaS needs) cannot be reached. */
export class ConnectionError extends MiniPaasError {
  override readonly exitCode: number = 5;
}

/** A host could not be reached over SSH. */
export class HostUnreachableError extends MiniPaasError {
  override readonly exitCode: number = 6;
}

/** The Docker engine refused or failed a request. */
export class DockerError extends MiniPaasError {
  override readonly exitCode: number = 7;
}

type ErrorClass = new (code: string, message: string, hint?: string) => MiniPaasError;

/**
 * Custom SQLSTATEs raised by the SQL in `sql/`. Each SQL `raise` sets `errcode` to one of these and may
 * set `hint`; the class decides the exit code.
 */
const SQLSTATE_CLASSES: Record<string, ErrorClass> = {
  MP001: ConfigError, // invalid name
  MP002: NotFoundError, // unknown queue
  MP003: ConfigError, // invalid option key or value
  MP004: ConfigError, // invalid batch size, lease or count
  MP005: NotFoundError, // unknown stream
  MP006: NotFoundError, // unknown consumer group
  MP007: ConflictError, // already exists / conflicting state
  MP008: ConfigError, // invalid payload
  MP009: NotFoundError, // unknown operation, node or environment
  MP010: ConflictError, // operation already finished
};

/** The subset of a `pg` DatabaseError that the mapping reads. */
interface PgErrorFields {
  code?: string;
  message: string;
  hint?: string;
}

function isPgError(err: unknown): err is Error & PgErrorFields {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string';
}

/** Connection-level failures from `pg` or Node's sockets, by their error codes. */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'ETIMEDOUT',
  'ECONNRESET',
  'EHOSTUNREACH',
  '57P03', // cannot_connect_now
  '3D000', // invalid_catalog_name: database does not exist
  '28P01', // invalid_password
  '28000', // invalid_authorization_specification
]);

/**
 * Turns an error thrown by `pg` into a `MiniPaasError` when it is one of ours (custom SQLSTATE) or a
 * connection failure; returns any other error unchanged.
 */
export function fromDatabaseError(err: unknown): unknown {
  if (err instanceof MiniPaasError || !isPgError(err)) return err;
  const code = err.code ?? '';
  const cls = SQLSTATE_CLASSES[code];
  if (cls) return new cls(code, err.message, err.hint);
  if (CONNECTION_CODES.has(code)) {
    return new ConnectionError(
      code,
      `cannot connect to PostgreSQL: ${err.message}`,
      'check DATABASE_URL (or --database-url) and that the server is running; `npx mp dev` starts an embedded one',
    );
  }
  if (code === '22P02' && /json/i.test(err.message)) {
    return new ConfigError('MP008', `payload is not valid JSON: ${err.message}`, 'pass a JSON document');
  }
  return err;
}

/** Runs `fn` and rethrows database errors as `MiniPaasError`s where they map to one. */
export async function mapDatabaseErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw fromDatabaseError(err);
  }
}
