import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as compact from '../../cli/commands/queue/compact.ts';
import * as ls from '../../cli/commands/queue/ls.ts';
import * as peek from '../../cli/commands/queue/peek.ts';
import * as purge from '../../cli/commands/queue/purge.ts';
import * as retryDead from '../../cli/commands/queue/retry-dead.ts';
import * as stats from '../../cli/commands/queue/stats.ts';
import { ConfigError, NotFoundError } from '../../sql/errors.ts';
import type { CompactReport } from '../../sql/queues/compact.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { captured, lines, mp, type CapturedContext } from './harness.ts';

let db: TestDatabase;
const contexts: CapturedContext[] = [];

beforeAll(async () => {
  db = await freshDatabase({ poolSize: 4 });
});
afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
  await db.drop();
});

/** A context on the test database; `json` for machine output. */
function ctx(json = false): CapturedContext {
  const c = captured(db.url, { json });
  contexts.push(c);
  return c;
}

async function sql<R>(text: string, values: unknown[] = []): Promise<R[]> {
  return (await db.pool.query(text, values)).rows as R[];
}

/** A queue in a known state: 2 waiting (one high priority), 1 scheduled, 1 running, `dead` dead. */
async function seed(queue: string, dead = 1): Promise<{ ids: Record<string, string>; deadIds: string[] }> {
  await sql(`select mp.queue_create($1, '{"max_attempts": 1}')`, [queue]);
  const id = async (payload: object, options: object = {}): Promise<string> =>
    (await sql<{ id: string }>(`select mp.enqueue($1, $2, $3) as id`, [queue, payload, options]))[0]!.id;
  const deadIds: string[] = [];
  for (let i = 0; i < dead; i++) {
    const d = await id({ n: `dead${i}` }, { priority: 100 });
    await sql(`select * from mp.claim($1, 'seed-worker', 1)`, [queue]);
    await sql(`select mp.fail($1, 'smtp refused')`, [d]);
    deadIds.push(d);
  }
  const running = await id({ n: 'running' }, { priority: 50 });
  await sql(`select * from mp.claim($1, 'w1', 1)`, [queue]);
  const ids = {
    running,
    low: await id({ n: 'low' }),
    high: await id({ n: 'high' }, { priority: 5 }),
    later: await id({ n: 'later' }, { delay_seconds: 3600 }),
  };
  return { ids, deadIds };
}

describe('mp queue ls / stats', () => {
  it('lists every queue with its counts as a table, and as JSON rows', async () => {
    await seed('ls_a');
    await sql(`select mp.queue_create('ls_b')`);
    const table = ctx();
    await ls.run(table, {});
    const [header, ...rows] = lines(table.out());
    expect(header).toMatch(/^QUEUE\s+WAITING\s+SCHEDULED\s+RUNNING\s+DEAD\s+OLDEST WAITING$/);
    expect(rows.find((r) => r.startsWith('ls_a '))?.split(/\s+/).slice(0, 5)).toEqual(['ls_a', '2', '1', '1', '1']);
    expect(rows.find((r) => r.startsWith('ls_b '))?.split(/\s+/)).toEqual(['ls_b', '0', '0', '0', '0', '-']);

    const json = ctx(true);
    await ls.run(json, {});
    const parsed = JSON.parse(json.out()) as ls.QueueStatsRow[];
    expect(parsed.find((r) => r.name === 'ls_a')).toMatchObject({ waiting: 2, scheduled: 1, running: 1, dead: 1 });
    expect(parsed.find((r) => r.name === 'ls_b')).toMatchObject({ waiting: 0, oldest_waiting_seconds: null });
  });

  it('stats of one queue prints one object', async () => {
    await seed('st');
    const json = ctx(true);
    await stats.run(json, { queue: 'st' });
    expect(JSON.parse(json.out())).toMatchObject({ name: 'st', waiting: 2, scheduled: 1, running: 1, dead: 1 });
    const text = ctx();
    await stats.run(text, { queue: 'st' });
    expect(text.out()).toMatch(/^queue +st\nwaiting +2\nscheduled +1\nrunning +1\ndead +1\noldest waiting +\d+s\n$/);
  });

  it('stats of an unknown queue is the SQL NotFoundError, hint listing existing queues', async () => {
    const err = await stats.run(ctx(), { queue: 'nope' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).message).toBe('unknown queue "nope"');
    expect((err as NotFoundError).hint).toMatch(/mp\.queue_create\('nope'\).*existing queues: /);
  });
});

