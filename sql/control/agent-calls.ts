/**
 * The SQL calls an agent makes: register and heartbeat its node, start, report and finish the
 * operations it claimed. Each is one SQL function of `0001_control.sql`.
 */
import type pg from 'pg';
import { guardPool } from '../connections.ts';
import { mapDatabaseErrors } from '../errors.ts';
import type { Operation, OperationStatus } from './database.ts';

/** What an agent says about its node when it starts. */
export interface NodeRegistration {
  name: string;
  hostname: string;
  version: string;
  /** Job targets it claims: `node:<name>`, plus `manager` / `provisioner` when it is one. */
  targets: string[];
  /** Operation kinds it can execute. */
  kinds: string[];
  swarmNodeId?: string | null;
  swarmRole?: 'manager' | 'worker' | null;
  labels?: Record<string, string>;
}

/** The agent-side view of the control plane, over one pool. */
export class AgentCalls {
  constructor(private readonly pool: pg.Pool) {
    // The agent's pool lives as long as the agent: an idle client dying at a restart must not end it.
    guardPool(pool);
  }

  private async call<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<R[]> {
    return await mapDatabaseErrors(async () => (await this.pool.query<R>(text, values)).rows);
  }

  async register(n: NodeRegistration): Promise<void> {
    await this.call(`select mp.node_register($1, $2, $3, $4, $5, $6, $7, $8)`, [
      n.name,
      n.hostname,
      n.version,
      n.targets,
      n.kinds,
      n.swarmNodeId ?? null,
      n.swarmRole ?? null,
      JSON.stringify(n.labels ?? {}),
    ]);
  }

  /** A heartbeat; with `metrics` (agent/metrics.ts) they are stored and the monitoring tick runs (0008). */
  async heartbeat(node: string, metrics?: object): Promise<void> {
    if (metrics) await this.call(`select mp.node_heartbeat($1, $2::jsonb)`, [node, JSON.stringify(metrics)]);
    else await this.call(`select mp.node_heartbeat($1)`, [node]);
  }

  async stopped(node: string): Promise<void> {
    await this.call(`select mp.node_stopped($1)`, [node]);
  }

  /** Marks the operation running on `node` (a new attempt); returns it as it now is. */
  async start(opId: string, node: string): Promise<Operation> {
    const rows = await this.call<Operation>(`select * from mp.op_start($1, $2)`, [opId, node]);
    return rows[0]!;
  }

  async event(opId: string, step: string, message: string, level: 'info' | 'warn' | 'error' = 'info', data?: unknown): Promise<void> {
    await this.call(`select mp.op_event($1, $2, $3, $4, $5)`, [opId, step, message, level, data === undefined ? null : JSON.stringify(data)]);
  }

  /** Ends attempt `attempt`; false when that attempt is no longer the current one (the lease was lost). */
  async finish(opId: string, attempt: number, status: Exclude<OperationStatus, 'queued' | 'running'>, result?: unknown, error?: string): Promise<boolean> {
    const rows = await this.call<{ ok: boolean }>(`select mp.op_finish($1, $2, $3, $4, $5) as ok`, [
      opId,
      attempt,
      status,
      result === undefined ? null : JSON.stringify(result),
      error ?? null,
    ]);
    return rows[0]!.ok;
  }

  async cancelRequested(opId: string): Promise<boolean> {
    const rows = await this.call<{ c: boolean }>(`select cancel_requested as c from mp.operations where id = $1`, [opId]);
    return rows[0]?.c ?? false;
  }
}
