/**
 * `job.run`: runs a one-off job (a migration, a backup, a report) to completion as a Swarm
 * replicated-job service (`Mode: {ReplicatedJob: {MaxConcurrent: 1, TotalCompletions: 1}}`, API 1.41),
 * waits for its one task to exit, removes the service and reports the exit code.
 *
 * Crash safety: the service is named after the operation (`mp-job-<operation id>`), so an attempt that
 * resumes after its agent died finds the job the first attempt started and waits for it, instead of
 * starting a second one. The one window left: an agent that dies after removing the finished job's
 * service and before the end is recorded leaves nothing to find, and the resumed attempt runs the job
 * again. That window is one Docker call plus one SQL call wide; jobs should be idempotent anyway.
 */
import type Dockerode from 'dockerode';
import { z } from 'zod';
import { ConflictError, DockerError, MiniPaasError, NotFoundError } from '../../sql/errors.ts';
import type { ServiceInfo, TaskInfo } from '../docker/engine.ts';
import { dockerName } from './names.ts';
import type { Executor, ExecutorContext, Json } from './types.ts';
import { waitUntil } from './waiting.ts';

/** Label naming the operation a Docker object was made for. */
export const OPERATION_LABEL = 'org.minipaas.operation';
/** Label with the job's optional human name (`payload.name`). */
export const JOB_LABEL = 'org.minipaas.job';

/** How many of the job's last log lines a failure message carries. */
export const FAILURE_LOG_LINES = 10;

/** An environment variable name as a shell (and Docker) accepts it. */
const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'use letters, digits and _, not starting with a digit');

export const payloadSchema = z.strictObject({
  image: z.string().min(1).max(512),
  /** Arguments after the image, as `docker run IMAGE ARG...` (the image's entrypoint, if any, still runs). */
  command: z.array(z.string()).min(1),
  env: z.record(envName, z.string()).optional(),
  /** How long the job may run before it is stopped and the operation fails (default 600 s). */
  timeoutSeconds: z.int().min(1).max(86_400).default(600),
  /** A human name for the job, shown in messages and set as a label (the service name stays `mp-job-<id>`). */
  name: dockerName.optional(),
});

export type JobPayload = z.infer<typeof payloadSchema>;

/** What the plan depends on: the operation and the job service, if an earlier attempt created it. */
export interface JobState {
  operationId: string;
  /** `mp-job-<operationId>`. */
  serviceName: string;
  existing?: Pick<ServiceInfo, 'id' | 'name' | 'createdAt'>;
}

export type JobAction =
  | { type: 'create-service'; service: string; spec: JobSpec }
  | { type: 'resume'; service: string; serviceId: string }
  | { type: 'wait-exit'; service: string; timeoutMs: number }
  | { type: 'remove-service'; service: string };

export type JobResult = { exitCode: number; durationMs: number; service: string; resumed: boolean };

/** The job service's name for an operation: the same on every attempt. */
export function jobServiceName(operationId: string): string {
  return `mp-job-${operationId}`;
}

/** A Swarm service spec as plain JSON (plans are JSON, so `--dry-run` can print them). */
export type JobSpec = { [key: string]: Json };

/** Pure: the Swarm spec of the job's service. No restarts: a job that fails has failed. */
export function jobSpec(payload: JobPayload, state: Pick<JobState, 'operationId' | 'serviceName'>): JobSpec {
  const labels: Record<string, string> = { [OPERATION_LABEL]: state.operationId };
  if (payload.name) labels[JOB_LABEL] = payload.name;
  const env = Object.entries(payload.env ?? {}).map(([k, v]) => `${k}=${v}`);
  return {
    Name: state.serviceName,
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: payload.image,
        // Args, not Command: as `docker run IMAGE ARG...`, the image's entrypoint stays.
        Args: payload.command,
        ...(env.length ? { Env: env } : {}),
        Labels: labels,
      },
      RestartPolicy: { Condition: 'none' },
    },
    Mode: { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } },
  };
}

