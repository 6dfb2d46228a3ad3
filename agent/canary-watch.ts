/**
 * The canary watcher of manager agents: a live canary whose tasks keep failing after it went live (a
 * healthcheck that starts failing, a process that crashes under real traffic) is aborted by itself.
 * Every `intervalMs` (2 s) it reads the live canaries; for each, the failed or rejected tasks of its
 * Swarm service since it went live; at `MAX_FAILURES` it enqueues the canary's `canary.remove` with the
 * reason (mp.canary_auto_abort, which does it once however many agents watch). Before it is live,
 * `canary.start` itself aborts a failing canary (agent/executors/canary-start.ts).
 *
 * Why polling: Swarm has no event for "task failed" that every manager sees reliably across restarts,
 * and with no live canary a tick is one indexed query and no Docker call at all.
 *
 * @example
 *   const watch = startCanaryWatch({ pool, docker, log });
 *   await watch.stop();
 */
import type pg from 'pg';
import { liveCanaries, autoAbortCanary } from '../sql/control/canaries.ts';
import type { DockerEngine } from './docker/engine.ts';
import { canaryServices } from './executors/canary-start.ts';
import type { Logger } from './executors/types.ts';

/** Failed tasks after which a live canary is aborted: as many as a deploy tolerates (agent/deploy/converge.ts). */
export const MAX_FAILURES = 3;

export interface CanaryWatch {
  stop(): Promise<void>;
}

/** One pass: aborts each live canary with too many failed tasks; returns the canaries it aborted. */
export async function checkCanaries(pool: pg.Pool, docker: DockerEngine, log: Logger): Promise<string[]> {
  const aborted: string[] = [];
  for (const canary of await liveCanaries(pool)) {
    const since = (canary.liveAt ?? canary.createdAt).getTime();
    const services = await canaryServices(docker, canary.id);
    if (services.length === 0) continue;
    const tasks = await docker.listTasks({ serviceIds: services.map((s) => s.id) });
    const failed = tasks
      .filter((t) => (t.state === 'failed' || t.state === 'rejected') && Date.parse(t.updatedAt ?? '') >= since)
      .sort((a, b) => Date.parse(a.updatedAt ?? '') - Date.parse(b.updatedAt ?? ''));
    if (failed.length < MAX_FAILURES) continue;
    const reason = `aborted by itself: ${failed.length} tasks of ${services[0]!.name} failed since it went live; last task error: ${failed.at(-1)?.error ?? 'unknown'}`;
    const op = await autoAbortCanary(pool, canary.id, reason);
    if (op) {
      log.warn('canary aborted: its tasks keep failing', { canary: canary.id, service: canary.service, operation: op });
      aborted.push(canary.id);
    }
  }
  return aborted;
}

/** Starts watching; ticks never overlap, a failed tick is logged and the next one tries again. */
export function startCanaryWatch(opts: { pool: pg.Pool; docker: DockerEngine; log: Logger; intervalMs?: number }): CanaryWatch {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const tick = async (): Promise<void> => {
    try {
      await checkCanaries(opts.pool, opts.docker, opts.log);
    } catch (err) {
      if (!stopped) opts.log.warn('canary watch failed; trying again', { error: String(err) });
    }
  };
  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = tick().finally(() => {
        running = undefined;
        schedule();
      });
    }, opts.intervalMs ?? 2_000);
    timer.unref();
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
