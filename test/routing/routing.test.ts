// Routing through Caddy on the lab's Swarm: `mp code route` writes the route and a safe rollout
// policy, `mp deploy` creates the stack's Caddy and loads the routes, a rolling update of a
// 3-replica service under continuous load drops no request, an https route is served with Caddy's
// internal CA for its host, `mp routes ls` compares Caddy with the environment, and bad input
// writes nothing. Traffic goes only to 127.0.0.1 (Caddy's host-mode ports) and the test's containers.
import { readFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import { connectDocker, STACK_NAMESPACE_LABEL } from '../../agent/docker/engine.ts';
import { ingressContainer, readIngressFile } from '../../agent/routing/admin.ts';
import * as route from '../../cli/commands/code/route.ts';
import * as rollout from '../../cli/commands/deploy/rollout.ts';
import * as routing from '../../cli/commands/deploy/routing.ts';
import * as routesLs from '../../cli/commands/routes/ls.ts';
import { freePort } from '../../dev/temporary-postgres.ts';
import { MiniPaasError } from '../../sql/errors.ts';
import { captured, type CapturedContext } from '../cli/harness.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE, uniqueName } from '../support/docker.ts';
import { waitFor } from '../support/wait.ts';

const docker = connectDocker();
let db: TestDatabase;
let agent: RunningAgent;
let agentPool: pg.Pool;
const work = mkdtempSync(join(tmpdir(), 'mp-routing-'));
const stacks: string[] = [];
const contexts: CapturedContext[] = [];

function ctx(): CapturedContext {
  const c = captured(db.url);
  contexts.push(c);
  return c;
}

/** A busybox web server answering `$MESSAGE` on 8080, with a fast healthcheck and 3 replicas. */
function apiCompose(message: string): string {
  return `# the API behind Caddy
services:
  api:
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sh", "-c", "mkdir -p /www && echo \\"$$MESSAGE\\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
    environment:
      MESSAGE: "${message}"
    deploy:
      replicas: 3
      update_config:
        monitor: 2s
`;
}

function environment(name: string): { dir: string; stack: string } {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const stack = uniqueName('rt').replace(/[^a-z0-9]/g, '');
  stacks.push(stack);
  writeFileSync(join(dir, 'minipaas.yaml'), `# routing test\nproject:\n  files: [compose.yaml]\nstack: ${stack}\ndeploy:\n  timeout: 120\n  stable: 1\n`);
  writeFileSync(join(dir, 'compose.yaml'), apiCompose('v1'));
  return { dir, stack };
}

/** One GET through Caddy on 127.0.0.1 with the route's Host header; the body, trimmed. */
function get(agentHttp: http.Agent, port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: agentHttp, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function removeStack(stack: string): Promise<void> {
  const label = [`${STACK_NAMESPACE_LABEL}=${stack}`];
  for (const s of await docker.listServices({ label })) await docker.removeService(s).catch(() => {});
  await waitFor(`stack ${stack} tasks gone`, async () => (await docker.listTasks({ label })).length === 0, { timeoutMs: 30_000, intervalMs: 250 }).catch(() => {});
  for (const n of await docker.listNetworks({ label })) await docker.removeNetwork(n).catch(() => {});
  const volumes = (await docker.api.listVolumes({ filters: JSON.stringify({ label }) })).Volumes ?? [];
  for (const v of volumes) await docker.api.getVolume(v.Name).remove().catch(() => {});
}

describeSwarm('routing through Caddy', () => {
  let env: { dir: string; stack: string };
  let port: number;

  beforeAll(async () => {
    db = await freshDatabase({ poolSize: 8 });
    agentPool = new pg.Pool({ connectionString: db.url, max: 6 });
    agent = await startAgent({ pool: agentPool, docker, name: 'routing-agent', pollIntervalMs: 200, heartbeatMs: 500 });
    env = environment('shop');
    port = await freePort();
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    await agentPool?.end();
    await Promise.all(contexts.map((c) => c.close()));
    await Promise.all(stacks.map(removeStack));
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('mp code route writes the route and a rollout policy; twice changes nothing', async () => {
    const c = ctx();
    await route.run(c, { env: env.dir, url: `http://localhost:${port}`, target: 'api:8080' });
    expect(c.out()).toContain(`route http://localhost:${port} -> api:8080`);
    const compose = readFileSync(join(env.dir, 'compose.yaml'), 'utf8');
    expect(compose).toContain('# the API behind Caddy');
    expect(compose).toMatch(/order: start-first/);
    expect(compose).toMatch(/failure_action: rollback/);
    expect(compose).toMatch(/stop_grace_period: 10s/);
    expect(compose).toMatch(/wget -q -O \/dev\/null http:\/\/127.0.0.1:8080\//);
    const settings = readFileSync(join(env.dir, 'minipaas.yaml'), 'utf8');
    expect(settings).toContain('# routing test');
    expect(settings).toContain(`http://localhost:${port}: api:8080`);

    const again = ctx();
    await route.run(again, { env: env.dir, url: `http://localhost:${port}/`, target: 'api:8080' });
    expect(again.out()).toContain('nothing changed');
    expect(readFileSync(join(env.dir, 'compose.yaml'), 'utf8')).toBe(compose);
    expect(readFileSync(join(env.dir, 'minipaas.yaml'), 'utf8')).toBe(settings);
  });

  it('bad input: one clear error, no file changed, nothing enqueued', async () => {
    const before = ['compose.yaml', 'minipaas.yaml'].map((f) => readFileSync(join(env.dir, f), 'utf8'));
    const cases: [Partial<route.Options>, RegExp][] = [
      [{ url: 'http://', target: 'api:8080' }, /is not a URL|has no host/],
      [{ url: 'ftp://x.test', target: 'api:8080' }, /scheme 'ftp'/],
      [{ url: 'http://localhost:8000', target: 'api:http' }, /port 'http' is not a number/],
      [{ url: 'http://localhost:8000', target: 'apo:8080' }, /service 'apo'.*did you mean 'api'/s],
      [{ url: 'http://other.test', target: 'caddy:80' }, /the ingress itself/],
      [{ rm: 'http://nowhere.test' }, /is not routed/],
      [{ url: `https://localhost:${port}`, target: 'api:8080' }, /both http .* and https/],
    ];
    for (const [opts, message] of cases) {
      const err = await route.run(ctx(), { env: env.dir, ...opts } as route.Options).then(() => undefined, (e: unknown) => e);
      expect(err, JSON.stringify(opts)).toBeInstanceOf(MiniPaasError);
      const full = `${(err as MiniPaasError).message} ${(err as MiniPaasError).hint ?? ''}`;
      expect(full, JSON.stringify(opts)).toMatch(message);
    }
    expect(['compose.yaml', 'minipaas.yaml'].map((f) => readFileSync(join(env.dir, f), 'utf8'))).toEqual(before);
    const { rows } = await db.pool.query<{ n: number }>(`select count(*)::int as n from mp.operations`);
    expect(rows[0]!.n).toBe(0);
  });

  it('a rolling update of 3 replicas behind Caddy drops no request, and afterwards only the new version answers', async () => {
    const c = ctx();
    await rollout.run(c, { env: env.dir, dryRun: false, detach: false });
    expect(c.out()).toMatch(/routes\s+Caddy loaded 1 routes/);
    const client = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const host = 'localhost';
    await waitFor('Caddy answers v1', async () => (await get(client, port, host).catch(() => ({ body: '' }))).body === 'v1', { timeoutMs: 30_000, intervalMs: 250 });

    // The load: 3 loops, each one request after the other, for at most 90 s.
    let stop = false;
    let failed = 0;
    const errors: string[] = [];
    const seen: { at: number; body: string }[] = [];
    const deadline = Date.now() + 90_000;
    const loop = async (): Promise<void> => {
      while (!stop && Date.now() < deadline) {
        const at = Date.now();
        try {
          const res = await get(client, port, host);
          if (res.status !== 200 || (res.body !== 'v1' && res.body !== 'v2')) {
            failed++;
            errors.push(`${res.status} ${res.body.slice(0, 80)}`);
          } else seen.push({ at, body: res.body });
        } catch (err) {
          failed++;
          errors.push((err as Error).message);
        }
      }
    };
    const loops = [loop(), loop(), loop()];
    await new Promise((r) => setTimeout(r, 1000));
    writeFileSync(join(env.dir, 'compose.yaml'), readFileSync(join(env.dir, 'compose.yaml'), 'utf8').replace('MESSAGE: "v1"', 'MESSAGE: "v2"'));
    const t0 = Date.now();
    const update = ctx();
    await rollout.run(update, { env: env.dir, dryRun: false, detach: false });
    const rolloutMs = Date.now() - t0;
    const doneAt = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    stop = true;
    await Promise.all(loops);
    client.destroy();
    expect(update.out()).toMatch(/update 1 \(api\)/);
    const after = seen.filter((s) => s.at >= doneAt);
    console.log(
      `zero-downtime: ${seen.length + failed} requests, ${failed} failed, rollout ${(rolloutMs / 1000).toFixed(1)} s, ${after.length} after it (all v2: ${after.every((s) => s.body === 'v2')})`,
    );
    expect(errors).toEqual([]);
    expect(failed).toBe(0);
    expect(seen.some((s) => s.body === 'v1')).toBe(true);
    expect(after.length).toBeGreaterThan(10);
    expect(after.every((s) => s.body === 'v2')).toBe(true);
  }, 240_000);

  it('an https route with tls internal answers with a certificate for its host; mp routes ls shows both routes', async () => {
    const tlsPort = await freePort();
    await route.run(ctx(), { env: env.dir, url: `https://app.test:${tlsPort}`, target: 'api:8080', tls: 'internal' });
    expect(readFileSync(join(env.dir, 'minipaas.yaml'), 'utf8')).toContain(`https://app.test:${tlsPort}: {to: api:8080, tls: internal}`);
    const r = ctx();
    await routing.run(r, { env: env.dir, target: 'manager', detach: false });
    expect(r.out()).toMatch(/routing succeeded/);

    const caddy = await ingressContainer(docker, env.stack);
    const ca = await waitFor('internal CA root', () => readIngressFile(docker, caddy, '/data/caddy/pki/authorities/local/root.crt').catch(() => ''), { timeoutMs: 20_000, intervalMs: 500 });
    const answer = await waitFor(
      'https answers',
      () =>
        new Promise<{ cert: PeerCertificate; body: string } | undefined>((resolve) => {
          const req = https.get({ host: '127.0.0.1', port: tlsPort, servername: 'app.test', headers: { host: 'app.test' }, ca, timeout: 5000 }, (res) => {
            const cert = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ cert, body: body.trim() }));
          });
          req.on('error', () => resolve(undefined));
          req.on('timeout', () => req.destroy());
        }),
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(answer.body).toBe('v2');
    expect(answer.cert.subjectaltname).toContain('DNS:app.test');

    const ls = ctx();
    await routesLs.run(ls, { env: env.dir });
    expect(ls.out()).toMatch(new RegExp(`http://localhost:${port}\\s+api:8080\\s+tasks.api:8080\\s+ok`));
    expect(ls.out()).toMatch(new RegExp(`https://app.test:${tlsPort}\\s+api:8080\\s+tasks.api:8080\\s+ok`));
  }, 180_000);
});
