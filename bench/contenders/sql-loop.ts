/**
 * Workers for contenders that are only SQL functions (MiniPaaS's raw API, the original functions):
 * `loops` connections each claim a batch, run the handler on every job, ack the batch, and claim
 * again. When a claim comes back short the loop sleeps until a NOTIFY on `channel` (or `idleWaitMs`
 * without one), which is how an application would write it: wake-ups, never tight polling. The
 * notifications come through one shared listening connection, or (`listenOnEachLoop`) each loop
 * LISTENs on its own connection, as separate worker processes of another language would.
 */
import pg from 'pg';
import type { JobPayload, Workers } from './contender.ts';
import { Wakeups } from './wakeups.ts';

export interface Claimed {
  ids: string[];
  payloads: JobPayload[];
}

export interface SqlLoopOptions {
  url: string;
  loops: number;
  batch: number;
  claim(client: pg.Client, batch: number, worker: string): Promise<Claimed>;
  ack(client: pg.Client, ids: string[]): Promise<void>;
  /** LISTEN channel that announces new jobs; without one, loops re-poll every `idleWaitMs`. */
  channel?: string;
  /** Each loop LISTENs on its claiming connection and is woken by its own notifications only. */
  listenOnEachLoop?: boolean;
  /** Longest sleep after a short claim (the safety net when a wake-up is missed). */
  idleWaitMs: number;
  /**
   * For queues that only NOTIFY while a worker says it waits (MiniPaaS: `mp.wait_for_jobs`): called
   * before the first sleep, after which the loop claims once more before sleeping (a job enqueued just
   * before the announcement is seen by that claim); renewed every `renewWaitMs` while idle.
   */
  announceWait?(client: pg.Client, worker: string): Promise<void>;
  /** Withdraws the announcement once claims come back full again, so enqueues stop notifying. */
  doneWaiting?(client: pg.Client, worker: string): Promise<void>;
  renewWaitMs?: number;
}

/** Starts the loops; `stop` lets each finish its current batch, then closes every connection. */
export async function startSqlLoops(opts: SqlLoopOptions, handler: (job: JobPayload) => void): Promise<Workers> {
  let stopped = false;
  const shared = new Wakeups();
  const perLoop = Boolean(opts.channel && opts.listenOnEachLoop);

  let listener: pg.Client | undefined;
  if (opts.channel && !perLoop) {
    listener = new pg.Client({ connectionString: opts.url });
    await listener.connect();
    listener.on('notification', shared.wakeAll);
    await listener.query(`listen ${pg.escapeIdentifier(opts.channel)}`);
  }

  const loops = await Promise.all(
    Array.from({ length: opts.loops }, async () => {
      const client = new pg.Client({ connectionString: opts.url });
      await client.connect();
      const wakeups = perLoop ? new Wakeups() : shared;
      if (perLoop) {
        client.on('notification', wakeups.wakeAll);
        await client.query(`listen ${pg.escapeIdentifier(opts.channel!)}`);
      }
      return { client, wakeups };
    }),
  );
  const clients = loops.map((l) => l.client);

  const loop = async ({ client, wakeups }: { client: pg.Client; wakeups: Wakeups }, worker: string): Promise<void> => {
    let announcedAt = Number.NEGATIVE_INFINITY;
    while (!stopped) {
      const seen = wakeups.seen;
      const { ids, payloads } = await opts.claim(client, opts.batch, worker);
      for (const p of payloads) handler(p);
      if (ids.length > 0) await opts.ack(client, ids);
      if (ids.length === opts.batch) {
        if (opts.doneWaiting && announcedAt > Number.NEGATIVE_INFINITY) {
          await opts.doneWaiting(client, worker);
          announcedAt = Number.NEGATIVE_INFINITY;
        }
        continue;
      }
      if (opts.announceWait && performance.now() - announcedAt > (opts.renewWaitMs ?? 20_000)) {
        await opts.announceWait(client, worker);
        announcedAt = performance.now();
        continue; // claim once more before sleeping
      }
      if (!stopped) await wakeups.sleep(seen, opts.idleWaitMs);
    }
  };
  const running = loops.map((l, i) => loop(l, `bench-${i}`));

  return {
    stop: async () => {
      stopped = true;
      for (const l of loops) l.wakeups.wakeAll();
      try {
        await Promise.all(running);
        if (opts.doneWaiting) await Promise.all(clients.map((c, i) => opts.doneWaiting!(c, `bench-${i}`)));
      } finally {
        await Promise.all([...clients, ...(listener ? [listener] : [])].map((c) => c.end()));
      }
    },
  };
}
