// `mp scale` on the lab's Swarm: several services in one release derived from the current one (kind
// 'scale'), visible in history; the next deploy keeps the count until the Compose file changes it;
// rollback knows it; bad counts write nothing.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import { connectDocker, STACK_NAMESPACE_LABEL } from '../../agent/docker/engine.ts';
import * as history from '../../cli/commands/deploy/history.ts';
import * as rollout from '../../cli/commands/deploy/rollout.ts';
import * as rollback from '../../cli/commands/rollback.ts';
import * as scale from '../../cli/commands/scale.ts';
import { listReleases } from '../../sql/control/releases.ts';
import { MiniPaasError } from '../../sql/errors.ts';
import { captured, type CapturedContext } from '../cli/harness.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE, uniqueName } from '../support/docker.ts';
import { waitFor } from '../support/wait.ts';

const docker = connectDocker();
let db: TestDatabase;
let agent: RunningAgent;
let agentPool: pg.Pool;
const work = mkdtempSync(join(tmpdir(), 'mp-scale-'));
let stack = '';
const contexts: CapturedContext[] = [];

function ctx(): CapturedContext {
  const c = captured(db.url);
  contexts.push(c);
  return c;
}

const compose = (apiReplicas: number, note: string): string => `services:
  api:
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sleep", "3600"]
    environment: { NOTE: "${note}" }
    deploy: { replicas: ${apiReplicas} }
  worker:
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sleep", "3600"]
`;

async function replicas(): Promise<Record<string, number | undefined>> {
  const services = await docker.listServices({ label: [`${STACK_NAMESPACE_LABEL}=${stack}`] });
  return Object.fromEntries(services.map((s) => [s.name.slice(stack.length + 1), s.replicas]));
}

describeSwarm('mp scale', () => {
  let dir: string;
  beforeAll(async () => {
    db = await freshDatabase({ poolSize: 6 });
    agentPool = new pg.Pool({ connectionString: db.url, max: 4 });
    agent = await startAgent({ pool: agentPool, docker, name: 'scale-agent', pollIntervalMs: 200, heartbeatMs: 500 });
    dir = join(work, 'shop');
    mkdirSync(dir, { recursive: true });
    stack = uniqueName('sc').replace(/[^a-z0-9]/g, '');
    writeFileSync(join(dir, 'minipaas.yaml'), `project:\n  files: [compose.yaml]\nstack: ${stack}\ndeploy:\n  timeout: 90\n  stable: 1\n`);
    writeFileSync(join(dir, 'compose.yaml'), compose(1, 'a'));
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    await agentPool?.end();
    await Promise.all(contexts.map((c) => c.close()));
    const label = [`${STACK_NAMESPACE_LABEL}=${stack}`];
    for (const s of await docker.listServices({ label })) await docker.removeService(s).catch(() => {});
    await waitFor('tasks gone', async () => (await docker.listTasks({ label })).length === 0, { timeoutMs: 30_000, intervalMs: 250 }).catch(() => {});
    for (const n of await docker.listNetworks({ label })) await docker.removeNetwork(n).catch(() => {});
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  }, 90_000);

  it('scales two services as one release, keeps the count across a deploy until the file changes it, and rollback knows it', async () => {
    await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    const before = readFileSync(join(dir, 'compose.yaml'), 'utf8');

    for (const counts of [['api=abc'], ['api=-1'], ['apo=2'], ['api=2', 'api=3'], ['api']]) {
      const err = await scale.run(ctx(), { env: dir, counts, detach: false }).then(() => undefined, (e: unknown) => e);
      expect(err, counts.join(' ')).toBeInstanceOf(MiniPaasError);
    }
    const miss = await scale.run(ctx(), { env: dir, counts: ['apo=2'], detach: false }).catch((e: MiniPaasError) => e);
    expect(`${(miss as MiniPaasError).message} ${(miss as MiniPaasError).hint}`).toMatch(/service 'apo' is not in release 1.*did you mean 'api'/);
    expect((await listReleases(db.pool, 'shop')).length).toBe(1);

    const s = ctx();
    await scale.run(s, { env: dir, counts: ['api=3', 'worker=2'], detach: false });
    expect(s.out()).toMatch(/release 2 of shop \(scale\) recorded/);
    expect(s.out()).toMatch(/deploy succeeded/);
    expect(await replicas()).toEqual({ api: 3, worker: 2 });
    const h = ctx();
    await history.run(h, { env: dir, limit: 20 });
    expect(h.out()).toMatch(/^\s*2\s+scale\s+succeeded\s+1\s/m);

    // A deploy that changes something else keeps the scaled counts.
    writeFileSync(join(dir, 'compose.yaml'), compose(1, 'b'));
    const d = ctx();
    await rollout.run(d, { env: dir, dryRun: false, detach: false });
    expect(d.err()).toMatch(/keeping the scaled count of api=3, worker=2/);
    expect(await replicas()).toEqual({ api: 3, worker: 2 });

    // Rollback to before the scale restores the counts of release 1.
    await rollback.run(ctx(), { env: dir, to: 1, detach: false });
    expect(await replicas()).toEqual({ api: 1, worker: 1 });
    await rollback.run(ctx(), { env: dir, to: 3, detach: false });
    expect(await replicas()).toEqual({ api: 3, worker: 2 });

    // The file changing api's count wins for api; worker keeps its scale.
    writeFileSync(join(dir, 'compose.yaml'), compose(2, 'b'));
    await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    expect(await replicas()).toEqual({ api: 2, worker: 2 });
    expect(before).toContain('replicas: 1');
  }, 240_000);
});
