/**
 * `node.remove`: removes a node from the Swarm (`docker node rm`). A node that is still up must be
 * drained first (its tasks moved), unless `force`; `mp nodes rm NODE [--force]` submits it.
 */
import { z } from 'zod';
import { ConflictError } from '../../sql/errors.ts';
import type { SwarmNode } from '../docker/engine.ts';
import { findSwarmNode } from './node-availability.ts';
import type { Executor } from './types.ts';

export const payloadSchema = z.strictObject({ node: z.string().min(1), force: z.boolean().default(false) });
export type RemovePayload = z.infer<typeof payloadSchema>;

export type RemoveAction = { type: 'remove-node'; node: string; nodeId: string; force: boolean };

export const nodeRemove: Executor<RemovePayload, { node: SwarmNode }, RemoveAction> = {
  kind: 'node.remove',
  description: 'remove a node from the swarm (drain it first, or --force) (`mp nodes rm`)',
  example: { node: 'worker-1', force: false },
  payloadSchema,
  target: 'manager',

  async observe(ctx, payload) {
    return { node: await findSwarmNode(ctx.docker, payload.node) };
  },

  plan(payload, state) {
    const up = state.node.state === 'ready' && state.node.availability !== 'drain';
    if (up && !payload.force) {
      throw new ConflictError(
        'NODE_NOT_DRAINED',
        `node ${state.node.hostname} is ${state.node.state} and ${state.node.availability}: removing it would cut its tasks off`,
        `drain it first (\`mp nodes drain ${state.node.hostname}\`), or pass --force`,
      );
    }
    return [{ type: 'remove-node', node: state.node.hostname, nodeId: state.node.id, force: payload.force || state.node.state === 'ready' }];
  },

  async execute(ctx, payload) {
    const state = await this.observe(ctx, payload);
    for (const action of this.plan(payload, state)) {
      await ctx.step('remove', `removing node ${action.node} from the swarm`);
      await ctx.docker.removeNode(state.node, action.force);
    }
    return { node: state.node.hostname, removed: true };
  },
};
