/**
 * `mp deploy canary --env DIR [--replicas N] [--detach] SERVICE`: starts the version of SERVICE the
 * environment's files say now beside the one the current release runs, as its own Swarm service with N
 * replicas (default 1) that shares the main service's network alias, so Caddy's round robin over
 * `tasks.SERVICE` sends it N of every (main + N) requests. Recorded as a canary (mp.canaries) with its
 * `canary.start` operation, which waits until the canary's tasks run healthy, and aborts the canary
 * by itself when they do not. `mp deploy promote` / `mp deploy abort` end it (docs/routing.md "Canary").
 *
 * Refused before anything is written: an unknown service (with the near miss), one that is not
 * replicated, one whose spec in the files is the same as in the current release, one that already has
 * a canary, and a new version that needs a network, secret or config the current release does not
 * have (deploy that first: a canary changes one service only).
 */
import type Dockerode from 'dockerode';
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { listNames, nearMiss } from '../../../agent/executors/near-miss.ts';
import { createCanary, listCanaries } from '../../../sql/control/canaries.ts';
import { latestRelease, type Release } from '../../../sql/control/releases.ts';
import { ConfigError, NotFoundError } from '../../../sql/errors.ts';
import type { StackService, StackSpec } from '../../../stack/types.ts';
import { liveCanaryError } from '../../canaries.ts';
import type { Context } from '../../context.ts';
import { deployRelease } from '../../deploys.ts';
import { loadEnvironment } from '../../environment.ts';
import { positiveInt } from '../../inputs.ts';
import { followOperation, reportOutcome, requireAgent } from '../../operations.ts';
import { toJson } from '../../output.ts';
import { onRecordedBuilds } from './rollout.ts';

export const options = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    service: z.string().min(1, 'name the service, e.g. mp deploy canary --env prod api'),
    replicas: positiveInt.default(1),
    detach: z.boolean().default(false),
  })
  .strict();
export type Options = z.output<typeof options>;

/** The spec without its replica count: what a canary must change. */
function withoutMode(spec: Dockerode.ServiceSpec): Dockerode.ServiceSpec {
  const { Mode: _mode, ...rest } = spec;
  return rest;
}

/** The networks, secrets and configs a service spec uses, by engine name. */
function references(spec: Dockerode.ServiceSpec): { kind: string; name: string }[] {
  const tpl = spec.TaskTemplate as (Dockerode.TaskSpec & { ContainerSpec?: Dockerode.ContainerSpec }) | undefined;
  const nets = (tpl?.Networks ?? spec.Networks ?? []) as { Target?: string }[];
  return [
    ...nets.map((n) => ({ kind: 'network', name: n.Target ?? '' })),
    ...(tpl?.ContainerSpec?.Secrets ?? []).map((s) => ({ kind: 'secret', name: s.SecretName ?? '' })),
    ...(tpl?.ContainerSpec?.Configs ?? []).map((c) => ({ kind: 'config', name: c.ConfigName ?? '' })),
  ];
}

/**
 * Pure: SERVICE of `next` checked against the current release; `ConfigError`/`NotFoundError` when it
 * cannot be a canary. Returns the new version and the other services that differ too.
 */
