/**
 * `secret.remove` and `config.remove`: remove the Swarm objects of deleted or pruned versions
 * (`mp secret delete`, `mp secret prune --delete`, and the config verbs). Observe, plan, apply:
 * an object already gone is done (idempotent on resume); one a service still uses is not removed
 * (Swarm would refuse), and the operation fails naming the services, after removing the others.
 */
import { z } from 'zod';
import { ConflictError, NotFoundError } from '../../sql/errors.ts';
import type { DockerEngine } from '../docker/engine.ts';
import { exactObject, swarmObjectName } from './secret-create.ts';
import type { Executor, ExecutorContext } from './types.ts';

export const payloadSchema = z.strictObject({ names: z.array(swarmObjectName).min(1) });
export type ManagedRemovePayload = z.infer<typeof payloadSchema>;

/** Each named object (or null when gone) and the services that reference it. */
export interface ManagedRemoveState {
  objects: { name: string; id: string | null; usedBy: string[] }[];
}

export type ManagedRemoveAction =
  | { type: 'remove'; name: string; id: string }
  | { type: 'gone'; name: string }
  | { type: 'in-use'; name: string; services: string[] };

type Result = { removed: string[]; gone: string[] };

async function usersOf(docker: DockerEngine, kind: 'secret' | 'config'): Promise<Map<string, string[]>> {
  const users = new Map<string, string[]>();
  for (const svc of await docker.listServices()) {
    const task = svc.spec.TaskTemplate as { ContainerSpec?: { Secrets?: { SecretName?: string }[]; Configs?: { ConfigName?: string }[] } } | undefined;
    const refs = kind === 'secret' ? (task?.ContainerSpec?.Secrets ?? []).map((r) => r.SecretName) : (task?.ContainerSpec?.Configs ?? []).map((r) => r.ConfigName);
    for (const name of refs) if (name) users.set(name, [...(users.get(name) ?? []), svc.name]);
  }
  return users;
}

/** Pure: remove what exists and nothing uses; report what is gone or in use. */
export function planRemove(state: ManagedRemoveState): ManagedRemoveAction[] {
  return state.objects.map((o) => {
    if (o.id === null) return { type: 'gone', name: o.name };
    if (o.usedBy.length > 0) return { type: 'in-use', name: o.name, services: o.usedBy };
    return { type: 'remove', name: o.name, id: o.id };
  });
}

function removeExecutor(kind: 'secret' | 'config'): Executor<ManagedRemovePayload, ManagedRemoveState, ManagedRemoveAction, Result> {
  const observe = async (ctx: ExecutorContext, payload: ManagedRemovePayload): Promise<ManagedRemoveState> => {
    const users = await usersOf(ctx.docker, kind);
    const objects = [];
    for (const name of payload.names) {
      const found = await exactObject(ctx.docker, kind, name);
      objects.push({ name, id: found?.id ?? null, usedBy: found ? (users.get(name) ?? []) : [] });
    }
    return { objects };
  };
  const execute = async (ctx: ExecutorContext, payload: ManagedRemovePayload): Promise<Result> => {
    const actions = planRemove(await observe(ctx, payload));
    const result: Result = { removed: [], gone: [] };
    for (const a of actions) {
      ctx.signal.throwIfAborted();
      if (a.type === 'gone') result.gone.push(a.name);
      if (a.type !== 'remove') continue;
      await ctx.step('remove', `removing ${kind} '${a.name}'`, { id: a.id });
      try {
        await (kind === 'secret' ? ctx.docker.removeSecret(a) : ctx.docker.removeConfig(a));
        result.removed.push(a.name);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
        result.gone.push(a.name);
      }
    }
    const inUse = actions.filter((a): a is Extract<ManagedRemoveAction, { type: 'in-use' }> => a.type === 'in-use');
    if (inUse.length > 0) {
      throw new ConflictError(
        'IN_USE',
        `${inUse.map((a) => `${kind} '${a.name}' is used by ${a.services.join(', ')}`).join('; ')}; not removed${result.removed.length ? ` (removed ${result.removed.join(', ')})` : ''}`,
        'remove the reference from the Compose files and deploy, then retry this operation (`mp ops retry`)',
      );
    }
    await ctx.step('done', `${result.removed.length} ${kind}s removed${result.gone.length ? `, ${result.gone.length} already gone` : ''}`, { ...result });
    return result;
  };
  return {
    kind: `${kind}.remove`,
    description: `remove the Swarm ${kind}s of deleted or pruned versions; \`mp ${kind} delete\` and \`prune --delete\` submit it`,
    example: { names: [kind === 'secret' ? 'shop_db_password_3f2a9c1b7d4e' : 'shop_app.json_44136fa355b3'] },
    payloadSchema,
    target: 'manager',
    observe,
    plan: (_payload, state) => planRemove(state),
    execute,
  };
}

export const secretRemove = removeExecutor('secret');
export const configRemove = removeExecutor('config');
