/**
 * The correctness heart of streams: a reader following `mp.read` from its last pos never skips an event
 * that commits late, never sees a rolled-back one, and positions are dense.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { freshDatabase, type TestDatabase } from '../../support/database.ts';
import { waitFor } from '../../support/wait.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db.drop();
});

interface ReadRow {
  pos: string;
  payload: string;
}

async function readAfter(stream: string, after: number, max = 1000): Promise<ReadRow[]> {
  const { rows } = await db.pool.query<ReadRow>(`select pos, payload from mp.read($1, $2, $3)`, [stream, after, max]);
  return rows;
}

async function publish(c: pg.Client, stream: string, payload: string): Promise<number> {
  const { rows } = await c.query<{ pos: string }>(`select mp.publish($1, to_jsonb($2::text)) as pos`, [stream, payload]);
  return Number(rows[0]!.pos);
}

/** True once `pid` waits on a lock, i.e. the statement we started on it is blocked. */
async function isWaitingOnLock(pid: number): Promise<boolean> {
  const { rows } = await db.pool.query<{ w: string | null }>(
    `select wait_event_type as w from pg_stat_activity where pid = $1`,
    [pid],
  );
  return rows[0]?.w === 'Lock';
}

async function backendPid(c: pg.Client): Promise<number> {
  const { rows } = await c.query<{ pid: number }>(`select pg_backend_pid() as pid`);
  return rows[0]!.pid;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('mp.read never skips a late-committing event', () => {
  it('scripted interleaving: T2 publishes while T1 is open, T1 commits last; the reader sees each event once, in order', async () => {
    await db.pool.query(`select mp.stream_create('interleave')`);
    await db.pool.query(`select mp.publish('interleave', '"e0"')`);
    const t1 = await db.connect();
    const t2 = await db.connect();
    const seen: ReadRow[] = [];
    let last = 0;
    const follow = async (): Promise<ReadRow[]> => {
      const rows = await readAfter('interleave', last);
      seen.push(...rows);
      if (rows.length > 0) last = Number(rows[rows.length - 1]!.pos);
      return rows;
    };

    await t1.query('begin');
    expect(await publish(t1, 'interleave', 'e1')).toBe(2);

    await t2.query('begin');
    const t2Pid = await backendPid(t2);
    const t2Publish = publish(t2, 'interleave', 'e2');
    // T2 must wait for T1's writer lock rather than take a pos and commit ahead of it.
    await waitFor('T2 blocked on the stream writer lock', () => isWaitingOnLock(t2Pid));

    expect((await follow()).map((r) => r.payload)).toEqual(['e0']);

    await t1.query('commit');
    expect(await t2Publish).toBe(3);
    expect((await follow()).map((r) => r.payload)).toEqual(['e1']);

    await t2.query('commit');
    expect((await follow()).map((r) => r.payload)).toEqual(['e2']);
    expect(await follow()).toEqual([]);

    expect(seen.map((r) => [Number(r.pos), r.payload])).toEqual([
      [1, 'e0'],
      [2, 'e1'],
      [3, 'e2'],
    ]);
  });

  it('a rolled-back publish leaves no gap: the next publish reuses its pos', async () => {
    await db.pool.query(`select mp.stream_create('rollback')`);
    const c = await db.connect();
    await c.query('begin');
    expect(await publish(c, 'rollback', 'gone')).toBe(1);
    await c.query('rollback');
    expect(await publish(c, 'rollback', 'kept')).toBe(1);
    expect((await readAfter('rollback', 0)).map((r) => r.payload)).toEqual(['kept']);
  });

  it('a publisher waiting on a stream_drop fails with MP005 once the drop commits, leaving no orphan events', async () => {
    await db.pool.query(`select mp.stream_create('dropped')`);
    const dropper = await db.connect();
    const pub = await db.connect();
    await dropper.query('begin');
    await dropper.query(`select mp.stream_drop('dropped')`);
    const pubPid = await backendPid(pub);
    const publishing = publish(pub, 'dropped', 'late').catch((e: unknown) => e);
    await waitFor('publisher blocked on the dropped stream row', () => isWaitingOnLock(pubPid));
    await dropper.query('commit');
    expect(await publishing).toMatchObject({ code: 'MP005' });
    const { rows } = await db.pool.query<{ n: string }>(
      `select count(*) as n from mp.stream_events e where not exists (select 1 from mp.streams s where s.id = e.stream_id)`,
    );
    expect(rows[0]!.n).toBe('0');
  });

  it('stress: 8 publishers committing out of order with rollbacks, one follower: every committed event exactly once, dense, in order', async () => {
    const stream = 'stress';
    await db.pool.query(`select mp.stream_create($1)`, [stream]);
    const publishers = 8;
    const txPerPublisher = 40;
    const committed = new Set<string>();
    const rolledBack = new Set<string>();
    let publishersDone = false;

    const publisher = async (p: number): Promise<void> => {
      const c = await db.connect();
      for (let t = 0; t < txPerPublisher; t++) {
        await sleep(Math.random() * 5);
        const ids = Array.from({ length: 1 + Math.floor(Math.random() * 3) }, (_, i) => `p${p}-t${t}-e${i}`);
        await c.query('begin');
        if (Math.random() < 0.5) {
          for (const id of ids) await publish(c, stream, id);
        } else {
          await c.query(`select mp.publish_batch($1, $2::jsonb)`, [stream, JSON.stringify(ids)]);
        }
        // The delay before commit is what would make a naive `id > last` reader skip events.
        await sleep(Math.random() * 20);
        if (Math.random() < 0.2) {
          await c.query('rollback');
          for (const id of ids) rolledBack.add(id);
        } else {
          await c.query('commit');
          for (const id of ids) committed.add(id);
        }
      }
    };

    const seen: Array<{ pos: number; payload: string }> = [];
    const follower = async (): Promise<void> => {
      let last = 0;
      for (;;) {
        // Read the flag before reading: a read that starts after every publisher finished must be complete.
        const finalRound = publishersDone;
        const rows = await readAfter(stream, last, 50);
        for (const r of rows) seen.push({ pos: Number(r.pos), payload: r.payload });
        if (rows.length > 0) last = Number(rows[rows.length - 1]!.pos);
        if (finalRound && rows.length === 0) return;
        if (rows.length === 0) await sleep(1);
      }
    };

    const followerDone = follower();
    await Promise.all(Array.from({ length: publishers }, (_, p) => publisher(p)));
    publishersDone = true;
    await followerDone;

    expect(committed.size).toBeGreaterThan(publishers * txPerPublisher);
    expect(rolledBack.size).toBeGreaterThan(0);
    // Strictly increasing and dense: pos k is the k-th event seen.
    seen.forEach((e, i) => expect(e.pos).toBe(i + 1));
    const payloads = seen.map((e) => e.payload);
    expect(new Set(payloads).size).toBe(payloads.length);
    expect(new Set(payloads)).toEqual(committed);
    expect(payloads.filter((p) => rolledBack.has(p))).toEqual([]);
    const { rows } = await db.pool.query<{ last_pos: string; events: string }>(
      `select last_pos, events from mp.stream_stats($1)`,
      [stream],
    );
    expect(Number(rows[0]!.last_pos)).toBe(committed.size);
    expect(Number(rows[0]!.events)).toBe(committed.size);
  });
});