/**
 * Pure: create the job (or resume the one an earlier attempt created), wait for it to exit, remove it.
 *
 * @example
 *   plan({ image: 'busybox', command: ['true'], timeoutSeconds: 60 }, { operationId: '7', serviceName: 'mp-job-7' })
 *   // [{ type: 'create-service', service: 'mp-job-7', spec }, { type: 'wait-exit', ... }, { type: 'remove-service', ... }]
 */
export function plan(payload: JobPayload, state: JobState): JobAction[] {
  const service = state.serviceName;
  const start: JobAction = state.existing
    ? { type: 'resume', service, serviceId: state.existing.id }
    : { type: 'create-service', service, spec: jobSpec(payload, state) };
  return [start, { type: 'wait-exit', service, timeoutMs: payload.timeoutSeconds * 1000 }, { type: 'remove-service', service }];
}

/** Reads whether this operation's job service exists already. */
export async function observe(ctx: Pick<ExecutorContext, 'docker' | 'operationId'>, _payload: JobPayload): Promise<JobState> {
  const serviceName = jobServiceName(ctx.operationId);
  // A name filter matches by prefix (mp-job-1 would match mp-job-12): pick the exact name.
  const services = await ctx.docker.listServices({ name: [serviceName] });
  const found = services.find((s) => s.name === serviceName);
  return {
    operationId: ctx.operationId,
    serviceName,
    existing: found ? { id: found.id, name: found.name, createdAt: found.createdAt } : undefined,
  };
}

/** How a job's task ended. */
interface JobExit {
  task: TaskInfo;
  exitCode: number;
}

/** The newest task: with no restarts there is one, but a rejected one may leave another behind. */
function newest(tasks: TaskInfo[]): TaskInfo | undefined {
  return [...tasks].sort((a, b) => (b.createdAt ?? '').localeCompare(a.createdAt ?? ''))[0];
}

/** Task states that end a job's task. `complete` is success; the others are failures. */
const ENDED = new Set(['complete', 'failed', 'rejected', 'shutdown', 'orphaned', 'remove']);

