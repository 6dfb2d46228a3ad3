/**
 * What the `mp registry` verbs share: the environment directory and the registry host they act on.
 * The host is minipaas.yaml's `registry:` (its first component), or `--registry` for images of another
 * registry; credentials are kept per environment and host (docs/deploy.md "Builds and registries").
 */
import { z } from 'zod';
import { registryHost } from '../../../agent/build/registry.ts';
import { ConfigError } from '../../../sql/errors.ts';
import { environmentDir, environmentNameOf, readSettings } from '../../environment.ts';

/** Docker Hub's name in credential stores (and in mp.registry_auths). */
const DOCKER_HUB = 'https://index.docker.io/v1/';

/** What `mp.registry_auths.registry` accepts: a host with an optional port, or Docker Hub. */
const HOST = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$/;

/** The `--env` and `--registry` options every verb takes. */
export const targetOptions = {
  env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
  registry: z.string().min(1).optional(),
};

/**
 * The registry host of `--registry VALUE` (a host, a host with a path, or `docker.io`), else of
 * minipaas.yaml's `registry:`. `ConfigError` when neither names one.
 *
 * @example registryHostOf('127.0.0.1:5000/shop') // '127.0.0.1:5000'
 */
export function registryHostOf(value: string | undefined, fromSettings: string | undefined, env: string): string {
  const raw = value ?? fromSettings;
  if (!raw) {
    throw new ConfigError('NO_REGISTRY', `minipaas.yaml of ${env} has no registry:, and no --registry was given`, 'name the registry, e.g. --registry registry.example.com');
  }
  const bare = raw.replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
  const first = bare.split('/')[0]!;
  if (['docker.io', 'index.docker.io', 'registry-1.docker.io'].includes(first)) return DOCKER_HUB;
  const host = bare.includes('/') ? registryHost(bare) : first;
  if (host !== DOCKER_HUB && !HOST.test(host)) {
    throw new ConfigError('INVALID_REGISTRY', `'${raw}' does not name a registry host`, 'write a host with an optional port, e.g. --registry registry.example.com or --registry 10.0.0.5:5000');
  }
  return host;
}

/** The environment (`--env DIR`) and the registry host the verb acts on. */
export function registryTarget(opts: { env: string; registry?: string }): { environment: string; dir: string; host: string; settings: ReturnType<typeof readSettings> } {
  const dir = environmentDir(opts.env);
  const settings = readSettings(dir);
  const environment = environmentNameOf(dir);
  return { environment, dir, settings, host: registryHostOf(opts.registry, settings.registry, environment) };
}
