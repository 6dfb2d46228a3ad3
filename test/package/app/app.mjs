// The README's example, as a user writes it in a plain Node ESM app: enqueue and work a job, publish and
// read an event. Prints one JSON line with what it saw; exits non-zero on any failure.
import pg from 'pg';
import { z } from 'zod';
import { Queue } from 'minipaas/queue';
import { Stream } from 'minipaas/stream';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
const emails = new Queue({ pool, name: 'emails_esm', schema: z.object({ to: z.string().email() }) });
await emails.create();
await emails.enqueue({ to: 'a@example.com' });
const handled = await new Promise((resolve, reject) => {
  const worker = emails.work(async (job) => {
    resolve(job.payload.to);
    void worker.stop();
  }, { concurrency: 2, onError: reject });
});

const orders = new Stream({ pool, name: 'orders_esm' });
await orders.create();
await orders.publish({ id: 7, total: 12.5 }, { key: 'customer-3' });
const events = await orders.read(0, 10);
console.log(JSON.stringify({ handled, events: events.map((e) => e.payload) }));
await pool.end();
