/**
 * The migrator: applies the versioned `.sql` files under `sql/` in order, once each.
 *
 * - Files live in `sql/<set>/NNNN_description.sql`; sets apply in `MIGRATION_SETS` order, files by name.
 * - A session advisory lock serialises migrators, so N agents starting at once apply each file once.
 * - One transaction per file; its version row is inserted first, so even a migrator that somehow ran
 *   without the lock would hit the primary key instead of applying a file twice.
 * - A sha256 checksum per file: an applied file that was edited is refused with a clear message.
 * - A file whose leading comment contains `mp:breaking` marks a schema older code must not run against:
 *   code that does not know such an applied migration refuses to start.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { ConflictError, mapDatabaseErrors } from './errors.ts';

/** Migration sets in the order they apply: later sets build on earlier ones. */
export const MIGRATION_SETS = ['queues', 'streams', 'compat', 'control'] as const;

const SQL_ROOT = dirname(fileURLToPath(import.meta.url));
/**
 * Arbitrary constant: "mpmigr" in ASCII (0x6d706d696772). Every migrator takes the same lock. Decimal,
 * because PostgreSQL before 16 reads a hex literal as 0 followed by junk.
 */
const MIGRATION_LOCK_KEY = '120329639389042';

/** One `.sql` file known to this code. */
export interface Migration {
  /** `<set>/<file name>`, e.g. `queues/0001_queues.sql`; the primary key in `mp.migrations`. */
  id: string;
  sql: string;
  checksum: string;
  breaking: boolean;
}

/** What `migrate` did. */
export interface MigrateResult {
  applied: string[];
  alreadyApplied: number;
}

function checksumOf(sql: string): string {
  return createHash('sha256').update(sql).digest('hex');
}

function isBreaking(sql: string): boolean {
  const leadingComments = sql.match(/^(?:\s*--[^\n]*\n)*/)?.[0] ?? '';
  return /\bmp:breaking\b/.test(leadingComments);
}

/** Reads every migration file under `root` (default: this folder), in apply order. */
export async function loadMigrations(root: string = SQL_ROOT): Promise<Migration[]> {
  const migrations: Migration[] = [];
  for (const set of MIGRATION_SETS) {
    let names: string[];
    try {
      names = await readdir(join(root, set));
    } catch {
      continue;
    }
    for (const name of names.filter((n) => /^\d{4}_[a-z0-9_]+\.sql$/.test(n)).sort()) {
      const sql = await readFile(join(root, set, name), 'utf8');
      migrations.push({ id: `${set}/${name}`, sql, checksum: checksumOf(sql), breaking: isBreaking(sql) });
    }
  }
  return migrations;
}

interface AppliedRow {
  id: string;
  checksum: string;
  breaking: boolean;
}

/**
 * Brings the database at `connectionString` up to date and returns what it applied.
 *
 * @example
 *   const { applied } = await migrate({ connectionString: process.env.DATABASE_URL! });
 */
export async function migrate(opts: {
  connectionString: string;
  migrations?: Migration[];
  onApply?: (id: string) => void;
}): Promise<MigrateResult> {
  const migrations = opts.migrations ?? (await loadMigrations());
  const client = new pg.Client({ connectionString: opts.connectionString });
  await mapDatabaseErrors(() => client.connect());
  try {
    await client.query(`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`);
    try {
      // Quiet: "schema already exists" notices are noise on every run after the first.
      await client.query(`set client_min_messages = warning`);
      await client.query(`create schema if not exists mp`);
      await client.query(`create table if not exists mp.migrations (
        id text primary key,
        checksum text not null,
        breaking boolean not null default false,
        applied_at timestamptz not null default now()
      )`);
      const { rows } = await client.query<AppliedRow>(`select id, checksum, breaking from mp.migrations`);
      const applied = new Map(rows.map((r) => [r.id, r]));
      checkAppliedAgainstKnown(applied, migrations);

      const done: string[] = [];
      for (const m of migrations) {
        if (applied.has(m.id)) continue;
        await client.query('begin');
        try {
          await client.query(`insert into mp.migrations (id, checksum, breaking) values ($1, $2, $3)`, [
            m.id,
            m.checksum,
            m.breaking,
          ]);
          await client.query(m.sql);
          // PostgreSQL lets PUBLIC execute every new function, and a per-schema default privilege cannot
          // take that back: so each migration ends with no function of schema mp public (roles get theirs
          // by name, mp.grant_roles), in the same transaction that created them.
          await client.query(`revoke execute on all functions in schema mp from public`);
          await client.query('commit');
        } catch (err) {
          await client.query('rollback');
          throw err;
        }
        done.push(m.id);
        opts.onApply?.(m.id);
      }
      if (done.length > 0) await regrantRoles(client);
      return { applied: done, alreadyApplied: applied.size };
    } finally {
      await client.query(`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`);
    }
  } finally {
    await client.end();
  }
}

/**
 * Where `mp db roles` has set the roles up, gives them what the migrations just added (a new queue
 * function is executable by nobody until granted: each migration revokes PUBLIC's execute).
 */
async function regrantRoles(client: pg.Client): Promise<void> {
  const { rows } = await client.query<{ ready: boolean }>(
    `select to_regprocedure('mp.grant_roles()') is not null
        and (select count(*) from pg_roles where rolname in ('mp_cli', 'mp_agent', 'mp_app')) = 3 as ready`,
  );
  if (rows[0]?.ready) await client.query(`select mp.grant_roles()`);
}

/**
 * Refuses an applied migration whose file changed, and a schema with a breaking migration this code
 * does not know (it was written by a newer MiniPaaS).
 */
function checkAppliedAgainstKnown(applied: Map<string, AppliedRow>, known: Migration[]): void {
  const byId = new Map(known.map((m) => [m.id, m]));
  for (const row of applied.values()) {
    const local = byId.get(row.id);
    if (!local) {
      if (row.breaking) {
        throw new ConflictError(
          'MIGRATE_NEWER_SCHEMA',
          `the database has breaking migration ${row.id}, which this version of MiniPaaS does not know`,
          'upgrade mp (and the agents) to the version that wrote this schema',
        );
      }
      continue;
    }
    if (local.checksum !== row.checksum) {
      throw new ConflictError(
        'MIGRATE_EDITED',
        `migration sql/${row.id} was edited after it was applied (checksum ${row.checksum.slice(0, 12)} in the database, ${local.checksum.slice(0, 12)} on disk)`,
        'restore the file as it was and put the change in a new numbered file',
      );
    }
  }
}
