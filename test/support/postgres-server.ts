/**
 * Starts the PostgreSQL server a test run uses. With `MP_TEST_DATABASE_URL` (or `DATABASE_URL`) set it
 * uses that server; otherwise it starts a private embedded PostgreSQL in a temporary folder, so
 * `npm test` needs no set-up. Tests create their own databases on it (see `database.ts`).
 */
import { startTemporaryPostgres } from '../../dev/temporary-postgres.ts';

export interface RunningServer {
  /** Connection string of a superuser on the `postgres` database. */
  adminUrl: string;
  stop(): Promise<void>;
}

/**
 * Starts an embedded PostgreSQL tuned for tests (fsync off: a test run's data is thrown away) or
 * returns the server named by the environment.
 */
export async function startTestServer(): Promise<RunningServer> {
  const external = process.env.MP_TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (external) return { adminUrl: external, stop: async () => {} };
  const server = await startTemporaryPostgres({ fsync: 'off', max_connections: '400' });
  return { adminUrl: server.url, stop: server.stop };
}
