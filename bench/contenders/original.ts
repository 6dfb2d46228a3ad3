/**
 * The `minipaas_queue_*` functions, two ways, measured as issue 3 describes them: 4 loops of dequeue
 * (batch 100) + ack; bulk enqueue is one statement calling `minipaas_queue_enqueue` per row.
 * - `original`: the original toolkit's implementation (original-baseline.sql, re-created for the
 *   benchmark): a table per queue, status column, no leases, no retries, done rows kept.
 * - `compat`: MiniPaaS's compatible wrappers (sql/compat) over mp.* queues, migrated for real.
 */
import { readdir, readFile } from 'node:fs/promises';
import pg from 'pg';
import { migrate } from '../../sql/migrate.ts';
import { benchPool, chunks, deal, type Contender, type ContenderFactory, type JobPayload, type Workers } from './contender.ts';
import { startSqlLoops } from './sql-loop.ts';

const QUEUE = 'bench';
const LOOPS = 4;
const BATCH = 100;

const ENQUEUE = `select minipaas_queue_enqueue($1, $2::jsonb)`;
const ENQUEUE_ROWS = `select minipaas_queue_enqueue($1, p) from jsonb_array_elements($2::jsonb) p`;
const DEQUEUE = `select * from minipaas_queue_dequeue($1, $2)`;
const ACK = `select minipaas_queue_ack($1, $2::int[])`;

type Flavour = 'original' | 'compat';

class MinipaasFunctionsContender implements Contender {
  readonly settings: string;
  private url = '';
  private pool?: pg.Pool;

  constructor(readonly name: Flavour) {
    this.settings =
      name === 'original'
        ? `original toolkit functions (table per queue, no lease): ${LOOPS} loops, batch ${BATCH}`
        : `sql/compat wrappers over mp.*: ${LOOPS} loops, batch ${BATCH}`;
  }

  async setup(url: string): Promise<void> {
    this.url = url;
    if (this.name === 'compat') {
      await migrate({ connectionString: url });
    } else {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(await readFile(new URL('./original-baseline.sql', import.meta.url), 'utf8')).finally(() => c.end());
    }
    this.pool = benchPool(url, 6);
    await this.pool.query(`select minipaas_queue_create($1)`, [QUEUE]);
  }

  async bulkEnqueue(payloads: JobPayload[], batchSize: number): Promise<void> {
    for (const batch of chunks(payloads, batchSize)) {
      await this.pool!.query({ name: 'orig_enqueue_rows', text: ENQUEUE_ROWS, values: [QUEUE, JSON.stringify(batch)] });
    }
  }

  async singleEnqueue(payloads: JobPayload[], clients: number): Promise<void> {
    await Promise.all(
      deal(payloads, clients).map(async (mine) => {
        const c = await this.pool!.connect();
        try {
          for (const p of mine) await c.query({ name: 'orig_enqueue', text: ENQUEUE, values: [QUEUE, p] });
        } finally {
          c.release();
        }
      }),
    );
  }

  async enqueueOne(payload: JobPayload): Promise<void> {
    await this.pool!.query({ name: 'orig_enqueue', text: ENQUEUE, values: [QUEUE, payload] });
  }

  startWorkers(handler: (job: JobPayload) => void): Promise<Workers> {
    return startSqlLoops(
      {
        url: this.url,
        loops: LOOPS,
        batch: BATCH,
        // An app written for the original toolkit LISTENs on the queue's name; it does so on compat too.
        channel: QUEUE,
        idleWaitMs: 1000,
        claim: async (client, batch) => {
          const { rows } = await client.query<{ id: string; payload: JobPayload }>({
            name: 'orig_dequeue',
            text: DEQUEUE,
            values: [QUEUE, batch],
          });
          return { ids: rows.map((r) => r.id), payloads: rows.map((r) => r.payload) };
        },
        ack: async (client, ids) => {
          await client.query({ name: 'orig_ack', text: ACK, values: [QUEUE, ids] });
        },
      },
      handler,
    );
  }

  async remaining(): Promise<number> {
    const sql =
      this.name === 'original'
        ? `select count(*)::int as n from ${QUEUE} where status <> 'done'`
        : `select count(*)::int as n from mp.jobs where queue = '${QUEUE}'`;
    const { rows } = await this.pool!.query<{ n: number }>(sql);
    return rows[0]!.n;
  }

  async claimOne(): Promise<() => Promise<void>> {
    const { rows } = await this.pool!.query<{ id: string }>({ name: 'orig_dequeue', text: DEQUEUE, values: [QUEUE, 1] });
    const ids = rows.map((r) => r.id);
    return async () => {
      await this.pool!.query({ name: 'orig_ack', text: ACK, values: [QUEUE, ids] });
    };
  }

  async close(): Promise<void> {
    await this.pool?.end();
  }

  async hotTables(): Promise<string[]> {
    return this.name === 'original' ? [`public.${QUEUE}`] : ['mp.jobs'];
  }
}

export const original: ContenderFactory = {
  name: 'original',
  create: () => new MinipaasFunctionsContender('original'),
};

export const compat: ContenderFactory = {
  name: 'compat',
  create: () => new MinipaasFunctionsContender('compat'),
  available: async () => (await readdir(new URL('../../sql/compat/', import.meta.url))).some((f) => f.endsWith('.sql')),
};
