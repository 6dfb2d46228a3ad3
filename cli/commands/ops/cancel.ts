/** `mp ops cancel ID`: cancels a queued operation at once, a running one at its next safe point. */
import { z } from 'zod';
import { cancelOperation } from '../../../sql/control/database.ts';
import type { Context } from '../../context.ts';
import { bigintId } from '../../inputs.ts';
import { control } from '../../operations.ts';
import { printResult } from '../../output.ts';

export const options = z.object({ id: bigintId }).strict();
export type Options = z.output<typeof options>;

/**
 * Calls `mp.cancel_operation`: an operation no agent has claimed yet is cancelled now; a running one is
 * asked to stop at its executor's next safe point. An operation that already ended is a conflict (SQL
 * `MP010`, exit 4); an unknown one is `MP009` (exit 3).
 *
 * @example
 *   $ mp ops cancel 12
 *   operation 12 cancelled (it had not started)
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const status = await cancelOperation(control(ctx), opts.id);
  printResult(
    ctx,
    status === 'cancelled'
      ? `operation ${opts.id} cancelled (it had not started)`
      : `cancel requested: operation ${opts.id} is running and stops at its next safe point; watch it with \`mp ops tail ${opts.id}\``,
    { id: Number(opts.id), status: status === 'cancelled' ? 'cancelled' : 'cancel_requested' },
  );
}
