/** `mp stream tail STREAM [--from POS | --last N] [--follow]`: prints a stream's events, and new ones as they come. */
import type pg from 'pg';
import { z } from 'zod';
import type { Context, Database } from '../../context.ts';
import { position, positiveInt, streamName } from '../../inputs.ts';
import { bigintValue, printRecord } from '../../output.ts';

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
/** Polling fallback when --follow: NOTIFY is best-effort (a dropped LISTEN connection loses wake-ups). */
const POLL_MS = 1000;

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
 * A LISTEN connection on `mp_stream_<stream>`; `wait` resolves on a notification, after `POLL_MS`, or
 * when the command is interrupted. A notification that arrives while the caller is reading is kept, so
 * the next `wait` returns at once instead of sleeping through it.
 */
async function listen(ctx: Context, db: Database, stream: string) {
  const client: pg.PoolClient = await db.pool.connect();
  let broken = false;
  let pending = false;
  let wake: AbortController | undefined;
  const onNotify = (): void => {
    pending = true;
    wake?.abort();
  };
  // A lost LISTEN connection must not crash tail: the polling fallback keeps it going.
  const onError = (): void => {
    broken = true;
  };
  client.on('notification', onNotify);
  client.on('error', onError);
  // The name passed validation (^[a-z_][a-z0-9_]*$), so quoting it as an identifier is safe.
  await client.query(`listen "mp_stream_${stream}"`);
  return {
    wait: async (): Promise<void> => {
      if (pending || ctx.signal.aborted) {
        pending = false;
        return;
      }
      wake = new AbortController();
      const stop = (): void => wake?.abort();
      ctx.signal.addEventListener('abort', stop, { once: true });
      await ctx.clock.sleep(POLL_MS, wake.signal);
      ctx.signal.removeEventListener('abort', stop);
      wake = undefined;
      pending = false;
    },
    close: async (): Promise<void> => {
      client.removeListener('notification', onNotify);
      if (!broken) await client.query(`unlisten *`).catch(() => (broken = true));
      client.removeListener('error', onError);
      client.release(broken);
    },
  };
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
  const listener = opts.follow ? await listen(ctx, db, opts.stream) : undefined;
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
