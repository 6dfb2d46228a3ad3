/**
 * Registry credentials of environments (sql/control/0011_registry_auth.sql): the repository functions
 * over `mp.registry_auths`, and the pure rules by which a deploy picks the credentials of an image.
 *
 * Terminology: a *registry host* is the first component of an image reference that names a registry
 * (`127.0.0.1:5000` in `127.0.0.1:5000/shop/api:1`), Docker Hub's `https://index.docker.io/v1/` for
 * the others (agent/build/registry.ts). An environment holds at most one set of credentials per host:
 * a user name in the clear, the password *sealed* to the cluster key (sql/control/sealing.ts), and a
 * *version* derived from them, which the deploy puts on each service as a label so that new credentials
 * are a change the plan sees.
 *
 * @example
 *   const stored = await listRegistryAuths(db, 'prod');   // [{ registry: '127.0.0.1:5000', username: 'ci', version: '3f2a...' }]
 *   const spec = withRegistryAuthLabels(desired, stored);  // each service of a 127.0.0.1:5000 image labelled
 */
import type Dockerode from 'dockerode';
import { sql, type QueryExecutorProvider } from 'kysely';
import type pg from 'pg';
import { registryHost } from '../../agent/build/registry.ts';
import type { StackSpec } from '../../stack/types.ts';
import { mapDatabaseErrors } from '../errors.ts';
import { saltedDigest } from './sealing.ts';

/** Service label naming the credentials a service was last given (user, host, version); never the password. */
export const REGISTRY_AUTH_LABEL = 'org.minipaas.registry-auth';

/** Stored credentials, as the CLI may read them: everything but the sealed password. */
export interface RegistryAuthInfo {
  environment: string;
  registry: string;
  username: string;
  version: string;
  createdBy: string;
  createdAt: Date;
}

/** Stored credentials with the sealed password, as a manager agent reads them. */
export interface SealedRegistryAuth extends RegistryAuthInfo {
  id: string;
  sealed: string;
  keyId: string;
}

/**
 * The version of a set of credentials: 12 hex characters of scrypt over the password, keyed by the
 * cluster's salt, the environment, the host and the user, as a secret's version is (docs/secrets.md).
 */
export async function registryAuthVersion(salt: Uint8Array, a: { environment: string; registry: string; username: string }, password: Uint8Array): Promise<string> {
  return await saltedDigest(salt, ['registry', a.environment, a.registry, a.username], password, 6);
}

/** Stores (or replaces) an environment's credentials for one registry; returns the row id. */
export async function setRegistryAuth(
  db: QueryExecutorProvider,
  a: { environment: string; registry: string; username: string; version: string; sealed: string; keyId: string },
): Promise<string> {
  const { rows } = await mapDatabaseErrors(() =>
    sql<{ id: string }>`select mp.registry_auth_set(${a.environment}, ${a.registry}, ${a.username}, ${a.version}, ${a.sealed}, ${a.keyId}::bigint) as id`.execute(db),
  );
  return rows[0]!.id;
}

/** Deletes an environment's credentials for one registry; `NotFoundError` when there are none. */
export async function deleteRegistryAuth(db: QueryExecutorProvider, a: { environment: string; registry: string }): Promise<void> {
  await mapDatabaseErrors(() => sql`select mp.registry_auth_delete(${a.environment}, ${a.registry})`.execute(db));
}

/** The environment's stored credentials, without passwords, by host. */
export async function listRegistryAuths(db: QueryExecutorProvider, environment: string): Promise<RegistryAuthInfo[]> {
  const { rows } = await mapDatabaseErrors(() =>
    sql<{ environment: string; registry: string; username: string; version: string; created_by: string; created_at: Date }>`
      select environment, registry, username, version, created_by, created_at from mp.registry_auths_v
      where environment = ${environment} order by registry`.execute(db),
  );
  return rows.map((r) => ({ environment: r.environment, registry: r.registry, username: r.username, version: r.version, createdBy: r.created_by, createdAt: r.created_at }));
}

