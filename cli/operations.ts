/**
 * What the commands that submit and follow operations share (`mp ops submit|tail|retry`, `mp dev`): the
 * kind lookup with its near miss, the checks that refuse bad input before anything is written, and
 * following an operation's events until it ends.
 *
 * Terminology (README, docs/architecture.md): an *operation* is one intent (a row in `mp.operations` and
 * a job on `mp_ops`); an *agent* claims and executes it; each step is an *event* on the stream
 * `mp_events` (key = the operation id); the *target* says which agents may claim it.
 */
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { executors, knownKinds, type AnyExecutor } from '../agent/executors/index.ts';
import { listNames, nearMiss } from '../agent/executors/near-miss.ts';
import {
  agentAliveFor,
  controlDb,
  FINISHED,
  getOperation,
  operationEvents,
  type Database as ControlDatabase,
  type Operation,
  type OperationEvent,
} from '../sql/control/database.ts';
import { NotFoundError } from '../sql/errors.ts';
import type { Context } from './context.ts';
import { NoAgentError, OperationFailedError, StoppedFollowingError } from './errors.ts';
import { bigintValue, formatTime, printRecord } from './output.ts';
import { listenForStream } from './wakeups.ts';

/** The stream every operation's events go to. */
export const EVENTS_STREAM = 'mp_events';

const kyselies = new WeakMap<pg.Pool, Kysely<ControlDatabase>>();

/** The control-plane query builder over the command's pool (one per pool; the pool stays the context's). */
export function control(ctx: Context): Kysely<ControlDatabase> {
  const pool = ctx.db().pool;
  let k = kyselies.get(pool);
  if (!k) {
    k = controlDb(pool);
    kyselies.set(pool, k);
  }
  return k;
}

/** The executor of `kind`; `NotFoundError` (exit 3) listing the known kinds and the near miss otherwise. */
export function executorFor(kind: string): AnyExecutor {
  const executor = executors.get(kind);
  if (executor) return executor;
  const guess = nearMiss(kind, knownKinds());
  throw new NotFoundError(
    'UNKNOWN_KIND',
    `unknown operation kind '${kind}'${guess ? ` (did you mean '${guess}'?)` : ''}; known kinds: ${listNames(knownKinds(), 100)}`,
    '`mp ops kinds` lists each kind with its target and an example payload',
  );
}

/** The target an operation of `executor` gets without `--target`; `undefined` for kinds aimed at one node. */
export function defaultTarget(executor: AnyExecutor): string | undefined {
  return executor.target === 'node' ? undefined : executor.target;
}

/** Raises the SQL's "unknown operation" (`MP009`, exit 3). */
export function unknownOperation(id: string): NotFoundError {
  return new NotFoundError('MP009', `unknown operation ${id}`, 'list operations with `mp ops ls`');
}

/** The operation `id`; `NotFoundError` when there is none. */
export async function requireOperation(ctx: Context, id: string): Promise<Operation> {
  const op = await getOperation(control(ctx), id);
  if (!op) throw unknownOperation(id);
  return op;
}

/**
 * Refuses an unknown environment before anything is written, suggesting the near miss. (`mp.submit_operation`
 * checks it again inside its transaction; this is the early, friendlier answer.)
 */
export async function requireEnvironment(ctx: Context, env: string): Promise<void> {
  const names = (await ctx.db().query<{ name: string }>(`select name from mp.environments order by name`)).map((r) => r.name);
  if (names.includes(env)) return;
  const guess = nearMiss(env, names);
  throw new NotFoundError(
    'MP009',
    `unknown environment "${env}"${guess ? ` (did you mean "${guess}"?)` : ''}; environments: ${listNames(names)}`,
    `create it with \`mp env create ${env}\``,
  );
}

/** Refuses `node:<name>` when no agent ever registered that node. */
export async function requireNode(ctx: Context, target: string): Promise<void> {
  if (!target.startsWith('node:')) return;
  const name = target.slice('node:'.length);
  const names = (await ctx.db().query<{ name: string }>(`select name from mp.nodes order by name`)).map((r) => r.name);
  if (names.includes(name)) return;
  const guess = nearMiss(name, names);
  throw new NotFoundError(
    'MP009',
    `unknown node "${name}" in --target ${target}${guess ? ` (did you mean "${guess}"?)` : ''}; nodes: ${listNames(names)}`,
    'a node exists once its agent has started; `mp nodes ls` lists them',
  );
}

/**
 * Refuses at once, without writing, when no agent able to claim `target` heartbeated in the last 30 s:
 * an operation nobody will run would otherwise leave the CLI waiting forever.
 */
