/**
 * `mp job run --env DIR JOB [--detach] [-- ARGS...]`: runs a job template of the environment's current
 * release (its newest succeeded one) as a `release.job` operation: the release's image, environment,
 * secrets and networks; ARGS replace the template's command. Streams the job's output to stdout and
 * exits with the job's exit code. Refuses, writing nothing, a job the release does not define or a
 * service that is not a job.
 */
import { z } from 'zod';
import { findJob } from '../../../agent/cron/templates.ts';
import { submitOperation } from '../../../sql/control/database.ts';
import { latestRelease } from '../../../sql/control/releases.ts';
import { NotFoundError } from '../../../sql/errors.ts';
import type { Context } from '../../context.ts';
import { environmentDir, environmentNameOf } from '../../environment.ts';
import { control, requireAgent } from '../../operations.ts';
import { followJob } from './follow.ts';

export const options = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    job: z.string().min(1, 'name the job, e.g. migrate'),
    args: z.array(z.string()).default([]),
    detach: z.boolean().default(false),
  })
  .strict();
export type Options = z.output<typeof options>;

/**
 * @example
 *   $ mp job run --env prod migrate -- --to 42
 *   2026-12-01T22:31:39Z  queued     release.job queued for manager
 *   applying migration 42
 *   $ echo $?
 *   0
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const environment = environmentNameOf(environmentDir(opts.env));
  const release = await latestRelease(ctx.db().pool, environment, 'succeeded');
  if (!release) {
    throw new NotFoundError('NO_RELEASE', `environment ${environment} has no deployed release to run '${opts.job}' from`, `deploy it first: \`mp deploy --env ${opts.env}\``);
  }
  findJob(release, opts.job);
  if (!opts.detach) await requireAgent(ctx, 'manager');
  const id = await submitOperation(control(ctx), {
    kind: 'release.job',
    environment,
    payload: { release: release.id, job: opts.job, ...(opts.args.length ? { args: opts.args } : {}) },
    options: { target: 'manager' },
  });
  if (opts.detach) {
    ctx.stdout.write(ctx.json ? `${JSON.stringify({ operation: Number(id), release: release.version })}\n` : `operation ${id}: job ${opts.job} of release ${release.version}\n`);
    return;
  }
  if (!ctx.json) ctx.stderr.write(`job ${opts.job} of release ${release.version} of ${environment}: operation ${id}\n`);
  await followJob(ctx, id);
}
