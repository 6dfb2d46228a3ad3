/* global AbortController */
// The worker: drains hello_jobs with Queue.work and records each handled job as an event on the
// stream hello_processed (the API's GET / counts them). Delivery is at least once: a job whose ack was
// lost is handled again, so a job may be recorded twice.
import { hostname } from 'node:os';
import { connect, log, ready, VERSION } from './app.mjs';

const pool = connect();
const stopping = new AbortController();
const concurrency = Number(process.env.WORKER_CONCURRENCY ?? 4);

const { jobs, processed } = await ready(pool, { signal: stopping.signal });
const worker = jobs.work(
  async (job) => {
    log('handled', { job: job.id, attempt: job.attempt, payload: job.payload });
    await processed.publish({ job: job.id, payload: job.payload, worker: hostname(), version: VERSION }, { key: job.id });
  },
  {
    concurrency,
    // The worker survives a lost database (it retries with backoff); these are only reported.
    onError: (err) => log('worker error', { error: err instanceof Error ? err.message : String(err) }),
  },
);
log('working', { queue: 'hello_jobs', concurrency, version: VERSION });

process.once('SIGTERM', async () => {
  stopping.abort();
  await worker.stop();
  await pool.end();
  process.exit(0);
});
