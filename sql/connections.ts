/**
 * What lets the long-running clients (`Queue.work`, `Stream.subscribe`, the agent) ride out a PostgreSQL
 * restart or a network drop: a guard on the pool they are given, a LISTEN connection of their own that
 * comes back by itself, and backoff for retries.
 *
 * Why a guard on the caller's pool: pg's Pool emits 'error' when one of its idle clients dies (a restart
 * sends "terminating connection due to administrator command" to every session), and an EventEmitter
 * 'error' with no listener throws, so a worker written as the README shows it (a bare `new pg.Pool(...)`)
 * exited on its own at every restart. The client has already left the pool when that event fires; the
 * next query opens a new one. So the guard only has to be there and to say what happened: the first
 * Queue, Stream or AgentCalls built on a pool attaches one listener (once per pool, however many clients
 * share it) that forwards to the `onError` of whichever workers and subscriptions run on it, and a silent
 * listener on each client the pool connects, for a client that is checked out (`pool.connect()`) but
 * between queries when its connection dies: its error surfaces through its next query instead.
 * A listener the application adds itself still runs; the guard never removes or replaces anything.
 *
 * Why a LISTEN connection of our own (a `pg.Client`, not a pooled one): LISTEN belongs to a session, a
 * pooled client would carry it to unrelated queries, and it must be re-established after the session
 * dies. `ChannelListener` reconnects in the background with backoff (never blocking the claim loop on a
 * connect that hangs) and says when it is back, so the caller claims at once: NOTIFYs sent while it was
 * away are lost.
 */
import pg from 'pg';
import { ConnectionError } from './errors.ts';

type Report = (err: unknown) => void;

/** Pools already guarded, with the reporters of what runs on each now. */
const guards = new WeakMap<pg.Pool, Set<Report>>();

/**
 * Makes `pool` survive the death of its idle and checked-out clients (see the module comment); with
 * `report`, also forwards the pool's 'error' events to it until the returned function is called.
 *
 * @example
 *   const unguard = guardPool(pool, onError);   // a worker starting
 *   unguard();                                  // the worker stopped
 */
export function guardPool(pool: pg.Pool, report?: Report): () => void {
  let reporters = guards.get(pool);
  if (!reporters) {
    const set = new Set<Report>();
    reporters = set;
    guards.set(pool, set);
    pool.on('error', (err) => {
      for (const r of set) r(err);
    });
    // Silent: an error on a checked-out client fails its current or next query, which its user sees.
    pool.on('connect', (client) => void client.on('error', () => {}));
  }
  if (!report) return () => {};
  const own = reporters;
  // One entry per registration, even when two workers share one onError function.
  const entry: Report = (err) => report(err);
  own.add(entry);
  return () => void own.delete(entry);
}

/**
 * Exponential backoff with a cap and "equal jitter": the n-th delay is uniform in [d/2, d] where
 * d = min(cap, base * 2^n). Jitter spreads the reconnects of many workers after one restart; the floor
 * of d/2 keeps a failing loop from spinning. `reset()` after a success.
 */
export class Backoff {
  private failures = 0;

  constructor(
    private readonly baseMs = 100,
    private readonly capMs = 5_000,
  ) {}

  /** The next delay, in milliseconds. */
  next(): number {
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.failures, 30));
    this.failures += 1;
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  reset(): void {
    this.failures = 0;
  }
}

/** SQLSTATEs and socket codes of a connection that broke or a server not (yet) accepting connections. */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  '57P01', // admin_shutdown: fast or immediate shutdown
  '57P02', // crash_shutdown: another backend crashed
  '57P03', // cannot_connect_now: starting up or shutting down
  '53300', // too_many_connections: the reconnect storm after a restart
]);

/**
 * Whether `err` says the database was unreachable or the connection broke (worth retrying as is), as
 * opposed to an error of the statement itself (worth reporting).
 */
