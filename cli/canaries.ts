/**
 * What the canary verbs and `mp deploy` share: finding the canary a promote or abort means, and the
 * rule that a deploy does not run while an environment has an unfinished canary (it refuses, or with
 * `--wait` waits until the canary is promoted or aborted). The verbs are `cli/commands/deploy/
 * canary.ts`, `promote.ts` and `abort.ts`; docs/routing.md "Canary" says how canaries work.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { listNames, nearMiss } from '../agent/executors/near-miss.ts';
import { listCanaries, type Canary } from '../sql/control/canaries.ts';
import { ConflictError, NotFoundError } from '../sql/errors.ts';
import type { Context } from './context.ts';
import { formatTime } from './output.ts';

/** One canary in a line: `canary 3 of api (live, 1 replica beside release 2, since ...)`. */
export function describeCanary(c: Canary): string {
  return `canary ${c.id} of ${c.service} (${c.status}, ${c.replicas} replica${c.replicas === 1 ? '' : 's'} beside release ${c.baseVersion}, since ${formatTime(c.createdAt)})`;
}

/**
 * The unfinished canary a promote or abort of `service` (or of the only one) means. `NotFoundError`
 * when there is none (naming the services that have one, with the near miss), `ConflictError` when no service is named and several have one.
 */
export async function canaryToEnd(ctx: Context, environment: string, envArg: string, service: string | undefined, verb: 'promote' | 'abort'): Promise<Canary> {
  const open = await listCanaries(ctx.db().pool, environment, { unfinished: true });
  if (service === undefined) {
    if (open.length === 1) return open[0]!;
    if (open.length === 0) {
      throw new NotFoundError('NO_CANARY', `environment ${environment} has no canary to ${verb}`, `start one with \`mp deploy canary --env ${envArg} --replicas 1 SERVICE\``);
    }
    throw new ConflictError(
      'SEVERAL_CANARIES',
      `environment ${environment} has canaries of ${listNames(open.map((c) => c.service))}: name the one to ${verb}`,
      `e.g. \`mp deploy ${verb} --env ${envArg} ${open[0]!.service}\``,
    );
  }
  const found = open.find((c) => c.service === service);
  if (found) return found;
  const guess = nearMiss(service, open.map((c) => c.service));
  throw new NotFoundError(
    'NO_CANARY',
    `service '${service}' of ${environment} has no canary to ${verb}${open.length ? `; canaries: ${listNames(open.map((c) => c.service))}` : ''}`,
    guess ? `did you mean '${guess}'?` : `start one with \`mp deploy canary --env ${envArg} --replicas 1 ${service}\``,
  );
}

/** The error a deploy gets while `canary` is unfinished: names it and the fixes. */
export function liveCanaryError(environment: string, envArg: string, canary: Canary): ConflictError {
  return new ConflictError(
    'CANARY_LIVE',
    `environment ${environment} has a ${describeCanary(canary)}; a deploy would roll ${canary.service} under it`,
    `promote it (\`mp deploy promote --env ${envArg} ${canary.service}\`) or abort it (\`mp deploy abort --env ${envArg} ${canary.service}\`) first, or deploy with --wait`,
  );
}

/**
 * Before a deploy: refuses (`ConflictError` CANARY_LIVE) when the environment has an unfinished canary,
 * or with `wait` waits (polling every second, at most `waitSeconds`) until it has none.
 */
export async function awaitNoCanary(ctx: Context, environment: string, envArg: string, opts: { wait: boolean; waitSeconds: number }): Promise<void> {
  const first = (await listCanaries(ctx.db().pool, environment, { unfinished: true }))[0];
  if (!first) return;
  if (!opts.wait) throw liveCanaryError(environment, envArg, first);
  if (!ctx.json) ctx.stderr.write(`waiting until ${describeCanary(first)} is promoted or aborted (at most ${opts.waitSeconds} s)\n`);
  const deadline = Date.now() + opts.waitSeconds * 1000;
  for (;;) {
    const open = await listCanaries(ctx.db().pool, environment, { unfinished: true });
    if (open.length === 0) return;
    if (Date.now() >= deadline) {
      throw new ConflictError(
        'CANARY_WAIT_TIMEOUT',
        `${describeCanary(open[0]!)} was still unfinished after ${opts.waitSeconds} s; nothing was deployed`,
        `promote or abort it, or wait longer with --wait-timeout`,
      );
    }
    ctx.signal.throwIfAborted();
    await sleep(1000, undefined, { signal: ctx.signal }).catch(() => {});
  }
}
