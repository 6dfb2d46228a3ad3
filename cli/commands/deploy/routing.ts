/**
 * `mp deploy routing --env DIR [--target T] [--detach]` (the original's verb): applies the
 * environment's routes as one `routing` operation on a manager agent, without deploying anything
 * else: the Caddy service follows the routes' ports and networks, and its config is loaded through
 * the admin API when it differs from what Caddy serves. `mp deploy` does the same after a deploy.
 */
import { z } from 'zod';
import { ingressSpec } from '../../../agent/routing/apply.ts';
import { describeRoute, parseRoutes } from '../../../agent/routing/routes.ts';
import { submitOperation } from '../../../sql/control/database.ts';
import { mapDatabaseErrors } from '../../../sql/errors.ts';
import type { Context } from '../../context.ts';
import { loadEnvironment } from '../../environment.ts';
import { target } from '../../inputs.ts';
import { control, followOperation, reportOutcome, requireAgent } from '../../operations.ts';
import { printResult } from '../../output.ts';

export const options = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    target: target.default('manager'),
    detach: z.boolean().default(false),
  })
  .strict();
export type Options = z.output<typeof options>;

/**
 * @example
 *   $ mp deploy routing --env dev
 *   routing of dev: 1 route (http://localhost:8000 -> api:8080); operation 51
 *   ...  routes     Caddy loaded 1 routes (servers mp_8000)
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const env = loadEnvironment(opts.env);
  const routes = parseRoutes(env.settings.routes);
  const ingress = ingressSpec(env.spec);
  if (!opts.detach) await requireAgent(ctx, opts.target);
  await mapDatabaseErrors(() => ctx.db().pool.query(`select mp.environment_create($1)`, [env.name]));
  const id = await submitOperation(control(ctx), {
    kind: 'routing',
    environment: env.name,
    payload: { stack: env.spec.name, routes: env.settings.routes, ...(ingress ? { ingress } : {}) },
    options: { target: opts.target },
  });
  if (opts.detach) {
    printResult(ctx, id, { operation: Number(id), routes: routes.map((r) => r.key) });
    return;
  }
  if (!ctx.json) {
    ctx.stdout.write(`routing of ${env.name}: ${routes.length} route${routes.length === 1 ? '' : 's'}${routes.length ? ` (${routes.map(describeRoute).join(', ')})` : ''}; operation ${id}\n`);
  }
  reportOutcome(ctx, await followOperation(ctx, id));
}
