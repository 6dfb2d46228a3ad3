// The worker the README's SQL section shows, as an app in another language writes it: LISTEN on the
// queue's channel, then mp.claim in a loop, waiting for a notification when a claim comes back short.
// It never calls mp.wait_for_jobs: the claim registers it as waiting (sql/queues/0004_claim_waits.sql).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { freshDatabase, type TestDatabase } from '../../support/database.ts';
import { waitFor } from '../../support/wait.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => db.drop());

interface Handled {
  payload: { n: number };
  at: number;
}

/**
 * The raw loop on its own connection. `pollMs` is the fallback when no notification comes; `afterFullClaim`
 * runs once the jobs of a full claim are handled and acked (the tests enqueue there while the worker is busy).
 */
class RawLoop {
  claims = 0;
  sleeping = false;
  /** Why each sleep ended. */
  readonly wakes: Array<'notification' | 'poll'> = [];
  readonly handled: Handled[] = [];
  private generation = 0;
  private wake: (() => void) | null = null;
  private stopped = false;
  private done: Promise<void> | null = null;

  constructor(
    private readonly client: pg.Client,
    private readonly opts: { queue: string; worker: string; batch: number; pollMs: number; afterFullClaim?: () => Promise<void> },
  ) {
    client.on('notification', () => {
      this.generation++;
      this.wake?.();
    });
  }

  async start(): Promise<void> {
    await this.client.query(`listen ${pg.escapeIdentifier(`mp_queue_${this.opts.queue}`)}`);
    this.done = this.run();
  }

  private async run(): Promise<void> {
    const { queue, worker, batch } = this.opts;
    while (!this.stopped) {
      const seen = this.generation;
      const { rows } = await this.client.query<{ id: string; payload: { n: number } }>(
        `select id, payload from mp.claim($1, $2, $3)`,
        [queue, worker, batch],
      );
      this.claims++;
      for (const r of rows) this.handled.push({ payload: r.payload, at: performance.now() });
      if (rows.length > 0) await this.client.query(`select mp.ack($1::bigint[])`, [rows.map((r) => r.id)]);
      if (rows.length === batch) {
        await this.opts.afterFullClaim?.();
        continue;
      }
      // A notification that arrived while the claim ran is not slept through.
      if (seen !== this.generation || this.stopped) continue;
      this.sleeping = true;
      const why = await new Promise<'notification' | 'poll'>((resolve) => {
        const timer = setTimeout(() => resolve('poll'), this.opts.pollMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve('notification');
        };
      });
      this.wake = null;
      this.sleeping = false;
      if (!this.stopped) this.wakes.push(why);
    }
  }

  /** Idle: it has claimed past its start-up (the claim that began the wait notifies once) and sleeps. */
  get idle(): boolean {
    return this.sleeping && this.claims >= 2;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.done;
  }
}

async function enqueue(queue: string, n: number): Promise<void> {
  await db.pool.query(`select mp.enqueue($1, $2)`, [queue, JSON.stringify({ n })]);
}

/** A separate session counting the notifications on a queue's channel. */
async function channelListener(queue: string): Promise<{ heard: () => Promise<number> }> {
  const listener = await db.connect();
  let heard = 0;
  listener.on('notification', () => heard++);
  await listener.query(`listen ${pg.escapeIdentifier(`mp_queue_${queue}`)}`);
  return {
    // Notifications committed before this round trip are delivered before its result.
    heard: async () => {
      await listener.query('select 1');
      return heard;
    },
  };
}

