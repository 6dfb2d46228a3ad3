/**
 * What every command's `run(ctx, opts)` gets injected: its output streams, the database (created lazily,
 * so commands that fail validation never connect), a clock, and the signal that ends long-running
 * commands (`mp stream tail --follow`) on SIGINT.
 *
 * Terminology (the same words as the README and docs/architecture.md): a *job* is one row on a *queue*;
 * a *stream* is an append-only log of *events*, each at a *position* (offset); a consumer *group*
 * remembers how far it has read.
 */
import pg from 'pg';
import { ConfigError, mapDatabaseErrors } from '../sql/errors.ts';

/** Where output goes: `process.stdout` in the binary, a string buffer in tests. */
export interface Writer {
  write(chunk: string): unknown;
}

/** Time, injected so tests control it. */
export interface Clock {
  now(): Date;
  /** Resolves after `ms`, or early (without error) when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The database a command talks to. */
export interface Database {
  readonly url: string;
  readonly pool: pg.Pool;
  /** Runs one parameterised query; database errors come back as `MiniPaasError`s where they map to one. */
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>;
}

/** The injected dependencies of a command. */
export interface Context {
  readonly stdout: Writer;
  readonly stderr: Writer;
  /** `--json`: machine-readable output. */
  readonly json: boolean;
  readonly clock: Clock;
  /** Aborts when the user interrupts (SIGINT); long-running commands stop cleanly on it. */
  readonly signal: AbortSignal;
  /** The connection string, from `--database-url` or `DATABASE_URL`; throws `ConfigError` when neither is set. */
  databaseUrl(): string;
  /** Whether a connection string was given (`mp dev` starts its own PostgreSQL when not). */
  hasDatabaseUrl(): boolean;
  /** The database, connected on first use. */
  db(): Database;
}

/** The wall clock. */
export const systemClock: Clock = {
  now: () => new Date(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      function done(): void {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
    }),
};

/** The `DATABASE_URL` problem every command that needs a database reports the same way. */
export function missingDatabaseUrl(): ConfigError {
  return new ConfigError(
    'NO_DATABASE_URL',
    'no database URL: neither --database-url nor DATABASE_URL is set',
    'set DATABASE_URL or pass --database-url; `npx mp dev` starts an embedded PostgreSQL',
  );
}

/** A context plus `close()`, which ends the pool if one was opened. */
export interface OwnedContext extends Context {
  close(): Promise<void>;
}

/**
 * Builds a context. `databaseUrl` is the `--database-url` option or `DATABASE_URL`, whichever is set;
 * the pool is created on the first `db()` call.
 */
export function createContext(opts: {
  stdout: Writer;
  stderr: Writer;
  json?: boolean;
  databaseUrl?: string;
  clock?: Clock;
  signal?: AbortSignal;
}): OwnedContext {
  let database: Database | undefined;
  const databaseUrl = (): string => {
    if (!opts.databaseUrl) throw missingDatabaseUrl();
    return opts.databaseUrl;
  };
  return {
    stdout: opts.stdout,
    stderr: opts.stderr,
    json: opts.json ?? false,
    clock: opts.clock ?? systemClock,
    signal: opts.signal ?? new AbortController().signal,
    databaseUrl,
    hasDatabaseUrl: () => Boolean(opts.databaseUrl),
    db: () => {
      if (!database) {
        const url = databaseUrl();
        // A CLI runs a handful of queries plus, for `tail --follow`, one LISTEN connection.
        const pool = new pg.Pool({ connectionString: url, max: 3, application_name: 'mp' });
        // An idle client whose server went away must not crash the process; the next query reports it.
        pool.on('error', () => {});
        database = {
          url,
          pool,
          query: async <R extends pg.QueryResultRow>(text: string, values?: unknown[]) =>
            (await mapDatabaseErrors(() => pool.query<R>(text, values))).rows,
        };
      }
      return database;
    },
    close: async () => {
      await database?.pool.end();
      database = undefined;
    },
  };
}
