/**
 * Image builds on the lab's engine through the Docker API: the hello example's two images from its
 * compose.yaml, run against the test PostgreSQL (API healthy, worker draining the queue, start-up
 * through a database outage), and failing builds that name their step and its output.
 *
 * The example's FROM image, node:20-bookworm-slim, is built locally by .ci/lab.sh
 * (images/node/build.sh), so no build here pulls anything. Containers use the host's network: the test
 * PostgreSQL listens on 127.0.0.1 only.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildImage, BuildFailedError, type BuildProgress } from '../../../agent/build/build.ts';
import { buildsOf, type BuildInputs } from '../../../agent/build/compose.ts';
import { listContext } from '../../../agent/build/context.ts';
import { vendorMinipaas } from '../../../agent/build/vendor.ts';
import { connectDocker, demuxLogs } from '../../../agent/docker/engine.ts';
import { loadCompose } from '../../../stack/loader/index.ts';
import { freshDatabase, type TestDatabase } from '../../support/database.ts';
import { describeDocker, LAB_BUSYBOX_IMAGE, TEST_LABEL } from '../../support/docker.ts';
import { startTcpProxy } from '../../support/tcp-proxy.ts';
import { waitFor } from '../../support/wait.ts';

const EXAMPLE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'examples', 'hello');
const NODE_IMAGE = 'node:20-bookworm-slim';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  return typeof address === 'object' && address ? address.port : 0;
}

/** One HTTP request on loopback; undefined while nothing listens. */
async function http(port: number, path: string, init: { method?: string; body?: unknown } = {}): Promise<{ status: number; body: Record<string, unknown> } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method: init.method ?? 'GET',
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: AbortSignal.timeout(5_000),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } catch {
    return undefined;
  }
}

