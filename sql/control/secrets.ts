/**
 * Managed secrets and configs of environments: the repository functions over `mp.secrets`,
 * `mp.configs` and `mp.cluster_keys` (sql/control/0005_secrets.sql), and what `mp deploy` does to a
 * stack spec before recording a release (pin managed versions, seal file-based secrets).
 *
 * Terminology: a *managed* secret or config is one `mp secret create` / `mp config create` holds (its
 * versions are rows here); a Compose file refers to it as an external secret/config of the same name
 * (docs/secrets.md). Its *version* is content-derived; its *Swarm name* is `<stack>_<name>_<version>`,
 * one Swarm object per version, since Swarm secrets are immutable. *Pinning* rewrites a stack spec's
 * references to the current versions' Swarm names, so a release names exact versions.
 *
 * @example
 *   const { spec: pinned, versions } = await prepareReleaseSpec(db, 'prod', spec);
 *   // pinned.secrets[0].name === 'shop_db_password_3f2a9c1b7d4e'; versions['secret:db_password'] === '3f2a9c1b7d4e'
 */
import type Dockerode from 'dockerode';
import { sql, type QueryExecutorProvider } from 'kysely';
import type pg from 'pg';
import { mapDatabaseErrors, NotFoundError } from '../errors.ts';
import type { StackObject, StackSpec } from '../../stack/types.ts';
import { clusterPublicKey, saltedDigest, sealValue, versionSalt } from './sealing.ts';

/** Secret or config. */
export type ManagedKind = 'secret' | 'config';

/** One version's metadata (never the value). */
export interface ManagedVersion {
  kind: ManagedKind;
  environment: string;
  name: string;
  version: string;
  swarmName: string;
  current: boolean;
  createdBy: string;
  createdAt: Date;
  deletedAt: Date | null;
  operationId: string | null;
  operationStatus: string | null;
  /** Content size (configs only: a secret's size is not shown). */
  bytes?: number;
}

/** What `createSecret`/`createConfig` wrote. */
export interface CreatedVersion {
  id: string;
  operationId: string;
  /** False when this version existed already (it is made current again). */
  created: boolean;
}

/** Swarm's own rule for object names, which the engine enforces: checked before anything is written. */
export const MANAGED_NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;

/** The Swarm object of one version: `<stack>_<name>_<version>` (at most 64 characters, Swarm's limit). */
export function managedSwarmName(stack: string, name: string, version: string): string {
  return `${stack}_${name}_${version}`;
}

/** Stores a sealed secret version and enqueues its `secret.create` operation, in one transaction. */
export async function createSecret(
  db: QueryExecutorProvider,
  s: { environment: string; name: string; version: string; swarmName: string; sealed: string; keyId: string },
): Promise<CreatedVersion> {
  const { rows } = await mapDatabaseErrors(() =>
    sql<{ secret_id: string; operation_id: string; created: boolean }>`
      select * from mp.secret_create(${s.environment}, ${s.name}, ${s.version}, ${s.sealed}, ${s.keyId}::bigint,
                                     ${JSON.stringify({ swarm_name: s.swarmName })}::jsonb)`.execute(db),
  );
  const r = rows[0]!;
  return { id: r.secret_id, operationId: r.operation_id, created: r.created };
}

/** Stores a config version and enqueues its `config.create` operation, in one transaction. */
export async function createConfig(
  db: QueryExecutorProvider,
  c: { environment: string; name: string; version: string; swarmName: string; data: Buffer },
): Promise<CreatedVersion> {
  const { rows } = await mapDatabaseErrors(() =>
    sql<{ config_id: string; operation_id: string; created: boolean }>`
      select * from mp.config_create(${c.environment}, ${c.name}, ${c.version}, ${c.data},
                                     ${JSON.stringify({ swarm_name: c.swarmName })}::jsonb)`.execute(db),
  );
  const r = rows[0]!;
  return { id: r.config_id, operationId: r.operation_id, created: r.created };
}

/**
 * Marks versions deleted (all live ones of the name when `versions` is omitted) and enqueues the
 * operation removing their Swarm objects; returns its id. `NotFoundError` when nothing matches.
 */
