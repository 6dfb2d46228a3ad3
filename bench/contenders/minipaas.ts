/**
 * MiniPaaS queues through their SQL API (`mp.enqueue`, `mp.enqueue_batch`, `mp.claim`, `mp.ack`),
 * migrated by the real migrator. Three worker styles are measured:
 * - `minipaas-sql-listen`: the README's raw loop, as an application in any language writes it: each
 *   loop LISTENs on its own connection and claims; nothing else (a short claim registers it as waiting);
 * - `minipaas-sql`: the same loop announcing its waits by hand with `mp.wait_for_jobs` (sql-loop.ts);
 * - `minipaas`: the TypeScript client's `Queue.work` (sql/queues/queue.ts), once it exists.
 * The raw variant names its statements (prepared once per connection, as graphile-worker's are); the
 * client variant enqueues and works through `Queue` exactly as an application would.
 */
import { readdir } from 'node:fs/promises';
import pg from 'pg';
import { migrate } from '../../sql/migrate.ts';
import { compactJobs } from '../../sql/queues/compact.ts';
import { Queue } from '../../sql/queues/queue.ts';
import { benchPool, chunks, deal, type Contender, type ContenderFactory, type JobPayload, type Workers } from './contender.ts';
import { startSqlLoops, type Claimed } from './sql-loop.ts';

const QUEUE = 'bench';
const LOOPS = 4;
const BATCH = 100;

const CLAIM = `select id, payload from mp.claim($1, $2, $3)`;
const ACK = `select mp.ack($1::bigint[])`;
const ENQUEUE = `select mp.enqueue($1, $2::jsonb)`;
const ENQUEUE_BATCH = `select mp.enqueue_batch($1, $2::jsonb)`;

/** The SQL-level parts both MiniPaaS variants share: schema, enqueue, claim probe, bookkeeping. */
abstract class MiniPaasBase implements Contender {
  abstract readonly name: string;
  abstract readonly settings: string;
  protected url = '';
  protected pool?: pg.Pool;

  async setup(url: string): Promise<void> {
    this.url = url;
    await migrate({ connectionString: url });
    this.pool = benchPool(url, 6);
    await this.pool.query(`select mp.queue_create($1)`, [QUEUE]);
  }

  async bulkEnqueue(payloads: JobPayload[], batchSize: number): Promise<void> {
    for (const batch of chunks(payloads, batchSize)) {
      await this.pool!.query({ name: 'mp_enqueue_batch', text: ENQUEUE_BATCH, values: [QUEUE, JSON.stringify(batch)] });
    }
  }

  async singleEnqueue(payloads: JobPayload[], clients: number): Promise<void> {
    await Promise.all(
      deal(payloads, clients).map(async (mine) => {
        const c = await this.pool!.connect();
        try {
          for (const p of mine) await c.query({ name: 'mp_enqueue', text: ENQUEUE, values: [QUEUE, p] });
        } finally {
          c.release();
        }
      }),
    );
  }

  async enqueueOne(payload: JobPayload): Promise<void> {
    await this.pool!.query({ name: 'mp_enqueue', text: ENQUEUE, values: [QUEUE, payload] });
  }

  abstract startWorkers(handler: (job: JobPayload) => void): Promise<Workers>;

  async remaining(): Promise<number> {
    // Completed jobs may stay in mp.jobs (or move elsewhere); whatever a claim could still return counts.
    const { rows } = await this.pool!.query<{ n: number }>(`select count(*)::int as n from mp.jobs where queue = $1`, [
      QUEUE,
    ]);
    return rows[0]!.n;
  }

  async claimOne(): Promise<() => Promise<void>> {
    const c = await this.pool!.connect();
    try {
      const { rows } = await c.query<{ id: string }>({ name: 'mp_claim', text: CLAIM, values: [QUEUE, 'probe', 1] });
      const ids = rows.map((r) => r.id);
      return async () => {
        await this.pool!.query({ name: 'mp_ack', text: ACK, values: [ids] });
      };
    } finally {
      c.release();
    }
  }

  async hotTables(): Promise<string[]> {
    return ['mp.jobs'];
  }

  async close(): Promise<void> {
    await this.pool?.end();
  }

  /** `mp queue compact`, as an operator or the agents run it (bloat workload). */
  async compact(): Promise<void> {
    // Autovacuum may still hold mp.jobs after the drain; a waiting lock request cancels it after 1 s.
    const report = await compactJobs(this.pool!, { lockTimeoutMs: 10_000 });
    if (report.action === 'skipped') throw new Error(`mp queue compact: ${report.reason}`);
  }
}

/** The claim and ack of both raw loops: prepared statements on the loop's connection. */
const rawClaimAck = {
  claim: async (client: pg.Client, batch: number, worker: string): Promise<Claimed> => {
    const { rows } = await client.query<{ id: string; payload: JobPayload }>({
      name: 'mp_claim',
      text: CLAIM,
      values: [QUEUE, worker, batch],
    });
    return { ids: rows.map((r) => r.id), payloads: rows.map((r) => r.payload) };
  },
  ack: async (client: pg.Client, ids: string[]): Promise<void> => {
    await client.query({ name: 'mp_ack', text: ACK, values: [ids] });
  },
};

