// Three manager agents with their schedulers as processes; the scheduling one is SIGKILLed twice (and
// restarted) while a two-second schedule ticks: every tick from the first to the last ran exactly
// once (runs against the expected tick times), none missed, none doubled, one operation each.
import { randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectDocker, STACK_NAMESPACE_LABEL } from '../../agent/docker/engine.ts';
import * as rollout from '../../cli/commands/deploy/rollout.ts';
import * as cronSuspend from '../../cli/commands/cron/suspend.ts';
import { listRuns } from '../../sql/control/cron.ts';
import { captured, type CapturedContext } from '../cli/harness.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE, uniqueName } from '../support/docker.ts';
import { spawnScript, type ScriptProcess } from '../support/processes.ts';
import { waitFor } from '../support/wait.ts';

const docker = connectDocker();
const FIXTURE = 'test/cron/fixtures/cron-agent.ts';
const work = mkdtempSync(join(tmpdir(), 'mp-cron-once-'));
let db: TestDatabase;
const agents = new Map<string, ScriptProcess>();
const contexts: CapturedContext[] = [];
const stack = uniqueName('once').replace(/[^a-z0-9]/g, '');

function ctx(): CapturedContext {
  const c = captured(db.url);
  contexts.push(c);
  return c;
}

async function start(name: string): Promise<void> {
  const p = spawnScript(name, FIXTURE, { DATABASE_URL: db.url, AGENT_NAME: name, MP_CRON_SECONDS: '1', CRON_LEASE_SECONDS: '2' });
  agents.set(name, p);
  await p.waitForOutput('ready', 30_000);
}

async function leader(): Promise<string | null> {
  const { rows } = await db.pool.query<{ holder: string | null }>(`select holder from mp.cron_leader where expires_at > clock_timestamp()`);
  return rows[0]?.holder ?? null;
}

describeSwarm('cron exactly once across scheduler kills', () => {
  beforeAll(async () => {
    db = await freshDatabase();
    await db.pool.query(`select setval(pg_get_serial_sequence('mp.operations', 'id'), $1)`, [randomInt(1_000_000, 2_000_000_000)]);
    // A killed agent's running tick comes back to another agent within seconds.
    await db.pool.query(`select mp.queue_create('mp_ops', '{"lease_seconds": 3}')`);
    await Promise.all(['a1', 'a2', 'a3'].map(start));
  });
  afterAll(async () => {
    await Promise.all([...agents.values()].map((a) => a.terminate().catch(() => a.kill())));
    await Promise.all(contexts.map((c) => c.close()));
    for (const s of await docker.listServices({ label: [`org.minipaas.stack=${stack}`] })) await docker.removeService(s).catch(() => {});
    for (const n of await docker.listNetworks({ label: [`${STACK_NAMESPACE_LABEL}=${stack}`] })) await docker.removeNetwork(n).catch(() => {});
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('runs each tick once while two schedulers are SIGKILLed and restarted', async () => {
    const dir = join(work, 'once');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'minipaas.yaml'), `project:\n  files: [compose.yaml]\nstack: ${stack}\ndeploy:\n  stable: 1\n`);
    writeFileSync(
      join(dir, 'compose.yaml'),
      `services:
  tick:
    image: ${LAB_BUSYBOX_IMAGE}
    command: ["sh", "-c", "echo tick"]
    deploy:
      labels:
        org.minipaas.kind: cron
        org.minipaas.cron.schedule: "*/2 * * * * *"
        org.minipaas.cron.overlap: allow
`,
    );
    process.env.MP_CRON_SECONDS = '1';
    try {
      await rollout.run(ctx(), { env: dir, dryRun: false, detach: false });
    } finally {
      delete process.env.MP_CRON_SECONDS;
    }
    const runs = (): ReturnType<typeof listRuns> => listRuns(db.pool, { environment: 'once', name: 'tick', limit: 1000 });
    await waitFor('first runs', async () => (await runs()).length >= 3, { timeoutMs: 30_000, intervalMs: 250 });
    for (let kill = 0; kill < 2; kill++) {
      const holder = await waitFor('a leader', leader, { timeoutMs: 20_000, intervalMs: 100 });
      await agents.get(holder)!.kill();
      const before = (await runs()).length;
      await waitFor(`ticks after killing ${holder}`, async () => (await runs()).length >= before + 3, { timeoutMs: 30_000, intervalMs: 250 });
      await start(holder);
    }
    await cronSuspend.run(ctx(), { env: dir, job: 'tick' });
    await waitFor('every run to end', async () => (await runs()).every((r) => !['queued', 'running'].includes(r.status)), { timeoutMs: 60_000, intervalMs: 500 });

    const all = (await runs()).filter((r) => r.trigger === 'schedule').reverse();
    const ticks = all.map((r) => r.tickAt.getTime());
    expect(new Set(ticks).size).toBe(ticks.length);
    // Contiguous: every 2 s from the first tick to the last, none missed.
    for (let i = 1; i < ticks.length; i++) expect(ticks[i]! - ticks[i - 1]!).toBe(2000);
    expect(all.length).toBeGreaterThanOrEqual(9);
    expect(all.every((r) => r.status === 'succeeded')).toBe(true);
    const { rows } = await db.pool.query<{ n: number; ops: number }>(
      `select count(*)::int n, count(distinct operation_id)::int ops from mp.cron_runs where trigger = 'schedule'`,
    );
    expect(rows[0]).toEqual({ n: all.length, ops: all.length });
    const missed = (await runs()).filter((r) => r.trigger === 'missed');
    expect(missed).toEqual([]);
    // Each run's job was created once, on whichever attempt.
    const { rows: creates } = await db.pool.query<{ op: string; n: number }>(
      `select r.operation_id::text op, (select count(*)::int from mp.operation_events(r.operation_id, 0) e where e.payload ->> 'step' = 'create') n
         from mp.cron_runs r where r.trigger = 'schedule'`,
    );
    expect(creates.filter((c) => c.n > 1)).toEqual([]);
  });
});