export function canaryService(next: StackSpec, current: Release, service: string): { svc: StackService; others: string[] } {
  const keys = next.services.map((s) => s.key).sort();
  const svc = next.services.find((s) => s.key === service);
  if (!svc) {
    const guess = nearMiss(service, keys);
    const job = next.jobs?.some((j) => j.key === service);
    throw new NotFoundError(
      'UNKNOWN_SERVICE',
      job ? `'${service}' is a job template, which runs no tasks to send traffic to` : `service '${service}' is not defined in the environment's files; services: ${listNames(keys)}`,
      guess ? `did you mean '${guess}'?` : 'a canary runs a long-running service of the environment',
    );
  }
  const mode = svc.spec.Mode as { Replicated?: unknown } | undefined;
  if (!mode?.Replicated) throw new ConfigError('NOT_REPLICATED', `service '${service}' is not replicated (global), so it cannot have a canary beside it`, 'a canary runs beside a replicated service');
  const now = current.spec.services.find((s) => s.key === service);
  if (!now) {
    throw new ConfigError('NOT_DEPLOYED', `service '${service}' is not in release ${current.version} of ${current.environment}, so there is nothing to run a canary beside`, `deploy it first: a new service has no old version`);
  }
  if (isDeepStrictEqual(withoutMode(svc.spec), withoutMode(now.spec))) {
    throw new ConfigError(
      'NO_CHANGE',
      `service '${service}' in the environment's files is the same as in release ${current.version}: a canary would run the version that runs already`,
      'change the service (image, command, environment...) first, then start the canary',
    );
  }
  const known = new Set([
    ...current.spec.networks.map((n) => `network:${n.name}`),
    ...current.spec.secrets.map((s) => `secret:${s.name}`),
    ...current.spec.configs.map((c) => `config:${c.name}`),
    ...references(now.spec).map((r) => `${r.kind}:${r.name}`),
    'network:ingress',
  ]);
  const missing = references(svc.spec).filter((r) => !known.has(`${r.kind}:${r.name}`));
  if (missing.length > 0) {
    throw new ConfigError(
      'CANARY_NEEDS_DEPLOY',
      `the new version of '${service}' uses ${missing.map((r) => `${r.kind} '${r.name}'`).join(', ')}, which release ${current.version} does not have`,
      'a canary changes one service only: deploy the new network, secret or config first (`mp deploy`)',
    );
  }
  const others = next.services
    .filter((s) => s.key !== service)
    .filter((s) => {
      const before = current.spec.services.find((c) => c.key === s.key);
      return !before || !isDeepStrictEqual(withoutMode(before.spec), withoutMode(s.spec));
    })
    .map((s) => s.key);
  return { svc, others };
}

/**
 * @example
 *   $ mp deploy canary --env prod --replicas 1 api
 *   canary 3 of api in prod recorded: 1 replica beside release 7; operation 58
 *   2026-12-02T07:31:39Z  live       canary prod_api-canary runs 1/1 beside prod_api; ...
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const loaded = loadEnvironment(opts.env);
  const pool = ctx.db().pool;
  const current = await latestRelease(pool, loaded.name, 'succeeded');
  if (!current) {
    throw new NotFoundError('UNKNOWN_RELEASE', `environment ${loaded.name} has no succeeded release for a canary to run beside`, `deploy it first: \`mp deploy --env ${opts.env}\``);
  }
  const env = await onRecordedBuilds(ctx, loaded, { quiet: true });
  const release = await deployRelease(ctx, env);
  const { svc, others } = canaryService(release.spec, current, opts.service);
  const open = (await listCanaries(pool, loaded.name, { unfinished: true })).find((c) => c.service === opts.service);
  if (open) throw liveCanaryError(loaded.name, opts.env, open);
  if (!opts.detach) await requireAgent(ctx, 'manager');
  const created = await createCanary(pool, {
    environment: loaded.name,
    stack: release.stack,
    service: opts.service,
    replicas: opts.replicas,
    baseVersion: current.version,
    spec: svc,
    ...(release.source ? { source: release.source } : {}),
    ...(release.requestedBy ? { requestedBy: release.requestedBy } : {}),
  });
  if (ctx.json && opts.detach) {
    ctx.stdout.write(`${toJson({ canary: Number(created.canaryId), operation: Number(created.operationId) })}\n`);
    return;
  }
  if (!ctx.json) {
    ctx.stdout.write(
      `canary ${created.canaryId} of ${opts.service} in ${loaded.name} recorded: ${opts.replicas} replica${opts.replicas === 1 ? '' : 's'} beside release ${current.version}; operation ${created.operationId}\n`,
    );
    if (others.length > 0) ctx.stderr.write(`note: ${others.join(', ')} differ(s) from release ${current.version} too; a canary runs ${opts.service} only, \`mp deploy\` rolls the rest\n`);
  }
  if (opts.detach) return;
  reportOutcome(ctx, await followOperation(ctx, created.operationId));
}
