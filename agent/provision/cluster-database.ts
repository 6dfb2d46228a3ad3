/**
 * The control plane's database as the provisioned cluster uses it. Without a `[database]` host it is
 * the database the provisioner runs on (agents get MP_AGENTS_DATABASE_URL or DATABASE_URL). With one,
 * it is the PostgreSQL installed there: the provisioner reaches it through an SSH tunnel to the host's
 * loopback, and the agents get its private address with TLS.
 */
import pg from 'pg';
import { loadMigrations, migrate } from '../../sql/migrate.ts';
import { NotFoundError } from '../../sql/errors.ts';
import { agentsUrl, DATABASE_NAME, DATABASE_PORT, PASSWORD_FILE } from './database.ts';
import type { Host } from './inventory.ts';
import type { HostSession } from './ssh.ts';
import { openTunnel, type Tunnel } from './tunnel.ts';

export interface ClusterDatabase {
  /** The pool the agents' rows are in (nodes, cluster keys); undefined when the provisioner has no database. */
  pool(opts?: { wait?: boolean }): Promise<pg.Pool | undefined>;
  /** The URL the installed agents connect with. */
  agentsUrl(opts?: { wait?: boolean }): Promise<string>;
  close(): Promise<void>;
}

/** The provisioner's own database: no `[database]` host. */
export function provisionerDatabase(pool: pg.Pool | undefined, url: string | undefined): ClusterDatabase {
  return {
    pool: async () => pool,
    agentsUrl: async () => {
      if (!url) {
        throw new NotFoundError('NO_AGENTS_DATABASE_URL', 'the provisioner has no database URL for the agents', 'start the provisioner with MP_AGENTS_DATABASE_URL (or DATABASE_URL) set to a URL the hosts can reach, or name a [database] host');
      }
      return url;
    },
    close: async () => {},
  };
}

/** Migrations the database at `pool` has not applied (all of them on a database without the schema). */
export async function pendingMigrations(pool: pg.Pool): Promise<string[]> {
  const ids = (await loadMigrations()).map((m) => m.id);
  const exists = (await pool.query<{ t: string | null }>(`select to_regclass('mp.migrations')::text as t`)).rows[0]?.t;
  if (!exists) return ids;
  const applied = new Set((await pool.query<{ id: string }>(`select id from mp.migrations`)).rows.map((r) => r.id));
  return ids.filter((id) => !applied.has(id));
}

interface Open {
  pool: pg.Pool;
  password: string;
  tunnel: Tunnel;
}

/**
 * The `[database]` host's PostgreSQL. `open` gives an SSH session to that host. With `wait`, it waits
 * (up to `waitMs`) until the host's `database` step has made the password and migrated the schema:
 * hosts are provisioned in parallel, and a cluster node's agent must not start on a half-made database.
 */
export function databaseHost(host: Host, open: () => Promise<HostSession>, opts: { waitMs: number; signal: AbortSignal }): ClusterDatabase {
  let opened: Promise<Open> | undefined;
  const connect = async (): Promise<Open> => {
    const session = await open();
    const r = await session.run(`cat ${PASSWORD_FILE}`);
    const password = r.stdout.trim();
    if (r.code !== 0 || !password) throw new NotFoundError('NO_DATABASE_YET', `the database host ${host.name} has no ${DATABASE_NAME} password yet`, `provision ${host.name} (its database step)`);
    const tunnel = await openTunnel(session, DATABASE_PORT);
    const pool = new pg.Pool({ host: '127.0.0.1', port: tunnel.port, user: DATABASE_NAME, password, database: DATABASE_NAME, max: 2, connectionTimeoutMillis: 15_000 });
    pool.on('error', () => {});
    return { pool, password, tunnel };
  };
  const ready = async (wait: boolean): Promise<Open> => {
    const deadline = Date.now() + opts.waitMs;
    for (;;) {
      try {
        opened ??= connect().catch((err: unknown) => {
          opened = undefined;
          throw err;
        });
        const o = await opened;
        if (!wait || (await pendingMigrations(o.pool)).length === 0) return o;
      } catch (err) {
        if (!wait || Date.now() > deadline || opts.signal.aborted) {
          if (err instanceof NotFoundError || !wait) throw err;
          throw new NotFoundError('NO_DATABASE_YET', `the database on ${host.name} is not ready: ${err instanceof Error ? err.message : String(err)}`, `provision ${host.name} first, then this host again`);
        }
      }
      if (Date.now() > deadline || opts.signal.aborted) {
        throw new NotFoundError('NO_DATABASE_YET', `the database on ${host.name} is not migrated yet`, `provision ${host.name} first, then this host again`);
      }
      await new Promise((r) => setTimeout(r, 2_000));
    }
  };
  return {
    pool: async ({ wait = false } = {}) => (await ready(wait)).pool,
    agentsUrl: async ({ wait = false } = {}) => agentsUrl(host.address, (await ready(wait)).password),
    close: async () => {
      const o = await opened?.catch(() => undefined);
      opened = undefined;
      if (!o) return;
      await o.pool.end().catch(() => {});
      await o.tunnel.close();
    },
  };
}

/** Applies the migrations through the tunnel. */
export async function migrateThrough(pool: pg.Pool): Promise<string[]> {
  const o = pool.options;
  const url = `postgres://${DATABASE_NAME}:${encodeURIComponent(String(o.password))}@127.0.0.1:${o.port}/${DATABASE_NAME}`;
  return (await migrate({ connectionString: url })).applied;
}
