/**
 * Following a job's operation (`mp job run`, `mp cron run`): the job's output lines (`log` events) go
 * to stdout as the job wrote them, every other event to stderr as `mp ops tail` prints it, and the
 * command ends with the job's own exit code. With `--json`, every event is one JSON line on stdout.
 */
import { getOperation, operationEvents, FINISHED, type Operation, type OperationEvent } from '../../../sql/control/database.ts';
import { MiniPaasError } from '../../../sql/errors.ts';
import type { Context } from '../../context.ts';
import { OperationFailedError, StoppedFollowingError } from '../../errors.ts';
import { control, eventJson, EVENTS_STREAM, unknownOperation } from '../../operations.ts';
import { formatTime } from '../../output.ts';
import { listenForStream } from '../../wakeups.ts';

/** The job ended with a non-zero exit code: `mp job run` exits with it. */
export class JobExitError extends MiniPaasError {
  override readonly exitCode: number;
  constructor(code: string, message: string, hint: string | undefined, exitCode: number) {
    super(code, message, hint);
    this.exitCode = exitCode;
  }
}

/** The job's exit code as its `exit` event recorded it, if it got that far. */
function exitCodeOf(events: OperationEvent[]): number | undefined {
  const exit = [...events].reverse().find((e) => e.step === 'exit');
  const code = (exit?.data as { exitCode?: unknown } | undefined)?.exitCode;
  return typeof code === 'number' ? code : undefined;
}

function print(ctx: Context, e: OperationEvent): void {
  if (ctx.json) {
    ctx.stdout.write(`${JSON.stringify(eventJson(e))}\n`);
    return;
  }
  if (e.step === 'log') {
    const lines = (e.data as { lines?: unknown } | undefined)?.lines;
    if (Array.isArray(lines)) for (const line of lines) ctx.stdout.write(`${String(line)}\n`);
    return;
  }
  const message = e.level === 'info' ? e.message : `${e.level}: ${e.message}`;
  ctx.stderr.write(`${formatTime(new Date(e.at))}  ${e.step.padEnd(9)}  ${message}\n`);
}

/**
 * Follows operation `id` to its end (woken by LISTEN, polling every second); returns it when it
 * succeeded. Throws `JobExitError` with the job's exit code when the job failed, `OperationFailedError`
 * when the operation failed otherwise, `StoppedFollowingError` on Ctrl-C (the job keeps running).
 */
export async function followJob(ctx: Context, id: string): Promise<Operation> {
  const wakeups = await listenForStream(ctx, ctx.db(), EVENTS_STREAM);
  const seen: OperationEvent[] = [];
  try {
    let after = '0';
    for (;;) {
      const op = await getOperation(control(ctx), id);
      if (!op) throw unknownOperation(id);
      for (const e of await operationEvents(control(ctx), id, after)) {
        print(ctx, e);
        seen.push(e);
        after = e.pos;
      }
      if (FINISHED.has(op.status)) {
        if (op.status === 'succeeded') return op;
        const hint = `\`mp ops show ${op.id}\` shows its events`;
        const code = exitCodeOf(seen);
        if (op.status === 'failed' && code !== undefined && code > 0) {
          throw new JobExitError('JOB_FAILED', op.error ?? `the job exited with code ${code}`, hint, Math.min(code, 255));
        }
        throw new OperationFailedError(op.status === 'failed' ? 'OPERATION_FAILED' : 'OPERATION_CANCELLED', `operation ${op.id} ${op.status}: ${op.error ?? 'no reason recorded'}`, hint);
      }
      if (ctx.signal.aborted) {
        throw new StoppedFollowingError(
          'STOPPED_FOLLOWING',
          `stopped following operation ${id}; the job keeps running`,
          `resume with \`mp ops tail ${id}\`; stop it with \`mp ops cancel ${id}\``,
        );
      }
      await wakeups.wait();
    }
  } finally {
    await wakeups.close();
  }
}
