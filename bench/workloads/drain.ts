/**
 * Drain throughput: N no-op jobs are enqueued (untimed) and analyzed, then the contender's workers
 * claim and complete them all. Timed from the first handler call (so pool and listener start-up do
 * not count) until the database shows no job left; every job must have run exactly once.
 */
import pg from 'pg';
import { now, waitUntil } from '../timing.ts';
import { RunLedger } from './exactly-once.ts';
import { jobPayloads, THROUGHPUT, type QueueWorkload } from './workload.ts';

/** Fresh statistics for every contender alike, as autoanalyze would give a long-lived table. */
export async function analyze(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('analyze');
  } finally {
    await c.end();
  }
}

export const drain: QueueWorkload = {
  id: 'drain',
  title: 'drain (claim + complete)',
  metrics: THROUGHPUT,
  big: false,
  applies: () => true,
  run: async (c, url, o) => {
    await c.bulkEnqueue(jobPayloads(o.n), o.bulkBatch);
    await analyze(url);
    const ledger = new RunLedger(o.n);
    const workers = await c.startWorkers((job) => ledger.record(job.i, now()));
    let end: number;
    try {
      await waitUntil(`${c.name} to run ${o.n} jobs`, () => ledger.handled >= o.n, { timeoutMs: o.timeoutMs });
      await waitUntil(`${c.name} to complete ${o.n} jobs`, async () => (await c.remaining()) === 0, {
        timeoutMs: o.timeoutMs,
        intervalMs: 1,
      });
      end = now();
    } finally {
      await workers.stop();
    }
    ledger.assertExactlyOnce(c.name);
    return { jobsPerSec: o.n / ((end - ledger.firstAt) / 1000) };
  },
};
