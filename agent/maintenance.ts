/**
 * The agent's periodic hot-table maintenance: every `intervalMs` (10 minutes in the agent) it compacts
 * mp.jobs (sql/queues/compact.ts), so the space a drained backlog left behind comes back without an
 * operator. Every agent runs it; two at once are harmless (the second one's lock request times out, or
 * it finds nothing left to rewrite).
 *
 * Ticks never overlap: the next one is scheduled when the previous one has ended. A failed tick is
 * logged and the next one tries again; a role that may not vacuum mp.jobs is said once, then the agent
 * stops trying (permissions do not change by waiting).
 *
 * @example
 *   const maintenance = startMaintenance({ intervalMs: 600_000, log, compact: () => compactJobs(pool) });
 *   await maintenance.stop();
 */
import { within } from '../sql/connections.ts';
import { ConflictError } from '../sql/errors.ts';
import { formatBytes, type CompactReport } from '../sql/queues/compact.ts';
import type { Logger } from './executors/index.ts';

/** How long `stop()` waits for a tick in progress: its lock timeout and a short rewrite fit well inside. */
const STOP_TIMEOUT_MS = 10_000;

/** Running maintenance. */
export interface Maintenance {
  /** Cancels the next tick, or waits for the one running (at most 10 s). */
  stop(): Promise<void>;
}

/** Starts ticking; an interval of 0 or less starts nothing. */
export function startMaintenance(opts: { intervalMs: number; log: Logger; compact: () => Promise<CompactReport> }): Maintenance {
  const { intervalMs, log } = opts;
  if (intervalMs <= 0) return { stop: async () => {} };
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  async function tick(): Promise<void> {
    try {
      const r = await opts.compact();
      const size = (f: CompactReport['before']): string => formatBytes(f.tableBytes + f.indexBytes);
      const data = { action: r.action, reason: r.reason, before: size(r.before), after: size(r.after), liveRows: r.after.liveRows };
      if (r.action === 'rewritten') log.info('compacted mp.jobs', data);
      else log.debug('mp.jobs maintenance', data);
    } catch (err) {
      if (err instanceof ConflictError && err.code === 'COMPACT_NOT_PERMITTED') {
        log.warn('mp.jobs maintenance is off on this agent', { error: err.message, hint: err.hint });
        stopped = true;
        return;
      }
      log.warn('mp.jobs maintenance failed; trying again next interval', { error: err instanceof Error ? err.message : String(err) });
    }
  }

  function schedule(): void {
    timer = setTimeout(() => {
      running = tick().finally(() => {
        running = undefined;
        if (!stopped) schedule();
      });
    }, intervalMs);
  }
  schedule();

  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      // Bounded: a tick whose connect hangs on a database that went away must not hold the agent's stop.
      if (running && (await within(running.then(() => true), STOP_TIMEOUT_MS)) === undefined) {
        log.warn('mp.jobs maintenance still running at stop; leaving it', { waitedMs: STOP_TIMEOUT_MS });
      }
    },
  };
}
