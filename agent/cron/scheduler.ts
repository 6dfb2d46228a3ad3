/**
 * The cron scheduler, run by every manager agent: one at a time holds the scheduling lease
 * (`mp.cron_lead`, renewed every third of its length) and turns due ticks into `cron.tick` operations
 * (`mp.cron_fire`); the others try for the lease and take over once it lapses, so scheduling resumes
 * within one lease (default 10 s) plus one renewal period of the leader dying, or at once when it stops
 * cleanly (it gives the lease up).
 *
 * Exactly once: every tick is fired through `mp.cron_fire`, which records one run per (schedule, tick
 * time) and moves the schedule's cursor; a tick that two leaders (one that lost its lease without
 * knowing yet, and its successor) both fire is recorded once. A tick is due when it is after the
 * schedule's cursor and not after now, so a new leader fires the ticks its predecessor had not.
 *
 * Lateness: the leader sleeps until the next tick of any schedule (at most `pollMs`, to see new and
 * changed schedules), so a tick is fired within milliseconds of its time; the agent that claims the
 * operation is woken by NOTIFY. Ticks found more than `lateAfterMs` after their time (no agent was
 * scheduling then) are missed: with catch-up `latest` the latest of them runs once (trigger
 * `catch-up`) and the others are recorded `missed`; with `none` all are recorded `missed`.
 *
 * @example
 *   const cron = startCronScheduler({ pool, name: 'node-1' });
 *   await cron.stop();
 */
import { Cron } from 'croner';
import type pg from 'pg';
import { fireTick, leadScheduling, listSchedules, stopLeading, type Schedule } from '../../sql/control/cron.ts';
import type { Logger } from '../executors/types.ts';

