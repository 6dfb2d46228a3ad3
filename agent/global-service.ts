/**
 * The agent as a Swarm global service: one agent task per node, from the locally built image
 * (`images/agent/build.sh`), with the Docker socket mounted and the database URL passed as a Docker
 * secret. `mp agent install` observes, plans (pure, below) and applies.
 *
 * Why a secret and not an environment variable: a service's environment is in its spec, which anyone
 * with `docker service inspect` reads (and logs, and support bundles). A secret is stored encrypted in
 * the Raft log and only mounted as a file (`/run/secrets/mp_database_url`) into the tasks that use it;
 * the image's entrypoint reads it (`DATABASE_URL_FILE`) and exports `DATABASE_URL` to the agent's
 * process only. Secrets are immutable, so a new URL is a new secret, `mp_database_url_<hash>`; the
 * service is pointed at it (a rolling restart) and the previous one is removed.
 *
 * With a cluster key, the agents are two global services: `<name>` on the managers, the only tasks the
 * key's secret is mounted into (Swarm sends a secret only to nodes running a task that uses it), and
 * `<name>-workers` on the workers, without it. A worker that is taken over gives away no secret.
 *
 * Idempotent: the service carries a hash of the spec it was given; installing the same thing again
 * changes nothing. A rebuilt image (a new image id under the same tag) changes the spec, so the agents
 * restart on it, one node at a time.
 */
import { createHash } from 'node:crypto';
import type Dockerode from 'dockerode';
import { ConflictError, DockerError, NotFoundError } from '../sql/errors.ts';
import type { DockerEngine, ServiceInfo, SwarmObject } from './docker/engine.ts';

/** The default name of the service. */
export const AGENT_SERVICE = 'mp-agent';
/** The default image (`images/agent/build.sh` tags it). */
export const AGENT_IMAGE = 'mp/agent:latest';
/** Where tasks find the database URL: `/run/secrets/<this>`. */
export const SECRET_FILE = 'mp_database_url';
export const SECRET_PATH = `/run/secrets/${SECRET_FILE}`;
/** Where tasks find the cluster key (sealed secrets' private key), as MP_CLUSTER_KEY_FILE. */
export const CLUSTER_KEY_FILE = 'mp_cluster_key';
export const CLUSTER_KEY_PATH = `/run/secrets/${CLUSTER_KEY_FILE}`;
/** What each object is, for `docker ... ls --filter label=org.minipaas.role=agent`. */
export const ROLE_LABEL = 'org.minipaas.role';
/** The service a database-URL secret belongs to, so an install prunes only its own old secrets. */
export const SERVICE_LABEL = 'org.minipaas.service';
/** Hash of the spec an install gave: equal means nothing to change. */
export const SPEC_HASH_LABEL = 'org.minipaas.spec-hash';
/** The image id behind the tag, on the tasks: a rebuilt image under the same tag restarts them. */
export const IMAGE_ID_LABEL = 'org.minipaas.image-id';
/** How long Swarm lets a stopping agent finish: its own shutdown gives operations 30 s. */
const STOP_GRACE_NS = 35_000_000_000;

export interface AgentServiceOptions {
  /** The service name (default `mp-agent`). */
  service: string;
  image: string;
  /** The URL agents connect with; only ever stored in the secret. */
  databaseUrl: string;
  /** `host` (default): agents reach a PostgreSQL on the host's loopback; or a Swarm network name. */
  network: string;
  /**
   * The Docker secret holding the cluster key file, mounted at CLUSTER_KEY_PATH; `text` is the key
   * file's content when the secret must be created (never kept anywhere else).
   */
  clusterKey?: { secretName: string; text?: string };
}

/** The name of the Docker secret holding the key file whose newest public key is `publicKey`. */
export function clusterKeySecretName(publicKey: string): string {
  return `${CLUSTER_KEY_FILE}_${createHash('sha256').update(publicKey).digest('hex').slice(0, 12)}`;
}

/** The name of the workers' agent service, when the managers' holds the cluster key. */
export function workersServiceName(service: string): string {
  return `${service}-workers`;
}

/** Which agents a service runs: every node (no cluster key), or the managers or the workers. */
export type AgentPart = 'all' | 'managers' | 'workers';

