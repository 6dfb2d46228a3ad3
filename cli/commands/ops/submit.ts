/**
 * `mp ops submit KIND [--env ENV] [--target T] [--payload JSON] [--idempotency-key K] [--detach] [--dry-run]`:
 * records an intent and follows it until it ends.
 */
import { z } from 'zod';
import { silentLogger } from '../../../agent/agent.ts';
import { connectDocker } from '../../../agent/docker/engine.ts';
import { planOperation, type AnyExecutor, type Json } from '../../../agent/executors/index.ts';
import { submitOperation } from '../../../sql/control/database.ts';
import { ConfigError, DockerError } from '../../../sql/errors.ts';
import type { Context } from '../../context.ts';
import { InvalidPayloadError } from '../../errors.ts';
import { environmentName, target } from '../../inputs.ts';
import {
  control,
  defaultTarget,
  executorFor,
  followOperation,
  reportOutcome,
  requireAgent,
  requireEnvironment,
  requireNode,
} from '../../operations.ts';
import { printResult, toJson } from '../../output.ts';

export const options = z
  .object({
    kind: z.string().min(1, 'name an operation kind; `mp ops kinds` lists them'),
    env: environmentName.optional(),
    target: target.optional(),
    payload: z.string().optional(),
    idempotencyKey: z.string().min(1).max(200, 'must be at most 200 characters').optional(),
    detach: z.boolean().default(false),
    dryRun: z.boolean().default(false),
  })
  .strict()
  .refine((o) => !(o.detach && o.dryRun), { message: '--detach and --dry-run exclude each other', path: ['detach'] });
export type Options = z.output<typeof options>;

/** How long `--dry-run` waits for a Docker engine to answer. */
const DOCKER_PING_MS = 2000;

/** `--payload` text as JSON, validated by the executor's schema; defaults applied (what the agent will run). */
export function payloadFor(executor: AnyExecutor, text: string | undefined): unknown {
  const example = `--payload '${JSON.stringify(executor.example)}'`;
  let raw: unknown = {};
  if (text !== undefined) {
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new ConfigError('INVALID_JSON', `--payload is not valid JSON: ${(err as Error).message}`, `a valid payload looks like ${example}`);
    }
  }
  const parsed = executor.payloadSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  throw new InvalidPayloadError(
    executor.kind,
    parsed.error.issues.map((i) => ({ path: i.path.length ? i.path.join('.') : '(payload)', problem: i.message })),
    executor.example,
  );
}

/** The target: `--target`, else the kind's own; kinds aimed at one node need `--target node:NAME`. */
function targetFor(executor: AnyExecutor, given: string | undefined): string {
  const t = given ?? defaultTarget(executor);
  if (t === undefined) {
    throw new ConfigError(
      'TARGET_REQUIRED',
      `${executor.kind} runs on one named node: pass --target node:<name>`,
      '`mp nodes ls` lists the nodes',
    );
  }
  return t;
}

/** `--dry-run`: what the operation would do now, read from the local Docker engine (observe is read-only). */
async function printPlan(ctx: Context, executor: AnyExecutor, payload: unknown, t: string): Promise<void> {
  const docker = connectDocker();
  try {
    await docker.ping(DOCKER_PING_MS);
  } catch (err) {
    throw new DockerError(
      'DOCKER_UNREACHABLE',
      `--dry-run reads the current state from Docker, and no engine answers at ${docker.endpoint}: ${(err as Error).message}`,
      'start dockerd or set DOCKER_HOST; without --dry-run an agent computes the plan where it runs',
    );
  }
  const plan: Json[] = await planOperation(
    { docker, signal: ctx.signal, log: silentLogger, step: () => {} },
    executor.kind,
    payload,
  );
  if (ctx.json) {
    ctx.stdout.write(`${toJson({ kind: executor.kind, target: t, payload, plan })}\n`);
    return;
  }
  ctx.stdout.write(`plan of ${executor.kind} for ${t} (nothing submitted), as seen by ${docker.endpoint}:\n`);
  plan.forEach((action, i) => ctx.stdout.write(`  ${i + 1}. ${JSON.stringify(action)}\n`));
  if (plan.length === 0) ctx.stdout.write('  (nothing to do)\n');
}

/**
 * Validates everything before writing anything (kind, payload, target, environment, node, an alive
 * agent), submits with one SQL call (row, job and "queued" event in one transaction), then follows the
 * operation's events until it ends: exit 0 when it succeeded, 8 with the reason when it failed or was
 * cancelled. `--detach` prints the id and returns at once.
 *
 * @example
 *   $ mp ops submit service.scale --env prod --payload '{"service": "web", "replicas": 3}'
 *   operation 12 submitted; Ctrl-C stops following (the operation keeps running)
 *   2026-11-26T23:31:39Z  queued     service.scale queued for manager
 *   2026-11-26T23:31:39Z  started    started on node-1
 *   ...
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const executor = executorFor(opts.kind);
  const payload = payloadFor(executor, opts.payload);
  const t = targetFor(executor, opts.target);
  if (opts.dryRun) {
    if (opts.env) await requireEnvironment(ctx, opts.env);
    await printPlan(ctx, executor, payload, t);
    return;
  }
  if (opts.env) await requireEnvironment(ctx, opts.env);
  await requireNode(ctx, t);
  if (!opts.detach) await requireAgent(ctx, t);
  const id = await submitOperation(control(ctx), {
    kind: executor.kind,
    environment: opts.env ?? null,
    payload,
    options: { target: t, idempotencyKey: opts.idempotencyKey },
  });
  if (opts.detach) {
    printResult(ctx, id, { id: Number(id) });
    return;
  }
  if (!ctx.json) ctx.stdout.write(`operation ${id} submitted; Ctrl-C stops following (the operation keeps running)\n`);
  reportOutcome(ctx, await followOperation(ctx, id));
}
