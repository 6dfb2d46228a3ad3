/**
 * LISTEN wake-ups for commands that follow a stream (`mp stream tail --follow`, `mp ops tail`): one
 * connection listening on `mp_stream_<stream>`, with a polling fallback because NOTIFY is best-effort
 * (a dropped LISTEN connection loses wake-ups, and nothing says so).
 */
import type pg from 'pg';
import type { Context, Database } from './context.ts';

/** Polling fallback: how long a follower sleeps when no NOTIFY arrives. */
export const POLL_MS = 1000;

/** A LISTEN connection; `wait` resolves on a notification, after `POLL_MS`, or when the command is interrupted. */
export interface Wakeups {
  wait(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Listens on `mp_stream_<stream>`. A notification that arrives while the caller is reading is kept, so
 * the next `wait` returns at once instead of sleeping through it. `stream` must be a validated name
 * (`^[a-z_][a-z0-9_]*$`): it is quoted as an identifier.
 *
 * @example
 *   const wakeups = await listenForStream(ctx, ctx.db(), 'mp_events');   // before the first read
 *   for (;;) { read(); await wakeups.wait(); }
 */
export async function listenForStream(ctx: Context, db: Database, stream: string): Promise<Wakeups> {
  const client: pg.PoolClient = await db.pool.connect();
  let broken = false;
  let pending = false;
  let wake: AbortController | undefined;
  const onNotify = (): void => {
    pending = true;
    wake?.abort();
  };
  // A lost LISTEN connection must not crash the follower: the polling fallback keeps it going.
  const onError = (): void => {
    broken = true;
  };
  client.on('notification', onNotify);
  client.on('error', onError);
  try {
    await client.query(`listen "mp_stream_${stream}"`);
  } catch (err) {
    client.removeListener('notification', onNotify);
    client.removeListener('error', onError);
    client.release(true);
    throw err;
  }
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
