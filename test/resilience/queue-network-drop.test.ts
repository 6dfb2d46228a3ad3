// README queue workers reach a private PostgreSQL through a TCP proxy that the test cuts: every
// connection is reset and new ones are refused for 3 s. The workers survive, resume, and lose nothing.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import type { ScriptProcess } from '../support/processes.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';
import { waitFor } from '../support/wait.ts';
import { enqueueNumbered, expectAliveThenCleanExit, expectDrained, handled, startWorker } from './queue-jobs.ts';

let db: PrivatePostgres;
let dir: string;
const processes: ScriptProcess[] = [];

beforeAll(async () => {
  db = await startPrivatePostgres();
  dir = await mkdtemp(join(tmpdir(), 'mp-resilience-'));
  await db.pool.query(`select mp.queue_create('emails', '{"lease_seconds": 3}')`);
});

afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill()));
  await db?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('two README workers ride out a network drop between them and PostgreSQL', async () => {
  const proxy = await startTcpProxy(Number(new URL(db.url).port));
  try {
    const results = join(dir, 'drop.txt');
    await writeFile(results, '');
    const count = 5_000;
    await enqueueNumbered(db.pool, '', count);
    const workers = [0, 1].map((i) => startWorker(processes, `proxied-${i}`, proxy.rewrite(db.url), results));
    await Promise.all(workers.map((w) => w.waitForOutput('ready')));
    const progress = (): number => handled(results, '').unique.size;
    await waitFor('1,000 jobs handled', () => progress() >= 1_000, { timeoutMs: 30_000, intervalMs: 50 });
    const remaining = count - progress();
    await proxy.cut(3_000);
    await waitFor(`all ${count} jobs handled after the drop`, () => progress() >= count, { timeoutMs: 45_000, intervalMs: 50 });
    await expectDrained(db.pool);
    const { lines } = handled(results, '');
    console.log(`queue network-drop test: jobs ${count}, duplicates ${lines - count}, drop 3 s with ${remaining} jobs still to do`);
    expect(remaining).toBeGreaterThan(0);
    // The workers came back through the proxy (their LISTEN and pool connections).
    expect(proxy.open).toBeGreaterThan(0);
    await expectAliveThenCleanExit(workers);
  } finally {
    await proxy.close();
  }
});
