/**
 * `stack.remove`: removes every service, secret, config and network labelled
 * `com.docker.stack.namespace=<stack>`, as `docker stack rm` does, and waits until the services' tasks
 * are gone. Idempotent: an absent stack (or one removed half-way by a crashed agent) is finished, not
 * an error.
 */
import { z } from 'zod';
import { DockerError, NotFoundError } from '../../sql/errors.ts';
import { STACK_NAMESPACE_LABEL, type SwarmObject } from '../docker/engine.ts';
import { dockerName, timeoutSeconds } from './names.ts';
import type { Executor, ExecutorContext } from './types.ts';
import { waitUntil } from './waiting.ts';

export const payloadSchema = z.strictObject({
  stack: dockerName,
  timeoutSeconds,
});

export type StackRemovePayload = z.infer<typeof payloadSchema>;

/** The stack's objects, as found by its namespace label. */
export interface StackState {
  services: SwarmObject[];
  networks: SwarmObject[];
  secrets: SwarmObject[];
  configs: SwarmObject[];
}

type Ref = { id: string; name: string };

export type StackRemoveAction =
  | { type: 'remove-service'; service: Ref }
  | { type: 'wait-tasks-gone'; serviceIds: string[]; timeoutMs: number }
  | { type: 'remove-secret'; secret: Ref }
  | { type: 'remove-config'; config: Ref }
  | { type: 'remove-network'; network: Ref };

export type StackRemoveResult = {
  stack: string;
  removed: { services: string[]; networks: string[]; secrets: string[]; configs: string[] };
  nothingToRemove: boolean;
};

const byName = (a: Ref, b: Ref): number => a.name.localeCompare(b.name);
const ref = (o: SwarmObject): Ref => ({ id: o.id, name: o.name });

/**
 * Pure: services first; then, once their tasks are gone, secrets, configs and networks (a network
 * with containers still attached, or a secret a service still uses, cannot be removed). An empty
 * stack plans nothing.
 */
export function plan(payload: StackRemovePayload, state: StackState): StackRemoveAction[] {
  const actions: StackRemoveAction[] = [];
  const services = state.services.map(ref).sort(byName);
  for (const service of services) actions.push({ type: 'remove-service', service });
  if (services.length > 0) {
    actions.push({ type: 'wait-tasks-gone', serviceIds: services.map((s) => s.id), timeoutMs: payload.timeoutSeconds * 1000 });
  }
  for (const secret of state.secrets.map(ref).sort(byName)) actions.push({ type: 'remove-secret', secret });
  for (const config of state.configs.map(ref).sort(byName)) actions.push({ type: 'remove-config', config });
  for (const network of state.networks.map(ref).sort(byName)) actions.push({ type: 'remove-network', network });
  return actions;
}

/** Lists the stack's objects by label. */
export async function observe(ctx: Pick<ExecutorContext, 'docker'>, payload: StackRemovePayload): Promise<StackState> {
  const label = [`${STACK_NAMESPACE_LABEL}=${payload.stack}`];
  const [services, networks, secrets, configs] = await Promise.all([
    ctx.docker.listServices({ label }),
    ctx.docker.listNetworks({ label }),
    ctx.docker.listSecrets({ label }),
    ctx.docker.listConfigs({ label }),
  ]);
  return { services: services.map((s) => ({ id: s.id, name: s.name, labels: s.labels })), networks, secrets, configs };
}

/** Runs `remove`, treating "already gone" as done: another agent or a person may be removing too. */
async function removeIdempotent(remove: () => Promise<void>): Promise<boolean> {
  try {
    await remove();
    return true;
  } catch (err) {
    if (err instanceof NotFoundError) return false;
    throw err;
  }
}

async function execute(ctx: ExecutorContext, payload: StackRemovePayload): Promise<StackRemoveResult> {
  const state = await observe(ctx, payload);
  const actions = plan(payload, state);
  const removed: StackRemoveResult['removed'] = { services: [], networks: [], secrets: [], configs: [] };
  if (actions.length === 0) {
    await ctx.step('done', `stack '${payload.stack}': nothing to remove`);
    return { stack: payload.stack, removed, nothingToRemove: true };
  }
  const { docker } = ctx;
  for (const action of actions) {
    ctx.signal.throwIfAborted();
    switch (action.type) {
      case 'remove-service':
        await ctx.step('remove-service', `removing service '${action.service.name}'`, { id: action.service.id });
        if (await removeIdempotent(() => docker.removeService(action.service))) removed.services.push(action.service.name);
        break;
      case 'wait-tasks-gone':
        await waitTasksGone(ctx, payload.stack, action);
        break;
      case 'remove-secret':
        await ctx.step('remove-secret', `removing secret '${action.secret.name}'`, { id: action.secret.id });
        if (await removeIdempotent(() => docker.removeSecret(action.secret))) {
          removed.secrets.push(action.secret.name);
        }
        break;
      case 'remove-config':
        await ctx.step('remove-config', `removing config '${action.config.name}'`, { id: action.config.id });
        if (await removeIdempotent(() => docker.removeConfig(action.config))) {
          removed.configs.push(action.config.name);
        }
        break;
      case 'remove-network':
        await ctx.step('remove-network', `removing network '${action.network.name}'`, { id: action.network.id });
        if (await removeIdempotent(() => docker.removeNetwork(action.network))) {
          removed.networks.push(action.network.name);
        }
        break;
    }
  }
  const counts = Object.entries(removed).map(([k, v]) => `${v.length} ${k}`).join(', ');
  await ctx.step('done', `stack '${payload.stack}' removed (${counts})`, { ...removed });
  return { stack: payload.stack, removed, nothingToRemove: false };
}

/**
 * Waits until Swarm has deleted the removed services' tasks. A task is deleted only after its
 * container stopped, so after this the stack's networks have no endpoints left and can go.
 */
async function waitTasksGone(
  ctx: ExecutorContext,
  stack: string,
  action: Extract<StackRemoveAction, { type: 'wait-tasks-gone' }>,
): Promise<void> {
  let left = -1;
  await waitUntil(
    async () => {
      const tasks = await ctx.docker.listTasks({ serviceIds: action.serviceIds });
      if (tasks.length !== left) {
        left = tasks.length;
        await ctx.step('wait', `${left} tasks of stack '${stack}' left`, { tasks: left });
      }
      return left === 0;
    },
    {
      timeoutMs: action.timeoutMs,
      signal: ctx.signal,
      onTimeout: () =>
        new DockerError(
          'DOCKER_TIMEOUT',
          `stack '${stack}' still has ${left} tasks ${action.timeoutMs / 1000} s after its services were removed`,
          `see \`docker ps --filter label=${STACK_NAMESPACE_LABEL}=${stack}\`; removing the stack again resumes`,
        ),
    },
  );
}

export const stackRemove: Executor<StackRemovePayload, StackState, StackRemoveAction, StackRemoveResult> = {
  kind: 'stack.remove',
  description: "remove a stack's services, networks, secrets and configs, as `docker stack rm` does",
  example: { stack: 'shop', timeoutSeconds: 120 },
  payloadSchema,
  target: 'manager',
  observe,
  plan,
  execute,
};
