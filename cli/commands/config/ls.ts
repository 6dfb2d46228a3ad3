/** `mp config ls --env DIR [--all]`: the versions of the environment's configs, current first (never a value). */
import type { z } from 'zod';
import type { Context } from '../../context.ts';
import { lsOptions, runLs } from '../secret/common.ts';

export const options = lsOptions;
export type Options = z.output<typeof options>;

/**
 * @example
 *   $ mp config ls --env prod
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  await runLs(ctx, 'config', opts);
}
