/**
 * A workload measures one thing about one contender on a fresh database and returns its metrics for
 * that repetition. The runner repeats it, alternating contenders, and summarises across repetitions.
 */
import type { Contender, Subject } from '../contenders/contender.ts';

/** Sizes and rates every workload reads; `run.ts` fills them from the command line. */
export interface WorkloadOptions {
  /** Jobs per throughput measurement (bulk, single, drain). */
  n: number;
  /** Jobs (or events) of the one-per-call enqueue and publish workloads: a rate over 10,000 sequential
   *  commits is as steady as over 50,000, at a fifth of the run time. */
  singleN: number;
  /** Jobs per call of a batch API. */
  bulkBatch: number;
  /** Concurrent clients of the single-enqueue workload. */
  clients: number;
  /** Steady enqueue rate of the latency workloads, per second. */
  latencyRate: number;
  /** Jobs (or events) timed per latency run, after `latencyWarmup` untimed ones. */
  latencyCount: number;
  latencyWarmup: number;
  /** Waiting jobs of the small and the big claim-latency workloads. */
  claimSmallBacklog: number;
  claimBigBacklog: number;
  /** Claims timed per claim-latency run. */
  claimSamples: number;
  /** Jobs processed before the bloat measurement. */
  bloatJobs: number;
  /** Events per stream throughput measurement. */
  streamEvents: number;
  /** Members of the consumer group in the group-throughput workload. */
  groupMembers: number;
  /** Deadline for any one wait (drain to finish, latency jobs to arrive). */
  timeoutMs: number;
}

/** Metric name to value, e.g. `{ jobsPerSec: 41000 }` or `{ p50: 1.2, p95: 2.0, p99: 3.1 }`. */
export type Metrics = Record<string, number>;

/** How to read a metric in tables and charts. */
export interface MetricInfo {
  name: string;
  unit: string;
  higherIsBetter: boolean;
  /** Measured only for subjects that have the optional method behind it (bloat's `compact`). */
  optional?: boolean;
  /** The metric the report compares contenders on (default: the workload's first metric). */
  compared?: boolean;
}

/** One measurement on a subject of type `S` (a queue contender or a stream implementation). */
export interface Workload<S extends Subject> {
  id: string;
  title: string;
  metrics: MetricInfo[];
  /** Long-running (1,000,000 jobs): only run when asked for by name or with `--big`. */
  big: boolean;
  /** Whether `c` can be measured by this workload (some need optional contender methods). */
  applies(s: S): boolean;
  run(s: S, url: string, opts: WorkloadOptions): Promise<Metrics>;
}

export type QueueWorkload = Workload<Contender>;

export const THROUGHPUT: MetricInfo[] = [{ name: 'jobsPerSec', unit: 'jobs/s', higherIsBetter: true }];
export const LATENCY: MetricInfo[] = [
  { name: 'p50', unit: 'ms', higherIsBetter: false },
  { name: 'p95', unit: 'ms', higherIsBetter: false },
  { name: 'p99', unit: 'ms', higherIsBetter: false },
];

/** Payloads `{ i }` for i = from..from+n-1. */
export function jobPayloads(n: number, from = 0): Array<{ i: number }> {
  return Array.from({ length: n }, (_, k) => ({ i: from + k }));
}
