// Cron's SQL (0006_cron.sql): schedules follow succeeded releases, a tick fires once per (schedule,
// tick time) even when racing, overlap forbid/replace, runs follow their operations, one alert per
// failing streak, the scheduling lease passes on only once it lapses, grants.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fireTick, leadScheduling, listRuns, listSchedules, scheduleByName, stopLeading, suspendSchedule } from '../../sql/control/cron.ts';
import { createRelease } from '../../sql/control/releases.ts';
import { NotFoundError } from '../../sql/errors.ts';
import type { StackJob, StackSpec } from '../../stack/types.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => db?.drop());

function cronJob(key: string, overlap: 'allow' | 'forbid' | 'replace', expression = '*/5 * * * *'): StackJob {
  return {
    key,
    name: `s_${key}`,
    kind: 'cron',
    source: 'minipaas',
    replicas: 1,
    timeoutSeconds: 60,
    schedule: { expression, overlap, catchUp: 'latest' },
    spec: { Name: `s_${key}` },
  };
}

function spec(jobs: StackJob[]): StackSpec {
  return { name: 's', networks: [], secrets: [], configs: [], services: [], jobs, warnings: [] };
}

/** Records a release and ends its deploy operation as the agent would. */
async function release(env: string, jobs: StackJob[], status: 'succeeded' | 'failed' = 'succeeded', webhook?: string): Promise<string> {
  await db.pool.query(`select mp.environment_create($1)`, [env]);
  const r = await createRelease(db.pool, {
    environment: env,
    stack: 's',
    spec: spec(jobs),
    source: webhook ? { settings: { cron: { webhook } } } : {},
  });
  await endOperation(r.operationId, status);
  return r.releaseId;
}

async function endOperation(op: string, status: 'succeeded' | 'failed' | 'cancelled', error?: string): Promise<void> {
  const { rows } = await db.pool.query<{ attempts: number; status: string }>(`select * from mp.op_start($1, 'n1')`, [op]);
  if (rows[0]!.status !== 'running') return;
  await db.pool.query(`select mp.op_finish($1, $2, $3, null, $4)`, [op, rows[0]!.attempts, status, error ?? null]);
}

const at = (s: string): Date => new Date(`2030-01-01T00:${s}Z`);

