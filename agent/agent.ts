/**
 * The node agent: registers its node, heartbeats, claims operations from queue `mp_ops` for its targets
 * (woken by LISTEN, with a slow polling fallback), runs each with its executor, appends an event per
 * step and records the end exactly once. Every 10 minutes it also compacts the hot table mp.jobs
 * (agent/maintenance.ts).
 *
 * Crash safety comes from the queue: a claimed operation is a leased job. If the agent dies, the lease
 * lapses and another agent claims the job; `mp.op_start` then records a new attempt ("resumed on ...").
 * A report from an agent that lost its lease is refused by `mp.op_finish` (it names its attempt), so an
 * operation ends once.
 *
 * Through a PostgreSQL restart or a network drop the agent keeps running: the queue worker backs off and
 * resumes (sql/queues/queue.ts), a failed heartbeat is logged and the next one tries again, and the
 * control-plane calls of an operation in flight (start, step events, finish) are retried while the
 * database is unreachable, so the operation ends once, on its first attempt, instead of failing for a
 * blip or running a second time after its job's lease lapsed.
 *
 * @example
 *   const agent = await startAgent({ pool, docker: connectDocker() });
 *   process.on('SIGTERM', () => agent.stop());
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import { AgentCalls } from '../sql/control/agent-calls.ts';
import { Backoff, isTransientDatabaseError, within } from '../sql/connections.ts';
import { compactJobs } from '../sql/queues/compact.ts';
import { LeaseLostError, Queue, type Job, type Worker } from '../sql/queues/queue.ts';
import type { DockerEngine } from './docker/engine.ts';
import { executors, getExecutor, parsePayload, type ExecutorContext, type Json, type Logger } from './executors/index.ts';
import { startCanaryWatch } from './canary-watch.ts';
import { startMaintenance } from './maintenance.ts';
import { startCronScheduler, type SchedulerOptions } from './cron/scheduler.ts';
import { metricsSampler } from './metrics.ts';
import { secretScope } from './redact.ts';
import type { ClusterKeys } from '../sql/control/sealing.ts';

/** The agent's version, recorded on its node row. */
export const AGENT_VERSION = '0.1.0';

export interface AgentOptions {
  pool: pg.Pool;
  /** The Docker engine, or null when none answers: the agent then runs only kinds that need none. */
  docker: DockerEngine | null;
  /** Node name (default: the host name). */
  name?: string;
  /** Also claim provisioning operations (reaching new hosts over SSH). */
  provisioner?: boolean;
  /**
   * Claim `manager` operations (default: when its engine is a Swarm manager, or in no swarm). `false`
   * for a provisioner whose own engine is not the cluster's: it must not run the cluster's deploys.
   */
  manager?: boolean;
  /** Operations run at once (default 4). */
  concurrency?: number;
  /** Heartbeat period (default 5 s; a node is dead after 30 s without one). */
  heartbeatMs?: number;
  /** Claim poll fallback when no NOTIFY arrives (default 5 s). */
  pollIntervalMs?: number;
  /** How often a running operation checks for a cancel request (default 1 s). */
  cancelCheckMs?: number;
  /** How long `stop()` lets running operations finish before releasing them (default 30 s). */
  shutdownTimeoutMs?: number;
  /** How often the agent compacts the hot table mp.jobs (`mp queue compact`; default 10 minutes, 0: never). */
  maintenanceIntervalMs?: number;
  log?: Logger;
  /**
   * The cluster's private keys (`loadClusterKeys(MP_CLUSTER_KEY_FILE)`): executors can then open sealed
   * values (`ctx.openSealed`). Manager agents hold them; without, secret operations fail.
   */
  clusterKeys?: ClusterKeys;
  /**
   * The cron scheduler a manager agent runs (agent/cron/scheduler.ts: one agent at a time schedules,
   * under a lease); `false` runs none. Default: lease 10 s, schedules re-read every second.
   */
  cron?: false | Pick<SchedulerOptions, 'leaseSeconds' | 'pollMs' | 'lateAfterMs'>;
}

/** A started agent. */
export interface RunningAgent {
  readonly name: string;
  readonly targets: string[];
  /**
   * Stops claiming and maintenance, lets running operations finish (or releases them after the timeout),
   * marks the node stopped.
   */
  stop(): Promise<void>;
}

