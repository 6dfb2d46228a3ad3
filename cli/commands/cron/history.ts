/** `mp cron history --env DIR JOB [--limit N]`: the runs of one cron job, newest tick first. */
import { z } from 'zod';
import { listRuns, scheduleByName, type Run } from '../../../sql/control/cron.ts';
import type { Context } from '../../context.ts';
import { environmentDir, environmentNameOf } from '../../environment.ts';
import { positiveInt } from '../../inputs.ts';
import { printRows, type Column } from '../../output.ts';

export const options = z.object({ env: z.string().min(1), job: z.string().min(1), limit: positiveInt.default(20) }).strict();
export type Options = z.output<typeof options>;

interface Line {
  run: string;
  tick: Date;
  trigger: string;
  status: string;
  exit: number | null;
  late: string;
  took: string;
  node: string | null;
  op: string | null;
  reason: string | null;
}

const COLUMNS: Column<Line>[] = [
  { key: 'run', right: true },
  { key: 'tick' },
  { key: 'trigger' },
  { key: 'status' },
  { key: 'exit', right: true },
  { key: 'late', right: true },
  { key: 'took', right: true },
  { key: 'node' },
  { key: 'op', right: true },
  { key: 'reason', max: 80 },
];

/** A run as one line; the last log line of a failed run stands in for a missing reason. */
export function runLine(r: Run): Line {
  const took = r.finishedAt && (r.startedAt ?? r.createdAt) ? `${((r.finishedAt.getTime() - (r.startedAt ?? r.createdAt).getTime()) / 1000).toFixed(1)} s` : '';
  return {
    run: r.id,
    tick: r.tickAt,
    trigger: r.trigger,
    status: r.status,
    exit: r.exitCode,
    late: r.latenessSeconds === null ? '' : `${r.latenessSeconds.toFixed(2)} s`,
    took,
    node: r.node,
    op: r.operationId,
    reason: r.reason ?? (r.logs?.length ? r.logs.at(-1)! : null),
  };
}

export async function run(ctx: Context, opts: Options): Promise<void> {
  const environment = environmentNameOf(environmentDir(opts.env));
  await scheduleByName(ctx.db().pool, environment, opts.job);
  const runs = await listRuns(ctx.db().pool, { environment, name: opts.job, limit: opts.limit });
  if (ctx.json) {
    ctx.stdout.write(`${JSON.stringify(runs)}\n`);
    return;
  }
  printRows(ctx, runs.map(runLine), COLUMNS, `cron job ${opts.job} of ${environment} has not run yet`);
}
