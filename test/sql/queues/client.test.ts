// The typed client apps import: Queue.enqueue/enqueueMany and Queue.work.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Queue } from '../../../sql/queues/queue.ts';
import { ConfigError, NotFoundError } from '../../../sql/errors.ts';
import { freshDatabase, type TestDatabase } from '../../support/database.ts';
import { waitFor } from '../../support/wait.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => db.drop());

async function openConnections(): Promise<number> {
  const { rows } = await db.pool.query(`select count(*)::int n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`);
  return rows[0].n;
}

describe('Queue client', () => {
  it('wakes an idle worker on enqueue through LISTEN, without waiting for the poll', async () => {
    const q = new Queue<{ msg: string }>({ pool: db.pool, name: 'wake' });
    await q.create();
    const got: string[] = [];
    // A one-minute poll: only NOTIFY can deliver within the test's deadline.
    const worker = q.work(async (job) => void got.push(job.payload.msg), { pollIntervalMs: 60_000 });
    await waitFor('listener up', async () => (await db.pool.query(`select count(*)::int n from pg_stat_activity where datname = current_database() and query ilike 'listen%'`)).rows[0].n > 0);
    await q.enqueue({ msg: 'hello' });
    await waitFor('job handled', () => got.length === 1, { timeoutMs: 5_000 });
    await worker.stop();
    expect(got).toEqual(['hello']);
    expect((await q.stats()).running + (await q.stats()).waiting).toBe(0);
  });

  it('retries a job whose handler throws, then succeeds', async () => {
    const q = new Queue<{ n: number }>({ pool: db.pool, name: 'flaky' });
    await q.create({ maxAttempts: 5 });
    const attempts: number[] = [];
    const worker = q.work(
      async (job) => {
        attempts.push(job.attempt);
        if (job.attempt < 3) throw new Error(`try ${job.attempt} failed`);
      },
      { pollIntervalMs: 50 },
    );
    const id = await q.enqueue({ n: 1 });
    // Backoff is 2^attempt seconds; pull the retry forward so the test stays short.
    await waitFor('first failure', () => attempts.length === 1);
    await waitFor('retry scheduled', async () => (await db.pool.query(`update mp.jobs set run_at = now() where id = $1 and locked_by is null returning id`, [id])).rowCount === 1);
    await waitFor('second failure', () => attempts.length === 2);
    await waitFor('retry scheduled', async () => (await db.pool.query(`update mp.jobs set run_at = now() where id = $1 and locked_by is null returning id`, [id])).rowCount === 1);
    await waitFor('success', async () => attempts.length === 3 && (await q.stats()).running === 0);
    await worker.stop();
    expect(attempts).toEqual([1, 2, 3]);
    const { rows } = await db.pool.query(`select count(*)::int n from mp.jobs where id = $1`, [id]);
    expect(rows[0].n).toBe(0);
  });

  it('extends the lease of a handler that runs longer than the lease, so no other worker takes the job', async () => {
    const q = new Queue<object>({ pool: db.pool, name: 'long' });
    await q.create({ leaseSeconds: 1 });
    const runs: string[] = [];
    const slow = q.work(
      async () => {
        runs.push('slow');
        await new Promise((r) => setTimeout(r, 3_000));
      },
      { workerId: 'slow', pollIntervalMs: 100 },
    );
    await q.enqueue({});
    await waitFor('slow started', () => runs.length === 1);
    const rival = q.work(async () => void runs.push('rival'), { workerId: 'rival', pollIntervalMs: 100 });
    await waitFor('job done', async () => (await q.stats()).running + (await q.stats()).waiting === 0, { timeoutMs: 10_000 });
    await Promise.all([slow.stop(), rival.stop()]);
    expect(runs).toEqual(['slow']);
  });

  it('stops gracefully: finishes running handlers, releases those past the timeout, closes its connections', async () => {
    const q = new Queue<{ n: number }>({ pool: db.pool, name: 'shutdown' });
    await q.create();
    await q.enqueueMany([{ n: 1 }, { n: 2 }]);
    const finished: number[] = [];
    let releaseStuck: () => void = () => {};
    const stuck = new Promise<void>((r) => (releaseStuck = r));
    const before = await openConnections();
    const worker = q.work(
      async (job) => {
        if (job.payload.n === 2) await stuck;
        else await new Promise((r) => setTimeout(r, 200));
        finished.push(job.payload.n);
      },
      { concurrency: 2, shutdownTimeoutMs: 1_000 },
    );
    await waitFor('both running', () => worker.running === 2);
    await worker.stop();
    expect(finished).toEqual([1]);
    const s = await q.stats();
    expect(s).toMatchObject({ waiting: 1, running: 0 });
    const { rows } = await db.pool.query(`select attempt from mp.jobs where queue = 'shutdown'`);
    expect(rows).toEqual([{ attempt: 0 }]);
    releaseStuck();
    await waitFor('listener closed', async () => (await openConnections()) <= before);
  });

  it('validates payloads with a zod schema on enqueue and names the field', async () => {
    const q = new Queue({ pool: db.pool, name: 'typed', schema: z.object({ to: z.string().email() }) });
    await q.create();
    const err = await q.enqueue({ to: 'not-an-email' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/invalid payload for queue "typed": to:/);
    expect((await q.stats()).waiting).toBe(0);
  });

  it('maps an unknown queue to NotFoundError with a hint', async () => {
    const q = new Queue({ pool: db.pool, name: 'missing' });
    const err = await q.enqueue({}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).hint).toMatch(/mp.queue_create\('missing'\)/);
  });
});
