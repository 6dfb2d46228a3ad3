// Jobs and cron on the lab's Swarm, with a real agent and its scheduler in-process: `mp job run`
// streams the job's output and exits with its code; pre_deploy jobs gate a rollout (a failing one
// leaves the old release serving); cron overlap policies forbid / replace / allow; a swarm-cronjob
// file runs unchanged; a failing schedule alerts its webhook once.
import { createServer, type Server } from 'node:http';
import { randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import { connectDocker, STACK_NAMESPACE_LABEL } from '../../agent/docker/engine.ts';
import * as cronHistory from '../../cli/commands/cron/history.ts';
import * as cronLs from '../../cli/commands/cron/ls.ts';
import * as cronSuspend from '../../cli/commands/cron/suspend.ts';
import * as rollout from '../../cli/commands/deploy/rollout.ts';
import { JobExitError } from '../../cli/commands/job/follow.ts';
import * as jobRun from '../../cli/commands/job/run.ts';
import { listRuns, type Run } from '../../sql/control/cron.ts';
import { listReleases } from '../../sql/control/releases.ts';
import { ConfigError, MiniPaasError, NotFoundError } from '../../sql/errors.ts';
import { captured, type CapturedContext } from '../cli/harness.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE, uniqueName } from '../support/docker.ts';
import { freePort } from '../../dev/temporary-postgres.ts';
import { waitFor } from '../support/wait.ts';

const docker = connectDocker();
let db: TestDatabase;
let agent: RunningAgent;
let agentPool: pg.Pool;
const work = mkdtempSync(join(tmpdir(), 'mp-cron-'));
const stacks: string[] = [];
const contexts: CapturedContext[] = [];
let hook: Server;
let hookPort = 0;
const alerts: Record<string, unknown>[] = [];

function ctx(): CapturedContext {
  const c = captured(db.url);
  contexts.push(c);
  return c;
}

function environment(name: string, compose: string, extra: string[] = []): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const stack = uniqueName('cron').replace(/[^a-z0-9]/g, '');
  stacks.push(stack);
  writeFileSync(join(dir, 'minipaas.yaml'), ['project:', '  files: [compose.yaml]', `stack: ${stack}`, 'deploy:', '  timeout: 90', '  stable: 1', ...extra, ''].join('\n'));
  writeFileSync(join(dir, 'compose.yaml'), compose);
  return dir;
}

/** A cron job of busybox that runs `script`. */
function cronService(name: string, schedule: string, script: string, labels: Record<string, string> = {}): string {
  const all = { 'org.minipaas.kind': 'cron', 'org.minipaas.cron.schedule': schedule, ...labels };
  return `  ${name}:
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sh", "-c", ${JSON.stringify(`trap "exit 143" TERM; ${script}`)}]
    stop_grace_period: 1s
    deploy:
      labels:
${Object.entries(all).map(([k, v]) => `        ${k}: "${v}"`).join('\n')}
`;
}

async function removeStack(stack: string): Promise<void> {
  const label = [`${STACK_NAMESPACE_LABEL}=${stack}`];
  for (const s of await docker.listServices({ label })) await docker.removeService(s).catch(() => {});
  for (const s of await docker.listServices({ label: [`org.minipaas.stack=${stack}`] })) await docker.removeService(s).catch(() => {});
  await waitFor(`stack ${stack} tasks gone`, async () => (await docker.listTasks({ label })).length === 0, { timeoutMs: 30_000, intervalMs: 250 }).catch(() => {});
  for (const n of await docker.listNetworks({ label })) await docker.removeNetwork(n).catch(() => {});
}

async function get(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(3000) });
  return (await res.text()).trim();
}

