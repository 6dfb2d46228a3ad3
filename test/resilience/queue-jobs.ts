/**
 * What the queue resilience tests share: the README worker fixture, enqueueing numbered jobs, reading
 * back what the workers handled, and the end-of-test checks (drained, nothing dead, no worker exited on
 * its own, each exits 0 on SIGTERM).
 */
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import { expect } from 'vitest';
import { Queue } from '../../sql/queues/queue.ts';
import { spawnScript, type ScriptProcess } from '../support/processes.ts';
import { waitFor } from '../support/wait.ts';

/** The README's queue worker (queue `emails`), as a script. */
export const WORKER = 'test/resilience/fixtures/queue-worker.ts';

/** Handled addresses of the form `<prefix><n>@jobs.test`, from the workers' shared results file. */
export function handled(file: string, prefix: string): { lines: number; unique: Set<number> } {
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

/** Enqueues `count` jobs `<prefix>0@jobs.test`... on queue `emails`. */
export async function enqueueNumbered(pool: pg.Pool, prefix: string, count: number): Promise<void> {
  const queue = new Queue<{ to: string }>({ pool, name: 'emails' });
  for (let from = 0; from < count; from += 5_000) {
    const n = Math.min(5_000, count - from);
    await queue.enqueueMany(Array.from({ length: n }, (_, i) => ({ to: `${prefix}${from + i}@jobs.test` })));
  }
}

/** Starts a README worker process writing to `results`; it is added to `processes` (for cleanup). */
export function startWorker(processes: ScriptProcess[], name: string, url: string, results: string): ScriptProcess {
  const p = spawnScript(name, WORKER, { DATABASE_URL: url, RESULTS_FILE: results });
  processes.push(p);
  return p;
}

/** Asserts the queue is drained: nothing waiting, scheduled or running, nothing dead. */
export async function expectDrained(pool: pg.Pool): Promise<void> {
  await waitFor(
    'queue emails to be empty',
    async () => {
      const { rows } = await pool.query<{ waiting: string; scheduled: string; running: string }>(`select * from mp.queue_stats('emails')`);
      const r = rows[0]!;
      return Number(r.waiting) + Number(r.scheduled) + Number(r.running) === 0;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  const dead = await pool.query<{ n: string }>(`select count(*) as n from mp.dead_jobs where queue = 'emails'`);
  expect(Number(dead.rows[0]!.n)).toBe(0);
}

/** Asserts none exited on its own, then SIGTERMs them all: each must exit 0. */
export async function expectAliveThenCleanExit(workers: ScriptProcess[]): Promise<void> {
  for (const w of workers) expect(w.exit(), `${w.name} exited on its own; stderr: ${w.stderr()}`).toBeUndefined();
  // The README's SIGTERM handler stops the worker; the process then ends once the pool's idle clients
  // time out (pg's idleTimeoutMillis, 10 s), as the README's code is written.
  const exits = await Promise.all(workers.map((w) => w.terminate(25_000)));
  expect(exits).toEqual(workers.map(() => ({ code: 0, signal: null })));
}
