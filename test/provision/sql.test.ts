/**
 * sql/control/0008: step operations under a host's operation and the progress view; host keys accepted
 * once; heartbeats with metrics; incidents opened once (with one alert operation) and closed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { monitoringSchema } from '../../agent/provision/inventory.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db.drop();
});

const q = async <R extends object>(text: string, values: unknown[] = []): Promise<R[]> => (await db.pool.query<R & import('pg').QueryResultRow>(text, values)).rows;
const one = async <R extends object>(text: string, values: unknown[] = []): Promise<R> => (await q<R>(text, values))[0]!;

describe('provisioning SQL', () => {
  it('records steps as child operations and shows them per host in mp.provisioning_v', async () => {
    await q(`select mp.environment_create('lab')`);
    const { id } = await one<{ id: string }>(
      `select mp.submit_operation('provision.host', 'lab', '{"host": {"name": "mgr-1", "role": "manager"}}', '{"target": "provisioner", "serial_key": "provision:mgr-1"}') as id`,
    );
    const { s1 } = await one<{ s1: string }>(`select mp.provision_step_start($1, 'os', 'prov', '{"host": "mgr-1"}') as s1`, [id]);
    await q(`select mp.provision_step_finish($1, 'succeeded', '{"changed": false, "summary": "unchanged"}')`, [s1]);
    const { s2 } = await one<{ s2: string }>(`select mp.provision_step_start($1, 'docker', 'prov') as s2`, [id]);
    await q(`select mp.provision_step_finish($1, 'failed', null, 'host mgr-1, step docker: apt-get exited 100')`, [s2]);
    // A second attempt reuses the step's row.
    const { again } = await one<{ again: string }>(`select mp.provision_step_start($1, 'docker', 'prov') as again`, [id]);
    expect(again).toBe(s2);
    await q(`select mp.provision_step_finish($1, 'succeeded', '{"changed": true, "summary": "changed: docker"}')`, [s2]);
    const rows = await q<{ host: string; step: string; status: string; outcome: string; detail: string }>(
      `select host, step, status, outcome, detail from mp.provisioning_v where operation = $1`,
      [id],
    );
    expect(rows).toEqual([
      { host: 'mgr-1', step: 'os', status: 'succeeded', outcome: 'unchanged', detail: 'unchanged' },
      { host: 'mgr-1', step: 'docker', status: 'succeeded', outcome: 'changed', detail: 'changed: docker' },
    ]);
    const [child] = await q<{ parent_id: string; kind: string; target: string; job_id: string | null }>(`select parent_id, kind, target, job_id from mp.operations where id = $1`, [s2]);
    expect(child).toEqual({ parent_id: id, kind: 'provision.step', target: 'provisioner', job_id: null });
  });

  it('accepts a host key once and returns the recorded one after', async () => {
    const { k } = await one<{ k: string }>(`select mp.host_key_accept('10.0.0.2', 22, 'ssh-ed25519', 'AAAA1', 'SHA256:x') as k`);
    expect(k).toBe('AAAA1');
    const { k2 } = await one<{ k2: string }>(`select mp.host_key_accept('10.0.0.2', 22, 'ssh-ed25519', 'BBBB2', 'SHA256:y') as k2`);
    expect(k2).toBe('AAAA1');
  });

  it('opens one incident per condition with one alert, and closes it when it clears', async () => {
    await q(`select mp.node_register('w1', 'w1', '0.1.0', array['node:w1'], array[]::text[])`);
    await q(`select mp.monitoring_configure('{"webhook": "http://127.0.0.1:9/hook", "disk_percent": 80}')`);
    const metrics = (disk: number): string => JSON.stringify({ cpu_percent: 1, memory_percent: 10, disk_percent: disk, load1: 0.1, cpus: 2 });
    await q(`select mp.node_heartbeat('w1', $1::jsonb)`, [metrics(95)]);
    await q(`select mp.node_heartbeat('w1', $1::jsonb)`, [metrics(96)]);
    const open = await q<{ condition: string; alert_operation: string | null }>(`select condition, alert_operation from mp.incidents where node = 'w1' and closed_at is null`);
    expect(open).toHaveLength(1);
    expect(open[0]!.condition).toBe('disk');
    expect(open[0]!.alert_operation).not.toBeNull();
    const [view] = await q<{ disk_percent: number; incidents: string; alive: boolean }>(`select disk_percent, incidents, alive from mp.nodes_metrics_v where name = 'w1'`);
    expect(view).toEqual({ disk_percent: 96, incidents: 'disk', alive: true });
    await q(`select mp.node_heartbeat('w1', $1::jsonb)`, [metrics(50)]);
    expect(await q(`select 1 from mp.incidents where node = 'w1' and closed_at is null`)).toHaveLength(0);
    // Down: no heartbeat for longer than down_after_seconds, seen from a later tick.
    await q(`select mp.monitor_tick(now() + interval '40 seconds')`);
    const down = await q<{ message: string }>(`select message from mp.incidents where node = 'w1' and condition = 'down' and closed_at is null`);
    expect(down[0]!.message).toMatch(/node w1 is down/);
    const alerts = await q<{ n: string }>(`select count(*)::text as n from mp.operations where kind = 'alert.post'`);
    expect(alerts[0]!.n).toBe('3'); // disk opened, disk closed, down opened
    await q(`select mp.grant_roles()`);
  });

  it('down_after_seconds of minipaas.yaml monitoring: decides when a node is down', async () => {
    expect(monitoringSchema.parse({}).down_after_seconds).toBe(30);
    expect(() => monitoringSchema.parse({ down_after_seconds: 5 })).toThrow(/>=10/);
    await q(`select mp.monitoring_configure($1)`, [JSON.stringify(monitoringSchema.parse({ down_after_seconds: 60 }))]);
    await q(`select mp.node_register('w2', 'w2', '0.1.0', array['node:w2'], array[]::text[])`);
    await q(`select mp.node_heartbeat('w2', '{}'::jsonb)`);
    const down = async () => (await q(`select 1 from mp.incidents where node = 'w2' and condition = 'down' and closed_at is null`)).length === 1;
    await q(`select mp.monitor_tick(now() + interval '45 seconds')`);
    expect(await down()).toBe(false);
    await q(`select mp.monitor_tick(now() + interval '65 seconds')`);
    expect(await down()).toBe(true);
  });
});
