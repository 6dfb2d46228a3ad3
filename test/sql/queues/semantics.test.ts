// Queue semantics one function at a time, against a real PostgreSQL, with the clock injected via mp.now.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { freshDatabase, type TestDatabase } from '../../support/database.ts';

let db: TestDatabase;
let c: pg.Client;

beforeAll(async () => {
  db = await freshDatabase();
  c = await db.connect();
});
afterAll(async () => db.drop());

let qn = 0;
let q: string;
beforeEach(async () => {
  q = `q${++qn}`;
  await c.query(`reset mp.now`);
  await c.query(`select mp.queue_create($1, '{"lease_seconds": 30, "max_attempts": 3}')`, [q]);
});

async function one<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T> {
  return (await c.query(sql, params)).rows[0] as T;
}
async function claimIds(worker = 'w', batch = 10, targets: string[] | null = null): Promise<number[]> {
  const { rows } = await c.query(`select id from mp.claim($1, $2, $3, null, $4)`, [q, worker, batch, targets]);
  return rows.map((r: { id: string }) => Number(r.id));
}
async function enqueue(payload: unknown, options: object = {}): Promise<number> {
  return Number((await one<{ id: string }>(`select mp.enqueue($1, $2, $3) as id`, [q, JSON.stringify(payload), JSON.stringify(options)])).id);
}
async function setNow(iso: string): Promise<void> {
  await c.query(`select set_config('mp.now', $1, false)`, [iso]);
}

describe('enqueue and claim', () => {
  it('claims in priority order, then oldest first, and returns the payload and attempt', async () => {
    const low = await enqueue({ n: 1 });
    const high = await enqueue({ n: 2 }, { priority: 10 });
    const low2 = await enqueue({ n: 3 });
    const { rows } = await c.query(`select id, payload, attempt, max_attempts from mp.claim($1, 'w', 10)`, [q]);
    expect(rows.map((r) => Number(r.id))).toEqual([high, low, low2]);
    expect(rows[0]).toMatchObject({ payload: { n: 2 }, attempt: 1, max_attempts: 3 });
    expect(await claimIds()).toEqual([]);
  });

  it('holds delayed and run_at jobs until their time comes', async () => {
    await setNow('2030-01-01T00:00:00Z');
    const delayed = await enqueue({}, { delay_seconds: 60 });
    const at = await enqueue({}, { run_at: '2030-01-01T00:02:00Z' });
    expect(await claimIds()).toEqual([]);
    await setNow('2030-01-01T00:01:00Z');
    expect(await claimIds()).toEqual([delayed]);
    await c.query(`select mp.ack(array[$1]::bigint[])`, [delayed]);
    await setNow('2030-01-01T00:02:00Z');
    expect(await claimIds()).toEqual([at]);
  });

  it('gives targeted jobs only to claimers naming the target', async () => {
    const anyone = await enqueue({});
    const forB = await enqueue({}, { target: 'node-b' });
    expect(await claimIds('a', 10, ['node-a'])).toEqual([anyone]);
    expect(await claimIds('x', 10, null)).toEqual([]);
    expect(await claimIds('b', 10, ['node-b'])).toEqual([forB]);
  });

  it('returns the existing id for a dedupe key while that job is waiting or running, and a new one after', async () => {
    const first = await enqueue({ v: 1 }, { dedupe_key: 'k' });
    expect(await enqueue({ v: 2 }, { dedupe_key: 'k' })).toBe(first);
    await claimIds();
    expect(await enqueue({ v: 3 }, { dedupe_key: 'k' })).toBe(first);
    await c.query(`select mp.ack(array[$1]::bigint[])`, [first]);
    const again = await enqueue({ v: 4 }, { dedupe_key: 'k' });
    expect(again).not.toBe(first);
    expect(Number((await one<{ n: string }>(`select count(*) as n from mp.jobs where queue = $1`, [q])).n)).toBe(1);
  });

  it('runs jobs of one serial key one at a time in enqueue order, other keys in parallel', async () => {
    const a1 = await enqueue({}, { serial_key: 'a' });
    const a2 = await enqueue({}, { serial_key: 'a' });
    const b1 = await enqueue({}, { serial_key: 'b' });
    const free = await enqueue({});
    expect(await claimIds('w', 10)).toEqual([a1, b1, free]);
    expect(await claimIds('w', 10)).toEqual([]);
    await c.query(`select mp.ack(array[$1]::bigint[])`, [a1]);
    expect(await claimIds('w', 10)).toEqual([a2]);
  });

  it('enqueue_batch returns ids in array order and applies options to all', async () => {
    const { rows } = await c.query(`select id from mp.enqueue_batch($1, '[{"i":0},{"i":1},{"i":2}]', '{"priority": 5}') id`, [q]);
    const ids = rows.map((r) => Number(r.id));
    expect(ids).toHaveLength(3);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    const { rows: claimed } = await c.query(`select id, payload from mp.claim($1, 'w', 10)`, [q]);
    expect(claimed.map((r) => r.payload)).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }]);
    expect(Number((await one<{ n: string }>(`select count(*) n from mp.jobs where queue = $1 and priority = 5`, [q])).n)).toBe(3);
  });
});

