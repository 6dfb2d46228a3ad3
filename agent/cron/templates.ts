/**
 * Running a release's job templates (`StackSpec.jobs`): the template's ServiceSpec, as the Compose
 * conversion made it, becomes a replicated job named after the operation that runs it, with the
 * release's pinned image, environment, secrets, configs and networks. It carries no stack namespace
 * label, so a deploy (which removes the stack's services it does not define) never sees it; it carries
 * `org.minipaas.stack` and the job's key instead.
 *
 * Used by `release.job` (`mp job run`), by `pre_deploy:` inside a deploy and by `cron.tick`.
 */
import type Dockerode from 'dockerode';
import { listNames, nearMiss } from '../executors/near-miss.ts';
import { ConfigError, NotFoundError } from '../../sql/errors.ts';
import type { Release } from '../../sql/control/releases.ts';
import type { StackJob } from '../../stack/types.ts';
import { IMAGE_ID_LABEL, serviceImage, type PinnedImage } from '../deploy/images.ts';
import { STACK_NAMESPACE_LABEL, type DockerEngine } from '../docker/engine.ts';
import { JOB_LABEL, OPERATION_LABEL, type JobSpec } from '../executors/job-run.ts';

/** Label naming the stack a job run belongs to (instead of the namespace label, see the module comment). */
export const JOB_STACK_LABEL = 'org.minipaas.stack';

/**
 * The job template `key` of a release. `ConfigError` when `key` is an ordinary service of it ("not a
 * job service"), `NotFoundError` with the release's jobs and the near miss when it has no such service.
 */
export function findJob(release: Pick<Release, 'spec' | 'version' | 'environment'>, key: string): StackJob {
  const jobs = release.spec.jobs ?? [];
  const job = jobs.find((j) => j.key === key);
  if (job) return job;
  const where = `release ${release.version} of ${release.environment}`;
  if (release.spec.services.some((s) => s.key === key)) {
    throw new ConfigError(
      'NOT_A_JOB',
      `service '${key}' of ${where} is not a job service: a deploy runs it as a long-running service`,
      `mark it with \`mp code job --env DIR ${key}\` (label org.minipaas.kind: job) and deploy`,
    );
  }
  const names = jobs.map((j) => j.key);
  const guess = nearMiss(key, [...names, ...release.spec.services.map((s) => s.key)]);
  throw new NotFoundError(
    'UNKNOWN_JOB',
    `${where} has no job '${key}'; its jobs: ${listNames(names)}`,
    guess ? `did you mean '${guess}'?` : 'define it in a Compose file, mark it with `mp code job`, and deploy',
  );
}

/** What one run of a template is called and carries. */
export interface JobRunOptions {
  stack: string;
  /** The run's service name (after its operation, so a resumed attempt finds it). */
  service: string;
  operationId: string;
  /** The release's pin for the job's key, when it has one. */
  pin?: PinnedImage;
  /** Replace the template's command (`mp job run JOB -- ARGS`). */
  args?: string[];
  /** More labels (the cron run id, for example). */
  labels?: Record<string, string>;
}

/** Pure: the replicated-job spec of one run of `job`. No restarts, no published ports, no update policy. */
export function templateRunSpec(job: StackJob, opts: JobRunOptions): JobSpec {
  const spec = structuredClone(job.spec) as Dockerode.ServiceSpec & { Mode?: unknown };
  const labels: Record<string, string> = { ...(spec.Labels ?? {}), [JOB_STACK_LABEL]: opts.stack, [OPERATION_LABEL]: opts.operationId, [JOB_LABEL]: job.key, ...(opts.labels ?? {}) };
  delete labels[STACK_NAMESPACE_LABEL];
  const task = (spec.TaskTemplate ?? {}) as Dockerode.TaskSpec & { ContainerSpec?: Dockerode.ContainerSpec & { Labels?: Record<string, string> } };
  const container = { ...(task.ContainerSpec ?? {}) } as NonNullable<typeof task.ContainerSpec>;
  const containerLabels: Record<string, string> = { ...(container.Labels ?? {}), [JOB_STACK_LABEL]: opts.stack, [OPERATION_LABEL]: opts.operationId, [JOB_LABEL]: job.key };
  delete containerLabels[STACK_NAMESPACE_LABEL];
  if (opts.pin) {
    container.Image = opts.pin.ref;
    if (!opts.pin.digest && opts.pin.id) containerLabels[IMAGE_ID_LABEL] = opts.pin.id;
  }
  container.Labels = containerLabels;
  if (opts.args && opts.args.length > 0) container.Args = opts.args;
  const out = {
    ...spec,
    Name: opts.service,
    Labels: labels,
    TaskTemplate: { ...task, ContainerSpec: container, RestartPolicy: { Condition: 'none' } },
    Mode: { ReplicatedJob: { MaxConcurrent: job.replicas, TotalCompletions: job.replicas } },
  } as Record<string, unknown>;
  // A job publishes nothing and is never rolled: ports would clash with the services', policies mean nothing.
  delete out.EndpointSpec;
  delete out.UpdateConfig;
  delete out.RollbackConfig;
  return out as JobSpec;
}

/** The image a run uses: the release's pin, else the template's own reference. */
export function runImage(job: StackJob, pin: PinnedImage | undefined): string {
  return pin?.ref ?? serviceImage(job.spec) ?? '?';
}

/** Fills in secret and config ids by name, as the engine requires (the stack's objects, then any by name). */
export async function resolveJobReferences(docker: DockerEngine, spec: JobSpec, label: string): Promise<JobSpec> {
  const out = structuredClone(spec) as { TaskTemplate?: { ContainerSpec?: Dockerode.ContainerSpec } };
  const container = out.TaskTemplate?.ContainerSpec;
  if (!container?.Secrets?.length && !container?.Configs?.length) return spec;
  const idOf = async (kind: 'secret' | 'config', name: string): Promise<string> => {
    const list = kind === 'secret' ? await docker.listSecrets({ name: [name] }) : await docker.listConfigs({ name: [name] });
    const found = list.find((o) => o.name === name);
    if (!found) {
      throw new NotFoundError('DOCKER_NOT_FOUND', `${label} uses ${kind} '${name}', which does not exist`, 'deploy the environment first: the deploy creates its secrets and configs');
    }
    return found.id;
  };
  for (const ref of container.Secrets ?? []) ref.SecretID = await idOf('secret', ref.SecretName ?? '');
  for (const ref of container.Configs ?? []) ref.ConfigID = await idOf('config', ref.ConfigName ?? '');
  return out as JobSpec;
}
