// The agent as a Swarm global service from the locally built image (images/agent/build.sh), installed
// by `mp agent install`'s run(), executing an operation against the lab's Swarm.
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDocker } from '../../agent/docker/engine.ts';
import {
  agentServiceSpec,
  planInstall,
  ROLE_LABEL,
  secretName,
  SERVICE_LABEL,
  SPEC_HASH_LABEL,
  type AgentServiceOptions,
} from '../../agent/global-service.ts';
import * as install from '../../cli/commands/agent/install.ts';
import { ConflictError, NotFoundError } from '../../sql/errors.ts';
import { controlDb, getOperation, submitOperation } from '../../sql/control/database.ts';
import { captured } from '../cli/harness.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm, uniqueName } from '../support/docker.ts';
import { waitFor } from '../support/wait.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const IMAGE = 'mp/agent:latest';

const opts = (over: Partial<AgentServiceOptions> = {}): AgentServiceOptions => ({
  service: 'mp-agent',
  image: IMAGE,
  databaseUrl: 'postgres://agent:s3cret@127.0.0.1:5432/mp',
  network: 'host',
  ...over,
});

type ContainerSpec = NonNullable<Dockerode.ContainerTaskSpec['ContainerSpec']>;
const containerSpecOf = (spec: Dockerode.ServiceSpec): ContainerSpec => (spec.TaskTemplate as Dockerode.ContainerTaskSpec).ContainerSpec!;

describe('agent service plan', () => {
  const secret = secretName('mp-agent', opts().databaseUrl);

  it('names the secret after the service and the URL, never containing it', () => {
    expect(secret).toMatch(/^mp_database_url_[0-9a-f]{12}$/);
    expect(secretName('mp-agent', 'postgres://other')).not.toBe(secret);
    expect(secretName('other-agent', opts().databaseUrl)).not.toBe(secret);
  });

  it('creates the secret and a global service reading the URL from it', () => {
    const actions = planInstall(opts(), { imageId: 'sha256:1', secrets: [] });
    expect(actions.map((a) => [a.type, a.name])).toEqual([
      ['create-secret', secret],
      ['create-service', 'mp-agent'],
    ]);
    const spec = (actions[1] as { spec: Dockerode.ServiceSpec }).spec;
    expect(spec.Mode).toEqual({ Global: {} });
    const c = containerSpecOf(spec);
    expect(c.Env).toEqual(['DATABASE_URL_FILE=/run/secrets/mp_database_url', 'MP_AGENT_NAME={{.Node.Hostname}}']);
    expect(c.Mounts).toEqual([{ Type: 'bind', Source: '/var/run/docker.sock', Target: '/var/run/docker.sock' }]);
    expect(c.Secrets).toEqual([{ SecretName: secret, SecretID: '', File: { Name: 'mp_database_url', UID: '0', GID: '0', Mode: 0o400 } }]);
    expect((spec.TaskTemplate as Dockerode.ContainerTaskSpec).Networks).toEqual([{ Target: 'host' }]);
    expect(JSON.stringify(actions)).not.toContain('s3cret');
  });

  it('changes nothing when the same install ran before', () => {
    const spec = agentServiceSpec(opts(), { imageId: 'sha256:1', secretName: secret });
    const service = { id: 's1', name: 'mp-agent', version: 3, labels: spec.Labels! };
    const actions = planInstall(opts(), { imageId: 'sha256:1', service, secrets: [{ id: 'x1', name: secret, labels: {} }] });
    expect(actions).toEqual([
      { type: 'keep-secret', name: secret, id: 'x1' },
      { type: 'keep-service', part: 'all', name: 'mp-agent', id: 's1' },
    ]);
  });

  it('moves the service to a new secret for a new URL and removes the old one', () => {
    const oldSpec = agentServiceSpec(opts(), { imageId: 'sha256:1', secretName: secret });
    const service = { id: 's1', name: 'mp-agent', version: 3, labels: oldSpec.Labels! };
    const labels = { [ROLE_LABEL]: 'agent-database-url', [SERVICE_LABEL]: 'mp-agent' };
    const url = 'postgres://agent:new@10.0.0.5/mp';
    const actions = planInstall(opts({ databaseUrl: url }), { imageId: 'sha256:1', service, secrets: [{ id: 'x1', name: secret, labels }] });
    expect(actions.map((a) => [a.type, a.name])).toEqual([
      ['create-secret', secretName('mp-agent', url)],
      ['update-service', 'mp-agent'],
      ['remove-secret', secret],
    ]);
    expect(actions[1]).toMatchObject({ id: 's1', version: 3 });
  });

  it('updates the service when the image under the tag was rebuilt', () => {
    const spec = agentServiceSpec(opts(), { imageId: 'sha256:1', secretName: secret });
    const service = { id: 's1', name: 'mp-agent', version: 3, labels: spec.Labels! };
    const actions = planInstall(opts(), { imageId: 'sha256:2', service, secrets: [{ id: 'x1', name: secret, labels: {} }] });
    expect(actions.map((a) => a.type)).toEqual(['keep-secret', 'update-service']);
  });

  it('refuses to take over a service it did not create', () => {
    const service = { id: 's1', name: 'mp-agent', version: 3, labels: {} };
    expect(() => planInstall(opts(), { imageId: 'sha256:1', service, secrets: [] })).toThrow(ConflictError);
    expect(() => planInstall(opts(), { imageId: 'sha256:1', service, secrets: [] })).toThrow(/not created by `mp agent install`/);
  });
});