async function execute(ctx: ExecutorContext, payload: JobPayload): Promise<JobResult> {
  ctx.signal.throwIfAborted();
  const state = await observe(ctx, payload);
  const label = payload.name ? `job '${payload.name}' (${state.serviceName})` : `job ${state.serviceName}`;
  let service: Pick<ServiceInfo, 'id' | 'name'> = { id: state.serviceName, name: state.serviceName };
  let startedAt = Date.now();
  let resumed = false;
  let removed = false;
  let exit: JobExit | undefined;
  let logs: string[] = [];
  const resume = async (existing: Pick<ServiceInfo, 'id' | 'name' | 'createdAt'>): Promise<void> => {
    service = { id: existing.id, name: existing.name };
    // The job's duration counts from its creation, on whichever attempt that was.
    if (existing.createdAt) startedAt = Date.parse(existing.createdAt);
    resumed = true;
    await ctx.step('resume', `resuming: ${label} already started`, { service: existing.name, serviceId: existing.id });
  };
  try {
    for (const action of plan(payload, state)) {
      switch (action.type) {
        case 'create-service':
          ctx.signal.throwIfAborted();
          try {
            // @types/dockerode's ServiceSpec predates job modes; the engine (API 1.41) takes them.
            const id = await ctx.docker.createService(action.spec as Dockerode.ServiceSpec);
            service = { id, name: action.service };
            await ctx.step('create', `created ${label} from image ${payload.image}`, { service: action.service, serviceId: id });
          } catch (err) {
            // Created between our look and our create (a duplicate delivery): that job is the one to wait for.
            if (!(err instanceof ConflictError)) throw err;
            await resume(await ctx.docker.inspectService(action.service));
          }
          break;
        case 'resume':
          await resume(state.existing!);
          break;
        case 'wait-exit':
          exit = await waitExit(ctx, service, label, action.timeoutMs);
          // Logs must be read before the service (and with it its tasks' logs) is removed.
          if (exit.task.state !== 'complete') logs = await lastLogs(ctx, service);
          break;
        case 'remove-service':
          await removeJob(ctx, service);
          removed = true;
          break;
      }
    }
  } finally {
    // Cancelled, timed out or failed mid-way: the job's service goes too. (A crash skips this, and
    // the next attempt resumes the job instead.)
    if (!removed) await removeJob(ctx, service);
  }
  const durationMs = Date.now() - startedAt;
  const { task, exitCode } = exit!;
  if (task.state !== 'complete') {
    await ctx.step('exit', `${label} failed (${describeEnd(task)}) after ${seconds(durationMs)}`, {
      exitCode,
      state: task.state,
      durationMs,
      logs,
    });
    throw new DockerError(
      'JOB_FAILED',
      task.state === 'failed'
        ? `${label} failed with exit code ${exitCode} after ${seconds(durationMs)}`
        : `${label} did not run: ${describeEnd(task)}`,
      logs.length ? `its last output: ${logs.slice(-3).join(' | ')}` : `is image ${payload.image} on the node that ran it?`,
    );
  }
  await ctx.step('exit', `${label} exited with code 0 after ${seconds(durationMs)}`, { exitCode: 0, durationMs });
  return { exitCode: 0, durationMs, service: service.name, resumed };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function describeEnd(task: TaskInfo): string {
  if (task.state === 'failed') return `exit code ${task.exitCode ?? 'unknown'}`;
  return `task ${task.state}${task.error ? `: ${task.error}` : ''}`;
}

/** Polls the job's task until it ends; reports `running` once. Times out into a `DockerError`. */
async function waitExit(
  ctx: ExecutorContext,
  service: Pick<ServiceInfo, 'id' | 'name'>,
  label: string,
  timeoutMs: number,
): Promise<JobExit> {
  let reportedRunning = false;
  let last: TaskInfo | undefined;
  return await waitUntil(
    async () => {
      const task = newest(await ctx.docker.listTasks({ serviceIds: [service.id] }));
      last = task;
      if (!task) {
        // No task yet (just created), or the service was removed under us.
        await ctx.docker.inspectService(service.id).catch((err: unknown) => {
          if (err instanceof NotFoundError) {
            throw new DockerError('JOB_GONE', `${label} was removed while it ran`, 'someone ran `docker service rm`; retry the operation');
          }
          throw err;
        });
        return undefined;
      }
      if (!reportedRunning && (task.state === 'running' || ENDED.has(task.state))) {
        reportedRunning = true;
        await ctx.step('running', `${label} running`, { taskId: task.id, nodeId: task.nodeId });
      }
      if (!ENDED.has(task.state)) return undefined;
      return { task, exitCode: task.state === 'complete' ? 0 : (task.exitCode ?? -1) };
    },
    {
      timeoutMs,
      signal: ctx.signal,
      onTimeout: () =>
        new DockerError(
          'DOCKER_TIMEOUT',
          `${label} was still ${last?.state ?? 'not scheduled'} after ${timeoutMs / 1000} s; stopped it`,
          last?.error ? `the task said: ${last.error}` : 'a larger timeoutSeconds gives it longer',
        ),
    },
  );
}

/** The job's last log lines; a failure to read them never hides the job's own error. */
async function lastLogs(ctx: ExecutorContext, service: Pick<ServiceInfo, 'id' | 'name'>): Promise<string[]> {
  try {
    return await Promise.race([
      ctx.docker.serviceLogs(service, { tail: FAILURE_LOG_LINES }),
      new Promise<string[]>((resolve) => setTimeout(() => resolve([]), 3000).unref()),
    ]);
  } catch (err) {
    ctx.log.warn(`could not read the logs of ${service.name}`, { error: String(err) });
    return [];
  }
}

async function removeJob(ctx: ExecutorContext, service: Pick<ServiceInfo, 'id' | 'name'>): Promise<void> {
  try {
    await ctx.docker.removeService(service);
  } catch (err) {
    if (err instanceof NotFoundError) return;
    ctx.log.warn(`could not remove job service ${service.name}`, {
      error: err instanceof MiniPaasError ? err.message : String(err),
    });
  }
}

export const jobRun: Executor<JobPayload, JobState, JobAction, JobResult> = {
  kind: 'job.run',
  description: 'run a one-off job to completion as a Swarm replicated job and report its exit code',
  example: { image: 'busybox:latest', command: ['sh', '-c', 'echo hello'], timeoutSeconds: 600 },
  payloadSchema,
  target: 'manager',
  observe,
  plan,
  execute,
};
