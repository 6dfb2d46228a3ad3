/**
 * `mp scale --env DIR api=3 worker=2 [--detach]`: sets the replica counts of several services as one
 * release derived from the current one (kind `scale`, `restores` = the release it derives from: the
 * same spec, images and secret versions, only the counts changed), applied by one `deploy` operation
 * that waits until every service has converged. History shows it; rollback restores it or goes back
 * before it like any release.
 *
 * The count survives later deploys: the release records, per scaled service, the count it set and the
 * count the Compose files said then (`source.scale`). `mp deploy` keeps the scaled count while the
 * Compose files still say what they said then, and takes the files' count once they change it
 * (`keepScale`).
 */
import { z } from 'zod';
import { listNames, nearMiss } from '../../agent/executors/near-miss.ts';
import { latestRelease, type NewRelease, type Release, type ReleaseSource } from '../../sql/control/releases.ts';
import { ConfigError, NotFoundError } from '../../sql/errors.ts';
import type { StackSpec } from '../../stack/types.ts';
import type { Context } from '../context.ts';
import { requester, submitRelease } from '../deploys.ts';
import { environmentDir, environmentNameOf } from '../environment.ts';

/** Per service key: the count a scale set, and the count the Compose files said when it did. */
export type ScaleRecord = Record<string, { replicas: number; compose: number }>;

/** A release source with the scale record. */
type ScaledSource = ReleaseSource & { scale?: ScaleRecord };

export const options = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    counts: z.array(z.string()).min(1, 'name at least one service=count, e.g. api=3'),
    detach: z.boolean().default(false),
  })
  .strict();
export type Options = z.output<typeof options>;

/** `api=3` pairs; `ConfigError` for anything else (a count that is not a whole number >= 0, a service twice). */
export function parseCounts(args: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const arg of args) {
    const m = /^([a-zA-Z0-9][a-zA-Z0-9_.-]*)=(.*)$/.exec(arg);
    if (!m) throw new ConfigError('INVALID_SCALE', `'${arg}' is not service=count`, 'e.g. mp scale --env prod api=3 worker=2');
    const [, service, text] = m as unknown as [string, string, string];
    if (!/^\d+$/.test(text)) throw new ConfigError('INVALID_SCALE', `${service}=${text}: the count must be a whole number, 0 or more`, `e.g. ${service}=3`);
    if (service in out) throw new ConfigError('INVALID_SCALE', `${service} is named twice`, 'name each service once');
    out[service] = Number(text);
  }
  return out;
}

function replicasOf(spec: StackSpec, key: string): number | undefined {
  const mode = spec.services.find((s) => s.key === key)?.spec.Mode as { Replicated?: { Replicas?: number } } | undefined;
  return mode?.Replicated ? (mode.Replicated.Replicas ?? 1) : undefined;
}

/** `spec` with these counts (a new object). */
function withCounts(spec: StackSpec, counts: Record<string, number>): StackSpec {
  return {
    ...spec,
    services: spec.services.map((s) =>
      s.key in counts ? { ...s, spec: { ...s.spec, Mode: { Replicated: { Replicas: counts[s.key]! } } } } : s,
    ),
  };
}

/**
 * Pure: the release derived from `current` with `counts`. `ConfigError`/`NotFoundError` for a service
 * the release does not have (with the near miss) or one that is not replicated.
 */
export function scaledRelease(current: Release, counts: Record<string, number>): NewRelease {
  const keys = current.spec.services.map((s) => s.key).sort();
  const previous = (current.source as ScaledSource).scale ?? {};
  const scale: ScaleRecord = { ...previous };
  for (const [key, replicas] of Object.entries(counts)) {
    if (!keys.includes(key)) {
      const guess = nearMiss(key, keys);
      throw new NotFoundError(
        'UNKNOWN_SERVICE',
        `service '${key}' is not in release ${current.version} of ${current.environment}; its services: ${listNames(keys)}`,
        guess ? `did you mean '${guess}'?` : 'deploy the service first',
      );
    }
    const now = replicasOf(current.spec, key);
    if (now === undefined) throw new ConfigError('NOT_REPLICATED', `service '${key}' is not replicated (global or a job), so it has no replica count`, 'scale a replicated service');
    scale[key] = { replicas, compose: previous[key]?.compose ?? now };
  }
  return {
    environment: current.environment,
    stack: current.stack,
    spec: withCounts(current.spec, counts),
    kind: 'scale',
    restores: current.version,
    source: { ...current.source, scale } as ScaledSource,
    requestedBy: requester(current.source.git_commit),
  };
}

/**
 * Carries earlier scales into a new deploy: a service whose Compose count is still the one recorded
 * at scale time keeps the scaled count; one whose count the files changed takes the files'. Mutates
 * and returns `release`.
 */
export async function keepScale(ctx: Context, release: NewRelease): Promise<NewRelease> {
  const last = (await latestRelease(ctx.db().pool, release.environment, 'succeeded')) as Release | undefined;
  const previous = (last?.source as ScaledSource | undefined)?.scale;
  if (!previous) return release;
  const kept: ScaleRecord = {};
  const counts: Record<string, number> = {};
  for (const [key, rec] of Object.entries(previous)) {
    const compose = replicasOf(release.spec, key);
    if (compose !== undefined && compose === rec.compose) {
      kept[key] = rec;
      counts[key] = rec.replicas;
    }
  }
  if (Object.keys(kept).length === 0) return release;
  release.spec = withCounts(release.spec, counts);
  release.source = { ...(release.source ?? {}), scale: kept } as ScaledSource;
  if (!ctx.json) ctx.stderr.write(`note: keeping the scaled count of ${Object.entries(counts).map(([k, n]) => `${k}=${n}`).join(', ')} (from \`mp scale\`; change the count in the Compose file to override it)\n`);
  return release;
}

/**
 * @example
 *   $ mp scale --env prod api=3 worker=2
 *   release 8 of prod (scale) recorded; operation 57
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const counts = parseCounts(opts.counts);
  const name = environmentNameOf(environmentDir(opts.env));
  const current = await latestRelease(ctx.db().pool, name, 'succeeded');
  if (!current) throw new NotFoundError('UNKNOWN_RELEASE', `environment ${name} has no succeeded release to scale`, `deploy it first: \`mp deploy --env ${opts.env}\``);
  await submitRelease(ctx, scaledRelease(current, counts), { detach: opts.detach });
}
