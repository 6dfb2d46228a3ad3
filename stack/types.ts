/**
 * The desired state of one stack, as plain data: what the Compose stages (`stack/loader`, `stack/schema`,
 * `stack/convert`) produce from an environment's files and what the agent converges Swarm to
 * (`agent/deploy/`). Nothing here talks to Docker; every value is JSON, so a release row can hold it.
 *
 * Terminology:
 * - stack: the set of Swarm objects one environment deploys, all labelled
 *   `com.docker.stack.namespace=<stack>` and named `<stack>_<key>` as `docker stack deploy` names them.
 * - key: the name an object has in the Compose file (`web`, `default`, `db_password`).
 * - spec: the Docker Engine API body that creates the object (ServiceSpec, NetworkCreate, SecretSpec,
 *   ConfigSpec), exactly as the engine takes it.
 * - job template: a Compose service marked as a job or a cron job (`org.minipaas.kind: job|cron`, or
 *   swarm-cronjob's `swarm.cronjob.enable`). A deploy does not start it; `mp job run`, `pre_deploy:`
 *   and cron ticks run it with the release's image, environment, secrets and networks.
 */
import type Dockerode from 'dockerode';

/** A network the stack creates (`<stack>_<key>`), or an external one it only attaches to. */
export interface StackNetwork {
  key: string;
  /** Engine name: `<stack>_<key>`, or the `name:` the file gives, or the external network's name. */
  name: string;
  external: boolean;
  /** The create body (absent for external networks). */
  spec?: Dockerode.NetworkCreateOptions;
}

/** A secret or config the stack creates from a file (or `environment:`/`content:`), or an external one. */
export interface StackObject {
  key: string;
  /** Engine name: `<stack>_<key>` or the `name:` the file gives. */
  name: string;
  external: boolean;
  /** The create body without `Data` (absent for external objects). */
  spec?: {
    Name: string;
    Labels: Record<string, string>;
    Templating?: { Name: string };
    /** A secret kept by a secrets driver plugin instead of the Raft log (no `data` then). */
    Driver?: { Name: string; Options?: Record<string, string> };
  };
  /** The content, base64, as `docker stack deploy` reads it from `file:` (absent for external objects). */
  data?: string;
  /**
   * A secret's content sealed to the cluster key instead of `data` (sql/control/secrets.ts
   * `sealStackSecrets`), so a release never holds it in plaintext; the deploy executor opens it with
   * `ExecutorContext.openSealed`.
   */
  sealed?: string;
  /** sha256 of the content (hex): lets a plan see a changed file without comparing data. */
  digest?: string;
}

/** One service: the Compose key and the full ServiceSpec `docker stack deploy` would send. */
export interface StackService {
  key: string;
  /** `<stack>_<key>` */
  name: string;
  spec: Dockerode.ServiceSpec;
}

/** Everything one stack is made of. */
export interface StackSpec {
  /** The stack (namespace) name. */
  name: string;
  networks: StackNetwork[];
  secrets: StackObject[];
  configs: StackObject[];
  services: StackService[];
  /**
   * Job templates: services the deploy keeps out of the converged stack (absent in releases recorded
   * before job templates existed). Their networks, secrets and configs are in the lists above.
   */
  jobs?: StackJob[];
  /** Keys Swarm ignores (build, depends_on, container_name, ...), one line each, as `docker stack deploy` warns. */
  warnings: string[];
}

/** When a cron job's tick finds the previous run of the same schedule still running. */
export type OverlapPolicy = 'allow' | 'forbid' | 'replace';

/** What the scheduler does with ticks that passed while no agent scheduled: run the latest once, or none. */
export type CatchUpPolicy = 'latest' | 'none';

/** A cron job's schedule, as validated at load time (stack/convert/jobs.ts). */
export interface CronSchedule {
  /** Five fields or a macro (`@hourly`); six (seconds first) only from swarm-cronjob labels or for tests. */
  expression: string;
  /** IANA time zone the expression is read in; UTC when absent. */
  timezone?: string;
  overlap: OverlapPolicy;
  catchUp: CatchUpPolicy;
}

/** One job template: the service spec as converted, never created by a deploy. */
export interface StackJob {
  key: string;
  /** `<stack>_<key>`: the name the template would have as a service (runs are named after operations). */
  name: string;
  kind: 'job' | 'cron';
  /** Where the marking came from: MiniPaaS's labels or swarm-cronjob's. */
  source: 'minipaas' | 'swarm-cronjob';
  /** Tasks one run completes (swarm-cronjob's `replicas`; default 1). */
  replicas: number;
  /** How long one run may take before it is stopped and fails. */
  timeoutSeconds: number;
  /** Set for cron jobs. */
  schedule?: CronSchedule;
  spec: Dockerode.ServiceSpec;
}
