/**
 * Running one job template of a release to its end (`mp job run`, `pre_deploy:`, cron ticks), and the
 * `pre_deploy:` step of a deploy: the release's jobs named in its minipaas.yaml, in order, after the
 * stack's networks, secrets and configs exist and before any service is created or updated. A job
 * that fails fails the deploy with nothing rolled out.
 */
import { ConfigError, DockerError } from '../../sql/errors.ts';
import type { Release } from '../../sql/control/releases.ts';
import type { StackSpec } from '../../stack/types.ts';
import { applyStack, type StackPlan } from '../deploy/index.ts';
import { resolveImages, type PinnedImage } from '../deploy/images.ts';
import { jobFailure, runJobService, type JobOutcome } from '../executors/job-run.ts';
import type { ExecutorContext } from '../executors/types.ts';
import { findJob, resolveJobReferences, runImage, templateRunSpec } from './templates.ts';

/** One run of a release's job template. */
export interface ReleaseJobRun {
  release: Pick<Release, 'spec' | 'version' | 'environment' | 'stack' | 'images'>;
  /** The job's Compose key. */
  job: string;
  /** The run's service name: after the operation (and the job, when one operation runs several). */
  service: string;
  args?: string[];
  streamLogs?: boolean;
  labels?: Record<string, string>;
  onStarted?(info: { startedAt: string; nodeId?: string }): Promise<void>;
}

/** A finished run: how it ended, what it was called and which image it ran. */
export interface ReleaseJobEnd {
  end: JobOutcome;
  label: string;
  image: string;
}

/**
 * Runs a job template of a release to its end with the release's pinned image (resolved now for a
 * release recorded before job images were pinned). Throws `ConfigError`/`NotFoundError` for a job
 * the release does not have; returns failed ends (see `runJobService`).
 */
export async function runReleaseJob(ctx: ExecutorContext, run: ReleaseJobRun): Promise<ReleaseJobEnd> {
  const job = findJob(run.release, run.job);
  let pin: PinnedImage | undefined = run.release.images?.[job.key];
  if (!pin) {
    const one: StackSpec = { ...run.release.spec, services: [{ key: job.key, name: job.name, spec: job.spec }] };
    pin = (await resolveImages(ctx.docker, one))[job.key];
  }
  const label = `job '${job.key}' (${run.service})`;
  const spec = await resolveJobReferences(
    ctx.docker,
    templateRunSpec(job, { stack: run.release.stack, service: run.service, operationId: ctx.operationId, pin, args: run.args, labels: run.labels }),
    label,
  );
  const image = runImage(job, pin);
  const end = await runJobService(ctx, {
    service: run.service,
    spec,
    label,
    image,
    timeoutMs: job.timeoutSeconds * 1000,
    replicas: job.replicas,
    streamLogs: run.streamLogs,
    onStarted: run.onStarted,
  });
  return { end, label, image };
}

/** The `pre_deploy:` list of the minipaas.yaml a release was made from. */
export function preDeployJobs(release: Pick<Release, 'source'>): string[] {
  const settings = release.source.settings as { pre_deploy?: unknown } | undefined;
  return Array.isArray(settings?.pre_deploy) ? settings.pre_deploy.map(String) : [];
}

/**
 * The deploy's `pre_deploy:` step (called once, before `applyStack`): checks every named job exists,
 * creates the networks, secrets and configs the plan creates (the jobs attach to them; applying them
 * again later is a no-op), then runs each job in order, its output as `log` steps. Throws
 * `DockerError` PRE_DEPLOY_FAILED for the first job that fails: no service has been touched.
 */
export async function runPreDeploy(ctx: ExecutorContext, opts: { release: Release; desired: StackSpec; plan: StackPlan }): Promise<void> {
  const names = preDeployJobs(opts.release);
  if (names.length === 0) return;
  for (const name of names) {
    try {
      findJob(opts.release, name);
    } catch (err) {
      if (err instanceof ConfigError || err instanceof Error) {
        throw new ConfigError('PRE_DEPLOY', `pre_deploy names '${name}': ${err.message}`, (err as { hint?: string }).hint ?? 'fix pre_deploy in minipaas.yaml');
      }
      throw err;
    }
  }
  const objects = opts.plan.actions.filter((a) => a.type === 'create-network' || a.type === 'create-secret' || a.type === 'create-config');
  if (objects.length) await applyStack(ctx.docker, { ...opts.plan, actions: objects }, { desired: opts.desired, step: ctx.step, signal: ctx.signal });
  for (const [i, name] of names.entries()) {
    await ctx.step('pre-deploy', `pre_deploy ${i + 1}/${names.length}: running job '${name}' before any service is updated`, { job: name });
    const { end, label } = await runReleaseJob(ctx, {
      release: opts.release,
      job: name,
      service: `mp-job-${ctx.operationId}-${name}`.slice(0, 63),
      streamLogs: true,
    });
    if (!end.ok) {
      const failure = jobFailure(label, end, '');
      throw new DockerError(
        'PRE_DEPLOY_FAILED',
        `pre_deploy ${failure.message}; nothing was rolled out, release ${opts.release.version} is not deployed`,
        failure.hint,
      );
    }
  }
}