/** Logs nowhere; the default when the caller passes no logger. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

interface OpJob {
  op: string | number;
}

/**
 * How long an operation's control-plane call is retried while the database is unreachable. Longer than
 * a restart takes; once the job's lease has lapsed meanwhile, `mp.op_finish` refuses this attempt anyway.
 */
const OP_CALL_RETRY_MS = 120_000;

/** How long `stop()` tries to mark the node stopped: a dead server must not hold the agent's exit. */
const STOP_CALL_TIMEOUT_MS = 5_000;

/** Who this node is: its Swarm identity decides whether it claims manager operations. */
async function identify(docker: DockerEngine | null): Promise<{ swarmNodeId: string | null; swarmRole: 'manager' | 'worker' | null }> {
  if (!docker) return { swarmNodeId: null, swarmRole: null };
  const info = await docker.info();
  if (info.swarm.state !== 'active') return { swarmNodeId: null, swarmRole: null };
  return { swarmNodeId: info.swarm.nodeId, swarmRole: info.swarm.controlAvailable ? 'manager' : 'worker' };
}

/**
 * Registers the node and starts claiming. Without a Docker engine the agent still starts (operations
 * for `node:<name>` and `any` still reach it) and every Docker kind fails with the engine's error.
 */
export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  // Every secret value this agent opens, and its environments' values, are redacted from what it
  // reports: steps, results, errors and log lines (agent/redact.ts).
  const secrets = secretScope({ pool: opts.pool, keys: opts.clusterKeys, log: opts.log ?? silentLogger });
  const log = secrets.redactor.logger(opts.log ?? silentLogger);
  const name = opts.name ?? hostname();
  const calls = new AgentCalls(opts.pool);
  const { swarmNodeId, swarmRole } = await identify(opts.docker).catch((err: unknown) => {
    log.warn('no Docker engine: Docker operations will fail on this node', { error: String(err) });
    return { swarmNodeId: null, swarmRole: null };
  });
  // A lone engine outside any swarm manages itself: `mp dev` on a laptop still runs manager operations.
  const manager = opts.manager ?? (swarmRole === 'manager' || (opts.docker !== null && swarmRole === null));
  const targets = [`node:${name}`, ...(manager ? ['manager'] : []), ...(opts.provisioner ? ['provisioner'] : [])];
  await calls.register({
    name,
    hostname: hostname(),
    version: AGENT_VERSION,
    targets,
    kinds: [...executors.keys()].sort(),
    swarmNodeId,
    swarmRole,
  });
  log.info('agent registered', { name, targets });
  const cron = manager && opts.cron !== false ? startCronScheduler({ pool: opts.pool, name, log, ...(opts.cron ?? {}) }) : undefined;
  // Live canaries whose tasks keep failing abort by themselves (agent/canary-watch.ts).
  const canaryWatch = manager && opts.docker ? startCanaryWatch({ pool: opts.pool, docker: opts.docker, log }) : undefined;

  let stopping = false;
  // One heartbeat at a time: against an unreachable server they would queue up behind each other.
  let beating = false;
  // Host metrics ride on the heartbeat (agent/metrics.ts); the database raises alerts from them.
  const metrics = metricsSampler(opts.docker);
  const heartbeat = setInterval(() => {
    if (beating) return;
    beating = true;
    metrics
      .sample()
      .then((m) => calls.heartbeat(name, m))
      .catch((err: unknown) => log.warn('heartbeat failed; trying again next beat', { error: String(err) }))
      .finally(() => (beating = false));
  }, opts.heartbeatMs ?? 5_000);

  /**
   * Runs a control-plane call of an operation, retrying it with backoff while the database is
   * unreachable (see the module comment); any other error, or one that outlasts the retry window or the
   * agent's stop, is thrown.
   */
  async function persistently<R>(what: string, call: () => Promise<R>): Promise<R> {
    const giveUpAt = Date.now() + OP_CALL_RETRY_MS;
    const backoff = new Backoff(100, 5_000);
    for (;;) {
      try {
        return await call();
      } catch (err) {
        if (!isTransientDatabaseError(err) || stopping || Date.now() >= giveUpAt) throw err;
        log.warn(`${what} failed; retrying while the database is unreachable`, { error: String(err) });
        await new Promise((resolve) => setTimeout(resolve, backoff.next()));
      }
    }
  }

  const maintenance = startMaintenance({
    intervalMs: opts.maintenanceIntervalMs ?? 10 * 60_000,
    log,
    compact: () => compactJobs(opts.pool),
  });

  const queue = new Queue<OpJob>({ pool: opts.pool, name: 'mp_ops' });
  const worker: Worker<OpJob> = queue.work((job) => runOperationJob(job), {
    concurrency: opts.concurrency ?? 4,
    workerId: name,
    targets,
    pollIntervalMs: opts.pollIntervalMs ?? 5_000,
    shutdownTimeoutMs: opts.shutdownTimeoutMs ?? 30_000,
    onError: (err) => log.warn('queue worker error', { error: String(err) }),
  });

  async function runOperationJob(job: Job<OpJob>): Promise<void> {
    const opId = String(job.payload.op);
    // If a start did commit and only its answer was lost, the retry records one more attempt (events say
    // "resumed"); the operation still ends once, with the attempt this call returns.
    const op = await persistently(`starting operation ${opId}`, () => calls.start(opId, name));
    if (op.status !== 'running') return; // cancelled before it started, or already ended
    const attempt = op.attempts;
    const cancel = new AbortController();
    const watcher = setInterval(() => {
      calls
        .cancelRequested(opId)
        .then((requested) => requested && cancel.abort(new Error('cancelled')))
        .catch(() => {});
    }, opts.cancelCheckMs ?? 1_000);
    const ctx: ExecutorContext = {
      docker: opts.docker as DockerEngine,
      pool: opts.pool,
      operationId: opId,
      signal: cancel.signal,
      log,
      step: async (step, message, data) => {
        const [m, d] = [secrets.redactor.redact(message), secrets.redactor.redactJson(data)];
        await persistently(`event ${step} of operation ${opId}`, () => calls.event(opId, step, m, 'info', d));
      },
      ...(secrets.openSealed ? { openSealed: secrets.openSealed, clusterKeys: opts.clusterKeys } : {}),
    };
    const finish = (status: 'succeeded' | 'failed' | 'cancelled', result?: Json, error?: string): Promise<boolean> =>
      persistently(`finishing operation ${opId}`, () =>
        calls.finish(opId, attempt, status, secrets.redactor.redactJson(result), error === undefined ? undefined : secrets.redactor.redact(error)),
      );
    let finished: boolean;
    const startedAt = Date.now();
    // The agent's own log says how each attempt ended (redacted like everything it prints).
    const logEnd = (status: string, error?: string): void => {
      const fields = { kind: op.kind, attempt, seconds: Math.round((Date.now() - startedAt) / 100) / 10 };
      if (status === 'failed') log.warn(`operation ${opId} failed`, { ...fields, error });
      else log.info(`operation ${opId} ${status}`, fields);
    };
    try {
      if (!opts.docker) {
        throw new Error(`no Docker engine on node ${name}: start dockerd or set DOCKER_HOST, then \`mp ops retry ${opId}\``);
      }
      await secrets.loadEnvironment(op.environment);
      const executor = getExecutor(op.kind);
      const result: Json = await executor.execute(ctx, parsePayload(executor, op.payload));
      const status = cancel.signal.aborted ? 'cancelled' : 'succeeded';
      finished = status === 'cancelled' ? await finish('cancelled') : await finish('succeeded', result);
      if (finished) logEnd(status);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const status = cancel.signal.aborted ? 'cancelled' : 'failed';
      finished = await finish(status, undefined, message);
      if (finished) logEnd(status, message);
    } finally {
      clearInterval(watcher);
    }
    // Another agent holds this operation now; its job is that agent's to ack.
    if (!finished) throw new LeaseLostError(`operation ${opId} attempt ${attempt} was taken over`);
  }

  return {
    name,
    targets,
    stop: async () => {
      clearInterval(heartbeat);
      await cron?.stop();
      await canaryWatch?.stop();
      await maintenance.stop();
      await worker.stop();
      // Operations still retrying their calls after the worker's shutdown timeout give up now.
      stopping = true;
      const marked = await within(
        calls.stopped(name).then(
          () => true,
          (err: unknown) => {
            log.warn('could not mark the node stopped', { error: String(err) });
            return false;
          },
        ),
        STOP_CALL_TIMEOUT_MS,
      );
      if (marked === undefined) log.warn('could not mark the node stopped in time; it shows as dead after 30 s without heartbeats', {});
      log.info('agent stopped', { name });
    },
  };
}
