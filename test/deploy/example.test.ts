// The README's first command doing its main job: `mp dev` builds the example app's images through the
// Docker API, deploys them as release 1 of environment `dev`, prints the URL; the API answers there and
// its worker drains a queue (jobs posted over HTTP come back as processed).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectDocker, STACK_NAMESPACE_LABEL } from '../../agent/docker/engine.ts';
import { freePort } from '../../dev/temporary-postgres.ts';
import { spawnMp, type RunningMp } from '../cli/harness.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm } from '../support/docker.ts';
import { waitFor } from '../support/wait.ts';

const docker = connectDocker();

async function removeExampleStack(): Promise<void> {
  const label = [`${STACK_NAMESPACE_LABEL}=hello`];
  for (const s of await docker.listServices({ label })) await docker.removeService(s).catch(() => {});
  await waitFor('the example stack gone', async () => (await docker.listTasks({ label })).length === 0, { timeoutMs: 30_000, intervalMs: 250 }).catch(() => {});
}

describeSwarm('mp dev deploys the example app', () => {
  let db: TestDatabase;
  let dev: RunningMp | undefined;
  beforeAll(async () => {
    db = await freshDatabase();
    await removeExampleStack();
  });
  afterAll(async () => {
    if (dev && dev.child.exitCode === null) {
      dev.child.kill('SIGTERM');
      await dev.exited;
    }
    await removeExampleStack();
    await db?.drop();
  }, 60_000);

  it('builds, deploys, prints the URL; the API answers and the worker drains what it enqueues', async () => {
    const port = await freePort();
    const running = spawnMp(['dev', '--name', 'example-test', '--app-port', String(port)], { env: { DATABASE_URL: db.url } });
    dev = running;
    const url = await waitFor(
      'the example URL',
      () => {
        if (running.child.exitCode !== null) throw new Error(`mp dev exited ${running.child.exitCode}: ${running.err()}`);
        return running.out().match(/the example app answers at (http:\/\/\S+)/)?.[1];
      },
      { timeoutMs: 240_000, intervalMs: 250 },
    );
    expect(url).toBe(`http://127.0.0.1:${port}/`);
    const out = running.out();
    expect(out).toMatch(/built hello-api:dev \([0-9a-f]{12}\)/);
    expect(out).toMatch(/built hello-worker:dev \([0-9a-f]{12}\)/);
    expect(out).toMatch(/release 1 of dev \(deploy\) recorded/);
    expect(out).toMatch(/converged\s+release 1 runs: hello_api 1\/1, hello_worker 2\/2/);

    const first = (await (await fetch(url)).json()) as { service: string; version: string; processed: number };
    expect(first).toMatchObject({ service: 'hello-api', version: 'dev' });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${url}jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n: i }) });
      expect(res.status).toBeLessThan(300);
    }
    const drained = await waitFor(
      'the worker to drain the jobs',
      async () => {
        const body = (await (await fetch(url)).json()) as { processed: number; queue: { waiting: number; running: number } };
        return body.processed >= first.processed + 3 && body.queue.waiting === 0 && body.queue.running === 0 ? body : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(drained.processed).toBeGreaterThanOrEqual(first.processed + 3);
    const { rows } = await db.pool.query(`select environment, version, status from mp.releases`);
    expect(rows).toEqual([{ environment: 'dev', version: 1, status: 'succeeded' }]);
    // The URL (with its password) reached the services as a file-based secret: the release, the
    // operations and their events hold it sealed or not at all.
    const { rows: rest } = await db.pool.query<{ t: string }>(
      `select r::text t from mp.releases r union all select o::text from mp.operations o union all select payload::text from mp.read('mp_events', 0, 100000)`,
    );
    expect(rest.length).toBeGreaterThan(3);
    for (const { t } of rest) expect(t.includes(db.url), 'a row holds the database URL').toBe(false);
    const { rows: spec } = await db.pool.query<{ secrets: { key: string; sealed?: string; data?: string }[] }>(`select spec -> 'secrets' secrets from mp.releases`);
    expect(spec[0]!.secrets.map((s) => [s.key, typeof s.sealed, typeof s.data])).toEqual([['database_url', 'string', 'undefined']]);

    running.child.kill('SIGTERM');
    expect(await running.exited).toBe(0);
  });
});
