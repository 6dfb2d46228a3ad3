/**
 * Releases (`0004_releases.sql`): one immutable row per deploy, rollback or scale of an environment.
 * The CLI records one with its `deploy` operation (`createRelease`); the agent reads it and pins its
 * images; history, diff and rollback read them back.
 *
 * Terminology: a *release* is what was asked for (spec, images, source, who); its *version* counts the
 * environment's releases from 1; its *status* follows the operation that applies it.
 */
import type pg from 'pg';
import type { StackSpec } from '../../stack/types.ts';
import { mapDatabaseErrors, NotFoundError } from '../errors.ts';

export type ReleaseKind = 'deploy' | 'rollback' | 'scale';
export type ReleaseStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** One pinned image of a release (see agent/deploy/images.ts). */
export interface ReleaseImage {
  ref: string;
  id?: string;
  digest?: string;
}

/** Where a release came from: the environment directory as it was. */
export interface ReleaseSource {
  dir?: string;
  files?: { path: string; sha256: string }[];
  settings?: unknown;
  git_commit?: string | null;
  git_dirty?: boolean;
  /** Managed secret and config versions the spec references (`secret:<name>` / `config:<name>` -> version). */
  versions?: Record<string, string>;
}

/** Who asked for a release; the database role is added by the server. */
export interface Requester {
  os_user?: string;
  host?: string;
  git_commit?: string | null;
  role?: string;
}

export interface Release {
  id: string;
  environment: string;
  version: number;
  kind: ReleaseKind;
  stack: string;
  spec: StackSpec;
  source: ReleaseSource;
  restores: number | null;
  requestedBy: Requester;
  operationId: string | null;
  images: Record<string, ReleaseImage> | null;
  status: ReleaseStatus;
  error: string | null;
  createdAt: Date;
  finishedAt: Date | null;
}

// Columns under the names `Release` uses: rows come back as releases, with no mapping step.
const COLUMNS = `id::text as id, environment, version, kind, stack, spec, source, restores, requested_by as "requestedBy",
  operation_id::text as "operationId", images, status, error, created_at as "createdAt", finished_at as "finishedAt"`;

/** Anything that runs a query: a pool, or a client inside a transaction. */
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.ClientBase, 'query'>;

/** What `createRelease` records. */
export interface NewRelease {
  environment: string;
  stack: string;
  spec: StackSpec;
  kind?: ReleaseKind;
  source?: ReleaseSource;
  restores?: number;
  requestedBy?: Requester;
}

/**
 * Records a release and enqueues its `deploy` operation in one transaction (`mp.release_create`).
 *
 * @example
 *   const { version, operationId } = await createRelease(pool, { environment: 'prod', stack: 'shop', spec });
 */
export async function createRelease(db: Queryable, r: NewRelease): Promise<{ releaseId: string; version: number; operationId: string }> {
  const options = { kind: r.kind ?? 'deploy', source: r.source ?? {}, requested_by: r.requestedBy ?? {}, ...(r.restores ? { restores: r.restores } : {}) };
  const { rows } = await mapDatabaseErrors(() =>
    db.query<{ release_id: string; version: number; operation_id: string }>(
      `select release_id, version, operation_id from mp.release_create($1, $2, $3, $4)`,
      [r.environment, r.stack, JSON.stringify(r.spec), JSON.stringify(options)],
    ),
  );
  const row = rows[0]!;
  return { releaseId: String(row.release_id), version: row.version, operationId: String(row.operation_id) };
}

/** A release by id; `NotFoundError` when there is none. */
export async function getRelease(db: Queryable, id: string): Promise<Release> {
  const { rows } = await db.query<Release>(`select ${COLUMNS} from mp.releases where id = $1`, [id]);
  if (!rows[0]) throw new NotFoundError('UNKNOWN_RELEASE', `release ${id} does not exist`);
  return rows[0];
}

/** One version of an environment; `NotFoundError` listing the versions that exist. */
export async function releaseByVersion(db: Queryable, environment: string, version: number): Promise<Release> {
  const { rows } = await db.query<Release>(`select ${COLUMNS} from mp.releases where environment = $1 and version = $2`, [environment, version]);
  if (rows[0]) return rows[0];
  const { rows: versions } = await db.query<{ version: number }>(`select version from mp.releases where environment = $1 order by version`, [environment]);
  throw new NotFoundError(
    'UNKNOWN_RELEASE',
    `environment ${environment} has no release ${version}`,
    versions.length
      ? `its releases are ${versions.map((v) => v.version).join(', ')}; \`mp deploy history --env ${environment}\` lists them`
      : `it has no releases yet; \`mp deploy --env ${environment}\` makes the first`,
  );
}

/** The environment's releases, newest first. */
export async function listReleases(db: Queryable, environment: string, limit = 20): Promise<Release[]> {
  const { rows } = await db.query<Release>(
    `select ${COLUMNS} from mp.releases where environment = $1 order by version desc limit $2`,
    [environment, limit],
  );
  return rows;
}

/** The newest release of an environment with this status (any status when omitted), or undefined. */
export async function latestRelease(db: Queryable, environment: string, status?: ReleaseStatus): Promise<Release | undefined> {
  const { rows } = await db.query<Release>(
    `select ${COLUMNS} from mp.releases where environment = $1 and ($2::text is null or status = $2) order by version desc limit 1`,
    [environment, status ?? null],
  );
  return rows[0];
}

/** Pins a release's images the first time; returns the pins in force (an earlier attempt's, if any). */
export async function pinReleaseImages(db: Queryable, id: string, images: Record<string, ReleaseImage>): Promise<Record<string, ReleaseImage>> {
  const { rows } = await db.query<{ pinned: Record<string, ReleaseImage> }>(`select mp.release_pin_images($1, $2) as pinned`, [
    id,
    JSON.stringify(images),
  ]);
  return rows[0]!.pinned;
}

/** What an environment's operations queue behind: the unfinished ones submitted before `operationId`. */
export async function operationsAhead(
  db: Queryable,
  environment: string,
  operationId: string,
): Promise<{ id: string; kind: string; status: string; submittedBy: string; createdAt: Date; release: number | null }[]> {
  const { rows } = await db.query<{ id: string; kind: string; status: string; submitted_by: string; created_at: Date; release: number | null }>(
    `select o.id, o.kind, o.status, o.submitted_by, o.created_at, r.version as release
       from mp.operations o left join mp.releases r on r.operation_id = o.id
      where o.serial_key = 'env:' || $1 and o.id < $2 and o.status in ('queued', 'running')
      order by o.id`,
    [environment, operationId],
  );
  return rows.map((r) => ({ id: String(r.id), kind: r.kind, status: r.status, submittedBy: r.submitted_by, createdAt: r.created_at, release: r.release }));
}
