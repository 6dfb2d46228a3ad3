/**
 * The executor registry: the one place that lists operation kinds. The claim loop looks an
 * operation's kind up here, validates its payload and runs it.
 *
 * @example
 *   const result = await runOperation(ctx, 'service.scale', { service: 'web', replicas: 3 });
 */
import { NotFoundError } from '../../sql/errors.ts';
import { checkPayload } from '../../sql/payload.ts';
import { canaryRemove } from './canary-remove.ts';
import { canaryStart } from './canary-start.ts';
import { configCreate } from './config-create.ts';
import { cronTick } from './cron-tick.ts';
import { deploy } from './deploy.ts';
import { dockerInfo } from './docker-info.ts';
import { jobRun } from './job-run.ts';
import { routing } from './routing.ts';
import { listNames, nearMiss } from './near-miss.ts';
import { alertPost } from './nodes-alert.ts';
import { nodeAvailability } from './node-availability.ts';
import { nodeRemove } from './node-remove.ts';
import { provisionHostExecutor } from './provision-host.ts';
import { provisionStepExecutor } from './provision-step.ts';
import { releaseJob } from './release-job.ts';
import { secretCreate } from './secret-create.ts';
import { configRemove, secretRemove } from './secret-remove.ts';
import { secretsRotateKey } from './secret-rotate-key.ts';
import { serviceScale } from './service-scale.ts';
import { stackRemove } from './stack-remove.ts';
import type { AnyExecutor, ExecutorContext, Json } from './types.ts';

export type { AnyExecutor, Executor, ExecutorContext, Json, Logger, Target } from './types.ts';

/** Every executor, by kind. Adding a kind is adding its file and one line here. */
export const executors: ReadonlyMap<string, AnyExecutor> = new Map(
  ([deploy, dockerInfo, jobRun, serviceScale, stackRemove, configCreate, configRemove, secretCreate, secretRemove, secretsRotateKey, routing, cronTick, releaseJob, alertPost, provisionHostExecutor, provisionStepExecutor, nodeAvailability, nodeRemove, canaryStart, canaryRemove] as AnyExecutor[]).map((e) => [e.kind, e]),
);

/** The kinds the agent can execute, sorted. */
export function knownKinds(): string[] {
  return [...executors.keys()].sort();
}

/** The executor for `kind`; `NotFoundError` naming the known kinds (and the near miss) otherwise. */
export function getExecutor(kind: string): AnyExecutor {
  const executor = executors.get(kind);
  if (executor) return executor;
  const guess = nearMiss(kind, knownKinds());
  throw new NotFoundError(
    'UNKNOWN_KIND',
    `unknown operation kind '${kind}'; known kinds: ${listNames(knownKinds(), 100)}`,
    guess ? `did you mean '${guess}'?` : 'this agent may be older than the operation; upgrade it',
  );
}

/** Validates `raw` against the executor's schema; `ConfigError` (MP008, as SQL's) naming each problem. */
export function parsePayload(executor: AnyExecutor, raw: unknown): unknown {
  return checkPayload(executor.payloadSchema, raw, executor.kind, `example of a valid payload: ${JSON.stringify(executor.example)}`);
}

/** What a dry run needs: an operation that is not submitted yet has no id. */
export type PlanContext = Omit<ExecutorContext, 'operationId'> & { operationId?: string };

/** Stands in for the id of an operation not submitted yet: a job's plan then names `mp-job-<id>`. */
export const UNSUBMITTED_ID = '<id>';

/** The plan an operation would apply now, without applying it (`--dry-run`). */
export async function planOperation(ctx: PlanContext, kind: string, raw: unknown): Promise<Json[]> {
  const executor = getExecutor(kind);
  const payload = parsePayload(executor, raw);
  const full: ExecutorContext = { ...ctx, operationId: ctx.operationId ?? UNSUBMITTED_ID };
  return executor.plan(payload, await executor.observe(full, payload));
}

/** Looks the kind up, validates the payload and executes it; returns the executor's JSON result. */
export async function runOperation(ctx: ExecutorContext, kind: string, raw: unknown): Promise<Json> {
  const executor = getExecutor(kind);
  return await executor.execute(ctx, parsePayload(executor, raw));
}
