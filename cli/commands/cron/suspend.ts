/** `mp cron suspend|resume --env DIR JOB`: a suspended cron job records its ticks as skipped; resuming starts from now. */
import { z } from 'zod';
import { suspendSchedule } from '../../../sql/control/cron.ts';
import type { Context } from '../../context.ts';
import { environmentDir, environmentNameOf } from '../../environment.ts';
import { printResult } from '../../output.ts';

export const options = z.object({ env: z.string().min(1), job: z.string().min(1) }).strict();
export type Options = z.output<typeof options>;

async function set(ctx: Context, opts: Options, suspend: boolean): Promise<void> {
  const environment = environmentNameOf(environmentDir(opts.env));
  const changed = await suspendSchedule(ctx.db().pool, environment, opts.job, suspend);
  const state = suspend ? 'suspended' : 'resumed';
  printResult(ctx, changed ? `cron job ${opts.job} of ${environment} ${state}` : `cron job ${opts.job} of ${environment} was already ${suspend ? 'suspended' : 'active'}`, {
    job: opts.job,
    environment,
    suspended: suspend,
    changed,
  });
}

/** `mp cron suspend`. */
export async function run(ctx: Context, opts: Options): Promise<void> {
  await set(ctx, opts, true);
}

/** `mp cron resume`, as a module of its own shape for main.ts. */
export const resume = {
  options,
  run: (ctx: Context, opts: Options): Promise<void> => set(ctx, opts, false),
};
