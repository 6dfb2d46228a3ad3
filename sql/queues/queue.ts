/**
 * Typed client for MiniPaaS durable queues (`import { Queue } from 'minipaas/queue'`).
 *
 * Terminology (the README uses the same words):
 * - job: one row of work with a JSON payload, in one queue.
 * - queue: a named line of jobs (`mp.queues`); a worker claims from one queue.
 * - claim: taking jobs for a worker, under a lease.
 * - lease: how long a claimed job stays with its worker; when it expires the job is claimable again.
 * - ack: the job is done. fail: this attempt failed; retried with backoff until max_attempts, then dead.
 * - dead letter: a job that used all its attempts, kept with its error history in `mp.dead_jobs`.
 * - serial key: jobs sharing one run one at a time, in enqueue order.
 * - dedupe key: while a job with the key is waiting or running, enqueueing it again adds nothing.
 * - target: a job with a target is only claimed by workers that name that target.
 *
 * Ids are PostgreSQL bigints; they are strings here because a JavaScript number cannot hold every int8.
 */
import { hostname } from 'node:os';
import pg from 'pg';
import type { ZodType } from 'zod';
import { Backoff, ChannelListener, guardPool, within } from '../connections.ts';
import { ConfigError, mapDatabaseErrors } from '../errors.ts';
import { checkPayload } from '../payload.ts';
import { batchTypeParsers } from './timestamp-memo.ts';

/** Options of `mp.queue_create`. */
export interface QueueOptions {
  maxAttempts?: number;
  leaseSeconds?: number;
  /** Keep finished jobs in `mp.finished_jobs` this long; 0 (default) deletes them at ack. */
  retentionSeconds?: number;
}

/** Options of one enqueue. */
export interface EnqueueOptions {
  runAt?: Date;
  delaySeconds?: number;
  priority?: number;
  maxAttempts?: number;
  dedupeKey?: string;
  serialKey?: string;
  target?: string;
}

/** A job as a worker receives it. */
export interface Job<T> {
  id: string;
  payload: T;
  /** 1 on the first attempt. */
  attempt: number;
  maxAttempts: number;
  leaseUntil: Date;
  enqueuedAt: Date;
}

/** Counts of one queue, from `mp.queue_stats`. */
export interface QueueStats {
  name: string;
  waiting: number;
  scheduled: number;
  running: number;
  dead: number;
  oldestWaitingSeconds: number | null;
}

/** Options of `Queue.work`. */
export interface WorkOptions {
  /** Handlers running at once (default 10). */
  concurrency?: number;
  /** Most jobs taken per claim (default: concurrency). */
  batch?: number;
  /** Worker name recorded on claimed jobs (default host:pid:random). */
  workerId?: string;
  /** Lease per claim; default the queue's. Leases of running handlers are extended automatically. */
  leaseSeconds?: number;
  /** Claim jobs aimed at these targets too (untargeted jobs are always claimed). */
  targets?: string[];
  /** Polling fallback when no NOTIFY arrives (NOTIFY is lossy), default 2000 ms. */
  pollIntervalMs?: number;
  /** How long `stop()` waits for running handlers before releasing their jobs, default 10,000 ms. */
  shutdownTimeoutMs?: number;
  /**
   * Called with errors the worker survives: a lost connection (also the pool's own 'error' events, see
   * sql/connections.ts), a failed claim, ack or lease extension. Default: ignore. The worker never exits
   * on its own: while the database is unreachable it retries with backoff (100 ms doubling to 5 s,
   * jittered) and resumes when it is back.
   */
  onError?: (err: unknown) => void;
}

interface ClaimRow {
  id: string;
  payload: unknown;
  attempt: number;
  max_attempts: number;
  lease_until: Date;
  enqueued_at: Date;
}

function enqueueOptionsJson(o: EnqueueOptions): Record<string, unknown> {
  const json: Record<string, unknown> = {};
  if (o.runAt) json.run_at = o.runAt.toISOString();
  if (o.delaySeconds !== undefined) json.delay_seconds = o.delaySeconds;
  if (o.priority !== undefined) json.priority = o.priority;
  if (o.maxAttempts !== undefined) json.max_attempts = o.maxAttempts;
  if (o.dedupeKey !== undefined) json.dedupe_key = o.dedupeKey;
  if (o.serialKey !== undefined) json.serial_key = o.serialKey;
  if (o.target !== undefined) json.target = o.target;
  return json;
}

