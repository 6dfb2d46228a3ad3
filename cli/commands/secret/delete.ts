/**
 * `mp secret delete --env DIR --name NAME [--version V]... [--detach]`: marks the versions (default: all)
 * deleted and follows the operation removing their Swarm secrets; one a service still uses is kept and
 * named in the error.
 */
import type { z } from 'zod';
import type { Context } from '../../context.ts';
import { deleteOptions, runDelete } from './common.ts';

export const options = deleteOptions;
export type Options = z.output<typeof options>;

/**
 * @example
 *   $ mp secret delete --env prod --name NAME
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  await runDelete(ctx, 'secret', opts);
}