/** What an install depends on. */
export interface AgentServiceState {
  /** The local image id of `options.image`. */
  imageId: string;
  service?: Pick<ServiceInfo, 'id' | 'name' | 'version' | 'labels'>;
  /** The workers' service (`<service>-workers`), when it exists. */
  workers?: Pick<ServiceInfo, 'id' | 'name' | 'version' | 'labels'>;
  /** Database-URL secrets of this service (by label), and any secret with the wanted name. */
  secrets: SwarmObject[];
}

export type AgentServiceAction =
  | { type: 'create-secret'; name: string; labels: Record<string, string> }
  | { type: 'keep-secret'; name: string; id: string }
  | { type: 'create-service'; part: AgentPart; name: string; spec: Dockerode.ServiceSpec }
  | { type: 'update-service'; part: AgentPart; name: string; id: string; version: number; spec: Dockerode.ServiceSpec }
  | { type: 'keep-service'; part: AgentPart; name: string; id: string }
  | { type: 'remove-service'; part: AgentPart; name: string; id: string }
  | { type: 'remove-secret'; name: string; id: string };

/** The name of the secret holding `url` for `service`: a new value is a new name (secrets are immutable). */
export function secretName(service: string, url: string): string {
  // Keyed by the service too, so two installs that share a URL never share (and prune) one secret.
  const hash = createHash('sha256').update(`${service}\n${url}`).digest('hex').slice(0, 12);
  return `${SECRET_FILE}_${hash}`;
}

function hashOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

/**
 * Pure: the spec of the global agent service. `secretId` is filled in when the secret exists (a
 * new one's id is known only once created); the spec hash leaves it out, the secret's name says it all.
 */
export function agentServiceSpec(
  opts: AgentServiceOptions,
  ctx: { imageId: string; secretName: string; secretId?: string },
  part: AgentPart = opts.clusterKey ? 'managers' : 'all',
): Dockerode.ServiceSpec {
  const withKey = opts.clusterKey !== undefined && part !== 'workers';
  const spec = {
    Name: part === 'workers' ? workersServiceName(opts.service) : opts.service,
    Labels: { [ROLE_LABEL]: 'agent' } as Record<string, string>,
    TaskTemplate: {
      ContainerSpec: {
        Image: opts.image,
        Labels: { [ROLE_LABEL]: 'agent', [IMAGE_ID_LABEL]: ctx.imageId },
        // The URL itself is never here: only where to read it.
        Env: [
          `DATABASE_URL_FILE=${SECRET_PATH}`,
          'MP_AGENT_NAME={{.Node.Hostname}}',
          ...(withKey ? [`MP_CLUSTER_KEY_FILE=${CLUSTER_KEY_PATH}`] : []),
        ],
        Mounts: [{ Type: 'bind', Source: '/var/run/docker.sock', Target: '/var/run/docker.sock' }],
        Secrets: [
          {
            SecretName: ctx.secretName,
            SecretID: ctx.secretId ?? '',
            File: { Name: SECRET_FILE, UID: '0', GID: '0', Mode: 0o400 },
          },
          ...(withKey && opts.clusterKey
            ? [{ SecretName: opts.clusterKey.secretName, SecretID: '', File: { Name: CLUSTER_KEY_FILE, UID: '0', GID: '0', Mode: 0o400 } }]
            : []),
        ],
        // An init reaps what the agent spawns (ssh, docker helpers) and forwards SIGTERM to it.
        Init: true,
        StopGracePeriod: STOP_GRACE_NS,
      },
      RestartPolicy: { Condition: 'any', Delay: 5_000_000_000 },
      Networks: [{ Target: opts.network }],
      ...(part === 'all' ? {} : { Placement: { Constraints: [`node.role==${part === 'managers' ? 'manager' : 'worker'}`] } }),
    },
    Mode: { Global: {} },
    // Stop first: with the host network, two agents of one node would register under one name at once.
    UpdateConfig: { Parallelism: 1, Order: 'stop-first', FailureAction: 'pause' },
  };
  const forHash = structuredClone(spec);
  for (const ref of forHash.TaskTemplate.ContainerSpec.Secrets) ref.SecretID = '';
  spec.Labels[SPEC_HASH_LABEL] = hashOf(forHash);
  return spec as Dockerode.ServiceSpec;
}

