/**
 * Typed client for MiniPaaS durable streams (`import { Stream } from 'minipaas/stream'`).
 *
 * Terminology (the README uses the same words):
 * - stream: a named, append-only log of events (`mp.streams`); events are kept until retention drops them.
 * - event: one published JSON payload with an optional key, at one pos.
 * - pos (offset): an event's position in its stream: 1, 2, 3... dense (no gaps) and in commit order.
 *   Reading "after" a pos returns the events that follow it; 0 means from the start.
 * - group (consumer group): named, server-side progress through one stream; each event is delivered to
 *   one member of the group at a time, and the group's committed offset is the pos up to which every
 *   event is processed.
 * - member: one consumer in a group (a process, a worker), named so `mp stream groups` can show it.
 * - lease: how long a member holds the events a poll gave it; uncommitted events are delivered again,
 *   to any member, once the lease expires (at-least-once delivery).
 *
 * Positions are PostgreSQL bigints; they are strings here (as `pg` returns int8) because a JavaScript
 * number cannot hold every int8, and strings survive JSON. Methods accept a string, number or bigint.
 */
import { hostname } from 'node:os';
import pg from 'pg';
import type { ZodType } from 'zod';
import { Backoff, ChannelListener, guardPool, isTransientDatabaseError, within } from '../connections.ts';
import { ConfigError, ConflictError, mapDatabaseErrors } from '../errors.ts';
import { checkPayload } from '../payload.ts';

/** Options of `mp.stream_create`; leave one out to not limit by it. */
export interface StreamOptions {
  /** Drop events older than this. */
  retentionSeconds?: number;
  /** Keep at most this many newest events. */
  retentionCount?: number;
}

/** A pos as callers may hand it in; always returned as a string. */
export type Pos = string | number | bigint;

/** One event as read or delivered. */
export interface StreamEvent<T> {
  pos: string;
  payload: T;
  key: string | null;
  createdAt: Date;
}

/** Options of `Stream.subscribe`. */
export interface SubscribeOptions {
  /** Member name shown in `mp.group_stats` (default host:pid:random). */
  member?: string;
  /** Most events per handler call (default 100). */
  batch?: number;
  /**
   * Lease per batch in seconds (default 30). The lease of the batch in progress is extended every third of
   * this, so a handler may run longer; it is how soon the batch of a member that died goes to another one.
   */
  leaseSeconds?: number;
  /** Where a new group starts: 'earliest' (default), 'latest', or a pos (inclusive). Ignored if the group exists. */
  start?: 'earliest' | 'latest' | Pos;
  /** Polling fallback when no NOTIFY arrives (NOTIFY is lossy), default 1000 ms. */
  pollIntervalMs?: number;
  /**
   * Called with errors the subscription survives: a failed handler, a lost connection (also the pool's own
   * 'error' events, see sql/connections.ts), a failed poll or commit. Default: ignore. The subscription
   * never exits on its own: while the database is unreachable it retries with backoff (100 ms doubling to
   * 5 s, jittered) and resumes when it is back.
   */
  onError?: (err: unknown) => void;
}

/** Counts and positions of one stream, from `mp.stream_stats`. */
export interface StreamStats {
  name: string;
  events: number;
  firstPos: string | null;
  lastPos: string;
}

interface EventRow {
  pos: string;
  payload: unknown;
  key: string | null;
  created_at: Date;
}

/** NOTIFY channel a stream's publishes signal on; the payload is the new last pos. */
export function streamChannel(stream: string): string {
  return `mp_stream_${stream}`;
}

function posText(pos: Pos, what: string): string {
  const text = String(pos);
  if (!/^\d+$/.test(text)) {
    throw new ConfigError('MP004', `${what} must be a pos (a whole number >= 0), got ${text}`, 'pass a pos mp.read or mp.publish returned, or 0');
  }
  return text;
}

/**
 * One stream, by name, on a pool.
 *
 * @example
 *   const orders = new Stream({ pool, name: 'orders', schema: z.object({ id: z.number() }) });
 *   await orders.create({ retentionCount: 100_000 });
 *   await orders.publish({ id: 1 }, { key: 'customer-7' });
 *   const sub = await orders.subscribe('billing', async (events) => bill(events));
 *   await sub.stop();
 */
export class Stream<T = unknown> {
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

  private async query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<R[]> {
    return await mapDatabaseErrors(async () => (await this.pool.query<R>(text, values)).rows);
  }

  /** Validates against the schema (if any); MP008 lists each problem as `path: problem`. */
  checked(payload: unknown): T {
    return checkPayload(this.schema, payload, `stream "${this.name}"`, 'fix the payload to match the stream schema');
  }

