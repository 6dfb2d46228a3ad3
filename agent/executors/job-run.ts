/**
 * `job.run`: runs a one-off job (a migration, a backup, a report) to completion as a Swarm
 * replicated-job service (`Mode: {ReplicatedJob: {MaxConcurrent: 1, TotalCompletions: 1}}`, API 1.41),
 * waits for its one task to exit, removes the service and reports the exit code.
 *
 * Crash safety: the service is named after the operation (`mp-job-<operation id>`), so an attempt that
 * resumes after its agent died finds the job the first attempt started and waits for it, instead of
 * starting a second one. How the job ended is recorded (the `exit` event, with the service's name, its
 * exit code and last log lines) before its service is removed, and an attempt that resumes reads that
 * event first: an agent dying between the removal and the end of the operation no longer runs the job
 * again; the next attempt reports the recorded exit. (Without a database, in unit tests, there is no
 * event to read and only the service is looked for.)
 *
 * `runJobService` is the same machinery for any job spec: `release.job` (`mp job run`), `pre_deploy:`
 * jobs inside a deploy and cron ticks run release job templates through it (agent/cron/templates.ts).
 */
import type Dockerode from 'dockerode';
import { z } from 'zod';
import { ConflictError, DockerError, MiniPaasError, NotFoundError } from '../../sql/errors.ts';
import type { DockerEngine, ServiceInfo, TaskInfo } from '../docker/engine.ts';
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

/** How a job ended, as its `exit` event records it (before the service is removed). */
export interface RecordedExit {
  service: string;
  exitCode: number;
  /** The last task state: `complete`, or `failed`, `rejected`... */
  state: string;
  durationMs: number;
  logs: string[];
  /** When the job's container started (RFC 3339), when known. */
  startedAt?: string;
  nodeId?: string;
}

/** What the plan depends on: the operation, the job service if an earlier attempt created it, and its recorded end. */
export interface JobState {
  operationId: string;
  /** `mp-job-<operationId>`. */
  serviceName: string;
  existing?: Pick<ServiceInfo, 'id' | 'name' | 'createdAt'>;
  /** The end an earlier attempt recorded: nothing is run again. */
  recorded?: RecordedExit;
}

export type JobAction =
  | { type: 'create-service'; service: string; spec: JobSpec }
  | { type: 'resume'; service: string; serviceId: string }
  | { type: 'recorded-exit'; service: string; exitCode: number }
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
 * Pure: for any job spec, report the end an earlier attempt recorded (removing what is left), or create
 * the job (or resume the one an earlier attempt created), wait for it to exit, remove it.
 */
export function planJob(spec: JobSpec, state: Omit<JobState, 'operationId'>, timeoutMs: number): JobAction[] {
  const service = state.serviceName;
  if (state.recorded) {
    return [{ type: 'recorded-exit', service, exitCode: state.recorded.exitCode }, { type: 'remove-service', service }];
  }
  const start: JobAction = state.existing
    ? { type: 'resume', service, serviceId: state.existing.id }
    : { type: 'create-service', service, spec };
  return [start, { type: 'wait-exit', service, timeoutMs }, { type: 'remove-service', service }];
}

/**
 * Pure: create the job (or resume the one an earlier attempt created), wait for it to exit, remove it.
 *
 * @example
 *   plan({ image: 'busybox', command: ['true'], timeoutSeconds: 60 }, { operationId: '7', serviceName: 'mp-job-7' })
 *   // [{ type: 'create-service', service: 'mp-job-7', spec }, { type: 'wait-exit', ... }, { type: 'remove-service', ... }]
 */
export function plan(payload: JobPayload, state: JobState): JobAction[] {
  return planJob(jobSpec(payload, state), state, payload.timeoutSeconds * 1000);
}

/** The `exit` event an earlier attempt of this operation recorded for `service`, if any (needs the database). */
async function recordedExit(ctx: Pick<ExecutorContext, 'pool' | 'operationId'>, service: string): Promise<RecordedExit | undefined> {
  if (!ctx.pool || !/^\d+$/.test(ctx.operationId)) return undefined;
  const { rows } = await ctx.pool.query<{ data: RecordedExit }>(
    `select e.payload -> 'data' as data from mp.operation_events($1, 0) e
      where e.payload ->> 'step' = 'exit' and e.payload -> 'data' ->> 'service' = $2
      order by e.pos desc limit 1`,
    [ctx.operationId, service],
  );
  return rows[0]?.data;
}

