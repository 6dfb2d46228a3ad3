/**
 * Applying an environment's routes: the Caddy service converged (created or updated when its ports or
 * networks change), then the Caddy config loaded through the admin API when the live one differs.
 * Observe, plan (pure), apply, as every executor does; each step is idempotent, so a resumed attempt
 * converges to the same state.
 */
import { observeStack, planStack, applyStack } from '../deploy/index.ts';
import { waitForConvergence } from '../deploy/converge.ts';
import type { DockerEngine } from '../docker/engine.ts';
import type { ExecutorContext, Json } from '../executors/types.ts';
import { waitUntil } from '../executors/waiting.ts';
import { DockerError, MiniPaasError } from '../../sql/errors.ts';
import type { StackSpec } from '../../stack/types.ts';
import { ingressContainer, loadCaddyConfig, readCaddyConfig, sameConfig } from './admin.ts';
import { caddyConfig, type CaddyConfig } from './caddy-config.ts';
import { INGRESS_KEY } from './ingress.ts';
import { parseRoutes, type Route, type RouteValue } from './routes.ts';

/** One action of a routing plan. */
export type RoutingAction = { type: 'load-config'; routes: number; servers: string[] } | { type: 'config-unchanged'; routes: number };

/** The part of a stack the ingress needs: its networks and the Caddy service. */
export function ingressSpec(spec: StackSpec): StackSpec | undefined {
  const caddy = spec.services.find((s) => s.key === INGRESS_KEY);
  if (!caddy) return undefined;
  const attached = new Set(
    ((caddy.spec.TaskTemplate as { Networks?: { Target?: string }[] } | undefined)?.Networks ?? []).map((n) => n.Target),
  );
  return { name: spec.name, networks: spec.networks.filter((n) => attached.has(n.name)), secrets: [], configs: [], services: [caddy], warnings: [] };
}

/** Pure: what loading `desired` over `live` does. */
export function planConfig(desired: CaddyConfig, live: CaddyConfig | null, routes: Route[]): RoutingAction {
  if (sameConfig(desired, live)) return { type: 'config-unchanged', routes: routes.length };
  const servers = Object.keys(((desired.apps as { http?: { servers?: Record<string, unknown> } } | undefined)?.http?.servers) ?? {});
  return { type: 'load-config', routes: routes.length, servers };
}

export interface ApplyRoutesOptions {
  step: ExecutorContext['step'];
  signal: AbortSignal;
  /** How long to wait for the Caddy task to run (default 60 s). */
  timeoutMs?: number;
}

/**
 * Waits until the stack's Caddy runs on this node, then loads the routes' config if the live one
 * differs. Returns whether it loaded.
 */
export async function loadRoutes(docker: DockerEngine, stack: string, routes: Route[], opts: ApplyRoutesOptions): Promise<{ loaded: boolean; action: RoutingAction }> {
  const container = await waitUntil(
    async () => {
      try {
        return await ingressContainer(docker, stack);
      } catch (err) {
        if (err instanceof MiniPaasError && err.code === 'INGRESS_NOT_RUNNING') return undefined;
        throw err;
      }
    },
    {
      timeoutMs: opts.timeoutMs ?? 60_000,
      intervalMs: 500,
      signal: opts.signal,
      onTimeout: () => new DockerError('INGRESS_NOT_RUNNING', `${stack}_${INGRESS_KEY} did not start running`, `\`docker service ps ${stack}_${INGRESS_KEY}\` shows why`),
    },
  );
  // Caddy's admin API answers a moment after the task is running (its healthcheck gates "running",
  // but a task without one, or a restart, may be a little early): retry the first read briefly.
  const live = await waitUntil(
    async () => {
      try {
        return { config: await readCaddyConfig(docker, container) };
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 15_000, intervalMs: 300, signal: opts.signal, onTimeout: async () => readCaddyConfig(docker, container).then(() => new Error('unreachable'), (e: Error) => e) },
  );
  const desired = caddyConfig(routes);
  const action = planConfig(desired, live.config, routes);
  if (action.type === 'config-unchanged') {
    await opts.step('routes', `Caddy already serves these ${routes.length} routes`, { routes: routes.length });
    return { loaded: false, action };
  }
  await loadCaddyConfig(docker, container, desired);
  await opts.step('routes', `Caddy loaded ${routes.length} routes (servers ${action.servers.join(', ') || 'none'})`, {
    routes: routes.map((r) => r.key),
    servers: action.servers,
  } as Record<string, Json>);
  return { loaded: true, action };
}

/**
 * Converges the Caddy service alone (never removes another service of the stack), waits until it
 * runs, then loads the routes. Used by the `routing` executor; `deploy` converges Caddy with the
 * rest of the stack and calls `loadRoutes` itself.
 */
export async function applyRouting(docker: DockerEngine, ingress: StackSpec, routes: Route[], opts: ApplyRoutesOptions): Promise<{ ingress: string; loaded: boolean }> {
  const observed = await observeStack(docker, ingress.name, ingress);
  const full = planStack(ingress, observed);
  const actions = full.actions.filter((a) => a.type !== 'remove-service');
  const plan = { ...full, actions, changed: actions.some((a) => a.type !== 'unchanged') };
  const caddy = ingress.services[0]!;
  const verb = actions.find((a) => (a.type === 'create-service' || a.type === 'update-service' || a.type === 'unchanged') && 'name' in a && a.name === caddy.name)?.type ?? 'unchanged';
  if (plan.changed) {
    const since = new Date();
    const applied = await applyStack(docker, plan, { desired: ingress, step: opts.step, signal: opts.signal });
    const id = applied.serviceIds[caddy.name] ?? observed.services.find((s) => s.name === caddy.name)?.id;
    if (id) {
      await waitForConvergence(docker, {
        services: [{ name: caddy.name, id }],
        updated: verb === 'update-service' ? [id] : [],
        since,
        timeoutMs: opts.timeoutMs ?? 120_000,
        stableMs: 1000,
        step: opts.step,
        signal: opts.signal,
      });
    }
  } else {
    await opts.step('ingress', `${caddy.name} unchanged`);
  }
  const { loaded } = await loadRoutes(docker, ingress.name, routes, opts);
  return { ingress: verb, loaded };
}

/**
 * After a deploy converged: loads the routes its release recorded (minipaas.yaml `routes:` in the
 * release's source) when its stack has an ingress and Caddy serves something else. Returns undefined
 * for a stack without routes. A rollback thus restores the routes of the release it restores.
 */
export async function loadReleaseRoutes(
  docker: DockerEngine,
  release: { spec: StackSpec; source: { settings?: unknown } },
  opts: ApplyRoutesOptions,
): Promise<{ loaded: boolean } | undefined> {
  if (!release.spec.services.some((s) => s.key === INGRESS_KEY)) return undefined;
  const routes = parseRoutes((release.source.settings as { routes?: Record<string, RouteValue> } | undefined)?.routes);
  const { loaded } = await loadRoutes(docker, release.spec.name, routes, opts);
  return { loaded };
}
