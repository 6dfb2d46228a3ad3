/** Time in the benchmark: one monotonic clock, waiting for a condition with a deadline, steady pacing. */

/** Milliseconds on the process's monotonic clock; comparable across every module of one run. */
export const now = (): number => performance.now();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `check` every `intervalMs` until it returns true; throws naming `what` after `timeoutMs`.
 *
 * @example
 *   await waitUntil('all jobs handled', () => handled === n, { timeoutMs: 60_000 });
 */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  opts: { timeoutMs: number; intervalMs?: number },
): Promise<void> {
  const deadline = now() + opts.timeoutMs;
  while (!(await check())) {
    if (now() > deadline) throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}`);
    await sleep(opts.intervalMs ?? 2);
  }
}

/**
 * Calls `fn(i)` for i = 0..count-1 at a steady `perSecond` rate on an absolute schedule, so one slow
 * call does not shift every later one (no coordinated omission: a late call runs at once). Calls may
 * overlap when one takes longer than the interval; returns when all have settled.
 */
export async function paced(count: number, perSecond: number, fn: (i: number) => Promise<void>): Promise<void> {
  const interval = 1000 / perSecond;
  const start = now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const due = start + i * interval;
    const wait = due - now();
    if (wait > 0) await sleep(wait);
    pending.push(fn(i));
  }
  await Promise.all(pending);
}
