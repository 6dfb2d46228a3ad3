/**
 * `canary.start`: runs the new version of one service beside the current one as its own Swarm service
 * (`<stack>_<key>-canary`, docs/routing.md "Canary"), then waits until its tasks run (healthy, when the
 * service has a healthcheck) and stay running for the deploy's stable period.
 *
 * The canary service is the main service's spec of the new version with: its own name; N replicas; no
 * published ports (they are the main service's, and two services cannot bind one host port); the same
 * networks with the same aliases, so `tasks.<key>` (Caddy's upstreams) answers with the canary's tasks
 * too and round robin sends it N of every (main + N) requests; and no stack namespace label, so a
 * deploy of the stack neither sees nor removes it. `org.minipaas.canary=<id>` finds it again.
 *
 * A canary whose tasks fail (three failed tasks: a healthcheck that never passes, a crashing command)
 * or never become ready before `deploy.timeout` is aborted by this operation: it removes the canary
 * service and fails, and the canary row records `aborted` with that error (0010_canary.sql). Once live,
 * the agent's canary watcher (agent/canary-watch.ts) aborts it the same way if its tasks start failing.
 */
import type Dockerode from 'dockerode';
import { z } from 'zod';
import { CANARY_LABEL, CANARY_OF_LABEL, canaryServiceName, getCanary, pinCanaryImage, type Canary } from '../../sql/control/canaries.ts';
import { ConfigError, NotFoundError } from '../../sql/errors.ts';
import type { StackSpec } from '../../stack/types.ts';
import { applyStack } from '../deploy/apply.ts';
import { progressJson, waitForConvergence } from '../deploy/converge.ts';
import { applyPins, resolveImages } from '../deploy/images.ts';
import type { DeployAction } from '../deploy/types.ts';
import { STACK_NAMESPACE_LABEL, type DockerEngine, type ServiceInfo } from '../docker/engine.ts';
import type { Executor, ExecutorContext, Json } from './types.ts';

export const payloadSchema = z.strictObject({
  canary: z.union([z.string().regex(/^\d+$/), z.int().positive()]).transform(String),
  service: z.string().optional(),
});
export type CanaryPayload = z.output<typeof payloadSchema>;

export interface CanaryStartState {
  canary: Canary;
  existing?: ServiceInfo;
}

export function requirePool(ctx: Pick<ExecutorContext, 'pool'>): NonNullable<ExecutorContext['pool']> {
  if (!ctx.pool) throw new ConfigError('NO_DATABASE', 'canary operations need the control-plane database', 'run them in an agent');
  return ctx.pool;
}

/** The one-service stack the canary's image is resolved and pinned in. */
function oneService(canary: Canary): StackSpec {
  return { name: canary.stack, networks: [], secrets: [], configs: [], services: [canary.spec], warnings: [] };
}

/**
 * Pure: the canary's ServiceSpec from the new version's spec (see the module comment for what changes).
 *
 * @example
 *   canaryServiceSpec(canary).Name // 'shop_api-canary'
 */
export function canaryServiceSpec(canary: Canary): Dockerode.ServiceSpec {
  const pinned = applyPins(oneService(canary), canary.image ? { [canary.service]: canary.image } : {}).services[0]!;
  const spec = structuredClone(pinned.spec);
  const labels: Record<string, string> = { ...(spec.Labels ?? {}) };
  delete labels[STACK_NAMESPACE_LABEL];
  spec.Labels = { ...labels, [CANARY_LABEL]: canary.id, [CANARY_OF_LABEL]: canary.spec.name, 'org.minipaas.environment': canary.environment };
  spec.Name = canaryServiceName(canary.stack, canary.service);
  spec.Mode = { Replicated: { Replicas: canary.replicas } };
  const tpl = spec.TaskTemplate;
  if (tpl && 'ContainerSpec' in tpl && tpl.ContainerSpec?.Labels) {
    const container = { ...tpl.ContainerSpec.Labels };
    delete container[STACK_NAMESPACE_LABEL];
    tpl.ContainerSpec.Labels = { ...container, [CANARY_LABEL]: canary.id };
  }
  if (spec.EndpointSpec) spec.EndpointSpec = { Mode: spec.EndpointSpec.Mode ?? 'vip' };
  return spec;
}

/** The canary's Swarm service, if it exists. */
export async function canaryServices(docker: DockerEngine, canaryId: string): Promise<ServiceInfo[]> {
  return await docker.listServices({ label: [`${CANARY_LABEL}=${canaryId}`] });
}

