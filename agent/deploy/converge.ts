/**
 * Waiting until a deployed stack has converged: every service's rolling update completed, every desired
 * task running (a task with a healthcheck reaches `running` only once healthy) and still running after
 * a stable period. Swarm's own verdicts end the wait early: an update `paused`, `rollback_started` or
 * `rollback_completed` is a failed deploy (with `failure_action: rollback`, Swarm has put the previous
 * spec back), and so is a new service whose tasks keep failing. Job services are not waited on.
 *
 * Swarm has no "wait for" API; this polls every 250 ms (one service list and one task list per poll,
 * a few milliseconds of engine time each) and reports a progress step whenever a count changes. At
 * 500 ms the poll alone added 250 ms on average to every deploy, about 4% of the 6 s that converging a
 * 10-service stack from nothing takes on the lab (bench/deploy.ts).
 */
import { DockerError } from '../../sql/errors.ts';
import type { DockerEngine, ServiceInfo, TaskInfo } from '../docker/engine.ts';
import type { ExecutorContext, Json } from '../executors/types.ts';
import { waitUntil } from '../executors/waiting.ts';

/** Update states after which Swarm has given up on the new spec. */
const FAILED_UPDATE_STATES: ReadonlySet<string> = new Set(['paused', 'rollback_started', 'rollback_paused', 'rollback_completed']);
/** Failed tasks of one service (since the deploy began) after which a new service is declared broken. */
const MAX_TASK_FAILURES = 3;
/** Log lines of the failing service quoted in the error. */
const LOG_LINES = 20;
/** Pause between two polls of the engine. */
const POLL_MS = 250;

/** How one service stands. */
export interface ServiceProgress {
  service: string;
  running: number;
  desired: number;
  /** Swarm's update state, when the service was ever updated. */
  update?: string;
}

export interface ConvergeOptions {
  /** Services to wait for, by engine name and id. */
  services: { name: string; id: string }[];
  /** Ids of the services this deploy updated: they must show an update of this deploy, completed. */
  updated?: string[];
  /** When this deploy began applying: tasks failed and updates started before it are not this deploy's. */
  since: Date;
  timeoutMs: number;
  /** How long every task must have been running (default 3 s). */
  stableMs: number;
  step: ExecutorContext['step'];
  signal: AbortSignal;
  intervalMs?: number;
}

/** The service a deploy failed on, with Swarm's reason and the last log lines. */
export class DeployFailedError extends DockerError {
  constructor(
    readonly service: string,
    message: string,
    readonly logs: string[],
    readonly rolledBack: boolean,
  ) {
    super('DEPLOY_FAILED', message, 'fix the service and deploy again; `mp deploy status` shows what runs now');
  }
}

function isJob(service: ServiceInfo): boolean {
  return service.mode === 'replicated-job' || service.mode === 'global-job';
}

function time(iso: string | undefined): number {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? 0 : t;
}

/** Counts and verdict of one service from its tasks. */
function assess(service: ServiceInfo, tasks: TaskInfo[], opts: ConvergeOptions, now: number) {
  const current = tasks.filter((t) => t.desiredState === 'running');
  const running = current.filter((t) => t.state === 'running');
  const desired = service.mode === 'global' ? current.length : (service.replicas ?? 1);
  const failures = tasks.filter((t) => (t.state === 'failed' || t.state === 'rejected') && time(t.updatedAt) >= opts.since.getTime());
  const update = service.updateStatus;
  // An update whose status predates this deploy says nothing about it (Swarm sets it asynchronously).
  const updateIsOurs = update !== undefined && time(update.startedAt) >= opts.since.getTime() - 1_000;
  const stable =
    running.length === desired &&
    current.length === desired &&
    running.every((t) => now - time(t.updatedAt) >= opts.stableMs) &&
    (updateIsOurs ? update?.state === 'completed' : !(opts.updated ?? []).includes(service.id));
  return { running: running.length, desired, failures, update: updateIsOurs ? update?.state : undefined, stable };
}

async function failure(docker: DockerEngine, service: ServiceInfo, reason: string, rolledBack: boolean): Promise<DeployFailedError> {
  const logs = await docker.serviceLogs(service, { tail: LOG_LINES }).catch(() => [] as string[]);
  const tail = logs.length > 0 ? `; last log lines:\n${logs.join('\n')}` : '';
  return new DeployFailedError(service.name, `service ${service.name}: ${reason}${tail}`, logs, rolledBack);
}

/**
 * Resolves with each service's final counts once all have converged; throws `DeployFailedError` when
 * Swarm rejected an update or a new service keeps failing, `DockerError` DEPLOY_TIMEOUT when the
 * deadline passes, and `signal.reason` when cancelled.
 */
export async function waitForConvergence(docker: DockerEngine, opts: ConvergeOptions): Promise<ServiceProgress[]> {
  const ids = new Set(opts.services.map((s) => s.id));
  const reported = new Map<string, string>();
  let last: ServiceProgress[] = [];

  const poll = async (): Promise<ServiceProgress[] | undefined> => {
    const [services, tasks] = await Promise.all([
      docker.listServices().then((all) => all.filter((s) => ids.has(s.id) && !isJob(s))),
      docker.listTasks({ serviceIds: [...ids] }),
    ]);
    const now = Date.now();
    let done = true;
    const progress: ServiceProgress[] = [];
    for (const service of services.sort((a, b) => a.name.localeCompare(b.name))) {
      const own = tasks.filter((t) => t.serviceId === service.id);
      const a = assess(service, own, opts, now);
      progress.push({ service: service.name, running: a.running, desired: a.desired, update: a.update });
      const line = `${service.name} ${a.running}/${a.desired} running${a.update ? ` (update ${a.update})` : ''}`;
      if (reported.get(service.name) !== line) {
        reported.set(service.name, line);
        await opts.step('progress', line, { service: service.name, running: a.running, desired: a.desired, update: a.update ?? null });
      }
      if (a.update && FAILED_UPDATE_STATES.has(a.update)) {
        const lastError = a.failures.at(-1)?.error;
        const rolledBack = a.update.startsWith('rollback');
        throw await failure(
          docker,
          service,
          `update ${a.update}${rolledBack ? ' (Swarm rolled back to the previous spec)' : ''}: ${service.updateStatus?.message ?? ''}${lastError ? `; task error: ${lastError}` : ''}`,
          rolledBack,
        );
      }
      if (!a.update && a.failures.length >= MAX_TASK_FAILURES) {
        throw await failure(docker, service, `${a.failures.length} tasks failed; last task error: ${a.failures.at(-1)?.error ?? 'unknown'}`, false);
      }
      if (!a.stable) done = false;
    }
    last = progress;
    return done ? progress : undefined;
  };

  return await waitUntil(poll, {
    timeoutMs: opts.timeoutMs,
    intervalMs: opts.intervalMs ?? POLL_MS,
    signal: opts.signal,
    onTimeout: () => {
      const behind = last.filter((p) => p.running !== p.desired || p.update !== undefined).map((p) => `${p.service} ${p.running}/${p.desired}`);
      return new DockerError(
        'DEPLOY_TIMEOUT',
        `the stack did not converge within ${Math.round(opts.timeoutMs / 1000)} s${behind.length ? `: ${behind.join(', ')}` : ''}`,
        'raise deploy.timeout in minipaas.yaml, or look at `docker service ps` for why tasks do not start',
      );
    },
  });
}

/** Progress as JSON for an operation's result. */
export function progressJson(progress: ServiceProgress[]): Json {
  return Object.fromEntries(progress.map((p) => [p.service, `${p.running}/${p.desired}`]));
}
