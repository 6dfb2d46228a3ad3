/**
 * `mp nodes ls`: the agents (one per node), alive or not, from `mp.nodes_v`, with the host metrics each
 * agent reports with its heartbeat (`mp.nodes_metrics_v`) and the node's open incidents.
 */
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
  cpu_percent: number | null;
  memory_percent: number | null;
  disk_percent: number | null;
  load1: number | null;
  incidents: string | null;
}

type TableRow = NodeRow & { role: string; alive_text: string; heartbeat: string; targets_text: string; cpu: string; mem: string; disk: string; load: string };

const COLUMNS: Column<TableRow>[] = [
  { key: 'name', heading: 'NODE' },
  { key: 'role' },
  { key: 'alive_text', heading: 'ALIVE' },
  { key: 'heartbeat', heading: 'LAST HEARTBEAT', right: true },
  { key: 'version' },
  { key: 'running_ops', heading: 'RUNNING OPS', right: true },
  { key: 'cpu', heading: 'CPU', right: true },
  { key: 'mem', heading: 'MEM', right: true },
  { key: 'disk', heading: 'DISK', right: true },
  { key: 'load', heading: 'LOAD', right: true },
  { key: 'incidents' },
  { key: 'targets_text', heading: 'CLAIMS' },
];

const percent = (v: number | null): string => (v === null ? '-' : `${Math.round(v)}%`);

/** `manager`/`worker` from Swarm; a lone engine (no swarm) that still claims manager operations says so. */
function roleOf(n: NodeRow): string {
  if (n.swarm_role) return n.swarm_role;
  return n.targets.includes('manager') ? 'manager (no swarm)' : 'no docker';
}

/**
 * @example
 *   $ mp nodes ls
 *   NODE    ROLE     ALIVE  LAST HEARTBEAT  VERSION  RUNNING OPS  CPU  MEM  DISK  LOAD  INCIDENTS  CLAIMS
 *   node-1  manager  yes           3s ago  0.1.0              1  12%  40%   61%  0.31  -          node:node-1, manager
 */
export async function run(ctx: Context, _opts: Options): Promise<void> {
  const rows = (
    await ctx.db().query<NodeRow & { running_ops: string }>(
      `select n.name, n.hostname, n.swarm_role, n.targets, n.version, n.alive, n.heartbeat_at,
              extract(epoch from n.since_heartbeat)::float8 as since_heartbeat_seconds, n.started_at, n.running_ops,
              m.cpu_percent, m.memory_percent, m.disk_percent, m.load1, m.incidents
       from mp.nodes_v n left join mp.nodes_metrics_v m on m.name = n.name
       order by n.name`,
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
    cpu: percent(n.cpu_percent),
    mem: percent(n.memory_percent),
    disk: percent(n.disk_percent),
    load: n.load1 === null ? '-' : n.load1.toFixed(2),
  }));
  printRows(ctx, table, COLUMNS, 'no nodes yet: start an agent with `mp agent` (or `mp dev` on this machine)');
}
