/**
 * `mp deploy promote --env DIR [SERVICE] [--detach]`: makes the canary's version the environment's. It
 * records a deploy release (kind `deploy`, `source.canary` naming the canary) that is the current
 * release with SERVICE moved to the canary's version (keeping the main service's replica count), and
 * enqueues its `deploy` operation and, behind it on the environment's serial key, the `canary.remove`
 * that removes the canary service once that deploy has succeeded (if it fails, the canary stays live).
 * History shows the promote as that release; the canary row records `promoted` and its version.
 */
import { z } from 'zod';
import { endCanary, type Canary } from '../../../sql/control/canaries.ts';
import { latestRelease, type Release, type ReleaseSource } from '../../../sql/control/releases.ts';
import { ConflictError, NotFoundError } from '../../../sql/errors.ts';
import type { StackSpec } from '../../../stack/types.ts';
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

/** Pure: the current release's spec with the canary's service moved to the canary's version (main's count kept). */
export function promotedSpec(current: Release, canary: Canary): StackSpec {
  const main = current.spec.services.find((s) => s.key === canary.service);
  return {
    ...current.spec,
    services: current.spec.services.map((s) =>
      s.key === canary.service ? { ...canary.spec, spec: { ...canary.spec.spec, ...(main?.spec.Mode ? { Mode: main.spec.Mode } : {}) } } : s,
    ),
  };
}

/**
 * @example
 *   $ mp deploy promote --env prod api
 *   promoting canary 3 of api: release 8 of prod (deploy) recorded; operations 61 (deploy), 62 (canary.remove)
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const name = environmentNameOf(environmentDir(opts.env));
  const pool = ctx.db().pool;
  const canary = await canaryToEnd(ctx, name, opts.env, opts.service, 'promote');
  if (canary.status !== 'live') {
    throw new ConflictError('CANARY_NOT_LIVE', `${describeCanary(canary)} is not live yet, so there is nothing proven to promote`, `wait for it (\`mp ops tail ${canary.startOperationId}\`), or abort it`);
  }
  const current = await latestRelease(pool, name, 'succeeded');
  if (!current) throw new NotFoundError('UNKNOWN_RELEASE', `environment ${name} has no succeeded release to promote into`, `deploy it: \`mp deploy --env ${opts.env}\``);
  if (!opts.detach) await requireAgent(ctx, 'manager');
  const source = { ...current.source, canary: { id: canary.id, service: canary.service, files: canary.source.files, git_commit: canary.source.git_commit ?? null } } as ReleaseSource;
  const ended = await endCanary(pool, canary.id, { action: 'promote', spec: promotedSpec(current, canary), source, requestedBy: requester(canary.source.git_commit) });
  if (ctx.json && opts.detach) {
    ctx.stdout.write(`${toJson({ canary: Number(canary.id), release: ended.releaseVersion, operations: [Number(ended.deployOperationId), Number(ended.removeOperationId)] })}\n`);
    return;
  }
  if (!ctx.json) {
    ctx.stdout.write(
      `promoting canary ${canary.id} of ${canary.service}: release ${ended.releaseVersion} of ${name} (deploy) recorded; operations ${ended.deployOperationId} (deploy), ${ended.removeOperationId} (canary.remove)\n`,
    );
  }
  if (opts.detach) return;
  reportOutcome(ctx, await followOperation(ctx, ended.deployOperationId!));
  reportOutcome(ctx, await followOperation(ctx, ended.removeOperationId));
}
