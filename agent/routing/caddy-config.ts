/**
 * The Caddy JSON config of an environment's routes. Pure: routes in, the document `POST /load` takes
 * out, so unit tests and `mp routes ls` compare it as data.
 *
 * Why each setting (docs/routing.md has the measurements):
 * - Upstreams are *dynamic A records* of `tasks.<service>` (Swarm's DNS answers one A record per
 *   running task), refreshed every second. This lab's kernel has no IPVS, so a service's virtual IP
 *   may not balance; task IPs always work. Swarm takes a task out of DNS before it stops it (its
 *   executor removes the service binding, waits 2 s for gossip, then sends the stop signal) and puts a
 *   new task in DNS only once its healthcheck passes, so a 1 s refresh takes a task out of rotation
 *   before it stops and never sends to one that is not ready. The agent does not rewrite upstreams
 *   as tasks come and go: the config changes only when routes change.
 * - A canary service carries its main service's key as a network alias, so `tasks.api` answers both
 *   and round robin splits traffic by replica count.
 * - `try_duration`/`try_interval`: a request whose connection to an upstream fails (refused, timed
 *   out dialling) never reached it and is tried on another upstream for up to 10 s.
 * - Passive health checks: an upstream that fails a request is skipped for 5 s. (Caddy 2.6 runs
 *   active health checks only for static upstreams; with dynamic ones, Swarm's own healthcheck, which
 *   gates DNS, plays that part.)
 * - Admin on localhost:2019 inside the Caddy container only: never published, not on the overlay.
 */
import { routePorts, type Route } from './routes.ts';

/** A Caddy JSON config (only the parts MiniPaaS writes). */
export type CaddyConfig = { [key: string]: CaddyJson };
type CaddyJson = string | number | boolean | null | CaddyJson[] | { [key: string]: CaddyJson };

/** Where Caddy's admin API listens, inside its container. */
export const ADMIN_ADDRESS = 'localhost:2019';

/** How often Caddy re-resolves `tasks.<service>` (Caddy duration). */
export const UPSTREAM_REFRESH = '1s';

/** The name of a route's server in the config: one server per port. */
export function serverName(port: number): string {
  return `mp_${port}`;
}

function reverseProxy(r: Route): CaddyJson {
  return {
    handler: 'reverse_proxy',
    dynamic_upstreams: { source: 'a', name: `tasks.${r.service}`, port: String(r.targetPort), refresh: UPSTREAM_REFRESH },
    load_balancing: { selection_policy: { policy: 'round_robin' }, try_duration: '10s', try_interval: '100ms' },
    health_checks: { passive: { fail_duration: '5s', max_fails: 1 } },
    transport: { protocol: 'http', dial_timeout: '2s' },
  };
}

function caddyRoute(r: Route): CaddyJson {
  const match: { [key: string]: CaddyJson } = { host: [r.host] };
  if (r.path) match.path = [r.path, `${r.path}/*`];
  return { match: [match], handle: [reverseProxy(r)], terminal: true };
}

/**
 * The whole config: one server per port (plain HTTP servers with automatic HTTPS off, https ones
 * with Caddy's certificates and no port-80 redirect server), the internal CA for `tls: internal`
 * hosts (never installed into a trust store), admin on localhost only.
 *
 * @example caddyConfig(parseRoutes({ 'http://localhost:8000': 'api:8080' })).apps.http.servers.mp_8000.listen // [':8000']
 */
export function caddyConfig(routes: Route[]): CaddyConfig {
  const servers: { [key: string]: CaddyJson } = {};
  for (const port of routePorts(routes)) {
    const own = routes.filter((r) => r.port === port);
    const https = own[0]!.scheme === 'https';
    servers[serverName(port)] = {
      listen: [`:${port}`],
      routes: own.map(caddyRoute),
      automatic_https: https ? { disable_redirects: true } : { disable: true },
    };
  }
  const internal = [...new Set(routes.filter((r) => r.tls === 'internal').map((r) => r.host))].sort();
  const apps: { [key: string]: CaddyJson } = { http: { servers } };
  if (internal.length > 0) {
    apps.tls = { automation: { policies: [{ subjects: internal, issuers: [{ module: 'internal' }] }] } };
    apps.pki = { certificate_authorities: { local: { install_trust: false } } };
  }
  return { admin: { listen: ADMIN_ADDRESS }, apps };
}

/**
 * What a live config serves, as `host:port/path -> upstream` lines, read back from Caddy's own
 * document (so `mp routes ls` shows what Caddy has, not what MiniPaaS meant to send).
 */
export function servedRoutes(config: unknown): { listen: string; host: string; path: string; upstream: string; tls: boolean }[] {
  const out: { listen: string; host: string; path: string; upstream: string; tls: boolean }[] = [];
  const servers = (config as { apps?: { http?: { servers?: Record<string, unknown> } } } | null)?.apps?.http?.servers ?? {};
  for (const server of Object.values(servers) as { listen?: string[]; routes?: unknown[]; automatic_https?: { disable?: boolean } }[]) {
    for (const route of server.routes ?? []) {
      const r = route as { match?: { host?: string[]; path?: string[] }[]; handle?: { handler?: string; dynamic_upstreams?: { name?: string; port?: string }; upstreams?: { dial?: string }[] }[] };
      const proxy = r.handle?.find((h) => h.handler === 'reverse_proxy');
      const upstream = proxy?.dynamic_upstreams
        ? `${proxy.dynamic_upstreams.name}:${proxy.dynamic_upstreams.port}`
        : (proxy?.upstreams ?? []).map((u) => u.dial).join(',');
      for (const m of r.match?.length ? r.match : [{}]) {
        out.push({
          listen: (server.listen ?? []).join(','),
          host: (m.host ?? ['*']).join(','),
          path: (m.path ?? [''])[0] ?? '',
          upstream,
          tls: server.automatic_https?.disable !== true,
        });
      }
    }
  }
  return out;
}
