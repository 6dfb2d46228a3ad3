// Sealed secrets: the sealing round trip and key files, the versions, and the SQL of 0005_secrets.sql
// (one transaction with the operation, who may read what, rotation bookkeeping, prune candidates).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { controlDb } from '../../../sql/control/database.ts';
import {
  clusterPublicKey,
  configVersion,
  ensureClusterKeys,
  generateClusterKeys,
  loadClusterKeys,
  openValue,
  sealValue,
  secretVersion,
  versionSalt,
  writeClusterKeys,
} from '../../../sql/control/sealing.ts';
import {
  createConfig,
  createSecret,
  deleteManaged,
  listManaged,
  pinSecretVersions,
  prepareReleaseSpec,
  pruneCandidates,
  resealSecret,
  rotateClusterKey,
  sealStackSecrets,
} from '../../../sql/control/secrets.ts';
import { ConflictError, NotFoundError } from '../../../sql/errors.ts';
import type { StackSpec } from '../../../stack/types.ts';
import { freshDatabase, type TestDatabase } from '../../support/database.ts';

let db: TestDatabase;
let dir: string;
const suffix = randomBytes(3).toString('hex');
const users = { cli: `scli_${suffix}`, agent: `sagent_${suffix}`, app: `sapp_${suffix}` };
const clients: pg.Client[] = [];

async function as(user: string): Promise<pg.Client> {
  const url = new URL(db.url);
  url.username = user;
  url.password = 'pw';
  const c = new pg.Client({ connectionString: url.toString() });
  await c.connect();
  clients.push(c);
  return c;
}

beforeAll(async () => {
  db = await freshDatabase();
  dir = await mkdtemp(join(tmpdir(), 'mp-keys-'));
  await db.pool.query(`select mp.grant_roles(), mp.environment_create('prod'), mp.environment_create('staging')`);
  for (const [user, group] of [[users.cli, 'mp_cli'], [users.agent, 'mp_agent'], [users.app, 'mp_app']] as const) {
    await db.pool.query(`create role ${user} login password 'pw' in role ${group}`);
  }
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => {})));
  await db.drop();
  await rm(dir, { recursive: true, force: true });
  const admin = new pg.Client({ connectionString: inject('pgAdminUrl') });
  await admin.connect();
  for (const user of Object.values(users)) await admin.query(`drop role if exists ${user}`);
  await admin.end();
});

describe('sealing', () => {
  it('a sealed value opens with the pair it was sealed to, and only with it', async () => {
    const a = await generateClusterKeys();
    const b = await generateClusterKeys();
    const sealed = await sealValue(a.keys[0]!.publicKey, Buffer.from('s3cret'));
    expect(sealed).not.toContain('s3cret');
    expect(Buffer.from(await openValue(a, sealed)).toString()).toBe('s3cret');
    // A key file holding both (mid-rotation) opens it too.
    expect(Buffer.from(await openValue({ keys: [...a.keys, ...b.keys] }, sealed)).toString()).toBe('s3cret');
    await expect(openValue(b, sealed)).rejects.toBeInstanceOf(ConflictError);
    // Two seals of one value differ (ephemeral keys): a sealed value says nothing about equality.
    expect(await sealValue(a.keys[0]!.publicKey, Buffer.from('s3cret'))).not.toBe(sealed);
  });

  it('key files are written 0600, atomically, and read back; a missing one is NotFoundError, a bad one ConfigError', async () => {
    const path = join(dir, 'sub', 'cluster.key');
    const keys = await generateClusterKeys();
    await writeClusterKeys(path, keys);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await loadClusterKeys(path)).toEqual({ ...keys, path });
    await expect(loadClusterKeys(join(dir, 'none.key'))).rejects.toBeInstanceOf(NotFoundError);
    await writeFile(join(dir, 'bad.key'), '{"keys": 1}');
    await expect(loadClusterKeys(join(dir, 'bad.key'))).rejects.toThrow(/has no "keys" list/);
  });

  it('versions: content-derived, salted per cluster and per name; configs are plain sha256', async () => {
    const salt = randomBytes(32);
    const v = await secretVersion(salt, 'prod', 'db_password', Buffer.from('hunter2'));
    expect(v).toMatch(/^[0-9a-f]{12}$/);
    expect(await secretVersion(salt, 'prod', 'db_password', Buffer.from('hunter2'))).toBe(v);
    expect(await secretVersion(salt, 'prod', 'other', Buffer.from('hunter2'))).not.toBe(v);
    expect(await secretVersion(randomBytes(32), 'prod', 'db_password', Buffer.from('hunter2'))).not.toBe(v);
    expect(configVersion(Buffer.from('{}'))).toBe('44136fa355b3');
  });
});

