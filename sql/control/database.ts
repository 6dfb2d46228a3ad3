/**
 * Kysely types of the control plane's tables and views, and the repository functions the CLI and the
 * agents call. State changes go through the SQL functions in `0001_control.sql` (one transaction each,
 * the same code path `psql` users take); reads use the query builder.
 *
 * Terminology (the README uses the same words):
 * - operation: one intent (deploy, scale, ...) as a row in `mp.operations` and a job on queue `mp_ops`.
 * - intent: what the CLI writes; it never acts on Docker itself.
 * - agent: the process on a node that claims operations and executes them.
 * - node: a machine running an agent (`mp.nodes`), alive while it heartbeats.
 * - event: one line of an operation's history on the stream `mp_events` (key = operation id).
 * - target: which agents may claim an operation: any manager, one named node, any agent, a provisioner.
 */
import { Kysely, PostgresDialect, sql, type Generated, type Selectable } from 'kysely';
import type pg from 'pg';
import { mapDatabaseErrors } from '../errors.ts';

export type OperationStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const FINISHED: ReadonlySet<OperationStatus> = new Set(['succeeded', 'failed', 'cancelled']);

export interface OperationsTable {
  id: Generated<string>;
  kind: string;
  environment: string | null;
  target: string;
  payload: unknown;
  idempotency_key: string | null;
  serial_key: string | null;
  status: OperationStatus;
  attempts: number;
  node: string | null;
  submitted_by: string;
  cancel_requested: boolean;
  job_id: string | null;
  parent_id: string | null;
  result: unknown;
  error: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

export interface NodesView {
  name: string;
  hostname: string;
  swarm_role: 'manager' | 'worker' | null;
  targets: string[];
  version: string;
  labels: Record<string, string>;
  alive: boolean;
  heartbeat_at: Date;
  started_at: Date;
  running_ops: string;
}

export interface EnvironmentsTable {
  name: string;
  created_at: Date;
}

/** The tables and views of schema `mp` that TypeScript reads. */
export interface Database {
  'mp.operations': OperationsTable;
  'mp.nodes_v': NodesView;
  'mp.environments': EnvironmentsTable;
}

export type Operation = Selectable<OperationsTable>;

/** One event of an operation, as published on `mp_events`. */
export interface OperationEvent {
  pos: string;
  op: number;
  kind: string;
  step: string;
  level: 'info' | 'warn' | 'error';
  message: string;
  status: OperationStatus;
  attempt: number;
  node?: string;
  data?: unknown;
  at: string;
}

/** A Kysely instance over an existing pool (the pool stays the caller's to end). */
export function controlDb(pool: pg.Pool): Kysely<Database> {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/** Options of `submitOperation`, as `mp.submit_operation` takes them. */
export interface SubmitOptions {
  target?: string;
  idempotencyKey?: string;
  serialKey?: string;
  parentId?: string;
  delaySeconds?: number;
}

/** Records an intent (row, job and queued event in one transaction) and returns its id. */
export async function submitOperation(
  db: Kysely<Database>,
  op: { kind: string; environment?: string | null; payload: unknown; options?: SubmitOptions },
): Promise<string> {
  const o = op.options ?? {};
  const options = Object.fromEntries(
    Object.entries({
      target: o.target,
      idempotency_key: o.idempotencyKey,
      serial_key: o.serialKey,
      parent_id: o.parentId === undefined ? undefined : Number(o.parentId),
      delay_seconds: o.delaySeconds,
    }).filter(([, v]) => v !== undefined),
  );
  const { rows } = await mapDatabaseErrors(() =>
    sql<{ id: string }>`select mp.submit_operation(${op.kind}, ${op.environment ?? null}, ${JSON.stringify(op.payload)}::jsonb, ${JSON.stringify(options)}::jsonb) as id`.execute(db),
  );
  return rows[0]!.id;
}

/** The operation with `id`, or undefined. */
export async function getOperation(db: Kysely<Database>, id: string): Promise<Operation | undefined> {
  return await mapDatabaseErrors(() => db.selectFrom('mp.operations').selectAll().where('id', '=', id).executeTakeFirst());
}

/** Events of operation `id` after stream position `after`, in order. */
export async function operationEvents(db: Kysely<Database>, id: string, after = '0'): Promise<OperationEvent[]> {
  const { rows } = await mapDatabaseErrors(() =>
    sql<{ pos: string; payload: Omit<OperationEvent, 'pos'> }>`select pos, payload from mp.operation_events(${id}::bigint, ${after}::bigint)`.execute(db),
  );
  return rows.map((r) => ({ pos: r.pos, ...r.payload }));
}

/** Requests cancellation; returns 'cancelled' (it was queued) or 'running' (it stops at a safe point). */
export async function cancelOperation(db: Kysely<Database>, id: string): Promise<'cancelled' | 'running'> {
  const { rows } = await mapDatabaseErrors(() => sql<{ s: 'cancelled' | 'running' }>`select mp.cancel_operation(${id}::bigint) as s`.execute(db));
  return rows[0]!.s;
}

/** Queues a failed or cancelled operation again. */
export async function retryOperation(db: Kysely<Database>, id: string): Promise<void> {
  await mapDatabaseErrors(() => sql`select mp.retry_operation(${id}::bigint)`.execute(db));
}

/** True when an agent able to run operations aimed at `target` heartbeated in the last 30 s. */
export async function agentAliveFor(db: Kysely<Database>, target: string): Promise<boolean> {
  const { rows } = await mapDatabaseErrors(() => sql<{ alive: boolean }>`select mp.agent_alive_for(${target}) as alive`.execute(db));
  return rows[0]!.alive;
}

/** Creates an environment (idempotent). */
export async function createEnvironment(db: Kysely<Database>, name: string): Promise<void> {
  await mapDatabaseErrors(() => sql`select mp.environment_create(${name})`.execute(db));
}
