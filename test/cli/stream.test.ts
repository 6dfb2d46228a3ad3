import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as groups from '../../cli/commands/stream/groups.ts';
import * as ls from '../../cli/commands/stream/ls.ts';
import * as tail from '../../cli/commands/stream/tail.ts';
import type { Clock } from '../../cli/context.ts';
import { NotFoundError } from '../../sql/errors.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { waitFor } from '../support/wait.ts';
import { captured, lines, mp, type CapturedContext } from './harness.ts';

let db: TestDatabase;
const contexts: CapturedContext[] = [];

beforeAll(async () => {
  db = await freshDatabase({ poolSize: 4 });
  await sql(`select mp.stream_create('orders', '{"retention_count": 1000}')`);
  await sql(`select mp.publish_batch('orders', $1, 'k1')`, [JSON.stringify(Array.from({ length: 25 }, (_, i) => ({ n: i + 1 })))]);
  await sql(`select mp.stream_create('quiet')`);
  await sql(`select mp.group_create('orders', 'billing')`);
  await sql(`select mp.group_create('orders', 'mailer', 'latest')`);
  await sql(`select * from mp.poll('orders', 'billing', 'host_1', 10)`);
  await sql(`select mp.commit('orders', 'billing', 4)`);
});
afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
  await db.drop();
});

/** A clock whose sleeps never end on their own: only a NOTIFY (or the abort) can wake `tail --follow`. */
const frozenClock: Clock = {
  now: () => new Date('2026-01-01T00:00:00Z'),
  sleep: (_ms, signal) => new Promise((resolve) => signal?.addEventListener('abort', () => resolve(), { once: true })),
};

/** A clock whose sleeps end at once: the polling fallback runs flat out. */
const hastyClock: Clock = { now: () => new Date(), sleep: () => new Promise((resolve) => setImmediate(resolve)) };

function ctx(opts: { json?: boolean; signal?: AbortSignal; clock?: Clock } = {}): CapturedContext {
  const c = captured(db.url, opts);
  contexts.push(c);
  return c;
}

async function sql<R>(text: string, values: unknown[] = []): Promise<R[]> {
  return (await db.pool.query(text, values)).rows as R[];
}

/** The `n` payload of each event line `tail --json` printed. */
function ns(out: string): number[] {
  return lines(out).map((l) => (JSON.parse(l) as tail.EventRow & { payload: { n: number } }).payload.n);
}

describe('mp stream ls', () => {
  it('lists streams with counts, positions and retention', async () => {
    const text = ctx();
    await ls.run(text, {});
    const [header, ...rows] = lines(text.out());
    expect(header).toMatch(/^STREAM\s+EVENTS\s+FIRST\s+LAST\s+RETENTION\s+CREATED$/);
    // Other migrations may create streams of their own (mp_events): look ours up by name.
    expect(rows.find((r) => r.startsWith('orders '))).toMatch(/^orders\s+25\s+1\s+25\s+keep 1000 events\s+\d{4}-\d\d-\d\dT\S+Z$/);
    expect(rows.find((r) => r.startsWith('quiet '))).toMatch(/^quiet\s+0\s+-\s+0\s+forever\s+\S+Z$/);

    const json = ctx({ json: true });
    await ls.run(json, {});
    const byName = new Map((JSON.parse(json.out()) as ls.StreamRow[]).map((r) => [r.name, r]));
    expect(byName.get('orders')).toMatchObject({ events: 25, first_pos: 1, last_pos: 25, retention: { retention_count: 1000 } });
    expect(byName.get('quiet')).toMatchObject({ events: 0, first_pos: null, last_pos: 0, retention: {} });
  });
});

describe('mp stream groups', () => {
  it("shows each group's committed offset, lag and lease holders", async () => {
    const json = ctx({ json: true });
    await groups.run(json, { stream: 'orders' });
    expect(JSON.parse(json.out())).toEqual([
      expect.objectContaining({ stream: 'orders', grp: 'billing', committed: 4, next_pos: 11, lag: 21, members: ['host_1'] }),
      expect.objectContaining({ stream: 'orders', grp: 'mailer', committed: 25, next_pos: 26, lag: 0, members: [] }),
    ]);
    const text = ctx();
    await groups.run(text, {});
    expect(lines(text.out()).find((l) => l.startsWith('orders '))).toMatch(/^orders\s+billing\s+4\s+11\s+21\s+host_1\s+\S+Z$/);
  });

  it('a stream without groups says so; an unknown stream is MP005 with a did-you-mean', async () => {
    const text = ctx();
    await groups.run(text, { stream: 'quiet' });
    expect(text.out()).toBe('stream "quiet" has no consumer groups\n');
    const err = await groups.run(ctx(), { stream: 'ordres' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).hint).toMatch(/did you mean "orders"/);
  });
});

