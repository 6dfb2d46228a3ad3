/**
 * `service.scale`: sets a replicated Swarm service's replica count and waits until exactly that many
 * tasks run (scaling down waits for the extra containers to stop). What `docker service scale` does,
 * with a deadline and progress steps.
 */
import { z } from 'zod';
import { ConflictError, DockerError, NotFoundError } from '../../sql/errors.ts';
import { isOutOfSequence } from '../docker/errors.ts';
import type { ServiceInfo, TaskInfo } from '../docker/engine.ts';
import { listNames, nearMiss } from './near-miss.ts';
import { dockerName, timeoutSeconds } from './names.ts';
import type { Executor, ExecutorContext } from './types.ts';
import { waitUntil } from './waiting.ts';

export const payloadSchema = z.strictObject({
  service: dockerName,
  replicas: z.int().min(0).max(10_000),
  timeoutSeconds,
});

export type ScalePayload = z.infer<typeof payloadSchema>;

/** What the plan depends on: the service (if it exists) and the names of all services, for errors. */
export interface ScaleState {
  service?: ServiceInfo;
  serviceNames: string[];
}

export type ScaleAction =
  | { type: 'set-replicas'; service: string; serviceId: string; version: number; from: number; to: number }
  | { type: 'wait-running'; service: string; serviceId: string; replicas: number; timeoutMs: number; stableMs: number };

/**
 * How long the same tasks must stay running before the service counts as scaled. Swarm reports a task
 * `running` as soon as its container started, so a container that exits at once (bad command, missing
 * file) would otherwise pass for a success. 2 s catches those at a small cost per scale; health checks
 * are the real gate for slower failures (a task with one stays `starting` until healthy). `docker
 * service update` waits 5 s for the same reason.
 */
export const STABLE_MS = 2000;

export type ScaleResult = {
  service: string;
  serviceId: string;
  from: number;
  to: number;
  running: number;
  changed: boolean;
};

/** The error for a service that is not there, listing those that are and suggesting the near miss. */
function unknownService(name: string, existing: string[]): NotFoundError {
  const guess = nearMiss(name, existing);
  return new NotFoundError(
    'DOCKER_NOT_FOUND',
    `service '${name}' does not exist in the swarm; services: ${listNames(existing)}`,
    guess ? `did you mean '${guess}'?` : 'check the name with `docker service ls`',
  );
}

/**
 * Pure: the actions that scale `state.service` to `payload.replicas`. Always ends with a wait, so an
 * operation retried after a crash (the replicas already set) still waits for convergence.
 *
 * @example
 *   plan({ service: 'web', replicas: 3, timeoutSeconds: 120 },
 *        { service: { id: 'x1', name: 'web', version: 7, mode: 'replicated', replicas: 1 }, serviceNames: ['web'] })
 *   // [{ type: 'set-replicas', ..., from: 1, to: 3 }, { type: 'wait-running', ..., replicas: 3 }]
 */
export function plan(payload: ScalePayload, state: ScaleState): ScaleAction[] {
  const svc = state.service;
  if (!svc) throw unknownService(payload.service, state.serviceNames);
  if (svc.mode !== 'replicated') {
    throw new ConflictError(
      'NOT_REPLICATED',
      `service '${svc.name}' runs in ${svc.mode} mode; only replicated services have a replica count`,
      svc.mode === 'global' ? 'a global service runs one task per node; add or drain nodes instead' : undefined,
    );
  }
  const from = svc.replicas ?? 0;
  const actions: ScaleAction[] = [];
  if (from !== payload.replicas) {
    actions.push({
      type: 'set-replicas',
      service: svc.name,
      serviceId: svc.id,
      version: svc.version,
      from,
      to: payload.replicas,
    });
  }
  actions.push({
    type: 'wait-running',
    service: svc.name,
    serviceId: svc.id,
    replicas: payload.replicas,
    timeoutMs: payload.timeoutSeconds * 1000,
    stableMs: payload.replicas === 0 ? 0 : STABLE_MS,
  });
  return actions;
}

/** Reads the service by exact name (and all names, for the not-found message). */
export async function observe(ctx: Pick<ExecutorContext, 'docker'>, payload: ScalePayload): Promise<ScaleState> {
  // Listing, not inspecting by name: inspect also matches id prefixes, and the list names the
  // alternatives when the service is not there.
  const services = await ctx.docker.listServices();
  return { service: services.find((s) => s.name === payload.service), serviceNames: services.map((s) => s.name) };
}

