// Hot-table compaction (sql/queues/compact.ts): mp.jobs shrinks back after a drained backlog, keeps every
// job as it was, never rewrites a big backlog, and gives up instead of queueing behind a busy table.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { compactionPlan, compactJobs, formatBytes } from '../../../sql/queues/compact.ts';
import { ConfigError } from '../../../sql/errors.ts';
import { freshDatabase, type TestDatabase } from '../../support/database.ts';

let db: TestDatabase;
/** mp.jobs heap + index bytes right after migration, before any job. */
let emptyBytes: number;

/**
 * Tests that expect a rewrite wait up to 10 s for the lock: autovacuum may be processing mp.jobs after a
 * drain, and a waiting lock request cancels it only after deadlock_timeout (1 s). The default 250 ms is
 * for production, where the next tick tries again.
 */
const PATIENT = { lockTimeoutMs: 10_000 };

async function sql<R>(text: string, values: unknown[] = []): Promise<R[]> {
  return (await db.pool.query(text, values)).rows as R[];
}

async function footprint(): Promise<{ table: number; indexes: number; total: number }> {
  const [r] = await sql<{ t: string; i: string }>(`select pg_relation_size('mp.jobs') t, pg_indexes_size('mp.jobs') i`);
  return { table: Number(r!.t), indexes: Number(r!.i), total: Number(r!.t) + Number(r!.i) };
}

async function fileNode(): Promise<string> {
  return (await sql<{ n: string }>(`select pg_relation_filenode('mp.jobs')::text n`))[0]!.n;
}

/** Enqueues `n` jobs on `queue` (1,000 per call) and claims and acks them all. */
async function enqueueAndDrain(queue: string, n: number): Promise<void> {
  await sql(`select mp.queue_create($1)`, [queue]);
  for (let i = 0; i < n; i += 1000) {
    const payloads = Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({ i: i + k, body: 'x'.repeat(40) }));
    await sql(`select count(*) from mp.enqueue_batch($1, $2)`, [queue, JSON.stringify(payloads)]);
  }
  for (;;) {
    const claimed = await sql<{ id: string }>(`select id from mp.claim($1, 'drainer', 500)`, [queue]);
    if (claimed.length === 0) break;
    await sql(`select mp.ack($1::bigint[])`, [claimed.map((c) => c.id)]);
  }
}

beforeAll(async () => {
  db = await freshDatabase({ poolSize: 8 });
  expect((await sql<{ n: number }>(`select count(*)::int n from mp.jobs`))[0]!.n).toBe(0);
  emptyBytes = (await footprint()).total;
});
afterAll(async () => {
  await db.drop();
});

