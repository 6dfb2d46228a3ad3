/**
 * What every queue under test implements. Workloads compose these primitives, so each workload is
 * written once and measures every contender the same way.
 *
 * A contender instance lives for one workload of one repetition: `setup` on a fresh empty database,
 * then the workload, then `close`. Nothing carries over between measurements (no warm caches, no
 * bloat from an earlier workload).
 */
import pg from 'pg';

/** One job's payload in every workload: its index for the exactly-once check, and, in latency runs,
 *  the moment (`now()`) its enqueue call started. */
export interface JobPayload {
  i: number;
  t?: number;
}

/** Running workers; `stop` resolves once they have finished and released their connections. */
export interface Workers {
  stop(): Promise<void>;
}

/** Anything measured: a queue contender or a stream implementation. */
export interface Subject {
  /** Short name used in tables and file names, e.g. `graphile-worker`. */
  readonly name: string;
  /** The settings it runs with, for the results, e.g. `concurrency 24, localQueue 200`. */
  readonly settings: string;
  /** Installs its schema (and one queue or stream named `bench`) into the empty database at `url`. */
  setup(url: string): Promise<void>;
  close(): Promise<void>;
}

/** Makes a fresh instance per measurement. */
export interface Factory<S extends Subject> {
  readonly name: string;
  create(): S;
  /** False when its schema is missing (e.g. sql/compat not written yet): it is skipped, and said so. */
  available?(): Promise<boolean>;
}

/** A queue under test. */
export interface Contender extends Subject {
  /** Enqueues `payloads` through the contender's batch API, `batchSize` jobs per call, one client. */
  bulkEnqueue(payloads: JobPayload[], batchSize: number): Promise<void>;
  /** Enqueues one job per call from `clients` concurrent connections, splitting `payloads` between them. */
  singleEnqueue(payloads: JobPayload[], clients: number): Promise<void>;
  /** Enqueues one job (latency runs). */
  enqueueOne(payload: JobPayload): Promise<void>;
  /** Starts workers at the contender's best setting; `handler` is called once per job run. */
  startWorkers(handler: (job: JobPayload) => void): Promise<Workers>;
  /** Jobs not yet completed in the database (waiting or running). */
  remaining(): Promise<number>;
  /** Claim cost probe (claim-latency workload): claims one job and returns a function that acks it. */
  claimOne?(): Promise<() => Promise<void>>;
  /** The tables that hold waiting and running jobs (bloat workload), schema-qualified. */
  hotTables?(): Promise<string[]>;
  /** Gives back the space processed jobs left in the hot tables, as its operators would (bloat workload). */
  compact?(): Promise<void>;
}

export type ContenderFactory = Factory<Contender>;

/**
 * A pool for a contender. Idle clients can be cut by the server (the measurement's database is
 * dropped with force afterwards); without an error listener that would crash the whole run.
 */
export function benchPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  pool.on('error', (err) => {
    if ((err as { code?: string }).code !== '57P01') console.error('bench pool:', err.message);
  });
  return pool;
}

/** Splits `items` into consecutive chunks of at most `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Deals `items` round-robin to `n` lists (one per client). */
export function deal<T>(items: readonly T[], n: number): T[][] {
  const out: T[][] = Array.from({ length: n }, () => []);
  items.forEach((item, i) => out[i % n]!.push(item));
  return out;
}
