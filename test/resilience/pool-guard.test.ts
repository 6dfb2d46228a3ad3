// In-process checks of the pool guard and of stop() with the database away: a bare pg.Pool given to a
// Queue survives its idle and checked-out clients being terminated, the pool's errors reach onError,
// and Worker.stop() and Subscription.stop() end in bounded time while every connection is refused.
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Queue } from '../../sql/queues/queue.ts';
import { Stream } from '../../sql/streams/stream.ts';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';
import { waitFor } from '../support/wait.ts';

let db: PrivatePostgres;

beforeAll(async () => {
  db = await startPrivatePostgres();
});

afterAll(async () => {
  await db?.stop();
});

async function terminateOthers(): Promise<number> {
  const { rows } = await db.pool.query<{ n: string }>(
    `select count(*) filter (where pg_terminate_backend(pid)) as n from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'
        and application_name <> 'test-admin'`,
  );
  return Number(rows[0]!.n);
}

it('a bare pool survives its idle and checked-out clients being terminated, and reports through onError', async () => {
  await db.pool.query(`set application_name = 'test-admin'`);
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  const queue = new Queue({ pool, name: 'guarded' });
  await queue.create();
  const errors: unknown[] = [];
  const worker = queue.work(async () => {}, { onError: (err) => errors.push(err), pollIntervalMs: 200 });
  // Idle clients in the pool, and one checked out between queries (as compactJobs holds one).
  await Promise.all([pool.query('select pg_sleep(0.05)'), pool.query('select pg_sleep(0.05)')]);
  const held = await pool.connect();
  await held.query('select 1');
  expect(await terminateOthers()).toBeGreaterThan(0);
  // Had any 'error' gone unheard, this test process would have crashed with an uncaught exception.
  await waitFor('the pool error to reach onError', () => errors.some((e) => /terminating connection/.test(String(e))), { timeoutMs: 5_000 });
  await expect(held.query('select 1')).rejects.toThrow();
  held.release(true);
  // The LISTEN session was terminated too: it comes back by itself.
  await waitFor(
    'the worker to LISTEN again',
    async () => (await db.pool.query(`select 1 from pg_stat_activity where application_name = 'mp queue guarded listener'`)).rowCount === 1,
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  await queue.enqueue({ after: 'restart' });
  await waitFor('the worker to go on claiming', async () => (await queue.stats()).waiting === 0, { timeoutMs: 10_000, intervalMs: 50 });
  await worker.stop();
  await pool.end();
});

it('Worker.stop() and Subscription.stop() end in bounded time while the database refuses every connection', async () => {
  const proxy = await startTcpProxy(Number(new URL(db.url).port));
  const pool = new pg.Pool({ connectionString: proxy.rewrite(db.url), max: 4 });
  try {
    const queue = new Queue({ pool, name: 'stoppable' });
    await queue.create();
    const worker = queue.work(async () => {}, { pollIntervalMs: 200 });
    const stream = new Stream({ pool, name: 'stoppable' });
    await stream.create();
    const sub = await stream.subscribe('g', async () => {}, { pollIntervalMs: 200 });
    await waitFor('both to be listening', () => proxy.open >= 2, { timeoutMs: 5_000 });
    const cut = proxy.cut(4_000);
    const started = Date.now();
    await Promise.all([worker.stop(), sub.stop()]);
    const tookMs = Date.now() - started;
    console.log(`stop() with the database refusing connections took ${tookMs} ms`);
    expect(tookMs).toBeLessThan(3_000);
    await cut;
  } finally {
    await pool.end();
    await proxy.close();
  }
});
