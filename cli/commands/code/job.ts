/**
 * `mp code job --env DIR SERVICE... [--timeout SECONDS]`: each service becomes a job template in the
 * first Compose file defining it: label `org.minipaas.kind: job`, `deploy.restart_policy.condition:
 * none`, no `deploy.replicas`. A deploy no longer starts it; `mp job run --env DIR SERVICE` and
 * `pre_deploy: [SERVICE]` run it with the release's image, environment, secrets and networks.
 */
import { z } from 'zod';
import type { Context } from '../../context.ts';
import { positiveInt } from '../../inputs.ts';
import { markServices } from './mark.ts';

export const options = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    services: z.array(z.string().min(1)).min(1, 'name at least one service, e.g. migrate'),
    timeout: positiveInt.optional(),
  })
  .strict();
export type Options = z.output<typeof options>;

/**
 * @example
 *   $ mp code job --env dev migrate
 *   migrate: a job template
 *     compose.yaml: services.migrate.deploy.labels.org.minipaas.kind = "job"
 *     compose.yaml: services.migrate.deploy.restart_policy.condition = "none"
 *   apply it with `mp deploy --env dev`
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  await markServices(ctx, opts.env, opts.services, { kind: 'job', ...(opts.timeout !== undefined ? { timeoutSeconds: opts.timeout } : {}) });
}
