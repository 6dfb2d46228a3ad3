/**
 * A small adapter over dockerode: the Docker API calls the agent makes, returning plain data (not
 * dockerode objects) and throwing `MiniPaasError`s (see `errors.ts`). Executors decide what to do;
 * this module only talks to the engine.
 *
 * Terminology: an *engine* is one dockerd; a *service* is a Swarm service, whose *tasks* are its
 * scheduled containers; a *stack* is the set of services, networks, secrets and configs carrying the
 * label `com.docker.stack.namespace=<stack>`, as `docker stack deploy` creates them.
 */
import { createRequire } from 'node:module';
import type Dockerode from 'dockerode';
import { engineMessage, fromDockerError } from './errors.ts';
import { DockerError } from '../../sql/errors.ts';

/** The label `docker stack deploy` puts on every object of a stack. */
export const STACK_NAMESPACE_LABEL = 'com.docker.stack.namespace';

/** Where the engine is when DOCKER_HOST is not set. */
export const DEFAULT_SOCKET = '/var/run/docker.sock';

export type SwarmState = 'inactive' | 'pending' | 'active' | 'error' | 'locked';

/** What `GET /info` says, narrowed to the fields MiniPaaS reads. */
export interface EngineInfo {
  serverVersion: string;
  operatingSystem: string;
  osType: string;
  architecture: string;
  kernelVersion: string;
  containersRunning: number;
  swarm: {
    state: SwarmState;
    nodeId: string;
    /** True when this engine is a manager (it can answer Swarm API calls). */
    controlAvailable: boolean;
    /** Only reported by managers. */
    nodes?: number;
    managers?: number;
    clusterId?: string;
  };
}

/** What `GET /version` says, narrowed. */
export interface EngineVersion {
  version: string;
  apiVersion: string;
  minApiVersion: string;
}

export type ServiceMode = 'replicated' | 'global' | 'replicated-job' | 'global-job';

/** A Swarm service as plain data; `spec` is the full spec, to send back (changed) on update. */
export interface ServiceInfo {
  id: string;
  name: string;
  /** Swarm object version: an update must name the version it read, or it fails out of sequence. */
  version: number;
  labels: Record<string, string>;
  mode: ServiceMode;
  /** Replica count for replicated services, undefined for global ones. */
  replicas?: number;
  /** When Swarm created the service (RFC 3339). */
  createdAt?: string;
  /**
   * The last rolling update, as Swarm reports it: `updating`, `paused`, `completed`, `rollback_started`,
   * `rollback_paused`, `rollback_completed`; absent for a service never updated.
   */
  updateStatus?: { state: string; message?: string; startedAt?: string };
  spec: Dockerode.ServiceSpec;
}

/** Task states after which a task's container is gone or never existed. */
export const TERMINAL_TASK_STATES: ReadonlySet<string> = new Set([
  'complete',
  'shutdown',
  'failed',
  'rejected',
  'orphaned',
  'remove',
]);

/** A Swarm task (one scheduled container of a service) as plain data. */
export interface TaskInfo {
  id: string;
  serviceId: string;
  nodeId?: string;
  slot?: number;
  /** Observed state: new, pending, ..., running, complete, shutdown, failed, rejected... */
  state: string;
  desiredState: string;
  /** The error Swarm recorded for a task that failed or was rejected (e.g. no such image). */
  error?: string;
  message?: string;
  /** When the task last changed (RFC 3339), to find the most recent error. */
  updatedAt?: string;
  /** When Swarm created the task (RFC 3339). */
  createdAt?: string;
  /** The container's exit code as the engine reports it: meaningful once the task is complete or failed. */
  exitCode?: number;
}

/** A Swarm node as plain data. */
export interface SwarmNode {
  id: string;
  hostname: string;
  role: string;
  /** active, pause or drain */
  availability: string;
  /** ready, down, unknown, disconnected */
  state: string;
  version: number;
  spec: Record<string, unknown>;
}

interface RawNode {
  ID: string;
  Version?: { Index?: number };
  Spec?: { Role?: string; Availability?: string } & Record<string, unknown>;
  Description?: { Hostname?: string };
  Status?: { State?: string };
}

/** A network, secret or config: what stack removal needs to know about it. */
export interface SwarmObject {
  id: string;
  name: string;
  labels: Record<string, string>;
  /** A config's content, base64 (configs only: the engine never returns a secret's). */
  data?: string;
}

