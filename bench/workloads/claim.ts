/**
 * Claim cost as the backlog grows: with B jobs waiting, time single-job claims one after another.
 * After each timed claim the job is acked and one new job enqueued (both untimed), so the backlog
 * stays at B and the table sees the churn a live queue does. Compare the small and big backlog runs.
 */
import { now } from '../timing.ts';
import { latencyPercentiles } from '../stats.ts';
import { analyze } from './drain.ts';
import { jobPayloads, LATENCY, type QueueWorkload, type WorkloadOptions } from './workload.ts';

/** Backlogs are enqueued in large batches: 1,000,000 jobs through 1,000-job calls would dominate the run. */
const BACKLOG_BATCH = 10_000;
const WARMUP_CLAIMS = 20;

function claimLatency(id: string, big: boolean, backlog: (o: WorkloadOptions) => number): QueueWorkload {
  return {
    id,
    title: `claim latency, ${big ? 'big' : 'small'} backlog`,
    metrics: LATENCY,
    big,
    applies: (c) => typeof c.claimOne === 'function',
    run: async (c, url, o) => {
      const b = backlog(o);
      await c.bulkEnqueue(jobPayloads(b), BACKLOG_BATCH);
      await analyze(url);
      const latencies: number[] = [];
      for (let k = 0; k < WARMUP_CLAIMS + o.claimSamples; k++) {
        const t0 = now();
        const ack = await c.claimOne!();
        if (k >= WARMUP_CLAIMS) latencies.push(now() - t0);
        await ack();
        await c.enqueueOne({ i: b + k });
      }
      return { ...latencyPercentiles(latencies), backlog: b };
    },
  };
}

export const claimSmall = claimLatency('claim-small', false, (o) => o.claimSmallBacklog);
export const claimBig = claimLatency('claim-big', true, (o) => o.claimBigBacklog);