describeDocker('image builds through the Docker API', () => {
  const docker = connectDocker();
  const work = mkdtempSync(join(tmpdir(), 'mp-build-'));
  const example = join(work, 'hello');
  const version = `t${randomBytes(4).toString('hex')}`;
  const containers: string[] = [];
  const images = new Set<string>();
  let db: TestDatabase;
  let builds: BuildInputs[];
  let healthTest: string[];

  beforeAll(async () => {
    try {
      await docker.inspectImage(NODE_IMAGE);
    } catch {
      throw new Error(`image ${NODE_IMAGE} is missing; run .ci/lab.sh (images/node/build.sh builds it)`);
    }
    // A copy, as a user copies the example: the vendor step and the test's extra files stay out of the checkout.
    cpSync(EXAMPLE, example, { recursive: true, filter: (src) => !src.includes(join('app', 'vendor')) });
    // What `npm install` on the host leaves behind; .dockerignore keeps it out of the image.
    mkdirSync(join(example, 'app', 'node_modules', 'host-only'), { recursive: true });
    writeFileSync(join(example, 'app', 'node_modules', 'host-only', 'index.js'), 'throw new Error("host package in the image")');
    await vendorMinipaas(join(example, 'app'));
    db = await freshDatabase({ poolSize: 2 });

    const composePath = join(example, 'compose.yaml');
    const env = { VERSION: version, DATABASE_URL: db.url };
    const model = loadCompose({ files: [{ path: composePath, content: readFileSync(composePath, 'utf8') }], env, workingDir: example });
    builds = buildsOf(model.services, { projectDir: example, env }).map((b) => b.inputs);
    healthTest = (model.services.api!.healthcheck as { test: string[] }).test;
  }, 120_000);

  afterAll(async () => {
    for (const id of containers) await docker.api.getContainer(id).remove({ force: true }).catch(() => {});
    for (const image of images) await docker.api.getImage(image).remove({ force: true }).catch(() => {});
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  /** Starts a container of `image` on the host's network; removed after the file. */
  async function run(image: string, env: Record<string, string>, healthcheck?: Record<string, unknown>): Promise<string> {
    const container = await docker.api.createContainer({
      Image: image,
      Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      Labels: { [TEST_LABEL]: '1' },
      Healthcheck: healthcheck,
      HostConfig: { NetworkMode: 'host' },
    });
    containers.push(container.id);
    await container.start();
    return container.id;
  }

  async function logsOf(id: string): Promise<string> {
    const raw = (await docker.api.getContainer(id).logs({ stdout: true, stderr: true })) as unknown as Buffer;
    return demuxLogs(raw);
  }

  it('builds the api and worker images of examples/hello from its compose.yaml', async () => {
    expect(builds.map((b) => [b.service, b.image, b.target, b.args])).toEqual([
      ['api', `hello-api:${version}`, 'api', { VERSION: version }],
      ['worker', `hello-worker:${version}`, 'worker', { VERSION: version }],
    ]);
    const sent = (await listContext(builds[0]!.context)).map((e) => e.path);
    expect(sent).toContain('vendor/node_modules/minipaas/package.json');
    expect(sent).toContain('vendor/node_modules/pg/package.json');
    expect(sent.filter((p) => p.startsWith('node_modules'))).toEqual([]);

    for (const inputs of builds) {
      const progress: BuildProgress[] = [];
      const built = await buildImage(docker, inputs, { onProgress: (p) => progress.push(p) });
      images.add(inputs.image);
      expect(built.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(built.tags).toEqual([inputs.image]);
      expect(built.contextEntries).toBe(sent.length);
      const steps = progress.filter((p) => p.kind === 'step');
      expect(steps[0]).toMatchObject({ step: 1, instruction: `FROM ${NODE_IMAGE} AS base` });
      expect(steps.at(-1)!.instruction).toMatch(/^CMD /);

      const image = await docker.api.getImage(inputs.image).inspect();
      expect(image.Id).toBe(built.imageId);
      expect(image.Config.Env).toContain(`APP_VERSION=${version}`);
      expect(image.Config.Cmd).toEqual(['node', `src/${inputs.service}.mjs`]);
    }
  }, 240_000);

  it('runs: the compose healthcheck passes, the API enqueues, the worker drains the queue', async () => {
    const port = await freePort();
    const api = await run(`hello-api:${version}`, { DATABASE_URL: db.url, PORT: String(port) }, {
      // compose.yaml's own check, polled faster than its 5 s so the test is quick.
      Test: healthTest,
      Interval: 500_000_000,
      Timeout: 3_000_000_000,
      Retries: 20,
    });
    await waitFor(
      'the api container to be healthy',
      async () => (await docker.api.getContainer(api).inspect()).State.Health?.Status === 'healthy',
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(await http(port, '/health')).toEqual({ status: 200, body: { ok: true, version } });

    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await http(port, '/jobs', { method: 'POST', body: { n: i } });
      expect(res?.status).toBe(202);
      ids.push(String(res!.body.id));
    }
    const before = await http(port, '/');
    expect(before?.body).toMatchObject({ service: 'hello-api', version, processed: 0, queue: { name: 'hello_jobs', waiting: 3 } });

    const worker = await run(`hello-worker:${version}`, { DATABASE_URL: db.url });
    const after = await waitFor(
      'the worker to record 3 handled jobs',
      async () => {
        const res = await http(port, '/');
        const queue = res?.body.queue as { waiting: number; running: number } | undefined;
        return res?.body.processed === 3 && queue?.waiting === 0 && queue.running === 0 ? res : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(after.body).toMatchObject({ queue: { dead: 0 } });
    const handled = (await logsOf(worker))
      .split('\n')
      .filter((l) => l.includes('"event":"handled"'))
      .map((l) => (JSON.parse(l) as { job: string }).job);
    expect(handled.sort()).toEqual([...ids].sort());
  }, 120_000);

  it('starts while the database is unreachable, answers 503 on /health, and becomes healthy when it is back', async () => {
    const proxy = await startTcpProxy(Number(new URL(db.url).port));
    try {
      const outage = proxy.cut(4_000);
      const port = await freePort();
      const api = await run(`hello-api:${version}`, { DATABASE_URL: proxy.rewrite(db.url), PORT: String(port) });
      const down = await waitFor('the api to listen', () => http(port, '/health'), { timeoutMs: 20_000, intervalMs: 100 });
      expect(down.status).toBe(503);
      await outage;
      const up = await waitFor('the api to reach the database', async () => ((await http(port, '/health'))?.status === 200 ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 200,
      });
      expect(up).toBe(true);
      expect(await logsOf(api)).toContain('"event":"waiting for the database"');
    } finally {
      await proxy.close();
    }
  }, 90_000);

  /** A context folder holding one Dockerfile. */
  function dockerfile(name: string, text: string): BuildInputs {
    const dir = join(work, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'Dockerfile'), text);
    const image = `mpt-build-${name}:${version}`;
    images.add(image);
    return { service: name, image, extraTags: [], context: dir, dockerfile: 'Dockerfile', args: {}, labels: {}, noCache: false, pull: false };
  }

  it('a failing RUN names the step and the last lines it printed', async () => {
    const inputs = dockerfile(
      'fails',
      [`FROM ${LAB_BUSYBOX_IMAGE}`, 'RUN echo preparing', "RUN echo 'first line' && echo 'second line' >&2 && false", 'CMD ["true"]', ''].join('\n'),
    );
    const err = await buildImage(docker, inputs).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BuildFailedError);
    const failed = err as BuildFailedError;
    expect(failed.code).toBe('BUILD_FAILED');
    expect(failed.step).toBe("3/4 RUN echo 'first line' && echo 'second line' >&2 && false");
    // stdout and stderr reach the builder on two pipes: their order is not fixed.
    expect([...failed.output].sort()).toEqual(['first line', 'second line']);
    const [head, ...rest] = failed.message.split('\n');
    expect(head).toBe(
      `building image '${inputs.image}' for service 'fails' failed at step 3/4 RUN echo 'first line' && echo 'second line' >&2 && false: ` +
        `The command '/bin/sh -c echo 'first line' && echo 'second line' >&2 && false' returned a non-zero code: 1`,
    );
    expect(rest[0]).toBe('last output of the step:');
    expect(rest.slice(1).sort()).toEqual(['  | first line', '  | second line']);
    expect(failed.message).not.toContain('\x1b');
    expect(failed.hint).toContain(`Dockerfile in ${inputs.context}`);
    // forcerm: the failed step's container does not stay behind.
    // The engine removes it just after it reports the failure: wait for that, with a deadline.
    const leftOver = async () =>
      // The step's own command (other suites' containers may print 'second line' too).
      (await docker.api.listContainers({ all: true, filters: JSON.stringify({ ancestor: [LAB_BUSYBOX_IMAGE], status: ['exited', 'created'] }) })).filter((c) =>
        c.Command.includes("echo 'first line' && echo 'second line'"),
      );
    await waitFor('the failed step container to be removed', async () => (await leftOver()).length === 0, { timeoutMs: 15_000, intervalMs: 200 }).catch(() => undefined);
    expect(await leftOver()).toEqual([]);
  }, 60_000);

  it('a Dockerfile that does not parse fails with the engine saying why', async () => {
    const inputs = dockerfile('unparsable', `FORM ${LAB_BUSYBOX_IMAGE}\n`);
    const err = await buildImage(docker, inputs).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BuildFailedError);
    expect(err).toMatchObject({
      step: undefined,
      message: `building image '${inputs.image}' for service 'unparsable' failed: dockerfile parse error line 1: unknown instruction: FORM`,
      hint: `fix Dockerfile in ${inputs.context}`,
    });
  }, 30_000);

  it('build args and labels reach the image', async () => {
    const inputs = {
      ...dockerfile('args', [`FROM ${LAB_BUSYBOX_IMAGE} AS first`, 'ARG GREETING', 'RUN echo "$GREETING" > /greeting', `FROM ${LAB_BUSYBOX_IMAGE} AS unused`, 'RUN false', ''].join('\n')),
      args: { GREETING: 'hello from an arg' },
      labels: { 'org.example.team': 'build-tests' },
      target: 'first',
    };
    const lines: string[] = [];
    const built = await buildImage(docker, inputs, { onProgress: (p) => lines.push(p.line) });
    // The target stage only: the failing stage after it is never built.
    expect(lines.some((l) => l.includes('RUN false'))).toBe(false);
    const image = await docker.inspectImage(built.imageId);
    expect(image.labels['org.example.team']).toBe('build-tests');
    const check = await docker.api.createContainer({ Image: built.imageId, Cmd: ['cat', '/greeting'], Labels: { [TEST_LABEL]: '1' } });
    containers.push(check.id);
    await check.start();
    await check.wait();
    expect((await logsOf(check.id)).trim()).toBe('hello from an arg');
  }, 60_000);
});