/** A network as `GET /networks/{id}` describes it, narrowed. */
export interface NetworkInfo extends SwarmObject {
  driver: string;
  /** `swarm` for overlay networks a stack can attach to; `local` for bridge and host networks. */
  scope: string;
}

/** Filters the list calls accept; `label` entries are `key` or `key=value`. */
export interface ListFilter {
  label?: string[];
  name?: string[];
}

/** Options of `connectDocker`: where the engine is. */
export interface ConnectOptions {
  /** `unix:///path`, `tcp://host:port`; defaults to DOCKER_HOST, then `/var/run/docker.sock`. */
  host?: string;
}

/** Human description of the endpoint, for error messages: a socket path or a URL. */
export function describeEndpoint(host: string | undefined): string {
  if (!host) return DEFAULT_SOCKET;
  if (host.startsWith('unix://')) return host.slice('unix://'.length) || DEFAULT_SOCKET;
  return host;
}

function dockerodeOptions(host: string | undefined): Dockerode.DockerOptions {
  // Without DOCKER_HOST, docker-modem would also look for ~/.docker/run/docker.sock (Docker Desktop);
  // the agent runs on servers, so the system socket is the one answer.
  if (!host) return { socketPath: DEFAULT_SOCKET };
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) || DEFAULT_SOCKET };
  // tcp/ssh from DOCKER_HOST: docker-modem reads it with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH.
  if (host === process.env.DOCKER_HOST) return {};
  const url = new URL(host.includes('://') ? host : `tcp://${host}`);
  return { host: url.hostname, port: url.port || 2375, protocol: url.port === '2376' ? 'https' : 'http' };
}

function labelsOf(value: unknown): Record<string, string> {
  return (value ?? {}) as Record<string, string>;
}

function toService(raw: Dockerode.Service): ServiceInfo {
  const spec = raw.Spec ?? {};
  const mode = (spec.Mode ?? {}) as Record<string, { Replicas?: number } | undefined>;
  let kind: ServiceMode = 'replicated';
  if (mode.Global) kind = 'global';
  else if (mode.ReplicatedJob) kind = 'replicated-job';
  else if (mode.GlobalJob) kind = 'global-job';
  return {
    id: raw.ID,
    name: spec.Name ?? raw.ID,
    version: raw.Version?.Index ?? 0,
    labels: labelsOf(spec.Labels),
    mode: kind,
    replicas: kind === 'replicated' ? (mode.Replicated?.Replicas ?? 1) : undefined,
    createdAt: raw.CreatedAt,
    updateStatus: raw.UpdateStatus?.State
      ? { state: raw.UpdateStatus.State, message: raw.UpdateStatus.Message, startedAt: raw.UpdateStatus.StartedAt }
      : undefined,
    spec,
  };
}

interface RawTask {
  ID: string;
  ServiceID: string;
  NodeID?: string;
  Slot?: number;
  CreatedAt?: string;
  UpdatedAt?: string;
  DesiredState?: string;
  Status?: { State?: string; Err?: string; Message?: string; ContainerStatus?: { ExitCode?: number } };
}

function toTask(raw: RawTask): TaskInfo {
  return {
    id: raw.ID,
    serviceId: raw.ServiceID,
    nodeId: raw.NodeID || undefined,
    slot: raw.Slot,
    state: raw.Status?.State ?? 'unknown',
    desiredState: raw.DesiredState ?? 'unknown',
    error: raw.Status?.Err || undefined,
    message: raw.Status?.Message || undefined,
    updatedAt: raw.UpdatedAt,
    createdAt: raw.CreatedAt,
    exitCode: raw.Status?.ContainerStatus?.ExitCode,
  };
}

interface RawObject {
  ID?: string;
  Id?: string;
  Name?: string;
  Labels?: Record<string, string>;
  Driver?: string;
  Scope?: string;
  Spec?: { Name?: string; Labels?: Record<string, string>; Data?: string };
}

/** Networks list `Id`, `Name`, `Labels`; secrets and configs list `ID`, `Spec.Name`, `Spec.Labels`. */
function toObject(raw: RawObject): SwarmObject {
  const id = raw.ID ?? raw.Id ?? '';
  const obj: SwarmObject = { id, name: raw.Spec?.Name ?? raw.Name ?? id, labels: labelsOf(raw.Spec?.Labels ?? raw.Labels) };
  if (typeof raw.Spec?.Data === 'string') obj.data = raw.Spec.Data;
  return obj;
}

