/** `mp queue compact [--force] [--max-live-rows N] [--lock-timeout MS]`: gives back the space of a drained backlog. */
import { z } from 'zod';
import { COMPACT_DEFAULTS, compactJobs, formatBytes, type CompactReport, type JobsFootprint } from '../../../sql/queues/compact.ts';
import type { Context } from '../../context.ts';
import { position, positiveInt } from '../../inputs.ts';
import { printResult } from '../../output.ts';

export const options = z
  .object({
    force: z.boolean().default(false),
    maxLiveRows: position.default(COMPACT_DEFAULTS.maxLiveRows),
    lockTimeout: positiveInt.default(COMPACT_DEFAULTS.lockTimeoutMs),
  })
  .strict();
export type Options = z.output<typeof options>;

/** `7.9 MB → 40 kB (table 7.1 MB → 0 kB, indexes 808 kB → 40 kB)`. */
function sizes(before: JobsFootprint, after: JobsFootprint): string {
  const arrow = (a: number, b: number): string => `${formatBytes(a)} → ${formatBytes(b)}`;
  return (
    `${arrow(before.tableBytes + before.indexBytes, after.tableBytes + after.indexBytes)} ` +
    `(table ${arrow(before.tableBytes, after.tableBytes)}, indexes ${arrow(before.indexBytes, after.indexBytes)})`
  );
}

/** `12 live rows`, or `more than 10,000 live rows` when the count stopped at its cap. */
function liveRows(report: CompactReport, maxLiveRows: number): string {
  const n = report.after.liveRows;
  return n > maxLiveRows ? `more than ${maxLiveRows.toLocaleString('en-US')} live rows` : `${n.toLocaleString('en-US')} live row${n === 1 ? '' : 's'}`;
}

/**
 * Compacts the hot table mp.jobs (`compactJobs`): rewrites it when it is mostly empty space, else runs
 * a plain VACUUM; a busy table is left alone (`skipped`, exit 0: the next run tries again).
 *
 * @example
 *   $ mp queue compact
 *   rewritten: 54.0 MB for 0 live rows, over 4x the ~0 kB they need
 *   mp.jobs: 54.0 MB → 40 kB (table 0 kB → 0 kB, indexes 54.0 MB → 40 kB), 0 live rows
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const report = await compactJobs(ctx.db().pool, {
    force: opts.force,
    maxLiveRows: opts.maxLiveRows,
    lockTimeoutMs: opts.lockTimeout,
  });
  printResult(
    ctx,
    `${report.action}: ${report.reason}\nmp.jobs: ${sizes(report.before, report.after)}, ${liveRows(report, opts.maxLiveRows)}`,
    report,
  );
}
