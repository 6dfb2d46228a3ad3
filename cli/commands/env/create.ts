/** `mp env create NAME`: creates an environment (a namespace for operations; idempotent). */
import { z } from 'zod';
import { createEnvironment } from '../../../sql/control/database.ts';
import type { Context } from '../../context.ts';
import { environmentName } from '../../inputs.ts';
import { control } from '../../operations.ts';
import { printResult } from '../../output.ts';

export const options = z.object({ name: environmentName }).strict();
export type Options = z.output<typeof options>;

/**
 * Calls `mp.environment_create`, which does nothing when the environment exists; says which happened.
 *
 * @example
 *   $ mp env create prod
 *   created environment "prod"
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const [existing] = await ctx.db().query(`select 1 from mp.environments where name = $1`, [opts.name]);
  await createEnvironment(control(ctx), opts.name);
  printResult(ctx, existing ? `environment "${opts.name}" already exists` : `created environment "${opts.name}"`, {
    name: opts.name,
    created: !existing,
  });
}