export async function requireAgent(ctx: Context, target: string): Promise<void> {
  if (await agentAliveFor(control(ctx), target)) return;
  const detach = 'or pass --detach to queue it anyway';
  if (target === 'manager') {
    throw new NoAgentError(
      'NO_AGENT',
      'no manager agent has sent a heartbeat in 30 s',
      `start one with \`mp agent\` on a Swarm manager (\`mp dev\` runs one here); \`mp nodes ls\` shows the agents; ${detach}`,
    );
  }
  if (target === 'provisioner') {
    throw new NoAgentError('NO_AGENT', 'no provisioner agent has sent a heartbeat in 30 s', `start one with \`mp agent --provisioner\`; ${detach}`);
  }
  if (target.startsWith('node:')) {
    const name = target.slice('node:'.length);
    throw new NoAgentError(
      'NO_AGENT',
      `the agent of node "${name}" has not sent a heartbeat in 30 s`,
      `start it on that node with \`mp agent --name ${name}\`; \`mp nodes ls\` shows the agents; ${detach}`,
    );
  }
  throw new NoAgentError('NO_AGENT', 'no agent has sent a heartbeat in 30 s', `start one with \`mp agent\` (or \`mp dev\`); ${detach}`);
}

/** One event as `--json` prints it: the payload on `mp_events`, with its stream position. */
export function eventJson(e: OperationEvent): Record<string, unknown> {
  return { ...e, pos: bigintValue(e.pos) };
}

/** `2026-11-26T23:31:39Z  started    started on agent-a`, or one JSON object per line with `--json`. */
export function printEvent(ctx: Context, e: OperationEvent): void {
  const message = e.level === 'info' ? e.message : `${e.level}: ${e.message}`;
  printRecord(ctx, [formatTime(new Date(e.at)), e.step.padEnd(9), message], eventJson(e));
}

/**
 * Prints the events of operation `id` after stream position `after`, then new ones as they come (woken by
 * LISTEN on `mp_stream_mp_events`, polling every second as a fallback), until the operation ends; returns
 * it as it ended. Ctrl-C stops following (the operation keeps running) with `StoppedFollowingError`.
 *
 * The status is read before the events: the SQL that ends an operation appends its last event in the
 * same transaction, so once a read sees it finished, the next read of events holds all of them.
 */
export async function followOperation(ctx: Context, id: string, opts: { after?: string } = {}): Promise<Operation> {
  const wakeups = await listenForStream(ctx, ctx.db(), EVENTS_STREAM);
  try {
    let after = opts.after ?? '0';
    for (;;) {
      const op = await getOperation(control(ctx), id);
      if (!op) throw unknownOperation(id);
      for (const e of await operationEvents(control(ctx), id, after)) {
        printEvent(ctx, e);
        after = e.pos;
      }
      if (FINISHED.has(op.status)) return op;
      if (ctx.signal.aborted) {
        throw new StoppedFollowingError(
          'STOPPED_FOLLOWING',
          `stopped following operation ${id}; it is ${op.status} and keeps going without you`,
          `resume with \`mp ops tail ${id}\`; stop it with \`mp ops cancel ${id}\``,
        );
      }
      await wakeups.wait();
    }
  } finally {
    await wakeups.close();
  }
}

/** Seconds an operation ran, for the closing line. */
function took(op: Operation): string {
  if (!op.started_at || !op.finished_at) return '';
  return ` in ${((op.finished_at.getTime() - op.started_at.getTime()) / 1000).toFixed(1)} s`;
}

/**
 * Ends a followed operation the way the process should: a closing line (and the result) when it
 * succeeded, `OperationFailedError` (exit 8) with the reason when it failed or was cancelled.
 */
export function reportOutcome(ctx: Context, op: Operation): void {
  const hint = `\`mp ops show ${op.id}\` shows its events; \`mp ops retry ${op.id}\` runs it again`;
  if (op.status === 'failed') {
    throw new OperationFailedError('OPERATION_FAILED', `operation ${op.id} failed: ${op.error ?? 'no reason recorded'}`, hint);
  }
  if (op.status === 'cancelled') {
    throw new OperationFailedError('OPERATION_CANCELLED', `operation ${op.id} was cancelled${op.error ? `: ${op.error}` : ''}`, hint);
  }
  // With --json the last event line already carries the result (as its `data`).
  if (ctx.json) return;
  ctx.stdout.write(`operation ${op.id} ${op.kind} succeeded${took(op)}\n`);
  if (op.result !== null && op.result !== undefined) ctx.stdout.write(`result: ${JSON.stringify(op.result)}\n`);
}