  private toEvent(r: EventRow): StreamEvent<T> {
    return { pos: r.pos, payload: this.checked(r.payload), key: r.key, createdAt: r.created_at };
  }

  /** Creates the stream; a no-op if it exists with the same options, a ConflictError if with others. */
  async create(options: StreamOptions = {}): Promise<void> {
    const json: Record<string, number> = {};
    if (options.retentionSeconds !== undefined) json.retention_seconds = options.retentionSeconds;
    if (options.retentionCount !== undefined) json.retention_count = options.retentionCount;
    await this.query(`select mp.stream_create($1, $2)`, [this.name, JSON.stringify(json)]);
  }

  /** Deletes the stream with its events and groups. */
  async drop(): Promise<void> {
    await this.query(`select mp.stream_drop($1)`, [this.name]);
  }

  /** Appends one event; returns its pos. */
  async publish(payload: T, opts: { key?: string } = {}): Promise<string> {
    const rows = await this.query<{ pos: string }>(`select mp.publish($1, $2, $3) as pos`, [
      this.name,
      JSON.stringify(this.checked(payload)),
      opts.key ?? null,
    ]);
    return rows[0]!.pos;
  }

  /** Appends many events in one statement (one NOTIFY); returns their positions in order. */
  async publishMany(payloads: T[], opts: { key?: string } = {}): Promise<string[]> {
    const rows = await this.query<{ pos: string }>(`select pos from mp.publish_batch($1, $2, $3) as pos`, [
      this.name,
      JSON.stringify(payloads.map((p) => this.checked(p))),
      opts.key ?? null,
    ]);
    return rows.map((r) => r.pos);
  }

  /**
   * Up to `max` events after pos `after`, in pos order. Reading again after the last pos returned never
   * skips an event, however late its transaction commits.
   *
   * @example
   *   let after = '0';
   *   for (;;) { const events = await stream.read(after, 1000); if (!events.length) break; after = events.at(-1)!.pos; }
   */
  async read(after: Pos, max: number): Promise<StreamEvent<T>[]> {
    const rows = await this.query<EventRow>(`select pos, payload, key, created_at from mp.read($1, $2, $3)`, [
      this.name,
      posText(after, 'after'),
      max,
    ]);
    return rows.map((r) => this.toEvent(r));
  }

  /** Creates a consumer group; false if it already existed (then `start` is ignored). */
  async createGroup(group: string, start: 'earliest' | 'latest' | Pos = 'earliest'): Promise<boolean> {
    const startText = start === 'earliest' || start === 'latest' ? start : posText(start, 'start');
    try {
      await this.query(`select mp.group_create($1, $2, $3)`, [this.name, group, startText]);
      return true;
    } catch (err) {
      if (err instanceof ConflictError && err.code === 'MP007') return false;
      throw err;
    }
  }

  /** Leases up to `max` events of `group` to `member`. Most callers want `subscribe` instead. */
  async poll(group: string, member: string, max: number, leaseSeconds = 30): Promise<StreamEvent<T>[]> {
    const rows = await this.query<EventRow>(`select pos, payload, key, created_at from mp.poll($1, $2, $3, $4, $5)`, [
      this.name,
      group,
      member,
      max,
      leaseSeconds,
    ]);
    return rows.map((r) => ({ pos: r.pos, payload: r.payload as T, key: r.key, createdAt: r.created_at }));
  }

  /** Marks the events of `group` up to and including `upto` (within one polled batch) processed. */
  async commit(group: string, upto: Pos): Promise<void> {
    await this.query(`select mp.commit($1, $2, $3)`, [this.name, group, posText(upto, 'upto')]);
  }

  /**
   * Pushes the lease of what `member` holds in `group` to now + `seconds`; with `pos`, only the batch
   * holding that pos. Returns how many leased batches it extended: 0 when the member holds nothing any
   * more (its lease lapsed and another member polled the events, or they were committed). `subscribe`
   * extends the batch in progress on its own.
   *
   * @example
   *   const events = await stream.poll('billing', 'worker-1', 100, 30);
   *   const timer = setInterval(() => void stream.extendLease('billing', 'worker-1', 30, { pos: events.at(-1)!.pos }), 10_000);
   */
  async extendLease(group: string, member: string, seconds: number, opts: { pos?: Pos } = {}): Promise<number> {
    const rows = await this.query<{ n: number }>(`select mp.group_extend($1, $2, $3, $4, $5) as n`, [
      this.name,
      group,
      member,
      seconds,
      opts.pos === undefined ? null : posText(opts.pos, 'pos'),
    ]);
    return rows[0]!.n;
  }

