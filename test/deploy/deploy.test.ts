// `mp deploy` end to end on the lab's Swarm: an environment directory becomes a release and a deploy
// operation; a real agent converges the stack; health-gated failures leave the old version serving;
// rollback restores a release exactly; deploys to one environment run in order; a killed agent's deploy
// is resumed by another and the release ends once; bad input writes nothing.
// Deploys wait for Swarm (stop-first updates, health checks, monitor periods): on a loaded 2-core machine a
// test of three deploys takes close to a minute, so the slow ones get 3 minutes.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import { connectDocker, STACK_NAMESPACE_LABEL } from '../../agent/docker/engine.ts';
import * as diff from '../../cli/commands/deploy/diff.ts';
import * as history from '../../cli/commands/deploy/history.ts';
import * as rollout from '../../cli/commands/deploy/rollout.ts';
import * as status from '../../cli/commands/deploy/status.ts';
import * as rollback from '../../cli/commands/rollback.ts';
import { controlDb } from '../../sql/control/database.ts';
import { listReleases } from '../../sql/control/releases.ts';
import { ensureClusterKeys } from '../../sql/control/sealing.ts';
import { MiniPaasError } from '../../sql/errors.ts';
import { captured, type CapturedContext } from '../cli/harness.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE, uniqueName } from '../support/docker.ts';
import { freePort } from '../../dev/temporary-postgres.ts';
import { waitFor } from '../support/wait.ts';

const docker = connectDocker();
let db: TestDatabase;
let agent: RunningAgent;
let agentPool: pg.Pool;
const work = mkdtempSync(join(tmpdir(), 'mp-deploy-'));
const stacks: string[] = [];
const contexts: CapturedContext[] = [];

function ctx(): CapturedContext {
  const c = captured(db.url);
  contexts.push(c);
  return c;
}

/** An environment directory with a minipaas.yaml and one compose.yaml. */
function environment(name: string, compose: string, settings: Record<string, unknown> = {}): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const stack = uniqueName('dep').replace(/[^a-z0-9]/g, '');
  stacks.push(stack);
  const yaml = [
    'project:',
    '  files: [compose.yaml]',
    `stack: ${stack}`,
    'deploy:',
    `  timeout: ${settings.timeout ?? 90}`,
    '  stable: 1',
    ...(settings.version ? [`  version: "${settings.version}"`] : []),
  ].join('\n');
  writeFileSync(join(dir, 'minipaas.yaml'), `${yaml}\n`);
  writeFileSync(join(dir, 'compose.yaml'), compose);
  return dir;
}

/** A busybox web server answering `$MESSAGE`, with a healthcheck; `healthy: false` makes it fail. */
function webCompose(opts: { port?: number; message: string; healthy?: boolean; replicas?: number }): string {
  const check = opts.healthy === false ? 'echo unhealthy-probe; exit 1' : 'wget -q -O- http://127.0.0.1:8080/ >/dev/null';
  return `services:
  web:
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sh", "-c", "mkdir -p /www && echo \\"$$MESSAGE\\" > /www/index.html && echo serving \\"$$MESSAGE\\" && exec httpd -f -p 8080 -h /www"]
    environment:
      MESSAGE: "${opts.message}"
${opts.port === undefined ? '' : `    ports:
      # Host mode: this lab's kernel has no IPVS, so Swarm's ingress routing mesh does not answer here.
      - target: 8080
        published: ${opts.port}
        mode: host
`}    healthcheck:
      test: ["CMD-SHELL", "${check}"]
      interval: 1s
      timeout: 2s
      retries: 2
      start_period: 2s
    deploy:
      replicas: ${opts.replicas ?? 1}
      update_config:
        monitor: 4s
`;
}

async function get(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(3000) });
  return (await res.text()).trim();
}

async function written(): Promise<{ releases: number; ops: number }> {
  const { rows } = await db.pool.query<{ releases: number; ops: number }>(
    `select (select count(*)::int from mp.releases) as releases, (select count(*)::int from mp.operations) as ops`,
  );
  return rows[0]!;
}

async function removeStack(stack: string): Promise<void> {
  const label = [`${STACK_NAMESPACE_LABEL}=${stack}`];
  for (const s of await docker.listServices({ label })) await docker.removeService(s).catch(() => {});
  await waitFor(`stack ${stack} tasks gone`, async () => (await docker.listTasks({ label })).length === 0, { timeoutMs: 30_000, intervalMs: 250 }).catch(() => {});
  for (const n of await docker.listNetworks({ label })) await docker.removeNetwork(n).catch(() => {});
  for (const s of await docker.listSecrets({ label })) await docker.removeSecret(s).catch(() => {});
  for (const c of await docker.listConfigs({ label })) await docker.removeConfig(c).catch(() => {});
}

