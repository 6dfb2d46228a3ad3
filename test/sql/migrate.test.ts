import { afterEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { loadMigrations, migrate, type Migration } from '../../sql/migrate.ts';
import { ConflictError } from '../../sql/errors.ts';
import { createEmptyDatabase } from '../support/database.ts';

const drops: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(drops.splice(0).map((d) => d()));
});

async function emptyDb(): Promise<string> {
  const db = await createEmptyDatabase('mig');
  drops.push(db.drop);
  return db.url;
}

function fake(id: string, sql: string, breaking = false): Migration {
  return { id, sql, checksum: `sum-${sql}`, breaking };
}

async function appliedIds(url: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const { rows } = await c.query<{ id: string }>(`select id from mp.migrations order by id`);
  await c.end();
  return rows.map((r) => r.id);
}

describe('migrator', () => {
  it('applies every shipped migration once, and nothing the second time', async () => {
    const url = await emptyDb();
    const shipped = await loadMigrations();
    expect(shipped.length).toBeGreaterThan(0);
    const first = await migrate({ connectionString: url });
    expect(first.applied).toEqual(shipped.map((m) => m.id));
    const second = await migrate({ connectionString: url });
    expect(second.applied).toEqual([]);
    expect(await appliedIds(url)).toEqual(shipped.map((m) => m.id).sort());
  });

  it('is safe when 8 migrators start at once: each file applies exactly once', async () => {
    const url = await emptyDb();
    const migrations = [
      fake('queues/0001_a.sql', `create table mp.race_a (id int)`),
      fake('queues/0002_b.sql', `create table mp.race_b (id int); select pg_sleep(0.05)`),
    ];
    const results = await Promise.all(Array.from({ length: 8 }, () => migrate({ connectionString: url, migrations })));
    const appliedCounts = results.flatMap((r) => r.applied);
    expect(appliedCounts.sort()).toEqual(['queues/0001_a.sql', 'queues/0002_b.sql']);
  });

  it('refuses an applied file that was edited, naming it', async () => {
    const url = await emptyDb();
    await migrate({ connectionString: url, migrations: [fake('queues/0001_a.sql', `create table mp.ed (id int)`)] });
    const edited = [fake('queues/0001_a.sql', `create table mp.ed (id int, extra text)`)];
    const err = await migrate({ connectionString: url, migrations: edited }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).message).toMatch(/sql\/queues\/0001_a\.sql was edited after it was applied/);
    expect((err as ConflictError).hint).toMatch(/new numbered file/);
  });

  it('rolls back a failing file entirely and records nothing for it', async () => {
    const url = await emptyDb();
    const bad = [fake('queues/0001_ok.sql', `create table mp.ok (id int)`), fake('queues/0002_bad.sql', `create table mp.half (id int); select 1/0`)];
    await expect(migrate({ connectionString: url, migrations: bad })).rejects.toThrow(/division by zero/);
    expect(await appliedIds(url)).toEqual(['queues/0001_ok.sql']);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const { rows } = await c.query(`select to_regclass('mp.half') as t`);
    await c.end();
    expect(rows[0].t).toBeNull();
  });

  it('refuses a schema that has a breaking migration this code does not know', async () => {
    const url = await emptyDb();
    const newer = [fake('queues/0001_a.sql', `select 1`), fake('queues/0002_new.sql', `select 2`, true)];
    await migrate({ connectionString: url, migrations: newer });
    const older = [fake('queues/0001_a.sql', `select 1`)];
    await expect(migrate({ connectionString: url, migrations: older })).rejects.toThrow(/breaking migration queues\/0002_new\.sql/);
  });

  it('tolerates a newer non-breaking migration it does not know', async () => {
    const url = await emptyDb();
    await migrate({ connectionString: url, migrations: [fake('queues/0001_a.sql', `select 1`), fake('queues/0002_add.sql', `select 2`)] });
    const r = await migrate({ connectionString: url, migrations: [fake('queues/0001_a.sql', `select 1`)] });
    expect(r.applied).toEqual([]);
  });
});
