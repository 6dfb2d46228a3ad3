/**
 * Applying a plan: each action in order, idempotently. Re-running a plan after a crash (or running
 * a stale one) converges to the same state: a network or object that already exists is kept, a
 * service to create that exists is updated instead, an update reads the service's current version
 * first, a removal of a service already gone is done.
 */
import type Dockerode from 'dockerode';
import { ConfigError, NotFoundError } from '../../sql/errors.ts';
import type { StackSpec } from '../../stack/types.ts';
import { isOutOfSequence } from '../docker/errors.ts';
import { STACK_NAMESPACE_LABEL, type DockerEngine, type ServiceInfo, type ServiceRegistryAuth, type SwarmObjectSpec } from '../docker/engine.ts';
import type { ExecutorContext, Json } from '../executors/types.ts';
import type { DeployAction, StackPlan } from './types.ts';

/** What `applyStack` needs besides the plan. */
export interface ApplyOptions {
  /** The desired stack the plan was made from: the secret and config contents come from it, never from the plan. */
  desired: StackSpec;
  /** Progress reports (see `ExecutorContext.step`). */
  step: ExecutorContext['step'];
  /** Checked between actions: an aborted deploy stops before the next one. */
  signal?: AbortSignal;
  /**
   * The registry credentials to send with a service's create or update (`current`: the spec Swarm has,
   * on an update), so every node can pull its image; undefined sends none (Swarm keeps what it has).
   */
  registryAuth?: (spec: Dockerode.ServiceSpec, current?: Dockerode.ServiceSpec) => ServiceRegistryAuth | undefined;
}

/** What a plan did, by engine name. */
export interface ApplyResult {
  created: string[];
  updated: string[];
  removed: string[];
  unchanged: string[];
  /** Service ids by name, for the caller's convergence wait. */
  serviceIds: Record<string, string>;
  /** Warnings the engine returned on service create or update. */
  warnings: string[];
}

async function exactService(docker: DockerEngine, name: string): Promise<ServiceInfo | undefined> {
  return (await docker.listServices({ name: [name] })).find((s) => s.name === name);
}

function contentOf(opts: ApplyOptions, kind: 'secret' | 'config', key: string, digest: string): string {
  const list = kind === 'secret' ? opts.desired.secrets : opts.desired.configs;
  const obj = list.find((o) => o.key === key);
  if (!obj || obj.data === undefined || obj.digest !== digest) {
    throw new ConfigError(
      'PLAN_MISMATCH',
      `the plan's ${kind} '${key}' (sha256 ${digest.slice(0, 12)}) is not in the desired stack given to apply`,
      'apply a plan with the stack it was planned from',
    );
  }
  return obj.data;
}

/** Secret and config ids by name: the stack's own and every external one the services reference. */
async function objectIds(docker: DockerEngine, stack: string, spec: Dockerode.ServiceSpec): Promise<{ secrets: Map<string, string>; configs: Map<string, string> }> {
  const label = [`${STACK_NAMESPACE_LABEL}=${stack}`];
  const [secrets, configs] = await Promise.all([docker.listSecrets({ label }), docker.listConfigs({ label })]);
  const s = new Map(secrets.map((o) => [o.name, o.id]));
  const c = new Map(configs.map((o) => [o.name, o.id]));
  const container = spec.TaskTemplate && 'ContainerSpec' in spec.TaskTemplate ? spec.TaskTemplate.ContainerSpec : undefined;
  for (const ref of container?.Secrets ?? []) {
    const name = ref.SecretName ?? '';
    if (!s.has(name)) for (const o of await docker.listSecrets({ name: [name] })) if (o.name === name) s.set(name, o.id);
  }
  for (const ref of container?.Configs ?? []) {
    const name = ref.ConfigName ?? '';
    if (!c.has(name)) for (const o of await docker.listConfigs({ name: [name] })) if (o.name === name) c.set(name, o.id);
  }
  return { secrets: s, configs: c };
}

/** The spec with secret and config ids filled in by name, as the engine requires. */
async function resolveReferences(docker: DockerEngine, stack: string, service: string, spec: Dockerode.ServiceSpec): Promise<Dockerode.ServiceSpec> {
  const out = structuredClone(spec);
  const container = out.TaskTemplate && 'ContainerSpec' in out.TaskTemplate ? out.TaskTemplate.ContainerSpec : undefined;
  if (!container?.Secrets?.length && !container?.Configs?.length) return out;
  const ids = await objectIds(docker, stack, out);
  const missing = (kind: string, name: string): NotFoundError =>
    new NotFoundError('DOCKER_NOT_FOUND', `service '${service}' uses ${kind} '${name}', which does not exist`, `deploy again: the plan creates the stack's ${kind}s first`);
  for (const ref of container.Secrets ?? []) {
    const id = ids.secrets.get(ref.SecretName ?? '');
    if (!id) throw missing('secret', ref.SecretName ?? '');
    ref.SecretID = id;
  }
  for (const ref of container.Configs ?? []) {
    const id = ids.configs.get(ref.ConfigName ?? '');
    if (!id) throw missing('config', ref.ConfigName ?? '');
    ref.ConfigID = id;
  }
  return out;
}

