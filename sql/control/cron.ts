/**
 * Cron (`0006_cron.sql`): the schedules of each environment's current release, their runs, and the
 * scheduling lease. The scheduler (agent/cron/) reads schedules and fires ticks; the `cron.tick`
 * executor reports what its job did; `mp cron` reads and suspends.
 *
 * Terminology: a *schedule* is one cron job of an environment (its Compose service key, expression,
 * zone and policies); a *tick* is one time the expression names; a *run* is the row a tick (or `mp cron
 * run`) makes, whatever happens to it: queued, running, succeeded, failed, cancelled, skipped (overlap
 * forbid, or suspended), missed (no agent scheduled then, not caught up) or replaced (overlap replace).
 */
import { listNames, nearMiss } from '../../agent/executors/near-miss.ts';
import type { CatchUpPolicy, OverlapPolicy } from '../../stack/types.ts';
import { mapDatabaseErrors, NotFoundError } from '../errors.ts';
import type { Queryable } from './releases.ts';

/** How a run came about. */
export type RunTrigger = 'schedule' | 'catch-up' | 'manual' | 'missed';

/** Where a run ended up. */
export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'skipped' | 'missed' | 'replaced';

/** One schedule, as the scheduler and `mp cron ls` read it. */
export interface Schedule {
  id: string;
  environment: string;
  name: string;
  releaseId: string;
  release: number;
  expression: string;
  timezone: string | null;
  overlap: OverlapPolicy;
  catchUp: CatchUpPolicy;
  /** The last tick handled; ticks after it are due. */
  cursorAt: Date;
  suspended: boolean;
  removed: boolean;
  lastTick: Date | null;
  lastStatus: RunStatus | null;
  lastExitCode: number | null;
  lastSuccess: Date | null;
  failuresSinceSuccess: number;
  alertOpen: boolean;
  hasWebhook: boolean;
}

interface ScheduleRow {
  id: string;
  environment: string;
  name: string;
  release_id: string;
  release: number;
  expression: string;
  timezone: string;
  overlap: OverlapPolicy;
  catch_up: CatchUpPolicy;
  cursor_at: Date;
  suspended: boolean;
  removed: boolean;
  last_tick: Date | null;
  last_status: RunStatus | null;
  last_exit_code: number | null;
  last_success: Date | null;
  failures_since_success: string;
  alert_open: boolean;
  has_webhook: boolean;
}

const SCHEDULE_SELECT = `select v.*, c.release_id, c.timezone as zone from mp.cron_schedules_v v join mp.cron_schedules c on c.id = v.id`;

function toSchedule(r: ScheduleRow & { zone: string | null }): Schedule {
  return {
    id: String(r.id),
    environment: r.environment,
    name: r.name,
    releaseId: String(r.release_id),
    release: r.release,
    expression: r.expression,
    timezone: r.zone,
    overlap: r.overlap,
    catchUp: r.catch_up,
    cursorAt: r.cursor_at,
    suspended: r.suspended,
    removed: r.removed,
    lastTick: r.last_tick,
    lastStatus: r.last_status,
    lastExitCode: r.last_exit_code,
    lastSuccess: r.last_success,
    failuresSinceSuccess: Number(r.failures_since_success),
    alertOpen: r.alert_open,
    hasWebhook: r.has_webhook,
  };
}

/**
 * Schedules, by environment and name. `active`: only those that tick (not suspended, not removed), as
 * the scheduler wants them.
 *
 * @example
 *   const due = await listSchedules(pool, { active: true });
 */
export async function listSchedules(db: Queryable, opts: { environment?: string; active?: boolean } = {}): Promise<Schedule[]> {
  const { rows } = await db.query<ScheduleRow & { zone: string | null }>(
    `${SCHEDULE_SELECT}
      where ($1::text is null or v.environment = $1) and (not $2 or (not v.suspended and not v.removed))
      order by v.environment, v.name`,
    [opts.environment ?? null, opts.active ?? false],
  );
  return rows.map(toSchedule);
}

/** One schedule; `NotFoundError` naming the environment's cron jobs (and the near miss) otherwise. */
export async function scheduleByName(db: Queryable, environment: string, name: string): Promise<Schedule> {
  const all = await listSchedules(db, { environment });
  const found = all.find((s) => s.name === name);
  if (found) return found;
  const names = all.map((s) => s.name);
  const guess = nearMiss(name, names);
  throw new NotFoundError(
    'UNKNOWN_CRON_JOB',
    names.length
      ? `environment ${environment} has no cron job '${name}'; its cron jobs: ${listNames(names)}`
      : `environment ${environment} has no cron jobs`,
    guess
      ? `did you mean '${guess}'?`
      : `mark a service with \`mp code cron --env DIR ${name} --cron "*/5 * * * *"\` and deploy; schedules come from the deployed release`,
  );
}

/** What firing a tick did. */
export interface Fired {
  runId: string;
  status: RunStatus;
  operationId: string | null;
  /** False when this tick had been fired before: the call returned the first run. */
  created: boolean;
}

/**
 * Fires one tick (`mp.cron_fire`): the run row, the overlap policy and the `cron.tick` operation in one
 * transaction; once per (schedule, tick time) except `manual`.
 */
