// The original MiniPaaS SQL package's functions, tested against their documented behaviour.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { freshDatabase, type TestDatabase } from '../support/database.ts';

let db: TestDatabase;
let c: pg.Client;
beforeAll(async () => {
  db = await freshDatabase();
  c = await db.connect();
});
afterAll(async () => db.drop());

async function rows<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
  return (await c.query(sql, params)).rows as T[];
}
async function failure(sql: string, params: unknown[] = []): Promise<string> {
  return await c.query(sql, params).then(
    () => 'no error',
    (e: Error) => e.message,
  );
}

describe('original MiniPaaS queue functions', () => {
  it('enqueue returns the job as pending with an int id; dequeue claims oldest first as processing; ack finishes', async () => {
    await c.query(`select minipaas_queue_create('jobs')`);
    await c.query(`select minipaas_queue_create('jobs')`); // idempotent
    const enq = [];
    for (let i = 1; i <= 3; i++) enq.push((await rows(`select * from minipaas_queue_enqueue('jobs', $1)`, [JSON.stringify({ i })]))[0]!);
    expect(enq[0]).toMatchObject({ payload: { i: 1 }, status: 'pending' });
    expect(typeof enq[0]!.id).toBe('number');
    expect(enq[0]!.created_at).toBeInstanceOf(Date);

    const first = await rows<{ id: number; payload: unknown; status: string }>(`select * from minipaas_queue_dequeue('jobs', 2)`);
    expect(first.map((r) => [r.id, r.payload, r.status])).toEqual([
      [enq[0]!.id, { i: 1 }, 'processing'],
      [enq[1]!.id, { i: 2 }, 'processing'],
    ]);
    // Processing jobs are not handed out twice.
    const second = await rows<{ id: number }>(`select * from minipaas_queue_dequeue('jobs', 10)`);
    expect(second.map((r) => r.id)).toEqual([enq[2]!.id]);
    expect(await rows(`select * from minipaas_queue_dequeue('jobs', 10)`)).toEqual([]);

    await c.query(`select minipaas_queue_ack('jobs', $1::int[])`, [[enq[0]!.id, enq[1]!.id, enq[2]!.id]]);
    expect(await rows(`select count(*)::int n from mp.jobs where queue = 'jobs'`)).toEqual([{ n: 0 }]);
  });

  it('enqueue notifies on the channel named after the queue with the new id', async () => {
    await c.query(`select minipaas_queue_create('wake_me')`);
    const listener = await db.connect();
    const heard: Array<string | undefined> = [];
    listener.on('notification', (n) => n.channel === 'wake_me' && heard.push(n.payload));
    await listener.query('listen wake_me');
    const [job] = await rows<{ id: number }>(`select * from minipaas_queue_enqueue('wake_me', '{}')`);
    await listener.query('select 1');
    expect(heard).toEqual([String(job!.id)]);
  });

  it('ack only touches jobs of the named queue', async () => {
    await c.query(`select minipaas_queue_create('a_q')`);
    await c.query(`select minipaas_queue_create('b_q')`);
    const [b] = await rows<{ id: number }>(`select * from minipaas_queue_enqueue('b_q', '{}')`);
    await rows(`select * from minipaas_queue_dequeue('b_q', 1)`);
    await c.query(`select minipaas_queue_ack('a_q', $1::int[])`, [[b!.id]]);
    expect(await rows(`select count(*)::int n from mp.jobs where queue = 'b_q'`)).toEqual([{ n: 1 }]);
  });

  it.each([
    [`select minipaas_queue_create('Bad-Name')`, 'Invalid queue table name: Bad-Name'],
    [`select * from minipaas_queue_enqueue('1abc', '{}')`, 'Invalid queue table name: 1abc'],
    [`select * from minipaas_queue_dequeue('x;drop', 1)`, 'Invalid queue table name: x;drop'],
    [`select minipaas_queue_ack('A', array[1])`, 'Invalid queue table name: A'],
    [`select * from minipaas_queue_dequeue('jobs', 0)`, 'Batch size must be greater than zero'],
    [`select * from minipaas_queue_dequeue('jobs', -3)`, 'Batch size must be greater than zero'],
    [`select minipaas_stream_create('Bad Stream')`, 'Invalid stream table name: Bad Stream'],
    [`select * from minipaas_stream_publish('9x', '{}')`, 'Invalid stream table name: 9x'],
    [`select * from minipaas_stream_consume('Up', 0, 1)`, 'Invalid stream table name: Up'],
    [`select minipaas_stream_delete('a-b')`, 'Invalid stream table name: a-b'],
    [`select * from minipaas_stream_consume('events', 0, 0)`, 'Batch size must be greater than zero'],
  ])('%s fails with "%s"', async (sql, message) => {
    await c.query(`select minipaas_stream_create('events')`);
    expect(await failure(sql)).toBe(message);
  });
});

describe('original MiniPaaS stream functions', () => {
  it('publish returns the event; consume returns events after the cursor in order; delete drops the stream', async () => {
    await c.query(`select minipaas_stream_create('orders')`);
    await c.query(`select minipaas_stream_create('orders')`); // idempotent
    const published = [];
    for (let i = 1; i <= 5; i++) published.push((await rows<{ id: string; payload: unknown; created_at: Date }>(`select * from minipaas_stream_publish('orders', $1)`, [JSON.stringify({ i })]))[0]!);
    expect(published[0]!.payload).toEqual({ i: 1 });
    expect(published[0]!.created_at).toBeInstanceOf(Date);
    const ids = published.map((p) => Number(p.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));

    const page1 = await rows<{ id: string; payload: { i: number } }>(`select * from minipaas_stream_consume('orders', 0, 2)`);
    expect(page1.map((r) => r.payload.i)).toEqual([1, 2]);
    const page2 = await rows<{ id: string; payload: { i: number } }>(`select * from minipaas_stream_consume('orders', $1, 10)`, [page1.at(-1)!.id]);
    expect(page2.map((r) => r.payload.i)).toEqual([3, 4, 5]);
    expect(await rows(`select * from minipaas_stream_consume('orders', $1, 10)`, [page2.at(-1)!.id])).toEqual([]);

    await c.query(`select minipaas_stream_delete('orders')`);
    expect(await failure(`select * from minipaas_stream_consume('orders', 0, 10)`)).toMatch(/unknown stream "orders"/);
  });

  it('consume never skips an event whose transaction commits after a later one', async () => {
    await c.query(`select minipaas_stream_create('late')`);
    const slow = await db.connect();
    const fast = await db.connect();
    await slow.query('begin');
    await slow.query(`select * from minipaas_stream_publish('late', '{"who":"slow"}')`);
    await fast.query('begin');
    const fastDone = fast.query(`select * from minipaas_stream_publish('late', '{"who":"fast"}')`).then(() => fast.query('commit'));
    const seen: string[] = [];
    let cursor = 0;
    const consume = async () => {
      for (const r of await rows<{ id: string; payload: { who: string } }>(`select * from minipaas_stream_consume('late', $1, 10)`, [cursor])) {
        seen.push(r.payload.who);
        cursor = Number(r.id);
      }
    };
    await consume();
    await slow.query('commit');
    await fastDone;
    await consume();
    expect(seen).toEqual(['slow', 'fast']);
  });
});
