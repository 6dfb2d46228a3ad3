/**
 * `cron.tick`: runs one run of a cron job (`mp.cron_runs`, fired by the scheduler in agent/cron/ or by
 * `mp cron run`) with the job template of the release the schedule belongs to. It reports the job's
 * container start (the run's start), node, exit code and, on failure, its last log lines; the run's
 * status follows the operation's (a trigger). A failed run alerts the schedule's webhook once per
 * failing streak. Crash safety as `job.run`: the job service is named after the operation and its exit
 * is recorded before the service goes, so a resumed attempt neither runs it twice nor loses its end.
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { ConfigError } from '../../sql/errors.ts';
import { claimAlert, getRun, reportRun } from '../../sql/control/cron.ts';
import { getRelease } from '../../sql/control/releases.ts';
import { runReleaseJob } from '../cron/run-template.ts';
import { postAlert } from '../cron/webhook.ts';
import { jobFailure, jobServiceName } from './job-run.ts';
import type { Executor, ExecutorContext, Json } from './types.ts';

export const payloadSchema = z.strictObject({
  run: z.union([z.string().regex(/^\d+$/), z.int().positive()]).transform(String),
  /** The cron job's key, for people reading the operation. */
  job: z.string().optional(),
});
export type CronTickPayload = z.output<typeof payloadSchema>;

/** Label with the cron run id on the job's service. */
export const CRON_RUN_LABEL = 'org.minipaas.cron.run';

function requirePool(ctx: Pick<ExecutorContext, 'pool'>): NonNullable<ExecutorContext['pool']> {
  if (!ctx.pool) throw new ConfigError('NO_DATABASE', 'cron.tick needs the control-plane database', 'run it in an agent');
  return ctx.pool;
}

export const cronTick: Executor<CronTickPayload, { service: string }, Json, Json> = {
  kind: 'cron.tick',
  description: 'run one tick of a cron job with its release\'s job template (the scheduler and `mp cron run` submit it)',
  example: { run: '1' } as CronTickPayload,
  payloadSchema: payloadSchema as unknown as z.ZodType<CronTickPayload>,
  target: 'manager',
  async observe(ctx) {
    return { service: jobServiceName(ctx.operationId) };
  },
  plan(payload, state) {
    return [{ type: 'run-job', run: payload.run, service: state.service }];
  },
  async execute(ctx, payload) {
    const pool = requirePool(ctx);
    const run = await getRun(pool, payload.run);
    if (!run.releaseId) throw new ConfigError('CRON_NO_RELEASE', `cron run ${run.id} has no release`, 'deploy the environment');
    const release = await getRelease(pool, run.releaseId);
    await ctx.step('tick', `cron job ${run.name} of ${run.environment}: ${run.trigger} run for ${run.tickAt.toISOString()} (release ${release.version})`, {
      run: Number(run.id),
      tickAt: run.tickAt.toISOString(),
    });
    const { end, label, image } = await runReleaseJob(ctx, {
      release,
      job: run.name,
      service: jobServiceName(ctx.operationId),
      labels: { [CRON_RUN_LABEL]: run.id },
      onStarted: ({ startedAt }) => reportRun(pool, run.id, { started_at: startedAt }),
    });
    await reportRun(pool, run.id, {
      exit_code: end.exitCode,
      ...(end.startedAt ? { started_at: end.startedAt } : {}),
      ...(end.ok ? {} : { logs: end.logs }),
    });
    if (end.ok) return { run: Number(run.id), exitCode: 0, durationMs: end.durationMs, resumed: end.resumed };
    const failure = jobFailure(label, end, image);
    const url = await claimAlert(pool, run.id);
    if (url) {
      try {
        const status = await postAlert(url, { run, exitCode: end.exitCode, logs: end.logs, message: failure.message });
        await ctx.step('alert', `failure alert sent (HTTP ${status}); none again until a run succeeds`, { status });
      } catch (err) {
        await ctx.step('alert', `failure alert could not be sent from ${hostname()}: ${(err as Error).message}`);
      }
    }
    throw failure;
  },
};