  /** Kept event count and first/last pos. */
  async stats(): Promise<StreamStats> {
    const rows = await this.query<{ name: string; events: string; first_pos: string | null; last_pos: string }>(
      `select name, events, first_pos, last_pos from mp.stream_stats($1)`,
      [this.name],
    );
    const r = rows[0]!;
    return { name: r.name, events: Number(r.events), firstPos: r.first_pos, lastPos: r.last_pos };
  }

  /**
   * Delivers the events of consumer group `group` to `handler`, a batch at a time, until `stop()`.
   * Creates the group if missing. A handler that returns commits its batch; one that throws does not, so
   * the batch is delivered again (to any member) when its lease expires. While the handler runs, the
   * lease of its batch is extended every third of `leaseSeconds`. Idle subscriptions sleep on
   * LISTEN and wake on publish, with a slow polling fallback. Resolves once listening, so events
   * published after it resolves are delivered even with `start: 'latest'`.
   */
  async subscribe(
    group: string,
    handler: (events: StreamEvent<T>[]) => Promise<void>,
    opts: SubscribeOptions = {},
  ): Promise<Subscription<T>> {
    const sub = new Subscription<T>(this, group, handler, opts);
    await this.createGroup(group, opts.start ?? 'earliest');
    await sub.start();
    return sub;
  }
}

/** How long each closing database call of `stop()` may take: a dead server may never answer. */
const STOP_CALL_TIMEOUT_MS = 5_000;

/**
 * A running `Stream.subscribe` loop.
 *
 * Through a restart or a network drop: a failed poll backs off (exponential, capped, jittered); a commit
 * that fails on a broken connection is tried again with backoff for up to one lease, so the batch is not
 * handled twice for a blip; the LISTEN connection comes back in the background and the
 * subscription polls at once when it does. Nothing is skipped: an uncommitted batch stays leased to this
 * member and is delivered again (to any member) once its lease lapses.
 */
export class Subscription<T> {
  readonly member: string;
  private readonly batch: number;
  private readonly leaseSeconds: number;
  private readonly pollIntervalMs: number;
  private readonly onError: (err: unknown) => void;
  private stopping = false;
  private loopDone: Promise<void> | null = null;
  private handlerDone: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private wakeRequested = false;
  private cancelPause: (() => void) | null = null;
  private readonly listener: ChannelListener;
  private readonly backoff = new Backoff(100, 5_000);
  private unguard: () => void = () => {};

  constructor(
    private readonly stream: Stream<T>,
    readonly group: string,
    private readonly handler: (events: StreamEvent<T>[]) => Promise<void>,
    opts: SubscribeOptions,
  ) {
    this.member = opts.member ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
    this.batch = opts.batch ?? 100;
    this.leaseSeconds = opts.leaseSeconds ?? 30;
    this.pollIntervalMs = opts.pollIntervalMs ?? 1000;
    this.onError = opts.onError ?? (() => {});
    if (!(this.batch >= 1) || !(this.leaseSeconds >= 1)) {
      throw new ConfigError('MP004', `batch and leaseSeconds must be at least 1, got ${this.batch} and ${this.leaseSeconds}`, 'pass positive numbers');
    }
    // Its own connection, not a pool one: LISTEN belongs to a session, and a pooled client would carry
    // it to unrelated queries. The application_name makes it visible in pg_stat_activity.
    this.listener = new ChannelListener({
      pool: stream.pool,
      channel: streamChannel(stream.name),
      applicationName: `mp stream ${stream.name} listener`,
      onWake: () => this.signal(),
      onError: (err) => this.onError(err),
    });
  }

  /** Listens, then starts the poll loop; called by `Stream.subscribe`. */
  async start(): Promise<void> {
    await mapDatabaseErrors(() => this.listener.connect());
    this.unguard = guardPool(this.stream.pool, (err) => this.onError(err));
    // run() reports every error itself; a rejection here would be an unhandled one, which exits Node.
    this.loopDone = this.run().catch((err: unknown) => this.onError(err));
  }

  private signal(): void {
    this.wakeRequested = true;
    this.wake?.();
  }

