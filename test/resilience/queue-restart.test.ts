// README queue workers as real processes against a private PostgreSQL that is restarted (fast and
// immediate) while one of them is SIGKILLed: every job is handled at least once, none is lost, and no
// worker exits on its own. The network drop is in queue-network-drop.test.ts (its own server, so the two
// files run side by side).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import type { ScriptProcess } from '../support/processes.ts';
import { waitFor } from '../support/wait.ts';
import { enqueueNumbered, expectAliveThenCleanExit, expectDrained, handled, startWorker } from './queue-jobs.ts';

const JOBS = 20_000;
/** Short, so the jobs a killed worker held come back within seconds. */
const LEASE_SECONDS = 3;

let db: PrivatePostgres;
let dir: string;
const processes: ScriptProcess[] = [];

beforeAll(async () => {
  db = await startPrivatePostgres();
  dir = await mkdtemp(join(tmpdir(), 'mp-resilience-'));
  await db.pool.query(`select mp.queue_create('emails', $1)`, [JSON.stringify({ lease_seconds: LEASE_SECONDS })]);
});

// A failed test must not leave workers claiming the next test's jobs.
afterEach(async () => {
  await Promise.all(processes.splice(0).map((p) => p.kill()));
});

afterAll(async () => {
  await db?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('three README workers drain 20,000 jobs through a fast and an immediate restart and a SIGKILL', async () => {
  const results = join(dir, 'restart.txt');
  await writeFile(results, '');
  await enqueueNumbered(db.pool, '', JOBS);
  const workers = [0, 1, 2].map((i) => startWorker(processes, `worker-${i}`, db.url, results));
  await Promise.all(workers.map((w) => w.waitForOutput('ready')));
  const progress = (): number => handled(results, '').unique.size;
  const waitForProgress = async (what: string, atLeast: number): Promise<void> => {
    await waitFor(what, () => progress() >= atLeast, { timeoutMs: 45_000, intervalMs: 50 });
  };
  const remainingAtRestart: number[] = [];

  await waitForProgress('2,000 jobs handled', 2_000);
  remainingAtRestart.push(JOBS - progress());
  await db.server.restart('fast', { downForMs: 1_000 });
  await waitForProgress('workers to resume after the fast restart', progress() + 2_000);

  await workers[0]!.kill();
  const replacement = startWorker(processes, 'worker-3 (replacement)', db.url, results);
  // Its start-up (`await emails.create()`) needs the database, as any app's does.
  await replacement.waitForOutput('ready');
  const survivors = [...workers.slice(1), replacement];
  await waitForProgress('workers to go on after the SIGKILL', progress() + 2_000);

  remainingAtRestart.push(JOBS - progress());
  await db.server.restart('immediate', { downForMs: 1_000 });

  await waitForProgress(`all ${JOBS} jobs handled`, JOBS);
  await expectDrained(db.pool);
  const { lines, unique } = handled(results, '');
  expect(unique.size).toBe(JOBS);
  console.log(
    `queue restart test: jobs ${JOBS}, handled ${lines}, duplicates ${lines - unique.size}, restarts 2 (fast, immediate; ` +
      `${remainingAtRestart.join(' and ')} jobs still to do at each), killed workers 1 (replaced), workers that exited on their own 0`,
  );
  // The restarts came while jobs were still waiting, or they tested nothing.
  for (const remaining of remainingAtRestart) expect(remaining).toBeGreaterThan(0);
  await expectAliveThenCleanExit(survivors);
});
