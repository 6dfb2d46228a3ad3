/** `mp ops tail ID`: an operation's events, then new ones until it ends; the exit code says how it ended. */
import { z } from 'zod';
import type { Context } from '../../context.ts';
import { bigintId } from '../../inputs.ts';
import { followOperation, reportOutcome, requireOperation } from '../../operations.ts';

export const options = z.object({ id: bigintId }).strict();
export type Options = z.output<typeof options>;

/**
 * Prints all events of operation ID and follows it until it ends (an operation that already ended prints
 * its events and returns at once): exit 0 when it succeeded, 8 with the reason when it failed or was
 * cancelled, 130 when interrupted with Ctrl-C (the operation keeps running).
 *
 * @example
 *   $ mp ops tail 12
 *   2026-11-26T23:31:39Z  queued     docker.info queued for any
 *   2026-11-26T23:31:39Z  started    started on laptop
 *   2026-11-26T23:31:39Z  info       Docker 27.3.1 (API 1.47) on Debian GNU/Linux 12 (bookworm), swarm inactive
 *   2026-11-26T23:31:39Z  succeeded  succeeded
 *   operation 12 docker.info succeeded in 0.1 s
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  await requireOperation(ctx, opts.id);
  reportOutcome(ctx, await followOperation(ctx, opts.id));
}