describe('cron schedules and runs in SQL', () => {
  it('takes schedules from succeeded releases only, keeps the cursor across releases, stops removed ones', async () => {
    await release('e1', [cronJob('a', 'allow')], 'failed');
    expect(await listSchedules(db.pool, { environment: 'e1' })).toEqual([]);
    await release('e1', [cronJob('a', 'allow'), cronJob('b', 'forbid')]);
    const [a, b] = await listSchedules(db.pool, { environment: 'e1' });
    expect(a).toMatchObject({ name: 'a', release: 2, expression: '*/5 * * * *', overlap: 'allow', catchUp: 'latest', removed: false });
    expect(b).toMatchObject({ name: 'b', overlap: 'forbid' });
    await fireTick(db.pool, { scheduleId: a!.id, tickAt: at('05:00'), trigger: 'missed' });
    expect((await scheduleByName(db.pool, 'e1', 'a')).cursorAt).toEqual(at('05:00'));
    await release('e1', [cronJob('a', 'replace', '0 * * * *')]);
    const after = await listSchedules(db.pool, { environment: 'e1' });
    expect(after.find((s) => s.name === 'a')).toMatchObject({ release: 3, overlap: 'replace', expression: '0 * * * *', cursorAt: at('05:00') });
    expect(after.find((s) => s.name === 'b')).toMatchObject({ removed: true });
    expect((await listSchedules(db.pool, { environment: 'e1', active: true })).map((s) => s.name)).toEqual(['a']);
    await expect(scheduleByName(db.pool, 'e1', 'aa')).rejects.toMatchObject({ hint: "did you mean 'a'?" });
  });

  it('fires a tick once however many callers race for it', async () => {
    await release('e2', [cronJob('once', 'allow')]);
    const s = await scheduleByName(db.pool, 'e2', 'once');
    const tick = at('10:00');
    const fired = await Promise.all(Array.from({ length: 8 }, () => fireTick(db.pool, { scheduleId: s.id, tickAt: tick, trigger: 'schedule' })));
    expect(fired.filter((f) => f.created)).toHaveLength(1);
    expect(new Set(fired.map((f) => f.runId)).size).toBe(1);
    const { rows } = await db.pool.query(`select count(*)::int n from mp.operations where kind = 'cron.tick' and payload ->> 'run' = $1`, [fired[0]!.runId]);
    expect(rows[0].n).toBe(1);
    expect((await scheduleByName(db.pool, 'e2', 'once')).cursorAt).toEqual(tick);
  });

  it('forbid records a skipped tick while a run is active; the run follows its operation', async () => {
    await release('e3', [cronJob('f', 'forbid')]);
    const s = await scheduleByName(db.pool, 'e3', 'f');
    const first = await fireTick(db.pool, { scheduleId: s.id, tickAt: at('00:00'), trigger: 'schedule' });
    const second = await fireTick(db.pool, { scheduleId: s.id, tickAt: at('00:05'), trigger: 'schedule' });
    expect(second).toMatchObject({ status: 'skipped', operationId: null, created: true });
    await endOperation(first.operationId!, 'failed', 'exit 3');
    const third = await fireTick(db.pool, { scheduleId: s.id, tickAt: at('00:10'), trigger: 'schedule' });
    expect(third.status).toBe('queued');
    const runs = await listRuns(db.pool, { environment: 'e3', name: 'f' });
    expect(runs.map((r) => [r.status, r.reason])).toEqual([
      ['queued', null],
      ['skipped', `run ${first.runId} is still running (overlap forbid)`],
      ['failed', 'exit 3'],
    ]);
  });

  it('replace cancels the active run and marks it replaced', async () => {
    await release('e4', [cronJob('r', 'replace')]);
    const s = await scheduleByName(db.pool, 'e4', 'r');
    await fireTick(db.pool, { scheduleId: s.id, tickAt: at('00:00'), trigger: 'schedule' });
    const second = await fireTick(db.pool, { scheduleId: s.id, tickAt: at('00:05'), trigger: 'schedule' });
    expect(second.status).toBe('queued');
    const runs = await listRuns(db.pool, { environment: 'e4', name: 'r' });
    expect(runs.map((r) => r.status)).toEqual(['queued', 'replaced']);
    expect(runs[1]!.replacedBy).toBe(second.runId);
  });

  it('alerts once per failing streak and again after a success', async () => {
    await release('e5', [cronJob('w', 'allow')], 'succeeded', 'http://127.0.0.1:9/hook');
    const s = await scheduleByName(db.pool, 'e5', 'w');
    const claims: (string | null)[] = [];
    for (const [i, outcome] of (['failed', 'failed', 'succeeded', 'failed'] as const).entries()) {
      const f = await fireTick(db.pool, { scheduleId: s.id, tickAt: at(`0${i}:00`), trigger: 'schedule' });
      if (outcome === 'failed') claims.push((await db.pool.query(`select mp.cron_alert_claim($1) u`, [f.runId])).rows[0].u);
      await endOperation(f.operationId!, outcome);
    }
    expect(claims).toEqual(['http://127.0.0.1:9/hook', null, 'http://127.0.0.1:9/hook']);
  });

  it('suspends and resumes; a suspended schedule records ticks as skipped', async () => {
    await release('e6', [cronJob('p', 'allow')]);
    expect(await suspendSchedule(db.pool, 'e6', 'p', true)).toBe(true);
    expect(await suspendSchedule(db.pool, 'e6', 'p', true)).toBe(false);
    const s = await scheduleByName(db.pool, 'e6', 'p');
    expect(s.suspended).toBe(true);
    expect(await fireTick(db.pool, { scheduleId: s.id, tickAt: at('00:00'), trigger: 'schedule' })).toMatchObject({ status: 'skipped' });
    expect(await suspendSchedule(db.pool, 'e6', 'p', false)).toBe(true);
    await expect(suspendSchedule(db.pool, 'e6', 'nope', true)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('passes the scheduling lease on only once it lapses, or at once when given up', async () => {
    expect(await leadScheduling(db.pool, 'a', 1)).toBe(true);
    expect(await leadScheduling(db.pool, 'b', 1)).toBe(false);
    expect(await leadScheduling(db.pool, 'a', 1)).toBe(true);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await leadScheduling(db.pool, 'b', 5)).toBe(true);
    await stopLeading(db.pool, 'b');
    expect(await leadScheduling(db.pool, 'a', 5)).toBe(true);
    await stopLeading(db.pool, 'a');
  });

  it('grants: mp_cli reads and fires manual runs, mp_app sees nothing of cron', async () => {
    const c: pg.Client = await db.connect();
    await c.query(`select mp.grant_roles()`);
    await c.query(`set role mp_app`);
    await expect(c.query(`select * from mp.cron_runs_v`)).rejects.toThrow(/permission denied/);
    await c.query(`reset role`);
    await c.query(`set role mp_cli`);
    await c.query(`select * from mp.cron_schedules_v`);
    await expect(c.query(`select mp.cron_lead('x', 5)`)).rejects.toThrow(/permission denied/);
    await c.query(`reset role`);
  });
});
