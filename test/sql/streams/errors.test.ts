/**
 * Bad input: each mistake raises its own SQLSTATE with a message naming the value and a hint, and
 * nothing is written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDatabase } from '../../support/database.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
  await db.pool.query(`select mp.stream_create('orders')`);
  await db.pool.query(`select mp.publish('orders', '{"n": 1}')`);
  await db.pool.query(`select mp.group_create('orders', 'billing')`);
});
afterAll(async () => {
  await db.drop();
});

interface Snapshot {
  streams: string;
  events: string;
  last_pos: string;
  groups: string;
  leases: string;
}

async function snapshot(): Promise<Snapshot> {
  const { rows } = await db.pool.query<Snapshot>(`select
    (select count(*) from mp.streams) as streams,
    (select count(*) from mp.stream_events) as events,
    (select string_agg(name || '=' || last_pos, ',' order by name) from mp.streams) as last_pos,
    (select count(*) from mp.stream_groups) as groups,
    (select count(*) from mp.stream_leases) as leases`);
  return rows[0]!;
}

interface PgErr {
  code: string;
  message: string;
  hint?: string;
}

async function failure(sql: string, params: unknown[] = []): Promise<PgErr> {
  const err = await db.pool.query(sql, params).then(
    () => null,
    (e: unknown) => e as PgErr,
  );
  if (!err) throw new Error(`expected ${sql} to fail`);
  return err;
}

const cases: Array<{ what: string; sql: string; code: string; message: RegExp; hint: RegExp }> = [
  {
    what: 'publish to an unknown stream (near miss suggested)',
    sql: `select mp.publish('orderz', '{}')`,
    code: 'MP005',
    message: /unknown stream "orderz"/,
    hint: /did you mean "orders"\?.*mp\.stream_create\(.orderz.\).*existing streams: .*\borders\b/,
  },
  {
    what: 'read from an unknown stream',
    sql: `select * from mp.read('nope', 0, 10)`,
    code: 'MP005',
    message: /unknown stream "nope"/,
    hint: /existing streams: .*\borders\b/,
  },
  {
    what: 'publish_batch to an unknown stream',
    sql: `select * from mp.publish_batch('nope', '[1]')`,
    code: 'MP005',
    message: /"nope"/,
    hint: /stream_create/,
  },
  {
    what: 'stream_drop of an unknown stream',
    sql: `select mp.stream_drop('nope')`,
    code: 'MP005',
    message: /"nope"/,
    hint: /stream_create/,
  },
  {
    what: 'create with an invalid name',
    sql: `select mp.stream_create('Order-Events')`,
    code: 'MP001',
    message: /invalid stream name: "Order-Events"/,
    hint: /\^\[a-z_\]/,
  },
  {
    what: 'publish with an invalid name',
    sql: `select mp.publish('Bad Name', '1')`,
    code: 'MP001',
    message: /"Bad Name"/,
    hint: /names match/,
  },
  {
    what: 'create with an unknown option key',
    sql: `select mp.stream_create('fresh', '{"retention_days": 3}')`,
    code: 'MP003',
    message: /unknown option "retention_days" for mp\.stream_create/,
    hint: /retention_seconds, retention_count/,
  },
  {
    what: 'create with a non-positive retention',
    sql: `select mp.stream_create('fresh', '{"retention_count": 0}')`,
    code: 'MP003',
    message: /"retention_count".*got 0/,
    hint: /retention_count/,
  },
  {
    what: 'read with max 0',
    sql: `select * from mp.read('orders', 0, 0)`,
    code: 'MP004',
    message: /max must be a positive integer, got 0/,
    hint: /max >= 1/,
  },
  {
    what: 'read with a negative max',
    sql: `select * from mp.read('orders', 0, -5)`,
    code: 'MP004',
    message: /got -5/,
    hint: /max >= 1/,
  },
  {
    what: 'poll with max 0',
    sql: `select * from mp.poll('orders', 'billing', 'm', 0)`,
    code: 'MP004',
    message: /max must be a positive integer, got 0 \(in mp\.poll\)/,
    hint: /max >= 1/,
  },
  {
    what: 'poll with lease 0',
    sql: `select * from mp.poll('orders', 'billing', 'm', 10, 0)`,
    code: 'MP004',
    message: /lease_seconds must be a positive integer, got 0/,
    hint: /lease_seconds >= 1/,
  },
  {
    what: 'poll an unknown group',
    sql: `select * from mp.poll('orders', 'biling', 'm', 10)`,
    code: 'MP006',
    message: /unknown consumer group "biling" on stream "orders"/,
    hint: /groups of this stream: billing/,
  },
  {
    what: 'commit on an unknown group',
    sql: `select mp.commit('orders', 'nope', 1)`,
    code: 'MP006',
    message: /"nope"/,
    hint: /group_create/,
  },
  {
    what: 'poll an unknown stream',
    sql: `select * from mp.poll('nope', 'billing', 'm', 10)`,
    code: 'MP005',
    message: /"nope"/,
    hint: /stream_create/,
  },
  {
    what: 'publish_batch with an object instead of an array',
    sql: `select * from mp.publish_batch('orders', '{"n": 2}')`,
    code: 'MP008',
    message: /payloads for stream "orders" must be a JSON array, got object/,
    hint: /JSON array/,
  },
  {
    what: 'publish a SQL null payload',
    sql: `select mp.publish('orders', null)`,
    code: 'MP008',
    message: /payload for stream "orders" is null/,
    hint: /JSON/,
  },
  {
    what: 'group_create with a bad start',
    sql: `select mp.group_create('orders', 'g2', 'yesterday')`,
    code: 'MP003',
    message: /invalid start "yesterday"/,
    hint: /earliest/,
  },
  {
    what: 'group_create on an existing group',
    sql: `select mp.group_create('orders', 'billing')`,
    code: 'MP007',
    message: /consumer group "billing" already exists on stream "orders"/,
    hint: /group_stats/,
  },
];

describe('bad input', () => {
  for (const c of cases) {
    it(`${c.what}: ${c.code}, and nothing is written`, async () => {
      const before = await snapshot();
      const err = await failure(c.sql);
      expect(err.code).toBe(c.code);
      expect(err.message).toMatch(c.message);
      expect(err.hint ?? '').toMatch(c.hint);
      expect(await snapshot()).toEqual(before);
    });
  }
});
