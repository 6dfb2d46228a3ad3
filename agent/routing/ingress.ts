/**
 * The ingress: the Caddy service MiniPaaS adds to the stack of an environment that has routes. It is
 * written as one more Compose service (long syntax) into the loaded model, so it goes through the
 * same converter as the user's services and its spec compares with what the engine stores exactly
 * like theirs: a deploy with unchanged routes plans nothing for it.
 *
 * Choices (docs/routing.md):
 * - One Caddy per environment, in its own stack (`<stack>_caddy`), not a shared platform stack: it
 *   joins exactly the networks of the services it routes to, its config is the environment's routes
 *   and nothing else, and a rollback of the environment restores its ingress too. Two environments on
 *   one swarm need different route ports.
 * - Ports published in host mode: Swarm's ingress routing mesh needs IPVS, which this lab's kernel
 *   lacks, and host mode keeps the client's address. Hence one replica, updated stop-first (two tasks
 *   cannot bind one host port), placed on a manager, where the `routing` executor runs.
 * - `caddy run --resume`: the config the agent loaded is autosaved on the `caddy_config` volume, so a
 *   restarted Caddy serves the same routes before any agent acts; certificates (and the internal CA)
 *   live on `caddy_data`.
 * - The healthcheck asks the admin API on localhost, inside the container.
 */
import { ConfigError } from '../../sql/errors.ts';
import { serviceNetworkKeys } from '../../stack/convert/networks.ts';
import type { ComposeModel } from '../../stack/loader/index.ts';
import { listNames, nearMiss } from '../executors/near-miss.ts';
import { ADMIN_ADDRESS } from './caddy-config.ts';
import { routePorts, type Route } from './routes.ts';

/** The Compose key of the ingress service: `<stack>_caddy` in Swarm. */
export const INGRESS_KEY = 'caddy';

/** Label on the ingress service, so the agent and `mp routes ls` find it. */
export const INGRESS_LABEL = 'org.minipaas.ingress';

/** The image: built locally in the lab (images/caddy/build.sh), Docker Hub's official one elsewhere. */
export const INGRESS_IMAGE = 'caddy:2';

/**
 * The Compose services that routes name must exist (with the near miss otherwise) and not be the
 * ingress itself. Throws `ConfigError`.
 */
export function checkRoutedServices(model: Pick<ComposeModel, 'services'>, routes: Route[]): void {
  const defined = Object.keys(model.services).sort();
  for (const r of routes) {
    if (!(r.service in model.services)) {
      const guess = nearMiss(r.service, defined);
      throw new ConfigError(
        'UNKNOWN_SERVICE',
        `route ${r.key} sends to service '${r.service}', which no Compose file defines; defined services: ${listNames(defined)}`,
        guess ? `did you mean '${guess}'?` : 'fix the route in minipaas.yaml routes:',
      );
    }
    if (r.service === INGRESS_KEY) {
      throw new ConfigError('INVALID_ROUTE', `route ${r.key} sends to '${INGRESS_KEY}', the ingress itself`, 'route to one of your services');
    }
  }
}

/**
 * The model with the ingress service and its volumes added (a new object); the model unchanged when
 * there are no routes. Throws `ConfigError` as `checkRoutedServices`, and when the user's files
 * define a `caddy` service of their own.
 *
 * @example withIngress(model, parseRoutes({ 'http://localhost:8000': 'api:8080' })).services.caddy.ports
 *   // [{ target: 8000, published: 8000, protocol: 'tcp', mode: 'host' }]
 */
export function withIngress(model: ComposeModel, routes: Route[]): ComposeModel {
  if (routes.length > 0 && INGRESS_KEY in model.services) {
    throw new ConfigError(
      'INGRESS_CONFLICT',
      `the Compose files define a service '${INGRESS_KEY}', and MiniPaaS adds its own Caddy service under that name when minipaas.yaml has routes:`,
      `rename your service, or remove routes: and keep routing with your own Caddy`,
    );
  }
  checkRoutedServices(model, routes);
  if (routes.length === 0) return model;
  const networks = [...new Set(routes.flatMap((r) => serviceNetworkKeys(model.services[r.service]!)))].sort();
  const caddy: Record<string, unknown> = {
    image: INGRESS_IMAGE,
    command: ['caddy', 'run', '--resume'],
    ports: routePorts(routes).map((port) => ({ target: port, published: port, protocol: 'tcp', mode: 'host' })),
    networks: Object.fromEntries(networks.map((n) => [n, null])),
    volumes: [
      { type: 'volume', source: 'caddy_data', target: '/data' },
      { type: 'volume', source: 'caddy_config', target: '/config' },
    ],
    healthcheck: {
      test: ['CMD-SHELL', `wget -q -O /dev/null http://${ADMIN_ADDRESS}/config/`],
      interval: '2s',
      timeout: '2s',
      retries: 3,
      start_period: '5s',
    },
    stop_grace_period: '10s',
    deploy: {
      replicas: 1,
      labels: { [INGRESS_LABEL]: 'caddy' },
      placement: { constraints: ['node.role == manager'] },
      update_config: { order: 'stop-first', failure_action: 'rollback' },
    },
  };
  return {
    ...model,
    services: { ...model.services, [INGRESS_KEY]: caddy },
    volumes: { ...model.volumes, caddy_data: model.volumes.caddy_data ?? {}, caddy_config: model.volumes.caddy_config ?? {} },
    origins: { ...model.origins, [INGRESS_KEY]: 'minipaas.yaml routes:' },
  };
}