describeSwarm('the agent as a Swarm global service', () => {
  let db: TestDatabase;
  const docker = connectDocker();
  const service = uniqueName('agent');
  let nodeName = '';

  beforeAll(async () => {
    // Builds only when the sources changed since the image was built (.ci/lab.sh has built it in CI).
    const t0 = Date.now();
    const { stdout } = await promisify(execFile)(join(ROOT, 'images', 'agent', 'build.sh'), [], { cwd: ROOT, timeout: 300_000 });
    console.log(`${stdout.trim()} (${Date.now() - t0} ms)`);
    db = await freshDatabase();
    nodeName = String(((await docker.api.info()) as { Name: string }).Name);
  }, 300_000);

  afterAll(async () => {
    const removeQuietly = async (fn: () => Promise<void>) => fn().catch((err: unknown) => {
      if (!(err instanceof NotFoundError)) throw err;
    });
    const workers = (await docker.listServices({ name: [`${service}-workers`] })).find((s) => s.name === `${service}-workers`);
    if (workers) await removeQuietly(() => docker.removeService(workers));
    const svc = (await docker.listServices({ name: [service] })).find((s) => s.name === service);
    if (svc) {
      await removeQuietly(() => docker.removeService(svc));
      await waitFor('the agent tasks to be gone', async () => (await docker.listTasks({ serviceIds: [svc.id] })).length === 0, {
        timeoutMs: 60_000,
        intervalMs: 250,
      });
    }
    for (const s of await docker.listSecrets({ label: [`${SERVICE_LABEL}=${service}`] })) await removeQuietly(() => docker.removeSecret(s));
    await db?.drop();
  }, 120_000);

  it('installs the global service, whose agent registers under the node hostname and executes an operation', async () => {
    const ctx = captured(db.url);
    await install.run(ctx, install.options.parse({ databaseUrlForAgents: db.url, serviceName: service }));
    await ctx.close();
    const secret = secretName(service, db.url);
    expect(ctx.out()).toContain(`secret ${secret}: created\n`);
    expect(ctx.out()).toContain(`service ${service}: created (global on the managers, with the cluster key; image ${IMAGE}; network host; URL from /run/secrets/mp_database_url)\n`);
    expect(ctx.out()).toContain(`service ${service}-workers: created (global on the workers, without the cluster key)\n`);

    // The secret holds the URL; the spec only says where to read it.
    expect((await docker.listSecrets({ name: [secret] })).map((s) => s.name)).toEqual([secret]);
    const svc = await docker.inspectService(service);
    expect(svc.mode).toBe('global');
    // The cluster key is only in the managers' service; the workers' has no task on this one-manager swarm.
    const workersSvc = await docker.inspectService(`${service}-workers`);
    expect(JSON.stringify(workersSvc.spec)).not.toContain('mp_cluster_key');
    expect(JSON.stringify(svc.spec)).toContain('mp_cluster_key');
    const env = containerSpecOf(svc.spec).Env ?? [];
    expect(env).toContain('DATABASE_URL_FILE=/run/secrets/mp_database_url');
    expect(env.filter((e) => e.startsWith('DATABASE_URL='))).toEqual([]);
    expect(JSON.stringify(svc.spec)).not.toContain(new URL(db.url).password);

    const node = await waitFor(
      `the agent of node ${nodeName} to be alive in mp.nodes_v`,
      async () => (await db.pool.query(`select name, swarm_role from mp.nodes_v where alive and name = $1`, [nodeName])).rows[0],
      { timeoutMs: 90_000, intervalMs: 250 },
    );
    expect(node).toEqual({ name: nodeName, swarm_role: 'manager' });

    const kdb = controlDb(db.pool);
    const id = await submitOperation(kdb, { kind: 'docker.info', payload: {}, options: { target: `node:${nodeName}` } });
    const op = await waitFor(
      `operation ${id} to end`,
      async () => {
        const o = await getOperation(kdb, id);
        return o && ['succeeded', 'failed', 'cancelled'].includes(o.status) ? o : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(op).toMatchObject({ status: 'succeeded', node: nodeName });
    expect(op.result).toMatchObject({ swarm: { state: 'active', manager: true } });

    // Installing the same thing again changes nothing.
    const again = captured(db.url, { json: true });
    await install.run(again, install.options.parse({ databaseUrlForAgents: db.url, serviceName: service }));
    await again.close();
    expect(JSON.parse(again.out())).toMatchObject({
      secret: { name: secret, action: 'unchanged' },
      service: { name: service, action: 'unchanged' },
      workers: { name: `${service}-workers`, action: 'unchanged' },
      removedSecrets: [],
    });
    // Not the object version: Swarm's allocator bumps it by itself after a create. No update means the
    // same spec and no rolling update ever started.
    const after = await docker.inspectService(service);
    expect(after.spec).toEqual(svc.spec);
    expect(after.updateStatus).toBeUndefined();
    expect(svc.labels[SPEC_HASH_LABEL]).toMatch(/^[0-9a-f]{16}$/);
  }, 180_000);
});