describe('leases, failure and dead letters', () => {
  it('makes a job claimable again when its lease expires, recording the lapse', async () => {
    await setNow('2030-01-01T00:00:00Z');
    const id = await enqueue({});
    expect(await claimIds('first')).toEqual([id]);
    await setNow('2030-01-01T00:00:29Z');
    expect(await claimIds('second')).toEqual([]);
    await setNow('2030-01-01T00:00:31Z');
    expect(await claimIds('second')).toEqual([id]);
    const job = await one<{ attempt: number; locked_by: string; errors: Array<{ error: string }> }>(`select * from mp.jobs where id = $1`, [id]);
    expect(job.attempt).toBe(2);
    expect(job.locked_by).toBe('second');
    expect(job.errors[0]!.error).toMatch(/lease expired while held by first/);
  });

  it('extend_lease keeps a job from being reclaimed', async () => {
    await setNow('2030-01-01T00:00:00Z');
    const id = await enqueue({});
    await claimIds('w');
    await setNow('2030-01-01T00:00:20Z');
    expect(Number((await one<{ n: number }>(`select mp.extend_lease(array[$1]::bigint[], 30) n`, [id])).n)).toBe(1);
    await setNow('2030-01-01T00:00:45Z');
    expect(await claimIds('other')).toEqual([]);
    await setNow('2030-01-01T00:00:51Z');
    expect(await claimIds('other')).toEqual([id]);
  });

  it('retries a failed job with backoff, then dead-letters it with every error', async () => {
    await setNow('2030-01-01T00:00:00Z');
    const id = await enqueue({ x: 1 });
    for (let attempt = 1; attempt <= 3; attempt++) {
      await setNow(`2030-01-01T0${attempt}:00:00Z`);
      expect(await claimIds()).toEqual([id]);
      const r = await one<{ r: string }>(`select mp.fail($1, $2) r`, [id, `boom ${attempt}`]);
      expect(r.r).toBe(attempt < 3 ? 'retry' : 'dead');
      if (attempt < 3) {
        // Backoff: not claimable right away.
        expect(await claimIds()).toEqual([]);
        const runAt = await one<{ s: number }>(`select extract(epoch from run_at - mp._now())::float8 s from mp.jobs where id = $1`, [id]);
        expect(runAt.s).toBeGreaterThan(0.5 * 2 ** attempt);
        expect(runAt.s).toBeLessThan(1.5 * 2 ** attempt);
      }
    }
    expect(await one(`select count(*)::int n from mp.jobs where id = $1`, [id])).toEqual({ n: 0 });
    const dead = await one<{ attempt: number; errors: Array<{ error: string; attempt: number }>; payload: unknown }>(
      `select * from mp.dead_jobs where id = $1`,
      [id],
    );
    expect(dead.payload).toEqual({ x: 1 });
    expect(dead.errors.map((e) => [e.attempt, e.error])).toEqual([
      [1, 'boom 1'],
      [2, 'boom 2'],
      [3, 'boom 3'],
    ]);
  });

  it('dead-letters a job whose last attempt lapsed instead of running it again', async () => {
    await setNow('2030-01-01T00:00:00Z');
    await c.query(`select mp.queue_create($1, '{"max_attempts": 1}')`, [q]);
    const id = await enqueue({});
    await claimIds('w');
    await setNow('2030-01-01T01:00:00Z');
    expect(await claimIds('w2')).toEqual([]);
    const dead = await one<{ errors: Array<{ error: string }> }>(`select errors from mp.dead_jobs where id = $1`, [id]);
    expect(dead.errors.at(-1)!.error).toMatch(/lease expired .* no attempts are left/);
  });

  it('retry_in_seconds overrides backoff; release gives a job back without counting the attempt', async () => {
    await setNow('2030-01-01T00:00:00Z');
    const id = await enqueue({});
    await claimIds();
    await c.query(`select mp.fail($1, 'later', 0)`, [id]);
    expect(await claimIds()).toEqual([id]);
    expect(Number((await one<{ n: number }>(`select mp.release(array[$1]::bigint[]) n`, [id])).n)).toBe(1);
    const job = await one<{ attempt: number; locked_by: string | null }>(`select attempt, locked_by from mp.jobs where id = $1`, [id]);
    expect(job).toEqual({ attempt: 1, locked_by: null });
  });

  it('retry_dead moves dead jobs back with fresh attempts; purge empties waiting and dead jobs', async () => {
    await c.query(`select mp.queue_create($1, '{"max_attempts": 1}')`, [q]);
    const id = await enqueue({});
    await claimIds();
    await c.query(`select mp.fail($1, 'x')`, [id]);
    expect((await one<{ dead: string }>(`select dead from mp.queue_stats($1)`, [q])).dead).toBe('1');
    expect((await one<{ n: number }>(`select mp.retry_dead($1) n`, [q])).n).toBe(1);
    expect(await claimIds()).toEqual([id]);
    await c.query(`select mp.release(array[$1]::bigint[])`, [id]);
    await enqueue({}, { delay_seconds: 3600 });
    expect(Number((await one<{ n: string }>(`select mp.purge($1) n`, [q])).n)).toBe(2);
    expect(await one(`select waiting, scheduled, running, dead from mp.queue_stats($1)`, [q])).toEqual({
      waiting: '0',
      scheduled: '0',
      running: '0',
      dead: '0',
    });
  });

  it('queue_stats counts waiting, scheduled, running and dead, and the oldest waiting age', async () => {
    await setNow('2030-01-01T00:00:00Z');
    await enqueue({});
    await enqueue({});
    await enqueue({}, { delay_seconds: 600 });
    await claimIds('w', 1);
    await setNow('2030-01-01T00:00:10Z');
    const s = await one(`select * from mp.queue_stats($1)`, [q]);
    expect(s).toMatchObject({ name: q, waiting: '1', scheduled: '1', running: '1', dead: '0' });
    expect((s as { oldest_waiting_seconds: number }).oldest_waiting_seconds).toBeCloseTo(10, 0);
  });

  it('keeps finished jobs for the retention period when the queue asks for it', async () => {
    await c.query(`select mp.queue_create($1, '{"retention_seconds": 60}')`, [q]);
    await setNow('2030-01-01T00:00:00Z');
    const id = await enqueue({ keep: true });
    await claimIds();
    await c.query(`select mp.ack(array[$1]::bigint[])`, [id]);
    expect(await one(`select payload from mp.finished_jobs where id = $1`, [id])).toEqual({ payload: { keep: true } });
    await setNow('2030-01-01T00:02:00Z');
    await c.query(`select mp.prune_finished()`);
    expect(await one(`select count(*)::int n from mp.finished_jobs where id = $1`, [id])).toEqual({ n: 0 });
  });
});

