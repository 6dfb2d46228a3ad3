// Canaries on the lab's Swarm behind Caddy: `mp deploy canary --replicas 1 api` beside 3 replicas takes
// a share of requests close to 1/4; `mp deploy` refuses while it is live (and waits with --wait);
// abort leaves only the old version answering, promote only the new one (as a deploy release in
// history); a canary whose healthcheck never passes is aborted by itself, and so is a live one whose
// tasks start failing (the agent's watcher); bad input enqueues nothing.
// Traffic goes only to 127.0.0.1 (Caddy's host-mode port).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import { connectDocker, STACK_NAMESPACE_LABEL } from '../../agent/docker/engine.ts';
import * as route from '../../cli/commands/code/route.ts';
import * as abort from '../../cli/commands/deploy/abort.ts';
import * as canary from '../../cli/commands/deploy/canary.ts';
import * as history from '../../cli/commands/deploy/history.ts';
import * as promote from '../../cli/commands/deploy/promote.ts';
import * as rollout from '../../cli/commands/deploy/rollout.ts';
import * as status from '../../cli/commands/deploy/status.ts';
import { freePort } from '../../dev/temporary-postgres.ts';
import { CANARY_LABEL, listCanaries } from '../../sql/control/canaries.ts';
import { listReleases } from '../../sql/control/releases.ts';
import { MiniPaasError } from '../../sql/errors.ts';
import { captured, mp, type CapturedContext } from '../cli/harness.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE, uniqueName } from '../support/docker.ts';
import { waitFor } from '../support/wait.ts';

const docker = connectDocker();
let db: TestDatabase;
let agent: RunningAgent;
let agentPool: pg.Pool;
const work = mkdtempSync(join(tmpdir(), 'mp-canary-'));
const contexts: CapturedContext[] = [];
let dir = '';
let stack = '';
let port = 0;
const client = new http.Agent({ keepAlive: true, maxSockets: 2 });

function ctx(): CapturedContext {
  const c = captured(db.url);
  contexts.push(c);
  return c;
}

/** A busybox web server answering `$MESSAGE` on `$PORT`, 3 replicas. */
function compose(message: string, listen = 8080): string {
  return `# the API behind Caddy
services:
  api:
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sh", "-c", "mkdir -p /www && echo \\"$$MESSAGE\\" > /www/index.html && exec httpd -f -p ${listen} -h /www"]
    environment:
      MESSAGE: "${message}"
    deploy:
      replicas: 3
      labels:
        org.minipaas.test: "1"
      update_config:
        monitor: 2s
`;
}

/** Moves the files to another version of api, keeping what `mp code route` added. */
function setVersion(message: string, listen = 8080): void {
  const file = join(dir, 'compose.yaml');
  writeFileSync(file, readFileSync(file, 'utf8').replace(/MESSAGE: "[^"]*"/, `MESSAGE: "${message}"`).replace(/-p \d+ -h/, `-p ${listen} -h`));
}

/** One GET through Caddy; the body, trimmed ('' on an error). */
function get(): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', headers: { host: 'localhost' }, agent: client, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 ? body.trim() : `HTTP ${res.statusCode}`));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(''));
  });
}

/** `n` requests one after the other; how many answers each body got. */
async function sample(n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const body = await get();
    counts[body] = (counts[body] ?? 0) + 1;
  }
  return counts;
}

/** Waits until `n` requests in a row all answer `body`. */
async function onlyAnswers(body: string, n = 40): Promise<void> {
  await waitFor(`only ${body} answers`, async () => {
    const counts = await sample(n);
    return counts[body] === n;
  }, { timeoutMs: 60_000, intervalMs: 500 });
}

async function canaryServiceCount(): Promise<number> {
  return (await docker.listServices({ label: [CANARY_LABEL] })).filter((s) => s.name.startsWith(`${stack}_`)).length;
}

async function failure(p: Promise<unknown>): Promise<MiniPaasError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(MiniPaasError);
  return err as MiniPaasError;
}

async function canaryOps(): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(`select count(*)::int as n from mp.operations where kind like 'canary.%'`);
  return rows[0]!.n;
}

