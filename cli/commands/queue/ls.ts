/** `mp queue ls`: every queue with its job counts, from `mp.queue_stats()`. */
import { z } from 'zod';
import type { Context, Database } from '../../context.ts';
import { bigintValue, formatSeconds, printRows, type Column } from '../../output.ts';

export const options = z.object({}).strict();
export type Options = z.output<typeof options>;

/** One queue's counts, as `--json` prints them: the columns of `mp.queue_stats`, counts as numbers. */
export interface QueueStatsRow {
  name: string;
  waiting: number | string;
  scheduled: number | string;
  running: number | string;
  dead: number | string;
  oldest_waiting_seconds: number | null;
}

interface RawStats {
  name: string;
  waiting: string;
  scheduled: string;
  running: string;
  dead: string;
  oldest_waiting_seconds: number | string | null;
}

/** Reads `mp.queue_stats(queue)`; all queues when `queue` is null. Unknown queue: `NotFoundError` (MP002). */
export async function queueStats(db: Database, queue: string | null): Promise<QueueStatsRow[]> {
  const rows = await db.query<RawStats>(
    `select name, waiting, scheduled, running, dead, oldest_waiting_seconds from mp.queue_stats($1)`,
    [queue],
  );
  return rows.map((r) => ({
    name: r.name,
    waiting: bigintValue(r.waiting)!,
    scheduled: bigintValue(r.scheduled)!,
    running: bigintValue(r.running)!,
    dead: bigintValue(r.dead)!,
    oldest_waiting_seconds: r.oldest_waiting_seconds === null ? null : Number(r.oldest_waiting_seconds),
  }));
}

/** Table columns shared with `mp queue stats`; the age shows as `12m05s`. */
export const STATS_COLUMNS: Column<QueueStatsRow & { oldest_waiting: string }>[] = [
  { key: 'name', heading: 'QUEUE' },
  { key: 'waiting', right: true },
  { key: 'scheduled', right: true },
  { key: 'running', right: true },
  { key: 'dead', right: true },
  { key: 'oldest_waiting', heading: 'OLDEST WAITING', right: true },
];

/** A stats row with its age made readable, for the table. */
export function withAge(row: QueueStatsRow): QueueStatsRow & { oldest_waiting: string } {
  return { ...row, oldest_waiting: formatSeconds(row.oldest_waiting_seconds) };
}

/**
 * Lists queues.
 *
 * @example
 *   $ mp queue ls
 *   QUEUE   WAITING  SCHEDULED  RUNNING  DEAD  OLDEST WAITING
 *   emails       12          0        3     1          1m05s
 */
export async function run(ctx: Context, _opts: Options): Promise<void> {
  const rows = await queueStats(ctx.db(), null);
  if (ctx.json) printRows(ctx, rows, [], '');
  else printRows(ctx, rows.map(withAge), STATS_COLUMNS, "no queues yet; create one with select mp.queue_create('emails')");
}