describe('bad input gets a clear error and writes nothing', () => {
  async function errorOf(sql: string, params: unknown[]): Promise<{ code: string; message: string; hint?: string }> {
    return await c.query(sql, params).then(
      () => {
        throw new Error(`expected ${sql} to fail`);
      },
      (e: { code: string; message: string; hint?: string }) => e,
    );
  }
  async function jobCount(): Promise<number> {
    return (await one<{ n: number }>(`select count(*)::int n from mp.jobs`)).n;
  }

  it.each([
    ['unknown queue', `select mp.enqueue('nosuch', '{}')`, [], 'MP002', /unknown queue "nosuch"/],
    ['invalid name', `select mp.queue_create('Bad Name')`, [], 'MP001', /invalid queue name: "Bad Name"/],
    ['unknown option', `select mp.enqueue($1, '{}', '{"priorty": 1}')`, ['Q'], 'MP003', /unknown option "priorty" for mp.enqueue/],
    ['wrong option type', `select mp.enqueue($1, '{}', '{"max_attempts": "3"}')`, ['Q'], 'MP003', /"max_attempts" must be a whole number/],
    ['both run_at and delay', `select mp.enqueue($1, '{}', '{"delay_seconds": 1, "run_at": "2030-01-01"}')`, ['Q'], 'MP003', /exclude each other/],
    ['bad run_at', `select mp.enqueue($1, '{}', '{"run_at": "tomorrow-ish"}')`, ['Q'], 'MP003', /"run_at" is not a timestamp: tomorrow-ish/],
    ['batch of zero', `select * from mp.claim($1, 'w', 0)`, ['Q'], 'MP004', /batch size must be greater than zero, got 0/],
    ['negative batch', `select * from mp.claim($1, 'w', -5)`, ['Q'], 'MP004', /got -5/],
    ['lease of zero', `select * from mp.claim($1, 'w', 1, 0)`, ['Q'], 'MP004', /lease must be at least 1 second, got 0/],
    ['extend by zero', `select mp.extend_lease(array[1]::bigint[], 0)`, [], 'MP004', /lease must be at least 1 second/],
    ['payload not an array', `select mp.enqueue_batch($1, '{"a":1}')`, ['Q'], 'MP008', /must be a JSON array, got object/],
    ['payload not JSON', `select mp.enqueue($1, $2)`, ['Q', '{not json'], '22P02', /json/i],
  ])('%s', async (_name, sql, params, code, message) => {
    const before = await jobCount();
    const e = await errorOf(sql, params.map((p) => (p === 'Q' ? q : p)));
    expect(e.code).toBe(code);
    expect(e.message).toMatch(message);
    expect(await jobCount()).toBe(before);
  });

  it('unknown queue errors hint at creating it and list the queues that exist', async () => {
    const e = await errorOf(`select * from mp.claim('nosuch', 'w')`, []);
    expect(e.hint).toMatch(/create it with mp.queue_create\('nosuch'\); existing queues: .*q1/);
  });
});

