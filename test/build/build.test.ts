// `mp deploy build` on the lab: an image built through the engine, pushed to a registry:2 container on
// 127.0.0.1 (images/registry/build.sh), recorded, and deployed by digest by `mp deploy`, with the local
// copies removed first so Swarm has to pull it from the registry; a failing Dockerfile step and a
// registry that refuses the push each end the build operation failed with one clear error, and record
// nothing: no build row, no release, no deploy operation.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import { BuildFailedError } from '../../agent/build/build.ts';
import { PushFailedError } from '../../agent/build/push.ts';
import { connectDocker, STACK_NAMESPACE_LABEL } from '../../agent/docker/engine.ts';
import * as build from '../../cli/commands/deploy/build.ts';
import * as rollout from '../../cli/commands/deploy/rollout.ts';
import { freePort } from '../../dev/temporary-postgres.ts';
import { controlDb } from '../../sql/control/database.ts';
import { listReleases } from '../../sql/control/releases.ts';
import { ensureClusterKeys } from '../../sql/control/sealing.ts';
import { captured, mp, type CapturedContext } from '../cli/harness.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE, TEST_LABEL, uniqueName } from '../support/docker.ts';
import { waitFor } from '../support/wait.ts';

const docker = connectDocker();
let db: TestDatabase;
let agent: RunningAgent;
let agentPool: pg.Pool;
let registryId: string | undefined;
let registryPort: number;
const work = mkdtempSync(join(tmpdir(), 'mp-build-'));
const stacks: string[] = [];
const images: string[] = [];
const contexts: CapturedContext[] = [];

function ctx(): CapturedContext {
  const c = captured(db.url);
  contexts.push(c);
  return c;
}

/** An environment directory: minipaas.yaml, a compose.yaml with one built service, its Dockerfile. */
function environment(name: string, opts: { registry?: string; dockerfile: string; port?: number }): { dir: string; image: string } {
  const dir = join(work, name);
  mkdirSync(join(dir, 'app'), { recursive: true });
  const stack = uniqueName('bld').replace(/[^a-z0-9]/g, '');
  stacks.push(stack);
  const image = `${stack}-web`;
  images.push(image);
  writeFileSync(
    join(dir, 'minipaas.yaml'),
    ['project:', '  files: [compose.yaml]', `stack: ${stack}`, 'deploy:', '  version: "1"', '  timeout: 90', '  stable: 1', ...(opts.registry ? [`registry: ${opts.registry}`] : [])].join('\n') + '\n',
  );
  writeFileSync(
    join(dir, 'compose.yaml'),
    `services:
  web:
    image: ${image}:dev
    build:
      context: ./app
      args:
        GREETING: built by mp deploy build
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
${opts.port === undefined ? '' : `    ports:
      - target: 8080
        published: ${opts.port}
        mode: host
`}    healthcheck:
      test: ["CMD-SHELL", "wget -q -O- http://127.0.0.1:8080/ >/dev/null"]
      interval: 1s
      timeout: 2s
      retries: 2
      start_period: 2s
`,
  );
  writeFileSync(join(dir, 'app', 'Dockerfile'), opts.dockerfile);
  return { dir, image };
}

const GOOD_DOCKERFILE = `FROM ${LAB_BUSYBOX_IMAGE}
ARG GREETING
RUN mkdir -p /www && echo "$GREETING" > /www/index.html
`;

async function counts(environment: string): Promise<{ builds: number; releases: number; deploys: number; buildOps: { status: string; error: string | null }[] }> {
  const { rows } = await db.pool.query<{ builds: number; releases: number; deploys: number }>(
    `select (select count(*)::int from mp.builds where environment = $1) as builds,
            (select count(*)::int from mp.releases where environment = $1) as releases,
            (select count(*)::int from mp.operations where environment = $1 and kind = 'deploy') as deploys`,
    [environment],
  );
  const ops = await db.pool.query<{ status: string; error: string | null }>(
    `select status, error from mp.operations where environment = $1 and kind = 'build' order by id`,
    [environment],
  );
  return { ...rows[0]!, buildOps: ops.rows };
}

