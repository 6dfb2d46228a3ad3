/**
 * Bloat: the hot tables' size (heap + indexes) and dead tuples when empty, after M jobs have been
 * enqueued and processed (workers draining while batches arrive, autovacuum running as configured),
 * and again after a plain VACUUM. A queue whose hot table keeps growing after VACUUM leaks space.
 * Plain VACUUM never shrinks a B-tree, so a contender that can compact its hot tables (MiniPaaS:
 * `mp queue compact`) is measured once more after doing so.
 */
import pg from 'pg';
import { now, sleep, waitUntil } from '../timing.ts';
import { RunLedger } from './exactly-once.ts';
import { jobPayloads, type Metrics, type QueueWorkload } from './workload.ts';

/** Jobs per enqueue call: large, so enqueueing does not dominate a 1,000,000-job run. */
const BATCH = 10_000;

interface TableState {
  bytes: number;
  deadTuples: number;
}

async function measure(url: string, tables: string[]): Promise<TableState> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ bytes: string; dead: string }>(
      `select coalesce(sum(pg_total_relation_size(t::regclass)), 0) as bytes,
              coalesce(sum(s.n_dead_tup), 0) as dead
         from unnest($1::text[]) t
         left join pg_stat_user_tables s on s.relid = t::regclass`,
      [tables],
    );
    return { bytes: Number(rows[0]!.bytes), deadTuples: Number(rows[0]!.dead) };
  } finally {
    await c.end();
  }
}

async function vacuum(url: string, tables: string[]): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (const t of tables) await c.query(`vacuum (analyze) ${t}`);
  } finally {
    await c.end();
  }
}

export const bloat: QueueWorkload = {
  id: 'bloat',
  title: 'hot table size after processed jobs',
  metrics: [
    { name: 'emptyKB', unit: 'kB', higherIsBetter: false },
    { name: 'afterKB', unit: 'kB', higherIsBetter: false },
    { name: 'deadTuples', unit: 'rows', higherIsBetter: false },
    { name: 'vacuumedKB', unit: 'kB', higherIsBetter: false, compared: true },
    { name: 'vacuumedDeadTuples', unit: 'rows', higherIsBetter: false },
    { name: 'vacuumedVsEmpty', unit: 'x', higherIsBetter: false },
    { name: 'compactedKB', unit: 'kB', higherIsBetter: false, optional: true },
    { name: 'compactedVsEmpty', unit: 'x', higherIsBetter: false, optional: true },
    { name: 'jobsPerSec', unit: 'jobs/s', higherIsBetter: true },
  ],
  big: true,
  applies: (c) => typeof c.hotTables === 'function',
  run: async (c, url, o) => {
    const tables = await c.hotTables!();
    const empty = await measure(url, tables);
    const m = o.bloatJobs;
    const ledger = new RunLedger(m);
    const t0 = now();
    const workers = await c.startWorkers((job) => ledger.record(job.i, now()));
    try {
      await c.bulkEnqueue(jobPayloads(m), BATCH);
      await waitUntil(`${c.name} to run ${m} jobs`, () => ledger.handled >= m, { timeoutMs: o.timeoutMs * 10 });
      await waitUntil(`${c.name} to complete ${m} jobs`, async () => (await c.remaining()) === 0, {
        timeoutMs: o.timeoutMs,
      });
    } finally {
      await workers.stop();
    }
    const seconds = (now() - t0) / 1000;
    ledger.assertExactlyOnce(c.name);
    // Backends report their table statistics when they exit or at most once a second while busy.
    await sleep(1500);
    const after = await measure(url, tables);
    await vacuum(url, tables);
    const vacuumed = await measure(url, tables);
    const metrics: Metrics = {
      emptyKB: empty.bytes / 1024,
      afterKB: after.bytes / 1024,
      deadTuples: after.deadTuples,
      vacuumedKB: vacuumed.bytes / 1024,
      vacuumedDeadTuples: vacuumed.deadTuples,
      vacuumedVsEmpty: vacuumed.bytes / empty.bytes,
      jobsPerSec: m / seconds,
    };
    if (c.compact) {
      await c.compact();
      const compacted = await measure(url, tables);
      metrics.compactedKB = compacted.bytes / 1024;
      metrics.compactedVsEmpty = compacted.bytes / empty.bytes;
    }
    return metrics;
  },
};
