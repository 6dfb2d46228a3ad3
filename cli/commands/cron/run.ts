/**
 * `mp cron run --env DIR JOB [--detach]`: runs a cron job now, once (a `manual` run, recorded like a
 * tick, under the schedule's overlap policy), follows it and exits with the job's exit code.
 */
import { z } from 'zod';
import { fireTick, scheduleByName } from '../../../sql/control/cron.ts';
import { ConflictError } from '../../../sql/errors.ts';
import type { Context } from '../../context.ts';
import { environmentDir, environmentNameOf } from '../../environment.ts';
import { requireAgent } from '../../operations.ts';
import { followJob } from '../job/follow.ts';

export const options = z.object({ env: z.string().min(1), job: z.string().min(1), detach: z.boolean().default(false) }).strict();
export type Options = z.output<typeof options>;

export async function run(ctx: Context, opts: Options): Promise<void> {
  const environment = environmentNameOf(environmentDir(opts.env));
  const schedule = await scheduleByName(ctx.db().pool, environment, opts.job);
  if (!opts.detach) await requireAgent(ctx, 'manager');
  const fired = await fireTick(ctx.db().pool, { scheduleId: schedule.id, tickAt: ctx.clock.now(), trigger: 'manual' });
  if (fired.status !== 'queued' || !fired.operationId) {
    throw new ConflictError('CRON_SKIPPED', `run ${fired.runId} of ${opts.job} was ${fired.status}: another run is still running (overlap ${schedule.overlap})`, `\`mp cron history --env ${opts.env} ${opts.job}\` shows it`);
  }
  if (opts.detach || ctx.json) {
    ctx.stdout.write(ctx.json ? `${JSON.stringify({ run: Number(fired.runId), operation: Number(fired.operationId) })}\n` : `run ${fired.runId}: operation ${fired.operationId}\n`);
    if (opts.detach) return;
  } else {
    ctx.stderr.write(`run ${fired.runId} of cron job ${opts.job}: operation ${fired.operationId}\n`);
  }
  await followJob(ctx, fired.operationId);
}
