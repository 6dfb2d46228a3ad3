/** `mp queue retry-dead QUEUE [--id ID...]`: dead letters back to waiting, with fresh attempts. */
import { z } from 'zod';
import type { Context } from '../../context.ts';
import { bigintId, queueName } from '../../inputs.ts';
import { printResult } from '../../output.ts';

export const options = z.object({ queue: queueName, id: z.array(bigintId).nonempty().optional() }).strict();
export type Options = z.output<typeof options>;

/**
 * Moves the dead jobs of a queue (all, or the `--id` ones) back to waiting via `mp.retry_dead`.
 *
 * @example
 *   $ mp queue retry-dead emails --id 41 42
 *   retried 2 dead jobs of queue "emails"
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const [row] = await ctx
    .db()
    .query<{ retried: number }>(`select mp.retry_dead($1, $2::bigint[]) as retried`, [opts.queue, opts.id ?? null]);
  const retried = row!.retried;
  const asked = opts.id ? ` (of ${opts.id.length} asked for; the others are not dead jobs of this queue)` : '';
  printResult(
    ctx,
    `retried ${retried} dead job${retried === 1 ? '' : 's'} of queue "${opts.queue}"${opts.id && retried < opts.id.length ? asked : ''}`,
    { queue: opts.queue, retried },
  );
}
