/**
 * Pushing one built image to its registry through the engine, with per-layer progress and a refusal
 * worded once: which image, which registry, what it said, and what to do. The next layer's
 * (`mp deploy build`) job is to record the digest.
 *
 * Terminology: a *layer* is one blob the engine uploads (its short id as the engine names it); the
 * *manifest digest* is what the registry returns for the whole image: what a deploy pins.
 */
import type { DockerEngine, PushMessage, RegistryAuth } from '../docker/engine.ts';
import { DockerError } from '../../sql/errors.ts';
import { registryHost } from './registry.ts';

/** One layer's progress: bytes sent of its size (0 of 0 until the engine knows), and whether it is done. */
export interface LayerProgress {
  reference: string;
  layer: string;
  current: number;
  total: number;
  /** `Preparing`, `Waiting`, `Pushing`, `Pushed`, `Layer already exists`. */
  status: string;
  done: boolean;
}

/** Options of `pushBuiltImage`. */
export interface PushBuiltOptions {
  auth?: RegistryAuth;
  signal?: AbortSignal;
  onLayer?: (progress: LayerProgress) => void;
}

/** A registry refused a push, or could not be reached. */
export class PushFailedError extends DockerError {
  constructor(
    /** The reference that was being pushed. */
    readonly reference: string,
    /** What the engine or registry said. */
    readonly registryError: string,
    message: string,
    hint: string,
  ) {
    super('PUSH_FAILED', message, hint);
  }
}

const DONE = new Set(['Pushed', 'Layer already exists', 'Mounted from']);

function hintFor(error: string, host: string): string {
  if (/connection refused|no such host|i\/o timeout|dial tcp|server gave HTTP response to HTTPS/i.test(error)) {
    return `check that a registry answers at ${host} (minipaas.yaml registry:); only 127.0.0.0/8 and the engine's insecure-registries are reached without TLS`;
  }
  if (/no basic auth credentials|unauthorized|authentication required|denied: requested access/i.test(error)) {
    return `log in with \`docker login ${host}\`, or set MP_REGISTRY_USERNAME and MP_REGISTRY_PASSWORD`;
  }
  if (/read.?only|unsupported|method not allowed|denied/i.test(error)) {
    return `the registry at ${host} does not accept pushes (read-only, or the repository is not writable for you); point registry: at one that does`;
  }
  return `see what the registry at ${host} logged; \`mp deploy build\` records nothing until every push succeeds`;
}

/**
 * Pushes `reference` (already tagged on `docker`) and returns the manifest digest. Throws
 * `PushFailedError` (a `DockerError`, code PUSH_FAILED) with the registry's words when it refuses.
 *
 * @example
 *   const digest = await pushBuiltImage(docker, '127.0.0.1:5000/shop/api:1', { onLayer: (l) => bar.update(l) });
 */
export async function pushBuiltImage(docker: DockerEngine, reference: string, opts: PushBuiltOptions = {}): Promise<string> {
  const layers = new Map<string, LayerProgress>();
  const onMessage = (m: PushMessage): void => {
    if (!m.id || !m.status || !opts.onLayer) return;
    const prev = layers.get(m.id) ?? { reference, layer: m.id, current: 0, total: 0, status: m.status, done: false };
    const done = DONE.has(m.status) || m.status.startsWith('Mounted from');
    const next: LayerProgress = {
      ...prev,
      status: m.status,
      current: done ? Math.max(prev.total, prev.current) : (m.progressDetail?.current ?? prev.current),
      total: m.progressDetail?.total ?? prev.total,
      done,
    };
    layers.set(m.id, next);
    opts.onLayer(next);
  };
  const outcome = await docker.pushImage(reference, { auth: opts.auth, signal: opts.signal }, onMessage);
  const host = registryHost(reference);
  if (outcome.error !== undefined || !outcome.digest) {
    const said = (outcome.error ?? 'the registry gave no digest').trim();
    throw new PushFailedError(reference, said, `pushing image '${reference}' to ${host} failed: ${said}`, hintFor(said, host));
  }
  return outcome.digest;
}
