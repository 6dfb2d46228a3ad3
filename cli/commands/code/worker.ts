/**
 * `mp code worker --env DIR SERVICE...` (the original's verb: `mp code worker --env dev worker
 * emails_worker` marks the two services `worker` and `emails_worker`): each becomes a long-running
 * worker in the first Compose file defining it: label `org.minipaas.kind: worker`,
 * `deploy.restart_policy.condition: on-failure`, and its `ports:` removed (a note says so). A worker
 * stays an ordinary service of the stack; the label says what it is. Services are never created here:
 * one no file defines is an error listing those that are.
 */
import { z } from 'zod';
import type { Context } from '../../context.ts';
import { markServices } from './mark.ts';

export const options = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    services: z.array(z.string().min(1)).min(1, 'name at least one service, e.g. worker'),
  })
  .strict();
export type Options = z.output<typeof options>;

/**
 * @example
 *   $ mp code worker --env dev worker emails_worker
 *   note: worker: ports removed (a worker publishes none; a service that answers requests is not a worker)
 *   worker, emails_worker: a worker
 *     compose.yaml: services.worker.deploy.labels.org.minipaas.kind = "worker"
 *     ...
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  await markServices(ctx, opts.env, opts.services, { kind: 'worker' });
}