export async function fireTick(db: Queryable, opts: { scheduleId: string; tickAt: Date; trigger: RunTrigger }): Promise<Fired> {
  const { rows } = await mapDatabaseErrors(() =>
    db.query<{ run_id: string; status: RunStatus; operation_id: string | null; created: boolean }>(
      `select run_id, status, operation_id, created from mp.cron_fire($1, $2, $3)`,
      [opts.scheduleId, opts.tickAt, opts.trigger],
    ),
  );
  const r = rows[0]!;
  return { runId: String(r.run_id), status: r.status, operationId: r.operation_id === null ? null : String(r.operation_id), created: r.created };
}

/** Takes or renews the scheduling lease; true while `holder` holds it. */
export async function leadScheduling(db: Queryable, holder: string, leaseSeconds: number): Promise<boolean> {
  const { rows } = await db.query<{ led: boolean }>(`select mp.cron_lead($1, $2) as led`, [holder, leaseSeconds]);
  return rows[0]!.led;
}

/** Gives the scheduling lease up, if `holder` has it. */
export async function stopLeading(db: Queryable, holder: string): Promise<void> {
  await db.query(`select mp.cron_unlead($1)`, [holder]);
}

/** One run, as `mp cron history` and the executor read it. */
export interface Run {
  id: string;
  scheduleId: string;
  environment: string;
  name: string;
  tickAt: Date;
  trigger: RunTrigger;
  status: RunStatus;
  reason: string | null;
  releaseId: string | null;
  release: number | null;
  operationId: string | null;
  node: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  exitCode: number | null;
  /** Seconds from the scheduled time to the container's start. */
  latenessSeconds: number | null;
  logs: string[] | null;
  replacedBy: string | null;
}

interface RunRow {
  id: string;
  schedule_id: string;
  environment: string;
  name: string;
  tick_at: Date;
  trigger: RunTrigger;
  status: RunStatus;
  reason: string | null;
  release_id: string | null;
  release: number | null;
  operation_id: string | null;
  node: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  exit_code: number | null;
  lateness_s: string | null;
  logs: string[] | null;
  replaced_by: string | null;
}

const RUN_SELECT = `select v.*, r.release_id from mp.cron_runs_v v join mp.cron_runs r on r.id = v.id`;

const idOrNull = (v: string | null): string | null => (v === null ? null : String(v));

function toRun(r: RunRow): Run {
  return {
    id: String(r.id),
    scheduleId: String(r.schedule_id),
    environment: r.environment,
    name: r.name,
    tickAt: r.tick_at,
    trigger: r.trigger,
    status: r.status,
    reason: r.reason,
    releaseId: idOrNull(r.release_id),
    release: r.release,
    operationId: idOrNull(r.operation_id),
    node: r.node,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    exitCode: r.exit_code,
    latenessSeconds: r.lateness_s === null ? null : Number(r.lateness_s),
    logs: r.logs,
    replacedBy: idOrNull(r.replaced_by),
  };
}

/** One run by id; `NotFoundError` when there is none. */
export async function getRun(db: Queryable, id: string): Promise<Run> {
  const { rows } = await db.query<RunRow>(`${RUN_SELECT} where v.id = $1`, [id]);
  if (!rows[0]) throw new NotFoundError('UNKNOWN_CRON_RUN', `cron run ${id} does not exist`, '`mp cron history --env DIR JOB` lists runs');
  return toRun(rows[0]);
}

/** A schedule's runs (all schedules of the environment without `name`), newest tick first. */
export async function listRuns(db: Queryable, opts: { environment: string; name?: string; limit?: number }): Promise<Run[]> {
  const { rows } = await db.query<RunRow>(
    `${RUN_SELECT} where v.environment = $1 and ($2::text is null or v.name = $2) order by v.tick_at desc, v.id desc limit $3`,
    [opts.environment, opts.name ?? null, opts.limit ?? 20],
  );
  return rows.map(toRun);
}

/** What an executor reports about its run (`mp.cron_run_report`); absent fields stay as they were. */
export interface RunReport {
  started_at?: string;
  node?: string;
  exit_code?: number;
  logs?: string[];
}

/** Records when a run's container started, where, and how it exited. */
export async function reportRun(db: Queryable, id: string, report: RunReport): Promise<void> {
  await mapDatabaseErrors(() => db.query(`select mp.cron_run_report($1, $2)`, [id, JSON.stringify(report)]));
}

/** The webhook to alert for a failed run, once per failing streak; null when alerted already or none is set. */
export async function claimAlert(db: Queryable, runId: string): Promise<string | null> {
  const { rows } = await db.query<{ url: string | null }>(`select mp.cron_alert_claim($1) as url`, [runId]);
  return rows[0]?.url ?? null;
}

/** Suspends (or resumes) a schedule; false when it already was. `NotFoundError` (MP009) for an unknown one. */
export async function suspendSchedule(db: Queryable, environment: string, name: string, suspend: boolean): Promise<boolean> {
  const { rows } = await mapDatabaseErrors(() =>
    db.query<{ changed: boolean }>(`select mp.cron_suspend($1, $2, $3) as changed`, [environment, name, suspend]),
  );
  return rows[0]!.changed;
}
