/**
 * Service keys Swarm does not honour. `docker stack deploy` warns "Ignoring unsupported options: ..."
 * for its own list and silently drops others (depends_on, tmpfs, ...); MiniPaaS warns for every key
 * it drops, one line per key, naming the services that use it.
 */

type Dict = Record<string, unknown>;

/** The service keys the converter reads; any other (but `x-*`) is reported. */
export const SUPPORTED_SERVICE_KEYS: ReadonlySet<string> = new Set([
  'image',
  'command',
  'entrypoint',
  'environment',
  'env_file',
  'labels',
  'ports',
  'networks',
  'volumes',
  'healthcheck',
  'user',
  'working_dir',
  'hostname',
  'extra_hosts',
  'stop_grace_period',
  'stop_signal',
  'init',
  'cap_add',
  'cap_drop',
  'ulimits',
  'sysctls',
  'logging',
  'secrets',
  'configs',
  'deploy',
  'dns',
  'dns_search',
  'tty',
  'stdin_open',
  'read_only',
  'isolation',
  'oom_score_adj',
  // converted into the restart policy when deploy.restart_policy is absent, but still reported
  // below, as docker/cli reports it: Swarm restarts tasks, not containers.
  'restart',
]);

/** Keys docker/cli explains when it ignores them. */
const REASONS: Record<string, string> = {
  build: 'Swarm runs images; build them first (mp deploy build)',
  container_name: 'Swarm names containers itself',
  expose: 'services on one network reach each other on any port',
  depends_on: 'Swarm starts services in no particular order; use health checks and retries',
  restart: 'used only when deploy.restart_policy is absent',
  links: 'services on one network resolve each other by name',
};

/** One line per ignored key, sorted by key: `ignoring 'build' (services: api, web): reason`. */
export function unsupportedWarnings(services: Record<string, Dict>): string[] {
  const byKey = new Map<string, string[]>();
  for (const [name, svc] of Object.entries(services)) {
    for (const key of Object.keys(svc)) {
      if (key.startsWith('x-') || (SUPPORTED_SERVICE_KEYS.has(key) && key !== 'restart')) continue;
      byKey.set(key, [...(byKey.get(key) ?? []), name]);
    }
  }
  return [...byKey.keys()].sort().map((key) => {
    const names = byKey.get(key)!.sort().join(', ');
    const reason = REASONS[key] ?? 'Swarm does not support it';
    return `ignoring unsupported option '${key}' (services: ${names}): ${reason}`;
  });
}
