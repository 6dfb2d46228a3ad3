// The control plane's SQL: intents written atomically, agents' reports, cancellation, views.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { freshDatabase, type TestDatabase } from '../../support/database.ts';

let db: TestDatabase;
let c: pg.Client;
beforeAll(async () => {
  db = await freshDatabase();
  c = await db.connect();
  await c.query(`select mp.environment_create('prod'), mp.environment_create('staging')`);
});
afterAll(async () => db.drop());

async function one<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T> {
  return (await c.query(sql, params)).rows[0] as T;
}
async function submit(kind: string, env: string | null, payload: object = {}, options: object = {}): Promise<number> {
  return Number((await one<{ id: string }>(`select mp.submit_operation($1, $2, $3, $4) id`, [kind, env, JSON.stringify(payload), JSON.stringify(options)])).id);
}
async function events(op: number): Promise<Array<{ step: string; message: string; attempt?: number }>> {
  const { rows } = await c.query(
    `select e.payload from mp.stream_events e join mp.streams s on s.id = e.stream_id where s.name = 'mp_events' and e.key = $1 order by e.pos`,
    [String(op)],
  );
  return rows.map((r) => r.payload);
}
async function counts(): Promise<{ ops: number; jobs: number; events: number }> {
  return await one(`select (select count(*)::int from mp.operations) ops, (select count(*)::int from mp.jobs where queue = 'mp_ops') jobs,
    (select last_pos::int from mp.streams where name = 'mp_events') events`);
}

