/**
 * The one PostgreSQL server a benchmark run uses, and fresh databases on it.
 *
 * With `DATABASE_URL` set the run uses that server (its role must be allowed to create databases);
 * otherwise it starts a private embedded PostgreSQL with durable settings: unlike the test server,
 * fsync and synchronous_commit stay on, because commit cost is most of what a queue benchmark measures.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startTemporaryPostgres, withDatabase } from '../dev/temporary-postgres.ts';

/**
 * Settings of the embedded server. `autovacuum_naptime = 1s` keeps autoanalyze current while tables
 * fill and drain within seconds; with the default 60 s graphile-worker's single-enqueue rate swung
 * between about 750 and 1,760 jobs/s from run to run (measured on the 2-core lab machine).
 */
export const DURABLE_SETTINGS: Readonly<Record<string, string>> = {
  fsync: 'on',
  synchronous_commit: 'on',
  autovacuum_naptime: '1s',
  shared_buffers: '256MB',
  max_connections: '200',
};

/** Settings read back from the server and recorded with every result, whoever started it. */
const RECORDED_SETTINGS = [
  ...Object.keys(DURABLE_SETTINGS),
  'full_page_writes',
  'wal_level',
  'max_wal_size',
  'work_mem',
  'jit',
];

/** A server the benchmark can create databases on. */
export interface BenchServer {
  /** Connection string of a role that may create databases, on the `postgres` database. */
  adminUrl: string;
  /** `embedded` or `DATABASE_URL`. */
  origin: string;
  stop(): Promise<void>;
}

/** What the results record about the server. */
export interface ServerInfo {
  origin: string;
  version: string;
  settings: Record<string, string>;
}

/** A database made for one contender and one repetition. */
export interface BenchDatabase {
  url: string;
  drop(): Promise<void>;
}

/** Makes a fresh, empty database; injectable so the smoke test can use the test suite's helper. */
export type DatabaseFactory = (prefix: string) => Promise<BenchDatabase>;

/** Uses `DATABASE_URL` when set, else starts an embedded PostgreSQL with `DURABLE_SETTINGS`. */
export async function startBenchServer(env: NodeJS.ProcessEnv = process.env): Promise<BenchServer> {
  if (env.DATABASE_URL) return { adminUrl: env.DATABASE_URL, origin: 'DATABASE_URL', stop: async () => {} };

  const server = await startTemporaryPostgres(DURABLE_SETTINGS);
  return { adminUrl: server.url, origin: 'embedded', stop: server.stop };
}

/** Reads the server version and the settings that shape the numbers. */
export async function describeServer(server: Pick<BenchServer, 'adminUrl' | 'origin'>): Promise<ServerInfo> {
  const client = new pg.Client({ connectionString: server.adminUrl });
  await client.connect();
  try {
    const version = (await client.query<{ v: string }>(`select current_setting('server_version') as v`)).rows[0]!.v;
    const { rows } = await client.query<{ name: string; setting: string; unit: string | null }>(
      `select name, setting, unit from pg_settings where name = any($1) order by name`,
      [RECORDED_SETTINGS],
    );
    const settings = Object.fromEntries(rows.map((r) => [r.name, formatSetting(r.setting, r.unit)]));
    return { origin: server.origin, version, settings };
  } finally {
    await client.end();
  }
}

/** `shared_buffers` comes back as a count of 8kB pages; show it as people write it. */
function formatSetting(setting: string, unit: string | null): string {
  if (unit === '8kB') return `${(Number(setting) * 8) / 1024}MB`;
  if (unit === 's' || unit === 'ms' || unit === 'MB' || unit === 'kB') return `${setting}${unit}`;
  return setting;
}


/** Creates databases named `bench_<prefix>_<random>` on the server; `drop` forces out stray sessions. */
export function databaseFactory(adminUrl: string): DatabaseFactory {
  const admin = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  return async (prefix) => {
    const name = `bench_${prefix.replace(/[^a-z0-9]/g, '_')}_${randomBytes(4).toString('hex')}`;
    await admin((c) => c.query(`create database ${name}`));
    return {
      url: withDatabase(adminUrl, name),
      drop: () => admin(async (c) => void (await c.query(`drop database if exists ${name} with (force)`))),
    };
  };
}
