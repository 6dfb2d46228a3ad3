// PostgreSQL roles: each role may do its job and is refused what it must not do.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { inject } from 'vitest';
import { ConflictError } from '../../../sql/errors.ts';
import { loadMigrations, migrate } from '../../../sql/migrate.ts';
import { compactJobs } from '../../../sql/queues/compact.ts';
import { freshDatabase, type TestDatabase } from '../../support/database.ts';

let db: TestDatabase;
const suffix = randomBytes(3).toString('hex');
const users = { cli: `cli_${suffix}`, agent: `agent_${suffix}`, appA: `app_a_${suffix}`, appB: `app_b_${suffix}` };
const clients: pg.Client[] = [];
const pools: pg.Pool[] = [];

async function as(user: string): Promise<pg.Client> {
  const url = new URL(db.url);
  url.username = user;
  url.password = 'pw';
  const c = new pg.Client({ connectionString: url.toString() });
  await c.connect();
  clients.push(c);
  return c;
}
/** A pool logged in as `user` (compactJobs takes a pool). */
function poolAs(user: string): pg.Pool {
  const url = new URL(db.url);
  url.username = user;
  url.password = 'pw';
  const p = new pg.Pool({ connectionString: url.toString(), max: 2 });
  pools.push(p);
  return p;
}
async function refusal(c: pg.Client, sql: string, params: unknown[] = []): Promise<string> {
  return await c.query(sql, params).then(
    () => 'allowed',
    (e: { code: string; message: string }) => `${e.code}: ${e.message}`,
  );
}

beforeAll(async () => {
  db = await freshDatabase();
  await db.pool.query(`select mp.grant_roles()`);
  await db.pool.query(`select mp.environment_create('prod')`);
  const grants: Array<[string, string]> = [
    [users.cli, 'mp_cli'],
    [users.agent, 'mp_agent'],
    [users.appA, 'mp_app'],
    [users.appB, 'mp_app'],
  ];
  for (const [user, group] of grants) await db.pool.query(`create role ${user} login password 'pw' in role ${group}`);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => {})));
  await Promise.all(pools.map((p) => p.end().catch(() => {})));
  await db.drop();
  const admin = new pg.Client({ connectionString: inject('pgAdminUrl') });
  await admin.connect();
  for (const user of Object.values(users)) await admin.query(`drop role if exists ${user}`);
  await admin.end();
});