export async function deleteManaged(
  db: QueryExecutorProvider,
  d: { kind: ManagedKind; environment: string; name: string; versions?: string[] },
): Promise<string> {
  const { rows } = await mapDatabaseErrors(() =>
    sql<{ id: string }>`select mp.managed_delete(${d.kind}, ${d.environment}, ${d.name}, ${d.versions ?? null}::text[]) as id`.execute(db),
  );
  return rows[0]!.id;
}

/** Every version of an environment's secrets or configs (deleted ones too), current first per name. */
export async function listManaged(db: QueryExecutorProvider, kind: ManagedKind, environment: string): Promise<ManagedVersion[]> {
  const view = kind === 'secret' ? sql`mp.secrets_v` : sql`mp.configs_v`;
  const bytes = kind === 'config' ? sql`bytes` : sql`null::int as bytes`;
  const { rows } = await mapDatabaseErrors(() =>
    sql<{
      environment: string;
      name: string;
      version: string;
      swarm_name: string;
      current: boolean;
      created_by: string;
      created_at: Date;
      deleted_at: Date | null;
      operation_id: string | null;
      operation_status: string | null;
      bytes: number | null;
    }>`select environment, name, version, swarm_name, current, created_by, created_at, deleted_at, operation_id,
              operation_status, ${bytes}
       from ${view} where environment = ${environment}
       order by name, current desc, activated_at desc`.execute(db),
  );
  return rows.map((r) => ({
    kind,
    environment: r.environment,
    name: r.name,
    version: r.version,
    swarmName: r.swarm_name,
    current: r.current,
    createdBy: r.created_by,
    createdAt: r.created_at,
    deletedAt: r.deleted_at,
    operationId: r.operation_id,
    operationStatus: r.operation_status,
    ...(r.bytes === null ? {} : { bytes: r.bytes }),
  }));
}

/**
 * Live versions that neither are current nor appear in the last `keepReleases` releases of the
 * environment: what `mp secret prune` lists (and with `--delete` removes). A release's spec names the
 * Swarm objects it deployed, so "referenced" is read from the specs themselves.
 */
export async function pruneCandidates(
  db: QueryExecutorProvider,
  p: { kind: ManagedKind; environment: string; keepReleases: number },
): Promise<ManagedVersion[]> {
  const all = await listManaged(db, p.kind, p.environment);
  const field = p.kind === 'secret' ? 'secrets' : 'configs';
  const { rows } = await mapDatabaseErrors(() =>
    sql<{ name: string }>`
      select distinct o ->> 'name' as name
      from (select spec from mp.releases where environment = ${p.environment} order by version desc limit ${p.keepReleases}) r,
           jsonb_array_elements(coalesce(r.spec -> ${field}, '[]')) o`.execute(db),
  );
  const referenced = new Set(rows.map((r) => r.name));
  return all.filter((v) => v.deletedAt === null && !v.current && !referenced.has(v.swarmName));
}

interface CurrentRow {
  kind: ManagedKind;
  name: string;
  version: string;
  swarm_name: string;
}

/** The current version of each live managed name, and the names whose every version was deleted. */
async function currentVersions(db: QueryExecutorProvider, environment: string): Promise<{ current: CurrentRow[]; deleted: Set<string> }> {
  const { rows } = await mapDatabaseErrors(() =>
    sql<CurrentRow & { current: boolean }>`
      select 'secret' as kind, name, version, swarm_name, current from mp.secrets_v where environment = ${environment}
      union all
      select 'config', name, version, swarm_name, current from mp.configs_v where environment = ${environment}`.execute(db),
  );
  const live = new Set(rows.filter((r) => r.current).map((r) => `${r.kind}:${r.name}`));
  const deleted = new Set(rows.map((r) => `${r.kind}:${r.name}`).filter((k) => !live.has(k)));
  return { current: rows.filter((r) => r.current), deleted };
}

type ContainerSpec = NonNullable<Dockerode.ContainerTaskSpec['ContainerSpec']>;