/** Deploy timing from the canary's minipaas.yaml, as a release's. */
function timing(canary: Canary): { timeoutMs: number; stableMs: number } {
  const settings = canary.source.settings as { deploy?: { timeout?: number; stable?: number } } | undefined;
  return { timeoutMs: (settings?.deploy?.timeout ?? 300) * 1000, stableMs: (settings?.deploy?.stable ?? 3) * 1000 };
}

/** Removes the canary's services and waits (at most 30 s) until their tasks are gone. Idempotent. */
export async function removeCanaryServices(docker: DockerEngine, ctx: Pick<ExecutorContext, 'step'>, canaryId: string): Promise<string[]> {
  const services = await canaryServices(docker, canaryId);
  for (const s of services) {
    await ctx.step('remove-service', `removing canary service '${s.name}'`, { id: s.id });
    await docker.removeService(s).catch((err: unknown) => {
      if (!(err instanceof NotFoundError)) throw err;
    });
  }
  const ids = services.map((s) => s.id);
  const deadline = Date.now() + 30_000;
  while (ids.length > 0 && Date.now() < deadline) {
    const left = (await docker.listTasks({ serviceIds: ids })).filter((t) => t.state === 'running' || t.desiredState === 'running');
    if (left.length === 0) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return services.map((s) => s.name);
}

export const canaryStart: Executor<CanaryPayload, CanaryStartState, Json, Json> = {
  kind: 'canary.start',
  description: 'run the new version of one service beside the current one as its canary service and wait until it runs (`mp deploy canary` submits it)',
  example: { canary: '1' } as CanaryPayload,
  payloadSchema: payloadSchema as unknown as z.ZodType<CanaryPayload>,
  target: 'manager',

  async observe(ctx, payload) {
    const canary = await getCanary(requirePool(ctx), payload.canary);
    const [existing] = await canaryServices(ctx.docker, canary.id);
    return { canary, ...(existing ? { existing } : {}) };
  },

  plan(_payload, state) {
    const spec = canaryServiceSpec(state.canary);
    return [{ type: 'create-service', key: state.canary.service, name: spec.Name!, spec } as unknown as Json, { type: 'wait-running', replicas: state.canary.replicas }];
  },

  async execute(ctx, payload) {
    const pool = requirePool(ctx);
    let canary = await getCanary(pool, payload.canary);
    if (canary.status !== 'starting') {
      throw new ConfigError('CANARY_NOT_STARTING', `canary ${canary.id} of ${canary.service} is ${canary.status}, not starting`, '`mp deploy status` shows it');
    }
    const { rows } = await pool.query<{ started_at: Date | null }>(`select started_at from mp.operations where id = $1`, [ctx.operationId]);
    const since = rows[0]?.started_at ?? new Date();
    if (!canary.image) {
      const resolved = (await resolveImages(ctx.docker, oneService(canary)))[canary.service];
      if (resolved) canary = { ...canary, image: await pinCanaryImage(pool, canary.id, resolved) };
    }
    await ctx.step('canary', `canary ${canary.id}: ${canary.service} ${canary.image?.ref ?? ''}, ${canary.replicas} replica(s) beside release ${canary.baseVersion}`, {
      canary: canary.id,
      image: canary.image?.ref ?? null,
    });
    const spec = canaryServiceSpec(canary);
    const name = spec.Name!;
    const action: DeployAction = { type: 'create-service', key: canary.service, name, spec };
    try {
      const applied = await applyStack(ctx.docker, { stack: canary.stack, actions: [action], changed: true, warnings: [] }, { desired: oneService(canary), step: ctx.step, signal: ctx.signal });
      for (const warning of applied.warnings) await ctx.step('warning', warning);
      const { timeoutMs, stableMs } = timing(canary);
      const progress = await waitForConvergence(ctx.docker, { services: [{ name, id: applied.serviceIds[name]! }], since, timeoutMs, stableMs, step: ctx.step, signal: ctx.signal });
      await ctx.step('live', `canary ${name} runs ${progress.map((p) => `${p.running}/${p.desired}`).join('')} beside ${canary.spec.name}; \`mp deploy promote\` or \`mp deploy abort\` ends it`);
      return { canary: canary.id, service: name, replicas: canary.replicas, running: progressJson(progress) };
    } catch (err) {
      // The canary never became ready: take it out of rotation before saying so.
      await removeCanaryServices(ctx.docker, ctx, canary.id).catch(() => []);
      const reason = err instanceof Error ? err.message : String(err);
      await ctx.step('abort', `canary ${canary.id} of ${canary.service} aborted by itself: ${reason.split('\n')[0]}`, { canary: canary.id });
      if (ctx.signal.aborted) throw err;
      throw new ConfigError('CANARY_FAILED', `canary of ${canary.service} aborted: ${reason}`, 'fix the service and start a new canary; the main service was not changed');
    }
  },
};
