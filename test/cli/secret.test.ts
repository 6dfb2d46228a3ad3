// `mp secret` and `mp config` end to end: the CLI seals, a real agent on the lab Swarm opens and
// creates versioned Swarm secrets, `--for` patches the Compose files; bad input is one clear error with
// nothing written; and the plaintext appears nowhere: not in any table of the database, the agent's
// log, the CLI's output, `mp ops show`, or the mp_events stream (plain or base64).
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import { connectDocker } from '../../agent/docker/engine.ts';
import { MANAGED_LABEL } from '../../agent/executors/secret-create.ts';
import * as configCreate from '../../cli/commands/config/create.ts';
import * as show from '../../cli/commands/ops/show.ts';
import * as submit from '../../cli/commands/ops/submit.ts';
import * as secretCreate from '../../cli/commands/secret/create.ts';
import * as secretLs from '../../cli/commands/secret/ls.ts';
import * as rotateKey from '../../cli/commands/secret/rotate-key.ts';
import { environmentNameOf } from '../../cli/environment.ts';
import { OperationFailedError } from '../../cli/errors.ts';
import { controlDb } from '../../sql/control/database.ts';
import { ensureClusterKeys, loadClusterKeys, openValue } from '../../sql/control/sealing.ts';
import { ConfigError, NotFoundError } from '../../sql/errors.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE, uniqueName } from '../support/docker.ts';
import { databaseText } from '../support/database-dump.ts';
import { captured, lines, mp, spawnMp, type CapturedContext } from './harness.ts';

const COMPOSE = `# The app.
services:
  api:   # the API
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sleep", "3600"]

  worker:
    image: '${LAB_BUSYBOX_IMAGE}'
`;
const BUILD = `services:
  web:
    image: ${LAB_BUSYBOX_IMAGE}
`;