const SEALED_COLUMNS = `id, environment, registry, username, version, sealed, key_id as "keyId", created_by as "createdBy", created_at as "createdAt"`;

/** The environment's credentials with their sealed passwords (mp_agent). */
export async function sealedRegistryAuths(pool: pg.Pool, environment: string): Promise<SealedRegistryAuth[]> {
  const { rows } = await mapDatabaseErrors(() =>
    pool.query<SealedRegistryAuth>(`select ${SEALED_COLUMNS} from mp.registry_auths where environment = $1 order by registry`, [environment]),
  );
  return rows;
}

/** Every stored password not sealed to key `keyId` (what a key rotation re-seals). */
export async function registryAuthsNotSealedTo(pool: pg.Pool, keyId: string): Promise<SealedRegistryAuth[]> {
  const { rows } = await mapDatabaseErrors(() =>
    pool.query<SealedRegistryAuth>(`select ${SEALED_COLUMNS} from mp.registry_auths where key_id <> $1 order by id`, [keyId]),
  );
  return rows;
}

/** Replaces a password sealed to `fromKey` by one sealed to `toKey`; false when another attempt did. */
export async function resealRegistryAuth(pool: pg.Pool, r: { id: string; fromKey: string; sealed: string; toKey: string }): Promise<boolean> {
  const { rows } = await mapDatabaseErrors(() =>
    pool.query<{ ok: boolean | null }>(`select mp.registry_auth_reseal($1, $2, $3, $4) as ok`, [r.id, r.fromKey, r.sealed, r.toKey]),
  );
  return rows[0]?.ok === true;
}

/** The image of a service spec. */
function imageOf(spec: Dockerode.ServiceSpec): string | undefined {
  const tpl = spec.TaskTemplate;
  return tpl && 'ContainerSpec' in tpl ? tpl.ContainerSpec?.Image : undefined;
}

/** The stored credentials for the registry `image` is pulled from, if the environment has some. */
export function registryAuthForImage<T extends Pick<RegistryAuthInfo, 'registry'>>(image: string | undefined, auths: readonly T[]): T | undefined {
  if (!image) return undefined;
  const host = registryHost(image);
  return auths.find((a) => a.registry === host);
}

/** The label value for one set of credentials: `<user>@<host> <version>`. */
export function registryAuthLabel(a: Pick<RegistryAuthInfo, 'registry' | 'username' | 'version'>): string {
  return `${a.username}@${a.registry} ${a.version}`;
}

/**
 * The spec with each service whose image comes from a registry the environment has credentials for
 * labelled `org.minipaas.registry-auth=<user>@<host> <version>`: stored, changed or deleted credentials
 * then change the service spec, so the deploy updates the service and sends Swarm the credentials
 * (a service Swarm already runs otherwise keeps the ones it was given). Pure; the input is not changed.
 */
export function withRegistryAuthLabels(spec: StackSpec, auths: readonly Pick<RegistryAuthInfo, 'registry' | 'username' | 'version'>[]): StackSpec {
  if (auths.length === 0) return spec;
  return {
    ...spec,
    services: spec.services.map((service) => {
      const auth = registryAuthForImage(imageOf(service.spec), auths);
      if (!auth) return service;
      return { ...service, spec: { ...service.spec, Labels: { ...(service.spec.Labels ?? {}), [REGISTRY_AUTH_LABEL]: registryAuthLabel(auth) } } };
    }),
  };
}

/**
 * The spec without the services and job templates whose image comes from a registry the environment
 * has credentials for: what the CLI can check itself (it cannot open the credentials; the agent
 * checks those images with them). Pure.
 */
export function withoutStoredRegistries(spec: StackSpec, auths: readonly Pick<RegistryAuthInfo, 'registry'>[]): StackSpec {
  if (auths.length === 0) return spec;
  const keep = (s: { spec: Dockerode.ServiceSpec }): boolean => !registryAuthForImage(imageOf(s.spec), auths);
  return { ...spec, services: spec.services.filter(keep), ...(spec.jobs ? { jobs: spec.jobs.filter(keep) } : {}) };
}
