// The same app in CommonJS: `require` of the package's ESM entry points (Node 20.19+ loads ES modules
// with require when they use no top-level await).
const pg = require('pg');
const { Queue } = require('minipaas/queue');
const { Stream } = require('minipaas/stream');

async function main() {
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
  const emails = new Queue({ pool, name: 'emails_cjs' });
  await emails.create();
  await emails.enqueue({ to: 'b@example.com' });
  const handled = await new Promise((resolve, reject) => {
    const worker = emails.work(async (job) => {
      resolve(job.payload.to);
      void worker.stop();
    }, { onError: reject });
  });
  const orders = new Stream({ pool, name: 'orders_cjs' });
  await orders.create();
  await orders.publish({ id: 8 });
  const events = await orders.read(0, 10);
  console.log(JSON.stringify({ handled, events: events.map((e) => e.payload) }));
  await pool.end();
}
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