function containerOf(spec: Dockerode.ServiceSpec): ContainerSpec | undefined {
  const t = spec.TaskTemplate as Dockerode.ContainerTaskSpec | undefined;
  return t?.ContainerSpec;
}

/**
 * Rewrites the spec's references to managed secrets and configs to the Swarm names of their current
 * versions: every external secret/config whose name is a managed name of the environment (docs/secrets.md
 * says how a Compose file refers to one), and the services' references to it. Returns the new spec (the
 * input is not changed) and the versions it pinned, keyed `secret:<name>` / `config:<name>`: a release
 * records them, and a rollback re-applies the release's spec, so it brings those exact versions back.
 * `NotFoundError` when the spec uses a managed name whose every version was deleted.
 *
 * @example
 *   const { spec: pinned, versions } = await pinSecretVersions(db, 'prod', spec);
 */
export async function pinSecretVersions(
  db: QueryExecutorProvider,
  environment: string,
  spec: StackSpec,
): Promise<{ spec: StackSpec; versions: Record<string, string> }> {
  const { current, deleted } = await currentVersions(db, environment);
  const out = structuredClone(spec);
  const versions: Record<string, string> = {};
  for (const kind of ['secret', 'config'] as const) {
    const byName = new Map(current.filter((c) => c.kind === kind).map((c) => [c.name, c]));
    const renames = new Map<string, string>();
    for (const obj of kind === 'secret' ? out.secrets : out.configs) {
      if (!obj.external) continue;
      const managed = byName.get(obj.name);
      if (!managed) {
        if (deleted.has(`${kind}:${obj.name}`)) {
          throw new NotFoundError(
            'MANAGED_DELETED',
            `${kind} '${obj.name}' (${kind}s.${obj.key}) of environment ${environment} was deleted`,
            `create it again with \`mp ${kind} create --env ... --name ${obj.name}\`, or remove it from the Compose files`,
          );
        }
        continue;
      }
      renames.set(obj.name, managed.swarm_name);
      versions[`${kind}:${managed.name}`] = managed.version;
      obj.name = managed.swarm_name;
    }
    if (renames.size === 0) continue;
    for (const svc of out.services) {
      const c = containerOf(svc.spec);
      if (kind === 'secret') for (const ref of c?.Secrets ?? []) if (ref.SecretName && renames.has(ref.SecretName)) ref.SecretName = renames.get(ref.SecretName);
      if (kind === 'config') for (const ref of c?.Configs ?? []) if (ref.ConfigName && renames.has(ref.ConfigName)) ref.ConfigName = renames.get(ref.ConfigName);
    }
  }
  return { spec: out, versions };
}

/**
 * Replaces the content of every file-based secret of the spec (`StackObject.data`) by `sealed`: the
 * same bytes sealed to `publicKey`, so a release row never holds a secret in plaintext; the deploy
 * executor opens it with `ctx.openSealed`. With `salt` (the cluster's `mp.cluster.version_salt`), the
 * object's `digest` (a plain sha256 of the content, which would let anyone who reads releases or the
 * Swarm labels confirm a guessed weak value) is replaced by a salted scrypt digest; it stays stable
 * across deploys, which is all a plan compares it for. Returns a new spec.
 *
 * @example
 *   const sealed = await sealStackSecrets(spec, (await clusterPublicKey(db)).publicKey, await versionSalt(db));
 */
export async function sealStackSecrets(spec: StackSpec, publicKey: string, salt?: Uint8Array): Promise<StackSpec> {
  const out = structuredClone(spec);
  out.secrets = await Promise.all(
    out.secrets.map(async (obj): Promise<StackObject> => {
      if (obj.data === undefined) return obj;
      const plain = Buffer.from(obj.data, 'base64');
      const { data: _data, ...rest } = obj;
      const sealed: StackObject = { ...rest, sealed: await sealValue(publicKey, plain) };
      if (salt) sealed.digest = await fileSecretDigest(salt, spec.name, obj.key, plain);
      plain.fill(0);
      return sealed;
    }),
  );
  return out;
}

