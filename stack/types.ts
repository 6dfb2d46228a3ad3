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
  /** Keys Swarm ignores (build, depends_on, container_name, ...), one line each, as `docker stack deploy` warns. */
  warnings: string[];
}
