/**
 * Routes as data: what `routes:` in minipaas.yaml says, parsed and checked. Pure; the Caddy config
 * (`caddy-config.ts`) and the Caddy service (`ingress.ts`) are built from these.
 *
 * Terminology: a *route* sends requests for one URL (scheme, host, port, path prefix) to one port of
 * one Compose service; its *key* is the URL written the one way MiniPaaS writes it
 * (`http://localhost:8000`, `https://shop.example.com/api`), which is also its key in minipaas.yaml.
 * The *ingress* is the Caddy service MiniPaaS adds to a stack that has routes.
 *
 * @example
 *   # minipaas.yaml
 *   routes:
 *     http://localhost:8000: api:8080                   # plain HTTP on port 8000
 *     shop.example.com: web:3000                         # a bare host means https on 443 (Caddy's ACME)
 *     https://shop.test:8443: { to: web:3000, tls: internal }   # Caddy's own CA (tests, intranets)
 */
import { ConfigError, ConflictError } from '../../sql/errors.ts';

/** How Caddy gets the certificate of an https route: ACME (`auto`, Caddy's default) or its internal CA. */
export type RouteTls = 'auto' | 'internal';

/** One route, parsed. */
export interface Route {
  /** The route's key: its URL as MiniPaaS writes it (default ports and a root path left out). */
  key: string;
  scheme: 'http' | 'https';
  host: string;
  /** The port Caddy listens on (and publishes, host mode). */
  port: number;
  /** Path prefix without a trailing slash; '' for every path. */
  path: string;
  /** The Compose service key. */
  service: string;
  /** The container port of the service. */
  targetPort: number;
  tls: RouteTls;
}

/** A route's value in minipaas.yaml: `service:port`, or the long form with options. */
export type RouteValue = string | { to: string; tls?: RouteTls };

const DEFAULT_PORTS = { http: 80, https: 443 } as const;

/**
 * A route URL as the original `mp code route` took it: scheme, host, port and path; a bare host
 * (`shop.example.com`, `shop.example.com/api`) means https. Throws `ConfigError` for anything that is
 * not an http(s) URL with a host, or that has a query, fragment or credentials.
 *
 * @example parseRouteUrl('http://localhost:8000/api/') // { scheme: 'http', host: 'localhost', port: 8000, path: '/api', key: 'http://localhost:8000/api' }
 */
export function parseRouteUrl(text: string): Pick<Route, 'key' | 'scheme' | 'host' | 'port' | 'path'> {
  const raw = text.trim();
  const bad = (why: string): ConfigError =>
    new ConfigError('INVALID_ROUTE_URL', `route URL '${text}' ${why}`, 'write it as http://HOST[:PORT][/PATH], https://HOST[:PORT][/PATH] or a bare HOST (https)');
  if (raw === '') throw bad('is empty');
  const withScheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(raw) ? raw : `https://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw bad('is not a URL');
  }
  const scheme = url.protocol.slice(0, -1);
  if (scheme !== 'http' && scheme !== 'https') throw bad(`has scheme '${scheme}'; routes are http or https`);
  if (!url.hostname) throw bad('has no host');
  if (url.username || url.password) throw bad('has credentials; a route names no user');
  if (url.search || url.hash) throw bad('has a query or fragment; a route is a host and a path prefix');
  // URL accepts `http://host:abc` as invalid already; an explicit port survives as a string.
  const port = url.port ? Number(url.port) : DEFAULT_PORTS[scheme];
  const path = decodeURIComponent(url.pathname).replace(/\/+$/, '');
  if (/[*{}\s]/.test(path)) throw bad(`has path '${path}' with wildcards or spaces; a route path is a plain prefix`);
  const host = url.hostname.toLowerCase();
  const key = `${scheme}://${host}${port === DEFAULT_PORTS[scheme] ? '' : `:${port}`}${path}`;
  return { key, scheme, host, port, path };
}

/**
 * `service:port` as `mp code route` takes it. Throws `ConfigError` when the port is not a number in
 * 1..65535 or the service is not a Compose service name.
 */
export function parseRouteTarget(text: string): { service: string; targetPort: number } {
  const m = /^([^:\s]+):([^:\s]*)$/.exec(text.trim());
  if (!m) {
    throw new ConfigError('INVALID_ROUTE_TARGET', `route target '${text}' is not service:port`, 'name the Compose service and its container port, e.g. api:8080');
  }
  const [, service, portText] = m as unknown as [string, string, string];
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(service)) {
    throw new ConfigError('INVALID_ROUTE_TARGET', `route target '${text}': '${service}' is not a Compose service name`, 'service names are letters, digits, ., _ and -');
  }
  const port = /^\d+$/.test(portText) ? Number(portText) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError('INVALID_ROUTE_TARGET', `route target '${text}': port '${portText}' is not a number from 1 to 65535`, `e.g. ${service}:8080`);
  }
  return { service, targetPort: port };
}

/** One route from its minipaas.yaml key and value. */
export function parseRoute(url: string, value: RouteValue): Route {
  const where = parseRouteUrl(url);
  const long = typeof value === 'string' ? { to: value } : value;
  const tls = long.tls ?? 'auto';
  if (tls === 'internal' && where.scheme !== 'https') {
    throw new ConfigError('INVALID_ROUTE', `route ${where.key}: tls: internal needs an https URL`, `write https://${where.host}${where.port === 80 ? '' : `:${where.port}`}${where.path}`);
  }
  return { ...where, ...parseRouteTarget(long.to), tls };
}

/**
 * Every route of an environment, checked together: no two keys that mean the same URL, and no port
 * asked to be both http and https. Sorted by port, host, then longest path first (Caddy's match order).
 * Throws `ConfigError`/`ConflictError` naming the routes.
 */
export function parseRoutes(routes: Record<string, RouteValue> | undefined): Route[] {
  const parsed = Object.entries(routes ?? {}).map(([url, value]) => parseRoute(url, value));
  const byKey = new Map<string, Route>();
  const schemeOfPort = new Map<number, Route>();
  for (const r of parsed) {
    const twin = byKey.get(r.key);
    if (twin) {
      throw new ConflictError(
        'ROUTE_CONFLICT',
        `${r.key} is routed twice: to ${twin.service}:${twin.targetPort} and to ${r.service}:${r.targetPort}`,
        'keep one of them in routes: (`mp code route --rm URL` removes one)',
      );
    }
    byKey.set(r.key, r);
    const other = schemeOfPort.get(r.port);
    if (other && other.scheme !== r.scheme) {
      throw new ConflictError('ROUTE_CONFLICT', `port ${r.port} is asked to serve both ${other.scheme} (${other.key}) and ${r.scheme} (${r.key})`, 'give one of them another port');
    }
    schemeOfPort.set(r.port, r);
  }
  return parsed.sort((a, b) => a.port - b.port || a.host.localeCompare(b.host) || b.path.length - a.path.length || a.path.localeCompare(b.path));
}

/** The ports the ingress listens on, sorted. */
export function routePorts(routes: Route[]): number[] {
  return [...new Set(routes.map((r) => r.port))].sort((a, b) => a - b);
}

/** `http://localhost:8000 -> api:8080`, as the CLI prints a route. */
export function describeRoute(r: Route): string {
  return `${r.key} -> ${r.service}:${r.targetPort}${r.tls === 'internal' ? ' (tls internal)' : ''}`;
}
