/** `mp stream groups [STREAM]`: consumer groups with their offsets and lag, from `mp.group_stats()`. */
import { z } from 'zod';
import type { Context } from '../../context.ts';
import { streamName } from '../../inputs.ts';
import { bigintValue, printRows, type Column } from '../../output.ts';

export const options = z.object({ stream: streamName.optional() }).strict();
export type Options = z.output<typeof options>;

/**
 * One consumer group, as `--json` prints it (the columns of `mp.group_stats`). `committed` is the end of the prefix the group finished,
 * `lag` how many events it has not finished, `members` who holds leases right now.
 */
export interface GroupRow {
  stream: string;
  grp: string;
  committed: number | string;
  next_pos: number | string;
  lag: number | string;
  members: string[];
  oldest_lease_until: Date | null;
}

interface RawGroup {
  stream: string;
  grp: string;
  committed: string;
  next_pos: string;
  lag: string;
  members: string[] | null;
  oldest_lease_until: Date | null;
}

const COLUMNS: Column<GroupRow & { holders: string }>[] = [
  { key: 'stream' },
  { key: 'grp', heading: 'GROUP' },
  { key: 'committed', right: true },
  { key: 'next_pos', heading: 'NEXT', right: true },
  { key: 'lag', right: true },
  { key: 'holders', heading: 'MEMBERS', max: 40 },
  { key: 'oldest_lease_until', heading: 'OLDEST LEASE UNTIL' },
];

/**
 * Lists consumer groups, of one stream or of all. An unknown stream fails with MP005 (exit 3).
 *
 * @example
 *   $ mp stream groups mp_events
 *   STREAM     GROUP   COMMITTED  NEXT  LAG  MEMBERS  OLDEST LEASE UNTIL
 *   mp_events  mailer        118   121    2  host-1   2026-11-26T23:32:09Z
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const raw = await ctx
    .db()
    .query<RawGroup>(
      `select stream, grp, committed, next_pos, lag, members, oldest_lease_until from mp.group_stats($1)`,
      [opts.stream ?? null],
    );
  const rows: GroupRow[] = raw.map((r) => ({
    stream: r.stream,
    grp: r.grp,
    committed: bigintValue(r.committed)!,
    next_pos: bigintValue(r.next_pos)!,
    lag: bigintValue(r.lag)!,
    members: r.members ?? [],
    oldest_lease_until: r.oldest_lease_until,
  }));
  const empty = opts.stream ? `stream "${opts.stream}" has no consumer groups` : 'no consumer groups yet';
  if (ctx.json) printRows(ctx, rows, [], empty);
  else printRows(ctx, rows.map((r) => ({ ...r, holders: r.members.join(', ') })), COLUMNS, empty);
}
