/**
 * Builds as the control plane records them (`0009_builds.sql`): a build is an operation the CLI starts,
 * reports and finishes itself (it runs where the source is, so no agent claims it), and the images it
 * pushed are rows of `mp.builds`, written in the same transaction as its success. `mp deploy` reads the
 * newest build of each image and deploys its digest.
 *
 * Terminology: a *build* is one `mp deploy build` run (one operation of kind `build`); a *built image*
 * is one service's result in it: the Compose image name it was built for, the reference it was pushed
 * as and the registry's digest.
 */
import { mapDatabaseErrors } from '../errors.ts';
import type { Queryable } from './releases.ts';

/** One service's image as a successful build records it. */
export interface BuiltImageRecord {
  service: string;
  /** The service's image as the Compose files name it, e.g. `hello-api:1`. */
  image: string;
  /** `registry/name:version` it was pushed as; null when no registry is configured. */
  pushed: string | null;
  /** `sha256:...` the registry gave for the push; null when not pushed. */
  digest: string | null;
  /** The image id on the engine that built it. */
  image_id: string;
}

/** A recorded build of an image: the record plus where it came from. */
export interface RecordedBuild extends BuiltImageRecord {
  environment: string;
  operationId: string;
  createdAt: Date;
}

/**
 * Starts a build of `environment` on host `host` (the operation runs on node `cli@<host>`); returns the
 * operation id. Creates the environment when it is new.
 *
 * @example
 *   const op = await startBuild(pool, { environment: 'prod', host: 'laptop', payload: { services: ['api'] } });
 */
export async function startBuild(db: Queryable, opts: { environment: string; host: string; payload: Record<string, unknown> }): Promise<string> {
  const { rows } = await mapDatabaseErrors(() =>
    db.query<{ id: string }>(`select mp.build_start($1, $2, $3)::text as id`, [opts.environment, opts.host, JSON.stringify(opts.payload)]),
  );
  return rows[0]!.id;
}

/** Reports one step of a running build; returns true when someone asked to cancel it (`mp ops cancel`). */
export async function buildEvent(
  db: Queryable,
  opId: string,
  event: { step: string; message: string; level?: 'info' | 'warn' | 'error'; data?: unknown },
): Promise<boolean> {
  const { rows } = await mapDatabaseErrors(() =>
    db.query<{ cancel: boolean }>(`select mp.build_event($1, $2, $3, $4, $5) as cancel`, [
      opId,
      event.step,
      event.message,
      event.level ?? 'info',
      event.data === undefined ? null : JSON.stringify(event.data),
    ]),
  );
  return rows[0]!.cancel;
}

/**
 * Ends a running build. On success, `images` are recorded in the same transaction; a failed or
 * cancelled build records none.
 */
export async function finishBuild(
  db: Queryable,
  opId: string,
  outcome:
    | { status: 'succeeded'; images: BuiltImageRecord[]; result?: unknown }
    | { status: 'failed' | 'cancelled'; error: string; result?: unknown },
): Promise<void> {
  const images = outcome.status === 'succeeded' ? outcome.images : [];
  const error = outcome.status === 'succeeded' ? null : outcome.error;
  await mapDatabaseErrors(() =>
    db.query(`select mp.build_finish($1, $2, $3, $4, $5)`, [
      opId,
      outcome.status,
      outcome.result === undefined ? null : JSON.stringify(outcome.result),
      error,
      JSON.stringify(images),
    ]),
  );
}

/**
 * The newest pushed build of each image of `environment`, keyed by the Compose image name. Builds that
 * were not pushed (no registry) are left out: their image exists only on the engine that built it, and
 * the agent pins that by image id already.
 */
export async function latestPushedBuilds(db: Queryable, environment: string): Promise<Map<string, RecordedBuild>> {
  const { rows } = await db.query<RecordedBuild>(
    `select distinct on (image) environment, service, image, pushed, digest, image_id, operation_id::text as "operationId",
            created_at as "createdAt"
       from mp.builds
      where environment = $1 and digest is not null
      order by image, id desc`,
    [environment],
  );
  return new Map(rows.map((r) => [r.image, r]));
}
