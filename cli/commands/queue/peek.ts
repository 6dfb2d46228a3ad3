/** `mp queue peek QUEUE [--limit N] [--dead]`: the next jobs in claim order, or dead letters, without claiming. */
import { z } from 'zod';
import type { Context, Database } from '../../context.ts';
import { positiveInt, queueName } from '../../inputs.ts';
import { bigintValue, printRows, type Column } from '../../output.ts';

export const options = z
  .object({ queue: queueName, limit: positiveInt.default(10), dead: z.boolean().default(false) })
  .strict();
export type Options = z.output<typeof options>;

/** A job that is not running, as `--json` prints it. */
export interface PeekedJob {
  id: number | string;
  state: 'waiting' | 'scheduled';
  priority: number;
  run_at: Date;
  attempt: number;
  max_attempts: number;
  dedupe_key: string | null;
  serial_key: string | null;
  target: string | null;
  enqueued_at: Date;
  payload: unknown;
}

/** A dead letter, as `--json` prints it; `errors` is the job's whole error history. */
export interface DeadJob {
  id: number | string;
  attempt: number;
  died_at: Date;
  last_error: string | null;
  errors: unknown;
  payload: unknown;
}

/** Raises the SQL's MP002 (`NotFoundError`, with the existing queues in its hint) for an unknown queue. */
async function assertQueueExists(db: Database, queue: string): Promise<void> {
  await db.query(`select 1 from mp.queue_stats($1)`, [queue]);
}

/**
 * The next `limit` jobs a worker would meet (running jobs excluded), in the claim index's order. The
 * waiting/scheduled split reads `mp._now()`, the clock `mp.queue_stats` uses, so both always agree
 * (also when tests set `mp.now`).
 */
export async function peekJobs(db: Database, queue: string, limit: number): Promise<PeekedJob[]> {
  await assertQueueExists(db, queue);
  const rows = await db.query<PeekedJob & { id: string }>(
    `select id, case when run_at <= mp._now() then 'waiting' else 'scheduled' end as state,
            priority, run_at, attempt, max_attempts, dedupe_key, serial_key, target, enqueued_at, payload
     from mp.jobs
     where queue = $1 and locked_by is null
     order by priority desc, run_at, id
     limit $2`,
    [queue, limit],
  );
  return rows.map((r) => ({ ...r, id: bigintValue(r.id)! }));
}

/** The oldest `limit` dead letters of `queue`. */
export async function peekDead(db: Database, queue: string, limit: number): Promise<DeadJob[]> {
  await assertQueueExists(db, queue);
  const rows = await db.query<DeadJob & { id: string }>(
    `select id, attempt, died_at, errors -> -1 ->> 'error' as last_error, errors, payload
     from mp.dead_jobs
     where queue = $1
     order by id
     limit $2`,
    [queue, limit],
  );
  return rows.map((r) => ({ ...r, id: bigintValue(r.id)! }));
}

const JOB_COLUMNS: Column<PeekedJob>[] = [
  { key: 'id', right: true },
  { key: 'state' },
  { key: 'priority', heading: 'PRIO', right: true },
  { key: 'run_at', heading: 'RUN AT' },
  { key: 'attempt', heading: 'TRY', right: true },
  { key: 'serial_key', heading: 'SERIAL' },
  { key: 'payload', max: 60 },
];

const DEAD_COLUMNS: Column<DeadJob>[] = [
  { key: 'id', right: true },
  { key: 'attempt', heading: 'TRIES', right: true },
  { key: 'died_at', heading: 'DIED AT' },
  { key: 'last_error', heading: 'LAST ERROR', max: 50 },
  { key: 'payload', max: 40 },
];

/**
 * Prints the next jobs of a queue (or its dead letters with `--dead`). Nothing is claimed or locked.
 *
 * @example
 *   $ mp queue peek emails --limit 2
 *   ID  STATE    PRIO  RUN AT                TRY  SERIAL  PAYLOAD
 *    7  waiting     0  2026-11-26T23:31:39Z    0  -       {"to":"a@example.com"}
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const db = ctx.db();
  if (opts.dead) {
    const rows = await peekDead(db, opts.queue, opts.limit);
    printRows(ctx, rows, DEAD_COLUMNS, `no dead jobs in queue "${opts.queue}"`);
  } else {
    const rows = await peekJobs(db, opts.queue, opts.limit);
    printRows(ctx, rows, JOB_COLUMNS, `no waiting jobs in queue "${opts.queue}"`);
  }
}