async function removeStack(stack: string): Promise<void> {
  const label = [`${STACK_NAMESPACE_LABEL}=${stack}`];
  for (const s of await docker.listServices({ label })) await docker.removeService(s).catch(() => {});
  await waitFor(`stack ${stack} tasks gone`, async () => (await docker.listTasks({ label })).length === 0, { timeoutMs: 30_000, intervalMs: 250 }).catch(() => {});
  for (const n of await docker.listNetworks({ label })) await docker.removeNetwork(n).catch(() => {});
}

/** Removes every local tag of the images named `<repository-suffix>`, so a deploy must pull from the registry. */
async function removeLocalImages(needle: string): Promise<void> {
  for (const info of await docker.api.listImages()) {
    if ((info.RepoTags ?? []).some((t) => t.includes(needle)) || (info.RepoDigests ?? []).some((d) => d.includes(needle))) {
      await docker.api.getImage(info.Id).remove({ force: true }).catch(() => {});
    }
  }
}

describeSwarm('mp deploy build', () => {
  beforeAll(async () => {
    db = await freshDatabase({ poolSize: 8 });
    agentPool = new pg.Pool({ connectionString: db.url, max: 6 });
    const { keys } = await ensureClusterKeys(controlDb(db.pool), join(work, 'cluster.key'));
    agent = await startAgent({ pool: agentPool, docker, name: 'build-agent', pollIntervalMs: 200, heartbeatMs: 500, clusterKeys: keys });
    // The lab's registry:2 (Debian's docker-registry), on loopback only: Docker pushes to 127.0.0.0/8 without TLS.
    registryPort = await freePort();
    const container = await docker.api.createContainer({
      Image: 'registry:2',
      name: uniqueName('mpt-registry'),
      Labels: { [TEST_LABEL]: 'build' },
      ExposedPorts: { '5000/tcp': {} },
      HostConfig: { PortBindings: { '5000/tcp': [{ HostIp: '127.0.0.1', HostPort: String(registryPort) }] }, AutoRemove: false },
    });
    registryId = container.id;
    await container.start();
    await waitFor('the registry answers', async () => (await fetch(`http://127.0.0.1:${registryPort}/v2/`).then((r) => r.ok, () => false)) || undefined, {
      timeoutMs: 20_000,
      intervalMs: 200,
    });
  });
  afterAll(async () => {
    await agent?.stop();
    await agentPool?.end();
    await Promise.all(contexts.map((c) => c.close()));
    await Promise.all(stacks.map(removeStack));
    for (const image of images) await removeLocalImages(image);
    if (registryId) await docker.api.getContainer(registryId).remove({ force: true, v: true }).catch(() => {});
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('builds, tags registry/name:version, pushes, records the digest; mp deploy pulls it from the registry by digest and it runs', async () => {
    const port = await freePort();
    const registry = `127.0.0.1:${registryPort}/mpt`;
    const { dir, image } = environment('pushed', { registry, dockerfile: GOOD_DOCKERFILE, port });

    const c = ctx();
    await build.run(c, { env: dir, dryRun: false });
    expect(c.out()).toMatch(/build of pushed started; operation (\d+)/);
    expect(c.out()).toMatch(/step\s+web: step 3\/3 RUN mkdir -p \/www/);
    const pushedRef = `${registry}/${image}:1`;
    expect(c.out()).toContain(`pushed    web: pushed ${pushedRef}@sha256:`);
    const { rows: recorded } = await db.pool.query<{ pushed: string; digest: string; image: string; operation_id: string }>(
      `select pushed, digest, image, operation_id::text from mp.builds where environment = 'pushed'`,
    );
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatchObject({ pushed: pushedRef, image: `${image}:dev` });
    expect(recorded[0]!.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const digest = recorded[0]!.digest;

    // The build is an operation like any other: `mp ops show` has its row and its events.
    const shown = await mp(['ops', 'show', recorded[0]!.operation_id], db.url);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/build/);
    expect(shown.stdout).toMatch(/succeeded/);
    expect(shown.stdout).toMatch(/started on cli@/);
    expect(shown.stdout).toContain(`pushed ${pushedRef}@${digest}`);

    // Nothing of it left on the engine: the deploy can only run it by pulling it from the registry.
    await removeLocalImages(image);
    await expect(docker.inspectImage(`${image}:dev`)).rejects.toThrow();

    const d = ctx();
    await rollout.run(d, { env: dir, dryRun: false, detach: false });
    expect(d.out()).toContain(`web: ${image}:dev is build ${recorded[0]!.operation_id}, ${pushedRef}@${digest}`);
    expect(d.out()).toMatch(/operation \d+ deploy succeeded/);
    const [release] = await listReleases(db.pool, 'pushed', 1);
    expect(release!.images!.web!.ref).toBe(`${pushedRef}@${digest}`);
    expect(release!.images!.web!.ref).toContain('@sha256:');
    const res = await waitFor('web answers', () => fetch(`http://127.0.0.1:${port}/`).then((r) => r.text(), () => ''), { timeoutMs: 20_000, intervalMs: 250 });
    expect(res.trim()).toBe('built by mp deploy build');
    // Pulled: the engine now has it under the registry's name, with the same digest.
    expect((await docker.inspectImage(`${pushedRef}@${digest}`)).repoDigests).toContain(`${registry}/${image}@${digest}`);
  }, 180_000);

  it('a Dockerfile step that fails gives the step and its output, ends the build failed and records nothing', async () => {
    const { dir } = environment('broken', {
      registry: `127.0.0.1:${registryPort}/mpt`,
      dockerfile: `FROM ${LAB_BUSYBOX_IMAGE}\nRUN echo about to fail on purpose && exit 3\n`,
    });
    const c = ctx();
    const err = await rollout.run(c, { env: dir, dryRun: false, detach: false, build: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuildFailedError);
    expect((err as BuildFailedError).step).toBe('2/2 RUN echo about to fail on purpose && exit 3');
    expect((err as BuildFailedError).output).toContain('about to fail on purpose');
    expect((err as Error).message).toMatch(/returned a non-zero code: 3/);
    const after = await counts('broken');
    expect(after).toMatchObject({ builds: 0, releases: 0, deploys: 0 });
    expect(after.buildOps).toHaveLength(1);
    expect(after.buildOps[0]!.status).toBe('failed');
    expect(after.buildOps[0]!.error).toMatch(/at step 2\/2 RUN echo about to fail/);
  }, 120_000);

  it('a registry that refuses the push: one clear error, non-zero exit, no build recorded, no release, no deploy operation', async () => {
    const nothing = await freePort(); // nothing listens here
    const { dir } = environment('refused', { registry: `127.0.0.1:${nothing}/mpt`, dockerfile: GOOD_DOCKERFILE });

    const c = ctx();
    const err = await rollout.run(c, { env: dir, dryRun: false, detach: false, build: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PushFailedError);
    expect((err as Error).message).toMatch(new RegExp(`^pushing image '127\\.0\\.0\\.1:${nothing}/mpt/\\S+:1' to 127\\.0\\.0\\.1:${nothing} failed: .*connection refused$`));
    expect((err as Error).message).not.toContain('\n');
    expect((err as PushFailedError).hint).toMatch(/check that a registry answers at 127\.0\.0\.1:\d+/);
    const after = await counts('refused');
    expect(after).toMatchObject({ builds: 0, releases: 0, deploys: 0 });
    expect(after.buildOps.map((o) => o.status)).toEqual(['failed']);
    // A failed build is not queued for an agent by `mp ops retry`: none could run it.
    const { rows: [op] } = await db.pool.query<{ id: string }>(`select id::text from mp.operations where environment = 'refused' and kind = 'build'`);
    const retried = await mp(['ops', 'retry', op!.id, '--detach'], db.url);
    expect(retried.code).not.toBe(0);
    expect(retried.stderr).toMatch(/^error: operation \d+ is a build: builds run where the source is, not on an agent$/m);
    expect(retried.stderr).toMatch(/^hint: run `mp deploy build --env DIR` again$/m);

    // Through the binary: the same one error, a non-zero exit, and still nothing recorded.
    const bin = await mp(['deploy', 'build', '--env', dir], db.url);
    expect(bin.code).not.toBe(0);
    expect(bin.stderr).toMatch(/^error: pushing image '.*' to 127\.0\.0\.1:\d+ failed: .*connection refused$/m);
    expect(bin.stderr).toMatch(/^hint: check that a registry answers/m);
    expect(await counts('refused')).toMatchObject({ builds: 0, releases: 0, deploys: 0 });
  }, 120_000);
});