describeSwarm('mp deploy', () => {
  beforeAll(async () => {
    db = await freshDatabase({ poolSize: 8 });
    agentPool = new pg.Pool({ connectionString: db.url, max: 6 });
    const { keys } = await ensureClusterKeys(controlDb(db.pool), join(work, 'cluster.key'));
    agent = await startAgent({ pool: agentPool, docker, name: 'deploy-agent', pollIntervalMs: 200, heartbeatMs: 500, clusterKeys: keys });
  });
  afterAll(async () => {
    await agent?.stop();
    await agentPool?.end();
    await Promise.all(contexts.map((c) => c.close()));
    await Promise.all(stacks.map(removeStack));
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('deploys, answers over HTTP, says unchanged the second time, and lists both in history', async () => {
    const port = await freePort();
    const dir = environment('first', webCompose({ port, message: 'hello v1' }));
    const c = ctx();
    await rollout.run(c, { env: dir, dryRun: false, detach: false });
    expect(c.out()).toMatch(/release 1 of first \(deploy\) recorded; operation \d+/);
    expect(c.out()).toMatch(/progress\s+\S+_web \d\/1 running/);
    expect(c.out()).toMatch(/operation \d+ deploy succeeded/);
    expect(await waitFor('web answers', () => get(port).catch(() => ''), { timeoutMs: 20_000, intervalMs: 250 })).toBe('hello v1');

    const again = ctx();
    await rollout.run(again, { env: dir, dryRun: false, detach: false });
    expect(again.out()).toMatch(/unchanged: the stack already matches this release/);
    expect(again.out()).toMatch(/"unchanged":true/);

    const h = ctx();
    await history.run(h, { env: dir, limit: 20 });
    expect(h.out()).toMatch(/^\s*2\s+deploy\s+succeeded/m);
    expect(h.out()).toMatch(/^\s*1\s+deploy\s+succeeded/m);
  });

  it('prints a field-by-field plan with --dry-run and writes nothing', async () => {
    const port = await freePort();
    const dir = environment('dry', webCompose({ port, message: 'dry v1' }));
    await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    writeFileSync(join(dir, 'compose.yaml'), webCompose({ port, message: 'dry v2' }));
    const before = await written();
    const c = ctx();
    await rollout.run(c, { env: dir, dryRun: true, detach: false });
    expect(c.out()).toMatch(/~ update service \S+_web/);
    expect(c.out()).toMatch(/TaskTemplate\.ContainerSpec\.Env: .*dry v1.* -> .*dry v2/);
    expect(await written()).toEqual(before);
  });

  it('fails a deploy whose new version fails its health check, keeps the old one serving, and quotes its log', async () => {
    const port = await freePort();
    const dir = environment('health', webCompose({ port, message: 'good v1' }));
    await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    expect(await waitFor('v1 answers', () => get(port).catch(() => ''), { timeoutMs: 20_000, intervalMs: 250 })).toBe('good v1');

    writeFileSync(join(dir, 'compose.yaml'), webCompose({ port, message: 'broken v2', healthy: false }));
    const c = ctx();
    const err = await rollout.run(c, { env: dir, dryRun: false, detach: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MiniPaasError);
    const message = (err as Error).message;
    expect(message).toMatch(/service \S+_web: update rollback_(started|completed)/);
    expect(message).toMatch(/serving broken v2/);
    expect(await waitFor('v1 serving again', async () => ((await get(port).catch(() => '')) === 'good v1' ? 'yes' : ''), { timeoutMs: 60_000, intervalMs: 250 })).toBe('yes');
    const [latest] = await listReleases(db.pool, 'health', 1);
    expect(latest).toMatchObject({ version: 2, status: 'failed' });
    expect(latest!.error).toMatch(/rolled back/);
  }, 180_000);

  it('rolls back to the previous release exactly: same image reference, same environment; history says what it restores', async () => {
    const port = await freePort();
    const dir = environment('undo', webCompose({ port, message: 'undo v1' }));
    await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    writeFileSync(join(dir, 'compose.yaml'), webCompose({ port, message: 'undo v2' }));
    await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    expect(await waitFor('v2 answers', async () => ((await get(port).catch(() => '')) === 'undo v2' ? 'yes' : ''), { timeoutMs: 20_000, intervalMs: 250 })).toBe('yes');

    const d = ctx();
    await diff.run(d, { env: dir, from: 1, to: 2 });
    expect(d.out()).toMatch(/TaskTemplate\.ContainerSpec\.Env: .*undo v1.* -> .*undo v2/);

    await rollback.run(ctx(), { env: dir, detach: false });
    expect(await waitFor('v1 answers again', async () => ((await get(port).catch(() => '')) === 'undo v1' ? 'yes' : ''), { timeoutMs: 20_000, intervalMs: 250 })).toBe('yes');
    const [r3, , r1] = await listReleases(db.pool, 'undo', 3);
    expect(r3).toMatchObject({ version: 3, kind: 'rollback', restores: 1, status: 'succeeded' });
    expect(r3!.images).toEqual(r1!.images);
    expect(r3!.spec).toEqual(r1!.spec);
    const svc = (await docker.listServices({ label: [`${STACK_NAMESPACE_LABEL}=${r1!.stack}`] }))[0]!;
    const env = (svc.spec.TaskTemplate as { ContainerSpec: { Env: string[]; Image: string } }).ContainerSpec;
    expect(env.Env).toContain('MESSAGE=undo v1');
    expect(env.Image).toBe(r1!.images!.web!.ref);

    const s = ctx();
    await status.run(s, { env: dir });
    expect(s.out()).toMatch(/release 3 \(rollback, succeeded\)/);
    expect(s.out()).toMatch(/_web\s+1\/1/);
  }, 180_000);

  it('deploys a file-based secret that the service reads, without its value in the release', async () => {
    const value = `file-secret-${uniqueName('v')}`;
    const dir = environment(
      'filesecret',
      `services:
  app:
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sh", "-c", "cat /run/secrets/token > /tmp/seen && exec sleep 600"]
    secrets: [token]
    healthcheck:
      test: ["CMD-SHELL", "test -s /tmp/seen"]
      interval: 1s
      retries: 5
secrets:
  token:
    file: ./token.txt
`,
    );
    writeFileSync(join(dir, 'token.txt'), value);
    await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    const { rows } = await db.pool.query<{ spec: string }>(`select spec::text as spec from mp.releases where environment = 'filesecret'`);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.spec).not.toContain(value);
    expect(rows[0]!.spec).not.toContain(Buffer.from(value).toString('base64'));
    expect(rows[0]!.spec).toMatch(/"sealed":/);
    const [release] = await listReleases(db.pool, 'filesecret', 1);
    expect(release).toMatchObject({ status: 'succeeded' });
    const secrets = await docker.listSecrets({ label: [`${STACK_NAMESPACE_LABEL}=${release!.stack}`] });
    expect(secrets.map((s) => s.name)).toEqual([`${release!.stack}_token`]);
  });

  it('shows drift when someone changes a service by hand', async () => {
    const port = await freePort();
    const dir = environment('drift', webCompose({ port, message: 'drift v1' }));
    await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    const [r] = await listReleases(db.pool, 'drift', 1);
    const svc = (await docker.listServices({ label: [`${STACK_NAMESPACE_LABEL}=${r!.stack}`] }))[0]!;
    const spec = structuredClone(svc.spec);
    (spec.TaskTemplate as { ContainerSpec: { Env: string[] } }).ContainerSpec.Env.push('HAND=made');
    await docker.updateService(svc, svc.version, spec);
    const s = ctx();
    await status.run(s, { env: dir });
    expect(s.out()).toMatch(/_web\s+.*TaskTemplate\.ContainerSpec\.Env/);
  });

  it('runs two deploys of one environment one after the other, while another environment proceeds', async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const a = environment('serial_a', webCompose({ port: p1, message: 'a1' }));
    const b = environment('serial_b', webCompose({ port: p2, message: 'b1' }));
    const first = ctx();
    const second = ctx();
    const other = ctx();
    const runs = [rollout.run(first, { env: a, dryRun: false, detach: false })];
    await waitFor('the first release recorded', async () => (await listReleases(db.pool, 'serial_a', 1)).length === 1);
    writeFileSync(join(a, 'compose.yaml'), webCompose({ port: p1, message: 'a2' }));
    runs.push(rollout.run(second, { env: a, dryRun: false, detach: false }));
    runs.push(rollout.run(other, { env: b, dryRun: false, detach: false }));
    await Promise.all(runs);
    expect(second.out()).toMatch(/waiting behind operation \d+ \(deploy of release 1, (queued|running), by \S+ since /);
    const { rows } = await db.pool.query<{ environment: string; version: number; started_at: Date; finished_at: Date }>(
      `select r.environment, r.version, o.started_at, o.finished_at from mp.releases r join mp.operations o on o.id = r.operation_id
        where r.environment in ('serial_a', 'serial_b') order by r.environment, r.version`,
    );
    const [a1, a2, b1] = rows;
    expect(a2!.started_at.getTime()).toBeGreaterThanOrEqual(a1!.finished_at.getTime());
    // The other environment did not wait for the first one's queue.
    expect(b1!.started_at.getTime()).toBeLessThan(a2!.finished_at.getTime());
    expect(await get(p1)).toBe('a2');
  }, 180_000);

  it('a cancelled deploy stops waiting and rolls back what it had updated', async () => {
    const port = await freePort();
    const dir = environment('cancel', webCompose({ port, message: 'keep v1' }));
    await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    // v2 never becomes healthy within the deploy: its health check fails until the deploy gives up.
    writeFileSync(join(dir, 'compose.yaml'), webCompose({ port, message: 'slow v2', healthy: false }).replace('monitor: 4s', 'monitor: 60s'));
    const c = ctx();
    const deploying = rollout.run(c, { env: dir, dryRun: false, detach: true });
    await deploying;
    const [release] = await listReleases(db.pool, 'cancel', 1);
    await waitFor('the deploy to start', () => db.pool.query(`select 1 from mp.operations where id = $1 and status = 'running'`, [release!.operationId]).then((r) => r.rowCount === 1), { timeoutMs: 30_000 });
    await waitFor(
      'the new tasks to start',
      async () => {
        const svc = (await docker.listServices({ label: [`${STACK_NAMESPACE_LABEL}=${release!.stack}`] }))[0];
        return svc?.updateStatus?.state === 'updating';
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    await db.pool.query(`select mp.cancel_operation($1)`, [release!.operationId]);
    const ended = await waitFor(
      'the deploy to end',
      async () => (await listReleases(db.pool, 'cancel', 1)).find((r) => r.finishedAt !== null),
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(ended.status).toBe('cancelled');
    const { rows } = await db.pool.query(`select payload ->> 'message' as message from mp.stream_events e join mp.streams s on s.id = e.stream_id
       where s.name = 'mp_events' and e.key = $1 and e.payload ->> 'step' = 'rollback'`, [release!.operationId]);
    expect(rows.map((r) => r.message)).toEqual([expect.stringMatching(/rolled \S+_web back to its previous spec/)]);
    expect(await waitFor('v1 serving', async () => ((await get(port).catch(() => '')) === 'keep v1' ? 'yes' : ''), { timeoutMs: 40_000, intervalMs: 250 })).toBe('yes');
    const svc = (await docker.listServices({ label: [`${STACK_NAMESPACE_LABEL}=${release!.stack}`] }))[0]!;
    expect((svc.spec.TaskTemplate as { ContainerSpec: { Env: string[] } }).ContainerSpec.Env).toContain('MESSAGE=keep v1');
  }, 180_000);

  it('refuses bad input with one clear error and writes nothing', async () => {
    const port = await freePort();
    const cases: { compose: string; error: RegExp }[] = [
      { compose: 'services:\n  web:\n    image: [unclosed\n', error: /compose\.yaml:\d+:\d+/ },
      { compose: `services:\n  web:\n    image: ${LAB_BUSYBOX_IMAGE}\n    deploy:\n      replicas: many\n`, error: /services\.web\.deploy\.replicas/ },
      { compose: 'services:\n  web:\n    image: ${IMAGE:?set IMAGE to the image to run}\n', error: /IMAGE.*set IMAGE to the image to run/ },
    ];
    for (const [i, { compose, error }] of cases.entries()) {
      const dir = environment(`bad${i}`, compose);
      const before = await written();
      const err = await rollout.run(ctx(), { env: dir, dryRun: false, detach: false }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MiniPaasError);
      expect((err as Error).message).toMatch(error);
      expect((err as Error).message.split('\n')).toHaveLength(1);
      expect(await written()).toEqual(before);
    }
    const badStack = environment('bad_stack', webCompose({ port, message: 'x' }));
    writeFileSync(join(badStack, 'minipaas.yaml'), 'project:\n  files: [compose.yaml]\nstack: Bad Stack\n');
    const stackErr = await rollout.run(ctx(), { env: badStack, dryRun: false, detach: false }).catch((e: unknown) => e);
    expect((stackErr as Error).message).toMatch(/stack name 'Bad Stack' is not valid/);
    const typo = environment('bad_key', webCompose({ port, message: 'x' }));
    writeFileSync(join(typo, 'minipaas.yaml'), 'project:\n  files: [compose.yaml]\ndeploy:\n  verison: 2\n');
    const typoErr = await rollout.run(ctx(), { env: typo, dryRun: false, detach: false }).catch((e: unknown) => e);
    expect((typoErr as Error).message).toMatch(/unknown key 'deploy\.verison' \(did you mean 'version'\?\)/);
    const dir = environment('bad_rollback', webCompose({ port, message: 'x' }));
    const before = await written();
    const err = await rollback.run(ctx(), { env: dir, to: 7, detach: false }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/has no release 7/);
    expect(await written()).toEqual(before);

    const missingImage = environment('bad_image', 'services:\n  web:\n    image: 127.0.0.1:1/nothing/here:1\n');
    const err2 = await rollout.run(ctx(), { env: missingImage, dryRun: false, detach: false }).catch((e: unknown) => e);
    expect((err2 as Error).message).toMatch(/image '127\.0\.0\.1:1\/nothing\/here:1' of service 'web' is not on the engine/);
    expect(await written()).toEqual(before);
  });
});

describeSwarm('mp deploy: an agent killed mid-deploy', () => {
  let killDb: TestDatabase;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    killDb = await freshDatabase({ poolSize: 4 });
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await killDb?.drop();
  });

  function spawnAgent(name: string): ChildProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/agent/fixtures/agent-process.ts'], {
      env: { ...process.env, DATABASE_URL: killDb.url, AGENT_NAME: name },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    return child;
  }

  it('is resumed by another agent, converges to the same release, and the release ends once', async () => {
    const dir = environment('resume', webCompose({ message: 'resumed', replicas: 2 }));
    const first = spawnAgent('deploy-a');
    await waitFor('agent a ready', async () => (await killDb.pool.query(`select 1 from mp.nodes where name = 'deploy-a'`)).rowCount === 1, { timeoutMs: 30_000 });
    const c = captured(killDb.url);
    const deploying = rollout.run(c, { env: dir, dryRun: false, detach: true });
    await deploying;
    // Killed once it has started converging.
    await waitFor(
      'the deploy to apply',
      async () => (await killDb.pool.query(`select 1 from mp.operations where kind = 'deploy' and status = 'running'`)).rowCount === 1,
      { timeoutMs: 30_000 },
    );
    first.kill('SIGKILL');
    spawnAgent('deploy-b');
    // The lease of the killed agent lapses (60 s lease, shortened here) and b resumes.
    await killDb.pool.query(`update mp.jobs set lease_until = now() where queue = 'mp_ops' and locked_by = 'deploy-a'`);
    const op = await waitFor(
      'the deploy to end',
      async () => {
        const { rows } = await killDb.pool.query<{ status: string; attempts: number; node: string }>(
          `select status, attempts, node from mp.operations where kind = 'deploy' and status in ('succeeded', 'failed')`,
        );
        return rows[0];
      },
      { timeoutMs: 120_000, intervalMs: 250 },
    );
    expect(op).toMatchObject({ status: 'succeeded', node: 'deploy-b' });
    expect(op.attempts).toBeGreaterThanOrEqual(2);
    const [release] = await listReleases(killDb.pool, 'resume', 5);
    expect(release).toMatchObject({ version: 1, status: 'succeeded' });
    const { rows: ends } = await killDb.pool.query(
      `select e.payload from mp.stream_events e join mp.streams s on s.id = e.stream_id
        where s.name = 'mp_events' and e.key = $1 and e.payload ->> 'step' in ('succeeded', 'failed')`,
      [release!.operationId],
    );
    expect(ends).toHaveLength(1);
    const svc = (await docker.listServices({ label: [`${STACK_NAMESPACE_LABEL}=${release!.stack}`] }))[0]!;
    const running = (await docker.listTasks({ serviceIds: [svc.id] })).filter((t) => t.state === 'running' && t.desiredState === 'running');
    expect(running).toHaveLength(2);
    await c.close();
  }, 180_000);
});