/**
 * Pure: the secret to create or keep, the service to create, update or keep, and the service's old
 * database-URL secrets to remove (after the service stopped using them).
 *
 * @example
 *   planInstall(opts, { imageId: 'sha256:1', secrets: [] })
 *   // [{ type: 'create-secret', name: 'mp_database_url_3f2a...' }, { type: 'create-service', ... }]
 */
export function planInstall(opts: AgentServiceOptions, state: AgentServiceState): AgentServiceAction[] {
  const name = secretName(opts.service, opts.databaseUrl);
  const existingSecret = state.secrets.find((s) => s.name === name);
  const actions: AgentServiceAction[] = [];
  if (existingSecret) actions.push({ type: 'keep-secret', name, id: existingSecret.id });
  else actions.push({ type: 'create-secret', name, labels: { [ROLE_LABEL]: 'agent-database-url', [SERVICE_LABEL]: opts.service } });

  const specCtx = { imageId: state.imageId, secretName: name, secretId: existingSecret?.id };
  const serviceAction = (part: AgentPart, name: string, svc: AgentServiceState['service']): AgentServiceAction => {
    const spec = agentServiceSpec(opts, specCtx, part);
    if (!svc) return { type: 'create-service', part, name, spec };
    if (svc.labels[ROLE_LABEL] !== 'agent') {
      throw new ConflictError(
        'NOT_AN_AGENT_SERVICE',
        `service '${svc.name}' exists and was not created by \`mp agent install\` (it has no ${ROLE_LABEL}=agent label)`,
        'remove it with `docker service rm`, or install under another name with --service-name',
      );
    }
    if (svc.labels[SPEC_HASH_LABEL] === spec.Labels![SPEC_HASH_LABEL]) return { type: 'keep-service', part, name: svc.name, id: svc.id };
    return { type: 'update-service', part, name: svc.name, id: svc.id, version: svc.version, spec };
  };
  if (opts.clusterKey) {
    actions.push(serviceAction('managers', opts.service, state.service));
    actions.push(serviceAction('workers', workersServiceName(opts.service), state.workers));
  } else {
    actions.push(serviceAction('all', opts.service, state.service));
    if (state.workers?.labels[ROLE_LABEL] === 'agent') actions.push({ type: 'remove-service', part: 'workers', name: state.workers.name, id: state.workers.id });
  }
  for (const old of state.secrets) {
    if (old.name !== name && old.labels[SERVICE_LABEL] === opts.service && old.labels[ROLE_LABEL] === 'agent-database-url') {
      actions.push({ type: 'remove-secret', name: old.name, id: old.id });
    }
  }
  return actions;
}

/** Reads the image, the service and this service's secrets. */
export async function observeInstall(docker: DockerEngine, opts: AgentServiceOptions): Promise<AgentServiceState> {
  let imageId: string;
  try {
    imageId = (await docker.inspectImage(opts.image)).id;
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    throw new NotFoundError(
      'AGENT_IMAGE_MISSING',
      `image ${opts.image} is not on the Docker engine at ${docker.endpoint}`,
      'build it with images/agent/build.sh (no registry needed); on a multi-node swarm, load it on every node (docker save | docker load)',
    );
  }
  const services = await docker.listServices({ name: [opts.service] });
  const service = services.find((s) => s.name === opts.service);
  const workers = services.find((s) => s.name === workersServiceName(opts.service));
  const own = await docker.listSecrets({ label: [`${SERVICE_LABEL}=${opts.service}`] });
  const wanted = secretName(opts.service, opts.databaseUrl);
  const byName = (await docker.listSecrets({ name: [wanted] })).filter((s) => s.name === wanted);
  const secrets = [...own, ...byName.filter((s) => !own.some((o) => o.id === s.id))];
  return { imageId, service, ...(workers ? { workers } : {}), secrets };
}

/** What an install did, for printing. */
export interface InstallReport {
  /** The agents of every node, or (with a cluster key) of the managers. */
  service: { name: string; id: string; action: 'created' | 'updated' | 'unchanged' };
  /** With a cluster key: the workers' agents, without it; `removed` when an install without a key took it away. */
  workers?: { name: string; id: string; action: 'created' | 'updated' | 'unchanged' | 'removed' };
  secret: { name: string; id: string; action: 'created' | 'unchanged' };
  removedSecrets: string[];
  /** Old secrets still in use (by tasks still stopping); the next install removes them. */
  keptSecrets: string[];
  image: string;
  imageId: string;
  network: string;
}

