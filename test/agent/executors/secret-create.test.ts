// secret.create / config.create / secret.remove: plans as data, and on the lab Swarm a sealed value
// becomes a Swarm secret a container reads, idempotently; the removal keeps what a service uses.
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { configCreate } from '../../../agent/executors/config-create.ts';
import { MANAGED_LABEL, planManagedCreate, secretCreate } from '../../../agent/executors/secret-create.ts';
import { planRemove, secretRemove } from '../../../agent/executors/secret-remove.ts';
import { Redactor } from '../../../agent/redact.ts';
import { controlDb } from '../../../sql/control/database.ts';
import { generateClusterKeys, openValue, registerClusterKey, sealValue, type ClusterKeys } from '../../../sql/control/sealing.ts';
import { createConfig, createSecret } from '../../../sql/control/secrets.ts';
import { ConflictError } from '../../../sql/errors.ts';
import { freshDatabase, type TestDatabase } from '../../support/database.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE, TEST_LABEL, useDockerScope } from '../../support/docker.ts';
import { waitFor } from '../../support/wait.ts';
import { recordingContext } from './recording-context.ts';

describe('managed object plans', () => {
  const p = { name: 'db_password', version: 'aaaaaaaaaaaa', swarmName: 'shop_db_password_aaaaaaaaaaaa' };
  it('create with the managed labels, keep an existing one, skip a deleted version', () => {
    expect(planManagedCreate('secret', p, { environment: 'prod', deleted: false, existing: null })).toEqual([
      {
        type: 'create',
        name: 'shop_db_password_aaaaaaaaaaaa',
        labels: { [MANAGED_LABEL]: 'secret', 'org.minipaas.environment': 'prod', 'org.minipaas.name': 'db_password', 'org.minipaas.version': 'aaaaaaaaaaaa' },
      },
    ]);
    expect(planManagedCreate('secret', p, { environment: 'prod', deleted: false, existing: { id: 'x', name: p.swarmName, labels: {} } })).toEqual([
      { type: 'keep', name: p.swarmName, id: 'x' },
    ]);
    expect(planManagedCreate('secret', p, { environment: 'prod', deleted: true, existing: null })).toEqual([{ type: 'skip-deleted', name: p.swarmName }]);
  });
  it('remove what is free, report what is gone or in use', () => {
    expect(
      planRemove({
        objects: [
          { name: 'a', id: '1', usedBy: [] },
          { name: 'b', id: null, usedBy: [] },
          { name: 'c', id: '3', usedBy: ['shop_api'] },
        ],
      }),
    ).toEqual([
      { type: 'remove', name: 'a', id: '1' },
      { type: 'gone', name: 'b' },
      { type: 'in-use', name: 'c', services: ['shop_api'] },
    ]);
  });
});

