import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../cli/commands/migrate.ts';
import { loadMigrations } from '../../sql/migrate.ts';
import { createEmptyDatabase } from '../support/database.ts';
import { captured, lines, mp } from './harness.ts';

describe('mp migrate', () => {
  let db: Awaited<ReturnType<typeof createEmptyDatabase>>;
  beforeAll(async () => {
    db = await createEmptyDatabase('cli_mig');
  });
  afterAll(async () => {
    await db.drop();
  });

  it('migrates an empty database through the real binary, then reports it up to date', async () => {
    const shipped = (await loadMigrations()).map((m) => m.id);
    const first = await mp(['migrate'], db.url);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(lines(first.stdout)).toEqual([
      ...shipped.map((id) => `applied ${id}`),
      `database is up to date (${shipped.length} migration${shipped.length === 1 ? '' : 's'} applied, 0 already applied)`,
    ]);

    const second = await mp(['migrate', '--json'], db.url);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toEqual({ applied: [], alreadyApplied: shipped.length });
  });

  it('run() takes the URL from the context and prints the summary', async () => {
    const ctx = captured(db.url);
    await run(ctx, {});
    await ctx.close();
    expect(ctx.out()).toMatch(/^database is up to date \(0 migrations applied, \d+ already applied\)\n$/);
  });

  it('--database-url wins over DATABASE_URL', async () => {
    const r = await mp(['--database-url', db.url, 'migrate', '--json'], 'postgres://nobody@127.0.0.1:1/nowhere');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).applied).toEqual([]);
  });

  it('an unreachable server is a connection error (exit 5) with a hint, no stack trace', async () => {
    const r = await mp(['migrate'], 'postgres://nobody@127.0.0.1:1/nowhere');
    expect(r.code).toBe(5);
    expect(lines(r.stderr)).toEqual([
      expect.stringMatching(/^error: cannot connect to PostgreSQL: .*ECONNREFUSED/),
      expect.stringMatching(/^hint: check DATABASE_URL/),
    ]);
  });
});
