/**
 * graphile-worker 0.18 at its best setting for many short jobs: 24 concurrent jobs fed from a local
 * queue of 200 locked jobs, completions batched with a 0 ms delay (same tick). Enqueue goes through
 * `WorkerUtils.addJobs` (bulk) and `addJob` (single), as an application would.
 */
import { Logger, makeWorkerUtils, run, type WorkerUtils } from 'graphile-worker';
import pg from 'pg';
import { chunks, deal, type Contender, type ContenderFactory, type JobPayload } from './contender.ts';

const TASK = 'bench_noop';
const CONCURRENCY = 24;
const LOCAL_QUEUE_SIZE = 200;
const silent = new Logger(() => () => {});

class GraphileWorkerContender implements Contender {
  readonly name = 'graphile-worker';
  readonly settings = `concurrency ${CONCURRENCY}, localQueue ${LOCAL_QUEUE_SIZE}, completeJobBatchDelay 0`;
  private url = '';
  private utils?: WorkerUtils;
  private pool?: pg.Pool;

  async setup(url: string): Promise<void> {
    this.url = url;
    this.pool = new pg.Pool({ connectionString: url, max: 6 });
    this.pool.on('error', (err) => console.error('graphile-worker utils pool:', err));
    this.pool.on('connect', (client) => client.on('error', (err) => console.error('graphile-worker utils client:', err)));
    this.utils = await makeWorkerUtils({ pgPool: this.pool, logger: silent });
    await this.utils.migrate();
  }

  async bulkEnqueue(payloads: JobPayload[], batchSize: number): Promise<void> {
    for (const batch of chunks(payloads, batchSize)) {
      await this.utils!.addJobs(batch.map((payload) => ({ identifier: TASK, payload })));
    }
  }

  async singleEnqueue(payloads: JobPayload[], clients: number): Promise<void> {
    await Promise.all(
      deal(payloads, clients).map(async (mine) => {
        for (const p of mine) await this.utils!.addJob(TASK, p);
      }),
    );
  }

  async enqueueOne(payload: JobPayload): Promise<void> {
    await this.utils!.addJob(TASK, payload);
  }

  async startWorkers(handler: (job: JobPayload) => void) {
    const runner = await run({
      connectionString: this.url,
      concurrency: CONCURRENCY,
      maxPoolSize: CONCURRENCY + 2,
      noHandleSignals: true,
      logger: silent,
      taskList: {
        [TASK]: async (payload) => {
          handler(payload as JobPayload);
        },
      },
      preset: {
        worker: {
          localQueue: { size: LOCAL_QUEUE_SIZE },
          completeJobBatchDelay: 0,
          failJobBatchDelay: 0,
        },
      },
    });
    return { stop: () => runner.stop() };
  }

  async remaining(): Promise<number> {
    const { rows } = await this.pool!.query<{ n: number }>(`select count(*)::int as n from graphile_worker._private_jobs`);
    return rows[0]!.n;
  }

  /** The jobs table graphile-worker claims from (its queues and job-queue tables are small). */
  async hotTables(): Promise<string[]> {
    return ['graphile_worker._private_jobs'];
  }

  async close(): Promise<void> {
    await this.utils?.release();
    await this.pool?.end();
  }
}

export const graphileWorker: ContenderFactory = {
  name: 'graphile-worker',
  create: () => new GraphileWorkerContender(),
};
