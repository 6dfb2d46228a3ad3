/**
 * Canaries (`0010_canary.sql`): the new version of one service running beside the current release as
 * its own Swarm service until it is promoted or aborted. The CLI records one with its `canary.start`
 * operation (`createCanary`) and ends it (`endCanary`); the agent pins its image and may abort it
 * (`autoAbortCanary`); status and history read them (`listCanaries`).
 *
 * Terminology: a canary is *unfinished* while starting, live or promoting; it ends *promoted* (its
 * version became a release) or *aborted* (with the reason).
 */
import type { StackService } from '../../stack/types.ts';
import { mapDatabaseErrors, NotFoundError } from '../errors.ts';
import type { Queryable, ReleaseImage, ReleaseSource, Requester } from './releases.ts';

export type CanaryStatus = 'starting' | 'live' | 'promoting' | 'promoted' | 'aborted';

/** The statuses of a canary that still holds its service. */
export const UNFINISHED: readonly CanaryStatus[] = ['starting', 'live', 'promoting'];

export interface Canary {
  id: string;
  environment: string;
  /** The Compose key of the service. */
  service: string;
  stack: string;
  replicas: number;
  /** The release it runs beside. */
  baseVersion: number;
  /** The new version of the service as the environment's files said it. */
  spec: StackService;
  source: ReleaseSource;
  requestedBy: Requester;
  image: ReleaseImage | null;
  status: CanaryStatus;
  reason: string | null;
  startOperationId: string | null;
  endOperationId: string | null;
  promotedVersion: number | null;
  createdAt: Date;
  liveAt: Date | null;
  endedAt: Date | null;
}

const COLUMNS = `id::text as id, environment, service, stack, replicas, base_version as "baseVersion", spec, source,
  requested_by as "requestedBy", image, status, reason, start_operation_id::text as "startOperationId",
  end_operation_id::text as "endOperationId", promoted_version as "promotedVersion", created_at as "createdAt",
  live_at as "liveAt", ended_at as "endedAt"`;

/** The Swarm service name of a canary of `<stack>_<key>`. */
export function canaryServiceName(stack: string, key: string): string {
  return `${stack}_${key}-canary`;
}

/** Label on a canary's Swarm service: the canary's id (how the agent finds it again). */
export const CANARY_LABEL = 'org.minipaas.canary';
/** Label on a canary's Swarm service: the main service it runs beside. */
export const CANARY_OF_LABEL = 'org.minipaas.canary.of';

/** What `createCanary` records. */
export interface NewCanary {
  environment: string;
  stack: string;
  service: string;
  replicas: number;
  baseVersion: number;
  spec: StackService;
  source?: ReleaseSource;
  requestedBy?: Requester;
}

/** Records a canary and enqueues its `canary.start` operation in one transaction (`mp.canary_create`). */
export async function createCanary(db: Queryable, c: NewCanary): Promise<{ canaryId: string; operationId: string }> {
  const { rows } = await mapDatabaseErrors(() =>
    db.query<{ canary_id: string; operation_id: string }>(`select canary_id, operation_id from mp.canary_create($1, $2, $3, $4, $5)`, [
      c.environment,
      c.stack,
      c.service,
      JSON.stringify(c.spec),
      JSON.stringify({ replicas: c.replicas, base_version: c.baseVersion, source: c.source ?? {}, requested_by: c.requestedBy ?? {} }),
    ]),
  );
  return { canaryId: String(rows[0]!.canary_id), operationId: String(rows[0]!.operation_id) };
}

/**
 * Promotes (recording `spec` as a deploy release) or aborts a live canary (`mp.canary_end`); returns the
 * operations it enqueued.
 */
export async function endCanary(
  db: Queryable,
  id: string,
  end: { action: 'abort'; reason?: string } | { action: 'promote'; spec: unknown; source: ReleaseSource; requestedBy: Requester },
): Promise<{ removeOperationId: string; deployOperationId: string | null; releaseVersion: number | null }> {
  const options = end.action === 'abort' ? (end.reason ? { reason: end.reason } : {}) : { source: end.source, requested_by: end.requestedBy };
  const { rows } = await mapDatabaseErrors(() =>
    db.query<{ remove_operation_id: string; deploy_operation_id: string | null; release_version: number | null }>(
      `select remove_operation_id, deploy_operation_id, release_version from mp.canary_end($1, $2, $3, $4)`,
      [id, end.action, end.action === 'promote' ? JSON.stringify(end.spec) : null, JSON.stringify(options)],
    ),
  );
  const row = rows[0]!;
  return {
    removeOperationId: String(row.remove_operation_id),
    deployOperationId: row.deploy_operation_id === null ? null : String(row.deploy_operation_id),
    releaseVersion: row.release_version,
  };
}

/** A canary by id; `NotFoundError` when there is none. */
export async function getCanary(db: Queryable, id: string): Promise<Canary> {
  const { rows } = await db.query<Canary>(`select ${COLUMNS} from mp.canaries where id = $1`, [id]);
  if (!rows[0]) throw new NotFoundError('UNKNOWN_CANARY', `canary ${id} does not exist`);
  return rows[0];
}

/** The environment's canaries, newest first; only the unfinished ones with `unfinished`. */
export async function listCanaries(db: Queryable, environment: string, opts: { unfinished?: boolean; limit?: number } = {}): Promise<Canary[]> {
  const { rows } = await db.query<Canary>(
    `select ${COLUMNS} from mp.canaries where environment = $1 and (not $2 or status = any($3)) order by id desc limit $4`,
    [environment, opts.unfinished ?? false, UNFINISHED, opts.limit ?? 100],
  );
  return rows;
}

/** Every live canary of every environment (the agent's watcher). */
export async function liveCanaries(db: Queryable): Promise<Canary[]> {
  const { rows } = await db.query<Canary>(`select ${COLUMNS} from mp.canaries where status = 'live' and end_operation_id is null order by id`);
  return rows;
}

/** Pins the canary's image the first time; returns the pin in force. */
export async function pinCanaryImage(db: Queryable, id: string, image: ReleaseImage): Promise<ReleaseImage> {
  const { rows } = await db.query<{ pinned: ReleaseImage }>(`select mp.canary_pin_image($1, $2) as pinned`, [id, JSON.stringify(image)]);
  return rows[0]!.pinned;
}

/** Enqueues the removal of a live canary whose tasks keep failing, once; the operation id, or null when it is not live. */
export async function autoAbortCanary(db: Queryable, id: string, reason: string): Promise<string | null> {
  const { rows } = await db.query<{ op: string | null }>(`select mp.canary_auto_abort($1, $2)::text as op`, [id, reason]);
  return rows[0]?.op ?? null;
}
