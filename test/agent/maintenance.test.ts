// The agent's hot-table maintenance: ticks on a fake clock (never overlapping, errors logged, stop waits
// for a running tick and cancels the next), and a real agent shrinking mp.jobs after a drain. No Docker.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import { startAgent } from '../../agent/agent.ts';
import type { Json, Logger } from '../../agent/executors/index.ts';
import { startMaintenance } from '../../agent/maintenance.ts';
import { ConflictError } from '../../sql/errors.ts';
import type { CompactReport } from '../../sql/queues/compact.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { waitFor } from '../support/wait.ts';

interface LogLine {
  level: string;
  message: string;
  data?: Record<string, Json | undefined>;
}

function recordingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (message: string, data?: Record<string, Json | undefined>) => void lines.push({ level, message, data });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

const footprint = { tableBytes: 0, indexBytes: 32 * 1024, liveRows: 0 };
const report = (action: CompactReport['action']): CompactReport => ({ action, reason: 'r', before: footprint, after: footprint });

/** A promise with its resolver, to hold a tick open. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('startMaintenance (fake clock)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('ticks once per interval, never overlapping a tick still running, and logs a rewrite at info', async () => {
    vi.useFakeTimers();
    const log = recordingLogger();
    const gate = deferred();
    let calls = 0;
    const m = startMaintenance({
      intervalMs: 1000,
      log,
      compact: async () => {
        calls++;
        if (calls === 1) await gate.promise;
        return report(calls === 1 ? 'rewritten' : 'vacuumed');
      },
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(5000); // the first tick is still running: no second one
    expect(calls).toBe(1);
    gate.resolve();
    await vi.advanceTimersByTimeAsync(0);
    expect(log.lines).toEqual([{ level: 'info', message: 'compacted mp.jobs', data: expect.objectContaining({ action: 'rewritten', before: '32 kB' }) }]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toBe(2);
    expect(log.lines[1]).toMatchObject({ level: 'debug', data: { action: 'vacuumed' } });
    await m.stop();
  });

  it('a failed tick is logged and the next one runs; a role without permission is said once, then no more ticks', async () => {
    vi.useFakeTimers();
    const log = recordingLogger();
    const outcomes: Array<() => Promise<CompactReport>> = [
      async () => {
        throw new Error('connection reset');
      },
      async () => report('vacuumed'),
      async () => {
        throw new ConflictError('COMPACT_NOT_PERMITTED', 'role x may not vacuum mp.jobs, so it cannot compact it', 'run it as y');
      },
    ];
    let calls = 0;
    const m = startMaintenance({ intervalMs: 100, log, compact: () => outcomes[calls++]!() });
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toBe(3);
    expect(log.lines.map((l) => [l.level, l.message])).toEqual([
      ['warn', 'mp.jobs maintenance failed; trying again next interval'],
      ['debug', 'mp.jobs maintenance'],
      ['warn', 'mp.jobs maintenance is off on this agent'],
    ]);
    expect(log.lines[2]!.data).toEqual({ error: 'role x may not vacuum mp.jobs, so it cannot compact it', hint: 'run it as y' });
    await m.stop();
  });

  it('stop() waits for the running tick, and no tick follows it', async () => {
    vi.useFakeTimers();
    const gate = deferred();
    let calls = 0;
    let finished = false;
    const m = startMaintenance({
      intervalMs: 100,
      log: recordingLogger(),
      compact: async () => {
        calls++;
        await gate.promise;
        finished = true;
        return report('vacuumed');
      },
    });
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toBe(1);
    let stopped = false;
    const stopping = m.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(stopped).toBe(false);
    gate.resolve();
    await stopping;
    expect(finished).toBe(true);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stop() before the first tick cancels it; interval 0 never ticks', async () => {
    vi.useFakeTimers();
    let calls = 0;
    const compact = async (): Promise<CompactReport> => {
      calls++;
      return report('vacuumed');
    };
    const m = startMaintenance({ intervalMs: 100, log: recordingLogger(), compact });
    await m.stop();
    const off = startMaintenance({ intervalMs: 0, log: recordingLogger(), compact });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    await off.stop();
  });
});

describe('the agent compacts mp.jobs', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await freshDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  it('after a drained backlog its maintenance tick shrinks the indexes back to their empty size', async () => {
    const indexBytes = async (): Promise<number> =>
      Number((await db.pool.query<{ b: string }>(`select pg_indexes_size('mp.jobs') b`)).rows[0]!.b);
    const empty = await indexBytes();
    await db.pool.query(`select mp.queue_create('app')`);
    for (let i = 0; i < 20; i++) {
      await db.pool.query(`select count(*) from mp.enqueue_batch('app', $1)`, [JSON.stringify(Array.from({ length: 1000 }, (_, k) => ({ k })))]);
    }
    for (;;) {
      const { rows } = await db.pool.query<{ id: string }>(`select id from mp.claim('app', 'w', 1000)`);
      if (rows.length === 0) break;
      await db.pool.query(`select mp.ack($1::bigint[])`, [rows.map((r) => r.id)]);
    }
    expect(await indexBytes()).toBeGreaterThan(10 * empty);

    const pool = new pg.Pool({ connectionString: db.url, max: 6 });
    const log = recordingLogger();
    const agent = await startAgent({ pool, docker: null, name: 'maint-a', log, maintenanceIntervalMs: 50, pollIntervalMs: 500, heartbeatMs: 1000 });
    try {
      // A tick may be skipped while autovacuum holds the table; a later one rewrites it.
      await waitFor('the agent to compact mp.jobs', async () => (await indexBytes()) <= 2 * empty, { timeoutMs: 30_000, intervalMs: 50 });
      await waitFor('the rewrite to be logged', () => log.lines.find((l) => l.message === 'compacted mp.jobs'));
      expect(log.lines.find((l) => l.message === 'compacted mp.jobs')!.data).toMatchObject({ action: 'rewritten', liveRows: 0 });
    } finally {
      await agent.stop();
      await pool.end();
    }
    expect(log.lines.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
  });
});
