/**
 * A PostgreSQL server of one test file's own, migrated, for tests that restart it: the shared server of
 * the run (test/support/postgres-server.ts) serves other files at the same time and must stay up.
 *
 * @example
 *   const pg = await startPrivatePostgres();     // in beforeAll
 *   await pg.server.restart('fast');
 *   await pg.stop();                             // in afterAll
 */
import pg from 'pg';
import { startTemporaryPostgres, type TemporaryPostgres } from '../../dev/temporary-postgres.ts';
import { migrate } from '../../sql/migrate.ts';

export interface PrivatePostgres {
  server: TemporaryPostgres;
  /** The migrated `postgres` database. */
  url: string;
  /** The test's own pool; it survives the restarts (its dead clients are dropped, errors ignored). */
  pool: pg.Pool;
  stop(): Promise<void>;
}

/** Starts and migrates a private server (fsync off: its data is thrown away). */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const server = await startTemporaryPostgres({ fsync: 'off', max_connections: '200' });
  await migrate({ connectionString: server.url });
  const pool = new pg.Pool({ connectionString: server.url, max: 5 });
  pool.on('error', () => {});
  pool.on('connect', (c) => c.on('error', () => {}));
  return {
    server,
    url: server.url,
    pool,
    stop: async () => {
      await pool.end();
      await server.stop();
    },
  };
}