/**
 * Thrown by a handler that learned its job is no longer its own (its lease lapsed and another worker
 * holds the job now): the worker neither acks nor fails the job, leaving it to its new holder.
 */
export class LeaseLostError extends Error {
  constructor(message = 'the lease of this job was lost to another worker') {
    super(message);
    this.name = 'LeaseLostError';
  }
}

/** NOTIFY channel a queue's enqueues signal on. */
export function queueChannel(queue: string): string {
  return `mp_queue_${queue}`;
}

/**
 * One queue, by name, on a pool.
 *
 * @example
 *   const emails = new Queue<{ to: string }>({ pool, name: 'emails' });
 *   await emails.create();
 *   await emails.enqueue({ to: 'a@example.com' }, { dedupeKey: 'welcome:42' });
 *   const worker = emails.work(async (job) => send(job.payload.to), { concurrency: 4 });
 *   await worker.stop();
 */
export class Queue<T = unknown> {
  readonly pool: pg.Pool;
  readonly name: string;
  private readonly schema: ZodType<T> | undefined;

  constructor(opts: { pool: pg.Pool; name: string; schema?: ZodType<T> }) {
    this.pool = opts.pool;
    this.name = opts.name;
    this.schema = opts.schema;
    // An idle client dying at a server restart must not crash an app that added no pool.on('error').
    guardPool(opts.pool);
  }

  private async query<R extends pg.QueryResultRow>(text: string, values: unknown[], types?: pg.CustomTypesConfig): Promise<R[]> {
    return await mapDatabaseErrors(async () => (await this.pool.query<R>({ text, values, types })).rows);
  }

  private checked(payload: unknown): T {
    return checkPayload(this.schema, payload, `queue "${this.name}"`, 'fix the payload to match the queue schema');
  }

  /** Creates the queue, or updates the given options of an existing one. */
  async create(options: QueueOptions = {}): Promise<void> {
    const json: Record<string, number> = {};
    if (options.maxAttempts !== undefined) json.max_attempts = options.maxAttempts;
    if (options.leaseSeconds !== undefined) json.lease_seconds = options.leaseSeconds;
    if (options.retentionSeconds !== undefined) json.retention_seconds = options.retentionSeconds;
    await this.query(`select mp.queue_create($1, $2)`, [this.name, JSON.stringify(json)]);
  }

  /** Adds a job; returns its id (the existing job's id when its dedupe key is taken). */
  async enqueue(payload: T, options: EnqueueOptions = {}): Promise<string> {
    const rows = await this.query<{ id: string }>(`select mp.enqueue($1, $2, $3) as id`, [
      this.name,
      JSON.stringify(this.checked(payload)),
      JSON.stringify(enqueueOptionsJson(options)),
    ]);
    return rows[0]!.id;
  }

  /** Adds many jobs in one statement; returns their ids in order. */
  async enqueueMany(payloads: T[], options: Omit<EnqueueOptions, 'dedupeKey'> = {}): Promise<string[]> {
    const rows = await this.query<{ id: string }>(`select id from mp.enqueue_batch($1, $2, $3) as id`, [
      this.name,
      JSON.stringify(payloads.map((p) => this.checked(p))),
      JSON.stringify(enqueueOptionsJson(options)),
    ]);
    return rows.map((r) => r.id);
  }

  /**
   * Claims up to `batch` jobs for `worker`; with `ack`, first acks those jobs in the same transaction
   * (`mp.ack_claim`). Most callers want `work` instead.
   */
  async claim(worker: string, opts: { batch?: number; leaseSeconds?: number; targets?: string[]; ack?: string[] } = {}): Promise<Job<T>[]> {
    const args = [this.name, worker, opts.batch ?? 1, opts.leaseSeconds ?? null, opts.targets ?? null];
    // Always mp.ack_claim: mp.claim is a wrapper around it, one more copy of every row.
    const rows = await this.query<ClaimRow>(
      `select * from mp.ack_claim($6::bigint[], $1, $2, $3, $4, $5)`,
      [...args, opts.ack ?? []],
      batchTypeParsers(),
    );
    return rows.map((r) => ({
      id: r.id,
      payload: r.payload as T,
      attempt: r.attempt,
      maxAttempts: r.max_attempts,
      leaseUntil: r.lease_until,
      enqueuedAt: r.enqueued_at,
    }));
  }