export interface SchedulerOptions {
  pool: pg.Pool;
  /** The lease holder's name: the agent's node name. */
  name: string;
  log?: Logger;
  /** Seconds the lease lasts without renewal: the take-over time when a leader dies (default 10). */
  leaseSeconds?: number;
  /** How often the leader re-reads schedules at most (default 1000 ms). */
  pollMs?: number;
  /** Ticks older than this when first seen are missed, not late (default 60 s). */
  lateAfterMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

/** A running scheduler. */
export interface RunningScheduler {
  /** Whether this one held the lease at its last try. */
  leading(): boolean;
  /** Stops, gives the lease up, and resolves once the loop has ended. */
  stop(): Promise<void>;
}

/** At most this many missed ticks of one schedule are recorded one by one (older ones are only passed). */
const MAX_MISSED_ROWS = 100;
/** At most this many ticks are computed per schedule and pass (a one-second schedule after a long outage). */
const MAX_TICKS_PER_PASS = 10_000;

/** The due ticks of a schedule, in order: after its cursor, not after `now`. */
export function dueTicks(cron: Cron, cursor: Date, now: number): Date[] {
  const out: Date[] = [];
  let t = cron.nextRun(cursor);
  while (t && t.getTime() <= now && out.length < MAX_TICKS_PER_PASS) {
    out.push(t);
    t = cron.nextRun(t);
  }
  return out;
}

/** A tick to fire, as the scheduler decides it (pure, so tests can table it). */
export interface TickDecision {
  tickAt: Date;
  trigger: 'schedule' | 'catch-up' | 'missed';
}

/**
 * Pure: what to fire for due ticks. On-time ticks (within `lateAfterMs`) run; late ones are missed,
 * except the latest when catch-up is `latest` and nothing is on time.
 */
export function decideTicks(due: Date[], now: number, lateAfterMs: number, catchUp: Schedule['catchUp']): TickDecision[] {
  const late = due.filter((t) => now - t.getTime() > lateAfterMs);
  const onTime = due.filter((t) => now - t.getTime() <= lateAfterMs);
  const out: TickDecision[] = [];
  const catchUpOne = catchUp === 'latest' && onTime.length === 0 && late.length > 0 ? late.at(-1) : undefined;
  const missed = late.filter((t) => t !== catchUpOne);
  for (const t of missed.slice(-MAX_MISSED_ROWS)) out.push({ tickAt: t, trigger: 'missed' });
  if (catchUpOne) out.push({ tickAt: catchUpOne, trigger: 'catch-up' });
  for (const t of onTime) out.push({ tickAt: t, trigger: 'schedule' });
  return out;
}

/** Starts the scheduling loop (see the module comment). */
export function startCronScheduler(opts: SchedulerOptions): RunningScheduler {
  const leaseSeconds = opts.leaseSeconds ?? 10;
  const renewMs = (leaseSeconds * 1000) / 3;
  const pollMs = opts.pollMs ?? 1000;
  const lateAfterMs = opts.lateAfterMs ?? 60_000;
  const now = opts.now ?? Date.now;
  const log = opts.log;
  const crons = new Map<string, Cron>();
  let leader = false;
  let stopped = false;
  let renewedAt = 0;
  let wake: (() => void) | undefined;

  const cronOf = (s: Schedule): Cron => {
    const key = `${s.expression}|${s.timezone ?? ''}`;
    let c = crons.get(key);
    if (!c) {
      c = new Cron(s.expression, { paused: true, ...(s.timezone ? { timezone: s.timezone } : {}) });
      crons.set(key, c);
    }
    return c;
  };

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(1, ms));
      wake = done;
      function done(): void {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
    });

  /** One pass as leader: fires what is due; returns when the next tick of any schedule is. */
  async function pass(): Promise<number> {
    const schedules = await listSchedules(opts.pool, { active: true });
    let next = now() + pollMs;
    for (const s of schedules) {
      let cron: Cron;
      try {
        cron = cronOf(s);
      } catch (err) {
        // Validated at load time; a schedule croner refuses now (a newer agent wrote it) is skipped, loudly.
        log?.warn(`cron job ${s.name} of ${s.environment}: cannot parse '${s.expression}'`, { error: String(err) });
        continue;
      }
      const at = now();
      for (const d of decideTicks(dueTicks(cron, s.cursorAt, at), at, lateAfterMs, s.catchUp)) {
        if (stopped) return now();
        const fired = await fireTick(opts.pool, { scheduleId: s.id, tickAt: d.tickAt, trigger: d.trigger });
        if (fired.created) {
          log?.info(`cron ${s.environment}/${s.name}: ${d.trigger} tick ${d.tickAt.toISOString()} -> run ${fired.runId} ${fired.status}`, {
            run: fired.runId,
            operation: fired.operationId ?? undefined,
          });
        }
      }
      const upcoming = cron.nextRun(new Date(Math.max(at, s.cursorAt.getTime())));
      if (upcoming) next = Math.min(next, upcoming.getTime());
    }
    return next;
  }

  const loop = (async () => {
    while (!stopped) {
      try {
        if (now() - renewedAt >= renewMs || !leader) {
          const was: boolean = leader;
          leader = await leadScheduling(opts.pool, opts.name, leaseSeconds);
          renewedAt = now();
          if (leader !== was) log?.info(leader ? `cron: ${opts.name} schedules now` : `cron: ${opts.name} lost the scheduling lease`);
        }
        if (!leader) {
          await sleep(Math.min(renewMs, 1000));
          continue;
        }
        const next = await pass();
        // Wake for the next tick, the next renewal, or the next look at the schedules, whichever is first.
        await sleep(Math.min(next, renewedAt + renewMs) - now());
      } catch (err) {
        log?.warn('cron scheduler pass failed; trying again', { error: String(err) });
        await sleep(1000);
      }
    }
  })();

  return {
    leading: () => leader,
    async stop() {
      stopped = true;
      wake?.();
      await loop;
      if (leader) {
        leader = false;
        await stopLeading(opts.pool, opts.name).catch((err: unknown) => log?.warn('could not give the cron lease up', { error: String(err) }));
      }
    },
  };
}
