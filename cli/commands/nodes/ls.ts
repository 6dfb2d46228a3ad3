/** `mp nodes ls`: the agents (one per node), alive or not, from `mp.nodes_v`. */
import { z } from 'zod';
import type { Context } from '../../context.ts';
import { bigintValue, formatSeconds, printRows, type Column } from '../../output.ts';

export const options = z.object({}).strict();
export type Options = z.output<typeof options>;

/** One node, as `--json` prints it: the columns of `mp.nodes_v` (time since the heartbeat in seconds). */
export interface NodeRow {
  name: string;
  hostname: string;
  swarm_role: 'manager' | 'worker' | null;
  targets: string[];
  version: string;
  alive: boolean;
  heartbeat_at: Date;
  since_heartbeat_seconds: number;
  started_at: Date;
  running_ops: number | string;
}

type TableRow = NodeRow & { role: string; alive_text: string; heartbeat: string; targets_text: string };

const COLUMNS: Column<TableRow>[] = [
  { key: 'name', heading: 'NODE' },
  { key: 'role' },
  { key: 'alive_text', heading: 'ALIVE' },
  { key: 'heartbeat', heading: 'LAST HEARTBEAT', right: true },
  { key: 'version' },
  { key: 'running_ops', heading: 'RUNNING OPS', right: true },
  { key: 'targets_text', heading: 'CLAIMS' },
];

/** `manager`/`worker` from Swarm; a lone engine (no swarm) that still claims manager operations says so. */
function roleOf(n: NodeRow): string {
  if (n.swarm_role) return n.swarm_role;
  return n.targets.includes('manager') ? 'manager (no swarm)' : 'no docker';
}

/**
 * @example
 *   $ mp nodes ls
 *   NODE    ROLE     ALIVE  LAST HEARTBEAT  VERSION  RUNNING OPS  CLAIMS
 *   node-1  manager  yes           3s ago  0.1.0              1  node:node-1, manager
 */
export async function run(ctx: Context, _opts: Options): Promise<void> {
  const rows = (
    await ctx.db().query<NodeRow & { running_ops: string }>(
      `select name, hostname, swarm_role, targets, version, alive, heartbeat_at,
              extract(epoch from since_heartbeat)::float8 as since_heartbeat_seconds, started_at, running_ops
       from mp.nodes_v
       order by name`,
    )
  ).map((r) => ({ ...r, running_ops: bigintValue(r.running_ops)! }));
  if (ctx.json) {
    printRows(ctx, rows, [], '');
    return;
  }
  const table = rows.map((n) => ({
    ...n,
    role: roleOf(n),
    alive_text: n.alive ? 'yes' : 'no',
    heartbeat: `${formatSeconds(n.since_heartbeat_seconds)} ago`,
    targets_text: n.targets.join(', '),
  }));
  printRows(ctx, table, COLUMNS, 'no nodes yet: start an agent with `mp agent` (or `mp dev` on this machine)');
}
