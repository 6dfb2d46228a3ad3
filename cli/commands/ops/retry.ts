/** `mp ops retry ID [--detach]`: queues a failed or cancelled operation again and follows it. */
import { z } from 'zod';
import { FINISHED, operationEvents, retryOperation } from '../../../sql/control/database.ts';
import type { Context } from '../../context.ts';
import { bigintId } from '../../inputs.ts';
import { control, followOperation, reportOutcome, requireAgent, requireOperation } from '../../operations.ts';
import { printResult } from '../../output.ts';

export const options = z.object({ id: bigintId, detach: z.boolean().default(false) }).strict();
export type Options = z.output<typeof options>;

/**
 * Re-queues operation ID (same id and payload; `mp.retry_operation`, which refuses any status but failed
 * or cancelled with `MP010`, exit 4), then follows its new events like `mp ops submit`: exit 0 when it
 * succeeds, 8 when it fails again. Without `--detach` it first checks that an agent able to run it is
 * alive, and refuses without writing when none is.
 *
 * @example
 *   $ mp ops retry 12
 *   2026-11-26T23:40:02Z  queued     retried by postgres
 *   ...
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const op = await requireOperation(ctx, opts.id);
  // Only a retry that can happen needs an agent; otherwise let the SQL say why it cannot.
  if (!opts.detach && FINISHED.has(op.status) && op.status !== 'succeeded') await requireAgent(ctx, op.target);
  const before = await operationEvents(control(ctx), opts.id);
  await retryOperation(control(ctx), opts.id);
  if (opts.detach) {
    printResult(ctx, opts.id, { id: Number(opts.id) });
    return;
  }
  reportOutcome(ctx, await followOperation(ctx, opts.id, { after: before.at(-1)?.pos ?? '0' }));
}