/** The JSON body of a secret or config create: `Data` is base64. */
export interface SwarmObjectSpec {
  Name: string;
  Labels?: Record<string, string>;
  Data: string;
  Templating?: { Name: string };
  Driver?: { Name: string; Options?: Record<string, string> };
}

/** Query parameters of `POST /build` that MiniPaaS sets (the Docker Engine API's names). */
export interface ImageBuildOptions {
  /** Names to tag the image with, `name:tag` each; the first one names it in messages. */
  tags?: string[];
  /** The Dockerfile's path inside the context; default `Dockerfile`. */
  dockerfile?: string;
  /** `ARG` values. */
  buildargs?: Record<string, string>;
  /** The stage to build in a multi-stage Dockerfile; default the last. */
  target?: string;
  /** Labels set on the image. */
  labels?: Record<string, string>;
  /** Build every step again, ignoring the layer cache. */
  nocache?: boolean;
  /** Pull a newer version of each `FROM` image first. */
  pull?: boolean;
  /** The network `RUN` steps use (`host`, `none`, a network name); default the engine's bridge. */
  networkmode?: string;
  /** Aborts the build: the connection is closed, which makes the engine stop it. */
  signal?: AbortSignal;
}

/** One JSON message of the build progress stream, narrowed to the fields a build reads. */
export interface BuildMessage {
  /** Builder output: `Step 2/5 : RUN ...`, ` ---> Running in ...`, and what the step prints. */
  stream?: string;
  /** Pull progress of a `FROM` image (with `id` and `progress`), and other status lines. */
  status?: string;
  id?: string;
  progress?: string;
  /** Set when the build failed; the last message of the stream. */
  error?: string;
  errorDetail?: { code?: number; message?: string };
  /** `{ ID: 'sha256:...' }` once the image exists. */
  aux?: { ID?: string };
}

/** How a build ended, as the engine said it. */
export interface BuildOutcome {
  /** `sha256:...`, when the engine reported it (it does on success). */
  imageId?: string;
  /** The engine's error message when a step failed. */
  error?: string;
}

/**
 * The text of a non-TTY log stream: frames of an 8-byte header (stream type, 3 zero bytes, big-endian
 * length) and the payload. A buffer that does not start like a frame is TTY output, already plain text.
 */
export function demuxLogs(buf: Buffer): string {
  const framed = buf.length >= 8 && buf[0]! <= 2 && buf[1] === 0 && buf[2] === 0 && buf[3] === 0;
  if (!framed) return buf.toString('utf8');
  const parts: Buffer[] = [];
  for (let at = 0; at + 8 <= buf.length; ) {
    const len = buf.readUInt32BE(at + 4);
    parts.push(buf.subarray(at + 8, at + 8 + len));
    at += 8 + len;
  }
  return Buffer.concat(parts).toString('utf8');
}

function filters(f: ListFilter | undefined): { filters?: string } {
  if (!f) return {};
  const out: Record<string, string[]> = {};
  if (f.label?.length) out.label = f.label;
  if (f.name?.length) out.name = f.name;
  return Object.keys(out).length ? { filters: JSON.stringify(out) } : {};
}

/**
 * One Docker engine. Every method throws a `MiniPaasError` (`DockerError`, `NotFoundError`,
 * `ConflictError`) with a message naming the engine and the object.
 *
 * @example
 *   const docker = connectDocker();           // DOCKER_HOST or /var/run/docker.sock
 *   const web = await docker.inspectService('web');
 */
export class DockerEngine {
  /** The engine, as error messages name it: a socket path or a URL. */
  readonly endpoint: string;

  constructor(
    /** The dockerode client, for calls this adapter does not wrap yet (tests, one-offs). */
    readonly api: Dockerode,
    endpoint: string,
  ) {
    this.endpoint = endpoint;
  }