describe('a raw SQL worker: LISTEN, then mp.claim in a loop', () => {
  it('is woken by an enqueue through NOTIFY, long before its 10 s poll, without mp.wait_for_jobs', async () => {
    await db.pool.query(`select mp.queue_create('raw')`);
    const loop = new RawLoop(await db.connect(), { queue: 'raw', worker: 'raw-1', batch: 10, pollMs: 10_000 });
    await loop.start();
    try {
      await waitFor('the loop to go idle', () => loop.idle, { timeoutMs: 5_000 });
      const { rows } = await db.pool.query(`select worker from mp.queue_waiters where queue = 'raw'`);
      expect(rows).toEqual([{ worker: 'raw-1' }]);

      for (let n = 1; n <= 3; n++) {
        const wakesBefore = loop.wakes.length;
        const t0 = performance.now();
        await enqueue('raw', n);
        await waitFor(`job ${n} handled`, () => loop.handled.length === n, { timeoutMs: 2_000, intervalMs: 5 });
        const latencyMs = loop.handled[n - 1]!.at - t0;
        expect(latencyMs).toBeLessThan(1_000);
        expect(loop.wakes.slice(wakesBefore)).toEqual(['notification']);
        await waitFor('the loop to sleep again', () => loop.idle, { timeoutMs: 5_000 });
      }
      expect(loop.wakes).not.toContain('poll');
      expect(loop.handled.map((h) => h.payload.n)).toEqual([1, 2, 3]);
    } finally {
      await loop.stop();
    }
  });

  it('a short claim starts the wait with one NOTIFY; full claims withdraw it, so enqueues stop notifying', async () => {
    await db.pool.query(`select mp.queue_create('scripted')`);
    const channel = await channelListener('scripted');
    const worker = await db.connect();
    const claim = async (batch: number): Promise<number> =>
      (await worker.query(`select id from mp.claim('scripted', 'w', $1)`, [batch])).rowCount ?? 0;

    // Idle: the first short claim registers the worker and notifies once (the race it closes: a job
    // committed while that claim ran); a second short claim finds the registration fresh and is silent.
    expect(await claim(5)).toBe(0);
    expect(await channel.heard()).toBe(1);
    expect(await claim(5)).toBe(0);
    expect(await channel.heard()).toBe(1);

    // An idle worker is woken by every enqueue.
    for (let n = 0; n < 12; n++) await enqueue('scripted', n);
    expect(await channel.heard()).toBe(13);

    // Busy: a full claim withdraws the registration; enqueues between full claims send nothing.
    let quiet = 0;
    for (let round = 0; round < 4; round++) {
      expect(await claim(5)).toBe(5);
      for (let n = 0; n < 5; n++, quiet++) await enqueue('scripted', 100 + quiet);
    }
    expect(quiet).toBe(20);
    expect(await channel.heard()).toBe(13);
    expect((await db.pool.query(`select 1 from mp.queue_waiters where queue = 'scripted'`)).rowCount).toBe(0);

    // Drained: 12 + 20 - 20 = 12 waiting, then the claim that comes back short starts the wait again.
    expect(await claim(10)).toBe(10);
    expect(await claim(10)).toBe(2);
    expect(await channel.heard()).toBe(14);
    await enqueue('scripted', 999);
    expect(await channel.heard()).toBe(15);
  });

  it('renews an aging registration silently, and re-announces one that enqueues may already ignore', async () => {
    await db.pool.query(`select mp.queue_create('aging')`);
    const channel = await channelListener('aging');
    const claimEmpty = async () => db.pool.query(`select * from mp.claim('aging', 'w', 1)`);
    const age = async (seconds: number) =>
      db.pool.query(`update mp.queue_waiters set since = now() - make_interval(secs => $1) where queue = 'aging'`, [seconds]);
    const since = async () =>
      (await db.pool.query<{ s: number }>(`select extract(epoch from now() - since)::float8 s from mp.queue_waiters where queue = 'aging'`)).rows[0]!.s;

    await claimEmpty();
    expect(await channel.heard()).toBe(1);
    await age(10);
    await claimEmpty(); // fresh enough: not even rewritten
    expect(await since()).toBeGreaterThan(9);
    await age(30);
    await claimEmpty(); // renewed, no NOTIFY: enqueues were still notifying
    expect(await since()).toBeLessThan(5);
    expect(await channel.heard()).toBe(1);
    await age(55);
    await claimEmpty(); // close to mp._wake's minute: announce again
    expect(await channel.heard()).toBe(2);
  });

  it('a loop kept busy by full claims is not notified per enqueue, and is woken again once it drains', async () => {
    await db.pool.query(`select mp.queue_create('busy')`);
    await db.pool.query(`select mp.enqueue_batch('busy', $1)`, [JSON.stringify(Array.from({ length: 1000 }, (_, n) => ({ n })))]);
    const channel = await channelListener('busy');
    let enqueuedWhileBusy = 0;
    const loop = new RawLoop(await db.connect(), {
      queue: 'busy',
      worker: 'busy-1',
      batch: 100,
      pollMs: 10_000,
      // Between full claims, producers enqueue 20 jobs one call (one commit) each, 4 at a time.
      afterFullClaim: async () => {
        await Promise.all(
          Array.from({ length: 4 }, async () => {
            for (let k = 0; k < 5; k++) await enqueue('busy', 10_000 + enqueuedWhileBusy++);
          }),
        );
      },
    });
    await loop.start();
    try {
      await waitFor('the backlog to drain', () => loop.idle, { timeoutMs: 20_000, intervalMs: 10 });
      const total = 1000 + enqueuedWhileBusy;
      expect(enqueuedWhileBusy).toBeGreaterThanOrEqual(200);
      expect(loop.handled).toHaveLength(total);
      // Only the claim that came back short (it started the wait) notified.
      expect(await channel.heard()).toBe(1);
      await enqueue('busy', -1);
      await waitFor('the job after the drain', () => loop.handled.length === total + 1, { timeoutMs: 2_000, intervalMs: 5 });
      expect(await channel.heard()).toBe(2);
      expect(loop.wakes).not.toContain('poll');
    } finally {
      await loop.stop();
    }
  });
});
