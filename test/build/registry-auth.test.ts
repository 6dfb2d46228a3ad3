// Registry credentials on the lab: a registry:2 container on 127.0.0.1 that wants an htpasswd (bcrypt)
// login. An image built and pushed there with the CLI's own credentials (MP_REGISTRY_*), then removed
// from the engine, cannot be deployed without credentials (one clear error, nothing changed); after
// `mp registry login` (the password sealed in the CLI, opened by the agent) the deploy gives them to
// Swarm and the service runs, so its pull used them; the password is in no table, no event, no
// `mp ops show`, no CLI output and no agent log line; a key rotation re-seals it; logout deletes it.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import { connectDocker, STACK_NAMESPACE_LABEL } from '../../agent/docker/engine.ts';
import * as build from '../../cli/commands/deploy/build.ts';
import * as rollout from '../../cli/commands/deploy/rollout.ts';
import * as status from '../../cli/commands/deploy/status.ts';
import * as show from '../../cli/commands/ops/show.ts';
import * as login from '../../cli/commands/registry/login.ts';
import * as logout from '../../cli/commands/registry/logout.ts';
import * as registryLs from '../../cli/commands/registry/ls.ts';
import * as rotateKey from '../../cli/commands/secret/rotate-key.ts';
import { OperationFailedError } from '../../cli/errors.ts';
import { freePort } from '../../dev/temporary-postgres.ts';
import { controlDb } from '../../sql/control/database.ts';
import { REGISTRY_AUTH_LABEL } from '../../sql/control/registry-auth.ts';
import { ensureClusterKeys, loadClusterKeys, openValue } from '../../sql/control/sealing.ts';
import { ConfigError, NotFoundError } from '../../sql/errors.ts';
import { captured, lines, type CapturedContext } from '../cli/harness.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE, TEST_LABEL, uniqueName } from '../support/docker.ts';
import { databaseText } from '../support/database-dump.ts';
import { waitFor } from '../support/wait.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const docker = connectDocker();
const USER = 'ci-puller';
const PASSWORD = `reg-pw-${randomBytes(9).toString('hex')}`;
let db: TestDatabase;
let agent: RunningAgent;
let agentPool: pg.Pool;
let registryId: string | undefined;
let host: string;
const agentLog: string[] = [];
const work = mkdtempSync(join(tmpdir(), 'mp-regauth-'));
const stack = uniqueName('rga').replace(/[^a-z0-9]/g, '');
const image = `${stack}-web`;
const dir = join(work, 'regauth');
const contexts: CapturedContext[] = [];

function ctx(): CapturedContext {
  const c = captured(db.url);
  contexts.push(c);
  return c;
}
const stdin = (text: string): login.PasswordInput => ({ stdin: Readable.from([Buffer.from(text)]), env: {} });
const loginOpts = (o: Partial<login.Options> = {}): login.Options => ({ env: dir, username: USER, passwordStdin: true, verify: true, ...o });

/** Removes every local image whose tags or digests name `needle`, so a deploy must pull it. */
async function removeLocalImages(needle: string): Promise<void> {
  for (const info of await docker.api.listImages()) {
    if ((info.RepoTags ?? []).some((t) => t.includes(needle)) || (info.RepoDigests ?? []).some((d) => d.includes(needle))) {
      await docker.api.getImage(info.Id).remove({ force: true }).catch(() => {});
    }
  }
}

