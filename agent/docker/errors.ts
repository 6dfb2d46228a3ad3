/**
 * Maps what dockerode throws (socket errors, `(HTTP code 404) no such service - ...` errors carrying
 * `statusCode` and the engine's JSON body) to `MiniPaasError`s with a one-line message and a hint.
 * Executors never match on Docker's message text; this module is the one place that does.
 */
import { ConflictError, DockerError, MiniPaasError, NotFoundError } from '../../sql/errors.ts';

/** The fields of a docker-modem HTTP error and of a Node socket error that the mapping reads. */
interface RawDockerError {
  message: string;
  code?: string;
  statusCode?: number;
  json?: unknown;
}

/** Socket-level failures: the engine is not there (or not ours to talk to). */
const UNREACHABLE_CODES = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND']);

function isRaw(err: unknown): err is Error & RawDockerError {
  return err instanceof Error;
}

/** The engine's own message (`{"message": "..."}` body), without docker-modem's `(HTTP code N)` prefix. */
export function engineMessage(err: RawDockerError): string {
  const json = err.json as { message?: unknown } | string | null | undefined;
  if (json && typeof json === 'object' && typeof json.message === 'string') return json.message.trim();
  if (typeof json === 'string' && json.trim()) return json.trim();
  return err.message.replace(/^\(HTTP code \d+\)\s*/, '').trim();
}

/**
 * Turns an error from a dockerode call into a `MiniPaasError`. `endpoint` names the engine
 * (`/var/run/docker.sock`, `tcp://10.0.0.5:2376`); `subject` names what the call was about
 * (`service 'web'`), used in not-found messages. Aborts and our own errors pass through unchanged.
 *
 * @example
 *   try { await api.getService('web').inspect() }
 *   catch (err) { throw fromDockerError(err, { endpoint: '/var/run/docker.sock', subject: "service 'web'" }) }
 */
export function fromDockerError(err: unknown, where: { endpoint: string; subject?: string }): unknown {
  if (err instanceof MiniPaasError || !isRaw(err) || err.name === 'AbortError') return err;
  const { endpoint, subject } = where;

  if (err.code === 'EACCES') {
    return new DockerError(
      'DOCKER_PERMISSION',
      `permission denied on the Docker engine socket at ${endpoint}`,
      'run as root or as a member of the docker group, or set DOCKER_HOST',
    );
  }
  if (err.code && UNREACHABLE_CODES.has(err.code)) {
    return new DockerError(
      'DOCKER_UNREACHABLE',
      `cannot reach the Docker engine at ${endpoint} (${err.code})`,
      'start dockerd (in the lab: .ci/lab.sh) or set DOCKER_HOST',
    );
  }

  const status = err.statusCode;
  if (status === undefined) return err;
  const detail = engineMessage(err);
  if (status === 404) {
    return new NotFoundError(
      'DOCKER_NOT_FOUND',
      subject ? `${subject} does not exist on the Docker engine at ${endpoint}` : `not found: ${detail}`,
      subject ? `the engine said: ${detail}` : undefined,
    );
  }
  // Swarm endpoints answer 503 on a node that is not a manager, or not in a swarm at all.
  if (status === 503 && /swarm/i.test(detail)) {
    return new DockerError(
      'DOCKER_NOT_MANAGER',
      `the Docker engine at ${endpoint} is not a Swarm manager: ${detail}`,
      "run this operation on a manager node, or 'docker swarm init' for a one-node lab",
    );
  }
  // Swarm's version check fails with "update out of sequence", which engine 20.10 sends as a 500
  // (an unmapped gRPC error), so the text decides here and only here.
  if (/update out of sequence/i.test(detail)) {
    return new ConflictError(
      'DOCKER_OUT_OF_SEQUENCE',
      `${subject ?? 'the object'} was changed by someone else during the update`,
      'read it again and retry',
    );
  }
  if (status === 409) {
    return new ConflictError(
      'DOCKER_CONFLICT',
      `${subject ? `${subject}: ` : ''}${detail}`,
      'the object is in use or already exists; check with docker service ls / docker network ls',
    );
  }
  return new DockerError(
    `DOCKER_HTTP_${status}`,
    `the Docker engine at ${endpoint} refused ${subject ?? 'the request'}: ${detail}`,
    status >= 500 ? 'see the engine log (in the lab: /var/log/dockerd.log)' : undefined,
  );
}

/** Whether `err` is a version conflict on a Swarm object update (someone else updated it meanwhile). */
export function isOutOfSequence(err: unknown): boolean {
  return err instanceof ConflictError && err.code === 'DOCKER_OUT_OF_SEQUENCE';
}