describe('wake-ups', () => {
  it('enqueue sends a bare NOTIFY only while a worker waits, and never the payload', async () => {
    const listener = await db.connect();
    const heard: string[] = [];
    listener.on('notification', (n) => heard.push(`${n.channel}:${n.payload ?? ''}`));
    await listener.query(`listen mp_queue_${q}`);
    const sync = async () => listener.query('select 1'); // notifications arrive before the next result

    await enqueue({ secret: 'x' });
    await sync();
    expect(heard).toEqual([]);

    await c.query(`select mp.wait_for_jobs($1, 'w1')`, [q]);
    await enqueue({ secret: 'x' });
    await c.query(`select * from mp.enqueue_batch($1, '[1, 2, 3]')`, [q]);
    await sync();
    expect(heard).toEqual([`mp_queue_${q}:`, `mp_queue_${q}:`]);

    await c.query(`select mp.done_waiting($1, 'w1')`, [q]);
    await enqueue({});
    await sync();
    expect(heard).toHaveLength(2);

    // A registration a worker stopped renewing (it died) no longer costs a NOTIFY.
    await c.query(`insert into mp.queue_waiters (queue, worker, since) values ($1, 'dead', now() - interval '2 minutes')`, [q]);
    await enqueue({});
    await sync();
    expect(heard).toHaveLength(2);
  });
});
