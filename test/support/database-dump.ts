/**
 * Everything a test database holds, as text, for tests that prove a value is stored nowhere: every row
 * of every table, and a full `pg_dump` (schema and data) whenever a pg_dump at least as new as the
 * server is installed. pg_dump refuses a newer server, and the machine carries Debian's pg_dump 15
 * while `npm test` runs on the embedded PostgreSQL 18; `.ci/pg15.sh` runs these tests again on
 * PostgreSQL 15 with `MP_TEST_PG_DUMP=require`, where a missing dump fails instead of being skipped.
 *
 * @example
 *   const dump = await databaseText(db.pool, db.url);
 *   for (const [where, text] of Object.entries(dump.texts)) expect(text).not.toContain(secret);
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

export interface DatabaseText {
  /** `table <schema>.<name>` (its rows) and, when it ran, `pg_dump`: the text to search. */
  texts: Record<string, string>;
  /** Every base table, `schema.name`. */
  tables: string[];
  /** Whether a full pg_dump is among the texts. */
  dumped: boolean;
}

/** Installed pg_dump binaries with their major version, newest first. */
async function pgDumps(): Promise<{ bin: string; major: number }[]> {
  const bins = ['pg_dump'];
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) for (const v of readdirSync(debian)) bins.push(`${debian}/${v}/bin/pg_dump`);
  const found: { bin: string; major: number }[] = [];
  for (const bin of bins) {
    const out = await run(bin, ['--version']).then((r) => r.stdout, () => '');
    const major = /(\d+)(\.\d+)?/.exec(out)?.[1];
    if (major) found.push({ bin, major: Number(major) });
  }
  return found.sort((a, b) => b.major - a.major);
}

export async function databaseText(pool: pg.Pool, url: string): Promise<DatabaseText> {
  const texts: Record<string, string> = {};
  const { rows: tables } = await pool.query<{ s: string; t: string }>(
    `select table_schema s, table_name t from information_schema.tables
      where table_schema not in ('pg_catalog', 'information_schema') and table_type = 'BASE TABLE'`,
  );
  for (const { s, t } of tables) {
    const { rows } = await pool.query<{ r: string }>(`select x::text r from ${pg.escapeIdentifier(s)}.${pg.escapeIdentifier(t)} x`);
    texts[`table ${s}.${t}`] = rows.map((r) => r.r).join('\n');
  }
  const { rows } = await pool.query<{ v: string }>(`select current_setting('server_version_num') v`);
  const serverMajor = Math.floor(Number(rows[0]!.v) / 10000);
  const dumper = (await pgDumps()).find((d) => d.major >= serverMajor);
  if (dumper) {
    const { stdout } = await run(dumper.bin, ['--dbname', url, '--no-owner'], { maxBuffer: 512 * 1024 * 1024 });
    texts.pg_dump = stdout;
  } else if (process.env.MP_TEST_PG_DUMP === 'require') {
    throw new Error(`MP_TEST_PG_DUMP=require, but no installed pg_dump is at least version ${serverMajor}, the server's`);
  }
  return { texts, tables: tables.map((t) => `${t.s}.${t.t}`), dumped: dumper !== undefined };
}