describeSwarm('secret.create on the lab Swarm', () => {
  const lab = useDockerScope();
  let db: TestDatabase;
  let keys: ClusterKeys;
  let keyId: string;
  const created: string[] = [];

  beforeAll(async () => {
    db = await freshDatabase({ poolSize: 4 });
    await db.pool.query(`select mp.environment_create('prod')`);
    keys = await generateClusterKeys();
    keyId = await registerClusterKey(controlDb(db.pool), keys.keys[0]!.publicKey);
  });
  afterEach(async () => {
    for (const name of created.splice(0)) {
      for (const s of (await lab.docker.listSecrets({ name: [name] })).filter((o) => o.name === name)) await lab.docker.removeSecret(s).catch(() => {});
      for (const c of (await lab.docker.listConfigs({ name: [name] })).filter((o) => o.name === name)) await lab.docker.removeConfig(c).catch(() => {});
    }
  });
  afterAll(async () => {
    await db.drop();
  });

  function agentContext(): ReturnType<typeof recordingContext> & { redactor: Redactor } {
    const redactor = new Redactor();
    const ctx = recordingContext(lab.docker);
    return Object.assign(ctx, {
      pool: db.pool,
      redactor,
      openSealed: async (sealed: string) => {
        const v = Buffer.from(await openValue(keys, sealed));
        redactor.add(v);
        return v;
      },
    });
  }

  /** What a container reads from /run/secrets/value (it prints it once, then sleeps until removed). */
  async function readInContainer(stack: string, secretName: string, secretId: string): Promise<string> {
    const id = await lab.docker.createService({
      Name: `${stack}_reader`,
      Labels: { 'com.docker.stack.namespace': stack, [TEST_LABEL]: '1' },
      TaskTemplate: {
        ContainerSpec: {
          Image: LAB_BUSYBOX_IMAGE,
          Command: ['sh', '-c', 'cat /run/secrets/value; echo; exec sleep 3600'],
          Secrets: [{ SecretID: secretId, SecretName: secretName, File: { Name: 'value', UID: '0', GID: '0', Mode: 0o400 } }],
          StopGracePeriod: 1_000_000_000,
        },
      },
      Mode: { Replicated: { Replicas: 1 } },
    });
    lab.track(id);
    return await waitFor(
      'the reader to print the secret',
      async () => (await lab.docker.serviceLogs({ id, name: `${stack}_reader` }, { tail: 10 })).join('\n').trim() || undefined,
      { timeoutMs: 60_000, intervalMs: 250 },
    );
  }

  it('opens the sealed value and creates the versioned Swarm secret that a container reads; again: kept', async () => {
    const stack = lab.stack('sec');
    const value = `pw-${randomBytes(8).toString('hex')}`;
    const swarmName = `${stack}_db_password_aaaaaaaaaaaa`;
    created.push(swarmName);
    const row = await createSecret(controlDb(db.pool), {
      environment: 'prod', name: 'db_password', version: 'aaaaaaaaaaaa', swarmName, sealed: await sealValue(keys.keys[0]!.publicKey, Buffer.from(value)), keyId,
    });
    const payload = { secret: Number(row.id), name: 'db_password', version: 'aaaaaaaaaaaa', swarmName };
    const ctx = agentContext();
    const first = await secretCreate.execute(ctx, payload);
    expect(first).toMatchObject({ name: swarmName, created: true });
    expect(JSON.stringify(ctx.steps)).not.toContain(value);
    const [secret] = (await lab.docker.listSecrets({ name: [swarmName] })).filter((s) => s.name === swarmName);
    expect(secret!.labels).toMatchObject({ [MANAGED_LABEL]: 'secret', 'org.minipaas.version': 'aaaaaaaaaaaa' });
    expect(await readInContainer(stack, swarmName, secret!.id)).toContain(value);
    // A second run (a resumed attempt, or the same value created again) finds it and changes nothing.
    const again = await secretCreate.execute(agentContext(), payload);
    expect(again).toEqual({ name: swarmName, id: secret!.id, created: false });
    expect(ctx.redactor.redact(`log: ${value}`)).toBe('log: [redacted]');
  });

  it('without a cluster key it fails with the reason; a config needs none', async () => {
    const stack = lab.stack('nokey');
    const swarmName = `${stack}_x_bbbbbbbbbbbb`;
    const row = await createSecret(controlDb(db.pool), { environment: 'prod', name: 'x', version: 'bbbbbbbbbbbb', swarmName, sealed: await sealValue(keys.keys[0]!.publicKey, Buffer.from('value-x')), keyId });
    const ctx = Object.assign(recordingContext(lab.docker), { pool: db.pool });
    const err = await secretCreate.execute(ctx, { secret: Number(row.id), name: 'x', version: 'bbbbbbbbbbbb', swarmName }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toBe('this agent holds no cluster key, so it cannot open the secret');

    const configName = `${stack}_app.json_cccccccccccc`;
    created.push(configName);
    const c = await createConfig(controlDb(db.pool), { environment: 'prod', name: 'app.json', version: 'cccccccccccc', swarmName: configName, data: Buffer.from('{"a":1}') });
    expect(await configCreate.execute(ctx, { config: Number(c.id), name: 'app.json', version: 'cccccccccccc', swarmName: configName })).toMatchObject({ created: true });
    const [cfg] = (await lab.docker.listConfigs({ name: [configName] })).filter((o) => o.name === configName);
    expect(Buffer.from(cfg!.data!, 'base64').toString()).toBe('{"a":1}');
  });

  it('secret.remove removes a free secret, counts a gone one as done, and refuses one a service uses', async () => {
    const stack = lab.stack('rm');
    const free = `${stack}_free_dddddddddddd`;
    const used = `${stack}_used_eeeeeeeeeeee`;
    created.push(free, used);
    await lab.docker.createSecret({ name: free, data: 'x1234' });
    const usedId = await lab.docker.createSecret({ name: used, data: 'y1234' });
    const svc = await lab.docker.createService({
      Name: `${stack}_user`,
      Labels: { 'com.docker.stack.namespace': stack, [TEST_LABEL]: '1' },
      TaskTemplate: { ContainerSpec: { Image: LAB_BUSYBOX_IMAGE, Command: ['sleep', '3600'], Secrets: [{ SecretID: usedId, SecretName: used, File: { Name: 'u', UID: '0', GID: '0', Mode: 0o400 } }] } },
      Mode: { Replicated: { Replicas: 0 } },
    });
    lab.track(svc);
    const ctx = recordingContext(lab.docker);
    const err = await secretRemove.execute(ctx, { names: [free, `${stack}_gone_ffffffffffff`, used] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toBe(`secret '${used}' is used by ${stack}_user; not removed (removed ${free})`);
    expect((await lab.docker.listSecrets({ name: [free] })).filter((o) => o.name === free)).toEqual([]);
  });
});
