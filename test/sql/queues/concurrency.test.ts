// Real concurrency against a real PostgreSQL: many connections racing for the same rows.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { Queue } from '../../../sql/queues/queue.ts';
import { freshDatabase, type TestDatabase } from '../../support/database.ts';
import { waitFor } from '../../support/wait.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase({ poolSize: 30 });
});
afterAll(async () => db.drop());

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('queues under concurrency', () => {
  it('8 workers drain 20,000 jobs, each processed exactly once', async () => {
    const name = 'drain';
    const setup = new Queue<{ n: number }>({ pool: db.pool, name });
    await setup.create();
    const total = 20_000;
    for (let i = 0; i < total; i += 5_000) {
      await setup.enqueueMany(Array.from({ length: 5_000 }, (_, k) => ({ n: i + k })));
    }
    const seen = new Map<number, number>();
    const pools: pg.Pool[] = [];
    const workers = Array.from({ length: 8 }, (_, w) => {
      const pool = new pg.Pool({ connectionString: db.url, max: 3 });
      pools.push(pool);
      const q = new Queue<{ n: number }>({ pool, name });
      return q.work(
        async (job) => {
          seen.set(job.payload.n, (seen.get(job.payload.n) ?? 0) + 1);
        },
        { concurrency: 8, batch: 50, workerId: `w${w}` },
      );
    });
    await waitFor('all jobs done', async () => (await setup.stats()).waiting + (await setup.stats()).running === 0, { timeoutMs: 60_000, intervalMs: 100 });
    await Promise.all(workers.map((w) => w.stop()));
    await Promise.all(pools.map((p) => p.end()));
    expect(seen.size).toBe(total);
    const duplicates = [...seen.entries()].filter(([, count]) => count !== 1);
    expect(duplicates).toEqual([]);
    const { rows } = await db.pool.query(`select count(*)::int as live, (select count(*)::int from mp.dead_jobs where queue = $1) as dead from mp.jobs where queue = $1`, [name]);
    expect(rows[0]).toEqual({ live: 0, dead: 0 });
  });

  it('a worker whose connection is killed mid-job has its jobs redelivered after the lease, not before', async () => {
    const name = 'killed';
    await db.pool.query(`select mp.queue_create($1)`, [name]);
    await db.pool.query(`select mp.enqueue_batch($1, '[1,2,3,4,5]')`, [name]);
    const doomed = await db.connect();
    const claimed = await doomed.query<{ id: string; lease_until: Date }>(`select id, lease_until from mp.claim($1, 'doomed', 5, 2)`, [name]);
    expect(claimed.rows).toHaveLength(5);
    const leaseUntil = claimed.rows[0]!.lease_until;
    const { rows: pidRows } = await doomed.query<{ pid: number }>(`select pg_backend_pid() as pid`);
    await db.pool.query(`select pg_terminate_backend($1)`, [pidRows[0]!.pid]);

    const rescuer = await db.connect();
    let redelivered: Array<{ id: string; attempt: number }> = [];
    await waitFor(
      'redelivery',
      async () => {
        const { rows } = await rescuer.query<{ id: string; attempt: number; claimed_at: Date }>(
          `select id, attempt, now() as claimed_at from mp.claim($1, 'rescuer', 10, 30)`,
          [name],
        );
        const now = (await rescuer.query<{ now: Date }>(`select now()`)).rows[0]!.now;
        if (rows.length === 0) {
          expect(now.getTime()).toBeLessThan(leaseUntil.getTime() + 1000);
          return false;
        }
        // Not before the lease: every claim that returned jobs ran at or after the lease expiry.
        expect(rows[0]!.claimed_at.getTime()).toBeGreaterThanOrEqual(leaseUntil.getTime());
        redelivered = rows;
        return true;
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    expect(redelivered.map((r) => r.id).sort()).toEqual(claimed.rows.map((r) => r.id).sort());
    expect(redelivered.every((r) => r.attempt === 2)).toBe(true);
    const { rows: errs } = await rescuer.query(`select errors from mp.jobs where queue = $1`, [name]);
    expect(errs.every((r) => /lease expired while held by doomed/.test(JSON.stringify(r.errors)))).toBe(true);
  });

  it('dedupe keys hold under racing enqueuers and claimers: one live job per key, one id returned to all', async () => {
    const name = 'dedupe_race';
    await db.pool.query(`select mp.queue_create($1)`, [name]);
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    const clients = await Promise.all(Array.from({ length: 8 }, () => db.connect()));
    const idsByKey = new Map<string, Set<string>>();
    await Promise.all(
      clients.map(async (c) => {
        for (let round = 0; round < 30; round++) {
          for (const key of keys) {
            const { rows } = await c.query<{ id: string }>(`select mp.enqueue($1, '{}', $2) as id`, [name, JSON.stringify({ dedupe_key: key })]);
            const set = idsByKey.get(key) ?? new Set();
            set.add(rows[0]!.id);
            idsByKey.set(key, set);
          }
        }
      }),
    );
    for (const key of keys) expect(idsByKey.get(key)!.size).toBe(1);
    const { rows } = await db.pool.query(`select dedupe_key, count(*)::int n from mp.jobs where queue = $1 group by 1`, [name]);
    expect(rows).toHaveLength(10);
    expect(rows.every((r) => r.n === 1)).toBe(true);

    // Now race enqueuers against claimers that ack: a key is never held by two live jobs at once,
    // and every id an enqueuer was given was a real job that got processed.
    const acked = new Set<string>();
    let stop = false;
    const claimers = clients.slice(0, 4).map(async (c, i) => {
      while (!stop) {
        const { rows: got } = await c.query<{ id: string }>(`select id from mp.claim($1, $2, 5)`, [name, `c${i}`]);
        if (got.length) {
          await c.query(`select mp.ack($1::bigint[])`, [got.map((g) => g.id)]);
          got.forEach((g) => acked.add(g.id));
        } else await pause(2);
      }
    });
    const given = new Set<string>();
    await Promise.all(
      clients.slice(4).map(async (c) => {
        for (let round = 0; round < 40; round++) {
          for (const key of keys.slice(0, 3)) {
            const { rows: r } = await c.query<{ id: string }>(`select mp.enqueue($1, '{}', $2) as id`, [name, JSON.stringify({ dedupe_key: key })]);
            given.add(r[0]!.id);
            const { rows: live } = await c.query(`select count(*)::int n from mp.jobs where queue = $1 and dedupe_key = $2`, [name, key]);
            expect(live[0].n).toBeLessThanOrEqual(1);
          }
        }
      }),
    );
    await waitFor('claimers drain', async () => (await db.pool.query(`select count(*)::int n from mp.jobs where queue = $1`, [name])).rows[0].n === 0);
    stop = true;
    await Promise.all(claimers);
    for (const id of given) expect(acked.has(id)).toBe(true);
  });

  it('serial keys hold under racing enqueuers and claimers: one at a time per key, in enqueue order', async () => {
    const name = 'serial_race';
    await db.pool.query(`select mp.queue_create($1)`, [name]);
    const keys = ['s0', 's1', 's2', 's3', 's4'];
    const enqueuers = await Promise.all(Array.from({ length: 4 }, () => db.connect()));
    const claimers = await Promise.all(Array.from({ length: 6 }, () => db.connect()));
    const running = new Map<string, string>(); // serial key -> job id running now
    const order = new Map<string, number[]>(); // serial key -> ids in the order they started
    const seqSeen = new Map<string, number>(); // `${enqueuer}/${key}` -> last seq started
    const violations: string[] = [];
    let enqueued = 0;
    let done = 0;
    let enqueueFinished = false;

    const enqueueAll = Promise.all(
      enqueuers.map(async (c, e) => {
        for (let seq = 0; seq < 60; seq++) {
          const key = keys[(seq * 7 + e) % keys.length]!;
          await c.query(`select mp.enqueue($1, $2, $3)`, [name, JSON.stringify({ e, seq, key }), JSON.stringify({ serial_key: key })]);
          enqueued++;
          if (seq % 10 === 0) await pause(Math.random() * 5);
        }
      }),
    ).then(() => {
      enqueueFinished = true;
    });

    await Promise.all(
      claimers.map(async (c, i) => {
        while (!enqueueFinished || done < enqueued) {
          const { rows } = await c.query<{ id: string; payload: { e: number; seq: number; key: string } }>(
            `select id, payload from mp.claim($1, $2, 2)`,
            [name, `c${i}`],
          );
          if (rows.length === 0) {
            await pause(1);
            continue;
          }
          for (const job of rows) {
            const { key, e, seq } = job.payload;
            if (running.has(key)) violations.push(`${key}: ${job.id} started while ${running.get(key)} ran`);
            running.set(key, job.id);
            order.set(key, [...(order.get(key) ?? []), Number(job.id)]);
            const last = seqSeen.get(`${e}/${key}`) ?? -1;
            if (seq < last) violations.push(`${key}: enqueuer ${e} seq ${seq} ran after seq ${last}`);
            seqSeen.set(`${e}/${key}`, seq);
          }
          await pause(Math.random() * 3);
          for (const job of rows) running.delete(job.payload.key);
          await c.query(`select mp.ack($1::bigint[])`, [rows.map((r) => r.id)]);
          done += rows.length;
        }
      }),
    );
    await enqueueAll;
    expect(violations).toEqual([]);
    expect(done).toBe(240);
    for (const ids of order.values()) expect(ids).toEqual([...ids].sort((a, b) => a - b));
  });
});
