/**
 * Cron tick lateness (`npx tsx bench/cron.ts [--ticks 100] [--every 3]`): one agent with its scheduler
 * runs a test-only sub-minute schedule (`MP_CRON_SECONDS=1`, every `--every` seconds) of a job that
 * exits at once, for `--ticks` ticks, on the lab's Swarm. Reported from `mp.cron_runs`, p50/p99:
 *
 * - fire lateness: scheduled time to the run row and its operation (the scheduler's own delay);
 * - start lateness: scheduled time to the job container's start (what the target is about);
 * - engine start: run fired to container start (Swarm creating a service and starting its task),
 *   measured separately, so the scheduler's part can be told from the engine's.
 *
 * Reference: swarm-cronjob (robfig/cron in-process, then `docker service update --force` or a
 * replica scale) documents no lateness figure; its tick fires from an in-process timer, so its delay
 * before the engine is of the same order as the fire lateness here, and the engine's start time is the
 * same for both.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startAgent } from '../agent/agent.ts';
import { connectDocker } from '../agent/docker/engine.ts';
import * as suspend from '../cli/commands/cron/suspend.ts';
import * as rollout from '../cli/commands/deploy/rollout.ts';
import { createContext } from '../cli/context.ts';
import { migrate } from '../sql/migrate.ts';
import { databaseFactory, startBenchServer } from './server.ts';
import { latencyPercentiles } from './stats.ts';
import { sleep } from './timing.ts';

const { values } = parseArgs({
  options: {
    ticks: { type: 'string', default: '100' },
    every: { type: 'string', default: '3' },
    out: { type: 'string', default: 'bench/results' },
  },
});
const ticks = Number(values.ticks);
const every = Number(values.every);
const image = process.env.MP_LAB_BUSYBOX_IMAGE ?? 'mp-lab/busybox:latest';

const server = await startBenchServer();
const db = await databaseFactory(server.adminUrl)('cron');
await migrate({ connectionString: db.url });
const pool = new pg.Pool({ connectionString: db.url, max: 10 });
const docker = connectDocker();
await docker.ping();
const agent = await startAgent({ pool, docker, name: 'bench-cron', pollIntervalMs: 1000, concurrency: 8 });
const dir = join(mkdtempSync(join(tmpdir(), 'mp-bench-cron-')), 'benchcron');
mkdirSync(dir, { recursive: true });
const stack = `benchcron${process.pid}`;
writeFileSync(join(dir, 'minipaas.yaml'), `project:\n  files: [compose.yaml]\nstack: ${stack}\ndeploy:\n  stable: 1\n`);
writeFileSync(
  join(dir, 'compose.yaml'),
  `services:\n  tick:\n    image: ${image}\n    command: ["true"]\n    deploy:\n      labels:\n        org.minipaas.kind: cron\n        org.minipaas.cron.schedule: "*/${every} * * * * *"\n        org.minipaas.cron.overlap: allow\n`,
);
process.env.MP_CRON_SECONDS = '1';
const quiet = { write: () => true };
const ctx = createContext({ stdout: quiet, stderr: process.stderr, databaseUrl: db.url });

try {
  await rollout.run(ctx, { env: dir, dryRun: false, detach: false });
  process.stderr.write(`schedule every ${every} s; waiting for ${ticks} ticks (~${Math.ceil((ticks * every) / 60)} min)\n`);
  for (;;) {
    const { rows } = await pool.query<{ n: number }>(`select count(*)::int n from mp.cron_runs where started_at is not null`);
    if (rows[0]!.n >= ticks) break;
    await sleep(1000);
  }
  await suspend.run(ctx, { env: dir, job: 'tick' });
  await sleep(5000);
  const { rows } = await pool.query<{ fire: number; start: number | null; engine: number | null; status: string }>(
    `select extract(epoch from r.created_at - r.tick_at) * 1000 as fire,
            extract(epoch from r.started_at - r.tick_at) * 1000 as start,
            extract(epoch from r.started_at - r.created_at) * 1000 as engine, r.status
       from mp.cron_runs r where r.trigger = 'schedule' and r.status <> 'skipped' order by r.tick_at limit $1`,
    [ticks],
  );
  const fire = latencyPercentiles(rows.map((r) => Number(r.fire)));
  const started = rows.filter((r) => r.start !== null);
  const start = latencyPercentiles(started.map((r) => Number(r.start)));
  const engine = latencyPercentiles(started.map((r) => Number(r.engine)));
  const result = {
    ticks: rows.length,
    every_seconds: every,
    succeeded: rows.filter((r) => r.status === 'succeeded').length,
    fire_lateness_ms: fire,
    start_lateness_ms: start,
    engine_start_ms: engine,
    at: new Date().toISOString(),
  };
  await mkdir(values.out!, { recursive: true });
  await writeFile(join(values.out!, 'cron.json'), `${JSON.stringify(result, null, 2)}\n`);
  const f = (p: { p50: number; p99: number }): string => `${p.p50.toFixed(1)} / ${p.p99.toFixed(1)} ms`;
  const md = `# Cron tick lateness\n\n\`npx tsx bench/cron.ts --ticks ${ticks} --every ${every}\`, one agent, the lab's single-node Swarm, a job that exits at once.\n\n| ${rows.length} ticks, every ${every} s | p50 / p99 |\n| --- | --- |\n| fire lateness (tick to run and operation recorded) | ${f(fire)} |\n| start lateness (tick to the job's container start) | ${f(start)} |\n| engine start (run recorded to container start) | ${f(engine)} |\n\n${result.succeeded} of ${rows.length} runs succeeded. Machine shared with other sessions' tests.\n`;
  await writeFile(join(values.out!, 'cron.md'), md);
  process.stdout.write(md);
} finally {
  await agent.stop();
  for (const s of await docker.listServices({ label: [`org.minipaas.stack=${stack}`] })) await docker.removeService(s).catch(() => {});
  for (const n of await docker.listNetworks({ label: [`com.docker.stack.namespace=${stack}`] })) await docker.removeNetwork(n).catch(() => {});
  await ctx.close();
  await pool.end();
  await db.drop();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
