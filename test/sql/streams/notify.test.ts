/** NOTIFY on publish: listeners are woken with the new last pos, and big payloads never break a publish. */
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

async function listen(channel: string): Promise<{ client: pg.Client; received: pg.Notification[] }> {
  const client = await db.connect();
  const received: pg.Notification[] = [];
  client.on('notification', (n) => received.push(n));
  await client.query(`listen ${channel}`);
  return { client, received };
}

describe('NOTIFY on publish', () => {
  it('a LISTEN client receives the new last pos on its stream channel', async () => {
    await db.pool.query(`select mp.stream_create('pings')`);
    const { received } = await listen('mp_stream_pings');
    await db.pool.query(`select mp.publish('pings', '{"hello": 1}')`);
    await waitFor('one notification', () => received.length === 1);
    expect(received[0]).toMatchObject({ channel: 'mp_stream_pings', payload: '1' });
  });

  it('publish_batch sends one notification carrying the batch last pos', async () => {
    await db.pool.query(`select mp.stream_create('batched')`);
    const { received } = await listen('mp_stream_batched');
    await db.pool.query(`select mp.publish_batch('batched', '[1, 2, 3, 4]')`);
    await db.pool.query(`select mp.publish('batched', '5')`);
    // The second publish's notification arriving proves the first batch sent exactly one before it.
    await waitFor('two notifications', () => received.length === 2);
    expect(received.map((n) => n.payload)).toEqual(['4', '5']);
  });

  it('a payload far over the 8000-byte NOTIFY limit publishes fine and notifies', async () => {
    await db.pool.query(`select mp.stream_create('big')`);
    const { received } = await listen('mp_stream_big');
    const payload = { blob: 'x'.repeat(100_000) };
    const { rows } = await db.pool.query<{ pos: string }>(`select mp.publish('big', $1) as pos`, [payload]);
    expect(rows[0]!.pos).toBe('1');
    const batch = await db.pool.query(`select * from mp.publish_batch('big', $1)`, [JSON.stringify([payload, payload])]);
    expect(batch.rowCount).toBe(2);
    await waitFor('two notifications', () => received.length === 2);
    const read = await db.pool.query<{ payload: { blob: string } }>(`select payload from mp.read('big', 0, 1)`);
    expect(read.rows[0]!.payload.blob.length).toBe(100_000);
  });

  it('a rolled-back publish notifies no one', async () => {
    await db.pool.query(`select mp.stream_create('quiet')`);
    const { received } = await listen('mp_stream_quiet');
    const c = await db.connect();
    await c.query('begin');
    await c.query(`select mp.publish('quiet', '1')`);
    await c.query('rollback');
    await db.pool.query(`select mp.publish('quiet', '2')`);
    await waitFor('the committed publish notification', () => received.length >= 1);
    expect(received.map((n) => n.payload)).toEqual(['1']);
  });
});
