/** Streams basics: publish/read order and `after` semantics, keys, batches, retention, drop, stats. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDatabase } from '../../support/database.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db.drop();
});

interface EventRow {
  pos: string;
  payload: unknown;
  key: string | null;
  created_at: Date;
}

async function read(stream: string, after: number, max = 1000): Promise<EventRow[]> {
  return (await db.pool.query<EventRow>(`select * from mp.read($1, $2, $3)`, [stream, after, max])).rows;
}

async function publishN(stream: string, n: number): Promise<void> {
  await db.pool.query(`select mp.publish_batch($1, (select jsonb_agg(i) from generate_series(1, $2) i))`, [stream, n]);
}

async function count(stream: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: string }>(
    `select count(*) as n from mp.stream_events e join mp.streams s on s.id = e.stream_id where s.name = $1`,
    [stream],
  );
  return Number(rows[0]!.n);
}

describe('streams basics', () => {
  it('publish returns dense positions; read returns events after `after`, in pos order, up to max', async () => {
    await db.pool.query(`select mp.stream_create('orders')`);
    const positions: string[] = [];
    for (const p of [{ id: 1 }, { id: 2 }, { id: 3 }]) {
      const { rows } = await db.pool.query<{ pos: string }>(`select mp.publish('orders', $1) as pos`, [p]);
      positions.push(rows[0]!.pos);
    }
    expect(positions).toEqual(['1', '2', '3']);
    expect((await read('orders', 0)).map((e) => e.payload)).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
    expect((await read('orders', 1)).map((e) => e.pos)).toEqual(['2', '3']);
    expect((await read('orders', 0, 2)).map((e) => e.pos)).toEqual(['1', '2']);
    expect(await read('orders', 3)).toEqual([]);
    expect(await read('orders', 99)).toEqual([]);
    const [first] = await read('orders', 0, 1);
    expect(first!.created_at).toBeInstanceOf(Date);
  });

  it('stores the key', async () => {
    await db.pool.query(`select mp.stream_create('keyed')`);
    await db.pool.query(`select mp.publish('keyed', '{"a":1}', 'customer-7')`);
    await db.pool.query(`select mp.publish('keyed', '{"a":2}')`);
    expect((await read('keyed', 0)).map((e) => e.key)).toEqual(['customer-7', null]);
  });

  it('publish_batch inserts every element in order with one pos each and the shared key', async () => {
    await db.pool.query(`select mp.stream_create('batch')`);
    await db.pool.query(`select mp.publish('batch', '"first"')`);
    const { rows } = await db.pool.query<{ pos: string }>(
      `select pos from mp.publish_batch('batch', '["a", "b", {"c": 3}]', 'k') as pos`,
    );
    expect(rows.map((r) => r.pos)).toEqual(['2', '3', '4']);
    const events = await read('batch', 1);
    expect(events.map((e) => [e.payload, e.key])).toEqual([
      ['a', 'k'],
      ['b', 'k'],
      [{ c: 3 }, 'k'],
    ]);
    const empty = await db.pool.query(`select * from mp.publish_batch('batch', '[]')`);
    expect(empty.rows).toEqual([]);
  });

  it('retention_count keeps the newest N: exactly with stream_trim, and on its own every 1000 publishes', async () => {
    await db.pool.query(`select mp.stream_create('bycount', '{"retention_count": 10}')`);
    await publishN('bycount', 25);
    const { rows } = await db.pool.query<{ deleted: string }>(`select mp.stream_trim('bycount') as deleted`);
    expect(rows[0]!.deleted).toBe('15');
    expect((await read('bycount', 0)).map((e) => Number(e.pos))).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
    // A reader whose `after` was trimmed just continues from the first kept event.
    expect(Number((await read('bycount', 3, 1))[0]!.pos)).toBe(16);

    // Crossing a multiple of 1000 trims inside publish, with no stream_trim call.
    await publishN('bycount', 1000);
    expect(await count('bycount')).toBe(10);
  });

  it('retention_seconds drops events older than the limit', async () => {
    await db.pool.query(`select mp.stream_create('byage', '{"retention_seconds": 3600}')`);
    await publishN('byage', 5);
    await db.pool.query(
      `update mp.stream_events set created_at = created_at - interval '2 hours'
        where stream_id = (select id from mp.streams where name = 'byage') and pos <= 3`,
    );
    expect((await db.pool.query(`select mp.stream_trim('byage') as d`)).rows[0].d).toBe('3');
    expect((await read('byage', 0)).map((e) => Number(e.pos))).toEqual([4, 5]);
    // The internal trim takes the clock as an argument: three hours on, nothing is young enough.
    const { rows } = await db.pool.query<{ d: string }>(
      `select mp._stream_trim((select id from mp.streams where name = 'byage'), now() + interval '3 hours') as d`,
    );
    expect(rows[0]!.d).toBe('2');
    expect(await read('byage', 0)).toEqual([]);
    // Positions continue after a full trim.
    expect((await db.pool.query(`select mp.publish('byage', '1') as p`)).rows[0].p).toBe('6');
  });

  it('stream_create is idempotent with equal options and raises MP007 with different ones', async () => {
    await db.pool.query(`select mp.stream_create('idem', '{"retention_count": 5}')`);
    await db.pool.query(`select mp.stream_create('idem', '{"retention_count": 5}')`);
    const err = await db.pool.query(`select mp.stream_create('idem', '{"retention_count": 6}')`).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MP007', message: expect.stringMatching(/stream "idem" already exists/) });
  });

  it('stream_stats and group_stats report counts, positions, retention and lag', async () => {
    await db.pool.query(`select mp.stream_create('stats', '{"retention_count": 3}')`);
    await publishN('stats', 5);
    await db.pool.query(`select mp.stream_trim('stats')`);
    await db.pool.query(`select mp.group_create('stats', 'g')`);
    await db.pool.query(`select * from mp.poll('stats', 'g', 'm1', 2)`);
    const s = (await db.pool.query(`select * from mp.stream_stats('stats')`)).rows[0];
    expect(s).toMatchObject({ name: 'stats', events: '3', first_pos: '3', last_pos: '5', retention: { retention_count: 3 } });
    const g = (await db.pool.query(`select * from mp.group_stats('stats')`)).rows[0];
    expect(g).toMatchObject({ stream: 'stats', grp: 'g', committed: '2', next_pos: '5', lag: '3', members: ['m1'] });
    expect(g.oldest_lease_until).toBeInstanceOf(Date);
    const all = (await db.pool.query<{ name: string }>(`select name from mp.stream_stats()`)).rows.map((r) => r.name);
    expect(all).toContain('stats');
    expect(all).toContain('orders');
  });

  it('stream_drop removes the stream, its events, groups and leases', async () => {
    await db.pool.query(`select mp.stream_create('doomed')`);
    await publishN('doomed', 3);
    await db.pool.query(`select mp.group_create('doomed', 'g')`);
    await db.pool.query(`select * from mp.poll('doomed', 'g', 'm', 2)`);
    const sid = (await db.pool.query<{ id: number }>(`select id from mp.streams where name = 'doomed'`)).rows[0]!.id;
    await db.pool.query(`select mp.stream_drop('doomed')`);
    for (const table of ['stream_events', 'stream_groups', 'stream_leases']) {
      const { rows } = await db.pool.query<{ n: string }>(`select count(*) as n from mp.${table} where stream_id = $1`, [sid]);
      expect(rows[0]!.n, table).toBe('0');
    }
    const err = await db.pool.query(`select * from mp.read('doomed', 0, 1)`).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MP005' });
  });
});