describeSwarm('canaries behind Caddy', () => {
  beforeAll(async () => {
    db = await freshDatabase({ poolSize: 8 });
    agentPool = new pg.Pool({ connectionString: db.url, max: 6 });
    agent = await startAgent({ pool: agentPool, docker, name: 'canary-agent', pollIntervalMs: 200, heartbeatMs: 500 });
    dir = join(work, 'shop');
    mkdirSync(dir, { recursive: true });
    stack = uniqueName('cn').replace(/[^a-z0-9]/g, '');
    port = await freePort();
    writeFileSync(join(dir, 'minipaas.yaml'), `# canary test\nproject:\n  files: [compose.yaml]\nstack: ${stack}\ndeploy:\n  timeout: 120\n  stable: 1\n`);
    writeFileSync(join(dir, 'compose.yaml'), compose('v1'));
    await route.run(ctx(), { env: dir, url: `http://localhost:${port}`, target: 'api:8080' });
    await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    await onlyAnswers('v1', 10);
  }, 180_000);

  afterAll(async () => {
    client.destroy();
    await agent?.stop();
    await agentPool?.end();
    await Promise.all(contexts.map((c) => c.close()));
    const ours = (await docker.listServices()).filter((s) => s.name.startsWith(`${stack}_`));
    for (const s of ours) await docker.removeService(s).catch(() => {});
    const label = [`${STACK_NAMESPACE_LABEL}=${stack}`];
    await waitFor('tasks gone', async () => (await docker.listTasks({ serviceIds: ours.map((s) => s.id) })).length === 0, { timeoutMs: 30_000, intervalMs: 250 }).catch(() => {});
    for (const n of await docker.listNetworks({ label })) await docker.removeNetwork(n).catch(() => {});
    const volumes = (await docker.api.listVolumes({ filters: JSON.stringify({ label }) })).Volumes ?? [];
    for (const v of volumes) await docker.api.getVolume(v.Name).remove().catch(() => {});
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('bad input: one clear error, nothing enqueued', async () => {
    // No change: the files still say v1, which release 1 runs.
    expect((await failure(canary.run(ctx(), { env: dir, service: 'api', replicas: 1, detach: false }))).message).toMatch(/'api' .* is the same as in release 1/);
    setVersion('v2');
    const unknown = await failure(canary.run(ctx(), { env: dir, service: 'apo', replicas: 1, detach: false }));
    expect(`${unknown.message} ${unknown.hint}`).toMatch(/service 'apo' is not defined.*did you mean 'api'/s);
    expect((await failure(promote.run(ctx(), { env: dir, detach: false }))).message).toMatch(/has no canary to promote/);
    expect((await failure(abort.run(ctx(), { env: dir, service: 'api', detach: false }))).message).toMatch(/'api' .* has no canary to abort/);
    for (const bad of ['0', '-1', '1.5', 'abc']) {
      const res = await mp(['deploy', 'canary', '--env', dir, '--replicas', bad, 'api'], db.url);
      expect(res.code, bad).not.toBe(0);
      expect(res.stderr, bad).toMatch(/--replicas.*must be a positive integer/);
      expect(res.stderr.trim().split('\n').filter((l) => l.startsWith('error')).length, bad).toBe(1);
    }
    expect(await canaryOps()).toBe(0);
    expect(await listCanaries(db.pool, 'shop')).toEqual([]);
  }, 60_000);

  it('a canary of 1 beside 3 replicas gets about a quarter of the requests; deploy refuses while it is live; abort leaves only the old version', async () => {
    setVersion('v2');
    const c = ctx();
    await canary.run(c, { env: dir, service: 'api', replicas: 1, detach: false });
    expect(c.out()).toMatch(/canary 1 of api in shop recorded: 1 replica beside release 1/);
    expect(c.out()).toMatch(/canary\.start succeeded/);
    expect(await canaryServiceCount()).toBe(1);

    // Caddy refreshes tasks.api every second: wait until the canary answers at all, then count.
    await waitFor('the canary answers', async () => ((await sample(8)).v2 ?? 0) > 0, { timeoutMs: 30_000, intervalMs: 250 });
    const counts = await sample(400);
    const share = (counts.v2 ?? 0) / 400;
    console.log(`canary share over 400 requests: ${share.toFixed(3)} (${JSON.stringify(counts)})`);
    // Round robin over 4 upstreams would give exactly 0.25; Caddy's round robin counter is shared by
    // every route and the upstream list is re-resolved every second (in DNS order), so it is not exact.
    // 0.15-0.35 holds for a 1-in-4 split and fails for 1-in-2 or none.
    expect(counts['v1']! + (counts['v2'] ?? 0)).toBe(400);
    expect(share).toBeGreaterThan(0.15);
    expect(share).toBeLessThan(0.35);

    // Only one canary per service.
    const second = await failure(canary.run(ctx(), { env: dir, service: 'api', replicas: 1, detach: false }));
    expect(second.message).toMatch(/has a canary 1 of api \(live/);
    // A deploy refuses, naming the canary and the fixes.
    const refused = await failure(rollout.run(ctx(), { env: dir, dryRun: false, detach: false }));
    expect(refused.message).toMatch(/environment shop has a canary 1 of api \(live, 1 replica beside release 1/);
    expect(refused.hint).toMatch(/mp deploy promote --env .* api.*mp deploy abort --env .* api.*--wait/);
    expect(await listReleases(db.pool, 'shop')).toHaveLength(1);

    const s = ctx();
    await status.run(s, { env: dir });
    expect(s.out()).toMatch(new RegExp(`canary 1 of api: live, ${stack}_api-canary 1/1 running`));

    const a = ctx();
    await abort.run(a, { env: dir, detach: false });
    expect(a.out()).toMatch(/canary\.remove succeeded/);
    await onlyAnswers('v1');
    expect(await canaryServiceCount()).toBe(0);
    const [row] = await listCanaries(db.pool, 'shop');
    expect(row).toMatchObject({ status: 'aborted' });
    expect(row!.reason).toMatch(/^aborted by /);
  }, 240_000);

  it('promote rolls the main service to the canary version as a deploy release and removes the canary', async () => {
    setVersion('v2');
    await canary.run(ctx(), { env: dir, service: 'api', replicas: 1, detach: false });
    await waitFor('the canary answers', async () => ((await sample(8)).v2 ?? 0) > 0, { timeoutMs: 30_000, intervalMs: 250 });
    const p = ctx();
    await promote.run(p, { env: dir, service: 'api', detach: false });
    expect(p.out()).toMatch(/promoting canary 2 of api: release 2 of shop \(deploy\) recorded/);
    await onlyAnswers('v2');
    expect(await canaryServiceCount()).toBe(0);
    const services = await docker.listServices({ label: [`${STACK_NAMESPACE_LABEL}=${stack}`] });
    expect(services.find((x) => x.name === `${stack}_api`)?.replicas).toBe(3);
    const [release] = await listReleases(db.pool, 'shop');
    expect(release).toMatchObject({ version: 2, kind: 'deploy', status: 'succeeded' });
    expect((release!.source as { canary?: { id: string } }).canary?.id).toBe('2');
    expect((await listCanaries(db.pool, 'shop'))[0]).toMatchObject({ status: 'promoted', promotedVersion: 2 });

    const h = ctx();
    await history.run(h, { env: dir, limit: 20 });
    expect(h.out()).toMatch(/canary api x1\s+promoted -> 2/);
    expect(h.out()).toMatch(/canary api x1\s+aborted/);
    // The files say v2 now, as release 2 runs: a deploy changes nothing and is not refused.
    const again = ctx();
    await rollout.run(again, { env: dir, dryRun: false, detach: false });
    expect(again.out()).toMatch(/unchanged/);
  }, 240_000);

  it('a canary whose healthcheck never passes is aborted by itself; the main service keeps answering', async () => {
    // v3 listens on 8081, so the healthcheck `mp code route` wrote (wget :8080) never passes.
    setVersion('v3', 8081);
    const c = ctx();
    const err = await failure(canary.run(c, { env: dir, service: 'api', replicas: 1, detach: false }));
    expect(err.message).toMatch(/canary of api aborted/);
    expect(c.out()).toMatch(/aborted by itself/);
    expect(await canaryServiceCount()).toBe(0);
    const [row] = await listCanaries(db.pool, 'shop');
    expect(row).toMatchObject({ status: 'aborted' });
    expect(row!.reason).toMatch(/canary of api aborted: service .*api-canary: 3 tasks failed|unhealthy/);
    await onlyAnswers('v2', 20);
    const h = ctx();
    await history.run(h, { env: dir, limit: 20 });
    expect(h.out()).toMatch(/canary api x1\s+aborted .*canary of api aborted/);
  }, 240_000);

  it('a live canary whose tasks start failing is aborted by the agent\'s watcher', async () => {
    // v5 serves for 20 s after each start (long enough to go live on a loaded machine), then its
    // healthcheck fails (the page is gone): live first, then failing. The remover runs in a subshell of
    // its own, so httpd starts only once the page is written.
    setVersion('v5');
    const file = join(dir, 'compose.yaml');
    const failing = '&& ( (sleep 20; rm /www/index.html) & ) && exec httpd';
    writeFileSync(file, readFileSync(file, 'utf8').replace('&& exec httpd', failing));
    try {
      const c = ctx();
      await canary.run(c, { env: dir, service: 'api', replicas: 1, detach: false });
      expect(c.out()).toMatch(/canary\.start succeeded/);
      const row = await waitFor('the watcher aborts the canary', async () => {
        const [last] = await listCanaries(db.pool, 'shop');
        return last?.status === 'aborted' ? last : undefined;
      }, { timeoutMs: 200_000, intervalMs: 1000 });
      expect(row.reason).toMatch(/aborted by itself: 3 tasks of .*api-canary failed since it went live/);
      expect(await canaryServiceCount()).toBe(0);
      await onlyAnswers('v2', 20);
    } finally {
      writeFileSync(file, readFileSync(file, 'utf8').replace(failing, '&& exec httpd'));
    }
  }, 300_000);

  it('mp deploy --wait waits until the canary is aborted, then deploys', async () => {
    setVersion('v4');
    const before = (await listReleases(db.pool, 'shop'))[0]!.version;
    await canary.run(ctx(), { env: dir, service: 'api', replicas: 1, detach: false });
    const d = ctx();
    const deploying = rollout.run(d, { env: dir, dryRun: false, detach: false, wait: true, waitTimeout: 120 });
    await waitFor('the deploy waits', async () => d.err().includes('waiting until canary'), { timeoutMs: 10_000, intervalMs: 100 });
    expect((await listReleases(db.pool, 'shop'))[0]!.version).toBe(before);
    await abort.run(ctx(), { env: dir, service: 'api', detach: false });
    await deploying;
    expect(d.out()).toContain(`release ${before + 1} of shop (deploy) recorded`);
    await onlyAnswers('v4');
  }, 240_000);
});