/** Poll fallback of the README loop: long, so its latency shows NOTIFY wake-ups, not polling. */
const LISTEN_POLL_MS = 10_000;

class MiniPaasSqlListen extends MiniPaasBase {
  readonly name = 'minipaas-sql-listen';
  readonly settings = `raw SQL as in the README: ${LOOPS} loops, each LISTENs on its own connection, claim batch ${BATCH} + ack, no mp.wait_for_jobs; poll fallback ${LISTEN_POLL_MS / 1000} s`;

  startWorkers(handler: (job: JobPayload) => void): Promise<Workers> {
    return startSqlLoops(
      {
        url: this.url,
        loops: LOOPS,
        batch: BATCH,
        channel: `mp_queue_${QUEUE}`,
        listenOnEachLoop: true,
        idleWaitMs: LISTEN_POLL_MS,
        // A claim that comes back short registers its worker as waiting (sql/queues/0004).
        ...rawClaimAck,
      },
      handler,
    );
  }
}

class MiniPaasSql extends MiniPaasBase {
  readonly name = 'minipaas-sql';
  readonly settings = `raw SQL: ${LOOPS} loops, claim batch ${BATCH}, LISTEN wake-ups announced with mp.wait_for_jobs`;

  startWorkers(handler: (job: JobPayload) => void): Promise<Workers> {
    return startSqlLoops(
      {
        url: this.url,
        loops: LOOPS,
        batch: BATCH,
        channel: `mp_queue_${QUEUE}`,
        idleWaitMs: 1000,
        ...rawClaimAck,
        // Enqueues NOTIFY only while some worker waits (NOTIFY serialises commits; sql/queues/0002).
        announceWait: async (client, worker) => {
          await client.query({ name: 'mp_wait', text: `select mp.wait_for_jobs($1, $2)`, values: [QUEUE, worker] });
        },
        doneWaiting: async (client, worker) => {
          await client.query({ name: 'mp_done_waiting', text: `select mp.done_waiting($1, $2)`, values: [QUEUE, worker] });
        },
      },
      handler,
    );
  }
}

/** `Queue.work` settings: each worker runs one claim loop, so two workers keep claims overlapping. */
const CLIENT_WORKERS = 2;
const CLIENT_CONCURRENCY = 250;
const CLIENT_BATCH = 250;

class MiniPaasClient extends MiniPaasBase {
  readonly name = 'minipaas';
  readonly settings = `Queue client: ${CLIENT_WORKERS} x work({ concurrency: ${CLIENT_CONCURRENCY}, batch: ${CLIENT_BATCH} }), enqueue/enqueueMany`;
  private queue?: Queue<JobPayload>;

  override async setup(url: string): Promise<void> {
    await super.setup(url);
    this.queue = new Queue<JobPayload>({ pool: this.pool!, name: QUEUE });
  }

  override async bulkEnqueue(payloads: JobPayload[], batchSize: number): Promise<void> {
    for (const batch of chunks(payloads, batchSize)) await this.queue!.enqueueMany(batch);
  }

  override async singleEnqueue(payloads: JobPayload[], clients: number): Promise<void> {
    await Promise.all(
      deal(payloads, clients).map(async (mine) => {
        for (const p of mine) await this.queue!.enqueue(p);
      }),
    );
  }

  override async enqueueOne(payload: JobPayload): Promise<void> {
    await this.queue!.enqueue(payload);
  }

  async startWorkers(handler: (job: JobPayload) => void): Promise<Workers> {
    // Workers get their own pool, as a worker process would; enqueue traffic keeps this.pool.
    const pool = benchPool(this.url, 4 * CLIENT_WORKERS);
    const queue = new Queue<JobPayload>({ pool, name: QUEUE });
    const workers = Array.from({ length: CLIENT_WORKERS }, () =>
      queue.work(async (job) => handler(job.payload), {
        concurrency: CLIENT_CONCURRENCY,
        batch: CLIENT_BATCH,
        onError: (err) => console.error('minipaas worker:', err),
      }),
    );
    return {
      stop: async () => {
        await Promise.all(workers.map((w) => w.stop()));
        await pool.end();
      },
    };
  }
}

export const miniPaas: ContenderFactory = {
  name: 'minipaas',
  create: () => new MiniPaasClient(),
  available: hasQueueSql,
};

export const miniPaasSqlListen: ContenderFactory = {
  name: 'minipaas-sql-listen',
  create: () => new MiniPaasSqlListen(),
  available: hasQueueSql,
};

export const miniPaasSql: ContenderFactory = {
  name: 'minipaas-sql',
  create: () => new MiniPaasSql(),
  available: hasQueueSql,
};

/** True once sql/queues holds more than the shared helpers (0001), i.e. the queue functions landed. */
export async function hasQueueSql(): Promise<boolean> {
  const files = await readdir(new URL('../../sql/queues/', import.meta.url));
  return files.some((f) => /^\d{4}_.*\.sql$/.test(f) && !f.startsWith('0001_'));
}
