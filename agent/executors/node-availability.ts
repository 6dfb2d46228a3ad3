/**
 * `node.availability`: sets a Swarm node's availability (`docker node update --availability`) and, for
 * `drain`, waits until no task still runs there (Swarm reschedules replicated tasks onto other nodes).
 * `mp nodes drain|activate NODE` submits it.
 */
import { z } from 'zod';
import { DockerError, NotFoundError } from '../../sql/errors.ts';
import type { DockerEngine, SwarmNode } from '../docker/engine.ts';
import { listNames, nearMiss } from './near-miss.ts';
import { timeoutSeconds } from './names.ts';
import type { Executor } from './types.ts';
import { waitUntil } from './waiting.ts';

export const payloadSchema = z.strictObject({
  node: z.string().min(1),
  availability: z.enum(['active', 'pause', 'drain']),
  timeoutSeconds,
});
export type AvailabilityPayload = z.infer<typeof payloadSchema>;

export interface AvailabilityState {
  node: SwarmNode;
}

export type AvailabilityAction =
  | { type: 'set-availability'; node: string; nodeId: string; from: string; to: string }
  | { type: 'wait-drained'; node: string; nodeId: string; timeoutMs: number };

/** The Swarm node named by hostname or id; `NotFoundError` listing the nodes (and the near miss). */
export async function findSwarmNode(docker: DockerEngine, name: string): Promise<SwarmNode> {
  const nodes = await docker.listNodes();
  const node = nodes.find((n) => n.hostname === name || n.id === name || n.id.startsWith(name));
  if (node) return node;
  const names = nodes.map((n) => n.hostname);
  const guess = nearMiss(name, names);
  throw new NotFoundError(
    'NODE_NOT_FOUND',
    `node '${name}' is not in the swarm; nodes: ${listNames(names)}`,
    guess ? `did you mean '${guess}'?` : '`docker node ls` on a manager lists them',
  );
}

/** Tasks Swarm still wants running on the node. */
async function tasksOn(docker: DockerEngine, nodeId: string): Promise<number> {
  return (await docker.listTasks()).filter((t) => t.nodeId === nodeId && t.desiredState === 'running').length;
}

export const nodeAvailability: Executor<AvailabilityPayload, AvailabilityState, AvailabilityAction> = {
  kind: 'node.availability',
  description: 'set a swarm node active, paused or drained; a drain waits until its tasks have moved (`mp nodes drain|activate`)',
  example: { node: 'worker-1', availability: 'drain', timeoutSeconds: 120 },
  payloadSchema,
  target: 'manager',

  async observe(ctx, payload) {
    return { node: await findSwarmNode(ctx.docker, payload.node) };
  },

  plan(payload, state) {
    const actions: AvailabilityAction[] = [];
    if (state.node.availability !== payload.availability) {
      actions.push({ type: 'set-availability', node: state.node.hostname, nodeId: state.node.id, from: state.node.availability, to: payload.availability });
    }
    // Always waits after a drain, so a retried operation (availability already set) still waits.
    if (payload.availability === 'drain') actions.push({ type: 'wait-drained', node: state.node.hostname, nodeId: state.node.id, timeoutMs: payload.timeoutSeconds * 1000 });
    return actions;
  },

  async execute(ctx, payload) {
    const state = await this.observe(ctx, payload);
    for (const action of this.plan(payload, state)) {
      if (action.type === 'set-availability') {
        await ctx.step('update', `node ${action.node}: ${action.from} -> ${action.to}`);
        await ctx.docker.updateNode(state.node, { ...state.node.spec, Availability: action.to });
      } else {
        let last = -1;
        await waitUntil(
          async () => {
            const n = await tasksOn(ctx.docker, action.nodeId);
            if (n !== last) await ctx.step('wait', `${n} task(s) still on ${action.node}`, { tasks: n });
            last = n;
            return n === 0;
          },
          {
            timeoutMs: action.timeoutMs,
            signal: ctx.signal,
            onTimeout: () => new DockerError('DOCKER_TIMEOUT', `node ${action.node} still runs ${last} task(s) after ${payload.timeoutSeconds} s`, 'look at `docker node ps` for tasks that cannot move (constraints, host-mode ports, global services)'),
          },
        );
      }
    }
    return { node: state.node.hostname, availability: payload.availability, changed: state.node.availability !== payload.availability };
  },
};
