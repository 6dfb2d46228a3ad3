/**
 * What the deploy verbs share: recording a release with its operation (one transaction), saying what it
 * queues behind, following it, reaching the environment's Docker engine for plans and status, and
 * printing a plan. The verbs themselves are in `cli/commands/deploy/` and `cli/commands/rollback.ts`.
 */
import { hostname, userInfo } from 'node:os';
import { connectDocker, type DockerEngine } from '../agent/docker/engine.ts';
import type { DeployAction, StackPlan } from '../agent/deploy/index.ts';
import { createRelease, operationsAhead, type NewRelease, type Requester } from '../sql/control/releases.ts';
import { prepareReleaseSpec } from '../sql/control/secrets.ts';
import { DockerError, mapDatabaseErrors } from '../sql/errors.ts';
import type { EnvironmentSettings } from '../stack/environment.ts';
import type { Context } from './context.ts';
import type { LoadedEnvironment } from './environment.ts';
import { control, followOperation, reportOutcome, requireAgent } from './operations.ts';
import { formatTime, toJson } from './output.ts';

/** Who is asking, as a release records it (the database role is added by the server). */
export function requester(gitCommit: string | null | undefined): Requester {
  let user = process.env.USER ?? '';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (some containers): keep $USER
  }
  return { os_user: user, host: hostname(), git_commit: gitCommit ?? null };
}

/**
 * The release a deploy of `env` records: its spec with managed secret and config versions pinned and
 * file-based secrets sealed to the cluster key (a release never holds a secret in plaintext), who asks,
 * and where it came from (with the pinned versions).
 */
export async function deployRelease(ctx: Context, env: LoadedEnvironment): Promise<NewRelease> {
  const { spec, versions } = await prepareReleaseSpec(control(ctx), env.name, env.spec);
  return {
    environment: env.name,
    stack: spec.name,
    spec,
    kind: 'deploy',
    source: { ...env.source, versions },
    requestedBy: requester(env.source.git_commit),
  };
}

/**
 * Records the release and its `deploy` operation in one transaction (creating the environment when it
 * is new), prints what it waits behind, then follows it unless `detach`. Refuses before writing when no
 * manager agent is alive and the caller follows.
 */
export async function submitRelease(ctx: Context, release: NewRelease, opts: { detach: boolean }): Promise<void> {
  if (!opts.detach) await requireAgent(ctx, 'manager');
  const client = await ctx.db().pool.connect();
  let created: Awaited<ReturnType<typeof createRelease>>;
  try {
    await client.query('begin');
    await mapDatabaseErrors(() => client.query(`select mp.environment_create($1)`, [release.environment]));
    created = await createRelease(client, release);
    await client.query('commit');
  } catch (err) {
    await client.query('rollback').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
  const ahead = await operationsAhead(ctx.db().pool, release.environment, created.operationId);
  if (ctx.json && opts.detach) {
    ctx.stdout.write(`${toJson({ release: created.version, operation: Number(created.operationId), waiting_behind: ahead.map((a) => Number(a.id)) })}\n`);
    return;
  }
  if (!ctx.json) {
    const what = release.kind === 'rollback' ? `rollback to release ${release.restores}` : (release.kind ?? 'deploy');
    ctx.stdout.write(`release ${created.version} of ${release.environment} (${what}) recorded; operation ${created.operationId}\n`);
    for (const a of ahead) {
      ctx.stdout.write(
        `waiting behind operation ${a.id} (${a.kind}${a.release !== null ? ` of release ${a.release}` : ''}, ${a.status}, by ${a.submittedBy} since ${formatTime(a.createdAt)})\n`,
      );
    }
  }
  if (opts.detach) return;
  reportOutcome(ctx, await followOperation(ctx, created.operationId));
}

/** How long a plan or status waits for the engine to answer. */
const PING_MS = 3000;

/**
 * The environment's Docker engine as minipaas.yaml's `api` says (`api.host`, else DOCKER_HOST, else the
 * local socket), answering; `DockerError` when it does not. Only reads happen through it here: changes
 * are the agents' job.
 */
export async function environmentDocker(settings: EnvironmentSettings, why: string): Promise<DockerEngine> {
  const docker = connectDocker({ host: settings.api.local ? undefined : settings.api.host });
  try {
    await docker.ping(PING_MS);
  } catch (err) {
    throw new DockerError(
      'DOCKER_UNREACHABLE',
      `${why} reads the stack from Docker, and no engine answers at ${docker.endpoint}: ${(err as Error).message}`,
      'start dockerd, set api.host in minipaas.yaml or DOCKER_HOST',
    );
  }
  return docker;
}

/** One plan action as a line: `+ create service shop_web`, `~ update shop_api: Image a -> b`. */
export function planLines(plan: StackPlan): string[] {
  const lines: string[] = [];
  const brief = (v: unknown): string => {
    const text = JSON.stringify(v) ?? 'unset';
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  };
  for (const a of plan.actions as DeployAction[]) {
    switch (a.type) {
      case 'create-network':
        lines.push(`+ create network ${a.name}`);
        break;
      case 'create-secret':
      case 'create-config':
        lines.push(`+ create ${a.type.slice('create-'.length)} ${a.name} (sha256 ${a.digest.slice(0, 12)})`);
        break;
      case 'create-service':
        lines.push(`+ create service ${a.name}`);
        break;
      case 'update-service':
        lines.push(`~ update service ${a.name}`);
        for (const c of a.changes) lines.push(`    ${c.path}: ${brief(c.from)} -> ${brief(c.to)}`);
        break;
      case 'remove-service':
        lines.push(`- remove service ${a.name}`);
        break;
      case 'unchanged':
        lines.push(`= ${a.kind} ${a.name} unchanged`);
        break;
    }
  }
  return lines;
}
