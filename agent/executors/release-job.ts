/**
 * `release.job`: runs one job template of a release (`mp job run --env DIR JOB [-- ARGS]` submits it
 * for the environment's current release) as a replicated job, with the release's image, environment,
 * secrets and networks; its output is reported as `log` steps while it runs, and the operation fails
 * with the job's exit code when the job does. Crash safety as `job.run` (agent/executors/job-run.ts).
 */
import { z } from 'zod';
import { ConfigError } from '../../sql/errors.ts';
import { getRelease } from '../../sql/control/releases.ts';
import { runReleaseJob } from '../cron/run-template.ts';
import { findJob } from '../cron/templates.ts';
import { jobFailure, jobServiceName } from './job-run.ts';
import type { Executor, ExecutorContext, Json } from './types.ts';

export const payloadSchema = z.strictObject({
  release: z.union([z.string().regex(/^\d+$/), z.int().positive()]).transform(String),
  /** The job's Compose service key. */
  job: z.string().min(1).max(63),
  /** Replaces the template's command, as `docker compose run SERVICE ARGS...`. */
  args: z.array(z.string()).optional(),
});
export type ReleaseJobPayload = z.output<typeof payloadSchema>;

function requirePool(ctx: Pick<ExecutorContext, 'pool'>): NonNullable<ExecutorContext['pool']> {
  if (!ctx.pool) throw new ConfigError('NO_DATABASE', 'release.job needs the control-plane database', 'run it in an agent');
  return ctx.pool;
}

export const releaseJob: Executor<ReleaseJobPayload, { service: string }, Json, Json> = {
  kind: 'release.job',
  description: "run a job template of a release (its image, environment, secrets, networks) to completion (`mp job run` submits it)",
  example: { release: '1', job: 'migrate' } as ReleaseJobPayload,
  payloadSchema: payloadSchema as unknown as z.ZodType<ReleaseJobPayload>,
  target: 'manager',
  async observe(ctx) {
    return { service: jobServiceName(ctx.operationId) };
  },
  plan(payload, state) {
    return [{ type: 'run-job', job: payload.job, release: payload.release, service: state.service }];
  },
  async execute(ctx, payload) {
    const release = await getRelease(requirePool(ctx), payload.release);
    findJob(release, payload.job);
    const { end, label, image } = await runReleaseJob(ctx, {
      release,
      job: payload.job,
      service: jobServiceName(ctx.operationId),
      args: payload.args,
      streamLogs: true,
    });
    if (!end.ok) throw jobFailure(label, end, image);
    return { job: payload.job, release: release.version, exitCode: 0, durationMs: end.durationMs, resumed: end.resumed };
  },
};
