/**
 * Waiting for Swarm to converge: poll a condition until it holds, a deadline passes or the operation
 * is cancelled. Swarm has no "wait for" API (the docker CLI polls too); polling every 500 ms costs one
 * cheap list call and converges within a second of the engine.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** Give up after this long; `onTimeout` builds the error thrown then. */
  timeoutMs: number;
  intervalMs?: number;
  signal: AbortSignal;
  onTimeout(): Error | Promise<Error>;
}

/**
 * Calls `check` until it returns something other than `undefined`/`false` and returns that. Throws
 * `signal.reason` once cancelled (checked before each poll, and the pause between polls is cut short).
 *
 * @example
 *   await waitUntil(async () => (await runningTasks()) === 3 || undefined, {
 *     timeoutMs: 120_000, signal, onTimeout: () => new DockerError('DOCKER_TIMEOUT', 'not converged'),
 *   });
 */
export async function waitUntil<T>(check: () => Promise<T | undefined | false>, opts: WaitOptions): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    opts.signal.throwIfAborted();
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline) throw await opts.onTimeout();
    const pause = Math.min(opts.intervalMs ?? 500, Math.max(0, deadline - Date.now()));
    await sleep(pause, undefined, { signal: opts.signal });
  }
}
