// Agents as real processes, killed for real: an operation survives its agent's SIGKILL, resumes on
// another agent only after the lease lapsed, ends once, and its events tell both attempts apart.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kysely } from 'kysely';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { connectDocker } from '../../agent/docker/engine.ts';
import { jobServiceName } from '../../agent/executors/job-run.ts';
import { controlDb, getOperation, operationEvents, submitOperation, type Database, type OperationEvent } from '../../sql/control/database.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE } from '../support/docker.ts';
import { waitFor } from '../support/wait.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURE = join(ROOT, 'test', 'agent', 'fixtures', 'agent-process.ts');

/** The queue's lease for this file: short, so a dead agent's operation comes back within seconds. */
const LEASE_SECONDS = 3;

interface AgentProcess {
  name: string;
  child: ChildProcess;
  stderr(): string;
}

describeSwarm('agents as processes, killed with SIGKILL', () => {
  let db: TestDatabase;
  let kdb: Kysely<Database>;
  const children: AgentProcess[] = [];
  const docker = connectDocker();

  beforeAll(async () => {
    db = await freshDatabase();
    kdb = controlDb(db.pool);
    await db.pool.query(`select mp.queue_create('mp_ops', $1)`, [JSON.stringify({ lease_seconds: LEASE_SECONDS })]);
    // Job services are named after operation ids (mp-job-<id>), and every test database counts from 1:
    // start this one somewhere else, so test files running at once never share a job.
    await db.pool.query(`select setval(pg_get_serial_sequence('mp.operations', 'id'), $1)`, [randomInt(1_000_000, 2_000_000_000)]);
    await db.pool.query(`select mp.environment_create('crash'), mp.environment_create('e1'), mp.environment_create('e2'),
                                mp.environment_create('e3'), mp.environment_create('e4')`);
  });

  afterEach(async () => {
    await Promise.all(children.splice(0).map((a) => stop(a)));
  });

  afterAll(async () => {
    await db?.drop();
  });

  /** Starts an agent process and waits until it has registered. */
  async function startAgentProcess(name: string): Promise<AgentProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: db.url, AGENT_NAME: name },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    const agent = { name, child, stderr: () => err };
    children.push(agent);
    await waitFor(
      `agent ${name} to print ready`,
      () => {
        if (child.exitCode !== null) throw new Error(`agent ${name} exited with ${child.exitCode}: ${err}`);
        return out.includes('ready\n');
      },
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    return agent;
  }

  async function stop(agent: AgentProcess): Promise<void> {
    if (agent.child.exitCode !== null || agent.child.signalCode !== null) return;
    const exited = new Promise((resolve) => agent.child.once('exit', resolve));
    agent.child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill('SIGKILL');
  }

  async function kill(agent: AgentProcess): Promise<void> {
    const exited = new Promise((resolve) => agent.child.once('exit', resolve));
    agent.child.kill('SIGKILL');
    await exited;
  }

  async function finished(id: string, timeoutMs = 60_000) {
    return await waitFor(
      `operation ${id} to end`,
      async () => {
        const op = await getOperation(kdb, id);
        return op && ['succeeded', 'failed', 'cancelled'].includes(op.status) ? op : undefined;
      },
      { timeoutMs, intervalMs: 100 },
    );
  }

  const stepsOf = (events: OperationEvent[], step: string): OperationEvent[] => events.filter((e) => e.step === step);

  it('resumes a killed agent’s job on another agent after the lease, reuses the job, and ends once', async () => {
    const a = await startAgentProcess('crash-a');
    const id = await submitOperation(kdb, {
      kind: 'job.run',
      environment: 'crash',
      payload: { image: LAB_BUSYBOX_IMAGE, command: ['sleep', '6'], timeoutSeconds: 60 },
    });

    // Mid-operation: A started it and the job's container runs.
    await waitFor(
      'the job to run on agent A',
      async () => stepsOf(await operationEvents(kdb, id), 'running').length > 0,
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    await kill(a);
    // The lease A held when it died: nobody may take the operation over before it.
    const { rows } = await db.pool.query<{ lease_until: Date; locked_by: string }>(
      `select j.lease_until, j.locked_by from mp.jobs j join mp.operations o on o.job_id = j.id where o.id = $1`,
      [id],
    );
    expect(rows[0]).toMatchObject({ locked_by: 'crash-a' });
    const leaseUntil = rows[0]!.lease_until;

    // B is up before the lease lapses: it must wait it out, not steal the operation.
    const b = await startAgentProcess('crash-b');
    const op = await finished(id);

    expect(op.status).toBe('succeeded');
    expect(op.node).toBe('crash-b');
    expect(op.attempts).toBe(2);
    expect(op.result).toMatchObject({ exitCode: 0, service: jobServiceName(id), resumed: true });

    const events = await operationEvents(kdb, id);
    const started = stepsOf(events, 'started');
    expect(started.map((e) => [e.node, e.attempt, e.message])).toEqual([
      ['crash-a', 1, 'started on crash-a'],
      ['crash-b', 2, 'resumed on crash-b (attempt 2; crash-a lost its lease)'],
    ]);
    expect(new Date(started[1]!.at).getTime()).toBeGreaterThanOrEqual(leaseUntil.getTime());
    expect(stepsOf(events, 'succeeded')).toHaveLength(1);
    expect(events.filter((e) => ['succeeded', 'failed', 'cancelled'].includes(e.step))).toHaveLength(1);

    // One job ever ran: A created it, B found the same service and waited for it.
    const created = stepsOf(events, 'create');
    const resumed = stepsOf(events, 'resume');
    expect(created.map((e) => [e.node, e.attempt])).toEqual([['crash-a', 1]]);
    expect(resumed.map((e) => [e.node, e.attempt])).toEqual([['crash-b', 2]]);
    expect(resumed[0]!.message).toMatch(/^resuming: job mp-job-\d+ already started$/);
    expect((resumed[0]!.data as { serviceId: string }).serviceId).toBe((created[0]!.data as { serviceId: string }).serviceId);
    expect(stepsOf(events, 'exit').map((e) => e.node)).toEqual(['crash-b']);
    // B removed the finished job.
    expect((await docker.listServices({ name: [jobServiceName(id)] })).filter((s) => s.name === jobServiceName(id))).toEqual([]);
    expect(b.stderr()).not.toMatch(/error:/);
  });

  it('live agents keep their operations past the lease: two agents never run one operation at once', async () => {
    await Promise.all([startAgentProcess('live-a'), startAgentProcess('live-b')]);
    // Each job outlasts the 3 s lease: only the agents' lease extensions keep other agents off it.
    const ids = await Promise.all(
      ['e1', 'e2', 'e3', 'e4'].map((environment) =>
        submitOperation(kdb, {
          kind: 'job.run',
          environment,
          payload: { image: LAB_BUSYBOX_IMAGE, command: ['sleep', String(LEASE_SECONDS + 2)], timeoutSeconds: 60 },
        }),
      ),
    );
    const ops = await Promise.all(ids.map((id) => finished(id)));
    expect(ops.map((o) => [o.status, o.attempts])).toEqual(ids.map(() => ['succeeded', 1]));
    for (const id of ids) {
      const events = await operationEvents(kdb, id);
      expect(stepsOf(events, 'started')).toHaveLength(1);
      expect(stepsOf(events, 'create')).toHaveLength(1);
      expect(stepsOf(events, 'resume')).toHaveLength(0);
    }
  });
});
