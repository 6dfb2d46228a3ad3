/** `mp queue purge QUEUE --yes`: deletes a queue's waiting and scheduled jobs and its dead letters. */
import { z } from 'zod';
import { ConfigError } from '../../../sql/errors.ts';
import type { Context } from '../../context.ts';
import { queueName } from '../../inputs.ts';
import { bigintValue, printResult } from '../../output.ts';

export const options = z.object({ queue: queueName, yes: z.boolean().default(false) }).strict();
export type Options = z.output<typeof options>;

/**
 * Empties a queue via `mp.purge`. Running jobs are left to finish. Refuses without `--yes`: there is no undo.
 *
 * @example
 *   $ mp queue purge emails --yes
 *   purged 12 jobs from queue "emails"
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  if (!opts.yes) {
    throw new ConfigError(
      'CONFIRM_PURGE',
      `refusing to purge queue "${opts.queue}" without confirmation: its waiting, scheduled and dead jobs would be deleted for good`,
      `add --yes: mp queue purge ${opts.queue} --yes`,
    );
  }
  const [row] = await ctx.db().query<{ purged: string }>(`select mp.purge($1) as purged`, [opts.queue]);
  const purged = bigintValue(row!.purged)!;
  printResult(ctx, `purged ${purged} job${purged === 1 ? '' : 's'} from queue "${opts.queue}"`, {
    queue: opts.queue,
    purged,
  });
}
