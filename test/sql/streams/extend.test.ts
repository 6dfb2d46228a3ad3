/**
 * Lease extension (mp.group_extend, Stream.extendLease and the subscription's own extending): an
 * extended batch is not delivered to another member after its original lease, a lease another member
 * took over stays taken, bad input is refused, and a subscription whose handler runs longer than its
 * lease still handles each event once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { ConfigError, ConflictError } from '../../../sql/errors.ts';
import { Stream, type StreamEvent } from '../../../sql/streams/stream.ts';
import { freshDatabase, type TestDatabase } from '../../support/database.ts';
import { waitFor } from '../../support/wait.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db.drop();
});

async function poll(c: pg.Client | pg.Pool, stream: string, member: string, max: number, lease = 30): Promise<number[]> {
  const { rows } = await c.query<{ pos: string }>(`select pos from mp.poll($1, 'g', $2, $3, $4)`, [stream, member, max, lease]);
  return rows.map((r) => Number(r.pos));
}

async function extend(c: pg.Client | pg.Pool, stream: string, member: string, seconds: number, pos: number | null = null): Promise<number> {
  const { rows } = await c.query<{ n: number }>(`select mp.group_extend($1, 'g', $2, $3, $4) as n`, [stream, member, seconds, pos]);
  return rows[0]!.n;
}

interface LeaseRow {
  from_pos: string;
  to_pos: string;
  member: string;
  until: string;
}

/** The stream's leases, lease_until as text so equality is exact. */
async function leases(stream: string): Promise<LeaseRow[]> {
  const { rows } = await db.pool.query<LeaseRow>(
    `select l.from_pos, l.to_pos, l.member, l.lease_until::text as until
       from mp.stream_leases l join mp.streams s on s.id = l.stream_id
      where s.name = $1 order by l.from_pos`,
    [stream],
  );
  return rows;
}

/** A stream with group 'g' and events 1..n. */
async function streamWith(stream: string, n: number): Promise<void> {
  await db.pool.query(`select mp.stream_create($1)`, [stream]);
  await db.pool.query(`select mp.group_create($1, 'g')`, [stream]);
  await db.pool.query(`select mp.publish_batch($1, (select jsonb_agg(i) from generate_series(1, $2) i))`, [stream, n]);
}

async function expireLeases(stream: string): Promise<void> {
  await db.pool.query(
    `update mp.stream_leases set lease_until = now() - interval '1 second'
      where stream_id = (select id from mp.streams where name = $1)`,
    [stream],
  );
}

async function isWaitingOnLock(pid: number): Promise<boolean> {
  const { rows } = await db.pool.query<{ w: string | null }>(`select wait_event_type as w from pg_stat_activity where pid = $1`, [pid]);
  return rows[0]?.w === 'Lock';
}

async function backendPid(c: pg.Client): Promise<number> {
  const { rows } = await c.query<{ pid: number }>(`select pg_backend_pid() as pid`);
  return rows[0]!.pid;
}