/** `mp ARGS` with `input` on stdin. */
function mpWithStdin(args: string[], input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'mp.mjs'), ...args], { env: { ...process.env, DATABASE_URL: db.url }, cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

describeSwarm('registry credentials: sealed, given to Swarm, never in plaintext', () => {
  beforeAll(async () => {
    db = await freshDatabase({ poolSize: 8 });
    agentPool = new pg.Pool({ connectionString: db.url, max: 6 });
    const { keys } = await ensureClusterKeys(controlDb(db.pool), join(work, 'cluster.key'));
    const line = (level: string) => (m: string, d?: object) => void agentLog.push(`${level} ${m} ${d ? JSON.stringify(d) : ''}`);
    agent = await startAgent({
      pool: agentPool,
      docker,
      name: `regauth-${randomBytes(3).toString('hex')}`,
      pollIntervalMs: 200,
      heartbeatMs: 500,
      clusterKeys: keys,
      log: { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') },
    });

    // The registry wants a login: an htpasswd file with a bcrypt hash (the only kind it takes),
    // written by the htpasswd the lab's registry:2 image carries (images/registry/build.sh).
    const auth = join(work, 'auth');
    mkdirSync(auth);
    const { stdout } = await promisify(execFile)('docker', ['run', '--rm', '--label', `${TEST_LABEL}=regauth`, '--entrypoint', 'htpasswd', 'registry:2', '-Bbn', USER, PASSWORD]);
    writeFileSync(join(auth, 'htpasswd'), stdout);
    const port = await freePort();
    host = `127.0.0.1:${port}`;
    const container = await docker.api.createContainer({
      Image: 'registry:2',
      name: uniqueName('mpt-authreg'),
      Labels: { [TEST_LABEL]: 'regauth' },
      Env: ['REGISTRY_AUTH=htpasswd', 'REGISTRY_AUTH_HTPASSWD_REALM=mp-lab', 'REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd'],
      ExposedPorts: { '5000/tcp': {} },
      HostConfig: { Binds: [`${auth}:/auth:ro`], PortBindings: { '5000/tcp': [{ HostIp: '127.0.0.1', HostPort: String(port) }] } },
    });
    registryId = container.id;
    await container.start();
    await waitFor('the registry asks for a login', async () => (await fetch(`http://${host}/v2/`).then((r) => r.status === 401, () => false)) || undefined, {
      timeoutMs: 20_000,
      intervalMs: 200,
    });

    const webPort = await freePort();
    mkdirSync(join(dir, 'app'), { recursive: true });
    writeFileSync(
      join(dir, 'minipaas.yaml'),
      ['project:', '  files: [compose.yaml]', `stack: ${stack}`, 'deploy:', '  version: "1"', '  timeout: 90', '  stable: 1', `registry: ${host}/mpt`].join('\n') + '\n',
    );
    writeFileSync(
      join(dir, 'compose.yaml'),
      `services:
  web:
    image: ${image}:dev
    build:
      context: ./app
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports:
      - target: 8080
        published: ${webPort}
        mode: host
`,
    );
    writeFileSync(join(dir, 'app', 'Dockerfile'), `FROM ${LAB_BUSYBOX_IMAGE}\nRUN mkdir -p /www && echo pulled with credentials > /www/index.html\n`);
    webUrl = `http://127.0.0.1:${webPort}/`;
  }, 120_000);
  let webUrl = '';

  afterAll(async () => {
    await agent?.stop();
    await agentPool?.end();
    await Promise.all(contexts.map((c) => c.close()));
    const label = [`${STACK_NAMESPACE_LABEL}=${stack}`];
    for (const s of await docker.listServices({ label })) await docker.removeService(s).catch(() => {});
    await waitFor('tasks gone', async () => (await docker.listTasks({ label })).length === 0, { timeoutMs: 30_000, intervalMs: 250 }).catch(() => {});
    for (const n of await docker.listNetworks({ label })) await docker.removeNetwork(n).catch(() => {});
    await removeLocalImages(image);
    if (registryId) await docker.api.getContainer(registryId).remove({ force: true, v: true }).catch(() => {});
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('pushes with the CLI credentials; without stored ones the deploy fails with one clear error and changes nothing', async () => {
    // The push: this machine's credentials (CI's MP_REGISTRY_*), which `mp registry login` does not provide.
    process.env.MP_REGISTRY_USERNAME = USER;
    process.env.MP_REGISTRY_PASSWORD = PASSWORD;
    try {
      await build.run(ctx(), { env: dir, dryRun: false });
    } finally {
      delete process.env.MP_REGISTRY_USERNAME;
      delete process.env.MP_REGISTRY_PASSWORD;
    }
    await removeLocalImages(image);
    await expect(docker.inspectImage(`${image}:dev`)).rejects.toThrow();

    const c = ctx();
    const err = await rollout.run(c, { env: dir, dryRun: false, detach: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OperationFailedError);
    const message = (err as Error).message;
    expect(message).toMatch(new RegExp(`image '${host.replace(/\./g, '\\.')}/mpt/${image}:1@sha256:[0-9a-f]{64}' of service 'web' cannot be pulled from `));
    expect(message).toMatch(/without credentials: no basic auth credentials \(if it wants a login: `mp registry login --env DIR --registry 127\.0\.0\.1:\d+ --username USER --password-stdin`\)$/);
    expect(await docker.listServices({ label: [`${STACK_NAMESPACE_LABEL}=${stack}`] })).toEqual([]);
  }, 180_000);

  it('bad input is one clear error and stores nothing: a refused login, an empty stdin, no --password-stdin, no user, no credentials to delete', async () => {
    const count = async (): Promise<number> => (await db.pool.query<{ n: number }>(`select count(*)::int n from mp.registry_auths`)).rows[0]!.n;
    const refused = await login.runWith(ctx(), loginOpts(), stdin('not-the-password')).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as Error).message).toMatch(new RegExp(`^${host.replace(/\./g, '\\.')} refused the login of '${USER}': .*401 Unauthorized; nothing was stored$`));
    const empty = await login.runWith(ctx(), loginOpts(), stdin('\n')).catch((e: unknown) => e);
    expect((empty as Error).message).toBe('the registry password is empty (nothing on stdin); nothing was stored');
    const noFlag = await login.runWith(ctx(), loginOpts({ passwordStdin: false }), stdin(PASSWORD)).catch((e: unknown) => e);
    expect((noFlag as Error).message).toBe('the registry password is read from stdin, and --password-stdin was not given');
    const noUser = await login.runWith(ctx(), loginOpts({ username: undefined }), stdin(PASSWORD)).catch((e: unknown) => e);
    expect((noUser as ConfigError).hint).toBe('pass --username USER (or set MP_REGISTRY_USERNAME)');
    const none = await logout.run(ctx(), { env: dir }).catch((e: unknown) => e);
    expect(none).toBeInstanceOf(NotFoundError);
    expect((none as Error).message).toBe(`environment regauth has no credentials for registry ${host}`);
    expect(await count()).toBe(0);

    // Through the binary: one error line and its hint, a non-zero exit.
    const bin = await mpWithStdin(['registry', 'login', '--env', dir, '--username', USER, '--password-stdin'], 'wrong-password\n');
    expect(bin.code).not.toBe(0);
    expect(lines(bin.stderr)[0]).toMatch(/^error: 127\.0\.0\.1:\d+ refused the login of 'ci-puller': .*; nothing was stored$/);
    expect(lines(bin.stderr)[1]).toMatch(/^hint: check the user name and password/);
    expect(await count()).toBe(0);
  }, 60_000);

  it('after mp registry login the deploy gives Swarm the credentials: the service pulls its image and runs', async () => {
    const bin = await mpWithStdin(['registry', 'login', '--env', dir, '--username', USER, '--password-stdin'], `${PASSWORD}\n`);
    expect(bin.stderr).toBe('');
    expect(bin.code).toBe(0);
    expect(bin.stdout).toMatch(new RegExp(`^credentials of '${USER}' for ${host.replace(/\./g, '\\.')} stored sealed in regauth \\(version [0-9a-f]{12}\\)`));
    const { rows } = await db.pool.query<{ sealed: string; username: string }>(`select sealed, username from mp.registry_auths`);
    expect(rows).toHaveLength(1);
    expect(Buffer.from(await openValue(await loadClusterKeys(join(work, 'cluster.key')), rows[0]!.sealed)).toString()).toBe(PASSWORD);
    const ls = ctx();
    await registryLs.run(ls, { env: dir });
    expect(ls.out()).toMatch(new RegExp(`${host.replace(/\./g, '\\.')}\\s+${USER}\\s+[0-9a-f]{12}`));

    const c = ctx();
    await rollout.run(c, { env: dir, dryRun: false, detach: false });
    expect(c.out()).toMatch(/operation \d+ deploy succeeded/);
    expect(c.out()).toContain(`services pulling from ${host} get the stored credentials of '${USER}'`);
    const body = await waitFor('web answers', () => fetch(webUrl).then((r) => r.text(), () => ''), { timeoutMs: 30_000, intervalMs: 250 });
    expect(body.trim()).toBe('pulled with credentials');
    // Pulled from the registry: the engine has it under the registry's name now.
    const [svc] = await docker.listServices({ label: [`${STACK_NAMESPACE_LABEL}=${stack}`] });
    expect(svc!.labels[REGISTRY_AUTH_LABEL]).toMatch(new RegExp(`^${USER}@${host.replace(/\./g, '\\.')} [0-9a-f]{12}$`));
    const ref = (svc!.spec.TaskTemplate as { ContainerSpec: { Image: string } }).ContainerSpec.Image;
    expect((await docker.inspectImage(ref)).repoDigests.some((d) => d.startsWith(`${host}/mpt/${image}@`))).toBe(true);
    // The label is the deploy's own: `mp deploy status` shows no drift.
    const st = ctx();
    await status.run(st, { env: dir });
    expect(st.out()).toMatch(new RegExp(`^${stack}_web +1/1 *$`, 'm'));
    // What the engine shows of the service does not carry the password either.
    expect(JSON.stringify(await docker.api.getService(svc!.id).inspect())).not.toContain(PASSWORD);
  }, 180_000);

  it('a key rotation re-seals the stored password; the plaintext is nowhere: tables, events, mp ops show, CLI output, agent log', async () => {
    const r = ctx();
    await rotateKey.run(r, { detach: false });
    expect(r.out()).toMatch(/0 stored secrets and 1 registry password re-sealed to key \d+/);
    const { rows } = await db.pool.query<{ sealed: string }>(`select sealed from mp.registry_auths`);
    expect(Buffer.from(await openValue(await loadClusterKeys(join(work, 'cluster.key')), rows[0]!.sealed)).toString()).toBe(PASSWORD);

    const needles = [PASSWORD, Buffer.from(PASSWORD).toString('base64').replace(/=+$/, ''), Buffer.from(PASSWORD).toString('hex')];
    const haystacks: Record<string, string> = {};
    // Every row of every table, and a full pg_dump where the installed one can read this server (test/support/database-dump.ts).
    const dump = await databaseText(db.pool, db.url);
    expect(dump.tables).toEqual(expect.arrayContaining(['mp.registry_auths', 'mp.operations', 'mp.stream_events', 'mp.builds']));
    if (dump.dumped) expect(dump.texts.pg_dump).toMatch(/^COPY mp\.registry_auths /m);
    Object.assign(haystacks, dump.texts);
    const { rows: ops } = await db.pool.query<{ id: string }>(`select id from mp.operations order by id`);
    expect(ops.length).toBeGreaterThanOrEqual(4);
    for (const op of ops) {
      const c = ctx();
      await show.run(c, { id: op.id });
      haystacks[`mp ops show ${op.id}`] = c.out();
    }
    const { rows: events } = await db.pool.query<{ p: string }>(`select payload::text p from mp.read('mp_events', 0, 100000)`);
    haystacks.mp_events = events.map((e) => e.p).join('\n');
    haystacks['CLI output'] = contexts.map((c) => c.out() + c.err()).join('\n');
    haystacks['agent log'] = agentLog.join('\n');
    expect(haystacks['agent log']).toContain('agent registered');
    for (const [where, text] of Object.entries(haystacks)) {
      for (const needle of needles) expect(text.includes(needle), `${where} contains the registry password`).toBe(false);
    }
  }, 60_000);

  it('mp registry logout deletes them; the next deploy takes them from the service', async () => {
    const c = ctx();
    await logout.run(c, { env: dir });
    expect(c.out()).toContain(`credentials for ${host} deleted from regauth`);
    expect((await db.pool.query(`select 1 from mp.registry_auths`)).rowCount).toBe(0);
    const d = ctx();
    await rollout.run(d, { env: dir, dryRun: false, detach: false });
    expect(d.out()).toMatch(/operation \d+ deploy succeeded/);
    const [svc] = await docker.listServices({ label: [`${STACK_NAMESPACE_LABEL}=${stack}`] });
    expect(svc!.labels[REGISTRY_AUTH_LABEL]).toBeUndefined();
  }, 180_000);
});