  private async call<T>(subject: string | undefined, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw fromDockerError(err, { endpoint: this.endpoint, subject });
    }
  }

  /** Resolves when the engine answers `GET /_ping` within `timeoutMs`. */
  async ping(timeoutMs = 3000): Promise<void> {
    // dockerode's ping takes an abortSignal; @types/dockerode does not declare the options.
    await this.call(undefined, () =>
      (this.api.ping as (opts: { abortSignal: AbortSignal }) => Promise<unknown>)({
        abortSignal: AbortSignal.timeout(timeoutMs),
      }),
    ).catch((err: unknown) => {
      if (err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError')) {
        throw fromDockerError(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }), {
          endpoint: this.endpoint,
        });
      }
      throw err;
    });
  }

  /**
   * Asks the engine to log in to a registry with `auth` (`POST /auth`, what `docker login` does):
   * resolves when the registry accepted them; otherwise the engine's error (unauthorized, unreachable).
   */
  async checkAuth(auth: RegistryAuth): Promise<void> {
    await this.call(`the login to ${auth.serveraddress}`, () => this.api.checkAuth(authConfig(auth)!));
  }

  /** `GET /info`, narrowed. */
  async info(): Promise<EngineInfo> {
    const raw = (await this.call(undefined, () => this.api.info())) as Record<string, unknown>;
    const swarm = (raw.Swarm ?? {}) as Record<string, unknown>;
    const cluster = swarm.Cluster as { ID?: string } | undefined;
    return {
      serverVersion: String(raw.ServerVersion ?? ''),
      operatingSystem: String(raw.OperatingSystem ?? ''),
      osType: String(raw.OSType ?? ''),
      architecture: String(raw.Architecture ?? ''),
      kernelVersion: String(raw.KernelVersion ?? ''),
      containersRunning: Number(raw.ContainersRunning ?? 0),
      swarm: {
        state: String(swarm.LocalNodeState || 'inactive') as SwarmState,
        nodeId: String(swarm.NodeID ?? ''),
        controlAvailable: swarm.ControlAvailable === true,
        nodes: typeof swarm.Nodes === 'number' ? swarm.Nodes : undefined,
        managers: typeof swarm.Managers === 'number' ? swarm.Managers : undefined,
        clusterId: cluster?.ID,
      },
    };
  }

  /**
   * Makes this engine the manager of a new single-node Swarm (`docker swarm init`), listening and
   * advertising on `address` (default 127.0.0.1: reachable from this machine only). Returns the node id.
   */
  async initSwarm(address = '127.0.0.1'): Promise<string> {
    const id = await this.call('swarm init', () => this.api.swarmInit({ ListenAddr: `${address}:2377`, AdvertiseAddr: address }));
    return String(id);
  }

  /** The Swarm's nodes: id, hostname, role, availability, state, and the spec and version an update needs. */
  async listNodes(): Promise<SwarmNode[]> {
    const raw = (await this.call('the node list', () => this.api.listNodes())) as RawNode[];
    return raw.map((n) => ({
      id: n.ID,
      hostname: n.Description?.Hostname ?? n.ID,
      role: n.Spec?.Role ?? 'worker',
      availability: n.Spec?.Availability ?? 'active',
      state: n.Status?.State ?? 'unknown',
      version: n.Version?.Index ?? 0,
      spec: n.Spec ?? {},
    }));
  }

  /** Replaces a node's spec (role, availability, labels), naming the version it was read at. */
  async updateNode(node: Pick<SwarmNode, 'id' | 'hostname' | 'version'>, spec: Record<string, unknown>): Promise<void> {
    // docker-modem sends `_query` as the query string and `_body` as the JSON body.
    const update = this.api.getNode(node.id).update as unknown as (opts: object) => Promise<unknown>;
    await this.call(`node '${node.hostname}'`, () => update.call(this.api.getNode(node.id), { _query: { version: node.version }, _body: spec }));
  }

  /** Removes a node from the Swarm (`docker node rm`, with `force` for one that is not down). */
  async removeNode(node: Pick<SwarmNode, 'id' | 'hostname'>, force = false): Promise<void> {
    const remove = this.api.getNode(node.id).remove as unknown as (opts: object) => Promise<unknown>;
    await this.call(`node '${node.hostname}'`, () => remove.call(this.api.getNode(node.id), { force }));
  }

  /** `GET /version`, narrowed. */
  async version(): Promise<EngineVersion> {
    const raw = await this.call(undefined, () => this.api.version());
    return { version: raw.Version, apiVersion: raw.ApiVersion, minApiVersion: raw.MinAPIVersion ?? '' };
  }

  /** Swarm services, optionally filtered by label or name (a name filter matches by prefix). */
  async listServices(filter?: ListFilter): Promise<ServiceInfo[]> {
    const raw = await this.call('the service list', () => this.api.listServices(filters(filter)));
    return raw.map(toService);
  }

  /** One service by exact name or id; `NotFoundError` when there is none. */
  async inspectService(nameOrId: string): Promise<ServiceInfo> {
    const raw = (await this.call(`service '${nameOrId}'`, () => this.api.getService(nameOrId).inspect())) as Dockerode.Service;
    return toService(raw);
  }

  /**
   * Creates a service; returns its id. With `auth`, the engine stores the registry credentials with
   * the service and every node pulls its image with them (`docker service create --with-registry-auth`);
   * `'anonymous'` stores empty ones. Sent as X-Registry-Auth, never logged.
   */
  async createService(spec: Dockerode.ServiceSpec, auth?: ServiceRegistryAuth): Promise<string> {
    // dockerode takes a lone argument as both the options and the auth header: always pass both.
    const res = (await this.call(`service '${spec.Name ?? '?'}'`, () => this.api.createService(authConfig(auth) as Dockerode.AuthConfig, spec))) as {
      ID?: string;
      id?: string;
    };
    return res.ID ?? res.id ?? '';
  }

  /**
   * Replaces a service's spec. `version` is the one read with the spec: Swarm refuses an update based
   * on a stale read (`ConflictError` DOCKER_OUT_OF_SEQUENCE) instead of losing someone else's change.
   * Returns the engine's warnings (e.g. an image it could not resolve on a registry). `auth` as for
   * `createService`; without it the service keeps the registry credentials it has.
   */
  async updateService(
    service: Pick<ServiceInfo, 'id' | 'name'>,
    version: number,
    spec: Dockerode.ServiceSpec,
    auth?: ServiceRegistryAuth,
  ): Promise<{ warnings: string[] }> {
    // docker-modem sends `_query` as the query string and `_body` as the JSON body; `authconfig` as X-Registry-Auth.
    const opts = { _query: { version }, _body: spec, ...(auth ? { authconfig: authConfig(auth) } : {}) };
    const res = (await this.call(`service '${service.name}'`, () =>
      this.api.getService(service.id).update(opts),
    )) as { Warnings?: string[] | null } | null;
    return { warnings: res?.Warnings ?? [] };
  }

  /** Removes a service; its tasks stop asynchronously (see `listTasks`). */
  async removeService(service: Pick<ServiceInfo, 'id' | 'name'>): Promise<void> {
    await this.call(`service '${service.name}'`, () => this.api.getService(service.id).remove());
  }

  /**
   * Swarm tasks, optionally only those of the given service ids. The filtering by service is done
   * here: the engine's `service` filter fails outright when a service was just removed, and removal
   * is exactly when callers wait for tasks.
   */
  async listTasks(opts: { serviceIds?: string[]; label?: string[] } = {}): Promise<TaskInfo[]> {
    const raw = (await this.call('the task list', () =>
      this.api.listTasks(filters({ label: opts.label })),
    )) as RawTask[];
    const tasks = raw.map(toTask);
    if (!opts.serviceIds) return tasks;
    const ids = new Set(opts.serviceIds);
    return tasks.filter((t) => ids.has(t.serviceId));
  }

  /**
   * The last `tail` lines a service's tasks wrote (stdout and stderr interleaved), or fewer. Reads
   * the logs of containers on this node and on the others the manager can reach.
   */
  async serviceLogs(service: Pick<ServiceInfo, 'id' | 'name'>, opts: { tail: number }): Promise<string[]> {
    const raw = (await this.call(`service '${service.name}'`, () =>
      this.api.getService(service.id).logs({ stdout: true, stderr: true, tail: opts.tail, follow: false }),
    )) as unknown as Buffer | string;
    const text = typeof raw === 'string' ? raw : demuxLogs(raw);
    return text.split('\n').filter((line, i, all) => line !== '' || i < all.length - 1);
  }

  /** A local image by name or id: its id and labels; `NotFoundError` when this engine does not have it. */
  async inspectImage(name: string): Promise<{ id: string; labels: Record<string, string>; repoDigests: string[] }> {
    const raw = await this.call(`image '${name}'`, () => this.api.getImage(name).inspect());
    return { id: raw.Id, labels: labelsOf(raw.Config?.Labels), repoDigests: raw.RepoDigests ?? [] };
  }

  /**
   * Asks the image's registry (through the engine) for the digest of `name`; `NotFoundError` or
   * `DockerError` when the registry does not know it or cannot be reached.
   */
  async registryDigest(name: string, auth?: RegistryAuth): Promise<string> {
    const raw = (await this.call(`image '${name}' on its registry`, () =>
      this.api.getImage(name).distribution(auth ? { authconfig: authConfig(auth) } : {}),
    )) as { Descriptor?: { digest?: string } };
    const digest = raw.Descriptor?.digest;
    if (!digest) throw new DockerError('DOCKER_NO_DIGEST', `the registry of image '${name}' gave no digest`);
    return digest;
  }

  /**
   * Rolls a service back to its previous spec, as `docker service rollback` does: Swarm swaps in
   * `PreviousSpec` and runs the rollback policy.
   */
  async rollbackService(service: Pick<ServiceInfo, 'id' | 'name' | 'version'>): Promise<void> {
    const current = await this.inspectService(service.id);
    const opts = { _query: { version: current.version, rollback: 'previous' }, _body: current.spec };
    await this.call(`service '${service.name}'`, () => this.api.getService(service.id).update(opts));
  }

  /** Networks, optionally filtered. */
  async listNetworks(filter?: ListFilter): Promise<SwarmObject[]> {
    const raw = (await this.call('the network list', () => this.api.listNetworks(filters(filter)))) as RawObject[];
    return raw.map(toObject);
  }

  /** One network by exact name or id; `NotFoundError` when there is none. */
  async inspectNetwork(nameOrId: string): Promise<NetworkInfo> {
    const raw = (await this.call(`network '${nameOrId}'`, () => this.api.getNetwork(nameOrId).inspect())) as RawObject;
    return { ...toObject(raw), driver: raw.Driver ?? '', scope: raw.Scope ?? '' };
  }

  /** Creates a network from its create body (`Name`, `Driver`, `Labels`, ...); returns its id. */
  async createNetwork(spec: Dockerode.NetworkCreateOptions): Promise<string> {
    const net = await this.call(`network '${spec.Name}'`, () => this.api.createNetwork(spec));
    return net.id;
  }

  async removeNetwork(net: Pick<SwarmObject, 'id' | 'name'>): Promise<void> {
    await this.call(`network '${net.name}'`, () => this.api.getNetwork(net.id).remove());
  }

  /** Swarm secrets (metadata only: the engine never returns values), optionally filtered. */
  async listSecrets(filter?: ListFilter): Promise<SwarmObject[]> {
    const raw = (await this.call('the secret list', () => this.api.listSecrets(filters(filter)))) as RawObject[];
    return raw.map(toObject);
  }

  /**
   * Creates a Swarm secret holding `data` (the engine stores it encrypted in the Raft log and never
   * returns it); returns its id. Secrets are immutable: a new value is a new secret (name).
   */
  async createSecret(secret: { name: string; data: string; labels?: Record<string, string> }): Promise<string> {
    const res = (await this.call(`secret '${secret.name}'`, () =>
      this.api.createSecret({
        Name: secret.name,
        Labels: secret.labels ?? {},
        Data: Buffer.from(secret.data, 'utf8').toString('base64'),
      }),
    )) as { ID?: string; id?: string };
    return res.ID ?? res.id ?? '';
  }

  /**
   * Creates a secret from its full create body (`Data` already base64, optional `Templating` and
   * `Driver`), as a stack deploy sends it; returns its id.
   */
  async createSecretSpec(spec: SwarmObjectSpec): Promise<string> {
    const res = (await this.call(`secret '${spec.Name}'`, () => this.api.createSecret(spec))) as { ID?: string; id?: string };
    return res.ID ?? res.id ?? '';
  }

  async removeSecret(secret: Pick<SwarmObject, 'id' | 'name'>): Promise<void> {
    await this.call(`secret '${secret.name}'`, () => this.api.getSecret(secret.id).remove());
  }

  /** Swarm configs, optionally filtered. */
  async listConfigs(filter?: ListFilter): Promise<SwarmObject[]> {
    const raw = (await this.call('the config list', () => this.api.listConfigs(filters(filter)))) as RawObject[];
    return raw.map(toObject);
  }

  /** Creates a config from its create body (`Data` base64, optional `Templating`); returns its id. */
  async createConfig(spec: SwarmObjectSpec): Promise<string> {
    const res = (await this.call(`config '${spec.Name}'`, () => this.api.createConfig(spec))) as { ID?: string; id?: string };
    return res.ID ?? res.id ?? '';
  }

  async removeConfig(config: Pick<SwarmObject, 'id' | 'name'>): Promise<void> {
    await this.call(`config '${config.name}'`, () => this.api.getConfig(config.id).remove());
  }

  /**
   * `POST /build` with the classic builder: builds an image from a context tar (`agent/build/context.ts`),
   * calling `onMessage` with each JSON message of the progress stream as it arrives. Resolves when
   * the stream ends, with the image id and the error the engine reported: a failed Dockerfile step is
   * an outcome (the caller names the step, see `agent/build/build.ts`), not an exception. Throws a
   * `DockerError` when the engine refuses the request itself or the connection fails.
   *
   * @example
   *   const { imageId, error } = await docker.buildImage(tar, { tags: ['hello-api:1'] }, (m) => log(m.stream));
   */
  async buildImage(
    context: NodeJS.ReadableStream,
    opts: ImageBuildOptions,
    onMessage: (message: BuildMessage) => void = () => {},
  ): Promise<BuildOutcome> {
    const subject = `the build of ${opts.tags?.[0] ? `image '${opts.tags[0]}'` : 'an image'}`;
    // version=1 asks for the classic builder explicitly: BuildKit over this endpoint needs a session
    // (gRPC over a hijacked connection). forcerm removes the containers of failed steps, which the
    // engine would otherwise leave behind on every failed build.
    const query: Record<string, unknown> = { version: '1', rm: true, forcerm: true };
    if (opts.tags?.length) query.t = opts.tags;
    if (opts.dockerfile) query.dockerfile = opts.dockerfile;
    if (opts.buildargs && Object.keys(opts.buildargs).length) query.buildargs = opts.buildargs;
    if (opts.target) query.target = opts.target;
    if (opts.labels && Object.keys(opts.labels).length) query.labels = opts.labels;
    if (opts.nocache) query.nocache = true;
    if (opts.pull) query.pull = true;
    if (opts.networkmode) query.networkmode = opts.networkmode;
    // docker-modem sends `_query` as the query string; abortSignal goes to the request only.
    const dial = { _query: query, abortSignal: opts.signal } as unknown as Dockerode.ImageBuildOptions;
    let res: NodeJS.ReadableStream;
    try {
      res = (await this.api.buildImage(context, dial)) as NodeJS.ReadableStream;
    } catch (err) {
      // 400 is the engine refusing the Dockerfile before any step ran (a parse error, an unknown
      // target stage): a failed build like any other, for the caller to report with the Dockerfile.
      const raw = err as { statusCode?: number; message?: string; json?: unknown };
      if (raw.statusCode === 400) {
        const detail = engineMessage({ message: raw.message ?? '', json: raw.json }).replace(/^unexpected - /, '');
        return { error: detail };
      }
      throw fromDockerError(err, { endpoint: this.endpoint, subject });
    }

    const outcome: BuildOutcome = {};
    const take = (line: string): void => {
      if (!line.trim()) return;
      let message: BuildMessage;
      try {
        message = JSON.parse(line) as BuildMessage;
      } catch {
        message = { stream: `${line}\n` }; // not JSON: keep it as output rather than lose it
      }
      if (message.aux?.ID) outcome.imageId = message.aux.ID;
      if (message.error) outcome.error = message.errorDetail?.message || message.error;
      onMessage(message);
    };
    await this.call(subject, () => forEachLine(res, take));
    return outcome;
  }

  /** Tags a local image (`docker tag`): `source` by name or id, `target` as `repository:tag`. */
  async tagImage(source: string, target: string): Promise<void> {
    const { repository, tag } = splitTag(target);
    await this.call(`image '${source}'`, () => this.api.getImage(source).tag({ repo: repository, tag }));
  }

  /**
   * `POST /images/{name}/push` for one tag (`repository:tag`), with registry credentials when `auth`
   * is given (sent as X-Registry-Auth, never logged), calling `onMessage` with each progress message
   * (`status` Preparing, Pushing with `progressDetail`, Pushed, per layer `id`). Resolves with the
   * digest the registry gave, or the error it reported (connection refused, no basic auth credentials,
   * a read-only registry...): a refused push is an outcome for the caller to word, not an exception.
   * Throws `DockerError`/`NotFoundError` when the engine itself refuses (no such local image).
   *
   * @example
   *   const { digest, error } = await docker.pushImage('127.0.0.1:5000/shop/api:1', {}, (m) => bar.update(m));
   */
  async pushImage(reference: string, opts: PushOptions = {}, onMessage: (message: PushMessage) => void = () => {}): Promise<PushOutcome> {
    const { repository, tag } = splitTag(reference);
    const subject = `the push of image '${reference}'`;
    const dial = { tag, authconfig: opts.auth ?? {}, abortSignal: opts.signal } as unknown as Parameters<Dockerode.Image['push']>[0];
    const res = (await this.call(subject, () => this.api.getImage(repository).push(dial))) as NodeJS.ReadableStream;
    const outcome: PushOutcome = {};
    const take = (line: string): void => {
      if (!line.trim()) return;
      let message: PushMessage;
      try {
        message = JSON.parse(line) as PushMessage;
      } catch {
        message = { status: line };
      }
      if (message.aux?.Digest) outcome.digest = message.aux.Digest;
      if (message.error) outcome.error = message.errorDetail?.message || message.error;
      onMessage(message);
    };
    await this.call(subject, () => forEachLine(res, take));
    return outcome;
  }
}

