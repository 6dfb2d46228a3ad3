/**
 * pg-boss 12.38 at its best setting for many short jobs: batches of 1,000 with two local fetch loops
 * (issue 3), LISTEN/NOTIFY wake-ups on the queue so idle workers react at once, and burst fetching
 * while batches come back full. Enqueue uses `insert` (bulk) and `send` (single).
 */
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { benchPool, chunks, deal, type Contender, type ContenderFactory, type JobPayload } from './contender.ts';

const QUEUE = 'bench';
const BATCH_SIZE = 1000;
const LOCAL_CONCURRENCY = 2;

class PgBossContender implements Contender {
  readonly name = 'pg-boss';
  readonly settings = `batchSize ${BATCH_SIZE}, localConcurrency ${LOCAL_CONCURRENCY}, notify, burstWhenBatchFull`;
  private boss?: PgBoss;
  private pool?: pg.Pool;

  async setup(url: string): Promise<void> {
    this.pool = benchPool(url, 2);
    this.boss = new PgBoss({
      connectionString: url,
      max: 10,
      useListenNotify: true,
      schedule: false,
      // Maintenance and monitoring would add unrelated queries mid-measurement.
      supervise: false,
    });
    this.boss.on('error', (err) => console.error('pg-boss:', err));
    await this.boss.start();
    await this.boss.createQueue(QUEUE, { notify: true });
  }

  async bulkEnqueue(payloads: JobPayload[], batchSize: number): Promise<void> {
    for (const batch of chunks(payloads, batchSize)) {
      await this.boss!.insert(
        QUEUE,
        batch.map((data) => ({ data })),
      );
    }
  }

  async singleEnqueue(payloads: JobPayload[], clients: number): Promise<void> {
    await Promise.all(
      deal(payloads, clients).map(async (mine) => {
        for (const p of mine) await this.boss!.send(QUEUE, p);
      }),
    );
  }

  async enqueueOne(payload: JobPayload): Promise<void> {
    await this.boss!.send(QUEUE, payload);
  }

  async startWorkers(handler: (job: JobPayload) => void) {
    const id = await this.boss!.work<JobPayload>(
      QUEUE,
      {
        batchSize: BATCH_SIZE,
        localConcurrency: LOCAL_CONCURRENCY,
        pollingIntervalSeconds: 0.5,
        burstWhenBatchFull: true,
      },
      async (jobs) => {
        for (const job of jobs) handler(job.data);
      },
    );
    return { stop: () => this.boss!.offWork(QUEUE, { id, wait: true }) };
  }

  async remaining(): Promise<number> {
    const { rows } = await this.pool!.query<{ n: number }>(
      `select count(*)::int as n from pgboss.job where name = $1 and state in ('created', 'retry', 'active')`,
      [QUEUE],
    );
    return rows[0]!.n;
  }

  async close(): Promise<void> {
    await this.boss?.stop({ graceful: true, timeout: 5000 });
    await this.pool?.end();
  }
}

export const pgBoss: ContenderFactory = {
  name: 'pg-boss',
  create: () => new PgBossContender(),
};
