/**
 * Stream workloads: publish throughput (batch API from one client; single publishes from several
 * clients), read throughput of one reader and of a 4-member consumer group over N pre-published
 * events (timed from the first event handled; every event handled exactly once; the group's offset
 * committed to the end), and
 * publish-to-consumer latency at a steady rate with an idle reader.
 */
import type { StreamSubject } from '../contenders/minipaas-streams.ts';
import { latencyPercentiles } from '../stats.ts';
import { now, paced, sleep, waitUntil } from '../timing.ts';
import { RunLedger } from './exactly-once.ts';
import { jobPayloads, LATENCY, type MetricInfo, type Workload } from './workload.ts';

const EVENTS: MetricInfo[] = [{ name: 'eventsPerSec', unit: 'events/s', higherIsBetter: true }];

export type StreamWorkload = Workload<StreamSubject>;

export const streamPublishBatch: StreamWorkload = {
  id: 'stream-publish-batch',
  title: 'stream publish, batch',
  metrics: EVENTS,
  big: false,
  applies: () => true,
  run: async (s, _url, o) => {
    const t0 = now();
    await s.publishBatch(jobPayloads(o.streamEvents), o.bulkBatch);
    return { eventsPerSec: o.streamEvents / ((now() - t0) / 1000) };
  },
};

export const streamPublishSingle: StreamWorkload = {
  id: 'stream-publish-single',
  title: `stream publish, single, 4 clients`,
  metrics: EVENTS,
  big: false,
  applies: () => true,
  run: async (s, _url, o) => {
    const t0 = now();
    await s.publishSingle(jobPayloads(o.singleN), o.clients);
    return { eventsPerSec: o.singleN / ((now() - t0) / 1000) };
  },
};

export const streamRead: StreamWorkload = {
  id: 'stream-read',
  title: 'stream read, one reader',
  metrics: EVENTS,
  big: false,
  applies: () => true,
  run: async (s, _url, o) => {
    const n = o.streamEvents;
    await s.publishBatch(jobPayloads(n), o.bulkBatch);
    const ledger = new RunLedger(n);
    let lastPos = 0;
    const reader = await s.startReader((e, pos) => {
      if (pos <= lastPos) throw new Error(`reader went backwards: pos ${pos} after ${lastPos}`);
      lastPos = pos;
      ledger.record(e.i, now());
    });
    let end: number;
    try {
      await waitUntil(`reader to read ${n} events`, () => ledger.handled >= n, { timeoutMs: o.timeoutMs });
      end = now();
    } finally {
      await reader.stop();
    }
    ledger.assertExactlyOnce(s.name);
    return { eventsPerSec: n / ((end - ledger.firstAt) / 1000) };
  },
};

export const streamGroup: StreamWorkload = {
  id: 'stream-group',
  title: 'stream consumer group, 4 members',
  metrics: EVENTS,
  big: false,
  applies: () => true,
  run: async (s, _url, o) => {
    const n = o.streamEvents;
    await s.publishBatch(jobPayloads(n), o.bulkBatch);
    const ledger = new RunLedger(n);
    const group = await s.startGroup(o.groupMembers, (e) => ledger.record(e.i, now()));
    let end: number;
    try {
      await waitUntil(`group to handle ${n} events`, () => ledger.handled >= n, { timeoutMs: o.timeoutMs });
      await waitUntil(`group to commit ${n} events`, async () => (await s.groupCommitted()) >= n, {
        timeoutMs: o.timeoutMs,
        intervalMs: 1,
      });
      end = now();
    } finally {
      await group.stop();
    }
    ledger.assertExactlyOnce(s.name);
    return { eventsPerSec: n / ((end - ledger.firstAt) / 1000) };
  },
};

export const streamLatency: StreamWorkload = {
  id: 'stream-latency',
  title: 'publish-to-consumer latency',
  metrics: LATENCY,
  big: false,
  applies: () => true,
  run: async (s, _url, o) => {
    const total = o.latencyWarmup + o.latencyCount;
    const ledger = new RunLedger(total);
    const latencies: number[] = [];
    const reader = await s.startReader((e) => {
      const at = now();
      ledger.record(e.i, at);
      if (e.i >= o.latencyWarmup && e.t !== undefined) latencies.push(at - e.t);
    });
    try {
      await sleep(300);
      await paced(total, o.latencyRate, (i) => s.publishOne({ i, t: now() }));
      await waitUntil(`reader to get ${total} events`, () => ledger.handled >= total, { timeoutMs: o.timeoutMs });
    } finally {
      await reader.stop();
    }
    ledger.assertExactlyOnce(s.name);
    return latencyPercentiles(latencies);
  },
};