/** Calls `take` with each line of a progress stream the engine sends (build, push), the last one too. */
async function forEachLine(stream: NodeJS.ReadableStream, take: (line: string) => void): Promise<void> {
  let buf = '';
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    buf += chunk.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      take(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  }
  take(buf);
}

/** Credentials for one registry, as the Engine API takes them (X-Registry-Auth). */
export interface RegistryAuth {
  username: string;
  password: string;
  /** The registry host (`registry.example.com`, `127.0.0.1:5000`). */
  serveraddress: string;
}

/** Registry credentials for a service: a user's, or `'anonymous'` (empty ones, replacing any it had). */
export type ServiceRegistryAuth = RegistryAuth | 'anonymous';

/** The X-Registry-Auth body dockerode encodes; undefined sends no header. */
function authConfig(auth: ServiceRegistryAuth | undefined): Record<string, string> | undefined {
  if (auth === undefined) return undefined;
  if (auth === 'anonymous') return {};
  return { username: auth.username, password: auth.password, serveraddress: auth.serveraddress };
}

/** Options of `pushImage`. */
export interface PushOptions {
  /** Credentials; without them the push is anonymous (a lab registry on 127.0.0.1). */
  auth?: RegistryAuth;
  /** Aborts the push (the engine stops when the connection closes). */
  signal?: AbortSignal;
}