describeSwarm('jobs and cron', () => {
  beforeAll(async () => {
    process.env.MP_CRON_SECONDS = '1';
    db = await freshDatabase({ poolSize: 8 });
    // Job services are named after operation ids: start far from other test files' ids.
    await db.pool.query(`select setval(pg_get_serial_sequence('mp.operations', 'id'), $1)`, [randomInt(1_000_000, 2_000_000_000)]);
    agentPool = new pg.Pool({ connectionString: db.url, max: 12 });
    agent = await startAgent({ pool: agentPool, docker, name: 'cron-agent', pollIntervalMs: 200, heartbeatMs: 500, concurrency: 12, cron: { leaseSeconds: 3, pollMs: 300 } });
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        alerts.push(JSON.parse(body) as Record<string, unknown>);
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    hookPort = (hook.address() as { port: number }).port;
  });
  afterAll(async () => {
    delete process.env.MP_CRON_SECONDS;
    await agent?.stop();
    await agentPool?.end();
    await Promise.all(contexts.map((c) => c.close()));
    await Promise.all(stacks.map(removeStack));
    await db?.drop();
    hook?.close();
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('mp job run streams the job output and exits with its exit code; bad names write nothing', async () => {
    const dir = environment(
      'jobs',
      `services:
  migrate:
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sh", "-c", "echo migrating to $$TARGET; echo second line; exit $\${CODE:-0}"]
    environment:
      TARGET: v42
    deploy:
      labels:
        org.minipaas.kind: job
  idle:
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
`,
    );
    await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    // The job template is no service of the stack.
    const [release] = await listReleases(db.pool, 'jobs', 1);
    expect((await docker.listServices({ label: [`${STACK_NAMESPACE_LABEL}=${release!.stack}`] })).map((s) => s.name)).toEqual([`${release!.stack}_idle`]);

    const ok = ctx();
    await jobRun.run(ok, { env: dir, job: 'migrate', args: [], detach: false });
    expect(ok.out()).toBe('migrating to v42\nsecond line\n');
    expect(ok.err()).toMatch(/exit\s+job 'migrate' .* exited with code 0/);

    const failing = ctx();
    const err = await jobRun.run(failing, { env: dir, job: 'migrate', args: ['sh', '-c', 'echo about to fail; exit 3'], detach: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobExitError);
    expect((err as JobExitError).exitCode).toBe(3);
    expect(failing.out()).toBe('about to fail\n');

    const before = (await db.pool.query(`select count(*)::int n from mp.operations`)).rows[0].n as number;
    await expect(jobRun.run(ctx(), { env: dir, job: 'migrat', args: [], detach: false })).rejects.toMatchObject({ code: 'UNKNOWN_JOB', hint: "did you mean 'migrate'?" });
    await expect(jobRun.run(ctx(), { env: dir, job: 'idle', args: [], detach: false })).rejects.toBeInstanceOf(ConfigError);
    expect((await db.pool.query(`select count(*)::int n from mp.operations`)).rows[0].n).toBe(before);
  });

  it('runs pre_deploy jobs before the rollout; a failing one fails the deploy and the old release keeps serving', async () => {
    const port = await freePort();
    const compose = (message: string, code: number): string => `services:
  web:
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sh", "-c", "mkdir -p /www && echo ${message} > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports:
      - { target: 8080, published: ${port}, mode: host }
    stop_grace_period: 1s
  migrate:
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sh", "-c", "echo migration for ${message}; exit ${code}"]
    deploy:
      labels:
        org.minipaas.kind: job
`;
    const dir = environment('gated', compose('v1', 0), ['pre_deploy: [migrate]']);
    const first = ctx();
    await rollout.run(first, { env: dir, dryRun: false, detach: false });
    const steps = first.out().split('\n').map((l) => l.split(/\s+/)[1]);
    expect(steps.indexOf('pre-deploy')).toBeGreaterThan(-1);
    expect(steps.indexOf('exit')).toBeGreaterThan(steps.indexOf('pre-deploy'));
    expect(steps.indexOf('create-service')).toBeGreaterThan(steps.indexOf('exit'));
    expect(first.out()).toMatch(/log\s+migration for v1/);
    expect(await waitFor('v1 answers', () => get(port).catch(() => ''), { timeoutMs: 20_000, intervalMs: 250 })).toBe('v1');

    writeFileSync(join(dir, 'compose.yaml'), compose('v2', 1));
    const second = ctx();
    const err = await rollout.run(second, { env: dir, dryRun: false, detach: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MiniPaasError);
    expect((err as Error).message).toMatch(/pre_deploy job 'migrate' .* failed with exit code 1.*nothing was rolled out/);
    expect(second.out()).not.toMatch(/update-service/);
    expect(await get(port)).toBe('v1');
    const [latest] = await listReleases(db.pool, 'gated', 1);
    expect(latest).toMatchObject({ version: 2, status: 'failed' });
  });

  it('overlap forbid skips, replace stops the running one, allow runs side by side; swarm-cronjob labels run; one alert per failing streak', async () => {
    // Every 3 s, each run takes 7 s.
    const long = 'echo start; sleep 7; echo done';
    const dir = environment(
      'policies',
      `services:
${cronService('forbid', '*/3 * * * * *', long, { 'org.minipaas.cron.overlap': 'forbid' })}${cronService('replace', '*/3 * * * * *', long, { 'org.minipaas.cron.overlap': 'replace' })}${cronService('allow', '*/3 * * * * *', long, { 'org.minipaas.cron.overlap': 'allow' })}${cronService('failing', '*/2 * * * * *', 'echo broken; exit 4', { 'org.minipaas.cron.overlap': 'allow' })}  legacy:
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sh", "-c", "echo legacy tick"]
    deploy:
      mode: replicated
      replicas: 0
      restart_policy:
        condition: none
      labels:
        swarm.cronjob.enable: "true"
        swarm.cronjob.schedule: "*/3 * * * * *"
        swarm.cronjob.skip-running: "true"
`,
      ['cron:', `  webhook: http://127.0.0.1:${hookPort}/alert`],
    );
    await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    const ls = ctx();
    await cronLs.run(ls, { env: dir });
    expect(ls.out()).toMatch(/^legacy\s+\*\/3 \* \* \* \* \*\s+UTC\s+forbid\s+none\s+active/m);
    expect(ls.out()).toMatch(/^replace\s+\S+ \S+ \S+ \S+ \S+ \S+\s+UTC\s+replace\s+latest\s+active/m);

    const runs = (name: string): Promise<Run[]> => listRuns(db.pool, { environment: 'policies', name, limit: 100 });
    await waitFor('three ticks of allow to have started', async () => (await runs('allow')).filter((r) => r.startedAt).length >= 3, { timeoutMs: 40_000, intervalMs: 500 });
    for (const name of ['forbid', 'replace', 'allow', 'failing', 'legacy']) await cronSuspend.run(ctx(), { env: dir, job: name });
    const ended = (r: Run): boolean => !['queued', 'running'].includes(r.status);
    for (const name of ['forbid', 'replace', 'allow', 'failing', 'legacy']) {
      await waitFor(`runs of ${name} to end`, async () => (await runs(name)).every(ended), { timeoutMs: 40_000, intervalMs: 500 });
    }

    const spans = (list: Run[]): [number, number][] =>
      list.filter((r) => r.startedAt && r.finishedAt).map((r) => [r.startedAt!.getTime(), r.finishedAt!.getTime()]);
    const overlapping = (list: [number, number][]): boolean => list.some(([s1, e1], i) => list.some(([s2, e2], j) => i !== j && s1 < e2 && s2 < e1));

    const forbid = await runs('forbid');
    expect(forbid.some((r) => r.status === 'skipped' && /still running \(overlap forbid\)/.test(r.reason ?? ''))).toBe(true);
    expect(overlapping(spans(forbid.filter((r) => r.status !== 'skipped')))).toBe(false);

    const replace = await runs('replace');
    expect(replace.some((r) => r.status === 'replaced' && r.replacedBy !== null)).toBe(true);

    const allow = await runs('allow');
    expect(overlapping(spans(allow))).toBe(true);

    const legacy = await runs('legacy');
    expect(legacy.some((r) => r.status === 'succeeded')).toBe(true);

    const failing = await runs('failing');
    expect(failing.filter((r) => r.status === 'failed').length).toBeGreaterThanOrEqual(2);
    expect(failing.find((r) => r.status === 'failed')).toMatchObject({ exitCode: 4, logs: expect.arrayContaining(['broken']) });
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ environment: 'policies', job: 'failing', exit_code: 4 });
    expect(String(alerts[0]!.text)).toMatch(/cron job failing of policies failed \(exit code 4\)/);

    const h = ctx();
    await cronHistory.run(h, { env: dir, job: 'forbid', limit: 20 });
    expect(h.out()).toMatch(/skipped/);
    await expect(cronHistory.run(ctx(), { env: dir, job: 'forbidd', limit: 20 })).rejects.toBeInstanceOf(NotFoundError);
  });
});
