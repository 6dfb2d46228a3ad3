// Consumer-group members as real processes (a bare pg.Pool each) against a private PostgreSQL that is
// restarted (fast and immediate) while one member is SIGKILLed: every event is handled at least once,
// none is skipped, the group commits to the end, and no member exits on its own.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Stream } from '../../sql/streams/stream.ts';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import { spawnScript, type ScriptProcess } from '../support/processes.ts';
import { waitFor } from '../support/wait.ts';

const SUBSCRIBER = 'test/resilience/fixtures/stream-subscriber.ts';
const EVENTS = 20_000;

let db: PrivatePostgres;
let dir: string;
const processes: ScriptProcess[] = [];

beforeAll(async () => {
  db = await startPrivatePostgres();
  dir = await mkdtemp(join(tmpdir(), 'mp-resilience-'));
});

afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill()));
  await db?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function seen(file: string): { lines: number; unique: Set<number> } {
  const unique = new Set<number>();
  let lines = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    lines += 1;
    unique.add(Number(line));
  }
  return { lines, unique };
}

it('three members of a group handle 20,000 events through a fast and an immediate restart and a SIGKILL', async () => {
  const results = join(dir, 'events.txt');
  await writeFile(results, '');
  const orders = new Stream<{ id: number }>({ pool: db.pool, name: 'orders' });
  await orders.create();
  for (let from = 0; from < EVENTS; from += 5_000) {
    await orders.publishMany(Array.from({ length: 5_000 }, (_, i) => ({ id: from + i })));
  }
  const start = (name: string): ScriptProcess => {
    const p = spawnScript(name, SUBSCRIBER, { DATABASE_URL: db.url, RESULTS_FILE: results });
    processes.push(p);
    return p;
  };
  const members = [0, 1, 2].map((i) => start(`member-${i}`));
  await Promise.all(members.map((m) => m.waitForOutput('ready')));
  const progress = (): number => seen(results).unique.size;
  const waitForProgress = async (what: string, atLeast: number): Promise<void> => {
    await waitFor(what, () => progress() >= atLeast, { timeoutMs: 45_000, intervalMs: 50 });
  };
  const remainingAtRestart: number[] = [];

  await waitForProgress('2,000 events handled', 2_000);
  remainingAtRestart.push(EVENTS - progress());
  await db.server.restart('fast', { downForMs: 1_000 });
  await waitForProgress('members to resume after the fast restart', progress() + 2_000);

  await members[0]!.kill();
  const survivors = members.slice(1);
  await waitForProgress('members to go on after the SIGKILL', progress() + 2_000);

  remainingAtRestart.push(EVENTS - progress());
  await db.server.restart('immediate', { downForMs: 1_000 });

  await waitForProgress(`all ${EVENTS} events handled`, EVENTS);
  await waitFor(
    'group billing to commit every event',
    async () => {
      const { rows } = await db.pool.query<{ committed: string; lag: string }>(`select committed, lag from mp.group_stats('orders') where grp = 'billing'`);
      return rows[0]?.committed === String(EVENTS) && rows[0].lag === '0';
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  const { lines, unique } = seen(results);
  expect(unique.size).toBe(EVENTS);
  expect(Math.min(...unique)).toBe(1);
  expect(Math.max(...unique)).toBe(EVENTS);
  console.log(
    `stream restart test: events ${EVENTS}, handled ${lines}, duplicates ${lines - unique.size}, restarts 2 (fast, immediate; ` +
      `${remainingAtRestart.join(' and ')} events still to do at each), killed members 1`,
  );
  for (const remaining of remainingAtRestart) expect(remaining).toBeGreaterThan(0);
  for (const m of survivors) expect(m.exit(), `${m.name} exited on its own; stderr: ${m.stderr()}`).toBeUndefined();
  const exits = await Promise.all(survivors.map((m) => m.terminate(25_000)));
  expect(exits).toEqual(survivors.map(() => ({ code: 0, signal: null })));
});
