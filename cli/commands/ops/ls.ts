/** `mp ops ls [--status S] [--env E] [--kind K] [--limit N]`: operations, newest first, from `mp.operations_v`. */
import { z } from 'zod';
import type { Context } from '../../context.ts';
import { environmentName, operationStatus, positiveInt } from '../../inputs.ts';
import { bigintValue, formatSeconds, printRows, type Column } from '../../output.ts';

export const options = z
  .object({
    status: operationStatus.optional(),
    env: environmentName.optional(),
    kind: z.string().min(1).optional(),
    limit: positiveInt.default(20),
  })
  .strict();
export type Options = z.output<typeof options>;

/** One operation, as `--json` prints it: the columns of `mp.operations_v` (elapsed in seconds). */
export interface OperationRow {
  id: number | string;
  kind: string;
  env: string | null;
  target: string;
  status: string;
  attempts: number;
  node: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  elapsed_seconds: number;
  last_step: string | null;
  last_message: string | null;
  last_event_at: Date | null;
  error: string | null;
}

type TableRow = OperationRow & { elapsed: string; message: string | null };

const COLUMNS: Column<TableRow>[] = [
  { key: 'id', right: true },
  { key: 'kind' },
  { key: 'env' },
  { key: 'target' },
  { key: 'status' },
  { key: 'attempts', heading: 'TRY', right: true },
  { key: 'node' },
  { key: 'created_at', heading: 'CREATED' },
  { key: 'elapsed', right: true },
  { key: 'last_step', heading: 'LAST STEP' },
  { key: 'message', max: 60 },
];

/** The filtered operations, newest first. Each filter is one parameter; NULL means "any". */
export async function listOperations(ctx: Context, opts: Options): Promise<OperationRow[]> {
  const rows = await ctx.db().query<OperationRow & { id: string }>(
    `select id, kind, env, target, status, attempts, node, created_at, started_at, finished_at,
            extract(epoch from elapsed)::float8 as elapsed_seconds, last_step, last_message, last_event_at, error
     from mp.operations_v
     where ($1::text is null or status = $1) and ($2::text is null or env = $2) and ($3::text is null or kind = $3)
     order by id desc
     limit $4`,
    [opts.status ?? null, opts.env ?? null, opts.kind ?? null, opts.limit],
  );
  return rows.map((r) => ({ ...r, id: bigintValue(r.id)! }));
}

/**
 * @example
 *   $ mp ops ls --env prod --limit 2
 *   ID  KIND           ENV   TARGET   STATUS     TRY  NODE    CREATED               ELAPSED  LAST STEP  MESSAGE
 *   13  service.scale  prod  manager  failed       1  node-1  2026-11-26T23:41:02Z       0s  failed     service 'wbe' does not exist ...
 *   12  docker.info    prod  any      succeeded    1  node-1  2026-11-26T23:40:58Z       0s  succeeded  succeeded
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const rows = await listOperations(ctx, opts);
  if (ctx.json) {
    printRows(ctx, rows, [], '');
    return;
  }
  const table = rows.map((r) => ({ ...r, elapsed: formatSeconds(r.elapsed_seconds), message: r.error ?? r.last_message }));
  printRows(ctx, table, COLUMNS, 'no operations match; submit one with `mp ops submit KIND`');
}