describe('operations', () => {
  it('submit writes the operation, its mp_ops job and a queued event together', async () => {
    const before = await counts();
    const id = await submit('docker.info', 'prod');
    expect(await counts()).toEqual({ ops: before.ops + 1, jobs: before.jobs + 1, events: before.events + 1 });
    const op = await one<{ status: string; target: string; serial_key: string; job_id: string }>(`select * from mp.operations where id = $1`, [id]);
    expect(op).toMatchObject({ status: 'queued', target: 'manager', serial_key: 'env:prod' });
    const job = await one<{ payload: unknown; target: string }>(`select payload, target from mp.jobs where id = $1`, [op.job_id]);
    expect(job).toEqual({ payload: { op: id }, target: 'manager' });
    expect((await events(id)).map((e) => e.step)).toEqual(['queued']);
    await c.query(`select mp.cancel_operation($1)`, [id]);
  });

  it.each([
    ['unknown environment', ['docker.info', 'prdo', {}, {}], 'MP009', /unknown environment "prdo"/],
    ['invalid kind', ['Docker Info', 'prod', {}, {}], 'MP001', /invalid operation kind: "Docker Info"/],
    ['bad target', ['docker.info', 'prod', {}, { target: 'somewhere' }], 'MP003', /invalid target: "somewhere"/],
    ['unknown option', ['docker.info', 'prod', {}, { tagret: 'manager' }], 'MP003', /unknown option "tagret"/],
    ['payload not an object', ['docker.info', 'prod', [1, 2], {}], 'MP008', /must be a JSON object, got array/],
  ])('refuses %s and writes nothing', async (_n, [kind, env, payload, options], code, message) => {
    const before = await counts();
    const err = await c
      .query(`select mp.submit_operation($1, $2, $3, $4)`, [kind, env, JSON.stringify(payload), JSON.stringify(options)])
      .catch((e: { code: string; message: string }) => e);
    expect(err).toMatchObject({ code });
    expect((err as { message: string }).message).toMatch(message);
    expect(await counts()).toEqual(before);
  });

  it('an idempotency key returns the first operation instead of a second', async () => {
    const a = await submit('service.scale', 'prod', { service: 'web', replicas: 2 }, { idempotency_key: 'scale-web-2' });
    const b = await submit('service.scale', 'prod', { service: 'web', replicas: 2 }, { idempotency_key: 'scale-web-2' });
    expect(b).toBe(a);
    await c.query(`select mp.cancel_operation($1)`, [a]);
  });

  it('runs one environment strictly in order while another proceeds', async () => {
    const p1 = await submit('docker.info', 'prod');
    const p2 = await submit('docker.info', 'prod');
    const s1 = await submit('docker.info', 'staging');
    const claim = async () =>
      (await c.query(`select payload->>'op' op from mp.claim('mp_ops', 'agent', 10, null, array['manager'])`)).rows.map((r) => Number(r.op));
    expect(await claim()).toEqual([p1, s1]);
    expect(await claim()).toEqual([]);
    const job = await one<{ job_id: string }>(`select job_id from mp.operations where id = $1`, [p1]);
    await c.query(`select mp.ack(array[$1]::bigint[])`, [job.job_id]);
    expect(await claim()).toEqual([p2]);
    for (const op of [p1, p2, s1]) {
      const { job_id } = await one<{ job_id: string }>(`select job_id from mp.operations where id = $1`, [op]);
      await c.query(`select mp.ack(array[$1]::bigint[])`, [job_id]);
    }
  });

  it('a late report from an agent that lost its lease changes nothing; events show both attempts', async () => {
    const id = await submit('docker.info', null, {}, { target: 'any' });
    const first = await one<{ attempts: number }>(`select * from mp.op_start($1, 'node-a')`, [id]);
    expect(first.attempts).toBe(1);
    const second = await one<{ attempts: number }>(`select * from mp.op_start($1, 'node-b')`, [id]);
    expect(second.attempts).toBe(2);
    expect((await one<{ ok: boolean }>(`select mp.op_finish($1, 1, 'failed', null, 'late') ok`, [id])).ok).toBe(false);
    expect((await one<{ ok: boolean }>(`select mp.op_finish($1, 2, 'succeeded', '{"x":1}') ok`, [id])).ok).toBe(true);
    expect((await one<{ ok: boolean }>(`select mp.op_finish($1, 2, 'failed') ok`, [id])).ok).toBe(false);
    const op = await one(`select status, node, result, error from mp.operations where id = $1`, [id]);
    expect(op).toEqual({ status: 'succeeded', node: 'node-b', result: { x: 1 }, error: null });
    const steps = await events(id);
    expect(steps.map((e) => e.step)).toEqual(['queued', 'started', 'started', 'succeeded']);
    expect(steps[2]!.message).toMatch(/resumed on node-b \(attempt 2; node-a lost its lease\)/);
  });

  it('cancel: a queued operation at once, a running one by request, a finished one is refused', async () => {
    const queued = await submit('docker.info', 'staging');
    expect((await one<{ s: string }>(`select mp.cancel_operation($1) s`, [queued])).s).toBe('cancelled');
    const { job_id } = await one<{ job_id: string }>(`select job_id from mp.operations where id = $1`, [queued]);
    expect(await one(`select count(*)::int n from mp.jobs where id = $1`, [job_id])).toEqual({ n: 0 });

    const running = await submit('docker.info', null, {}, { target: 'any' });
    await c.query(`select mp.op_start($1, 'n')`, [running]);
    expect((await one<{ s: string }>(`select mp.cancel_operation($1) s`, [running])).s).toBe('running');
    expect(await one(`select cancel_requested from mp.operations where id = $1`, [running])).toEqual({ cancel_requested: true });
    await c.query(`select mp.op_finish($1, 1, 'cancelled')`, [running]);

    const err = await c.query(`select mp.cancel_operation($1)`, [running]).catch((e: { code: string; message: string }) => e);
    expect(err).toMatchObject({ code: 'MP010', message: `operation ${running} already cancelled` });
  });

  it('retry queues a failed operation again under the same id', async () => {
    const id = await submit('docker.info', null, {}, { target: 'any' });
    await c.query(`select mp.op_start($1, 'n')`, [id]);
    await c.query(`select mp.op_finish($1, 1, 'failed', null, 'engine down')`, [id]);
    await c.query(`select mp.retry_operation($1)`, [id]);
    expect(await one(`select status, error from mp.operations where id = $1`, [id])).toEqual({ status: 'queued', error: null });
    const err = await c.query(`select mp.retry_operation($1)`, [id]).catch((e: { code: string }) => e);
    expect(err).toMatchObject({ code: 'MP010' });
    await c.query(`select mp.cancel_operation($1)`, [id]);
  });

  it('views show operations with their latest event, and nodes alive by heartbeat', async () => {
    const id = await submit('docker.info', 'prod');
    const row = await one(`select kind, env, status, last_step from mp.operations_v where id = $1`, [id]);
    expect(row).toEqual({ kind: 'docker.info', env: 'prod', status: 'queued', last_step: 'queued' });
    await c.query(`select mp.node_register('n1', 'host-1', '0.1.0', array['node:n1', 'manager'], array['docker.info'])`);
    await c.query(`select mp.node_register('n2', 'host-2', '0.1.0', array['node:n2'], array['docker.info'])`);
    await c.query(`update mp.nodes set heartbeat_at = now() - interval '1 minute' where name = 'n2'`);
    const { rows } = await c.query(`select name, alive from mp.nodes_v order by name`);
    expect(rows).toEqual([
      { name: 'n1', alive: true },
      { name: 'n2', alive: false },
    ]);
    expect(await one(`select mp.agent_alive_for('manager') m, mp.agent_alive_for('node:n2') n2`)).toEqual({ m: true, n2: false });
    expect((await c.query(`select * from mp.queues_v where name = 'mp_ops'`)).rows).toHaveLength(1);
  });
});
