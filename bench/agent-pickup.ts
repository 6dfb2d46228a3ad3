/**
 * Control-plane benchmark: how soon an idle agent starts a submitted operation (pickup latency), and
 * how much an idle agent costs PostgreSQL (statements per second).
 *
 *   npm run bench:agent                 # 50 operations, 30 s idle window
 *   npm run bench:agent -- --ops 200 --idle-seconds 60
 *
 * Pickup latency is measured on the database clock: `mp.operations.created_at` (the submit transaction)
 * to `started_at` (the agent's mp.op_start), so client scheduling does not enter it. Idle load counts
 * the statements the agent's pool sends while nothing is submitted (server-side counters would also count
 * autovacuum's transactions, which at autovacuum_naptime = 1s outnumber the agent's).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startAgent } from '../agent/agent.ts';
import { connectDocker } from '../agent/docker/engine.ts';
import { controlDb, submitOperation } from '../sql/control/database.ts';
import { migrate } from '../sql/migrate.ts';
import { databaseFactory, describeServer, startBenchServer } from './server.ts';
import { latencyPercentiles } from './stats.ts';
import { sleep, waitUntil } from './timing.ts';

const { values } = parseArgs({
  options: {
    ops: { type: 'string', default: '50' },
    'idle-seconds': { type: 'string', default: '30' },
    out: { type: 'string', default: 'bench/results' },
  },
});
const opCount = Number(values.ops);
const idleSeconds = Number(values['idle-seconds']);

const server = await startBenchServer();
const db = await databaseFactory(server.adminUrl)('agent');
await migrate({ connectionString: db.url });
const pool = new pg.Pool({ connectionString: db.url, max: 8 });
let statements = 0;
pool.on('connect', (client) => {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    statements++;
    return query(...args);
  };
});
const probe = new pg.Pool({ connectionString: db.url, max: 1 });
await pool.query(`select mp.environment_create('bench')`);
const docker = connectDocker();
await docker.ping();
const agent = await startAgent({ pool, docker, name: 'bench-agent' });

try {
  // Idle load: statements the agent sends while nothing is submitted.
  await sleep(6_000); // past the first heartbeat and poll, into the steady idle cycle
  const before = statements;
  await sleep(idleSeconds * 1000);
  const idleQps = (statements - before) / idleSeconds;

  // Pickup latency: one operation at a time, the agent idle (asleep on LISTEN) before each.
  const kdb = controlDb(probe);
  const pickups: number[] = [];
  for (let i = 0; i < opCount; i++) {
    const id = await submitOperation(kdb, { kind: 'docker.info', environment: 'bench', payload: {} });
    await waitUntil(
      `operation ${id} to succeed`,
      async () => {
        const { rows } = await probe.query<{ status: string }>(`select status from mp.operations where id = $1`, [id]);
        return rows[0]!.status === 'succeeded';
      },
      { timeoutMs: 30_000, intervalMs: 20 },
    );
    const { rows } = await probe.query<{ ms: number }>(
      `select extract(epoch from started_at - created_at) * 1000 as ms from mp.operations where id = $1`,
      [id],
    );
    pickups.push(Number(rows[0]!.ms));
    await sleep(200);
  }
  const p = latencyPercentiles(pickups);
  const info = await describeServer(server);
  const result = {
    date: new Date().toISOString(),
    command: `npm run bench:agent -- --ops ${opCount} --idle-seconds ${idleSeconds}`,
    server: info,
    pickupMs: { ...p, count: pickups.length },
    idleStatementsPerSecond: idleQps,
  };
  const md = [
    `# Agent pickup latency and idle load`,
    ``,
    `Command: \`${result.command}\` (${result.date}); PostgreSQL ${info.version} (${info.origin}).`,
    ``,
    `| measure | value |`,
    `| --- | --- |`,
    `| pickup latency (submit to agent start), p50 / p95 / p99 | ${p.p50.toFixed(1)} / ${p.p95.toFixed(1)} / ${p.p99.toFixed(1)} ms (${pickups.length} operations) |`,
    `| idle agent load | ${idleQps.toFixed(2)} statements/s over ${idleSeconds} s |`,
    ``,
  ].join('\n');
  await mkdir(values.out!, { recursive: true });
  await writeFile(join(values.out!, 'agent.json'), JSON.stringify(result, null, 2) + '\n');
  await writeFile(join(values.out!, 'agent.md'), md);
  process.stdout.write(md);
} finally {
  await agent.stop();
  await pool.end();
  await probe.end();
  await db.drop();
  await server.stop();
}
