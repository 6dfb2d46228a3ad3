/**
 * `routing`: applies an environment's routes (`mp deploy routing --env DIR` submits it): converges the
 * Caddy service of the stack (its ports and networks follow the routes) and loads the routes' Caddy
 * config through the admin API when the live one differs. Runs on a manager, where the ingress is
 * placed (agent/routing/admin.ts says why the admin API is reached by exec on the node).
 */
import { z } from 'zod';
import type { StackSpec } from '../../stack/types.ts';
import { ingressContainer, readCaddyConfig } from '../routing/admin.ts';
import { applyRouting, loadRoutes, planConfig } from '../routing/apply.ts';
import { caddyConfig, type CaddyConfig } from '../routing/caddy-config.ts';
import { parseRoutes, type Route } from '../routing/routes.ts';
import type { Executor, Json } from './types.ts';

const routeValue = z.union([z.string().min(1), z.strictObject({ to: z.string().min(1), tls: z.enum(['auto', 'internal']).optional() })]);

export const payloadSchema = z.strictObject({
  /** The stack (namespace) name. */
  stack: z.string().min(1),
  /** minipaas.yaml's `routes:` as written. */
  routes: z.record(z.string(), routeValue),
  /** The ingress part of the stack (networks and the Caddy service), as `ingressSpec` cuts it; absent with no routes. */
  ingress: z.record(z.string(), z.unknown()).optional(),
});
export type RoutingPayload = z.output<typeof payloadSchema>;

/** What the plan depends on. */
export interface RoutingState {
  routes: Route[];
  /** The live config, or undefined when Caddy does not run yet. */
  live: CaddyConfig | null | undefined;
}

export const routing: Executor<RoutingPayload, RoutingState, Json, Json> = {
  kind: 'routing',
  description: "apply an environment's routes: converge its Caddy service and load the routes through Caddy's admin API (`mp deploy routing` submits it)",
  example: { stack: 'shop', routes: { 'http://localhost:8000': 'api:8080' } },
  payloadSchema: payloadSchema as unknown as z.ZodType<RoutingPayload>,
  target: 'manager',

  async observe(ctx, payload) {
    const routes = parseRoutes(payload.routes);
    const live = await ingressContainer(ctx.docker, payload.stack).then(
      (c) => readCaddyConfig(ctx.docker, c),
      () => undefined,
    );
    return { routes, live };
  },

  plan(_payload, state) {
    if (state.live === undefined) return [{ type: 'ingress', action: 'converge', routes: state.routes.length }];
    return [planConfig(caddyConfig(state.routes), state.live, state.routes) as unknown as Json];
  },

  async execute(ctx, payload) {
    const routes = parseRoutes(payload.routes);
    const ingress = payload.ingress as unknown as StackSpec | undefined;
    if (!ingress) {
      // No routes and no ingress in the stack: empty any Caddy still there, or nothing to do.
      const running = await ingressContainer(ctx.docker, payload.stack).catch(() => undefined);
      if (!running) {
        await ctx.step('routes', 'no routes and no Caddy service: nothing to do');
        return { routes: 0, loaded: false };
      }
      const { loaded } = await loadRoutes(ctx.docker, payload.stack, routes, { step: ctx.step, signal: ctx.signal });
      return { routes: 0, loaded };
    }
    const result = await applyRouting(ctx.docker, ingress, routes, { step: ctx.step, signal: ctx.signal });
    return { routes: routes.length, ingress: result.ingress, loaded: result.loaded };
  },
};
