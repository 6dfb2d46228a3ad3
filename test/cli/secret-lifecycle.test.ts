// A managed secret and config through their life on the lab Swarm, with a real agent: created for a
// service and deployed, the service reads them from /run/secrets and /app.json; `create --deploy`
// rolls it onto the new version at once; `prune` lists only what the last --keep releases do not use
// and `--delete` removes those Swarm objects; a delete of what a service still uses keeps it and names
// the service; a delete of an unknown name suggests the near miss; bad input enqueues nothing.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import { connectDocker, STACK_NAMESPACE_LABEL } from '../../agent/docker/engine.ts';
import { MANAGED_LABEL } from '../../agent/executors/secret-create.ts';
import * as configCreate from '../../cli/commands/config/create.ts';
import * as configDelete from '../../cli/commands/config/delete.ts';
import * as configPrune from '../../cli/commands/config/prune.ts';
import * as rollout from '../../cli/commands/deploy/rollout.ts';
import * as show from '../../cli/commands/ops/show.ts';
import * as rollback from '../../cli/commands/rollback.ts';
import * as secretCreate from '../../cli/commands/secret/create.ts';
import * as secretDelete from '../../cli/commands/secret/delete.ts';
import * as secretLs from '../../cli/commands/secret/ls.ts';
import * as secretPrune from '../../cli/commands/secret/prune.ts';
import { environmentNameOf } from '../../cli/environment.ts';
import { OperationFailedError } from '../../cli/errors.ts';
import { controlDb } from '../../sql/control/database.ts';
import { ensureClusterKeys } from '../../sql/control/sealing.ts';
import { NotFoundError } from '../../sql/errors.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE, uniqueName } from '../support/docker.ts';
import { databaseText } from '../support/database-dump.ts';
import { waitFor } from '../support/wait.ts';
import { captured, lines, mp, type CapturedContext } from './harness.ts';