describe('compactJobs', () => {
  it('after 20,000 jobs were processed, rewrites mp.jobs back to within 2x of its empty size', async () => {
    await enqueueAndDrain('bulk', 20_000);
    await sql(`vacuum mp.jobs`); // what autovacuum does: the heap goes, the indexes stay at their peak
    const bloated = await footprint();
    expect(bloated.indexes).toBeGreaterThan(10 * emptyBytes);

    const report = await compactJobs(db.pool, PATIENT);
    expect(report.action).toBe('rewritten');
    expect(report.reason).toMatch(/ for 0 live rows, over 4x /);
    expect(report.before).toEqual({ tableBytes: bloated.table, indexBytes: bloated.indexes, liveRows: 0 });
    const after = await footprint();
    expect(report.after).toEqual({ tableBytes: after.table, indexBytes: after.indexes, liveRows: 0 });
    expect(after.total).toBeLessThanOrEqual(2 * emptyBytes);
  });

  it('loses nothing: waiting, scheduled, running and dead jobs keep their ids, state, attempt and lease', async () => {
    await sql(`select mp.queue_create('mix', '{"max_attempts": 1}')`);
    const enqueue = async (payload: object, options: object = {}): Promise<string> =>
      (await sql<{ id: string }>(`select mp.enqueue('mix', $1, $2) id`, [payload, options]))[0]!.id;
    const dead = await enqueue({ n: 'dead' }, { priority: 100 });
    await sql(`select * from mp.claim('mix', 'w0', 1)`);
    expect((await sql<{ r: string }>(`select mp.fail($1, 'boom') r`, [dead]))[0]!.r).toBe('dead');
    const running = await enqueue({ n: 'running' }, { priority: 50 });
    const [claimed] = await sql<{ id: string }>(`select id from mp.claim('mix', 'w1', 1, 600)`);
    expect(claimed!.id).toBe(running);
    await enqueue({ n: 'waiting' }, { dedupe_key: 'only-once', serial_key: 's1' });
    await enqueue({ n: 'waiting2' }, { serial_key: 's1' });
    await enqueue({ n: 'scheduled' }, { delay_seconds: 3600 });

    const snapshot = async (): Promise<unknown[]> => [
      await sql(`select * from mp.jobs order by id`),
      await sql(`select * from mp.dead_jobs order by id`),
    ];
    const before = await snapshot();
    const node = await fileNode();

    const report = await compactJobs(db.pool, { ...PATIENT, force: true });
    expect(report.action).toBe('rewritten');
    expect(report.reason).toBe(`forced, with 4 live rows (${formatBytes(report.before.tableBytes + report.before.indexBytes)})`);
    expect(await fileNode()).not.toBe(node);
    expect(await snapshot()).toEqual(before);
    const [stats] = await sql(`select waiting, scheduled, running, dead from mp.queue_stats('mix')`);
    expect(stats).toEqual({ waiting: '2', scheduled: '1', running: '1', dead: '1' });

    // The rebuilt indexes work: the running job acks, the dedupe key still holds, serial order still holds.
    expect((await sql<{ n: number }>(`select mp.ack(array[$1]::bigint[]) n`, [running]))[0]!.n).toBe(1);
    const again = await enqueue({ n: 'dup' }, { dedupe_key: 'only-once' });
    expect(again).toBe((before[0] as Array<{ id: string; dedupe_key: string | null }>).find((j) => j.dedupe_key === 'only-once')!.id);
    const next = await sql<{ payload: { n: string } }>(`select payload from mp.claim('mix', 'w2', 10)`);
    expect(next.map((j) => j.payload.n)).toEqual(['waiting']);
    const fresh = await enqueue({ n: 'new' });
    expect(BigInt(fresh)).toBeGreaterThan(BigInt(again));
  });

  it('does not rewrite a table with more live rows than maxLiveRows, even forced: it vacuums', async () => {
    await sql(`select mp.queue_create('many')`);
    await sql(`select count(*) from mp.enqueue_batch('many', $1)`, [JSON.stringify(Array.from({ length: 50 }, (_, i) => ({ i })))]);
    const node = await fileNode();
    const report = await compactJobs(db.pool, { ...PATIENT, force: true, maxLiveRows: 10 });
    expect(report.action).toBe('vacuumed');
    expect(report.reason).toMatch(/^more than 10 live rows: /);
    expect(report.before.liveRows).toBe(11); // counted up to maxLiveRows + 1, never the whole backlog
    expect(await fileNode()).toBe(node);
    await sql(`select mp.purge('many')`);
  });

  it('vacuums without rewriting when the table is not bloated', async () => {
    const node = await fileNode();
    const report = await compactJobs(db.pool, PATIENT);
    expect(report).toMatchObject({ action: 'vacuumed', reason: expect.stringMatching(/ is not bloated /) });
    expect(await fileNode()).toBe(node);
  });

  it('gives up (skipped) while another transaction holds a lock on mp.jobs, and leaves nothing held', async () => {
    await sql(`select mp.queue_create('locked')`);
    const holder = await db.connect();
    await holder.query(`begin`);
    await holder.query(`select mp.enqueue('locked', '{"n": 1}')`); // ROW EXCLUSIVE on mp.jobs until commit
    // One connection, so the next query runs on the very client compactJobs used.
    const single = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      const node = await fileNode();
      const report = await compactJobs(single, { force: true, lockTimeoutMs: 100 });
      expect(report.action).toBe('skipped');
      expect(report.reason).toMatch(/^mp\.jobs is busy: its lock was not granted within 100 ms/);
      expect(report.after).toEqual(report.before);
      expect(await fileNode()).toBe(node);
      expect((await single.query(`show lock_timeout`)).rows).toEqual([{ lock_timeout: '0' }]);
      await holder.query(`commit`);
      const claimed = await single.query(`select payload from mp.claim('locked', 'w', 1)`);
      expect(claimed.rows).toEqual([{ payload: { n: 1 } }]);
      const held = await sql(`select pid, mode from pg_locks where relation = 'mp.jobs'::regclass and pid <> pg_backend_pid()`);
      expect(held).toEqual([]);
    } finally {
      await single.end();
    }
  });

  it('workers claiming and acking while compactions run: every job is handled exactly once', async () => {
    const n = 4000;
    await sql(`select mp.queue_create('busy')`);
    for (let i = 0; i < n; i += 1000) {
      await sql(`select count(*) from mp.enqueue_batch('busy', $1)`, [
        JSON.stringify(Array.from({ length: 1000 }, (_, k) => ({ i: i + k }))),
      ]);
    }
    const seen = new Map<number, number>();
    let draining = true;
    const worker = async (name: string): Promise<void> => {
      for (;;) {
        const rows = await sql<{ id: string; payload: { i: number } }>(`select id, payload from mp.claim('busy', $1, 50)`, [name]);
        if (rows.length === 0) return;
        for (const r of rows) seen.set(r.payload.i, (seen.get(r.payload.i) ?? 0) + 1);
        await sql(`select mp.ack($1::bigint[])`, [rows.map((r) => r.id)]);
      }
    };
    // Rewrites (or skips, when the lock does not come within 50 ms) in a loop while the workers run, and
    // until at least one rewrite has happened.
    const actions: string[] = [];
    const compactor = (async () => {
      while (draining || !actions.includes('rewritten')) {
        actions.push((await compactJobs(db.pool, { force: true, maxLiveRows: 2 * n, lockTimeoutMs: 50 })).action);
      }
    })();
    await Promise.all(['w1', 'w2', 'w3', 'w4'].map(worker));
    draining = false;
    await compactor;
    expect(seen.size).toBe(n);
    expect([...seen.values()].every((c) => c === 1)).toBe(true);
    expect(actions).toContain('rewritten');
    expect((await sql<{ n: number }>(`select count(*)::int n from mp.jobs where queue = 'busy'`))[0]!.n).toBe(0);
  });

  it('refuses nonsense options before connecting', async () => {
    await expect(compactJobs(db.pool, { maxLiveRows: -1 })).rejects.toBeInstanceOf(ConfigError);
    await expect(compactJobs(db.pool, { lockTimeoutMs: 0 })).rejects.toThrow(/lockTimeoutMs must be an integer >= 1, got 0/);
  });
});

describe('compactionPlan', () => {
  const MB = 1024 * 1024;
  const plan = (tableBytes: number, indexBytes: number, liveRows: number, force = false) =>
    compactionPlan({ tableBytes, indexBytes, liveRows }, { force, maxLiveRows: 10_000 });

  it('rewrites over 1 MB and over 4x the live rows’ ~1 kB each', () => {
    expect(plan(0, 54 * MB, 0)).toEqual({ rewrite: true, reason: '54.0 MB for 0 live rows, over 4x the ~0 kB they need' });
    expect(plan(2 * MB, 2 * MB, 1000).rewrite).toBe(true); // 4 MB > 4 x 1000 kB
    expect(plan(2 * MB, 2 * MB, 1024).rewrite).toBe(false); // 4 MB = 4 x 1024 kB
    expect(plan(0, MB, 0).rewrite).toBe(false); // 1 MB: too little to win
  });

  it('force skips the ratio but never the live-row cap', () => {
    expect(plan(0, 40 * 1024, 3, true)).toEqual({ rewrite: true, reason: 'forced, with 3 live rows (40 kB)' });
    expect(plan(0, 500 * MB, 10_001, true).rewrite).toBe(false);
  });
});
