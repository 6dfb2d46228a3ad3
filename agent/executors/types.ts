/**
 * What an executor is. Terminology (the same words as the README and `sql/`):
 *
 * - operation: one intent on MiniPaaS's queue (a row), with a `kind` and a JSON `payload`.
 * - agent: the process on each node that claims operations and runs them; a node runs one agent.
 * - executor: the code for one operation kind (`service.scale`), one file in this folder.
 * - target: which agents may claim an operation of a kind: any manager, one named node, or any agent.
 * - plan: the plain-data actions an executor will apply, computed by a pure function from the payload
 *   and the observed state; unit tests assert on plans and `--dry-run` prints them.
 * - step: a progress event an executor reports while it runs (appended to the status stream).
 */
import type pg from 'pg';
import type { z } from 'zod';
import type { ClusterKeys } from '../../sql/control/sealing.ts';
import type { DockerEngine } from '../docker/engine.ts';

/** Which agents may claim an operation: any Swarm manager, a named node, a provisioner, or any agent at all. */
export type Target = 'manager' | 'node' | 'provisioner' | 'any';

/** A JSON value: what payloads, plans, step data and results are made of. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json | undefined };

/** Structured log lines; the agent decides where they go. */
export interface Logger {
  debug(message: string, data?: Record<string, Json | undefined>): void;
  info(message: string, data?: Record<string, Json | undefined>): void;
  warn(message: string, data?: Record<string, Json | undefined>): void;
  error(message: string, data?: Record<string, Json | undefined>): void;
}

/** What an executor gets to run with. */
export interface ExecutorContext {
  docker: DockerEngine;
  /**
   * The control-plane database, for executors whose operation refers to rows (a `deploy` reads its
   * release). Absent in dry runs and in tests of executors that need none.
   */
  pool?: pg.Pool;
  /**
   * The operation being executed (`mp.operations.id`): the same on every attempt, so executors can
   * name what they create after it and find it again when they resume after a crash (`mp-job-<id>`).
   */
  operationId: string;
  /**
   * Reports progress: `name` is a short stable step name (`update`, `wait`), `message` one line for
   * humans, `data` details for machines. The agent appends it to the status stream; awaited, so the
   * stream keeps the order of steps.
   */
  step(name: string, message: string, data?: Record<string, Json | undefined>): void | Promise<void>;
  /**
   * Opens a value sealed to the cluster key (a secret's content; sql/control/sealing.ts). Present only
   * on agents that hold the cluster's private key (manager agents). The value is registered for
   * redaction before it is returned, so nothing the agent reports afterwards can carry it.
   */
  openSealed?(sealed: string): Promise<Buffer>;
  /** The agent's key pairs, for the one executor that changes them (`secrets.rotate_key`). */
  clusterKeys?: ClusterKeys;
  /** Aborted when the operation is cancelled or the agent shuts down; checked at safe points. */
  signal: AbortSignal;
  log: Logger;
}

/**
 * One operation kind.
 *
 * `execute` is `observe`, then `plan`, then applying the plan's actions in order; `observe` and `plan`
 * are exposed so a dry run can print what would happen without doing it.
 */
export interface Executor<Payload = unknown, State = unknown, Action extends Json = Json, Result extends Json = Json> {
  kind: string;
  /** One sentence for `mp` help and error messages. */
  description: string;
  /** A valid payload, shown in hints when a payload is not valid. */
  example: Payload;
  payloadSchema: z.ZodType<Payload>;
  target: Target;
  /** Reads what the plan depends on. No changes. */
  observe(ctx: ExecutorContext, payload: Payload): Promise<State>;
  /** Pure: the actions that take `state` to what `payload` asks for. Throws `MiniPaasError` if impossible. */
  plan(payload: Payload, state: State): Action[];
  /** Does it: observes, plans, applies, reporting steps; returns a JSON result. */
  execute(ctx: ExecutorContext, payload: Payload): Promise<Result>;
}

/**
 * An executor of any payload, as the registry holds them. (Methods are declared as methods, so their
 * parameters are bivariant and every `Executor<P, S>` fits; `payloadSchema.parse` restores the types.)
 */
export type AnyExecutor = Executor<unknown, unknown, Json, Json>;
