// README queue workers as real processes against a private PostgreSQL that is restarted (fast and
// immediate), whose network is cut, and one of which is SIGKILLed: every job is handled at least once,
// none is lost, and no worker exits on its own.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { Queue } from '../../sql/queues/queue.ts';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import { spawnScript, type ScriptProcess } from '../support/processes.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';
import { waitFor } from '../support/wait.ts';

const WORKER = 'test/resilience/fixtures/queue-worker.ts';
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

/** Handled addresses of the form `<prefix><n>@jobs.test`, from the workers' shared results file. */
function handled(file: string, prefix: string): { lines: number; unique: Set<number> } {
  const unique = new Set<number>();
  let lines = 0;
  const pattern = new RegExp(`^${prefix}(\\d+)@jobs\\.test$`);
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = pattern.exec(line);
    if (!m) continue;
    lines += 1;
    unique.add(Number(m[1]));
  }
  return { lines, unique };
}

async function enqueue(prefix: string, count: number): Promise<void> {
  const queue = new Queue<{ to: string }>({ pool: db.pool, name: 'emails' });
  for (let from = 0; from < count; from += 5_000) {
    const n = Math.min(5_000, count - from);
    await queue.enqueueMany(Array.from({ length: n }, (_, i) => ({ to: `${prefix}${from + i}@jobs.test` })));
  }
}

function startWorker(name: string, url: string, results: string): ScriptProcess {
  const p = spawnScript(name, WORKER, { DATABASE_URL: url, RESULTS_FILE: results });
  processes.push(p);
  return p;
}

/** Asserts the queue is drained: nothing waiting, scheduled or running, nothing dead. */
async function expectDrained(): Promise<void> {
  await waitFor(
    'queue emails to be empty',
    async () => {
      const { rows } = await db.pool.query<{ waiting: string; scheduled: string; running: string }>(`select * from mp.queue_stats('emails')`);
      const r = rows[0]!;
      return Number(r.waiting) + Number(r.scheduled) + Number(r.running) === 0;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  const dead = await db.pool.query<{ n: string }>(`select count(*) as n from mp.dead_jobs where queue = 'emails'`);
  expect(Number(dead.rows[0]!.n)).toBe(0);
}

async function expectAliveThenCleanExit(workers: ScriptProcess[]): Promise<void> {
  for (const w of workers) expect(w.exit(), `${w.name} exited on its own; stderr: ${w.stderr()}`).toBeUndefined();
  // README's SIGTERM handler stops the worker; the process then ends once the pool's idle clients time out.
  const exits = await Promise.all(workers.map((w) => w.terminate(25_000)));
  expect(exits).toEqual(workers.map(() => ({ code: 0, signal: null })));
}

it('three README workers drain 20,000 jobs through a fast and an immediate restart and a SIGKILL', async () => {
  const results = join(dir, 'restart.txt');
  await writeFile(results, '');
  await enqueue('', JOBS);
  const workers = [0, 1, 2].map((i) => startWorker(`worker-${i}`, db.url, results));
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
  const replacement = startWorker('worker-3 (replacement)', db.url, results);
  // Its start-up (`await emails.create()`) needs the database, as any app's does.
  await replacement.waitForOutput('ready');
  const survivors = [...workers.slice(1), replacement];
  await waitForProgress('workers to go on after the SIGKILL', progress() + 2_000);

  remainingAtRestart.push(JOBS - progress());
  await db.server.restart('immediate', { downForMs: 1_000 });

  await waitForProgress(`all ${JOBS} jobs handled`, JOBS);
  await expectDrained();
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

it('two README workers ride out a network drop between them and PostgreSQL', async () => {
  const proxy = await startTcpProxy(Number(new URL(db.url).port));
  try {
    const results = join(dir, 'drop.txt');
    await writeFile(results, '');
    const count = 5_000;
    await enqueue('n', count);
    const workers = [0, 1].map((i) => startWorker(`proxied-${i}`, proxy.rewrite(db.url), results));
    await Promise.all(workers.map((w) => w.waitForOutput('ready')));
    const progress = (): number => handled(results, 'n').unique.size;
    await waitFor('1,000 jobs handled', () => progress() >= 1_000, { timeoutMs: 30_000, intervalMs: 50 });
    const remaining = count - progress();
    await proxy.cut(3_000);
    await waitFor(`all ${count} jobs handled after the drop`, () => progress() >= count, { timeoutMs: 45_000, intervalMs: 50 });
    await expectDrained();
    const { lines } = handled(results, 'n');
    console.log(`queue network-drop test: jobs ${count}, duplicates ${lines - count}, drop 3 s with ${remaining} jobs still to do`);
    expect(remaining).toBeGreaterThan(0);
    expect(proxy.open).toBeGreaterThan(0);
    await expectAliveThenCleanExit(workers);
  } finally {
    await proxy.close();
  }
});
