/**
 * `deploy`: converges Swarm to one release of an environment (`mp.releases`), then waits until every
 * service has converged (agent/deploy/converge.ts). The release says everything: its spec, and the
 * images the first attempt pinned, so a resumed attempt (another agent after a crash) or a rollback
 * applies exactly the same thing. Every step is idempotent: a resumed deploy observes what the crashed
 * one already did, plans only what is left and waits like the first.
 *
 * Cancelled while applying or waiting, it rolls back what it changed: updated services to their previous
 * spec (Swarm keeps it), created services removed. The release's status follows the operation's (a
 * trigger in SQL), so a release ends exactly once, with its operation.
 */
import type Dockerode from 'dockerode';
import { z } from 'zod';
import { ConfigError } from '../../sql/errors.ts';
import { getRelease, pinReleaseImages, releaseByVersion, type Release, type ReleaseImage } from '../../sql/control/releases.ts';
import type { StackSpec } from '../../stack/types.ts';
import { applyStack, observeStack, planStack, type DeployAction, type ObservedStack, type StackPlan } from '../deploy/index.ts';
import { progressJson, waitForConvergence } from '../deploy/converge.ts';
import { applyPins, checkPinnedImages, checkPullable, resolveImages, serviceImage, type ImageAuth } from '../deploy/images.ts';
import { REGISTRY_AUTH_LABEL, registryAuthForImage, sealedRegistryAuths, withRegistryAuthLabels, type RegistryAuthInfo } from '../../sql/control/registry-auth.ts';
import { runPreDeploy } from '../cron/run-template.ts';
import { loadReleaseRoutes } from '../routing/apply.ts';
import type { DockerEngine, RegistryAuth, ServiceRegistryAuth } from '../docker/engine.ts';
import type { Executor, ExecutorContext, Json } from './types.ts';

export const payloadSchema = z.strictObject({
  release: z.union([z.string().regex(/^\d+$/), z.int().positive()]).transform(String),
  version: z.int().positive().optional(),
  stack: z.string().optional(),
});
export type DeployPayload = z.output<typeof payloadSchema>;

/** What the plan depends on. */
export interface DeployState {
  release: Release;
  /** The release's spec on its pinned images. */
  desired: StackSpec;
  observed: ObservedStack;
}

/** Deploy timing from the release's minipaas.yaml (`deploy.timeout`, `deploy.stable`), with defaults. */
function timing(release: Release): { timeoutMs: number; stableMs: number } {
  const settings = release.source.settings as { deploy?: { timeout?: number; stable?: number } } | undefined;
  return { timeoutMs: (settings?.deploy?.timeout ?? 300) * 1000, stableMs: (settings?.deploy?.stable ?? 3) * 1000 };
}

function requirePool(ctx: Pick<ExecutorContext, 'pool'>): NonNullable<ExecutorContext['pool']> {
  if (!ctx.pool) throw new ConfigError('NO_DATABASE', 'the deploy executor needs the control-plane database', 'run it in an agent');
  return ctx.pool;
}

/**
 * The images the release runs: pinned by the first attempt; a rollback takes those of the release it
 * restores (after checking they can still be had); otherwise resolved on the engine now.
 */
async function pinnedImages(ctx: ExecutorContext, release: Release, authFor: ImageAuth): Promise<Record<string, ReleaseImage>> {
  if (release.images) return release.images;
  const pool = requirePool(ctx);
  let images: Record<string, ReleaseImage>;
  if (release.restores !== null) {
    const restored = await releaseByVersion(pool, release.environment, release.restores);
    images = restored.images ?? (await resolveImages(ctx.docker, release.spec, authFor));
    await checkPinnedImages(ctx.docker, images, authFor);
  } else {
    images = await resolveImages(ctx.docker, release.spec, authFor);
  }
  const pinned = await pinReleaseImages(pool, release.id, images);
  await ctx.step('images', `images pinned: ${Object.entries(pinned).map(([k, v]) => `${k}=${v.ref}`).join(', ')}`, { images: pinned as unknown as Json });
  return pinned;
}