/** How many log lines of `service` earlier attempts already reported (so a resumed one does not repeat them). */
async function reportedLogLines(ctx: Pick<ExecutorContext, 'pool' | 'operationId'>, service: string): Promise<number> {
  if (!ctx.pool || !/^\d+$/.test(ctx.operationId)) return 0;
  const { rows } = await ctx.pool.query<{ n: string | null }>(
    `select sum(jsonb_array_length(e.payload -> 'data' -> 'lines')) as n from mp.operation_events($1, 0) e
      where e.payload ->> 'step' = 'log' and e.payload -> 'data' ->> 'service' = $2`,
    [ctx.operationId, service],
  );
  return Number(rows[0]?.n ?? 0);
}

/** Reads whether the job service `serviceName` exists already, and whether an earlier attempt recorded its end. */
export async function observeJob(ctx: Pick<ExecutorContext, 'docker' | 'operationId' | 'pool'>, serviceName: string): Promise<JobState> {
  // A name filter matches by prefix (mp-job-1 would match mp-job-12): pick the exact name.
  const services = await ctx.docker.listServices({ name: [serviceName] });
  const found = services.find((s) => s.name === serviceName);
  const recorded = await recordedExit(ctx, serviceName);
  return {
    operationId: ctx.operationId,
    serviceName,
    existing: found ? { id: found.id, name: found.name, createdAt: found.createdAt } : undefined,
    ...(recorded ? { recorded } : {}),
  };
}

/** Reads whether this operation's job service exists already. */
export async function observe(ctx: Pick<ExecutorContext, 'docker' | 'operationId' | 'pool'>, _payload: JobPayload): Promise<JobState> {
  return await observeJob(ctx, jobServiceName(ctx.operationId));
}

/** How a job's tasks ended. */
interface JobExit {
  task: TaskInfo;
  exitCode: number;
}

/** The newest task: with no restarts there is one per replica, but a rejected one may leave another behind. */
function newest(tasks: TaskInfo[]): TaskInfo | undefined {
  return [...tasks].sort((a, b) => (b.createdAt ?? '').localeCompare(a.createdAt ?? ''))[0];
}

/** Task states that end a job's task. `complete` is success; the others are failures. */
const ENDED = new Set(['complete', 'failed', 'rejected', 'shutdown', 'orphaned', 'remove']);

/** One job to run: its service's name and spec, and how it is reported. */
export interface JobRun {
  service: string;
  spec: JobSpec;
  /** `job 'migrate' (mp-job-7)`: how messages name it. */
  label: string;
  image: string;
  timeoutMs: number;
  /** Tasks to complete (a replicated job's TotalCompletions; default 1). */
  replicas?: number;
  /** Report the job's output as `log` steps while it runs (`mp job run` prints them). */
  streamLogs?: boolean;
  /** Called once the job's container runs, with its start time: cron records it as the run's start. */
  onStarted?(info: { startedAt: string; nodeId?: string }): Promise<void>;
}

/** How a job ended. `ok` is exit code 0 on every task. */
export interface JobOutcome extends RecordedExit {
  ok: boolean;
  /** An earlier attempt started it (or ended it). */
  resumed: boolean;
}

/**
 * Runs one job to its end (observe, plan, apply; see the module comment for crash safety) and returns
 * how it ended, failed or not; throws only when it could not be run or waited for (timeout, cancel,
 * removed under it, Docker errors). The service is removed in every case.
 *
 * @example
 *   const end = await runJobService(ctx, { service: 'mp-job-7', spec, label: 'job migrate', image, timeoutMs: 600_000 });
 *   if (!end.ok) throw new DockerError('JOB_FAILED', `exit code ${end.exitCode}`);
 */
