/**
 * Enqueue-to-handler latency with idle workers: jobs are enqueued one at a time at a steady rate
 * (absolute schedule, so a slow enqueue does not hide later delays), and each job's latency is the
 * time from the start of its enqueue call (so it includes the enqueue's commit) to its handler call.
 * Enqueuer and workers share this process and its clock.
 */
import { now, paced, sleep, waitUntil } from '../timing.ts';
import { latencyPercentiles } from '../stats.ts';
import { RunLedger } from './exactly-once.ts';
import { LATENCY, type QueueWorkload } from './workload.ts';

export const latency: QueueWorkload = {
  id: 'latency',
  title: 'enqueue-to-handler latency',
  metrics: LATENCY,
  big: false,
  applies: () => true,
  run: async (c, _url, o) => {
    const total = o.latencyWarmup + o.latencyCount;
    const ledger = new RunLedger(total);
    const latencies: number[] = [];
    const workers = await c.startWorkers((job) => {
      const at = now();
      ledger.record(job.i, at);
      if (job.i >= o.latencyWarmup && job.t !== undefined) latencies.push(at - job.t);
    });
    try {
      await sleep(300); // let the workers reach their idle wait (LISTEN, first empty fetch)
      await paced(total, o.latencyRate, (i) => c.enqueueOne({ i, t: now() }));
      await waitUntil(`${c.name} to run ${total} latency jobs`, () => ledger.handled >= total, {
        timeoutMs: o.timeoutMs,
      });
    } finally {
      await workers.stop();
    }
    ledger.assertExactlyOnce(c.name);
    return latencyPercentiles(latencies);
  },
};