/** Opens sealed secret contents in memory (never written back): the apply step needs the bytes. */
async function openSecrets(ctx: ExecutorContext, spec: StackSpec): Promise<StackSpec> {
  const sealed = spec.secrets.filter((s) => s.sealed !== undefined);
  if (sealed.length === 0) return spec;
  const open = ctx.openSealed;
  if (!open) throw new ConfigError('NO_CLUSTER_KEY', 'this agent has no cluster key to open the release\'s secrets', 'run the deploy on a manager agent that has the cluster key');
  const secrets = await Promise.all(
    spec.secrets.map(async (s) => {
      const value = s.sealed;
      return value === undefined ? s : { ...s, data: (await open(value)).toString('base64') };
    }),
  );
  return { ...spec, secrets };
}

/** Stored registry credentials, opened. */
interface OpenedRegistryAuth extends RegistryAuthInfo {
  auth: RegistryAuth;
}

/**
 * The environment's registry credentials (`mp registry login`), their passwords opened in memory
 * (and so registered for redaction before anything else is reported). `ConfigError` when there are
 * some and this agent holds no cluster key.
 */
async function openRegistryAuths(ctx: ExecutorContext, environment: string): Promise<OpenedRegistryAuth[]> {
  const rows = await sealedRegistryAuths(requirePool(ctx), environment);
  if (rows.length === 0) return [];
  const open = ctx.openSealed;
  if (!open) {
    throw new ConfigError('NO_CLUSTER_KEY', `environment ${environment} has registry credentials, and this agent has no cluster key to open them`, 'run the deploy on a manager agent that has the cluster key');
  }
  return await Promise.all(
    rows.map(async ({ sealed, ...info }) => {
      const password = await open(sealed);
      const auth = { username: info.username, password: password.toString('utf8'), serveraddress: info.registry };
      password.fill(0);
      return { ...info, auth };
    }),
  );
}

/**
 * What a service create or update sends Swarm: the stored credentials of its image's registry, so
 * every node pulls with them (`--with-registry-auth`); empty ones when the service had credentials
 * from an earlier deploy and the environment has none any more (`mp registry logout`); else nothing.
 */
function serviceAuth(auths: OpenedRegistryAuth[]) {
  return (spec: Dockerode.ServiceSpec, current?: Dockerode.ServiceSpec): ServiceRegistryAuth | undefined => {
    const stored = registryAuthForImage(serviceImage(spec), auths);
    if (stored) return stored.auth;
    return current?.Labels?.[REGISTRY_AUTH_LABEL] ? 'anonymous' : undefined;
  };
}

/** One line per kind of action, e.g. "create 1, update 2 (api, worker), remove 0, unchanged 5". */
function summary(plan: StackPlan): string {
  const count = (type: DeployAction['type']) => plan.actions.filter((a) => a.type === type);
  const updates = count('update-service').map((a) => ('key' in a ? a.key : ''));
  const created = plan.actions.filter((a) => a.type.startsWith('create-')).length;
  return `plan: create ${created}, update ${updates.length}${updates.length ? ` (${updates.join(', ')})` : ''}, remove ${count('remove-service').length}, unchanged ${count('unchanged').length}`;
}

/** Puts back what a cancelled or failed-to-apply deploy had changed. */
async function undo(docker: DockerEngine, ctx: ExecutorContext, plan: StackPlan, ids: Record<string, string>): Promise<void> {
  for (const action of plan.actions) {
    try {
      if (action.type === 'update-service') {
        const current = await docker.inspectService(action.id);
        await docker.rollbackService(current);
        await ctx.step('rollback', `rolled ${action.name} back to its previous spec`, { service: action.name });
      } else if (action.type === 'create-service' && ids[action.name]) {
        await docker.removeService({ id: ids[action.name]!, name: action.name });
        await ctx.step('rollback', `removed ${action.name}, which this deploy created`, { service: action.name });
      }
    } catch (err) {
      await ctx.step('rollback', `could not roll back ${action.name}: ${err instanceof Error ? err.message : String(err)}`, { service: action.name });
    }
  }
}

/** When the operation first started: task failures and updates before it are not this deploy's. */
async function operationStart(ctx: ExecutorContext): Promise<Date> {
  const { rows } = await requirePool(ctx).query<{ started_at: Date | null }>(`select started_at from mp.operations where id = $1`, [ctx.operationId]);
  return rows[0]?.started_at ?? new Date();
}

