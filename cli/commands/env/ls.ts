/** `mp env ls`: environments with their operation counts. */
import { z } from 'zod';
import type { Context } from '../../context.ts';
import { bigintValue, printRows, type Column } from '../../output.ts';

export const options = z.object({}).strict();
export type Options = z.output<typeof options>;

/** One environment, as `--json` prints it. */
export interface EnvironmentRow {
  name: string;
  created_at: Date;
  operations: number | string;
  active: number | string;
  last_operation_at: Date | null;
}

const COLUMNS: Column<EnvironmentRow>[] = [
  { key: 'name', heading: 'ENV' },
  { key: 'created_at', heading: 'CREATED' },
  { key: 'operations', right: true },
  { key: 'active', heading: 'QUEUED/RUNNING', right: true },
  { key: 'last_operation_at', heading: 'LAST OPERATION' },
];

/**
 * @example
 *   $ mp env ls
 *   ENV   CREATED               OPERATIONS  QUEUED/RUNNING  LAST OPERATION
 *   prod  2026-11-26T23:31:39Z          12               1  2026-11-26T23:41:02Z
 */
export async function run(ctx: Context, _opts: Options): Promise<void> {
  const rows = await ctx.db().query<EnvironmentRow & { operations: string; active: string }>(
    `select e.name, e.created_at, count(o.id) as operations,
            count(o.id) filter (where o.status in ('queued', 'running')) as active,
            max(o.created_at) as last_operation_at
     from mp.environments e
     left join mp.operations o on o.environment = e.name
     group by e.name, e.created_at
     order by e.name`,
  );
  printRows(
    ctx,
    rows.map((r) => ({ ...r, operations: bigintValue(r.operations)!, active: bigintValue(r.active)! })),
    COLUMNS,
    'no environments yet: create one with `mp env create NAME`',
  );
}