describe('mp stream tail', () => {
  it('prints the last 10 events by default, one per line: pos, time, key, payload', async () => {
    const text = ctx();
    await tail.run(text, { stream: 'orders', follow: false });
    const out = lines(text.out());
    expect(out).toHaveLength(10);
    expect(out[0]).toMatch(/^16 {2}\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ {2}k1 {2}\{"n":16\}$/);
    expect(out[9]).toMatch(/^25 .*\{"n":25\}$/);
  });

  it('--from POS starts at that position (inclusive), --last N with the last N; --json is one object per line', async () => {
    const from = ctx({ json: true });
    await tail.run(from, { stream: 'orders', from: 23, follow: false });
    expect(ns(from.out())).toEqual([23, 24, 25]);
    const first = JSON.parse(lines(from.out())[0]!) as Record<string, unknown>;
    expect(Object.keys(first)).toEqual(['pos', 'created_at', 'key', 'payload']);
    expect(first.pos).toBe(23);

    const last = ctx({ json: true });
    await tail.run(last, { stream: 'orders', last: 2, follow: false });
    expect(ns(last.out())).toEqual([24, 25]);

    const all = ctx({ json: true });
    await tail.run(all, { stream: 'orders', from: 0, follow: false });
    expect(ns(all.out())).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
  });

  it('an empty stream prints nothing; an unknown one fails before printing', async () => {
    const quiet = ctx();
    await tail.run(quiet, { stream: 'quiet', follow: false });
    expect(quiet.out()).toBe('');
    await expect(tail.run(ctx(), { stream: 'nowhere', follow: false })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('--follow prints events as they are published, in order, until interrupted', async () => {
    await sql(`select mp.stream_create('live')`);
    await sql(`select mp.publish('live', '{"n": 1}')`);
    const stop = new AbortController();
    // Time stands still, so every wake-up below comes from NOTIFY, not from the polling fallback.
    const c = ctx({ json: true, signal: stop.signal, clock: frozenClock });
    const running = tail.run(c, { stream: 'live', follow: true });
    try {
      await waitFor('the existing event', () => ns(c.out()).length === 1);
      await sql(`select mp.publish('live', '{"n": 2}')`);
      await waitFor('a NOTIFY-woken event', () => ns(c.out()).length === 2);
      await sql(`select mp.publish_batch('live', '[{"n": 3}, {"n": 4}, {"n": 5}]')`);
      await waitFor('the batch', () => ns(c.out()).length === 5);
    } finally {
      stop.abort();
      await running;
    }
    expect(ns(c.out())).toEqual([1, 2, 3, 4, 5]);
    // The LISTEN connection went back to the pool: nothing is left listening.
    const [listening] = await sql<{ n: string }>(
      `select count(*) as n from pg_stat_activity where datname = current_database() and query ilike 'listen%'`,
    );
    expect(listening!.n).toBe('0');
  });

  it('--follow still sees events whose NOTIFY never came, through the polling fallback', async () => {
    await sql(`select mp.stream_create('silent')`);
    const stop = new AbortController();
    const c = ctx({ json: true, signal: stop.signal, clock: hastyClock });
    const running = tail.run(c, { stream: 'silent', follow: true });
    try {
      // An append by hand, without pg_notify: what a lost notification looks like to the reader.
      await sql(`with s as (update mp.streams set last_pos = last_pos + 1 where name = 'silent' returning id, last_pos)
                 insert into mp.stream_events (stream_id, pos, payload) select id, last_pos, '{"n": 1}' from s`);
      await waitFor('the silent event', () => ns(c.out()).length === 1);
    } finally {
      stop.abort();
      await running;
    }
    expect(ns(c.out())).toEqual([1]);
  });

  it('the real binary: --follow stops cleanly on SIGINT with exit 0', async () => {
    const { spawn } = await import('node:child_process');
    const env = { ...process.env, DATABASE_URL: db.url };
    const child = spawn(process.execPath, ['bin/mp.mjs', 'stream', 'tail', 'orders', '--last', '1', '--follow', '--json'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor('the last event', () => out.includes('"pos":25'), { timeoutMs: 20_000 });
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(err).toBe('');
    expect(ns(out)).toEqual([25]);
  });

  it('the real binary: an unknown stream exits 3 with the SQL hint', async () => {
    const r = await mp(['stream', 'tail', 'ordrs'], db.url);
    expect(r.code).toBe(3);
    expect(lines(r.stderr)).toEqual(['error: unknown stream "ordrs"', expect.stringMatching(/^hint: did you mean "orders"\?/)]);
  });
});