export function isTransientDatabaseError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (TRANSIENT_CODES.has(code) || code.startsWith('08'))) return true;
  if (err instanceof ConnectionError) return false; // a wrong password or database is not transient
  // pg's own errors for a socket that closed carry no code, only these words.
  return /Connection terminated|not queryable|timeout exceeded when trying to connect|Connection ended/i.test(err.message);
}

/** Resolves with `promise`, or after `ms` with `undefined` (the promise keeps running). */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Options of a `ChannelListener`. */
export interface ChannelListenerOptions {
  /** Connection settings come from this pool (`pool.options`); the listener is not one of its clients. */
  pool: pg.Pool;
  channel: string;
  /** Shown in `pg_stat_activity`. */
  applicationName: string;
  /** A NOTIFY arrived, or the listener (re)connected and NOTIFYs may have been missed. */
  onWake: () => void;
  onError: Report;
}

/** How long a listener's connect may take when the pool's settings give no `connectionTimeoutMillis`. */
const LISTEN_CONNECT_TIMEOUT_MS = 10_000;

/**
 * A dedicated connection LISTENing on one channel, reconnected in the background after it breaks.
 *
 * @example
 *   const listener = new ChannelListener({ pool, channel: 'mp_queue_emails', applicationName: 'worker', onWake, onError });
 *   await listener.connect();      // or listener.ensure() in a loop
 *   await listener.close(5_000);
 */
export class ChannelListener {
  private client: pg.Client | null = null;
  private connecting: Promise<void> | null = null;
  private nextAttemptAt = 0;
  private closed = false;
  private readonly backoff = new Backoff(200, 5_000);

  constructor(private readonly opts: ChannelListenerOptions) {}

  /** True while a live session LISTENs. */
  get listening(): boolean {
    return this.client !== null;
  }

  /**
   * Starts a reconnect in the background when none is listening and the backoff allows one; never throws
   * and never waits, so a claim loop keeps polling while the listener is away.
   */
  ensure(): void {
    if (this.closed || this.client || this.connecting || Date.now() < this.nextAttemptAt) return;
    void this.connect().catch((err: unknown) => this.opts.onError(err));
  }

  /** Connects and LISTENs now; rejects when that fails (the next `ensure()` tries again after a backoff). */
  async connect(): Promise<void> {
    this.connecting ??= this.open().finally(() => {
      this.connecting = null;
    });
    await this.connecting;
  }

  private async open(): Promise<void> {
    const options = this.opts.pool.options;
    const client = new pg.Client({
      ...options,
      application_name: this.opts.applicationName,
      connectionTimeoutMillis: options.connectionTimeoutMillis || LISTEN_CONNECT_TIMEOUT_MS,
      // A network drop that sends no RST would otherwise leave a LISTEN that hears nothing, forever.
      keepAlive: true,
    });
    let reported = false;
    client.on('notification', () => this.opts.onWake());
    // Stays attached for the client's life: pg may emit a second error (the socket's end) after the first.
    client.on('error', (err) => {
      if (this.client === client) this.client = null;
      if (!reported && !this.closed) this.opts.onError(err);
      reported = true;
      this.nextAttemptAt = Date.now() + this.backoff.next();
      client.end().catch(() => {});
    });
    try {
      await client.connect();
      await client.query(`listen ${pg.escapeIdentifier(this.opts.channel)}`);
    } catch (err) {
      reported = true;
      this.nextAttemptAt = Date.now() + this.backoff.next();
      await client.end().catch(() => {});
      throw err;
    }
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
    this.backoff.reset();
    this.opts.onWake();
  }

  /** Closes the session (waiting at most `timeoutMs`: a dead server may never answer the goodbye). */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    await within(this.connecting?.catch(() => {}) ?? Promise.resolve(), timeoutMs);
    const client = this.client;
    this.client = null;
    if (client) await within(client.end().catch(() => {}), timeoutMs);
  }
}
