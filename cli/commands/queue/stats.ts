/** `mp queue stats QUEUE`: one queue's job counts. */
import { z } from 'zod';
import type { Context } from '../../context.ts';
import { queueName } from '../../inputs.ts';
import { printObject } from '../../output.ts';
import { queueStats, STATS_COLUMNS, withAge } from './ls.ts';

export const options = z.object({ queue: queueName }).strict();
export type Options = z.output<typeof options>;

/**
 * Prints the counts of one queue; an unknown queue fails with the SQL's MP002 error (exit 3).
 *
 * @example
 *   $ mp queue stats emails --json
 *   {"name":"emails","waiting":12,"scheduled":0,"running":3,"dead":1,"oldest_waiting_seconds":65.2}
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const [row] = await queueStats(ctx.db(), opts.queue);
  // queue_stats raises MP002 for an unknown queue, so one row is always there.
  if (ctx.json) printObject(ctx, row!, []);
  else
    printObject(
      ctx,
      withAge(row!),
      STATS_COLUMNS.map((c) => ({ ...c, heading: (c.heading ?? c.key).toLowerCase() })),
    );
}
