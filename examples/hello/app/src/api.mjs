/* global AbortController */
// The HTTP API, on port 3000 (PORT overrides):
//   GET  /health  200 once the database was reached and the queue exists, 503 before
//   GET  /        {"version", "queue": {waiting, running, dead, ...}, "processed": N}
//   POST /jobs    enqueues the JSON body (or {}) as a job; 202 {"id"}
import { createServer } from 'node:http';
import { connect, log, ready, VERSION } from './app.mjs';

const port = Number(process.env.PORT ?? 3000);
const pool = connect();
const stopping = new AbortController();
let queues = null;

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(body)}\n`);
}

async function readJson(req) {
  let text = '';
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 64 * 1024) throw Object.assign(new Error('body over 64 KiB'), { status: 413 });
  }
  if (!text.trim()) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw Object.assign(new Error('the body is not JSON'), { status: 400 });
  }
}

const server = createServer(async (req, res) => {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  try {
    if (req.method === 'GET' && path === '/health') {
      return send(res, queues ? 200 : 503, { ok: Boolean(queues), version: VERSION });
    }
    if (!queues) return send(res, 503, { error: 'starting: waiting for the database' });
    if (req.method === 'GET' && path === '/') {
      const [queue, processed] = await Promise.all([queues.jobs.stats(), queues.processed.stats()]);
      return send(res, 200, { service: 'hello-api', version: VERSION, queue, processed: processed.events });
    }
    if (req.method === 'POST' && path === '/jobs') {
      const payload = await readJson(req);
      const id = await queues.jobs.enqueue(payload);
      log('enqueued', { job: id });
      return send(res, 202, { id });
    }
    return send(res, 404, { error: `no route ${req.method} ${path}`, routes: ['GET /', 'GET /health', 'POST /jobs'] });
  } catch (err) {
    const status = typeof err?.status === 'number' ? err.status : 500;
    if (status === 500) log('request failed', { path, error: err instanceof Error ? err.message : String(err) });
    return send(res, status, { error: err instanceof Error ? err.message : String(err) });
  }
});

// Listen first: /health answers 503 while the database is away, instead of the port being closed.
server.listen(port, () => log('listening', { port, version: VERSION }));
ready(pool, { signal: stopping.signal })
  .then((q) => {
    queues = q;
  })
  .catch(() => {});

// Swarm stops a task with SIGTERM, then SIGKILL after the grace period (10 s by default).
process.once('SIGTERM', () => {
  stopping.abort();
  server.close(() => void pool.end().finally(() => process.exit(0)));
  server.closeIdleConnections();
});