/** Updates a service from its current version, reading again when someone else updated it meanwhile. */
async function updateFromCurrent(
  docker: DockerEngine,
  name: string,
  id: string | undefined,
  spec: Dockerode.ServiceSpec,
  registryAuth: ApplyOptions['registryAuth'],
): Promise<{ id: string; warnings: string[] }> {
  for (let attempt = 1; ; attempt++) {
    const current = (id ? await docker.inspectService(id).catch(() => undefined) : undefined) ?? (await exactService(docker, name));
    if (!current) throw new NotFoundError('DOCKER_NOT_FOUND', `service '${name}' disappeared during the deploy`, 'deploy again');
    const body = structuredClone(spec);
    // A stack deploy has no --force: keep the counter, or every task restarts.
    if (body.TaskTemplate) (body.TaskTemplate as { ForceUpdate?: number }).ForceUpdate = (current.spec.TaskTemplate as { ForceUpdate?: number } | undefined)?.ForceUpdate ?? 0;
    try {
      const { warnings } = await docker.updateService(current, current.version, body, registryAuth?.(body, current.spec));
      return { id: current.id, warnings };
    } catch (err) {
      if (!isOutOfSequence(err) || attempt >= 3) throw err;
    }
  }
}

function changeData(action: Extract<DeployAction, { type: 'update-service' }>): Record<string, Json> {
  return { id: action.id, changes: action.changes as unknown as Json };
}

/**
 * Runs the plan's actions in order against the engine, reporting a step for each one that changes
 * something. Safe to run again after a crash part-way (see the module comment).
 *
 * @example
 *   const result = await applyStack(docker, plan, { desired, step: ctx.step, signal: ctx.signal });
 */
export async function applyStack(docker: DockerEngine, plan: StackPlan, opts: ApplyOptions): Promise<ApplyResult> {
  const result: ApplyResult = { created: [], updated: [], removed: [], unchanged: [], serviceIds: {}, warnings: [] };
  const stack = plan.stack;
  for (const action of plan.actions) {
    opts.signal?.throwIfAborted();
    switch (action.type) {
      case 'unchanged':
        result.unchanged.push(action.name);
        if (action.kind === 'service') {
          const svc = await exactService(docker, action.name);
          if (svc) result.serviceIds[action.name] = svc.id;
        }
        break;
      case 'create-network': {
        const exists = (await docker.listNetworks({ name: [action.name] })).some((n) => n.name === action.name);
        if (!exists) {
          await opts.step('create-network', `creating network '${action.name}'`, { driver: action.spec.Driver ?? 'overlay' });
          await docker.createNetwork(action.spec);
        }
        result.created.push(action.name);
        break;
      }
      case 'create-secret':
      case 'create-config': {
        const kind = action.type === 'create-secret' ? 'secret' : 'config';
        const list = kind === 'secret' ? await docker.listSecrets({ name: [action.name] }) : await docker.listConfigs({ name: [action.name] });
        if (!list.some((o) => o.name === action.name)) {
          await opts.step(action.type, `creating ${kind} '${action.name}'`, { digest: action.digest });
          const body = { ...(action.spec as unknown as Omit<SwarmObjectSpec, 'Data'>), Data: contentOf(opts, kind, action.key, action.digest) };
          if (kind === 'secret') await docker.createSecretSpec(body);
          else await docker.createConfig(body);
        }
        result.created.push(action.name);
        break;
      }
      case 'create-service': {
        const spec = await resolveReferences(docker, stack, action.name, action.spec);
        const existing = await exactService(docker, action.name);
        if (existing) {
          // Created by an earlier, interrupted run of this plan: converge it instead.
          await opts.step('update-service', `service '${action.name}' exists already; updating it`, { id: existing.id });
          const res = await updateFromCurrent(docker, action.name, existing.id, spec, opts.registryAuth);
          result.serviceIds[action.name] = res.id;
          result.warnings.push(...res.warnings);
        } else {
          await opts.step('create-service', `creating service '${action.name}'`);
          result.serviceIds[action.name] = await docker.createService(spec, opts.registryAuth?.(spec));
        }
        result.created.push(action.name);
        break;
      }
      case 'update-service': {
        await opts.step(
          'update-service',
          `updating service '${action.name}': ${action.changes.map((c) => c.path).join(', ')}`,
          changeData(action),
        );
        const spec = await resolveReferences(docker, stack, action.name, action.spec);
        const res = await updateFromCurrent(docker, action.name, action.id, spec, opts.registryAuth);
        result.serviceIds[action.name] = res.id;
        result.warnings.push(...res.warnings);
        result.updated.push(action.name);
        break;
      }
      case 'remove-service':
        await opts.step('remove-service', `removing service '${action.name}' (no longer in the stack)`, { id: action.id });
        try {
          await docker.removeService({ id: action.id, name: action.name });
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
        }
        result.removed.push(action.name);
        break;
    }
  }
  return result;
}