  /** Marks running jobs done; returns how many were. */
  async ack(ids: string[]): Promise<number> {
    const rows = await this.query<{ n: number }>(`select mp.ack($1::bigint[]) as n`, [ids]);
    return rows[0]!.n;
  }

  /** Records a failed attempt; returns 'retry', 'dead' or 'not_running'. */
  async fail(id: string, error: string, retryInSeconds?: number): Promise<'retry' | 'dead' | 'not_running'> {
    const rows = await this.query<{ r: 'retry' | 'dead' | 'not_running' }>(`select mp.fail($1, $2, $3) as r`, [
      id,
      error,
      retryInSeconds ?? null,
    ]);
    return rows[0]!.r;
  }

  /** Extends the lease of running jobs to now + seconds. */
  async extendLease(ids: string[], seconds: number): Promise<number> {
    const rows = await this.query<{ n: number }>(`select mp.extend_lease($1::bigint[], $2) as n`, [ids, seconds]);
    return rows[0]!.n;
  }

  /** Gives running jobs back unfinished, without counting the attempt. */
  async release(ids: string[]): Promise<number> {
    const rows = await this.query<{ n: number }>(`select mp.release($1::bigint[]) as n`, [ids]);
    return rows[0]!.n;
  }

  /** Counts waiting, scheduled, running and dead jobs. */
  async stats(): Promise<QueueStats> {
    const rows = await this.query<{
      name: string;
      waiting: string;
      scheduled: string;
      running: string;
      dead: string;
      oldest_waiting_seconds: number | null;
    }>(`select * from mp.queue_stats($1)`, [this.name]);
    const r = rows[0]!;
    return {
      name: r.name,
      waiting: Number(r.waiting),
      scheduled: Number(r.scheduled),
      running: Number(r.running),
      dead: Number(r.dead),
      oldestWaitingSeconds: r.oldest_waiting_seconds,
    };
  }

  /**
   * Runs `handler` for each job until `stop()`. A handler that returns acks its job; one that throws
   * fails it (retried with backoff, dead-lettered after max_attempts). Idle workers sleep on LISTEN and
   * wake at once on enqueue, with a slow polling fallback.
   */
  work(handler: (job: Job<T>) => Promise<void>, opts: WorkOptions = {}): Worker<T> {
    const worker = new Worker<T>(this, handler, opts, (p) => this.checked(p));
    worker.start();
    return worker;
  }
}

/** How long each closing database call of `stop()` may take: a dead server may never answer. */
const STOP_CALL_TIMEOUT_MS = 5_000;

/**
 * A running `Queue.work` loop.
 *
 * Through a restart or a network drop: a failed claim keeps its acks for the next one and backs off
 * (exponential, capped, jittered; a finished handler does not cut the pause short, or a busy worker would
 * retry at the pace of its handlers); the LISTEN connection comes back in the background and the worker
 * claims at once when it does; lease extensions that fail are reported and tried again at the next tick
 * (every third of the lease, so one outage shorter than two thirds of the lease loses no lease). Jobs
 * whose ack did not get through before a lease lapsed are handled again: delivery is at least once.
 */
export class Worker<T> {
  readonly id: string;
  private readonly concurrency: number;
  private readonly batch: number;
  private readonly pollIntervalMs: number;
  private readonly shutdownTimeoutMs: number;
  private readonly onError: (err: unknown) => void;
  private readonly inFlight = new Map<string, Promise<void>>();
  private pendingAcks: string[] = [];
  private stopping = false;
  private loopDone: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private wakeRequested = false;
  private cancelPause: (() => void) | null = null;
  private waiting = false;
  private readonly listener: ChannelListener;
  private readonly backoff = new Backoff(100, 5_000);
  private unguard: () => void = () => {};
  private leaseTimer: NodeJS.Timeout | null = null;
  private extending = false;
  private leaseSeconds = 30;

