/**
 * sql/control/0012: an operation aimed at a node that is down fails with a message naming the node,
 * at the next heartbeat of any other agent, instead of waiting on mp_ops for that node's agent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDatabase } from '../support/database.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db.drop();
});

const q = async <R extends object>(text: string, values: unknown[] = []): Promise<R[]> => (await db.pool.query<R & import('pg').QueryResultRow>(text, values)).rows;

describe('operations of a down node', () => {
  it('fails queued operations aimed at a down node, leaves live nodes, manager and leased operations alone', async () => {
    await q(`select mp.node_register('w-live', 'w-live', '0.1.0', array['node:w-live'], array[]::text[])`);
    await q(`select mp.node_register('w-dead', 'w-dead', '0.1.0', array['node:w-dead'], array[]::text[])`);
    const submit = async (target: string): Promise<string> =>
      (await q<{ id: string }>(`select mp.submit_operation('docker.info', null, '{}', jsonb_build_object('target', $1::text)) as id`, [target]))[0]!.id;
    const dead = await submit('node:w-dead');
    const live = await submit('node:w-live');
    const manager = await submit('manager');
    // A node is down once its heartbeat is older than down_after_seconds (30 s by default).
    await q(`update mp.nodes set heartbeat_at = now() - interval '45 seconds' where name = 'w-dead'`);
    await q(`select mp.node_heartbeat('w-live', '{}')`);
    const rows = await q<{ id: string; status: string; error: string | null; job: string | null }>(
      `select o.id, o.status, o.error, (select j.id from mp.jobs j where j.id = o.job_id) as job from mp.operations o order by o.id`,
    );
    const byId = Object.fromEntries(rows.map((r) => [r.id, r]));
    expect(byId[dead]!.status).toBe('failed');
    expect(byId[dead]!.error).toMatch(/^node w-dead is down since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ \(no heartbeat for 30 s\); the operation was not run there$/);
    expect(byId[dead]!.job).toBeNull();
    expect(byId[live]!.status).toBe('queued');
    expect(byId[manager]!.status).toBe('queued');
    const events = await q<{ message: string }>(
      `select e.payload ->> 'message' as message from mp.stream_events e join mp.streams s on s.id = e.stream_id where s.name = 'mp_events' and e.key = $1 order by e.pos`,
      [dead],
    );
    expect(events.map((e) => e.message).at(-1)).toMatch(/node w-dead is down/);

    // Retried while the node stays down: fails again at the next heartbeat.
    await q(`select mp.retry_operation($1)`, [dead]);
    await q(`select mp.node_heartbeat('w-live', '{}')`);
    expect((await q<{ status: string }>(`select status from mp.operations where id = $1`, [dead]))[0]!.status).toBe('failed');

    // A running operation whose lease has not lapsed is left to its agent.
    const leased = await submit('node:w-dead');
    await q(`update mp.jobs set locked_by = 'w-dead', lease_until = now() + interval '1 minute' where id = (select job_id from mp.operations where id = $1)`, [leased]);
    await q(`update mp.operations set status = 'running', node = 'w-dead' where id = $1`, [leased]);
    await q(`select mp.node_heartbeat('w-live', '{}')`);
    expect((await q<{ status: string }>(`select status from mp.operations where id = $1`, [leased]))[0]!.status).toBe('running');
    await q(`update mp.jobs set lease_until = now() - interval '1 second' where id = (select job_id from mp.operations where id = $1)`, [leased]);
    await q(`select mp.node_heartbeat('w-live', '{}')`);
    expect((await q<{ status: string }>(`select status from mp.operations where id = $1`, [leased]))[0]!.status).toBe('failed');
  });
});
