/**
 * Pinning a stack's images: each service's image reference resolved, once per release, to what exactly
 * runs: `name:tag@sha256:...` where the engine or the image's registry knows a digest (so every node runs
 * the same bytes and a rollback restores them), or the local image id for an image built on this engine
 * and never pushed (a single-node Swarm runs it by tag; the id, set as a container label, makes a rebuild
 * under the same tag a change the plan sees).
 */
import type Dockerode from 'dockerode';
import { ConfigError, MiniPaasError, NotFoundError } from '../../sql/errors.ts';
import type { StackSpec } from '../../stack/types.ts';
import { registryHost } from '../build/registry.ts';
import type { DockerEngine, RegistryAuth } from '../docker/engine.ts';

/** The registry credentials to look an image up with, if any (a deploy's stored ones, by host). */
export type ImageAuth = (image: string) => RegistryAuth | undefined;

/** Container label holding the local image id of an image that has no digest. */
export const IMAGE_ID_LABEL = 'org.minipaas.image.id';

/** What one service's image was pinned to. */
export interface PinnedImage {
  /** The reference the service runs: with `@sha256:` when a digest is known. */
  ref: string;
  /** The local image id, when the image is on this engine. */
  id?: string;
  digest?: string;
}

/** The image reference of a service spec (`ContainerSpec.Image`). */
export function serviceImage(spec: Dockerode.ServiceSpec): string | undefined {
  const tpl = spec.TaskTemplate;
  return tpl && 'ContainerSpec' in tpl ? tpl.ContainerSpec?.Image : undefined;
}

/** `name:tag@sha256:x` -> `name:tag`; the repository part of `registry:5000/name:tag` -> `registry:5000/name`. */
function splitReference(image: string): { name: string; repository: string; digest?: string } {
  const [name, digest] = image.split('@') as [string, string | undefined];
  const lastSlash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  const repository = colon > lastSlash ? name.slice(0, colon) : name;
  return { name, repository, digest };
}

/**
 * Resolves every service's image on `docker`. Throws `ConfigError` IMAGE_UNAVAILABLE naming the service
 * and the image when neither the engine nor the registry has it: no node could run it.
 */
export async function resolveImages(docker: DockerEngine, spec: StackSpec, authFor?: ImageAuth): Promise<Record<string, PinnedImage>> {
  const pins: Record<string, PinnedImage> = {};
  // Job templates too: `mp job run`, pre_deploy and cron ticks run the images the release pinned.
  for (const service of [...spec.services, ...(spec.jobs ?? [])]) {
    const image = serviceImage(service.spec);
    if (!image) continue;
    pins[service.key] = await resolveImage(docker, image, service.key, authFor);
  }
  return pins;
}

async function resolveImage(docker: DockerEngine, image: string, service: string, authFor?: ImageAuth): Promise<PinnedImage> {
  const { name, repository, digest } = splitReference(image);
  const local = await docker.inspectImage(digest ? image : name).catch((err: unknown) => {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  });
  const localDigest = local?.repoDigests.find((d) => d.startsWith(`${repository}@`))?.split('@')[1];
  const known = digest ?? localDigest;
  if (known) return { ref: `${name}@${known}`, id: local?.id, digest: known };
  if (local) return { ref: name, id: local.id };
  const remote = await docker.registryDigest(name, authFor?.(name)).catch((err: unknown) => {
    if (err instanceof MiniPaasError) return err;
    throw err;
  });
  if (typeof remote === 'string') return { ref: `${name}@${remote}`, digest: remote };
  throw new ConfigError(
    'IMAGE_UNAVAILABLE',
    `image '${name}' of service '${service}' is not on the engine at ${docker.endpoint} and its registry does not have it (${remote.message})`,
    'build it (`mp deploy build`) or push it to its registry, then deploy again',
  );
}

/**
 * Checks that pinned images can still be had (a rollback's images may have been pruned). Throws
 * `ConfigError` IMAGE_UNAVAILABLE naming the first that cannot.
 */
export async function checkPinnedImages(docker: DockerEngine, pins: Record<string, PinnedImage>, authFor?: ImageAuth): Promise<void> {
  for (const [service, pin] of Object.entries(pins)) {
    if (pin.id) {
      const ok = await docker.inspectImage(pin.id).then(
        () => true,
        () => false,
      );
      if (ok) continue;
      if (!pin.digest) {
        throw new ConfigError(
          'IMAGE_UNAVAILABLE',
          `image '${pin.ref}' (id ${pin.id.slice(7, 19)}) of service '${service}' is no longer on the engine at ${docker.endpoint}`,
          'rebuild and deploy it as a new release instead of rolling back to it',
        );
      }
    }
    await resolveImage(docker, pin.ref, service, authFor);
  }
}

/** The spec with every service on its pinned image (and the image id label where there is no digest). */
export function applyPins(spec: StackSpec, pins: Record<string, PinnedImage>): StackSpec {
  return {
    ...spec,
    services: spec.services.map((service) => {
      const pin = pins[service.key];
      const tpl = service.spec.TaskTemplate;
      if (!pin || !tpl || !('ContainerSpec' in tpl) || !tpl.ContainerSpec) return service;
      const container = { ...tpl.ContainerSpec, Image: pin.ref };
      if (!pin.digest && pin.id) container.Labels = { ...(container.Labels ?? {}), [IMAGE_ID_LABEL]: pin.id };
      return { ...service, spec: { ...service.spec, TaskTemplate: { ...tpl, ContainerSpec: container } } };
    }),
  };
}

/**
 * Checks that every service's image can be pulled where it is not on this engine already: asks its
 * registry for it (through the engine, with the credentials `authFor` gives), so a registry that wants
 * a login, or refuses the one stored, fails the deploy before anything changes, with one clear error,
 * instead of every task failing to pull. `ConfigError` IMAGE_NOT_PULLABLE naming the service, the
 * image, the registry and what it said.
 */
export async function checkPullable(docker: DockerEngine, spec: StackSpec, authFor?: ImageAuth): Promise<void> {
  for (const service of spec.services) {
    const image = serviceImage(service.spec);
    if (!image) continue;
    const local = await docker.inspectImage(image).then(
      () => true,
      (err: unknown) => {
        if (err instanceof NotFoundError) return false;
        throw err;
      },
    );
    if (local) continue;
    const auth = authFor?.(image);
    await docker.registryDigest(image, auth).catch((err: unknown) => {
      if (!(err instanceof MiniPaasError)) throw err;
      const said = (err.message.split(' on its registry: ')[1] ?? err.message).replace(/^[A-Za-z]+ "[^"]*": /, '');
      const host = registryHost(image);
      throw new ConfigError(
        'IMAGE_NOT_PULLABLE',
        // The remedy is in the message too: an operation's error reaches the CLI without its hint.
        `image '${image}' of service '${service.key}' cannot be pulled from ${host} ${auth ? `with the stored credentials of '${auth.username}'` : 'without credentials'}: ${said}` +
          (auth ? ' (log in again with `mp registry login`)' : ` (if it wants a login: \`mp registry login --env DIR --registry ${host} --username USER --password-stdin\`)`),
        auth
          ? `log in again: \`printf %s "$PASSWORD" | mp registry login --env DIR --registry ${host} --username ${auth.username} --password-stdin\`, or check that the image was pushed there`
          : `if the registry wants a login, store it for the environment: \`printf %s "$PASSWORD" | mp registry login --env DIR --registry ${host} --username USER --password-stdin\`; then deploy again`,
      );
    });
  }
}
