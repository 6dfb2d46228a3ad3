/**
 * `mp secret prune --env DIR [--keep N] [--delete]`: lists the versions that are neither current nor used by
 * the last N releases (default 5), so rollbacks keep working; `--delete` deletes them.
 */
import type { z } from 'zod';
import type { Context } from '../../context.ts';
import { pruneOptions, runPrune } from './common.ts';

export const options = pruneOptions;
export type Options = z.output<typeof options>;

/**
 * @example
 *   $ mp secret prune --env prod --delete
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  await runPrune(ctx, 'secret', opts);
}
