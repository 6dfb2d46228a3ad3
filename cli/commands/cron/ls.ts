/** `mp cron ls --env DIR`: each cron job of the environment: schedule, policies, next and last run, failures. */
import { Cron } from 'croner';
import { z } from 'zod';
import { listSchedules, type Schedule } from '../../../sql/control/cron.ts';
import type { Context } from '../../context.ts';
import { environmentDir, environmentNameOf } from '../../environment.ts';
import { printRows, type Column } from '../../output.ts';

export const options = z.object({ env: z.string().min(1) }).strict();
export type Options = z.output<typeof options>;

interface Line {
  job: string;
  schedule: string;
  timezone: string;
  overlap: string;
  catch_up: string;
  state: string;
  next: Date | null;
  last: Date | null;
  last_status: string | null;
  failures: number;
  release: number;
}

const COLUMNS: Column<Line>[] = [
  { key: 'job' },
  { key: 'schedule' },
  { key: 'timezone', heading: 'TZ' },
  { key: 'overlap' },
  { key: 'catch_up', heading: 'CATCH-UP' },
  { key: 'state' },
  { key: 'next' },
  { key: 'last' },
  { key: 'last_status', heading: 'LAST STATUS' },
  { key: 'failures', heading: 'FAILING', right: true },
  { key: 'release', right: true },
];

/** The next tick after `from` (and after the schedule's cursor), or null for a schedule that does not tick. */
export function nextTick(s: Schedule, from: Date): Date | null {
  if (s.suspended || s.removed) return null;
  const after = new Date(Math.max(from.getTime(), s.cursorAt.getTime()));
  return new Cron(s.expression, { paused: true, ...(s.timezone ? { timezone: s.timezone } : {}) }).nextRun(after);
}

/** A schedule as one line. */
export function scheduleLine(s: Schedule, now: Date): Line {
  return {
    job: s.name,
    schedule: s.expression,
    timezone: s.timezone ?? 'UTC',
    overlap: s.overlap,
    catch_up: s.catchUp,
    state: s.removed ? 'removed' : s.suspended ? 'suspended' : 'active',
    next: nextTick(s, now),
    last: s.lastTick,
    last_status: s.lastStatus === null ? null : `${s.lastStatus}${s.lastExitCode ? ` (exit ${s.lastExitCode})` : ''}`,
    failures: s.failuresSinceSuccess,
    release: s.release,
  };
}

export async function run(ctx: Context, opts: Options): Promise<void> {
  const name = environmentNameOf(environmentDir(opts.env));
  const schedules = await listSchedules(ctx.db().pool, { environment: name });
  const now = ctx.clock.now();
  printRows(
    ctx,
    schedules.map((s) => scheduleLine(s, now)),
    COLUMNS,
    `environment ${name} has no cron jobs; mark one with \`mp code cron --env ${opts.env} SERVICE --cron "*/5 * * * *"\` and deploy`,
  );
}