/** Observes, plans and applies; returns what it did. */
export async function installAgentService(docker: DockerEngine, opts: AgentServiceOptions): Promise<InstallReport> {
  const state = await observeInstall(docker, opts);
  const actions = planInstall(opts, state);
  const report: InstallReport = {
    service: { name: opts.service, id: '', action: 'unchanged' },
    secret: { name: '', id: '', action: 'unchanged' },
    removedSecrets: [],
    keptSecrets: [],
    image: opts.image,
    imageId: state.imageId,
    network: opts.network,
  };
  for (const action of actions) {
    switch (action.type) {
      case 'create-secret': {
        const id = await docker.createSecret({ name: action.name, data: opts.databaseUrl, labels: action.labels });
        report.secret = { name: action.name, id, action: 'created' };
        break;
      }
      case 'keep-secret':
        report.secret = { name: action.name, id: action.id, action: 'unchanged' };
        break;
      case 'create-service':
      case 'update-service': {
        const spec = withSecretId(action.spec, report.secret.id);
        if (opts.clusterKey && action.part !== 'workers') await withClusterKey(docker, spec, opts.clusterKey);
        let done: NonNullable<InstallReport['workers']>;
        if (action.type === 'create-service') {
          done = { name: action.name, id: await docker.createService(spec), action: 'created' };
        } else {
          const { warnings } = await docker.updateService(action, action.version, spec);
          if (warnings.length) throw new DockerError('DOCKER_WARNING', `updating service '${action.name}': ${warnings.join('; ')}`);
          done = { name: action.name, id: action.id, action: 'updated' };
        }
        if (action.part === 'workers') report.workers = done;
        else report.service = done as InstallReport['service'];
        break;
      }
      case 'keep-service':
        if (action.part === 'workers') report.workers = { name: action.name, id: action.id, action: 'unchanged' };
        else report.service = { name: action.name, id: action.id, action: 'unchanged' };
        break;
      case 'remove-service':
        await docker.removeService(action);
        report.workers = { name: action.name, id: action.id, action: 'removed' };
        break;
      case 'remove-secret':
        try {
          await docker.removeSecret(action);
          report.removedSecrets.push(action.name);
        } catch (err) {
          // Still referenced (tasks of the previous spec are stopping): harmless, removed next time.
          if (err instanceof NotFoundError) break;
          if (!(err instanceof ConflictError) && !(err instanceof DockerError)) throw err;
          report.keptSecrets.push(action.name);
        }
        break;
    }
  }
  return report;
}

function withSecretId(spec: Dockerode.ServiceSpec, secretId: string): Dockerode.ServiceSpec {
  const out = structuredClone(spec);
  const task = out.TaskTemplate as Dockerode.ContainerTaskSpec | undefined;
  for (const s of task?.ContainerSpec?.Secrets ?? []) if (s.File?.Name === SECRET_FILE) s.SecretID = secretId;
  return out;
}

/** Fills in the cluster key secret's id, creating the secret first when it does not exist yet. */
async function withClusterKey(docker: DockerEngine, spec: Dockerode.ServiceSpec, key: NonNullable<AgentServiceOptions['clusterKey']>): Promise<void> {
  let found = (await docker.listSecrets({ name: [key.secretName] })).find((o) => o.name === key.secretName);
  if (!found && key.text === undefined) {
    throw new NotFoundError('NO_CLUSTER_KEY_SECRET', `Docker secret ${key.secretName} (the cluster key) does not exist`, 'pass the key file with --cluster-key FILE');
  }
  if (!found) {
    const id = await docker.createSecret({ name: key.secretName, data: key.text!, labels: { [ROLE_LABEL]: 'agent-cluster-key' } });
    found = { id, name: key.secretName, labels: {} };
  }
  const task = spec.TaskTemplate as Dockerode.ContainerTaskSpec | undefined;
  for (const s of task?.ContainerSpec?.Secrets ?? []) if (s.File?.Name === CLUSTER_KEY_FILE) s.SecretID = found.id;
}
