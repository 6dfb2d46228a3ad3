/** `mp stream ls`: every stream with its event count, positions and retention, from `mp.stream_stats()`. */
import { z } from 'zod';
import type { Context } from '../../context.ts';
import { bigintValue, formatSeconds, printRows, type Column } from '../../output.ts';

export const options = z.object({}).strict();
export type Options = z.output<typeof options>;

/** One stream, as `--json` prints it. `first_pos` is null when retention (or nothing yet) left it empty. */
export interface StreamRow {
  name: string;
  events: number | string;
  first_pos: number | string | null;
  last_pos: number | string;
  retention: { retention_seconds?: number; retention_count?: number };
  created_at: Date;
}

interface RawStream {
  name: string;
  events: string;
  first_pos: string | null;
  last_pos: string;
  retention: StreamRow['retention'] | null;
  created_at: Date;
}

/** `keep 7d00h, 1000 events`, or `forever`. */
function describeRetention(r: StreamRow['retention']): string {
  const parts: string[] = [];
  if (r.retention_seconds !== undefined) parts.push(formatSeconds(r.retention_seconds));
  if (r.retention_count !== undefined) parts.push(`${r.retention_count} events`);
  return parts.length ? `keep ${parts.join(', ')}` : 'forever';
}

const COLUMNS: Column<StreamRow & { keeps: string }>[] = [
  { key: 'name', heading: 'STREAM' },
  { key: 'events', right: true },
  { key: 'first_pos', heading: 'FIRST', right: true },
  { key: 'last_pos', heading: 'LAST', right: true },
  { key: 'keeps', heading: 'RETENTION' },
  { key: 'created_at', heading: 'CREATED' },
];

/**
 * Lists streams.
 *
 * @example
 *   $ mp stream ls
 *   STREAM     EVENTS  FIRST  LAST  RETENTION        CREATED
 *   mp_events     120      1   120  keep 1000 events  2026-11-26T23:31:39Z
 */
export async function run(ctx: Context, _opts: Options): Promise<void> {
  const raw = await ctx
    .db()
    .query<RawStream>(`select name, events, first_pos, last_pos, retention, created_at from mp.stream_stats(null)`);
  const rows: StreamRow[] = raw.map((r) => ({
    name: r.name,
    events: bigintValue(r.events)!,
    first_pos: bigintValue(r.first_pos),
    last_pos: bigintValue(r.last_pos)!,
    retention: r.retention ?? {},
    created_at: r.created_at,
  }));
  if (ctx.json) printRows(ctx, rows, [], '');
  else
    printRows(
      ctx,
      rows.map((r) => ({ ...r, keeps: describeRetention(r.retention) })),
      COLUMNS,
      "no streams yet; create one with select mp.stream_create('events')",
    );
}
