/**
 * A fresh database per test file, migrated by the real migrator, dropped afterwards.
 *
 * @example
 *   const db = await freshDatabase();   // in beforeAll
 *   await db.pool.query(`select mp.enqueue('q', '{}')`);
 *   await db.drop();                    // in afterAll
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { withDatabase } from '../../dev/temporary-postgres.ts';
import { migrate } from '../../sql/migrate.ts';

export interface TestDatabase {
  url: string;
  name: string;
  pool: pg.Pool;
  /** A new single connection (for scripted interleavings); closed by `drop`. */
  connect(): Promise<pg.Client>;
  drop(): Promise<void>;
}


/** Creates an empty database (no migrations) and returns its URL. */
export async function createEmptyDatabase(prefix = 't'): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const adminUrl = inject('pgAdminUrl');
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  return {
    url: withDatabase(adminUrl, name),
    name,
    drop: async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

/** Creates and migrates a database for one test file. */
export async function freshDatabase(opts: { poolSize?: number } = {}): Promise<TestDatabase> {
  const empty = await createEmptyDatabase();
  await migrate({ connectionString: empty.url });
  const pool = new pg.Pool({ connectionString: empty.url, max: opts.poolSize ?? 20 });
  // drop() force-closes sessions, maybe while ended clients are still closing: a late "terminating
  // connection" on an idle or closing pooled client must not fail the test file.
  pool.on('error', () => {});
  pool.on('connect', (c) => c.on('error', () => {}));
  const clients: pg.Client[] = [];
  return {
    url: empty.url,
    name: empty.name,
    pool,
    connect: async () => {
      const c = new pg.Client({ connectionString: empty.url });
      c.on('error', () => {}); // tests kill connections on purpose
      await c.connect();
      clients.push(c);
      return c;
    },
    drop: async () => {
      await Promise.all(clients.map((c) => c.end().catch(() => {})));
      await pool.end();
      await empty.drop();
    },
  };
}
