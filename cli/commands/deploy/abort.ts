/**
 * `mp deploy abort --env DIR [SERVICE] [--detach]`: removes the canary of SERVICE (or the only one) with
 * a `canary.remove` operation; only the version the current release runs answers afterwards. The canary
 * row records `aborted` and who aborted it.
 */
import { z } from 'zod';
import { endCanary } from '../../../sql/control/canaries.ts';
import { ConflictError } from '../../../sql/errors.ts';
import { canaryToEnd, describeCanary } from '../../canaries.ts';
import type { Context } from '../../context.ts';
import { requester } from '../../deploys.ts';
import { environmentDir, environmentNameOf } from '../../environment.ts';
import { followOperation, reportOutcome, requireAgent } from '../../operations.ts';
import { toJson } from '../../output.ts';

export const options = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    service: z.string().min(1).optional(),
    detach: z.boolean().default(false),
  })
  .strict();
export type Options = z.output<typeof options>;

/**
 * @example
 *   $ mp deploy abort --env prod api
 *   aborting canary 3 of api in prod; operation 63
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const name = environmentNameOf(environmentDir(opts.env));
  const canary = await canaryToEnd(ctx, name, opts.env, opts.service, 'abort');
  if (canary.status === 'promoting') throw new ConflictError('CANARY_PROMOTING', `${describeCanary(canary)} is being promoted`, '`mp deploy status` shows how it goes');
  if (!opts.detach) await requireAgent(ctx, 'manager');
  const who = requester(null);
  const ended = await endCanary(ctx.db().pool, canary.id, { action: 'abort', reason: `aborted by ${[who.os_user, who.host].filter(Boolean).join('@') || 'hand'}` });
  if (ctx.json && opts.detach) {
    ctx.stdout.write(`${toJson({ canary: Number(canary.id), operation: Number(ended.removeOperationId) })}\n`);
    return;
  }
  if (!ctx.json) ctx.stdout.write(`aborting canary ${canary.id} of ${canary.service} in ${name}; operation ${ended.removeOperationId}\n`);
  if (opts.detach) return;
  reportOutcome(ctx, await followOperation(ctx, ended.removeOperationId));
}