describe('mp.group_extend', () => {
  it('keeps an extended batch from another member after its original lease has passed', async () => {
    await streamWith('kept', 5);
    expect(await poll(db.pool, 'kept', 'a', 5, 1)).toEqual([1, 2, 3, 4, 5]);
    const [original] = await leases('kept');
    expect(await extend(db.pool, 'kept', 'a', 30)).toBe(1);
    await waitFor(
      'the original 1 s lease to pass on the server clock',
      async () => (await db.pool.query(`select clock_timestamp() > $1::timestamptz as past`, [original!.until])).rows[0].past,
      { timeoutMs: 5000, intervalMs: 50 },
    );
    expect(await poll(db.pool, 'kept', 'b', 5)).toEqual([]);
    expect((await leases('kept')).map((l) => l.member)).toEqual(['a']);
    await db.pool.query(`select mp.commit('kept', 'g', 5)`);
    expect(await leases('kept')).toEqual([]);
  });

  it('a lease that lapsed and was polled by another member is not extended, and its events do not go back', async () => {
    await streamWith('lapsed', 5);
    expect(await poll(db.pool, 'lapsed', 'a', 5)).toEqual([1, 2, 3, 4, 5]);
    await expireLeases('lapsed');
    expect(await poll(db.pool, 'lapsed', 'b', 5)).toEqual([1, 2, 3, 4, 5]);
    const taken = await leases('lapsed');
    expect(await extend(db.pool, 'lapsed', 'a', 60)).toBe(0);
    expect(await extend(db.pool, 'lapsed', 'a', 60, 5)).toBe(0);
    expect(await leases('lapsed')).toEqual(taken);
    await db.pool.query(`select mp.publish('lapsed', '6')`);
    expect(await poll(db.pool, 'lapsed', 'a', 10)).toEqual([6]);
  });

  it('a lease that lapsed but no one polled yet is still the member’s: extending it keeps it', async () => {
    await streamWith('revived', 3);
    await poll(db.pool, 'revived', 'a', 3);
    await expireLeases('revived');
    expect(await extend(db.pool, 'revived', 'a', 60)).toBe(1);
    expect(await poll(db.pool, 'revived', 'b', 3)).toEqual([]);
  });

  it('with pos only the range holding it is extended; without, every range the member holds', async () => {
    await streamWith('ranges', 9);
    await poll(db.pool, 'ranges', 'a', 3, 30);
    await poll(db.pool, 'ranges', 'a', 3, 30);
    await poll(db.pool, 'ranges', 'b', 3, 30);
    const before = await leases('ranges');
    const c = await db.connect();
    await c.query(`set mp.now = '2030-01-01 00:00:00+00'`);
    expect(await extend(c, 'ranges', 'a', 60, 5)).toBe(1);
    const once = await leases('ranges');
    expect(once.map((l) => l.until)).toEqual([before[0]!.until, '2030-01-01 00:01:00+00', before[2]!.until]);
    expect(await extend(c, 'ranges', 'a', 120)).toBe(2);
    expect((await leases('ranges')).map((l) => [l.member, l.until])).toEqual([
      ['a', '2030-01-01 00:02:00+00'],
      ['a', '2030-01-01 00:02:00+00'],
      ['b', before[2]!.until],
    ]);
    // b's range, and a pos no one holds.
    expect(await extend(c, 'ranges', 'a', 60, 8)).toBe(0);
    expect(await extend(c, 'ranges', 'a', 60, 100)).toBe(0);
    expect(await extend(c, 'ranges', 'nobody', 60)).toBe(0);
  });

  it('the new lease runs from mp._now(): one set in the past lets the batch go at once', async () => {
    await streamWith('clock', 2);
    await poll(db.pool, 'clock', 'a', 2);
    const c = await db.connect();
    await c.query(`set mp.now = '2000-01-01 00:00:00+00'`);
    expect(await extend(c, 'clock', 'a', 60)).toBe(1);
    expect(await poll(db.pool, 'clock', 'b', 2)).toEqual([1, 2]);
  });

  it('a poll taking over an expired range and an extend of it wait for each other on the group row', async () => {
    await streamWith('race', 4);
    await poll(db.pool, 'race', 'a', 2);
    await poll(db.pool, 'race', 'c', 2);
    await expireLeases('race');
    const t1 = await db.connect();
    const t2 = await db.connect();
    const t2Pid = await backendPid(t2);

    // The poll first: the extend waits, then finds the range is b's.
    await t1.query('begin');
    expect(await poll(t1, 'race', 'b', 2)).toEqual([1, 2]);
    const extending = extend(t2, 'race', 'a', 60);
    await waitFor('the extend to wait on the group row', () => isWaitingOnLock(t2Pid));
    await t1.query('commit');
    expect(await extending).toBe(0);

    // The extend first: the poll waits, then sees a live lease and takes nothing.
    await t1.query('begin');
    expect(await extend(t1, 'race', 'c', 60)).toBe(1);
    const polling = poll(t2, 'race', 'd', 2);
    await waitFor('the poll to wait on the group row', () => isWaitingOnLock(t2Pid));
    await t1.query('commit');
    expect(await polling).toEqual([]);
    expect((await leases('race')).map((l) => l.member)).toEqual(['b', 'c']);
  });
});

interface PgErr {
  code: string;
  message: string;
  hint?: string;
}

