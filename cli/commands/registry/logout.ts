/**
 * `mp registry logout --env DIR [--registry HOST]`: deletes the environment's stored credentials for
 * the registry. The next deploy gives the services that had them empty ones (so they pull anonymously).
 */
import { z } from 'zod';
import { deleteRegistryAuth } from '../../../sql/control/registry-auth.ts';
import type { Context } from '../../context.ts';
import { control, requireEnvironment } from '../../operations.ts';
import { printResult } from '../../output.ts';
import { registryTarget, targetOptions } from './common.ts';

export const options = z.object(targetOptions).strict();
export type Options = z.output<typeof options>;

/**
 * @example
 *   $ mp registry logout --env prod
 *   credentials for registry.example.com deleted from prod; ...
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const target = registryTarget(opts);
  await requireEnvironment(ctx, target.environment);
  await deleteRegistryAuth(control(ctx), { environment: target.environment, registry: target.host });
  printResult(
    ctx,
    `credentials for ${target.host} deleted from ${target.environment}; the next \`mp deploy --env ${opts.env}\` takes them from the services that had them`,
    { environment: target.environment, registry: target.host },
  );
}
