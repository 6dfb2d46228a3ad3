/**
 * The data of a stack deploy: what `observeStack` reads, what `planStack` decides, as plain JSON.
 *
 * Terminology (with `stack/types.ts`): the *desired* stack is a `StackSpec`; the *observed* stack is
 * what the engine holds under the stack's namespace label; a *plan* is the ordered list of actions
 * from one to the other; a *change* is one field of a service spec that differs (path, old, new).
 */
import type Dockerode from 'dockerode';
import type { ServiceInfo, SwarmObject } from '../docker/engine.ts';
import type { Json } from '../executors/types.ts';

/** Label MiniPaaS puts on the secrets it creates: sha256 of the content, since the engine never returns it. */
export const DIGEST_LABEL = 'org.minipaas.digest';

/** A secret or config of the stack as observed: its content digest when it can be known. */
export interface ObservedObject extends SwarmObject {
  /** sha256 hex of the content: a config's data, or a secret's `org.minipaas.digest` label. */
  digest?: string;
}

/** What the engine holds for one stack, and the external objects the desired stack names. */
export interface ObservedStack {
  stack: string;
  networks: SwarmObject[];
  secrets: ObservedObject[];
  configs: ObservedObject[];
  services: ServiceInfo[];
  /** Names of every network by id: services' attachments read back as ids. */
  networkNames: Record<string, string>;
  /** External objects the desired stack names: present (with scope for networks) or null. */
  external: {
    networks: Record<string, { id: string; scope: string } | null>;
    secrets: Record<string, string | null>;
    configs: Record<string, string | null>;
  };
}

/** One field of a service spec that a deploy changes. Paths are dotted (`TaskTemplate.ContainerSpec.Env`). */
export interface FieldChange {
  path: string;
  /** The value the engine has now (absent: not set). */
  from?: Json;
  /** The value the deploy sets (absent: removed). */
  to?: Json;
}

/** Which kind of object an action is about. */
export type ObjectKind = 'network' | 'secret' | 'config' | 'service';

/** One step of a plan. Secret content is never in a plan: only its digest. */
export type DeployAction =
  | { type: 'create-network'; key: string; name: string; spec: Dockerode.NetworkCreateOptions }
  | { type: 'create-secret'; key: string; name: string; digest: string; spec: Json }
  | { type: 'create-config'; key: string; name: string; digest: string; spec: Json }
  | { type: 'create-service'; key: string; name: string; spec: Dockerode.ServiceSpec }
  | {
      type: 'update-service';
      key: string;
      name: string;
      id: string;
      /** The version observed; apply reads the current one again before updating. */
      version: number;
      changes: FieldChange[];
      spec: Dockerode.ServiceSpec;
    }
  | { type: 'remove-service'; name: string; id: string }
  | { type: 'unchanged'; kind: ObjectKind; name: string };

/** A plan: the actions in the order `applyStack` runs them. */
export interface StackPlan {
  stack: string;
  actions: DeployAction[];
  /** False when every action is `unchanged`: the deploy has nothing to do. */
  changed: boolean;
  /** The desired stack's warnings (ignored keys), and the plan's own (a renamed secret...). */
  warnings: string[];
}