export async function runJobService(ctx: ExecutorContext, run: JobRun): Promise<JobOutcome> {
  ctx.signal.throwIfAborted();
  const state = await observeJob(ctx, run.service);
  const label = run.label;
  let service: Pick<ServiceInfo, 'id' | 'name'> = { id: run.service, name: run.service };
  let startedAt = Date.now();
  let resumed = false;
  let removed = false;
  let outcome: JobOutcome | undefined;
  const resume = async (existing: Pick<ServiceInfo, 'id' | 'name' | 'createdAt'>): Promise<void> => {
    service = { id: existing.id, name: existing.name };
    // The job's duration counts from its creation, on whichever attempt that was.
    if (existing.createdAt) startedAt = Date.parse(existing.createdAt);
    resumed = true;
    await ctx.step('resume', `resuming: ${label} already started`, { service: existing.name, serviceId: existing.id });
  };
  try {
    for (const action of planJob(run.spec, state, run.timeoutMs)) {
      switch (action.type) {
        case 'recorded-exit': {
          const r = state.recorded!;
          await ctx.step('resume', `${label} already ended with exit code ${r.exitCode} (recorded by an earlier attempt); not run again`, {
            service: r.service,
            exitCode: r.exitCode,
          });
          outcome = { ...r, ok: r.state === 'complete', resumed: true };
          if (state.existing) service = { id: state.existing.id, name: state.existing.name };
          break;
        }
        case 'create-service':
          ctx.signal.throwIfAborted();
          try {
            // @types/dockerode's ServiceSpec predates job modes; the engine (API 1.41) takes them.
            const id = await ctx.docker.createService(action.spec as Dockerode.ServiceSpec);
            service = { id, name: action.service };
            await ctx.step('create', `created ${label} from image ${run.image}`, { service: action.service, serviceId: id });
          } catch (err) {
            // Created between our look and our create (a duplicate delivery): that job is the one to wait for.
            if (!(err instanceof ConflictError)) throw err;
            await resume(await ctx.docker.inspectService(action.service));
          }
          break;
        case 'resume':
          await resume(state.existing!);
          break;
        case 'wait-exit': {
          const logs = run.streamLogs ? await logStreamer(ctx, service, await reportedLogLines(ctx, service.name)) : undefined;
          const exit = await waitExit(ctx, service, label, action.timeoutMs, run, () => logs?.poll());
          await logs?.poll(true);
          const failed = exit.task.state !== 'complete';
          // Logs must be read before the service (and with it its tasks' logs) is removed.
          const tail = failed ? await lastLogs(ctx, service) : [];
          const durationMs = Date.now() - startedAt;
          const recorded: RecordedExit = {
            service: service.name,
            exitCode: exit.exitCode,
            state: exit.task.state,
            durationMs,
            logs: tail,
            ...(exit.startedAt ? { startedAt: exit.startedAt } : {}),
            ...(exit.task.nodeId ? { nodeId: exit.task.nodeId } : {}),
          };
          // Recorded before the service goes: a resumed attempt finds this and does not run the job again.
          await ctx.step(
            'exit',
            failed ? `${label} failed (${describeEnd(exit.task)}) after ${seconds(durationMs)}` : `${label} exited with code 0 after ${seconds(durationMs)}`,
            recorded as unknown as Record<string, Json>,
          );
          outcome = { ...recorded, ok: !failed, resumed };
          break;
        }
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
  return outcome!;
}

/** The error a failed job ends its operation with: exit code and last output. */
export function jobFailure(label: string, end: RecordedExit, image: string): DockerError {
  return new DockerError(
    'JOB_FAILED',
    end.state === 'failed'
      ? `${label} failed with exit code ${end.exitCode} after ${seconds(end.durationMs)}`
      : `${label} did not run: task ${end.state}`,
    end.logs.length ? `its last output: ${end.logs.slice(-3).join(' | ')}` : `is image ${image} on the node that ran it?`,
  );
}

async function execute(ctx: ExecutorContext, payload: JobPayload): Promise<JobResult> {
  const serviceName = jobServiceName(ctx.operationId);
  const label = payload.name ? `job '${payload.name}' (${serviceName})` : `job ${serviceName}`;
  const end = await runJobService(ctx, {
    service: serviceName,
    spec: jobSpec(payload, { operationId: ctx.operationId, serviceName }),
    label,
    image: payload.image,
    timeoutMs: payload.timeoutSeconds * 1000,
  });
  if (!end.ok) throw jobFailure(label, end, payload.image);
  return { exitCode: 0, durationMs: end.durationMs, service: serviceName, resumed: end.resumed };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function describeEnd(task: TaskInfo): string {
  if (task.state === 'failed') return `exit code ${task.exitCode ?? 'unknown'}`;
  return `task ${task.state}${task.error ? `: ${task.error}` : ''}`;
}

/** When a task's container started: the container's own start time where this engine has it, else the task's. */
async function containerStart(docker: DockerEngine, task: TaskInfo): Promise<string | undefined> {
  try {
    const raw = (await docker.api.getTask(task.id).inspect()) as { Status?: { ContainerStatus?: { ContainerID?: string } } };
    const id = raw.Status?.ContainerStatus?.ContainerID;
    if (id) {
      const c = await docker.api.getContainer(id).inspect();
      if (c.State?.StartedAt && !c.State.StartedAt.startsWith('0001-')) return c.State.StartedAt;
    }
  } catch {
    // on another node, or gone: the task's timestamp is close enough
  }
  return task.updatedAt;
}

/**
 * Polls the job's tasks until they end (all `replicas` complete, or one fails); reports `running` once.
 * Times out into a `DockerError`.
 */
async function waitExit(
  ctx: ExecutorContext,
  service: Pick<ServiceInfo, 'id' | 'name'>,
  label: string,
  timeoutMs: number,
  run: Pick<JobRun, 'replicas' | 'onStarted'>,
  onPoll: () => Promise<void> | undefined,
): Promise<JobExit & { startedAt?: string }> {
  let reportedRunning = false;
  let startedAt: string | undefined;
  let last: TaskInfo | undefined;
  const total = run.replicas ?? 1;
  return await waitUntil(
    async () => {
      await onPoll();
      const tasks = await ctx.docker.listTasks({ serviceIds: [service.id] });
      const task = newest(tasks);
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
      const started = tasks.find((t) => t.state === 'running' || ENDED.has(t.state));
      if (!reportedRunning && started) {
        reportedRunning = true;
        startedAt = await containerStart(ctx.docker, started);
        await ctx.step('running', `${label} running`, { taskId: started.id, nodeId: started.nodeId, startedAt });
        if (startedAt) await run.onStarted?.({ startedAt, ...(started.nodeId ? { nodeId: started.nodeId } : {}) });
      }
      // With no restarts, one task that ended other than complete ends the job as failed.
      const failed = tasks.find((t) => ENDED.has(t.state) && t.state !== 'complete');
      if (failed) return { task: failed, exitCode: failed.exitCode ?? -1, startedAt };
      if (tasks.filter((t) => t.state === 'complete').length >= total) return { task, exitCode: 0, startedAt };
      return undefined;
    },
    {
      timeoutMs,
      // Quick polls: a cron run's start time and a short job's end are seen within a quarter second.
      intervalMs: 250,
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

/** How many lines one `log` step carries at most. */
const LOG_BATCH = 200;

/**
 * Reports a running job's new output lines as `log` steps, on each `poll()` (every quarter second
 * while the job runs, and once after it ended). Reads the service's logs and reports the lines after
 * the ones already reported: simple, and complete even when a poll is missed.
 */
async function logStreamer(ctx: ExecutorContext, service: Pick<ServiceInfo, 'id' | 'name'>, already: number): Promise<{ poll(final?: boolean): Promise<void> }> {
  let sent = already;
  let lastRead = 0;
  return {
    async poll(final = false) {
      if (!final && Date.now() - lastRead < 400) return;
      lastRead = Date.now();
      let lines: string[];
      try {
        lines = await ctx.docker.serviceLogs(service, { tail: 100_000 });
      } catch {
        return;
      }
      while (lines.length > sent) {
        const batch = lines.slice(sent, sent + LOG_BATCH);
        sent += batch.length;
        await ctx.step('log', batch.length === 1 ? batch[0]! : `${batch[0]!} (+${batch.length - 1} lines)`, { service: service.name, lines: batch });
      }
    },
  };
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
