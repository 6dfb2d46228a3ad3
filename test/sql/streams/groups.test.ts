/**
 * Consumer groups: members of one group never hold the same event at once, every event is processed at
 * least once, the committed offset reaches the end, and a dead member's events come back only after its
 * lease expires.
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

interface GroupRow {
  committed: string;
  next_pos: string;
  lag: string;
  members: string[];
}

async function poll(c: pg.Client | pg.Pool, stream: string, grp: string, member: string, max: number, lease = 30): Promise<number[]> {
  const { rows } = await c.query<{ pos: string }>(`select pos from mp.poll($1, $2, $3, $4, $5)`, [stream, grp, member, max, lease]);
  return rows.map((r) => Number(r.pos));
}

async function commit(c: pg.Client | pg.Pool, stream: string, grp: string, upto: number): Promise<void> {
  await c.query(`select mp.commit($1, $2, $3)`, [stream, grp, upto]);
}

async function group(stream: string, grp: string): Promise<GroupRow> {
  const { rows } = await db.pool.query<GroupRow & { grp: string }>(`select * from mp.group_stats($1)`, [stream]);
  return rows.find((r) => r.grp === grp)!;
}

async function publishN(stream: string, n: number): Promise<void> {
  await db.pool.query(`select mp.publish_batch($1, (select jsonb_agg(i) from generate_series(1, $2) i))`, [stream, n]);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('consumer groups', () => {
  it('two members polling concurrently never hold the same event; all processed; committed reaches the end', async () => {
    const total = 3000;
    await db.pool.query(`select mp.stream_create('work')`);
    await db.pool.query(`select mp.group_create('work', 'g')`);
    const held = new Map<string, Set<number>>([
      ['a', new Set()],
      ['b', new Set()],
    ]);
    const processed = new Map<number, number>();
    const overlaps: string[] = [];
    let producing = true;

    const member = async (name: string, other: string): Promise<void> => {
      const c = await db.connect();
      for (;;) {
        const stillProducing = producing;
        const batch = await poll(c, 'work', 'g', name, 1 + Math.floor(Math.random() * 60));
        if (batch.length === 0) {
          if (!stillProducing) return;
          await sleep(1);
          continue;
        }
        const mine = held.get(name)!;
        const theirs = held.get(other)!;
        for (const pos of batch) {
          if (theirs.has(pos) || mine.has(pos)) overlaps.push(`${name} got ${pos} while it was held`);
          mine.add(pos);
        }
        await sleep(Math.random() * 3);
        for (const pos of batch) processed.set(pos, (processed.get(pos) ?? 0) + 1);
        await commit(c, 'work', 'g', batch[batch.length - 1]!);
        for (const pos of batch) mine.delete(pos);
      }
    };

    const members = [member('a', 'b'), member('b', 'a')];
    // Publish while the members run, so they also race for events as they arrive.
    for (let i = 0; i < total / 500; i++) {
      await publishN('work', 500);
      await sleep(10);
    }
    producing = false;
    await Promise.all(members);

    expect(overlaps).toEqual([]);
    expect(processed.size).toBe(total);
    for (let pos = 1; pos <= total; pos++) expect(processed.get(pos)).toBeGreaterThanOrEqual(1);
    const g = await group('work', 'g');
    expect(Number(g.committed)).toBe(total);
    expect(Number(g.next_pos)).toBe(total + 1);
    expect(Number(g.lag)).toBe(0);
    expect(g.members).toEqual([]);
  });

  it('a member that dies without committing has its events redelivered only after its lease expires', async () => {
    await db.pool.query(`select mp.stream_create('dies')`);
    await db.pool.query(`select mp.group_create('dies', 'g')`);
    await publishN('dies', 10);
    const startedAt = Date.now();
    expect(await poll(db.pool, 'dies', 'g', 'dead', 10, 1)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

    let earlyPolls = 0;
    const redelivered = await waitFor(
      'redelivery of the dead member events',
      async () => {
        const got = await poll(db.pool, 'dies', 'g', 'alive', 100, 30);
        if (got.length === 0) earlyPolls++;
        return got.length > 0 ? got : null;
      },
      { timeoutMs: 5000, intervalMs: 50 },
    );
    const elapsed = Date.now() - startedAt;
    expect(earlyPolls).toBeGreaterThan(5);
    // The lease is 1 s from the server's clock at poll time; the poll started after startedAt.
    expect(elapsed).toBeGreaterThanOrEqual(990);
    expect(redelivered).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect((await group('dies', 'g')).members).toEqual(['alive']);
    await commit(db.pool, 'dies', 'g', 10);
    expect(Number((await group('dies', 'g')).committed)).toBe(10);
  });

  it('a redelivered range larger than max is split: the rest stays for the next poller', async () => {
    await db.pool.query(`select mp.stream_create('split')`);
    await db.pool.query(`select mp.group_create('split', 'g')`);
    await publishN('split', 6);
    await poll(db.pool, 'split', 'g', 'dead', 6, 1);
    await db.pool.query(`update mp.stream_leases set lease_until = now() - interval '1 second'`);
    expect(await poll(db.pool, 'split', 'g', 'x', 4)).toEqual([1, 2, 3, 4]);
    expect(await poll(db.pool, 'split', 'g', 'y', 4)).toEqual([5, 6]);
    expect(await poll(db.pool, 'split', 'g', 'z', 4)).toEqual([]);
  });

  it('committed is the contiguous prefix: out-of-order commits wait for the earlier range; partial commits shrink a lease', async () => {
    await db.pool.query(`select mp.stream_create('prefix')`);
    await db.pool.query(`select mp.group_create('prefix', 'g')`);
    await publishN('prefix', 10);
    expect(await poll(db.pool, 'prefix', 'g', 'a', 5)).toEqual([1, 2, 3, 4, 5]);
    expect(await poll(db.pool, 'prefix', 'g', 'b', 5)).toEqual([6, 7, 8, 9, 10]);
    await commit(db.pool, 'prefix', 'g', 10);
    expect(Number((await group('prefix', 'g')).committed)).toBe(0);
    await commit(db.pool, 'prefix', 'g', 3);
    expect(Number((await group('prefix', 'g')).committed)).toBe(3);
    // Already finished: a no-op.
    await commit(db.pool, 'prefix', 'g', 2);
    await commit(db.pool, 'prefix', 'g', 5);
    const g = await group('prefix', 'g');
    expect(Number(g.committed)).toBe(10);
    expect(Number(g.lag)).toBe(0);
    const err = await commit(db.pool, 'prefix', 'g', 11).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MP007' });
  });

  it('start: latest skips existing events, a pos starts there, earliest after retention starts at the first kept', async () => {
    await db.pool.query(`select mp.stream_create('starts', '{"retention_count": 3}')`);
    await publishN('starts', 5);
    await db.pool.query(`select mp.stream_trim('starts')`);
    await db.pool.query(`select mp.group_create('starts', 'early')`);
    await db.pool.query(`select mp.group_create('starts', 'late', 'latest')`);
    await db.pool.query(`select mp.group_create('starts', 'at4', '4')`);
    await publishN('starts', 1);
    expect(await poll(db.pool, 'starts', 'early', 'm', 10)).toEqual([3, 4, 5, 6]);
    expect(await poll(db.pool, 'starts', 'late', 'm', 10)).toEqual([6]);
    expect(await poll(db.pool, 'starts', 'at4', 'm', 10)).toEqual([4, 5, 6]);
    const err = await db.pool.query(`select mp.group_create('starts', 'early')`).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MP007' });
  });

  it('a group that fell behind retention skips the trimmed events instead of leasing empty ranges', async () => {
    await db.pool.query(`select mp.stream_create('behind', '{"retention_count": 5}')`);
    await db.pool.query(`select mp.group_create('behind', 'g')`);
    await publishN('behind', 20);
    expect(await poll(db.pool, 'behind', 'g', 'm', 3)).toEqual([1, 2, 3]);
    await db.pool.query(`select mp.stream_trim('behind')`);
    expect(await poll(db.pool, 'behind', 'g', 'm', 3)).toEqual([16, 17, 18]);
    const g = await group('behind', 'g');
    expect(Number(g.committed)).toBe(15);
  });
});