  constructor(
    private readonly queue: Queue<T>,
    private readonly handler: (job: Job<T>) => Promise<void>,
    private readonly opts: WorkOptions,
    private readonly validate: (payload: T) => T,
  ) {
    this.id = opts.workerId ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
    this.concurrency = opts.concurrency ?? 10;
    this.batch = opts.batch ?? this.concurrency;
    this.pollIntervalMs = opts.pollIntervalMs ?? 2000;
    this.shutdownTimeoutMs = opts.shutdownTimeoutMs ?? 10_000;
    this.onError = opts.onError ?? (() => {});
    if (this.concurrency < 1 || this.batch < 1) {
      throw new ConfigError('MP004', `concurrency and batch must be at least 1, got ${this.concurrency} and ${this.batch}`, 'pass positive numbers');
    }
    this.listener = new ChannelListener({
      pool: queue.pool,
      channel: queueChannel(queue.name),
      applicationName: `mp queue ${queue.name} listener`,
      onWake: () => this.signal(),
      onError: (err) => this.onError(err),
    });
  }

  /** Starts listening and claiming; called by `Queue.work`. */
  start(): void {
    this.unguard = guardPool(this.queue.pool, (err) => this.onError(err));
    // run() reports every error itself; a rejection here would be an unhandled one, which exits Node.
    this.loopDone = this.run().catch((err: unknown) => this.onError(err));
  }

  private signal(): void {
    this.wakeRequested = true;
    this.wake?.();
  }