describe('secrets in SQL', () => {
  let keyFile: string;
  let keyId: string;
  let publicKey: string;

  it('ensureClusterKeys creates the key file and registers its public key once; another key is refused', async () => {
    keyFile = join(dir, 'dev', 'cluster.key');
    const k = controlDb(db.pool);
    const first = await ensureClusterKeys(k, keyFile);
    expect(first.created).toBe(true);
    const again = await ensureClusterKeys(k, keyFile);
    expect(again.created).toBe(false);
    expect(again.keys).toEqual(first.keys);
    ({ id: keyId, publicKey } = await clusterPublicKey(k));
    expect(publicKey).toBe(first.keys.keys[0]!.publicKey);
    await expect(ensureClusterKeys(k, join(dir, 'other.key'))).rejects.toBeInstanceOf(ConflictError);
  });

  it('secret_create writes the row and its secret.create operation together; mp_cli cannot read the sealed column', async () => {
    const cli = await as(users.cli);
    const sealed = await sealValue(publicKey, Buffer.from('s3cret'));
    const { rows } = await cli.query(`select * from mp.secret_create('prod', 'db_password', 'aaaaaaaaaaaa', $1, $2, '{"swarm_name": "shop_db_password_aaaaaaaaaaaa"}')`, [
      sealed,
      keyId,
    ]);
    expect(rows[0]).toMatchObject({ created: true });
    const op = await db.pool.query(`select kind, payload, target from mp.operations where id = $1`, [rows[0].operation_id]);
    expect(op.rows[0]).toEqual({
      kind: 'secret.create',
      target: 'manager',
      payload: { secret: Number(rows[0].secret_id), name: 'db_password', version: 'aaaaaaaaaaaa', swarmName: 'shop_db_password_aaaaaaaaaaaa' },
    });
    expect((await cli.query(`select name, version, current from mp.secrets_v`)).rows).toEqual([{ name: 'db_password', version: 'aaaaaaaaaaaa', current: true }]);
    expect((await cli.query(`select * from mp.secrets`).catch((e: Error) => e)).toString()).toMatch(/permission denied/);
    expect((await cli.query(`select sealed from mp.secrets`).catch((e: Error) => e)).toString()).toMatch(/permission denied/);
    expect((await cli.query(`select id, name from mp.secrets`)).rows).toHaveLength(1);
    const agent = await as(users.agent);
    expect((await agent.query(`select sealed from mp.secrets`)).rows).toEqual([{ sealed }]);
    const app = await as(users.app);
    expect((await app.query(`select 1 from mp.secrets_v`).catch((e: Error) => e)).toString()).toMatch(/permission denied/);
    expect((await app.query(`select * from mp.cluster_key_active()`).catch((e: Error) => e)).toString()).toMatch(/permission denied/);
  });

  it('a value sealed to a retired key is refused (rotated meanwhile), nothing written', async () => {
    const before = await db.pool.query(`select count(*)::int n from mp.operations`);
    const err = await createSecret(controlDb(db.pool), {
      environment: 'prod', name: 'x', version: 'bbbbbbbbbbbb', swarmName: 'shop_x_bbbbbbbbbbbb', sealed: 'AA==', keyId: String(Number(keyId) + 100),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toMatch(/sealed to key \d+, but the cluster key is now/);
    expect((await db.pool.query(`select count(*)::int n from mp.operations`)).rows).toEqual(before.rows);
  });

  it('pinSecretVersions rewrites external references to managed names to the current versions', async () => {
    const k = controlDb(db.pool);
    const sealed = await sealValue(publicKey, Buffer.from('v2'));
    await createSecret(k, { environment: 'prod', name: 'db_password', version: 'cccccccccccc', swarmName: 'shop_db_password_cccccccccccc', sealed, keyId });
    await createConfig(k, { environment: 'prod', name: 'app.json', version: configVersion(Buffer.from('{}')), swarmName: 'shop_app.json_44136fa355b3', data: Buffer.from('{}') });
    const spec: StackSpec = {
      name: 'shop',
      networks: [],
      secrets: [
        { key: 'db_password', name: 'db_password', external: true },
        { key: 'tls', name: 'tls', external: true },
      ],
      configs: [{ key: 'app', name: 'app.json', external: true }],
      services: [
        {
          key: 'api',
          name: 'shop_api',
          spec: {
            Name: 'shop_api',
            TaskTemplate: {
              ContainerSpec: {
                Image: 'x',
                Secrets: [{ SecretName: 'db_password', File: { Name: 'db_password', UID: '0', GID: '0', Mode: 0o444 } }, { SecretName: 'tls' }],
                Configs: [{ ConfigName: 'app.json' }],
              },
            },
          },
        },
      ],
      warnings: [],
    };
    const { spec: pinned, versions } = await pinSecretVersions(k, 'prod', spec);
    expect(versions).toEqual({ 'secret:db_password': 'cccccccccccc', 'config:app.json': '44136fa355b3' });
    expect(pinned.secrets.map((s) => s.name)).toEqual(['shop_db_password_cccccccccccc', 'tls']);
    const c = (pinned.services[0]!.spec.TaskTemplate as { ContainerSpec: { Secrets: { SecretName: string }[]; Configs: { ConfigName: string }[] } }).ContainerSpec;
    expect(c.Secrets.map((s) => s.SecretName)).toEqual(['shop_db_password_cccccccccccc', 'tls']);
    expect(c.Configs.map((s) => s.ConfigName)).toEqual(['shop_app.json_44136fa355b3']);
    expect(spec.secrets[0]!.name).toBe('db_password'); // the input is unchanged
    // Another environment has no managed db_password: nothing pinned there.
    expect((await pinSecretVersions(k, 'staging', spec)).versions).toEqual({});
  });

  it('sealStackSecrets and prepareReleaseSpec leave no plaintext and no plain hash of file-based secrets', async () => {
    const k = controlDb(db.pool);
    const data = Buffer.from('file-s3cret').toString('base64');
    const spec: StackSpec = {
      name: 'shop', networks: [], configs: [], services: [], warnings: [],
      secrets: [{ key: 'f', name: 'shop_f', external: false, spec: { Name: 'shop_f', Labels: {} }, data, digest: 'plainsha' }],
    };
    const { spec: out } = await prepareReleaseSpec(k, 'prod', spec);
    const text = JSON.stringify(out);
    expect(text).not.toContain(data);
    expect(text).not.toContain('file-s3cret');
    expect(out.secrets[0]!.data).toBeUndefined();
    expect(out.secrets[0]!.digest).toMatch(/^[0-9a-f]{64}$/);
    const keys = await loadClusterKeys(keyFile);
    expect(Buffer.from(await openValue(keys, out.secrets[0]!.sealed!)).toString()).toBe('file-s3cret');
    // Stable digest across deploys (same salt), so a plan sees no change.
    expect((await prepareReleaseSpec(k, 'prod', spec)).spec.secrets[0]!.digest).toBe(out.secrets[0]!.digest);
    expect((await sealStackSecrets(spec, keys.keys[0]!.publicKey)).secrets[0]!.digest).toBe('plainsha');
    expect((await versionSalt(k)).length).toBe(32);
  });

  it('lists versions (current first), prunes what no recent release uses, deletes with an operation', async () => {
    const k = controlDb(db.pool);
    const listed = await listManaged(k, 'secret', 'prod');
    expect(listed.map((v) => [v.version, v.current])).toEqual([
      ['cccccccccccc', true],
      ['aaaaaaaaaaaa', false],
    ]);
    expect((await pruneCandidates(k, { kind: 'secret', environment: 'prod', keepReleases: 5 })).map((v) => v.version)).toEqual(['aaaaaaaaaaaa']);
    // A release that uses the old version keeps it.
    await db.pool.query(`select * from mp.release_create('prod', 'shop', $1)`, [
      JSON.stringify({ services: [], secrets: [{ key: 'db_password', name: 'shop_db_password_aaaaaaaaaaaa', external: true }] }),
    ]);
    expect(await pruneCandidates(k, { kind: 'secret', environment: 'prod', keepReleases: 5 })).toEqual([]);
    const opId = await deleteManaged(k, { kind: 'secret', environment: 'prod', name: 'db_password', versions: ['aaaaaaaaaaaa'] });
    const op = await db.pool.query(`select kind, payload from mp.operations where id = $1`, [opId]);
    expect(op.rows[0]).toEqual({ kind: 'secret.remove', payload: { names: ['shop_db_password_aaaaaaaaaaaa'] } });
    const err = await deleteManaged(k, { kind: 'secret', environment: 'prod', name: 'nope' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).hint).toBe('live secrets: db_password');
  });

  it('rotation bookkeeping: a new active key, re-seal only from the key it was sealed to', async () => {
    const agent = await as(users.agent);
    const next = await generateClusterKeys();
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      const newId = await rotateClusterKey(pool, next.keys[0]!.publicKey);
      expect(await rotateClusterKey(pool, next.keys[0]!.publicKey)).toBe(newId);
      expect((await clusterPublicKey(controlDb(pool))).publicKey).toBe(next.keys[0]!.publicKey);
      const { rows } = await agent.query(`select id, key_id from mp.secrets order by id limit 1`);
      const sealed = await sealValue(next.keys[0]!.publicKey, Buffer.from('s3cret'));
      expect(await resealSecret(pool, { id: rows[0].id, fromKey: rows[0].key_id, sealed, toKey: newId })).toBe(true);
      expect(await resealSecret(pool, { id: rows[0].id, fromKey: rows[0].key_id, sealed, toKey: newId })).toBe(false);
    } finally {
      await pool.end();
    }
  });
});
