/** `mp stream tail STREAM [--from POS | --last N] [--follow]`: prints a stream's events, and new ones as they come. */
import { z } from 'zod';
import type { Context, Database } from '../../context.ts';
import { position, positiveInt, streamName } from '../../inputs.ts';
import { bigintValue, printRecord } from '../../output.ts';
import { listenForStream } from '../../wakeups.ts';

export const options = z
  .object({
    stream: streamName,
    from: position.optional(),
    last: positiveInt.optional(),
    follow: z.boolean().default(false),
  })
  .strict()
  .refine((o) => o.from === undefined || o.last === undefined, {
    message: '--from and --last exclude each other; pass one of them',
    path: ['from'],
  });
export type Options = z.output<typeof options>;

/** How many events one `mp.read` call fetches; the loop reads again until a short page. */
const PAGE = 500;
/** Without `--from`/`--last`, like tail(1): the last 10 events. */
const DEFAULT_LAST = 10;

/** One event, as `--json` prints it (one object per line). */
export interface EventRow {
  pos: number | string;
  created_at: Date;
  key: string | null;
  payload: unknown;
}

/** Where reading starts: the pos *after* which events are printed. */
async function startAfter(db: Database, opts: Options): Promise<bigint> {
  // stream_stats raises MP005 (with a "did you mean") for an unknown stream, before anything is printed.
  const [stats] = await db.query<{ last_pos: string }>(`select last_pos from mp.stream_stats($1)`, [opts.stream]);
  const last = BigInt(stats!.last_pos);
  if (opts.from !== undefined) return opts.from > 0 ? BigInt(opts.from) - 1n : 0n;
  const n = BigInt(opts.last ?? DEFAULT_LAST);
  return last > n ? last - n : 0n;
}

/**
 * Prints events in pos order: `pos  created_at  key  payload`, or with `--json` one object per line.
 * With `--follow` it then waits for new events (woken by NOTIFY, polling every second as a fallback)
 * until interrupted; positions are dense and committed in order (see sql/streams), so reading after the
 * last pos printed never skips an event.
 *
 * @example
 *   $ mp stream tail mp_events --last 1
 *   120  2026-11-26T23:31:39Z  op_42  {"step":"deploy","level":"info"}
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const db = ctx.db();
  // LISTEN before the first read: an event published in between still wakes us.
  const listener = opts.follow ? await listenForStream(ctx, db, opts.stream) : undefined;
  try {
    let after = await startAfter(db, opts);
    while (!ctx.signal.aborted) {
      const events = await db.query<{ pos: string; payload: unknown; key: string | null; created_at: Date }>(
        `select pos, payload, key, created_at from mp.read($1, $2, $3)`,
        [opts.stream, after.toString(), PAGE],
      );
      for (const e of events) {
        const row: EventRow = { pos: bigintValue(e.pos)!, created_at: e.created_at, key: e.key, payload: e.payload };
        printRecord(ctx, [row.pos, row.created_at, row.key, JSON.stringify(row.payload)], row);
        after = BigInt(e.pos);
      }
      if (events.length === PAGE) continue;
      if (!listener) break;
      await listener.wait();
    }
  } finally {
    await listener?.close();
  }
}
