/**
 * `mp rollback --env DIR [--to VERSION] [--detach]`: re-applies a recorded release exactly (its spec,
 * its images by digest or id, its own secret and config versions, not today's) as a new release that
 * says which one it restores. Without `--to`: the succeeded release before the current one.
 */
import { z } from 'zod';
import { checkPinnedImages } from '../../agent/deploy/images.ts';
import { listReleases, releaseByVersion, type Release } from '../../sql/control/releases.ts';
import { ConfigError, NotFoundError } from '../../sql/errors.ts';
import type { Context } from '../context.ts';
import { environmentDocker, requester, submitRelease } from '../deploys.ts';
import { environmentDir, environmentNameOf, readSettings } from '../environment.ts';
import { positiveInt } from '../inputs.ts';

export const options = z.object({ env: z.string().min(1), to: positiveInt.optional(), detach: z.boolean().default(false) }).strict();
export type Options = z.output<typeof options>;

/** The release to go back to: `--to`, else the last succeeded one before the newest succeeded one. */
async function target(ctx: Context, env: string, to: number | undefined): Promise<Release> {
  const pool = ctx.db().pool;
  if (to !== undefined) return await releaseByVersion(pool, env, to);
  const succeeded = (await listReleases(pool, env, 1000)).filter((r) => r.status === 'succeeded');
  if (succeeded.length < 2) {
    throw new NotFoundError(
      'NOTHING_TO_ROLL_BACK',
      `environment ${env} has ${succeeded.length === 0 ? 'no succeeded release' : 'only one succeeded release'} to go back from`,
      'name a release with --to VERSION; `mp deploy history` lists them',
    );
  }
  return succeeded[1]!;
}

export async function run(ctx: Context, opts: Options): Promise<void> {
  const dir = environmentDir(opts.env);
  const name = environmentNameOf(dir);
  const release = await target(ctx, name, opts.to);
  if (!release.images && release.status !== 'succeeded') {
    throw new ConfigError(
      'NOT_RESTORABLE',
      `release ${release.version} of ${name} never ran (it ${release.status}), so it has no pinned images to restore`,
      'roll back to a release that succeeded; `mp deploy history` lists them',
    );
  }
  // Checked here when the engine answers, so a rollback to pruned images is refused before anything is
  // written; the agent checks again before it applies.
  const docker = await environmentDocker(readSettings(dir), '`mp rollback`').catch(() => undefined);
  if (docker && release.images) await checkPinnedImages(docker, release.images);
  await submitRelease(
    ctx,
    {
      environment: name,
      stack: release.stack,
      spec: release.spec,
      kind: 'rollback',
      restores: release.version,
      source: release.source,
      requestedBy: requester(release.source.git_commit),
    },
    { detach: opts.detach },
  );
}