describe('mp queue peek', () => {
  it('shows waiting then scheduled jobs in claim order, without the running one, and claims nothing', async () => {
    const { ids } = await seed('pk');
    const json = ctx(true);
    await peek.run(json, { queue: 'pk', limit: 10, dead: false });
    const jobs = JSON.parse(json.out()) as Array<{ id: number; state: string; payload: { n: string } }>;
    expect(jobs.map((j) => [j.id, j.state, j.payload.n])).toEqual([
      [Number(ids.high), 'waiting', 'high'],
      [Number(ids.low), 'waiting', 'low'],
      [Number(ids.later), 'scheduled', 'later'],
    ]);
    const [after] = await sql<{ running: string }>(`select running from mp.queue_stats('pk')`);
    expect(after!.running).toBe('1');

    const text = ctx();
    await peek.run(text, { queue: 'pk', limit: 1, dead: false });
    const out = lines(text.out());
    expect(out).toHaveLength(2);
    expect(out[0]).toMatch(/^ID\s+STATE\s+PRIO\s+RUN AT\s+TRY\s+SERIAL\s+PAYLOAD$/);
    expect(out[1]).toMatch(new RegExp(`^\\s*${ids.high}\\s+waiting\\s+5\\s+\\S+Z\\s+0\\s+-\\s+\\{"n": ?"high"\\}$`));
  });

  it('--dead shows dead letters with their last error', async () => {
    const { deadIds } = await seed('pkd', 2);
    const json = ctx(true);
    await peek.run(json, { queue: 'pkd', limit: 10, dead: true });
    const dead = JSON.parse(json.out()) as Array<{ id: number; last_error: string; errors: unknown[] }>;
    expect(dead.map((d) => d.id)).toEqual(deadIds.map(Number));
    expect(dead[0]!.last_error).toBe('smtp refused');
    expect(dead[0]!.errors).toHaveLength(1);
  });

  it('an empty queue says so in words, and [] in JSON', async () => {
    await sql(`select mp.queue_create('pk_empty')`);
    const text = ctx();
    await peek.run(text, { queue: 'pk_empty', limit: 10, dead: false });
    expect(text.out()).toBe('no waiting jobs in queue "pk_empty"\n');
    const json = ctx(true);
    await peek.run(json, { queue: 'pk_empty', limit: 10, dead: true });
    expect(JSON.parse(json.out())).toEqual([]);
  });

  it('an unknown queue fails instead of showing nothing', async () => {
    await expect(peek.run(ctx(), { queue: 'missing', limit: 10, dead: false })).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('mp queue retry-dead', () => {
  it('moves the named dead jobs back to waiting, and the rest with no --id', async () => {
    const { deadIds } = await seed('rd', 3);
    const one = ctx();
    await retryDead.run(one, { queue: 'rd', id: [deadIds[0]!] });
    expect(one.out()).toBe('retried 1 dead job of queue "rd"\n');
    expect((await sql<{ id: string }>(`select id from mp.jobs where id = $1`, [deadIds[0]])).length).toBe(1);

    const rest = ctx(true);
    await retryDead.run(rest, { queue: 'rd' });
    expect(JSON.parse(rest.out())).toEqual({ queue: 'rd', retried: 2 });
    expect(await sql(`select id from mp.dead_jobs where queue = 'rd'`)).toEqual([]);
  });

  it('says when some asked-for ids were not dead jobs of the queue', async () => {
    await seed('rd2', 1);
    const c = ctx();
    await retryDead.run(c, { queue: 'rd2', id: ['999999'] });
    expect(c.out()).toBe('retried 0 dead jobs of queue "rd2" (of 1 asked for; the others are not dead jobs of this queue)\n');
  });
});

describe('mp queue purge', () => {
  it('without --yes deletes nothing', async () => {
    await seed('pg_keep');
    const err = await purge.run(ctx(), { queue: 'pg_keep', yes: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const [row] = await sql<{ waiting: string }>(`select waiting from mp.queue_stats('pg_keep')`);
    expect(row!.waiting).toBe('2');
  });

  it('with --yes deletes waiting, scheduled and dead jobs and leaves the running one', async () => {
    await seed('pg_go');
    const c = ctx(true);
    await purge.run(c, { queue: 'pg_go', yes: true });
    expect(JSON.parse(c.out())).toEqual({ queue: 'pg_go', purged: 4 });
    const [row] = await sql(`select waiting, scheduled, running, dead from mp.queue_stats('pg_go')`);
    expect(row).toEqual({ waiting: '0', scheduled: '0', running: '1', dead: '0' });
  });
});

describe('mp queue (real binary)', () => {
  it('an unknown queue: exit 3 with the SQL message and hint', async () => {
    const r = await mp(['queue', 'purge', 'ghost', '--yes'], db.url);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    const [error, hint, ...rest] = lines(r.stderr);
    expect(error).toBe('error: unknown queue "ghost"');
    expect(hint).toMatch(/^hint: create it with mp\.queue_create\('ghost'\)/);
    expect(rest).toEqual([]);
  });

  it('--json output parses, and stays the same data as the table', async () => {
    await seed('bin_q');
    const r = await mp(['queue', 'ls', '--json'], db.url);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as ls.QueueStatsRow[];
    expect(rows.find((x) => x.name === 'bin_q')).toMatchObject({ waiting: 2, scheduled: 1, running: 1, dead: 1 });

    const p = await mp(['--json', 'queue', 'peek', 'bin_q', '--limit', '2'], db.url);
    expect(p.code).toBe(0);
    expect((JSON.parse(p.stdout) as Array<{ payload: { n: string } }>).map((j) => j.payload.n)).toEqual(['high', 'low']);

    const ids = (JSON.parse((await mp(['queue', 'peek', 'bin_q', '--dead', '--json'], db.url)).stdout) as Array<{ id: number }>).map(
      (d) => String(d.id),
    );
    const retried = await mp(['queue', 'retry-dead', 'bin_q', '--id', ...ids, '--json'], db.url);
    expect(retried.code).toBe(0);
    expect(JSON.parse(retried.stdout)).toEqual({ queue: 'bin_q', retried: 1 });
  });

  it('a bad --id is refused before anything is written', async () => {
    const r = await mp(['queue', 'retry-dead', 'bin_q', '--id', '7', 'x1'], db.url);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([
      'error: invalid input for `mp queue retry-dead`',
      '  --id: ids are positive integers, got "x1"',
      'hint: run `mp queue retry-dead --help` for usage',
    ]);
  });
});

describe('mp queue compact', () => {
  /** Autovacuum may hold mp.jobs right after a drain; it yields to a lock request after 1 s. */
  const PATIENT = ['--lock-timeout', '10000'];

  it('rewrites mp.jobs after a drained backlog and says what it did and the sizes before and after', async () => {
    await sql(`select mp.queue_create('cq')`);
    for (let i = 0; i < 12; i++) {
      await sql(`select count(*) from mp.enqueue_batch('cq', $1)`, [JSON.stringify(Array.from({ length: 1000 }, (_, k) => ({ k })))]);
    }
    for (;;) {
      const ids = (await sql<{ id: string }>(`select id from mp.claim('cq', 'w', 1000)`)).map((j) => j.id);
      if (ids.length === 0) break;
      await sql(`select mp.ack($1::bigint[])`, [ids]);
    }
    const live = (await sql<{ n: number }>(`select count(*)::int n from mp.jobs`))[0]!.n;

    const r = await mp(['queue', 'compact', ...PATIENT], db.url);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const [what, size, ...rest] = lines(r.stdout);
    expect(what).toMatch(new RegExp(`^rewritten: \\d+\\.\\d MB for ${live} live rows?, over 4x the ~\\d+ kB they need$`));
    expect(size).toMatch(
      new RegExp(`^mp\\.jobs: \\d+\\.\\d MB → \\d+ kB \\(table \\S+ [kM]B → \\d+ kB, indexes \\S+ [kM]B → \\d+ kB\\), ${live} live rows?$`),
    );
    expect(rest).toEqual([]);
  });

  it('--json prints the report; --force rewrites a table that is not bloated', async () => {
    const r = await mp(['queue', 'compact', '--force', '--json', ...PATIENT], db.url);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as CompactReport;
    expect(report).toMatchObject({ action: 'rewritten', reason: expect.stringMatching(/^forced, with \d+ live rows? /) });
    for (const side of [report.before, report.after]) {
      expect(side).toEqual({ tableBytes: expect.any(Number), indexBytes: expect.any(Number), liveRows: side.liveRows });
    }
    expect(report.after.liveRows).toBe(report.before.liveRows);

    const notBloated = captured(db.url);
    contexts.push(notBloated);
    await compact.run(notBloated, { force: false, maxLiveRows: 0, lockTimeout: 10_000 });
    expect(lines(notBloated.out())[0]).toMatch(/^vacuumed: (more than 0 live rows: |\d+ kB for 0 live rows is not bloated )/);
    expect(lines(notBloated.out())[1]).toMatch(/ live rows?$/);
  });

  it('a bad --max-live-rows is refused with a hint before connecting (exit 2)', async () => {
    const r = await mp(['queue', 'compact', '--max-live-rows', 'abc'], 'postgres://nobody@127.0.0.1:1/nowhere');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(lines(r.stderr)).toEqual([
      'error: invalid input for `mp queue compact`',
      '  --max-live-rows: must be a non-negative integer, got "abc"',
      'hint: run `mp queue compact --help` for usage',
    ]);
  });
});