  /** Waits for a NOTIFY, a finished handler or the poll timeout; true when it was the timeout. */
  private async sleepUntilWoken(): Promise<boolean> {
    if (this.wakeRequested) {
      this.wakeRequested = false;
      return false;
    }
    // The waiter registration goes stale after a minute: wake at least every 30 s to renew it.
    const timeoutMs = Math.min(this.pollIntervalMs, 30_000);
    const timedOut = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(true), timeoutMs);
      this.wake = () => {
        clearTimeout(timer);
        resolve(false);
      };
    });
    this.wake = null;
    this.wakeRequested = false;
    return timedOut;
  }

  /** Waits `ms` after a failure; only `stop()` cuts it short (that is the point of backing off). */
  private async pause(ms: number): Promise<void> {
    if (this.stopping) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.cancelPause = done;
    });
    this.cancelPause = null;
  }

  /**
   * Registers (or renews) this worker as waiting, so enqueues send NOTIFY. It commits before the next
   * claim, so a job enqueued before the registration is found by that claim, and one enqueued after it
   * sends a wake-up: nothing waits for the poll. False when the call failed (reported).
   */
  private async setWaiting(waiting: boolean): Promise<boolean> {
    const fn = waiting ? 'mp.wait_for_jobs' : 'mp.done_waiting';
    return await this.queue.pool.query(`select ${fn}($1, $2)`, [this.queue.name, this.id]).then(
      () => {
        this.waiting = waiting;
        return true;
      },
      (err: unknown) => {
        this.onError(err);
        return false;
      },
    );
  }

  /** The lease to extend handlers' jobs by: the option, else the queue's, read (with retries) once. */
  private async readLeaseSeconds(): Promise<number> {
    if (this.opts.leaseSeconds !== undefined) return this.opts.leaseSeconds;
    while (!this.stopping) {
      try {
        const { rows } = await this.queue.pool.query<{ lease_seconds: number }>(`select lease_seconds from mp.queues where name = $1`, [this.queue.name]);
        this.backoff.reset();
        return rows[0]?.lease_seconds ?? 30;
      } catch (err) {
        this.onError(err);
        await this.pause(this.backoff.next());
      }
    }
    return 30;
  }

  private async run(): Promise<void> {
    this.listener.ensure();
    this.leaseSeconds = await this.readLeaseSeconds();
    // Lease extension well before expiry: a third of the lease leaves two chances to succeed.
    this.leaseTimer = setInterval(() => void this.extendLeases(), Math.max(200, (this.leaseSeconds * 1000) / 3));
    let renew = false;
    while (!this.stopping) {
      // Never waits: while the listener is away the poll fallback keeps the worker going.
      this.listener.ensure();
      const free = this.concurrency - this.inFlight.size;
      if (free <= 0) {
        if (this.waiting) await this.setWaiting(false);
        await this.sleepUntilWoken();
        continue;
      }
      if (renew) {
        if (!(await this.setWaiting(true))) {
          await this.pause(this.backoff.next());
          continue;
        }
        renew = false;
      }
      const want = Math.min(this.batch, free);
      let jobs: Job<T>[] = [];
      const acks = this.pendingAcks.splice(0);
      try {
        jobs = await this.queue.claim(this.id, { batch: want, leaseSeconds: this.opts.leaseSeconds, targets: this.opts.targets, ack: acks });
      } catch (err) {
        // The database is unreachable or refused: keep the acks for later, back off, never spin. The
        // waiter registration may have gone with the outage (or gone stale): renew it before claiming.
        // If the claim did commit and only its answer was lost, its acks are no-ops when sent again and
        // its jobs come back when their lease lapses.
        this.pendingAcks.unshift(...acks);
        this.onError(err);
        renew = true;
        await this.pause(this.backoff.next());
        continue;
      }
      this.backoff.reset();
      if (this.stopping) {
        // stop() gave up waiting for this claim: nobody will run these jobs, hand them back now.
        if (jobs.length > 0) await this.queue.release(jobs.map((j) => j.id)).catch((err: unknown) => this.onError(err));
        break;
      }
      for (const job of jobs) this.startJob(job);
      if (jobs.length === want) {
        if (this.waiting) await this.setWaiting(false);
      } else if (!this.waiting) {
        // Register, then claim again at once (see setWaiting) before going to sleep.
        if (!(await this.setWaiting(true))) await this.pause(this.backoff.next());
      } else {
        renew = await this.sleepUntilWoken();
      }
    }
    if (this.waiting) await within(this.setWaiting(false), STOP_CALL_TIMEOUT_MS);
  }

  private startJob(job: Job<T>): void {
    const run = (async () => {
      try {
        await this.handler({ ...job, payload: this.validate(job.payload) });
        // Acked with the next claim (one transaction for both), which this handler's signal() triggers.
        this.pendingAcks.push(job.id);
      } catch (err) {
        if (err instanceof LeaseLostError) return;
        const message = err instanceof Error ? err.message : String(err);
        // If this fails too (the database is away), the job stays running until its lease lapses, then
        // it is claimed again: the attempt is not lost, only retried later.
        await this.queue.fail(job.id, message).catch((e: unknown) => this.onError(e));
      } finally {
        this.inFlight.delete(job.id);
        this.signal();
      }
    })();
    this.inFlight.set(job.id, run);
  }

  /** Acks what is pending without a claim (at stop); each try bounded, so a dead server cannot hold stop(). */
  private async flushAcks(): Promise<void> {
    while (this.pendingAcks.length > 0) {
      const ids = this.pendingAcks.splice(0);
      const sent = await within(
        this.queue.ack(ids).then(
          () => 'sent' as const,
          (err: unknown) => {
            this.onError(err);
            return 'failed' as const;
          },
        ),
        STOP_CALL_TIMEOUT_MS,
      );
      if (sent === undefined) this.onError(new Error(`acks of ${ids.length} finished jobs did not get through within ${STOP_CALL_TIMEOUT_MS} ms; they will be handled again`));
    }
  }

  private async extendLeases(): Promise<void> {
    const ids = [...this.inFlight.keys()];
    // One extension at a time: against an unreachable server they would pile up behind each other.
    if (ids.length === 0 || this.extending) return;
    this.extending = true;
    try {
      await this.queue.extendLease(ids, this.leaseSeconds).catch((err: unknown) => this.onError(err));
    } finally {
      this.extending = false;
    }
  }

  /** Jobs whose handlers are running now. */
  get running(): number {
    return this.inFlight.size;
  }

  /**
   * Stops claiming, waits up to `shutdownTimeoutMs` for running handlers, releases the jobs of handlers
   * still running after that (they are claimable again at once), flushes acks and closes the listener.
   * Bounded while the database is down: a claim in flight is waited for at most `shutdownTimeoutMs`,
   * and each closing call (release, ack, the listener's goodbye) at most 5 s.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.signal();
    this.cancelPause?.();
    if ((await within(this.loopDone!.then(() => 'done' as const), this.shutdownTimeoutMs)) === undefined) {
      this.onError(new Error(`worker ${this.id}: its last claim did not return within ${this.shutdownTimeoutMs} ms; stopping without it`));
    }
    const all = Promise.all(this.inFlight.values()).then(() => 'done' as const);
    if ((await within(all, this.shutdownTimeoutMs)) === undefined) {
      await within(this.queue.release([...this.inFlight.keys()]).catch((err: unknown) => this.onError(err)), STOP_CALL_TIMEOUT_MS);
    }
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    await this.flushAcks();
    await this.listener.close(STOP_CALL_TIMEOUT_MS);
    this.unguard();
  }
}