/** One JSON message of the push progress stream, narrowed. */
export interface PushMessage {
  /** `Preparing`, `Waiting`, `Pushing`, `Pushed`, `Layer already exists`, `1: digest: sha256:... size: 527`. */
  status?: string;
  /** The layer (short id) a status is about. */
  id?: string;
  progressDetail?: { current?: number; total?: number };
  progress?: string;
  error?: string;
  errorDetail?: { message?: string };
  /** `{ Tag, Digest, Size }` once the manifest is pushed. */
  aux?: { Tag?: string; Digest?: string; Size?: number };
}

/** How a push ended, as the engine said it. */
export interface PushOutcome {
  /** `sha256:...` of the pushed manifest. */
  digest?: string;
  /** What the engine or the registry said when the push failed. */
  error?: string;
}

/** `registry:5000/shop/api:1` -> `{ repository: 'registry:5000/shop/api', tag: '1' }`; tag `latest` when none. */
export function splitTag(reference: string): { repository: string; tag: string } {
  const name = reference.split('@')[0]!;
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) return { repository: name.slice(0, colon), tag: name.slice(colon + 1) };
  return { repository: name, tag: 'latest' };
}

/**
 * Connects to the engine named by `opts.host`, else DOCKER_HOST, else `/var/run/docker.sock`.
 * Nothing is sent until the first call, so this never fails for an absent engine; `ping` checks.
 */
export function connectDocker(opts: ConnectOptions = {}): DockerEngine {
  const host = opts.host ?? process.env.DOCKER_HOST;
  // dockerode (and its ssh2, protobufjs, ...) takes 100+ ms to load: loaded only when an engine is
  // connected, so CLI commands that merely validate operation payloads start fast.
  const DockerodeClass = createRequire(import.meta.url)('dockerode') as typeof Dockerode;
  return new DockerEngine(new DockerodeClass(dockerodeOptions(host)), describeEndpoint(host));
}
