/**
 * `canary.remove`: ends a canary by removing its Swarm service (`mp deploy abort`, `mp deploy promote`,
 * or the agent's canary watcher). For a promote it runs after the promote's `deploy` operation (both on
 * the environment's serial key) and first checks that this deploy succeeded: if it did not, the canary
 * is left running and the operation fails, so the canary stays live (0010_canary.sql) and the user can
 * promote again or abort. The canary row records the outcome when this operation succeeds.
 */
import { z } from 'zod';
import { getCanary } from '../../sql/control/canaries.ts';
import { getRelease } from '../../sql/control/releases.ts';
import { ConflictError } from '../../sql/errors.ts';
import { canaryServices, removeCanaryServices, requirePool } from './canary-start.ts';
import type { Executor, Json } from './types.ts';

export const payloadSchema = z.strictObject({
  canary: z.union([z.string().regex(/^\d+$/), z.int().positive()]).transform(String),
  service: z.string().optional(),
  outcome: z.enum(['promoted', 'aborted']),
  /** The promote's release (its id). */
  release: z.union([z.string().regex(/^\d+$/), z.int().positive()]).transform(String).optional(),
  reason: z.string().optional(),
});
export type CanaryRemovePayload = z.output<typeof payloadSchema>;

export const canaryRemove: Executor<CanaryRemovePayload, { services: string[] }, Json, Json> = {
  kind: 'canary.remove',
  description: 'remove a canary service, after its promotion deployed or when it is aborted (`mp deploy promote|abort` submit it)',
  example: { canary: '1', outcome: 'aborted', reason: 'aborted by hand' } as CanaryRemovePayload,
  payloadSchema: payloadSchema as unknown as z.ZodType<CanaryRemovePayload>,
  target: 'manager',

  async observe(ctx, payload) {
    return { services: (await canaryServices(ctx.docker, payload.canary)).map((s) => s.name) };
  },

  plan(_payload, state) {
    return state.services.map((name) => ({ type: 'remove-service', name }));
  },

  async execute(ctx, payload) {
    const pool = requirePool(ctx);
    const canary = await getCanary(pool, payload.canary);
    if (payload.outcome === 'promoted' && payload.release) {
      const release = await getRelease(pool, payload.release);
      if (release.status !== 'succeeded') {
        throw new ConflictError(
          'PROMOTE_FAILED',
          `the promotion of canary ${canary.id} (${canary.service}) deployed release ${release.version}, which ${release.status}${release.error ? `: ${release.error.split('\n')[0]}` : ''}; the canary stays live`,
          'promote it again once the deploy can succeed, or abort it',
        );
      }
      await ctx.step('promoted', `release ${release.version} runs ${canary.service} at the canary's version; removing the canary`);
    } else {
      await ctx.step('abort', `aborting canary ${canary.id} of ${canary.service}: ${payload.reason ?? 'by hand'}`);
    }
    const removed = await removeCanaryServices(ctx.docker, ctx, canary.id);
    return { canary: canary.id, outcome: payload.outcome, removed, ...(payload.reason ? { reason: payload.reason } : {}) };
  },
};