describeSwarm('secret and config versions: --deploy, prune, delete', () => {
  let db: TestDatabase;
  let root: string;
  let dir: string;
  let stack: string;
  let agent: RunningAgent;
  let agentPool: pg.Pool;
  const contexts: CapturedContext[] = [];
  const docker = connectDocker();
  const v1 = `first-${randomBytes(6).toString('hex')}`;
  const v2 = `second-${randomBytes(6).toString('hex')}`;
  const versions: Record<string, string> = {};
  const agentLog: string[] = [];

  function ctx(): CapturedContext {
    const c = captured(db.url);
    contexts.push(c);
    return c;
  }
  const stdin = (text: string): secretCreate.SecretInput => ({ stdin: Readable.from([Buffer.from(text)]) });
  const secretOpts = (o: Partial<secretCreate.Options>): secretCreate.Options => ({ env: dir, name: 'db_password', for: [], deploy: false, detach: false, ...o });
  const operations = async (): Promise<number> => (await db.pool.query<{ n: number }>(`select count(*)::int n from mp.operations`)).rows[0]!.n;
  const swarmSecrets = async (): Promise<string[]> =>
    (await docker.listSecrets({ label: [MANAGED_LABEL] })).map((s) => s.name).filter((n) => n.startsWith(`${stack}_`)).sort();
  const swarmConfigs = async (): Promise<string[]> =>
    (await docker.listConfigs({ label: [MANAGED_LABEL] })).map((s) => s.name).filter((n) => n.startsWith(`${stack}_`)).sort();

  /** What the service's running container reads at `path` now. */
  async function reads(path: string): Promise<string> {
    const running = await docker.api.listContainers({ filters: { label: [`com.docker.swarm.service.name=${stack}_api`], status: ['running'] } });
    const seen = await Promise.all(
      running.map((c) => promisify(execFile)('docker', ['exec', c.Id, 'cat', path]).then((r) => r.stdout, () => '')),
    );
    // While a rolling update replaces the task, the old and the new container both run for a moment.
    return seen.length === 1 ? seen[0]! : '';
  }
  const waitReads = (path: string, expected: string): Promise<string> =>
    waitFor(`the service reads ${expected.slice(0, 6)}... from ${path}`, async () => ((await reads(path)) === expected ? expected : undefined), { timeoutMs: 60_000, intervalMs: 500 });

  beforeAll(async () => {
    db = await freshDatabase({ poolSize: 6 });
    root = await mkdtemp(join(tmpdir(), 'mp-secret-life-'));
    stack = uniqueName('sl').replace(/-/g, '');
    dir = join(root, stack);
    await mkdir(dir);
    await writeFile(join(dir, 'minipaas.yaml'), `project:\n  files: [compose.yaml]\nstack: ${stack}\ndeploy:\n  timeout: 90\n  stable: 1\n`);
    await writeFile(join(dir, 'compose.yaml'), `services:\n  api:\n    image: ${LAB_BUSYBOX_IMAGE}\n    command: ["sleep", "3600"]\n`);
    await db.pool.query(`select mp.environment_create($1)`, [environmentNameOf(dir)]);
    const { keys } = await ensureClusterKeys(controlDb(db.pool), join(root, 'cluster.key'));
    agentPool = new pg.Pool({ connectionString: db.url, max: 6 });
    const line = (level: string) => (m: string, d?: object) => void agentLog.push(`${level} ${m} ${d ? JSON.stringify(d) : ''}`);
    agent = await startAgent({
      pool: agentPool,
      docker,
      name: `secret-life-${randomBytes(3).toString('hex')}`,
      pollIntervalMs: 200,
      heartbeatMs: 500,
      clusterKeys: keys,
      log: { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') },
    });
  });

  afterAll(async () => {
    await agent?.stop();
    await agentPool?.end();
    await Promise.all(contexts.map((c) => c.close()));
    const label = [`${STACK_NAMESPACE_LABEL}=${stack}`];
    for (const s of await docker.listServices({ label })) await docker.removeService(s).catch(() => {});
    await waitFor('tasks gone', async () => (await docker.listTasks({ label })).length === 0, { timeoutMs: 30_000, intervalMs: 250 }).catch(() => {});
    for (const n of await docker.listNetworks({ label })) await docker.removeNetwork(n).catch(() => {});
    for (const s of await docker.listSecrets({ label: [MANAGED_LABEL] })) if (s.name.startsWith(`${stack}_`)) await docker.removeSecret(s).catch(() => {});
    for (const c of await docker.listConfigs({ label: [MANAGED_LABEL] })) if (c.name.startsWith(`${stack}_`)) await docker.removeConfig(c).catch(() => {});
    await db?.drop();
    await rm(root, { recursive: true, force: true });
  }, 120_000);

  it('created --for the service and deployed: it reads the secret and the config', async () => {
    const s = ctx();
    await secretCreate.runWith(s, secretOpts({ for: ['api'] }), stdin(v1));
    versions.s1 = /version ([0-9a-f]{12})/.exec(s.out())![1]!;
    await writeFile(join(root, 'app.json'), '{"release": 1}\n');
    const c = ctx();
    await configCreate.run(c, { env: dir, name: 'app.json', file: join(root, 'app.json'), for: ['api'], deploy: false, detach: false });
    versions.c1 = /version ([0-9a-f]{12})/.exec(c.out())![1]!;
    await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    await waitReads('/run/secrets/db_password', v1);
    await waitReads('/app.json', '{"release": 1}\n');
  }, 180_000);

  it('create --deploy rolls the services that use it onto the new version at once', async () => {
    const s = ctx();
    await secretCreate.runWith(s, secretOpts({ for: ['api'], deploy: true }), stdin(`${v2}\n`));
    versions.s2 = /version ([0-9a-f]{12})/.exec(s.out())![1]!;
    expect(s.out()).toMatch(/secret\.create succeeded/);
    expect(s.out()).toMatch(/operation \d+ deploy succeeded/);
    expect(s.out()).not.toContain('the next `mp deploy');
    // The deploy ends once the new task runs; the old container may take a moment more to stop.
    await waitReads('/run/secrets/db_password', v2);

    await writeFile(join(root, 'app.json'), '{"release": 2}\n');
    const c = ctx();
    await configCreate.run(c, { env: dir, name: 'app.json', file: join(root, 'app.json'), for: ['api'], deploy: true, detach: false });
    versions.c2 = /version ([0-9a-f]{12})/.exec(c.out())![1]!;
    expect(c.out()).toMatch(/operation \d+ deploy succeeded/);
    await waitReads('/app.json', '{"release": 2}\n');
    expect(await reads('/run/secrets/db_password')).toBe(v2);
  }, 240_000);

  it('mp rollback to the first release brings the old value back; a deploy of the files then the new one', async () => {
    const r = ctx();
    await rollback.run(r, { env: dir, to: 1, detach: false });
    expect(r.out()).toMatch(/succeeded/);
    await waitReads('/run/secrets/db_password', v1);
    await waitReads('/app.json', '{"release": 1}\n');
    await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    await waitReads('/run/secrets/db_password', v2);
    await waitReads('/app.json', '{"release": 2}\n');
  }, 240_000);

  it('bad input enqueues nothing: an unknown name (near miss), an unknown version, --keep 0, a malformed version', async () => {
    const before = await operations();
    const typo = await secretDelete.run(ctx(), { env: dir, name: 'db_pasword', detach: false }).catch((e: unknown) => e);
    expect(typo).toBeInstanceOf(NotFoundError);
    expect((typo as Error).message).toBe(`secret 'db_pasword' of environment ${environmentNameOf(dir)} has no live version to delete (did you mean 'db_password'?); secrets: db_password`);
    expect((typo as NotFoundError).hint).toBe(`\`mp secret delete --env ${dir} --name db_password\``);
    const noVersion = await secretDelete.run(ctx(), { env: dir, name: 'db_password', version: ['0123456789ab'], detach: false }).catch((e: unknown) => e);
    expect((noVersion as Error).message).toBe(`secret 'db_password' has no live version 0123456789ab; its versions: ${[versions.s1, versions.s2].sort().join(', ')}`);
    const configTypo = await configDelete.run(ctx(), { env: dir, name: 'app.jsn', detach: false }).catch((e: unknown) => e);
    expect((configTypo as Error).message).toMatch(/^config 'app\.jsn' of environment .* \(did you mean 'app\.json'\?\); configs: app\.json$/);

    const keep0 = await mp(['secret', 'prune', '--env', dir, '--keep', '0', '--delete'], db.url);
    expect(keep0.code).toBe(2);
    expect(lines(keep0.stderr)[0]).toMatch(/^error: invalid input for `mp secret prune`/);
    expect(keep0.stderr).toMatch(/--keep/);
    const badVersion = await mp(['config', 'delete', '--env', dir, '--name', 'app.json', '--version', 'v1'], db.url);
    expect(badVersion.code).toBe(2);
    expect(badVersion.stderr).toContain('a version is 12 hex characters');
    const bin = await mp(['secret', 'delete', '--env', dir, '--name', 'db_pasword'], db.url);
    expect(bin.code).toBe(3);
    expect(lines(bin.stderr)[0]).toMatch(/did you mean 'db_password'\?/);
    expect(await operations()).toBe(before);
  }, 60_000);

  it('prune lists only versions the last --keep releases do not use, enqueues nothing; --delete removes their Swarm objects', async () => {
    const s1 = `${stack}_db_password_${versions.s1}`;
    const s2 = `${stack}_db_password_${versions.s2}`;
    const c1 = `${stack}_app.json_${versions.c1}`;
    const c2 = `${stack}_app.json_${versions.c2}`;
    expect(await swarmSecrets()).toEqual([s1, s2].sort());
    expect(await swarmConfigs()).toEqual([c1, c2].sort());
    const before = await operations();
    // Releases: 1 (s1, c1), 2 (s2, c1), 3 (s2, c2), 4 (rollback to 1), 5 (s2, c2).
    const all = ctx();
    await secretPrune.run(all, { env: dir, keep: 5, delete: false, detach: false });
    expect(all.out()).toContain('nothing to prune: every secret version of');
    const keep2 = ctx();
    await configPrune.run(keep2, { env: dir, keep: 2, delete: false, detach: false });
    expect(keep2.out()).toContain('nothing to prune: every config version');
    const keep1 = ctx();
    await secretPrune.run(keep1, { env: dir, keep: 1, delete: false, detach: false });
    expect(keep1.out()).toMatch(new RegExp(`db_password\\s+${versions.s1}\\s+${s1}`));
    expect(keep1.out()).not.toContain(versions.s2);
    expect(keep1.out()).toContain(`\`mp secret prune --env ${dir} --delete\` deletes them`);
    expect(await operations()).toBe(before);

    const del = ctx();
    await secretPrune.run(del, { env: dir, keep: 1, delete: true, detach: false });
    expect(del.out()).toMatch(/pruned 1 secret version; operation \d+/);
    expect(del.out()).toMatch(/secret\.remove succeeded/);
    expect(await swarmSecrets()).toEqual([s2]);
    const cdel = ctx();
    await configPrune.run(cdel, { env: dir, keep: 1, delete: true, detach: false });
    expect(cdel.out()).toMatch(/pruned 1 config version/);
    expect(await swarmConfigs()).toEqual([c2]);
    const ls = ctx();
    await secretLs.run(ls, { env: dir, all: true });
    expect(ls.out()).toMatch(new RegExp(`db_password\\s+${versions.s1}\\s+false\\s+${s1}.*\\d{4}-\\d\\d-\\d\\d`));
    // The service still reads the current one.
    expect(await reads('/run/secrets/db_password')).toBe(v2);
  }, 120_000);

  it('a deploy that fails on purpose printing the secret (plain and base64): the value appears nowhere afterwards', async () => {
    const compose = join(dir, 'compose.yaml');
    const good = await readFile(compose, 'utf8');
    await writeFile(compose, good.replace(/command: .*/, 'command: ["sh", "-c", "cat /run/secrets/db_password; echo; base64 /run/secrets/db_password; sleep 1; exit 3"]'));
    try {
      const err = await rollout.run(ctx(), { env: dir, dryRun: false, detach: false }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OperationFailedError);
      // The deploy quotes the task's last log lines, redacted.
      expect((err as Error).message).toContain('[redacted]');
    } finally {
      await writeFile(compose, good);
    }
    const needles = [v1, v2].flatMap((v) => [v, Buffer.from(v).toString('base64').replace(/=+$/, ''), Buffer.from(`${v}\n`).toString('base64').replace(/=+$/, '')]);
    const haystacks: Record<string, string> = {};
    // Every row of every table, and a full pg_dump where the installed one can read this server (test/support/database-dump.ts).
    const dump = await databaseText(db.pool, db.url);
    expect(dump.tables).toEqual(expect.arrayContaining(['mp.secrets', 'mp.releases', 'mp.operations', 'mp.stream_events']));
    if (dump.dumped) expect(dump.texts.pg_dump).toMatch(/^COPY mp\.secrets /m);
    Object.assign(haystacks, dump.texts);
    haystacks['agent log'] = agentLog.join('\n');
    haystacks['CLI output'] = contexts.map((c) => c.out() + c.err()).join('\n');
    for (const { id } of (await db.pool.query<{ id: string }>(`select id from mp.operations order by id`)).rows) {
      const c = ctx();
      await show.run(c, { id });
      haystacks[`mp ops show ${id}`] = c.out();
    }
    expect(haystacks['agent log']).toContain('agent registered');
    // The agent logs how the failed deploy ended, with the task's lines it quotes redacted there too.
    expect(haystacks['agent log']).toMatch(/^warn operation \d+ failed .*"kind":"deploy".*\[redacted\]/m);
    for (const [where, text] of Object.entries(haystacks)) {
      for (const needle of needles) expect(text.includes(needle), `${where} contains a secret (${needle.length} chars)`).toBe(false);
    }
  }, 240_000);

  it('a delete of what a service still uses keeps it in Swarm and names the service', async () => {
    const s2 = `${stack}_db_password_${versions.s2}`;
    const err = await secretDelete.run(ctx(), { env: dir, name: 'db_password', detach: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OperationFailedError);
    expect((err as Error).message).toContain(`secret '${s2}' is used by ${stack}_api; not removed`);
    expect(await swarmSecrets()).toEqual([s2]);
    const cerr = await configDelete.run(ctx(), { env: dir, name: 'app.json', detach: false }).catch((e: unknown) => e);
    expect((cerr as Error).message).toContain(`config '${stack}_app.json_${versions.c2}' is used by ${stack}_api; not removed`);
    // The failed deploy before this one may still be rolling back: wait until one task runs, reading v2.
    expect(await waitReads('/run/secrets/db_password', v2)).toBe(v2);
  }, 120_000);
});
