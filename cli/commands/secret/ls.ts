/** `mp secret ls --env DIR [--all]`: the versions of the environment's secrets, current first (never a value). */
import type { z } from 'zod';
import type { Context } from '../../context.ts';
import { lsOptions, runLs } from './common.ts';

export const options = lsOptions;
export type Options = z.output<typeof options>;

/**
 * @example
 *   $ mp secret ls --env prod
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  await runLs(ctx, 'secret', opts);
}
