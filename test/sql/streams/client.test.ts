/** The typed client: publish/read with a schema, and subscribe's commit, redelivery and graceful stop. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, ConflictError, NotFoundError } from '../../../sql/errors.ts';
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

const Order = z.object({ id: z.number().int() });
type Order = z.infer<typeof Order>;

async function committed(stream: string, group: string): Promise<number> {
  const { rows } = await db.pool.query<{ grp: string; committed: string }>(`select grp, committed from mp.group_stats($1)`, [stream]);
  return Number(rows.find((r) => r.grp === group)?.committed ?? -1);
}

async function listenerConnections(stream: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: string }>(
    `select count(*) as n from pg_stat_activity where application_name = $1`,
    [`mp stream ${stream} listener`],
  );
  return Number(rows[0]!.n);
}

describe('Stream client', () => {
  it('publishes and reads typed events; positions are strings', async () => {
    const orders = new Stream<Order>({ pool: db.pool, name: 'orders', schema: Order });
    await orders.create({ retentionCount: 1000 });
    await orders.create({ retentionCount: 1000 });
    expect(await orders.publish({ id: 1 }, { key: 'c7' })).toBe('1');
    expect(await orders.publishMany([{ id: 2 }, { id: 3 }])).toEqual(['2', '3']);
    const events = await orders.read(0, 10);
    expect(events.map((e) => [e.pos, e.payload.id, e.key])).toEqual([
      ['1', 1, 'c7'],
      ['2', 2, null],
      ['3', 3, null],
    ]);
    expect((await orders.read(2n, 10)).map((e) => e.pos)).toEqual(['3']);
    expect(await orders.stats()).toMatchObject({ name: 'orders', events: 3, firstPos: '1', lastPos: '3' });
  });

  it('maps errors: an invalid payload is refused before writing, an unknown stream is NotFound, other options Conflict', async () => {
    const orders = new Stream<Order>({ pool: db.pool, name: 'checked', schema: Order });
    await orders.create();
    const bad = await orders.publish({ id: 'x' } as unknown as Order).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(ConfigError);
    expect((bad as ConfigError).message).toMatch(/invalid payload for stream "checked": id:/);
    expect((await orders.stats()).events).toBe(0);
    const missing = await new Stream({ pool: db.pool, name: 'checkd' }).publish({}).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect((missing as NotFoundError).hint).toMatch(/did you mean "checked"/);
    expect(await orders.create({ retentionSeconds: 60 }).catch((e: unknown) => e)).toBeInstanceOf(ConflictError);
  });

  it('subscribe delivers events published after it starts, in order, and commits them', async () => {
    const s = new Stream<Order>({ pool: db.pool, name: 'subs', schema: Order });
    await s.create();
    await s.publish({ id: 0 });
    const got: StreamEvent<Order>[] = [];
    const sub = await s.subscribe('g', async (events) => void got.push(...events), { start: 'latest', batch: 3 });
    for (let i = 1; i <= 10; i++) await s.publish({ id: i });
    await waitFor('10 events handled', () => got.length >= 10);
    await waitFor('group committed to 11', async () => (await committed('subs', 'g')) === 11);
    expect(got.map((e) => e.payload.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await sub.stop();
  });

  it('a handler that throws does not commit; its batch is delivered again after the lease', async () => {
    const s = new Stream<Order>({ pool: db.pool, name: 'flaky' });
    await s.create();
    const errors: unknown[] = [];
    const attempts = new Map<string, number>();
    const sub = await s.subscribe(
      'g',
      async (events) => {
        for (const e of events) attempts.set(e.pos, (attempts.get(e.pos) ?? 0) + 1);
        if (events.some((e) => e.payload.id === 2 && attempts.get(e.pos) === 1)) throw new Error('boom on 2');
      },
      { leaseSeconds: 1, batch: 1, pollIntervalMs: 100, onError: (e) => errors.push(e) },
    );
    await s.publishMany([{ id: 1 }, { id: 2 }, { id: 3 }]);
    await waitFor('1 and 3 handled', () => attempts.has('1') && attempts.has('3'));
    await waitFor('pos 2 redelivered and committed', async () => (await committed('flaky', 'g')) === 3, { timeoutMs: 5000 });
    expect(attempts.get('2')).toBe(2);
    expect(errors.map((e) => (e as Error).message)).toEqual(['boom on 2']);
    await sub.stop();
  });

  it('stop() finishes the batch in flight, commits it, and leaves no connection open', async () => {
    const s = new Stream<Order>({ pool: db.pool, name: 'graceful' });
    await s.create();
    let started = false;
    let finished = false;
    const sub = await s.subscribe('g', async () => {
      started = true;
      await new Promise((r) => setTimeout(r, 300));
      finished = true;
    });
    expect(await listenerConnections('graceful')).toBe(1);
    await s.publishMany([{ id: 1 }, { id: 2 }]);
    await waitFor('handler started', () => started);
    await sub.stop();
    expect(finished).toBe(true);
    expect(await committed('graceful', 'g')).toBe(2);
    await waitFor('listener connection closed', async () => (await listenerConnections('graceful')) === 0);
    expect(db.pool.totalCount - db.pool.idleCount).toBe(0);
  });

  it('two subscriptions in one group share the work and handle every event once', async () => {
    const s = new Stream<Order>({ pool: db.pool, name: 'shared' });
    await s.create();
    const seen = new Map<string, number>();
    const handler = async (events: StreamEvent<Order>[]): Promise<void> => {
      for (const e of events) seen.set(e.pos, (seen.get(e.pos) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, 2));
    };
    const subs = await Promise.all([s.subscribe('g', handler, { batch: 20 }), s.subscribe('g', handler, { batch: 20 })]);
    await s.publishMany(Array.from({ length: 500 }, (_, i) => ({ id: i })));
    await waitFor('all committed', async () => (await committed('shared', 'g')) === 500);
    await Promise.all(subs.map((x) => x.stop()));
    expect(seen.size).toBe(500);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
  });
});