/** The most recent task error of a service, to say why it does not converge. */
function lastTaskError(tasks: TaskInfo[]): string | undefined {
  const failed = tasks.filter((t) => t.error).sort((a, b) => (b.updatedAt ?? '').localeCompare(a.updatedAt ?? ''));
  return failed[0]?.error;
}

/** Observes, plans and applies; retries when someone else updated the service in between. */
async function execute(ctx: ExecutorContext, payload: ScalePayload): Promise<ScaleResult> {
  // Swarm updates carry the version they read; a concurrent change makes ours fail "out of sequence",
  // and reading again is the whole fix. Three tries: more means something keeps fighting us.
  for (let attempt = 1; ; attempt++) {
    ctx.signal.throwIfAborted();
    const state = await observe(ctx, payload);
    const actions = plan(payload, state);
    const svc = state.service as ServiceInfo; // plan threw if it were missing
    try {
      return await apply(ctx, svc, actions);
    } catch (err) {
      if (!isOutOfSequence(err) || attempt >= 3) throw err;
      ctx.log.warn(`service '${svc.name}' changed while scaling it; reading it again`, { attempt });
    }
  }
}

async function apply(ctx: ExecutorContext, svc: ServiceInfo, actions: ScaleAction[]): Promise<ScaleResult> {
  const from = svc.replicas ?? 0;
  let to = from;
  let running = 0;
  for (const action of actions) {
    ctx.signal.throwIfAborted();
    if (action.type === 'set-replicas') {
      await ctx.step('update', `scaling service '${action.service}' from ${action.from} to ${action.to} replicas`, {
        from: action.from,
        to: action.to,
      });
      const spec = structuredClone(svc.spec);
      spec.Mode = { Replicated: { Replicas: action.to } };
      const { warnings } = await ctx.docker.updateService(svc, action.version, spec);
      for (const w of warnings) ctx.log.warn(`engine warning while scaling '${action.service}': ${w}`);
      to = action.to;
    } else {
      to = action.replicas;
      running = await waitRunning(ctx, action);
    }
  }
  return { service: svc.name, serviceId: svc.id, from, to, running, changed: from !== to };
}

/** Waits until exactly `replicas` tasks run and the same ones still run `stableMs` later. */
async function waitRunning(ctx: ExecutorContext, action: Extract<ScaleAction, { type: 'wait-running' }>): Promise<number> {
  let lastReported = -1;
  let tasks: TaskInfo[] = [];
  let stableSet = '';
  let stableSince = 0;
  const runningTasks = (): TaskInfo[] => tasks.filter((t) => t.state === 'running');
  return await waitUntil(
    async () => {
      tasks = await ctx.docker.listTasks({ serviceIds: [action.serviceId] });
      const running = runningTasks();
      if (running.length !== lastReported) {
        lastReported = running.length;
        await ctx.step('wait', `${running.length}/${action.replicas} tasks of '${action.service}' running`, {
          running: running.length,
          desired: action.replicas,
        });
      }
      if (running.length !== action.replicas) {
        stableSet = '';
        return undefined;
      }
      const set = running
        .map((t) => t.id)
        .sort()
        .join(',');
      if (set !== stableSet) {
        stableSet = set;
        stableSince = Date.now();
      }
      return Date.now() - stableSince >= action.stableMs ? running.length : undefined;
    },
    {
      timeoutMs: action.timeoutMs,
      signal: ctx.signal,
      onTimeout: () => {
        const why = lastTaskError(tasks);
        return new DockerError(
          'DOCKER_TIMEOUT',
          `service '${action.service}' has ${runningTasks().length}/${action.replicas} tasks running steadily after ${action.timeoutMs / 1000} s`,
          why
            ? `the last task error was: ${why}`
            : `see \`docker service ps ${action.service}\`; a larger timeoutSeconds gives it longer`,
        );
      },
    },
  );
}

export const serviceScale: Executor<ScalePayload, ScaleState, ScaleAction, ScaleResult> = {
  kind: 'service.scale',
  description: 'set the replica count of a Swarm service and wait until that many tasks run',
  example: { service: 'web', replicas: 3, timeoutSeconds: 120 },
  payloadSchema,
  target: 'manager',
  observe,
  plan,
  execute,
};