describe('mp.group_extend refuses bad input, and nothing is written', () => {
  const cases: Array<{ what: string; sql: string; code: string; message: RegExp; hint: RegExp }> = [
    {
      what: 'an unknown stream (near miss suggested)',
      sql: `select mp.group_extend('badinpt', 'g', 'a', 30)`,
      code: 'MP005',
      message: /unknown stream "badinpt"/,
      hint: /did you mean "badinput"\?.*stream_create/,
    },
    {
      what: 'an unknown group',
      sql: `select mp.group_extend('badinput', 'gg', 'a', 30)`,
      code: 'MP006',
      message: /unknown consumer group "gg" on stream "badinput"/,
      hint: /groups of this stream: g/,
    },
    {
      what: 'seconds 0',
      sql: `select mp.group_extend('badinput', 'g', 'a', 0)`,
      code: 'MP004',
      message: /seconds must be a positive integer, got 0 \(in mp\.group_extend\)/,
      hint: /seconds >= 1/,
    },
    {
      what: 'negative seconds',
      sql: `select mp.group_extend('badinput', 'g', 'a', -5)`,
      code: 'MP004',
      message: /got -5/,
      hint: /seconds >= 1/,
    },
    {
      what: 'null seconds',
      sql: `select mp.group_extend('badinput', 'g', 'a', null)`,
      code: 'MP004',
      message: /got null/,
      hint: /seconds >= 1/,
    },
    {
      what: 'an empty member',
      sql: `select mp.group_extend('badinput', 'g', '', 30)`,
      code: 'MP001',
      message: /invalid member name ""/,
      hint: /member name the events were polled with/,
    },
    {
      what: 'pos 0',
      sql: `select mp.group_extend('badinput', 'g', 'a', 30, 0)`,
      code: 'MP004',
      message: /pos must be a pos >= 1, got 0/,
      hint: /mp\.poll/,
    },
  ];

  beforeAll(async () => {
    await streamWith('badinput', 2);
    await poll(db.pool, 'badinput', 'a', 2);
  });

  for (const c of cases) {
    it(`${c.what}: ${c.code}`, async () => {
      const before = await leases('badinput');
      const err = await db.pool.query(c.sql).then(
        () => null,
        (e: unknown) => e as PgErr,
      );
      expect(err).not.toBeNull();
      expect(err!.code).toBe(c.code);
      expect(err!.message).toMatch(c.message);
      expect(err!.hint ?? '').toMatch(c.hint);
      expect(await leases('badinput')).toEqual(before);
    });
  }

  it('the client maps them: seconds 0 is a ConfigError, a malformed pos is refused before the query', async () => {
    const s = new Stream({ pool: db.pool, name: 'badinput' });
    await expect(s.extendLease('g', 'a', 0)).rejects.toBeInstanceOf(ConfigError);
    await expect(s.extendLease('g', 'a', 30, { pos: '-1' })).rejects.toThrow(/pos must be a pos/);
    expect(await s.extendLease('g', 'a', 30, { pos: 2 })).toBe(1);
  });
});

describe('Stream subscription with a handler slower than its lease', () => {
  it('keeps extending the batch in progress, so each event is handled once, by one member', async () => {
    const s = new Stream<number>({ pool: db.pool, name: 'slow' });
    await s.create();
    const handled = new Map<string, string[]>();
    const errors: unknown[] = [];
    const subs = await Promise.all(
      ['m1', 'm2', 'm3'].map((member) =>
        s.subscribe(
          'g',
          async (events: StreamEvent<number>[]) => {
            for (const e of events) handled.set(e.pos, [...(handled.get(e.pos) ?? []), member]);
            // Work that outlasts the 1 s lease more than twice over.
            await new Promise((r) => setTimeout(r, 2500));
          },
          { member, batch: 2, leaseSeconds: 1, pollIntervalMs: 100, onError: (e) => errors.push(e) },
        ),
      ),
    );
    try {
      await s.publishMany([1, 2, 3, 4]);
      await waitFor(
        'all 4 events committed',
        async () => (await db.pool.query(`select committed from mp.group_stats('slow')`)).rows[0].committed === '4',
        { timeoutMs: 15_000, intervalMs: 100 },
      );
    } finally {
      await Promise.all(subs.map((sub) => sub.stop()));
    }
    expect([...handled.keys()].sort()).toEqual(['1', '2', '3', '4']);
    for (const [pos, members] of handled) expect(members, `pos ${pos}`).toHaveLength(1);
    expect(errors).toEqual([]);
    expect(await leases('slow')).toEqual([]);
  });

  it('reports a batch whose lease was taken over while its handler ran', async () => {
    const s = new Stream<number>({ pool: db.pool, name: 'takeover' });
    await s.create();
    const errors: unknown[] = [];
    let started = false;
    let release: () => void = () => {};
    const sub = await s.subscribe(
      'g',
      async () => {
        started = true;
        await new Promise<void>((r) => (release = r));
      },
      { member: 'slow', batch: 5, leaseSeconds: 1, pollIntervalMs: 100, onError: (e) => errors.push(e) },
    );
    try {
      await s.publishMany([1, 2]);
      await waitFor('handler started', () => started);
      // Another member takes the batch as if every extension had failed. The group row lock first, as
      // mp.group_extend takes it, so an extension cannot slip in between the expiry and the poll.
      const t = await db.connect();
      await t.query('begin');
      await t.query(`select 1 from mp.stream_groups where grp = 'g' and stream_id = (select id from mp.streams where name = 'takeover') for update`);
      await t.query(`update mp.stream_leases set lease_until = now() - interval '1 second'
                      where stream_id = (select id from mp.streams where name = 'takeover')`);
      expect(await poll(t, 'takeover', 'other', 5)).toEqual([1, 2]);
      await t.query('commit');
      await waitFor('the lost lease reported', () => errors.length > 0, { timeoutMs: 5000 });
    } finally {
      release();
      await sub.stop();
    }
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(ConflictError);
    expect((errors[0] as ConflictError).message).toMatch(/member "slow" lost the lease of its batch up to pos 2 of group "g" on stream "takeover"/);
  });
});