/** A file-based secret's digest: salted scrypt, 64 hex characters (the length of the sha256 it replaces). */
function fileSecretDigest(salt: Uint8Array, stack: string, key: string, value: Uint8Array): Promise<string> {
  return saltedDigest(salt, ['file', stack, key], value, 32);
}

/**
 * What `mp deploy` calls before recording a release: pins managed versions (`pinSecretVersions`), then
 * seals file-based secrets (`sealStackSecrets`, with the cluster's salt). Returns the spec to record and
 * the pinned versions.
 */
export async function prepareReleaseSpec(
  db: QueryExecutorProvider,
  environment: string,
  spec: StackSpec,
): Promise<{ spec: StackSpec; versions: Record<string, string> }> {
  const pinned = await pinSecretVersions(db, environment, spec);
  if (!pinned.spec.secrets.some((s) => s.data !== undefined)) return pinned;
  const [key, salt] = await Promise.all([clusterPublicKey(db), versionSalt(db)]);
  return { spec: await sealStackSecrets(pinned.spec, key.publicKey, salt), versions: pinned.versions };
}

/* ---------------------------------------------------------------- agent side (mp_agent) */

/** One stored sealed value, for the agent. */
export interface SealedSecret {
  id: string;
  environment: string;
  name: string;
  version: string;
  swarmName: string;
  sealed: string;
  keyId: string;
  deletedAt: Date | null;
}

const SEALED_COLUMNS = `id, environment, name, version, swarm_name as "swarmName", sealed, key_id as "keyId", deleted_at as "deletedAt"`;

/** The sealed secret `id`, or undefined. */
export async function readSealedSecret(pool: pg.Pool, id: string): Promise<SealedSecret | undefined> {
  const { rows } = await mapDatabaseErrors(() => pool.query<SealedSecret>(`select ${SEALED_COLUMNS} from mp.secrets where id = $1`, [id]));
  return rows[0];
}

/** Every stored secret not sealed to key `keyId` (what a rotation re-seals). */
export async function secretsNotSealedTo(pool: pg.Pool, keyId: string): Promise<SealedSecret[]> {
  const { rows } = await mapDatabaseErrors(() =>
    pool.query<SealedSecret>(`select ${SEALED_COLUMNS} from mp.secrets where key_id <> $1 order by id`, [keyId]),
  );
  return rows;
}

/** The config `id`'s Swarm name and content, or undefined. */
export async function readConfig(pool: pg.Pool, id: string): Promise<{ swarmName: string; data: Buffer; environment: string; name: string; version: string } | undefined> {
  const { rows } = await mapDatabaseErrors(() =>
    pool.query<{ swarmName: string; data: Buffer; environment: string; name: string; version: string }>(
      `select swarm_name as "swarmName", data, environment, name, version from mp.configs where id = $1`,
      [id],
    ),
  );
  return rows[0];
}

/** Makes `publicKey` the active cluster key (idempotent); returns its id. */
export async function rotateClusterKey(pool: pg.Pool, publicKey: string): Promise<string> {
  const { rows } = await mapDatabaseErrors(() => pool.query<{ id: string }>(`select mp.cluster_key_rotate($1) as id`, [publicKey]));
  return rows[0]!.id;
}

/** Every key the cluster had, oldest first. */
export async function clusterKeyRows(pool: pg.Pool): Promise<{ id: string; publicKey: string; retiredAt: Date | null }[]> {
  const { rows } = await mapDatabaseErrors(() =>
    pool.query<{ id: string; publicKey: string; retiredAt: Date | null }>(
      `select id, public_key as "publicKey", retired_at as "retiredAt" from mp.cluster_keys order by id`,
    ),
  );
  return rows;
}

/** Replaces a sealed value sealed to `fromKey` by one sealed to `toKey`; false when another attempt did. */
export async function resealSecret(pool: pg.Pool, r: { id: string; fromKey: string; sealed: string; toKey: string }): Promise<boolean> {
  const { rows } = await mapDatabaseErrors(() =>
    pool.query<{ ok: boolean | null }>(`select mp.secret_reseal($1, $2, $3, $4) as ok`, [r.id, r.fromKey, r.sealed, r.toKey]),
  );
  return rows[0]?.ok === true;
}