describeSwarm('mp secret and mp config with a real agent', () => {
  let db: TestDatabase;
  let root: string;
  let dir: string;
  let env: string;
  let stack: string;
  let agent: RunningAgent;
  let agentPool: pg.Pool;
  const agentLog: string[] = [];
  const contexts: CapturedContext[] = [];
  const docker = connectDocker();
  const value = `s3cret-${randomBytes(6).toString('hex')}`;
  const value2 = `rotated-${randomBytes(6).toString('hex')}`;

  function ctx(): CapturedContext {
    const c = captured(db.url);
    contexts.push(c);
    return c;
  }
  const stdin = (text: string): secretCreate.SecretInput => ({ stdin: Readable.from([Buffer.from(text)]) });
  const opts = (o: Partial<secretCreate.Options>): secretCreate.Options => ({ env: dir, name: 'db_password', for: [], deploy: false, detach: false, ...o });

  async function written(): Promise<{ ops: number; secrets: number; configs: number; compose: string; build: string }> {
    const { rows } = await db.pool.query<{ ops: number; secrets: number; configs: number }>(
      `select (select count(*)::int from mp.operations) ops, (select count(*)::int from mp.secrets) secrets, (select count(*)::int from mp.configs) configs`,
    );
    return { ...rows[0]!, compose: await readFile(join(dir, 'compose.yaml'), 'utf8'), build: await readFile(join(dir, 'compose.build.yaml'), 'utf8') };
  }

  beforeAll(async () => {
    db = await freshDatabase({ poolSize: 6 });
    root = await mkdtemp(join(tmpdir(), 'mp-secret-'));
    stack = uniqueName('sec').replace(/-/g, '');
    dir = join(root, stack);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir);
    await writeFile(join(dir, 'minipaas.yaml'), `project:\n  files: [compose.yaml, compose.build.yaml]\nstack: ${stack}\n`);
    await writeFile(join(dir, 'compose.yaml'), COMPOSE);
    await writeFile(join(dir, 'compose.build.yaml'), BUILD);
    env = environmentNameOf(dir);
    await db.pool.query(`select mp.environment_create($1)`, [env]);
    const { keys } = await ensureClusterKeys(controlDb(db.pool), join(root, 'cluster.key'));
    agentPool = new pg.Pool({ connectionString: db.url, max: 6 });
    const line = (level: string) => (m: string, d?: object) => void agentLog.push(`${level} ${m} ${d ? JSON.stringify(d) : ''}`);
    agent = await startAgent({
      pool: agentPool,
      docker,
      name: `secret-test-${randomBytes(3).toString('hex')}`,
      pollIntervalMs: 500,
      heartbeatMs: 1000,
      clusterKeys: keys,
      log: { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') },
    });
  });

  afterAll(async () => {
    await agent?.stop();
    await agentPool?.end();
    await Promise.all(contexts.map((c) => c.close()));
    for (const s of await docker.listSecrets({ label: [MANAGED_LABEL] })) if (s.name.startsWith(`${stack}_`)) await docker.removeSecret(s).catch(() => {});
    for (const c of await docker.listConfigs({ label: [MANAGED_LABEL] })) if (c.name.startsWith(`${stack}_`)) await docker.removeConfig(c).catch(() => {});
    await db?.drop();
    await rm(root, { recursive: true, force: true });
  });

  it('bad input is one clear error and writes nothing: empty stdin, a name Swarm refuses, an undefined --for service, a missing file', async () => {
    const before = await written();
    const empty = await secretCreate.runWith(ctx(), opts({}), stdin('\n')).catch((e: unknown) => e);
    expect(empty).toBeInstanceOf(ConfigError);
    expect((empty as Error).message).toBe("the value of secret 'db_password' is empty (nothing on stdin); nothing was written");

    const badName = await secretCreate.runWith(ctx(), opts({ name: 'db password!' }), stdin(value)).catch((e: unknown) => e);
    expect(badName).toBeInstanceOf(ConfigError);
    expect((badName as Error).message).toMatch(/^secret name 'db password!' is not a name Swarm accepts/);
    expect((badName as ConfigError).hint).toBe('use e.g. --name db_password');

    const badFor = await secretCreate.runWith(ctx(), opts({ for: ['api', 'wroker'] }), stdin(value)).catch((e: unknown) => e);
    expect(badFor).toBeInstanceOf(ConfigError);
    expect((badFor as Error).message).toBe(`service 'wroker' is not defined in ${join(dir, 'compose.yaml')} or ${join(dir, 'compose.build.yaml')}; defined services: api, web, worker`);
    expect((badFor as ConfigError).hint).toBe("did you mean 'worker'?");

    const missing = await configCreate.run(ctx(), { env: dir, name: 'app.json', file: join(dir, 'nope.json'), for: ['api'], deploy: false, detach: false }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect((missing as Error).message).toBe(`config file ${join(dir, 'nope.json')} does not exist; nothing was written`);

    await chmod(join(dir, 'compose.yaml'), 0o444);
    const readOnly = await secretCreate.runWith(ctx(), opts({ for: ['api', 'web'] }), stdin(value)).catch((e: unknown) => e);
    await chmod(join(dir, 'compose.yaml'), 0o644);
    expect((readOnly as Error).message).toBe(`${join(dir, 'compose.yaml')} is read-only (mode 0444); nothing was written`);

    // Through the binary: one line, one hint, a non-zero exit (stdin is /dev/null: empty).
    const bin = spawnMp(['secret', 'create', '--env', dir, '--name', 'db_password'], { env: { DATABASE_URL: db.url } });
    expect(await bin.exited).toBe(2);
    expect(lines(bin.err())).toEqual([
      "error: the value of secret 'db_password' is empty (nothing on stdin); nothing was written",
      'hint: pipe the value in, e.g. `echo s3cret | mp secret create ...`, or pass --from-file',
    ]);
    const noFile = await mp(['secret', 'create', '--env', dir, '--name', 'db_password', '--from-file', join(dir, 'nope')], db.url);
    expect(noFile.code).toBe(3);
    expect(lines(noFile.stderr)[0]).toBe(`error: --from-file ${join(dir, 'nope')} does not exist; nothing was written`);
    expect(await written()).toEqual(before);
  });

  it('creates the versioned Swarm secret through the agent, patches the first file defining each service, and twice changes nothing', async () => {
    const c = ctx();
    await secretCreate.runWith(c, opts({ for: ['api', 'worker', 'web'] }), stdin(`${value}\n`));
    const out = c.out();
    const version = /version ([0-9a-f]{12})/.exec(out)![1]!;
    const swarmName = `${stack}_db_password_${version}`;
    expect(out).toContain(`operation `);
    expect(out).toMatch(/secret\.create succeeded/);
    expect((await docker.listSecrets({ name: [swarmName] })).map((s) => s.name)).toContain(swarmName);
    const compose = await readFile(join(dir, 'compose.yaml'), 'utf8');
    expect(compose.startsWith('# The app.\nservices:\n  api:   # the API\n')).toBe(true);
    expect(compose).toContain('    secrets:\n      - db_password\n');
    expect(compose).toContain('\nsecrets:\n  db_password:\n    external: true\n    x-minipaas: managed\n');
    expect(await readFile(join(dir, 'compose.build.yaml'), 'utf8')).toContain('  web:\n    image: ');
    expect(await readFile(join(dir, 'compose.build.yaml'), 'utf8')).toContain('x-minipaas: managed');

    const filesBefore = await written();
    const again = ctx();
    await secretCreate.runWith(again, opts({ for: ['api', 'worker', 'web'] }), stdin(value));
    expect(again.out()).toContain(`version ${version} stored sealed (this value was stored before: made current again)`);
    const filesAfter = await written();
    expect([filesAfter.compose, filesAfter.build]).toEqual([filesBefore.compose, filesBefore.build]);
    expect(filesAfter.secrets).toBe(filesBefore.secrets);

    const ls = ctx();
    await secretLs.run(ls, { env: dir, all: false });
    expect(ls.out()).toMatch(new RegExp(`db_password\\s+${version}\\s+true\\s+${swarmName}`));
  });

  it('a config from a file, --for a service of the second file', async () => {
    await writeFile(join(dir, 'app.json'), '{"feature": true}\n');
    const c = ctx();
    await configCreate.run(c, { env: dir, name: 'app.json', file: join(dir, 'app.json'), for: ['web'], deploy: false, detach: false });
    expect(c.out()).toMatch(/config app\.json version [0-9a-f]{12} stored; operation \d+ creates/);
    expect(await readFile(join(dir, 'compose.build.yaml'), 'utf8')).toContain('    configs:\n      - app.json\n');
  });

  it('the agent redacts a value a job prints; rotate-key re-seals every value and destroys the old private key', async () => {
    await secretCreate.runWith(ctx(), opts({ name: 'api_token' }), stdin(value2));
    // A job of the environment that fails printing the secret (the command holds it reversed, so the
    // payload itself does not carry it): its error quotes the last output lines.
    const reversed = [...value2].reverse().join('');
    const failing = ctx();
    const err = await submit
      .run(failing, { kind: 'job.run', env, payload: JSON.stringify({ image: LAB_BUSYBOX_IMAGE, command: ['sh', '-c', `echo ${reversed} | rev; exit 3`] }), detach: false, dryRun: false })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OperationFailedError);
    const opId = /operation (\d+) failed/.exec((err as Error).message)![1]!;
    const { rows: exit } = await db.pool.query<{ logs: string[] }>(
      `select payload -> 'data' -> 'logs' as logs from mp.operation_events($1) where payload ->> 'step' = 'exit'`,
      [opId],
    );
    expect(exit[0]!.logs).toContain('[redacted]');

    const keyFile = join(root, 'cluster.key');
    const oldKeys = await loadClusterKeys(keyFile);
    const r = ctx();
    await rotateKey.run(r, { detach: false });
    expect(r.out()).toMatch(/re-sealed to key/);
    const newKeys = await loadClusterKeys(keyFile);
    expect(newKeys.keys).toHaveLength(1);
    expect(newKeys.keys[0]!.publicKey).not.toBe(oldKeys.keys[0]!.publicKey);
    const { rows } = await db.pool.query<{ sealed: string }>(`select sealed from mp.secrets where name = 'api_token'`);
    expect(Buffer.from(await openValue(newKeys, rows[0]!.sealed)).toString()).toBe(value2);
    await expect(openValue(oldKeys, rows[0]!.sealed)).rejects.toThrow(/cannot be opened/);
  });

  it('the plaintext appears nowhere: every table of the database, the agent log, the CLI output, mp ops show, mp_events', async () => {
    const needles = [value, value2].flatMap((v) => [v, Buffer.from(v).toString('base64').replace(/=+$/, ''), Buffer.from(v).toString('hex')]);
    const haystacks: Record<string, string> = {};
    // Every row of every table, and a full pg_dump where the installed one can read this server (test/support/database-dump.ts).
    const dump = await databaseText(db.pool, db.url);
    expect(dump.tables).toEqual(expect.arrayContaining(['mp.secrets', 'mp.operations', 'mp.stream_events', 'mp.jobs']));
    if (dump.dumped) expect(dump.texts.pg_dump).toMatch(/^COPY mp\.secrets /m);
    Object.assign(haystacks, dump.texts);
    haystacks['agent log'] = agentLog.join('\n');
    haystacks['CLI output'] = contexts.map((c) => c.out() + c.err()).join('\n');
    const { rows: ops } = await db.pool.query<{ id: string }>(`select id from mp.operations order by id`);
    expect(ops.length).toBeGreaterThan(4);
    for (const op of ops) {
      const c = ctx();
      await show.run(c, { id: op.id });
      haystacks[`mp ops show ${op.id}`] = c.out();
    }
    const { rows: events } = await db.pool.query<{ p: string }>(`select payload::text p from mp.read('mp_events', 0, 100000)`);
    haystacks.mp_events = events.map((e) => e.p).join('\n');
    expect(haystacks['agent log']).toContain('agent registered');
    for (const [where, text] of Object.entries(haystacks)) {
      for (const needle of needles) expect(text.includes(needle), `${where} contains a secret (${needle.length} chars)`).toBe(false);
    }
    expect(basename(dir)).toBe(stack);
  });
});