describe('roles', () => {
  it('mp_cli submits intents and reads status, but cannot claim, report, or change operation rows', async () => {
    const cli = await as(users.cli);
    const { rows } = await cli.query(`select mp.submit_operation('docker.info', 'prod') as id`);
    const id = rows[0].id;
    expect((await cli.query(`select status from mp.operations_v where id = $1`, [id])).rows).toEqual([{ status: 'queued' }]);
    expect((await cli.query(`select count(*)::int n from mp.operation_events($1)`, [id])).rows).toEqual([{ n: 1 }]);
    expect(await refusal(cli, `update mp.operations set status = 'succeeded' where id = $1`, [id])).toMatch(/^42501: permission denied for table operations/);
    expect(await refusal(cli, `select * from mp.claim('mp_ops', 'me')`)).toMatch(/^42501: permission denied for function claim/);
    expect(await refusal(cli, `select mp.op_start($1, 'me')`, [id])).toMatch(/^42501: permission denied for function op_start/);
    expect(await refusal(cli, `select mp.op_finish($1, 1, 'succeeded')`, [id])).toMatch(/^42501/);
    expect(await refusal(cli, `delete from mp.jobs`)).toMatch(/^42501: permission denied for table jobs/);
    expect(await refusal(cli, `select mp.enqueue('mp_ops', '{"op": 1}')`)).toMatch(/^42501/);
    await db.pool.query(`select mp.cancel_operation($1)`, [id]);
  });

  it('mp_agent claims operations and reports them, but cannot reach app queues', async () => {
    const id = (await db.pool.query(`select mp.submit_operation('docker.info', 'prod') as id`)).rows[0].id;
    const agent = await as(users.agent);
    const claimed = await agent.query(`select payload from mp.claim('mp_ops', 'agent', 10, null, array['manager'])`);
    expect(claimed.rows).toEqual([{ payload: { op: Number(id) } }]);
    await agent.query(`select mp.node_register('n1', 'h', '0.1.0', array['manager'], array['docker.info'])`);
    const started = await agent.query(`select status, attempts from mp.op_start($1, 'n1')`, [id]);
    expect(started.rows).toEqual([{ status: 'running', attempts: 1 }]);
    expect((await agent.query(`select mp.op_finish($1, 1, 'succeeded') ok`, [id])).rows).toEqual([{ ok: true }]);
    expect(await refusal(agent, `update mp.operations set status = 'failed' where id = $1`, [id])).toMatch(/^42501/);

    const appA = await as(users.appA);
    await appA.query(`select mp.queue_create('a_private')`);
    expect(await refusal(agent, `select mp.enqueue('a_private', '{}')`)).toMatch(/^MP002: unknown queue "a_private"/);
  });

  it('mp_app uses its own queues and streams, and cannot see another app’s or the platform’s', async () => {
    const appA = await as(users.appA);
    const appB = await as(users.appB);
    await appA.query(`select mp.queue_create('a_jobs')`);
    await appA.query(`select mp.enqueue('a_jobs', '{"n": 1}')`);
    const got = await appA.query(`select id, payload from mp.claim('a_jobs', 'w', 5)`);
    expect(got.rows.map((r) => r.payload)).toEqual([{ n: 1 }]);
    expect((await appA.query(`select mp.ack(array[$1]::bigint[]) n`, [got.rows[0].id])).rows).toEqual([{ n: 1 }]);
    await appA.query(`select mp.stream_create('a_events')`);
    await appA.query(`select mp.publish('a_events', '{"e": 1}')`);
    expect((await appA.query(`select payload from mp.read('a_events', 0, 10)`)).rows).toEqual([{ payload: { e: 1 } }]);

    // Another app: A's queue and stream do not exist for it.
    expect(await refusal(appB, `select mp.enqueue('a_jobs', '{}')`)).toMatch(/^MP002: unknown queue "a_jobs"/);
    expect(await refusal(appB, `select * from mp.claim('a_jobs', 'thief')`)).toMatch(/^MP002/);
    expect(await refusal(appB, `select * from mp.read('a_events', 0, 10)`)).toMatch(/^MP005: unknown stream "a_events"/);
    expect((await appB.query(`select count(*)::int n from mp.jobs`)).rows).toEqual([{ n: 0 }]);
    // The platform: no operations, no mp_ops, no mp_events.
    expect(await refusal(appA, `select * from mp.claim('mp_ops', 'w')`)).toMatch(/^MP002: unknown queue "mp_ops"/);
    expect(await refusal(appA, `select * from mp.read('mp_events', 0, 10)`)).toMatch(/^MP005/);
    expect(await refusal(appA, `select mp.submit_operation('docker.info', 'prod')`)).toMatch(/^42501/);
    expect(await refusal(appA, `select * from mp.operations`)).toMatch(/^42501/);
  });

  it('mp_app extends the lease of its own stream group; another app cannot reach that stream', async () => {
    const appA = await as(users.appA);
    const appB = await as(users.appB);
    await appA.query(`select mp.stream_create('a_work')`);
    await appA.query(`select mp.publish('a_work', '{"e": 1}')`);
    await appA.query(`select mp.group_create('a_work', 'g')`);
    expect((await appA.query(`select pos from mp.poll('a_work', 'g', 'm', 10, 5)`)).rows).toEqual([{ pos: '1' }]);
    expect((await appA.query(`select mp.group_extend('a_work', 'g', 'm', 60) n`)).rows).toEqual([{ n: 1 }]);
    expect(await refusal(appB, `select mp.group_extend('a_work', 'g', 'm', 60)`)).toMatch(/^MP005: unknown stream "a_work"/);
  });

  it('mp_cli and mp_agent may compact mp.jobs (MAINTAIN, PostgreSQL 17+), mp_app may not', async () => {
    const version = Number((await db.pool.query(`select current_setting('server_version_num') v`)).rows[0].v);
    const appA = compactJobs(poolAs(users.appA), { force: true, lockTimeoutMs: 10_000 });
    await expect(appA).rejects.toBeInstanceOf(ConflictError);
    await expect(appA).rejects.toThrow(`role ${users.appA} may not vacuum mp.jobs, so it cannot compact it`);
    for (const user of [users.cli, users.agent]) {
      const compacted = compactJobs(poolAs(user), { force: true, lockTimeoutMs: 10_000 });
      if (version >= 170000) expect((await compacted).action, user).toBe('rewritten');
      else {
        await expect(compacted, user).rejects.toThrow(`role ${user} may not vacuum mp.jobs`);
        await expect(compacted, user).rejects.toHaveProperty('hint', expect.stringMatching(/^before PostgreSQL 17 only the table owner can/));
      }
    }
    // The count behind the decision is the whole table's, not what RLS lets the role see.
    await db.pool.query(`select mp.queue_create('owner_only'), mp.enqueue('owner_only', '{}')`);
    const seen = await compactJobs(poolAs(users.agent), { maxLiveRows: 0, lockTimeoutMs: 10_000 }).catch(() => undefined);
    if (version >= 170000) expect(seen?.before.liveRows).toBe(1);
    expect(await refusal(await as(users.appA), `select * from mp.measure_jobs(10)`)).toMatch(/^42501: permission denied for function measure_jobs/);
  });

  it('no function of schema mp is executable by a role that was granted nothing', async () => {
    // PUBLIC may execute every new function unless each migration takes that back (sql/migrate.ts).
    const { rows } = await db.pool.query<{ fn: string }>(
      `select p.oid::regprocedure::text fn from pg_proc p
       where p.pronamespace = 'mp'::regnamespace and has_function_privilege('public', p.oid, 'execute')
       order by 1`,
    );
    expect(rows.map((r) => r.fn)).toEqual([]);
  });

  it('a function a later migration adds is granted to the roles at once, and still not to PUBLIC', async () => {
    const later = [
      ...(await loadMigrations()),
      { id: 'queues/9999_probe.sql', sql: `create function mp._probe_${suffix}() returns int language sql as 'select 1'`, checksum: 'probe', breaking: false },
    ];
    await migrate({ connectionString: db.url, migrations: later });
    const { rows } = await db.pool.query(
      `select r, has_function_privilege(r, 'mp._probe_${suffix}()', 'execute') may from unnest(array['mp_agent', 'mp_app', 'public']) r order by r`,
    );
    expect(rows).toEqual([
      { r: 'mp_agent', may: true },
      { r: 'mp_app', may: true },
      { r: 'public', may: false },
    ]);
  });

  it('a database migrated after the roles exist grants compaction at once, without mp db roles', async () => {
    const later = await freshDatabase();
    try {
      const { rows } = await later.pool.query(
        `select r, has_function_privilege(r, 'mp.measure_jobs(int)', 'execute') measure,
                case when current_setting('server_version_num')::int >= 170000
                     then has_table_privilege(r, 'mp.jobs', 'MAINTAIN') end maintain
         from unnest(array['mp_cli', 'mp_agent', 'mp_app']) r order by r`,
      );
      // MAINTAIN is a privilege from PostgreSQL 17 on; before, only the owner may compact.
      const modern = Number((await later.pool.query(`select current_setting('server_version_num') v`)).rows[0].v) >= 170000;
      expect(rows).toEqual([
        { r: 'mp_agent', measure: true, maintain: modern ? true : null },
        { r: 'mp_app', measure: false, maintain: modern ? false : null },
        { r: 'mp_cli', measure: true, maintain: modern ? true : null },
      ]);
    } finally {
      await later.drop();
    }
  });
});
