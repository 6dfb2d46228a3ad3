// The node agent against a real PostgreSQL and the real Docker engine + Swarm of the lab.
import { afterAll, beforeAll, expect, it } from 'vitest';
import pg from 'pg';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import { connectDocker } from '../../agent/docker/engine.ts';
import { jobServiceName } from '../../agent/executors/job-run.ts';
import { cancelOperation, controlDb, getOperation, operationEvents, submitOperation } from '../../sql/control/database.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE } from '../support/docker.ts';
import { waitFor } from '../support/wait.ts';

describeSwarm('node agent', () => {
  let db: TestDatabase;
  const agents: RunningAgent[] = [];
  const pools: pg.Pool[] = [];
  beforeAll(async () => {
    db = await freshDatabase();
    await db.pool.query(`select mp.environment_create('prod'), mp.environment_create('staging')`);
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await Promise.all(pools.map((p) => p.end()));
    await db.drop();
  });

  async function agent(name: string): Promise<RunningAgent> {
    const pool = new pg.Pool({ connectionString: db.url, max: 6 });
    pools.push(pool);
    const a = await startAgent({ pool, docker: connectDocker(), name, pollIntervalMs: 500, heartbeatMs: 1000 });
    agents.push(a);
    return a;
  }

  async function finished(id: string) {
    const kdb = controlDb(db.pool);
    return await waitFor(`operation ${id} to end`, async () => {
      const op = await getOperation(kdb, id);
      return op && ['succeeded', 'failed', 'cancelled'].includes(op.status) ? op : undefined;
    }, { timeoutMs: 30_000 });
  }

  it('registers its node as a manager and executes docker.info against the real engine', async () => {
    const a = await agent('agent-a');
    expect(a.targets).toEqual(['node:agent-a', 'manager']);
    const { rows } = await db.pool.query(`select name, alive, swarm_role from mp.nodes_v`);
    expect(rows).toEqual([{ name: 'agent-a', alive: true, swarm_role: 'manager' }]);

    const kdb = controlDb(db.pool);
    const id = await submitOperation(kdb, { kind: 'docker.info', environment: 'prod', payload: {} });
    const op = await finished(id);
    expect(op.status).toBe('succeeded');
    expect(op.node).toBe('agent-a');
    const engine = (await connectDocker().info());
    expect(op.result).toMatchObject({ swarm: { state: 'active', manager: true, nodeId: engine.swarm.nodeId } });
    const steps = (await operationEvents(kdb, id)).map((e) => e.step);
    expect(steps[0]).toBe('queued');
    expect(steps[1]).toBe('started');
    expect(steps.at(-1)).toBe('succeeded');
  });

  it('fails an operation with the executor error, as one line the CLI can print', async () => {
    await agent('agent-b');
    const kdb = controlDb(db.pool);
    const id = await submitOperation(kdb, { kind: 'service.scale', environment: 'staging', payload: { service: 'no-such-service-x', replicas: 1 } });
    const op = await finished(id);
    expect(op.status).toBe('failed');
    expect(op.error).toMatch(/no-such-service-x/);
    const events = await operationEvents(kdb, id);
    expect(events.at(-1)).toMatchObject({ step: 'failed', level: 'error' });
  });

  it('two agents never run one operation twice; one environment runs in order while another proceeds', async () => {
    const kdb = controlDb(db.pool);
    const prod: string[] = [];
    const staging: string[] = [];
    for (let i = 0; i < 6; i++) {
      prod.push(await submitOperation(kdb, { kind: 'docker.info', environment: 'prod', payload: {} }));
      staging.push(await submitOperation(kdb, { kind: 'docker.info', environment: 'staging', payload: {} }));
    }
    const ops = await Promise.all([...prod, ...staging].map((id) => finished(id)));
    expect(ops.every((o) => o.status === 'succeeded' && o.attempts === 1)).toBe(true);
    // Each operation started exactly once across both agents.
    for (const id of [...prod, ...staging]) {
      const starts = (await operationEvents(kdb, id)).filter((e) => e.step === 'started');
      expect(starts).toHaveLength(1);
    }
    // Within one environment, each operation started after the previous one ended.
    for (const env of [prod, staging]) {
      const spans = await Promise.all(env.map(async (id) => (await getOperation(kdb, id))!));
      for (let i = 1; i < spans.length; i++) {
        expect(spans[i]!.started_at!.getTime()).toBeGreaterThanOrEqual(spans[i - 1]!.finished_at!.getTime());
      }
    }
    const nodes = new Set(ops.map((o) => o.node));
    expect(nodes.size).toBeGreaterThanOrEqual(1);
  });

  it('cancels a running operation at its next safe point: the job stops and the operation ends cancelled', async () => {
    await agent('agent-c');
    const kdb = controlDb(db.pool);
    // Ids restart at 1 in every test database: move this one's away from other files' job names.
    await db.pool.query(`select setval(pg_get_serial_sequence('mp.operations', 'id'), 900000 + floor(random() * 90000)::int)`);
    const id = await submitOperation(kdb, {
      kind: 'job.run',
      environment: 'prod',
      payload: { image: LAB_BUSYBOX_IMAGE, command: ['sleep', '60'] },
    });
    await waitFor('the job to run', async () => (await operationEvents(kdb, id)).some((e) => e.step === 'running'), { timeoutMs: 30_000 });
    expect(await cancelOperation(kdb, id)).toBe('running');
    const op = await finished(id);
    expect(op.status).toBe('cancelled');
    const steps = (await operationEvents(kdb, id)).map((e) => e.step);
    expect(steps).toContain('cancel_requested');
    expect(steps.at(-1)).toBe('cancelled');
    const docker = connectDocker();
    await waitFor('the job service to be removed', async () =>
      docker.inspectService(jobServiceName(id)).then(() => false, () => true),
    );
  });
});