export const deploy: Executor<DeployPayload, DeployState, Json, Json> = {
  kind: 'deploy',
  description: 'converge the stack of an environment to one of its releases and wait until every service runs (`mp deploy` submits it)',
  example: { release: '1' } as DeployPayload,
  payloadSchema: payloadSchema as unknown as z.ZodType<DeployPayload>,
  target: 'manager',

  async observe(ctx, payload) {
    const release = await getRelease(requirePool(ctx), payload.release);
    const auths = await sealedRegistryAuths(requirePool(ctx), release.environment);
    const desired = withRegistryAuthLabels(applyPins(release.spec, release.images ?? {}), auths);
    return { release, desired, observed: await observeStack(ctx.docker, desired.name, desired) };
  },

  plan(_payload, state) {
    return planStack(state.desired, state.observed).actions as unknown as Json[];
  },

  async execute(ctx, payload) {
    const release = await getRelease(requirePool(ctx), payload.release);
    await ctx.step(
      'release',
      `release ${release.version} of ${release.environment}: ${release.kind}${release.restores !== null ? ` restoring release ${release.restores}` : ''}, stack ${release.stack}, ${release.spec.services.length} services`,
      { version: release.version, kind: release.kind, restores: release.restores },
    );
    const since = await operationStart(ctx);
    const registryAuths = await openRegistryAuths(ctx, release.environment);
    const imageAuth: ImageAuth = (image) => registryAuthForImage(image, registryAuths)?.auth;
    for (const a of registryAuths) {
      await ctx.step('registry', `services pulling from ${a.registry} get the stored credentials of '${a.username}'`, { registry: a.registry, username: a.username });
    }
    const pinned = await pinnedImages(ctx, release, imageAuth);
    const desired = withRegistryAuthLabels(await openSecrets(ctx, applyPins(release.spec, pinned)), registryAuths);
    await checkPullable(ctx.docker, desired, imageAuth);
    const observed = await observeStack(ctx.docker, desired.name, desired);
    const plan = planStack(desired, observed);
    for (const warning of plan.warnings) await ctx.step('warning', warning);
    await ctx.step('plan', summary(plan), { changed: plan.changed });
    for (const action of plan.actions) {
      if (action.type === 'update-service') {
        await ctx.step('diff', `${action.name}: ${action.changes.map((c) => c.path).join(', ')}`, { service: action.name, changes: action.changes as unknown as Json });
      }
    }

    const ids: Record<string, string> = Object.fromEntries(observed.services.map((s) => [s.name, s.id]));
    const { timeoutMs, stableMs } = timing(release);
    try {
      // minipaas.yaml `pre_deploy:` jobs, in order, before any service changes; one failing fails the deploy.
      await runPreDeploy(ctx, { release: { ...release, images: pinned }, desired, plan });
      if (plan.changed) {
        const applied = await applyStack(ctx.docker, plan, { desired, step: ctx.step, signal: ctx.signal, registryAuth: serviceAuth(registryAuths) });
        Object.assign(ids, applied.serviceIds);
        for (const warning of applied.warnings) await ctx.step('warning', warning);
      } else {
        await ctx.step('unchanged', 'unchanged: the stack already matches this release; checking that it runs');
      }
      const rolling = plan.actions.flatMap((a) =>
        a.type === 'update-service' && a.changes.some((c) => c.path.startsWith('TaskTemplate')) ? [a.id] : [],
      );
      const services = desired.services.flatMap((s) => (ids[s.name] ? [{ name: s.name, id: ids[s.name]! }] : []));
      const progress = await waitForConvergence(ctx.docker, { services, updated: rolling, since, timeoutMs, stableMs, step: ctx.step, signal: ctx.signal });
      // Routes (docs/routing.md): loaded into the stack's Caddy when they differ from what it serves.
      await loadReleaseRoutes(ctx.docker, release, { step: ctx.step, signal: ctx.signal });
      await ctx.step('converged', `release ${release.version} runs: ${progress.map((p) => `${p.service} ${p.running}/${p.desired}`).join(', ') || 'no long-running services'}`);
      return {
        release: release.version,
        unchanged: !plan.changed,
        services: progressJson(progress),
        created: plan.actions.filter((a) => a.type === 'create-service').length,
        updated: plan.actions.filter((a) => a.type === 'update-service').length,
        removed: plan.actions.filter((a) => a.type === 'remove-service').length,
      };
    } catch (err) {
      if (ctx.signal.aborted) await undo(ctx.docker, ctx, plan, ids);
      throw err;
    }
  },
};
