/** Reading a stack's current state from the engine, by its namespace label. No changes. */
import { createHash } from 'node:crypto';
import { NotFoundError } from '../../sql/errors.ts';
import { STACK_NAMESPACE_LABEL, type DockerEngine } from '../docker/engine.ts';
import type { StackSpec } from '../../stack/types.ts';
import { DIGEST_LABEL, type ObservedStack } from './types.ts';

async function orNull<T>(fn: () => Promise<T>): Promise<T | null> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof NotFoundError) return null;
    throw err;
  }
}

/**
 * Reads the stack's networks, secrets, configs and services (by the label
 * `com.docker.stack.namespace=<stack>`), and, when `desired` is given, whether the external
 * networks, secrets and configs it names exist.
 *
 * @example
 *   const observed = await observeStack(docker, 'shop', desired);
 */
export async function observeStack(docker: DockerEngine, stack: string, desired?: StackSpec): Promise<ObservedStack> {
  const label = [`${STACK_NAMESPACE_LABEL}=${stack}`];
  const [networks, secrets, configs, services, allNetworks] = await Promise.all([
    docker.listNetworks({ label }),
    docker.listSecrets({ label }),
    docker.listConfigs({ label }),
    docker.listServices({ label }),
    docker.listNetworks(),
  ]);
  const external: ObservedStack['external'] = { networks: {}, secrets: {}, configs: {} };
  for (const n of desired?.networks.filter((x) => x.external) ?? []) {
    const info = await orNull(() => docker.inspectNetwork(n.name));
    external.networks[n.name] = info ? { id: info.id, scope: info.scope } : null;
  }
  // The list filters match names by prefix: pick the exact name.
  for (const s of desired?.secrets.filter((x) => x.external) ?? []) {
    external.secrets[s.name] = (await docker.listSecrets({ name: [s.name] })).find((o) => o.name === s.name)?.id ?? null;
  }
  for (const c of desired?.configs.filter((x) => x.external) ?? []) {
    external.configs[c.name] = (await docker.listConfigs({ name: [c.name] })).find((o) => o.name === c.name)?.id ?? null;
  }
  return {
    stack,
    networks,
    secrets: secrets.map((s) => ({ ...s, ...(s.labels[DIGEST_LABEL] ? { digest: s.labels[DIGEST_LABEL] } : {}) })),
    configs: configs.map(({ data, ...c }) => ({
      ...c,
      ...(data !== undefined ? { digest: createHash('sha256').update(Buffer.from(data, 'base64')).digest('hex') } : {}),
    })),
    services: services.sort((a, b) => a.name.localeCompare(b.name)),
    networkNames: Object.fromEntries(allNetworks.map((n) => [n.id, n.name])),
    external,
  };
}