  private async sleepUntilWoken(): Promise<void> {
    if (this.wakeRequested || this.stopping) {
      this.wakeRequested = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.pollIntervalMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
    this.wake = null;
    this.wakeRequested = false;
  }

  /** Waits `ms` unless stopped; publishes do not cut it short (that is the point of backing off). */
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

  private async run(): Promise<void> {
    while (!this.stopping) {
      // Never waits: until the listener is back the polling fallback keeps delivery going.
      this.listener.ensure();
      // Cleared before polling: a NOTIFY that arrives while the poll runs must cause another poll.
      this.wakeRequested = false;
      let events: StreamEvent<T>[];
      try {
        events = await this.stream.poll(this.group, this.member, this.batch, this.leaseSeconds);
      } catch (err) {
        this.onError(err);
        await this.pause(this.backoff.next());
        continue;
      }
      this.backoff.reset();
      if (events.length === 0) {
        await this.sleepUntilWoken();
        continue;
      }
      const lastPos = events[events.length - 1]!.pos;
      const stopExtending = this.keepLease(lastPos);
      let failed = false;
      const handled = (async () => {
        // Validation on receive counts as a handler failure: the batch stays uncommitted and visible
        // as lag, rather than being skipped silently.
        const checked = events.map((e) => ({ ...e, payload: this.stream.checked(e.payload) }));
        await this.handler(checked);
      })();
      this.handlerDone = handled.then(
        () => {},
        () => {},
      );
      try {
        await handled;
      } catch (err) {
        failed = true;
        this.onError(err);
      } finally {
        this.handlerDone = null;
        // Before the commit: an extension landing after it would find nothing and report the batch lost.
        await stopExtending();
      }
      if (failed) {
        // Back off: a handler failing on everything (its database is down, say) would otherwise lease
        // batch after batch as fast as events arrive, all of them waiting out their leases.
        await this.pause(this.pollIntervalMs);
        continue;
      }
      await this.commitWithRetry(lastPos).catch((err: unknown) => this.onError(err));
    }
  }

  /**
   * Commits the batch up to `pos`, retrying a broken connection with backoff for at most one lease (the
   * batch is delivered again after that anyway) or until stop. Rejects with the last error if it gives
   * up; the batch is then delivered again once its lease lapses.
   */
  private async commitWithRetry(pos: string): Promise<void> {
    const giveUpAt = Date.now() + this.leaseSeconds * 1000;
    const backoff = new Backoff(100, 2_000);
    for (;;) {
      try {
        await this.stream.commit(this.group, pos);
        return;
      } catch (err) {
        if (!isTransientDatabaseError(err) || this.stopping || Date.now() >= giveUpAt) throw err;
        this.onError(err);
        await this.pause(backoff.next());
      }
    }
  }

  /**
   * Extends the lease of the batch holding `pos` every third of the lease (two more chances before it
   * lapses if one fails) until the returned function is called; that resolves once no extension is in
   * flight. Only this batch: an earlier one whose handler failed is still leased to this member and must
   * expire to be delivered again. A failed extension (the database away) is reported and tried again at
   * the next tick; only an extension that got through and found nothing is a lost lease.
   */
  private keepLease(pos: string): () => Promise<void> {
    let inFlight: Promise<void> | null = null;
    let lost = false;
    const timer = setInterval(() => {
      // One call at a time, so a slow database does not pile extensions up.
      if (inFlight || lost) return;
      inFlight = this.stream
        .extendLease(this.group, this.member, this.leaseSeconds, { pos })
        .then(
          (extended) => {
            if (extended > 0) return;
            lost = true;
            this.onError(
              new ConflictError(
                'STREAM_LEASE_LOST',
                `member "${this.member}" lost the lease of its batch up to pos ${pos} of group "${this.group}" on stream "${this.stream.name}": it lapsed and another member polled it, so those events may be handled twice`,
                'the lease lapsed before an extension got through; check the database connection, or raise leaseSeconds',
              ),
            );
          },
          (err: unknown) => this.onError(err),
        )
        .finally(() => {
          inFlight = null;
        });
    }, Math.max(200, (this.leaseSeconds * 1000) / 3));
    return async () => {
      clearInterval(timer);
      await within(inFlight ?? Promise.resolve(), STOP_CALL_TIMEOUT_MS);
    };
  }

  /**
   * Stops polling, lets the batch in flight finish (its handler and commit), then closes the listener.
   * Resolves when nothing of this subscription is left running or connected. Bounded while the database
   * is down: after the handler has returned, the loop's last database call is waited for at most 5 s, and
   * so is the listener's goodbye.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    this.cancelPause?.();
    await this.handlerDone;
    await within(this.loopDone ?? Promise.resolve(), STOP_CALL_TIMEOUT_MS);
    await this.listener.close(STOP_CALL_TIMEOUT_MS);
    this.unguard();
  }
}
