/* global setTimeout */
// What the API and the worker share: the database pool, the queue they meet on, the stream the worker
// records handled jobs in, and the start-up that waits for the database.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import pg from 'pg';
import { Queue } from 'minipaas/queue';
import { Stream } from 'minipaas/stream';

/** The version this image was built as (compose.yaml passes deploy.version as a build arg). */
export const VERSION = process.env.APP_VERSION ?? 'dev';

/** One line of JSON per event on stdout: `docker service logs` shows them, and they stay greppable. */
export function log(event, fields = {}) {
  console.log(JSON.stringify({ at: new Date().toISOString(), event, host: hostname(), ...fields }));
}

/**
 * The database URL: the content of the file DATABASE_URL_FILE names (a Swarm secret mounted under
 * /run/secrets/, as the Compose files set it up), else DATABASE_URL (a plain `docker run -e`).
 */
function databaseUrl() {
  const file = process.env.DATABASE_URL_FILE;
  if (file) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (err) {
      console.error(`error: DATABASE_URL_FILE ${file} cannot be read (${err.code ?? err.message})\nhint: give the service the secret database_url (see compose.cluster.yaml)`);
      process.exit(2);
    }
  }
  return process.env.DATABASE_URL;
}

export function connect() {
  const url = databaseUrl();
  if (!url) {
    console.error('error: neither DATABASE_URL_FILE nor DATABASE_URL is set\nhint: give the service the secret database_url (see compose.cluster.yaml)');
    process.exit(2);
  }
  // A small pool: two services and several replicas share one server.
  return new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 5_000 });
}

/** `jobs`: what the API enqueues; `processed`: one event per job a worker handled. */
export function channels(pool) {
  return {
    jobs: new Queue({ pool, name: 'hello_jobs' }),
    processed: new Stream({ pool, name: 'hello_processed' }),
  };
}

/**
 * Creates the queue and the stream (both idempotent), retrying while the database is unreachable or
 * not migrated yet: a container may start before PostgreSQL does, and Swarm starts services in no
 * particular order. Backs off from 0.5 s to 5 s and never gives up; a health check tells the rest.
 */
export async function ready(pool, { signal } = {}) {
  const { jobs, processed } = channels(pool);
  for (let attempt = 1, delay = 500; ; attempt++, delay = Math.min(delay * 2, 5_000)) {
    try {
      await jobs.create({ maxAttempts: 5 });
      await processed.create();
      log('ready', { attempt, version: VERSION });
      return { jobs, processed };
    } catch (err) {
      log('waiting for the database', { attempt, error: err instanceof Error ? err.message : String(err), retryInMs: delay });
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (signal?.aborted) throw new Error('stopped before the database was ready');
    }
  }
}
