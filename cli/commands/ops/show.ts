/** `mp ops show ID`: one operation: its row, result or error, and all its events. */
import { z } from 'zod';
import { operationEvents, type Operation } from '../../../sql/control/database.ts';
import type { Context } from '../../context.ts';
import { bigintId } from '../../inputs.ts';
import { control, eventJson, requireOperation } from '../../operations.ts';
import { bigintValue, formatTime, printObject, renderTable, toJson, type Column } from '../../output.ts';

export const options = z.object({ id: bigintId }).strict();
export type Options = z.output<typeof options>;

const FIELDS: Column<Operation>[] = [
  { key: 'id' },
  { key: 'kind' },
  { key: 'environment', heading: 'env' },
  { key: 'target' },
  { key: 'status' },
  { key: 'attempts' },
  { key: 'node' },
  { key: 'submitted_by', heading: 'submitted by' },
  { key: 'idempotency_key', heading: 'idempotency key' },
  { key: 'serial_key', heading: 'serial key' },
  { key: 'parent_id', heading: 'parent' },
  { key: 'cancel_requested', heading: 'cancel requested' },
  { key: 'created_at', heading: 'created' },
  { key: 'started_at', heading: 'started' },
  { key: 'finished_at', heading: 'finished' },
  { key: 'payload' },
  { key: 'result' },
  { key: 'error' },
];

interface EventLine {
  pos: string;
  at: string;
  step: string;
  level: string;
  attempt: number;
  node: string | undefined;
  message: string;
}

const EVENT_COLUMNS: Column<EventLine>[] = [
  { key: 'pos', right: true },
  { key: 'at', heading: 'TIME' },
  { key: 'step' },
  { key: 'level' },
  { key: 'attempt', heading: 'TRY', right: true },
  { key: 'node' },
  { key: 'message' },
];

/**
 * @example
 *   $ mp ops show 12
 *   id                12
 *   kind              docker.info
 *   ...
 *   EVENTS
 *   POS  TIME                  STEP       LEVEL  TRY  NODE    MESSAGE
 *    41  2026-11-26T23:31:39Z  queued     info     0  -       docker.info queued for any
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const op = await requireOperation(ctx, opts.id);
  const events = await operationEvents(control(ctx), opts.id);
  if (ctx.json) {
    const ids = { id: bigintValue(op.id), parent_id: bigintValue(op.parent_id), job_id: bigintValue(op.job_id) };
    ctx.stdout.write(`${toJson({ ...op, ...ids, events: events.map(eventJson) })}\n`);
    return;
  }
  printObject(ctx, op, FIELDS);
  ctx.stdout.write('\nEVENTS\n');
  const lines: EventLine[] = events.map((e) => ({
    pos: e.pos,
    at: formatTime(new Date(e.at)),
    step: e.step,
    level: e.level,
    attempt: e.attempt,
    node: e.node,
    message: e.message,
  }));
  ctx.stdout.write(renderTable(lines, EVENT_COLUMNS));
}
