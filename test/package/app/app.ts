// A TypeScript app, type-checked (tsc --noEmit) against the .d.ts files the package ships.
import pg from 'pg';
import { z } from 'zod';
import { Queue, type Job } from 'minipaas/queue';
import { Stream, type StreamEvent } from 'minipaas/stream';
import { migrate } from 'minipaas/migrate';
import { MiniPaasError } from 'minipaas/errors';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
await migrate({ connectionString: String(process.env.DATABASE_URL) });
const emails = new Queue({ pool, name: 'emails_ts', schema: z.object({ to: z.string().email() }) });
const id: string = await emails.enqueue({ to: 'c@example.com' });
const worker = emails.work(async (job: Job<{ to: string }>) => {
  const to: string = job.payload.to;
  console.log(id, to);
});
const orders = new Stream<{ id: number }>({ pool, name: 'orders_ts' });
const events: StreamEvent<{ id: number }>[] = await orders.read(0, 10);
const first: number | undefined = events[0]?.payload.id;
console.log(first, new MiniPaasError('X', 'y') instanceof Error);
await worker.stop();
