/**
 * Enqueue throughput: N jobs through each contender's batch API from one client, and N jobs one per
 * call from several concurrent clients (each call its own transaction and commit, as when many web
 * requests each enqueue one job).
 */
import { now } from '../timing.ts';
import { jobPayloads, THROUGHPUT, type QueueWorkload } from './workload.ts';
import type { Contender } from '../contenders/contender.ts';

async function assertEnqueued(c: Contender, n: number): Promise<void> {
  const left = await c.remaining();
  if (left !== n) throw new Error(`${c.name}: enqueued ${n} jobs but ${left} are waiting`);
}

export const bulkEnqueue: QueueWorkload = {
  id: 'bulk-enqueue',
  title: 'bulk enqueue',
  metrics: THROUGHPUT,
  big: false,
  applies: () => true,
  run: async (c, _url, o) => {
    const payloads = jobPayloads(o.n);
    const t0 = now();
    await c.bulkEnqueue(payloads, o.bulkBatch);
    const seconds = (now() - t0) / 1000;
    await assertEnqueued(c, o.n);
    return { jobsPerSec: o.n / seconds };
  },
};

export const singleEnqueue: QueueWorkload = {
  id: 'single-enqueue',
  title: 'single enqueue, 4 clients',
  metrics: THROUGHPUT,
  big: false,
  applies: () => true,
  run: async (c, _url, o) => {
    const payloads = jobPayloads(o.singleN);
    const t0 = now();
    await c.singleEnqueue(payloads, o.clients);
    const seconds = (now() - t0) / 1000;
    await assertEnqueued(c, o.singleN);
    return { jobsPerSec: o.singleN / seconds };
  },
};
