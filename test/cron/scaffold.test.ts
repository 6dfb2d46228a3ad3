/**
 * On the lab's Swarm: plain Compose services marked with `mp code worker|job|cron`, then deployed. The
 * worker runs as a service without published ports that restarts on failure, the job is no service
 * and `mp job run` runs it, and the cron job's schedule runs (MP_CRON_SECONDS=1: a seconds schedule).
 */
import { randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import { connectDocker, STACK_NAMESPACE_LABEL } from '../../agent/docker/engine.ts';
import * as codeCron from '../../cli/commands/code/cron.ts';
import * as codeJob from '../../cli/commands/code/job.ts';
import * as codeWorker from '../../cli/commands/code/worker.ts';
import * as rollout from '../../cli/commands/deploy/rollout.ts';
import * as jobRun from '../../cli/commands/job/run.ts';
import { listRuns } from '../../sql/control/cron.ts';
import { captured, type CapturedContext } from '../cli/harness.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE, uniqueName } from '../support/docker.ts';
import { waitFor } from '../support/wait.ts';

const docker = connectDocker();
let db: TestDatabase;
let agent: RunningAgent;
let agentPool: pg.Pool;
const work = mkdtempSync(join(tmpdir(), 'mp-scaffold-'));
const stack = uniqueName('scaffold').replace(/[^a-z0-9]/g, '');
const contexts: CapturedContext[] = [];

function ctx(): CapturedContext {
  const c = captured(db.url);
  contexts.push(c);
  return c;
}

async function removeStack(): Promise<void> {
  const label = [`${STACK_NAMESPACE_LABEL}=${stack}`];
  for (const s of await docker.listServices({ label })) await docker.removeService(s).catch(() => {});
  for (const s of await docker.listServices({ label: [`org.minipaas.stack=${stack}`] })) await docker.removeService(s).catch(() => {});
  await waitFor(`stack ${stack} tasks gone`, async () => (await docker.listTasks({ label })).length === 0, { timeoutMs: 30_000, intervalMs: 250 }).catch(() => {});
  for (const n of await docker.listNetworks({ label })) await docker.removeNetwork(n).catch(() => {});
}

describeSwarm('services scaffolded with mp code, deployed', () => {
  beforeAll(async () => {
    process.env.MP_CRON_SECONDS = '1';
    db = await freshDatabase({ poolSize: 6 });
    // Job services are named after operation ids: start far from other test files' ids.
    await db.pool.query(`select setval(pg_get_serial_sequence('mp.operations', 'id'), $1)`, [randomInt(1_000_000, 2_000_000_000)]);
    agentPool = new pg.Pool({ connectionString: db.url, max: 8 });
    agent = await startAgent({ pool: agentPool, docker, name: 'scaffold-agent', pollIntervalMs: 200, heartbeatMs: 500, concurrency: 6, cron: { leaseSeconds: 3, pollMs: 300 } });
  });
  afterAll(async () => {
    delete process.env.MP_CRON_SECONDS;
    await agent?.stop();
    await agentPool?.end();
    await Promise.all(contexts.map((c) => c.close()));
    await removeStack();
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('mp code worker, job and cron on plain services: the deploy runs the worker, mp job run the job, the agent the schedule', async () => {
    const dir = join(work, 'scaffolded');
    mkdirSync(dir);
    writeFileSync(join(dir, 'minipaas.yaml'), ['project:', '  files: [compose.yaml]', `stack: ${stack}`, 'deploy:', '  timeout: 90', '  stable: 1', ''].join('\n'));
    writeFileSync(
      join(dir, 'compose.yaml'),
      `# Plain services, marked by mp code.
services:
  consumer:   # stays a service
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    ports:
      - "9229:9229"
  migrate:
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sh", "-c", "echo migrated"]
  tick:
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sh", "-c", "echo tick"]
    deploy:
      replicas: 1
`,
    );
    await codeWorker.run(captured(undefined), { env: dir, services: ['consumer'] });
    await codeJob.run(captured(undefined), { env: dir, services: ['migrate'] });
    await codeCron.run(captured(undefined), { env: dir, services: ['tick'], cron: '*/2 * * * * *', overlap: 'forbid', catchUp: 'none' });
    expect(readFileSync(join(dir, 'compose.yaml'), 'utf8')).toMatch(/^# Plain services, marked by mp code\.\nservices:\n {2}consumer: {3}# stays a service\n/);

    await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    const services = await docker.listServices({ label: [`${STACK_NAMESPACE_LABEL}=${stack}`] });
    expect(services.map((s) => s.name)).toEqual([`${stack}_consumer`]);
    const consumer = services[0]!.spec;
    expect(consumer.TaskTemplate?.RestartPolicy?.Condition).toBe('on-failure');
    expect(consumer.EndpointSpec?.Ports ?? []).toEqual([]);
    expect(consumer.Labels?.['org.minipaas.kind']).toBe('worker');

    const job = ctx();
    await jobRun.run(job, { env: dir, job: 'migrate', args: [], detach: false });
    expect(job.out()).toBe('migrated\n');

    const runs = (): ReturnType<typeof listRuns> => listRuns(db.pool, { environment: 'scaffolded', name: 'tick', limit: 50 });
    await waitFor('two ticks of the scaffolded schedule to succeed', async () => (await runs()).filter((r) => r.status === 'succeeded').length >= 2, {
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    const done = (await runs()).filter((r) => r.status === 'succeeded');
    expect(done.every((r) => r.exitCode === 0)).toBe(true);
    // Ticks on the 2-second grid, as the label says.
    expect(done.every((r) => r.tickAt.getTime() % 2000 === 0)).toBe(true);
  }, 180_000);
});
